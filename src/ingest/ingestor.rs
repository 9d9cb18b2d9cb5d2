//! The ingest pipeline shared by `POST /legacy/` and `edelweiss add`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use super::archive::{ArchiveError, ArchiveLimits, inspect};
use super::spool::{Spool, SpoolError, SpooledFile};
use super::wheel_metadata;
use crate::index::Published;
use crate::metadata::{
    ExtractedMetadata, Extraction, FileKind, FileOrigin, FileRecord, IndexError, IndexStore,
    InsertOutcome, MirrorStore, MirrorStoreError, check_held,
};
use crate::pypi::{DistFilename, FilenameError, Sha256Digest, WheelFilename, excerpt};
use crate::storage::{BlobStore, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid filename: {0}")]
    Filename(#[from] FilenameError),
    #[error("invalid archive {}: {source}", excerpt(.filename))]
    Archive {
        filename: String,
        source: ArchiveError,
    },
    #[error(
        "sha256_digest {} does not match the uploaded bytes ({actual})",
        excerpt(.declared)
    )]
    DigestMismatch {
        declared: String,
        actual: Sha256Digest,
    },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    MirrorRecords(#[from] MirrorStoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("archive inspection was interrupted: {0}")]
    Interrupted(String),
    #[error("could not spool a stored file: {0}")]
    Spool(#[from] SpoolError),
}

#[derive(Debug, Clone)]
pub struct IngestOutcome {
    pub record: FileRecord,
    pub outcome: InsertOutcome,
}

#[derive(Clone)]
pub struct Ingestor {
    store: BlobStore,
    index: Arc<dyn IndexStore>,
    /// Where the metadata read from mirrored wheels is recorded.
    mirror_records: Arc<dyn MirrorStore>,
    limits: ArchiveLimits,
    spool_dir: PathBuf,
    /// Every file, uploaded, added or built (in this process or by a remote worker), is
    /// stored here, so its project's pages and the files gauge follow each one.
    published: Published,
}

impl Ingestor {
    pub fn new(
        store: BlobStore,
        index: Arc<dyn IndexStore>,
        mirror_records: Arc<dyn MirrorStore>,
        limits: ArchiveLimits,
        spool_dir: PathBuf,
        published: Published,
    ) -> Self {
        Self {
            store,
            index,
            mirror_records,
            limits,
            spool_dir,
            published,
        }
    }

    pub fn spool_dir(&self) -> &std::path::Path {
        &self.spool_dir
    }

    /// Validates and stores `spooled` as `filename`. `declared` is the client's
    /// `sha256_digest`, checked when given.
    pub async fn ingest(
        &self,
        spooled: SpooledFile,
        filename: &str,
        declared: Option<&str>,
        origin: FileOrigin,
    ) -> Result<IngestOutcome, IngestError> {
        let parsed: DistFilename = filename.parse()?;
        if let Some(declared) = declared.filter(|declared| *declared != spooled.sha256.to_hex()) {
            return Err(IngestError::DigestMismatch {
                declared: declared.to_string(),
                actual: spooled.sha256,
            });
        }
        // Checked again when the record is inserted; this early check spares the archive
        // inspection and the blob write.
        if let Some(held) = self.index.same_file(&parsed).await? {
            let outcome = check_held(&held, filename, spooled.sha256)?;
            return Ok(IngestOutcome {
                record: held,
                outcome,
            });
        }
        let inspected = {
            let (path, parsed, limits) = (spooled.path.to_path_buf(), parsed.clone(), self.limits);
            tokio::task::spawn_blocking(move || inspect(&path, &parsed, &limits))
                .await
                .map_err(|error| IngestError::Interrupted(error.to_string()))?
                .map_err(|source| IngestError::Archive {
                    filename: filename.to_string(),
                    source,
                })?
        };
        self.store.put_file(spooled.sha256, &spooled.path).await?;
        let metadata_sha256 = match inspected.metadata_file {
            Some(bytes) => {
                let digest = Sha256Digest::of(&bytes);
                self.store.put_bytes(digest, Bytes::from(bytes)).await?;
                Some(digest)
            }
            None => None,
        };
        let record = FileRecord {
            project: parsed.name().to_string(),
            filename: filename.to_string(),
            version: parsed.version().to_string(),
            kind: match parsed {
                DistFilename::Wheel(_) => FileKind::Wheel,
                DistFilename::Sdist(_) => FileKind::Sdist,
            },
            sha256: spooled.sha256,
            size: spooled.size,
            upload_time: crate::clock::rfc3339_now(),
            requires_python: inspected.metadata.requires_python.clone(),
            metadata_sha256,
            yanked: None,
            origin,
        };
        let outcome = self
            .index
            .insert_file(&parsed, &record, &inspected.metadata.display_name)
            .await?;
        if outcome == InsertOutcome::Inserted {
            self.published.file_stored(parsed.name()).await;
        }
        Ok(IngestOutcome { record, outcome })
    }

    /// A wheel the mirror stored under its verified `sha256`, still spooled at `path` and
    /// listed upstream as `filename`: its METADATA is read by the rules an upload's is read
    /// by, stored as a blob, and recorded, so its project's pages advertise it (PEP 658).
    /// A wheel whose METADATA cannot be read is served all the same: the reason is logged
    /// and recorded instead, and the wheel is not read again.
    pub async fn mirrored_wheel(
        &self,
        wheel: &WheelFilename,
        filename: &str,
        sha256: Sha256Digest,
        path: &Path,
    ) -> Result<Extraction, IngestError> {
        let extracted = {
            let (path, wheel, limits) = (path.to_path_buf(), wheel.clone(), self.limits);
            tokio::task::spawn_blocking(move || wheel_metadata::extract(&path, &wheel, &limits))
                .await
                .map_err(|error| IngestError::Interrupted(error.to_string()))?
        };
        let outcome = match extracted {
            Ok(metadata) => {
                let digest = Sha256Digest::of(&metadata.bytes);
                self.store
                    .put_bytes(digest, Bytes::from(metadata.bytes))
                    .await?;
                Extraction::Stored {
                    metadata_sha256: digest,
                }
            }
            Err(error) => {
                tracing::warn!(
                    filename = %excerpt(filename),
                    %sha256,
                    reason = %error,
                    "mirrored wheel has no metadata file to serve; the wheel is served without one"
                );
                Extraction::Refused {
                    reason: error.to_string(),
                }
            }
        };
        let record = ExtractedMetadata {
            wheel_sha256: sha256,
            outcome,
        };
        self.mirror_records
            .put_extracted(&wheel.name, filename, &record)
            .await?;
        self.published
            .metadata_extracted(&wheel.name, &record.outcome)
            .await;
        Ok(record.outcome)
    }

    /// Like [`Self::mirrored_wheel`], for a wheel already in the store with nothing
    /// recorded (stored by an edelweiss that did not read metadata): it is spooled from
    /// the store first.
    pub async fn stored_wheel(
        &self,
        wheel: &WheelFilename,
        filename: &str,
        sha256: Sha256Digest,
    ) -> Result<Extraction, IngestError> {
        let mut spool = Spool::create(&self.spool_dir, u64::MAX)?;
        let mut body = self.store.get(sha256, None).await?.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| IngestError::Spool(SpoolError::Io(source)))?;
            spool.write(&chunk).await?;
        }
        let spooled = spool.finish().await?;
        if spooled.sha256 != sha256 {
            return Err(StorageError::DigestMismatch {
                expected: sha256,
                actual: spooled.sha256,
            }
            .into());
        }
        self.mirrored_wheel(wheel, filename, sha256, &spooled.path)
            .await
    }
}
