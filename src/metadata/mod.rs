//! The index's records: projects and the files they hold, in sled, behind a narrow trait.

pub(crate) mod mirror_store;
mod records;
mod sled_store;

pub use mirror_store::{
    CachedPage, ExtractedMetadata, Extraction, MirrorStore, MirrorStoreError, PostgresMirrorStore,
    Revalidation, SledMirrorStore, UpstreamFile,
};
pub use records::{FileKind, FileOrigin, FileRecord, ProjectRecord};
pub use sled_store::SledIndex;

use crate::pypi::{DistFilename, PackageName, Sha256Digest};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// `filename` is the same file (`DistIdentity`) as `held`, which holds other bytes or
    /// is spelled differently.
    #[error("{}", conflict_message(filename, held, existing, *same_content))]
    Conflict {
        filename: String,
        held: String,
        existing: Sha256Digest,
        same_content: bool,
    },
    #[error("no file {filename} in project {project}")]
    FileNotFound { project: String, filename: String },
    #[error(
        "the data directory {path} is in use by another edelweiss process or cannot be opened: {source}"
    )]
    Open { path: String, source: sled::Error },
    #[error(
        "the index database was written in format {found}; this edelweiss reads format {expected}"
    )]
    Format { found: String, expected: String },
    #[error("the index database failed: {0}")]
    Database(#[from] sled::Error),
    #[error("index record {key} is corrupt: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

fn conflict_message(
    filename: &str,
    held: &str,
    existing: &Sha256Digest,
    same_content: bool,
) -> String {
    if filename == held {
        return format!(
            "{filename} already exists with different content (sha256 {existing}); a filename is never reused"
        );
    }
    let content = match same_content {
        true => "with the same content",
        false => "with different content",
    };
    format!(
        "{filename} is the same file as {held} (equal normalized name, version, and tags or sdist kind), which already exists {content} (sha256 {existing}); a release holds one file of each"
    )
}

/// The rule for a new file whose identity is already held: the same bytes under the same
/// filename are already present (an upload retried); anything else is a conflict naming
/// the file held.
pub fn check_held(
    held: &FileRecord,
    filename: &str,
    sha256: Sha256Digest,
) -> Result<InsertOutcome, IndexError> {
    if held.filename == filename && held.sha256 == sha256 {
        return Ok(InsertOutcome::AlreadyPresent);
    }
    Err(IndexError::Conflict {
        filename: filename.to_string(),
        held: held.filename.clone(),
        existing: held.sha256,
        same_content: held.sha256 == sha256,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// The same bytes under the same filename: nothing to do.
    AlreadyPresent,
}

/// What the rest of the crate may ask of the index database.
pub trait IndexStore: Send + Sync {
    fn projects(&self) -> Result<Vec<ProjectRecord>, IndexError>;
    fn project(&self, name: &PackageName) -> Result<Option<ProjectRecord>, IndexError>;
    fn files(&self, name: &PackageName) -> Result<Vec<FileRecord>, IndexError>;
    fn file(&self, name: &PackageName, filename: &str) -> Result<Option<FileRecord>, IndexError>;
    /// The file held that is the same distribution as `filename` (`DistIdentity`: name,
    /// version, tags or sdist kind), whatever its spelling.
    fn same_file(&self, filename: &DistFilename) -> Result<Option<FileRecord>, IndexError>;
    /// The record a `/files/<digest>/<filename>` URL names, if any.
    fn file_by_digest(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<FileRecord>, IndexError>;
    /// Records a file whose blob is already complete in the store, unless the same file
    /// is held (`check_held` decides). Atomic across trees; `filename` is the record's,
    /// parsed.
    fn insert_file(
        &self,
        filename: &DistFilename,
        record: &FileRecord,
        display_name: &str,
    ) -> Result<InsertOutcome, IndexError>;
    /// PEP 592: `Some(reason)` yanks (an empty reason is allowed), `None` restores.
    fn set_yanked(
        &self,
        name: &PackageName,
        filename: &str,
        reason: Option<String>,
    ) -> Result<FileRecord, IndexError>;
    fn file_count(&self) -> Result<u64, IndexError>;
    /// One small read: the database answers.
    fn ping(&self) -> Result<(), IndexError>;
    fn flush(&self) -> Result<(), IndexError>;
}
