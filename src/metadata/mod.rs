//! The index's records: projects and the files they hold, behind one async trait with
//! backend-neutral errors. `SledIndex` keeps them in the embedded database,
//! `PostgresIndexStore` in a PostgreSQL database that replicas share; one conformance suite
//! (`conformance`) holds both to the same behaviour.

pub(crate) mod mirror_store;
mod postgres;
mod records;
mod sled_store;

#[cfg(test)]
mod conformance;

use async_trait::async_trait;

pub use mirror_store::{
    CachedPage, ExtractedMetadata, Extraction, MirrorStore, MirrorStoreError, PostgresMirrorStore,
    Revalidation, SledMirrorStore, UpstreamFile,
};
pub use postgres::{MIGRATIONS as POSTGRES_MIGRATIONS, PostgresIndexStore};
pub use records::{FileKind, FileOrigin, FileRecord, ProjectRecord};
pub use sled_store::{SledIndex, SledOpenError};

use crate::pypi::{DistFilename, PackageName, Sha256Digest};

/// The records' failures, the same for every backend: a backend folds its own errors into
/// `Unavailable` (worth another try) or `Corrupt` (a record that does not decode).
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
    #[error("the index database is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
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

/// What the rest of the crate may ask of the index's records. Inserting is atomic: of
/// concurrent inserts of one `DistIdentity`, whichever process makes them, one is
/// `Inserted` and the others are decided by `check_held` against it.
#[async_trait]
pub trait IndexStore: Send + Sync {
    /// Every project, by normalized name.
    async fn projects(&self) -> Result<Vec<ProjectRecord>, IndexError>;
    async fn project(&self, name: &PackageName) -> Result<Option<ProjectRecord>, IndexError>;
    /// The project's files, by filename (byte order).
    async fn files(&self, name: &PackageName) -> Result<Vec<FileRecord>, IndexError>;
    async fn file(
        &self,
        name: &PackageName,
        filename: &str,
    ) -> Result<Option<FileRecord>, IndexError>;
    /// The file held that is the same distribution as `filename` (`DistIdentity`: name,
    /// version, tags or sdist kind), whatever its spelling.
    async fn same_file(&self, filename: &DistFilename) -> Result<Option<FileRecord>, IndexError>;
    /// The record a `/files/<digest>/<filename>` URL names, if any.
    async fn file_by_digest(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<FileRecord>, IndexError>;
    /// Records a file whose blob is already complete in the store, and its project if new
    /// (named `display_name`), unless the same file is held (`check_held` decides).
    /// `filename` is the record's, parsed.
    async fn insert_file(
        &self,
        filename: &DistFilename,
        record: &FileRecord,
        display_name: &str,
    ) -> Result<InsertOutcome, IndexError>;
    /// PEP 592: `Some(reason)` yanks (an empty reason is allowed), `None` restores.
    async fn set_yanked(
        &self,
        name: &PackageName,
        filename: &str,
        reason: Option<String>,
    ) -> Result<FileRecord, IndexError>;
    async fn file_count(&self) -> Result<u64, IndexError>;
    /// One small read: the database answers.
    async fn ping(&self) -> Result<(), IndexError>;
}

/// The record among `files` that is the same distribution as `filename`: the one of that
/// name, else one whose name parses to the same `DistIdentity`. A held filename that no
/// longer parses (a stricter parser than the one that stored it) is still found by name.
fn find_same<'a>(
    files: impl IntoIterator<Item = &'a FileRecord>,
    filename: &DistFilename,
) -> Option<&'a FileRecord> {
    let identity = filename.identity();
    let mut same = None;
    for record in files {
        if record.filename == filename.as_str() {
            return Some(record);
        }
        let parsed = record.filename.parse::<DistFilename>();
        if same.is_none() && parsed.is_ok_and(|held| held.identity() == identity) {
            same = Some(record);
        }
    }
    same
}
