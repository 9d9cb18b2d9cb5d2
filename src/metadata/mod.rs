//! The index's records: projects and the files they hold, in sled, behind a narrow trait.

mod mirror_records;
mod records;
mod sled_store;

pub use mirror_records::{CachedPage, MirrorRecords, UpstreamFile};
pub use records::{FileKind, FileOrigin, FileRecord, ProjectRecord};
pub use sled_store::SledIndex;

use crate::pypi::{PackageName, Sha256Digest};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(
        "{filename} already exists with different content (sha256 {existing}); a filename is never reused"
    )]
    Conflict {
        filename: String,
        existing: Sha256Digest,
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
    /// The record a `/files/<digest>/<filename>` URL names, if any.
    fn file_by_digest(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<FileRecord>, IndexError>;
    /// Records a file whose blob is already complete in the store. Atomic across trees.
    fn insert_file(
        &self,
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
