//! Spooling: an incoming body written to a temporary file while it is hashed and counted.
//! Archives are validated from the spooled copy (a zip's directory is at its end), and the
//! temporary file disappears when the `SpooledFile` is dropped.

use std::path::Path;

use sha2::{Digest as _, Sha256};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use crate::pypi::Sha256Digest;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the file is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("could not write the spool file: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Spool {
    file: tokio::fs::File,
    path: TempPath,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

#[derive(Debug)]
pub struct SpooledFile {
    pub path: TempPath,
    pub sha256: Sha256Digest,
    pub size: u64,
}

impl Spool {
    pub fn create(dir: &Path, limit: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir)?;
        let (file, path) = tempfile::Builder::new()
            .prefix("spool-")
            .tempfile_in(dir)?
            .into_parts();
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            path,
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), SpoolError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(SpoolError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).await?;
        Ok(())
    }

    pub async fn finish(mut self) -> Result<SpooledFile, SpoolError> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        Ok(SpooledFile {
            path: self.path,
            sha256: Sha256Digest::from_hasher(self.hasher),
            size: self.size,
        })
    }

    /// Spools a local file, for `edelweiss add`.
    pub async fn copy_from(
        dir: &Path,
        limit: u64,
        source: &Path,
    ) -> Result<SpooledFile, SpoolError> {
        use tokio::io::AsyncReadExt;
        let mut spool = Self::create(dir, limit)?;
        let mut input = tokio::fs::File::open(source).await?;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = input.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            spool.write(&buffer[..read]).await?;
        }
        spool.finish().await
    }
}
