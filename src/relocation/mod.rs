//! Moving an installation off its data directory (`edelweiss migrate --from-data-dir`):
//! the blobs of its store and the records of its sled database (the index, the mirror's
//! records, the build queue) copied to the PostgreSQL database and the blob store the
//! settings name, every blob's digest verified on the way and read back after.
//!
//! The old directory is never written: sled writes on open, so the database is read from a
//! copy (`source`), made under a shared lock that no edelweiss process holding the
//! database allows. Blobs go first and records after, as on every write here, so an
//! interrupted move leaves at most blobs no record names yet; every step skips what the
//! destination already holds, so running the move again finishes it and changes nothing
//! after that.

mod blobs;
mod records;
mod source;
mod summary;

use std::path::{Path, PathBuf};

use crate::config::{MetadataBackend, Settings};
use crate::farm::{PostgresBuildQueue, QueueError};
use crate::metadata::{
    IndexError, MirrorStoreError, PostgresIndexStore, PostgresMirrorStore, SledMirrorStore,
    SledOpenError,
};
use crate::pypi::Sha256Digest;
use crate::storage::{BlobStore, StorageError};

pub use summary::Summary;

/// The installation to move.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its `data_dir`, holding `index.sled`.
    pub data_dir: PathBuf,
    /// Its `storage_url`, when it was not the default `<data_dir>/blobs`.
    pub storage_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("cannot move to these settings: {0}")]
    Destination(String),
    #[error("{path} holds no edelweiss database (no index.sled/db in it)")]
    NoDatabase { path: PathBuf },
    #[error("the database in {path} is held by a running edelweiss: stop it, then move its data")]
    InUse { path: PathBuf },
    #[error("cannot copy the old database {path}: {source}")]
    Copy {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the copy of the old database: {0}")]
    Open(#[from] SledOpenError),
    #[error(transparent)]
    Postgres(#[from] crate::postgres::OpenError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "blob {digest} in {store} is corrupt: its bytes hash to {actual}; it was not copied (the blobs and records copied before it stay)"
    )]
    CorruptSource {
        digest: Sha256Digest,
        actual: Sha256Digest,
        store: String,
    },
    #[error("blob {digest} in the destination {store} reads back as bytes that hash to {actual}")]
    CorruptDestination {
        digest: Sha256Digest,
        actual: Sha256Digest,
        store: String,
    },
    #[error("reading blob {digest} back from the destination failed: {source}")]
    ReadBack {
        digest: Sha256Digest,
        source: std::io::Error,
    },
    #[error("old record {key} cannot be moved: {reason}")]
    Record { key: String, reason: String },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Mirror(#[from] MirrorStoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Moves `source` into the stores `settings` name (PostgreSQL, and a blob store other
/// than the source's), verifying every blob; what was copied and what was there already.
pub async fn move_installation(settings: &Settings, source: &Source) -> Result<Summary, MoveError> {
    let metadata_url = match settings.metadata_backend() {
        MetadataBackend::Postgres(url) => url,
        _ => {
            return Err(MoveError::Destination(
                "metadata_url must name the PostgreSQL database to move the records into".into(),
            ));
        }
    };
    let source_store_url = source_storage_url(source)?;
    let destination_url = destination_storage_url(settings, &source_store_url)?;
    if inside(&destination_url, &source.data_dir) {
        return Err(MoveError::Destination(format!(
            "storage_url {destination_url} is inside {}, which the move leaves as it is",
            source.data_dir.display()
        )));
    }
    let copy = source::SourceCopy::open(&source.data_dir, settings.limits.database_cache_bytes)?;
    let destination_store = BlobStore::open(&destination_url)?;
    let pool = crate::postgres::open_shared(&metadata_url).await?;
    let mut summary = Summary::default();
    if let Some(source_store) = open_source_store(&source_store_url)? {
        let stores = blobs::Stores {
            source: &source_store,
            source_url: &source_store_url,
            destination: &destination_store,
            destination_url: &destination_url,
        };
        summary.blobs = blobs::copy_all(&stores).await?;
    }
    let database = copy.index.database();
    summary.index = records::copy_index(&copy.index, &PostgresIndexStore::on(pool.clone())).await?;
    summary.mirror = records::copy_mirror(
        &SledMirrorStore::open(database)?,
        &PostgresMirrorStore::on(pool.clone()),
    )
    .await?;
    summary.builds = records::copy_builds(
        &crate::farm::SledBuildQueue::open(database)?,
        &PostgresBuildQueue::on(pool),
    )
    .await?;
    Ok(summary)
}

fn file_url(path: &Path) -> Result<String, MoveError> {
    let absolute = std::path::absolute(path)
        .map_err(|error| MoveError::Destination(format!("{}: {error}", path.display())))?;
    url::Url::from_directory_path(&absolute)
        .map(String::from)
        .map_err(|()| MoveError::Destination(format!("{} is not a usable path", path.display())))
}

fn source_storage_url(source: &Source) -> Result<String, MoveError> {
    match &source.storage_url {
        Some(url) => Ok(url.clone()),
        None => file_url(&source.data_dir.join("blobs")),
    }
}

/// `storage_url`, unless it is unset (a data directory's own store) or the source's.
fn destination_storage_url(settings: &Settings, source_url: &str) -> Result<String, MoveError> {
    let destination = settings.storage_url.clone();
    if destination.is_empty() {
        return Err(MoveError::Destination(
            "storage_url must name the blob store to move the blobs into (s3://bucket/prefix or file://…)".into(),
        ));
    }
    if same_store(&destination, source_url) {
        return Err(MoveError::Destination(format!(
            "storage_url {destination} is the store the blobs are moved from"
        )));
    }
    Ok(destination)
}

/// The directory of a `file://` store, through links where it exists.
fn local_directory(url: &str) -> Option<PathBuf> {
    let path = url::Url::parse(url).ok()?.to_file_path().ok()?;
    Some(path.canonicalize().unwrap_or(path))
}

/// Whether `url` is a `file://` store inside `dir`.
fn inside(url: &str, dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    local_directory(url).is_some_and(|path| path.starts_with(dir))
}

/// Whether two store URLs name one store: the same directory (through links) or the same
/// bucket and prefix.
fn same_store(first: &str, second: &str) -> bool {
    match (local_directory(first), local_directory(second)) {
        (Some(first), Some(second)) => first == second,
        _ => first.trim_end_matches('/') == second.trim_end_matches('/'),
    }
}

/// The source's blob store, or none for a data directory that never stored a blob (opening
/// a `file://` store would create its directory in the old data directory).
fn open_source_store(url: &str) -> Result<Option<BlobStore>, MoveError> {
    if local_directory(url).is_some_and(|path| !path.is_dir()) {
        return Ok(None);
    }
    Ok(Some(BlobStore::open(url)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_directory_by_two_spellings_is_one_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("x")).unwrap();
        let plain = file_url(dir.path()).unwrap();
        let dotted = file_url(&dir.path().join("x/..")).unwrap();
        assert!(same_store(&plain, &dotted));
        assert!(same_store("s3://bucket/prefix/", "s3://bucket/prefix"));
        assert!(!same_store("s3://bucket/prefix", "s3://bucket/other"));
        assert!(!same_store(&plain, "s3://bucket/prefix"));
    }

    #[test]
    fn a_destination_inside_the_old_directory_is_refused() {
        let old = tempfile::tempdir().unwrap();
        let within = file_url(&old.path().join("moved-blobs")).unwrap();
        let beside = file_url(&old.path().with_extension("moved")).unwrap();
        assert!(inside(&within, old.path()));
        assert!(!inside(&beside, old.path()));
        assert!(!inside("s3://bucket/prefix", old.path()));
    }
}
