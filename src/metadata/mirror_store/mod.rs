//! What the mirror keeps, behind one trait: upstream project pages with their validators;
//! for every upstream file with a sha256, where it comes from (one record per page:
//! `page_origins`); and for every upstream wheel stored here, the METADATA read from it.
//! `SledMirrorStore` is the embedded backend, beside the index; `PostgresMirrorStore` the
//! one that replicas share; one conformance suite (`conformance`) holds both to the same
//! behaviour. Beside the records, the store hands out fetch locks (`fetch_lock`): the
//! processes that share the records then fetch each page and file from the upstream once.

mod advisory;
mod fetch_lock;
mod page_origins;
mod postgres;
mod records;
mod sled;

#[cfg(test)]
mod conformance;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::pypi::{DistFilename, PackageName, Sha256Digest};

pub use self::postgres::{MIGRATIONS as POSTGRES_MIGRATIONS, PostgresMirrorStore};
pub use self::sled::SledMirrorStore;
pub use fetch_lock::{FetchGuard, FetchKey, FetchLockError};
pub use records::{CachedPage, ExtractedMetadata, Extraction, Revalidation, UpstreamFile};

/// A mirror store's failures, the same for every backend: a backend folds its own errors
/// into `Unavailable` (worth another try) or `Corrupt` (a record that does not decode).
#[derive(Debug, thiserror::Error)]
pub enum MirrorStoreError {
    #[error("the mirror's records are unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("mirror record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// The mirror's records. Each call is atomic: a page and its files' origins are written
/// together, and a page for one project never changes another's.
///
/// The fetch lock is here rather than in a trait of its own because it is only as good as
/// its tie to the records: whoever takes it re-reads them to learn what the previous holder
/// stored, so both must be shared by the same processes, which one store guarantees.
#[async_trait]
pub trait MirrorStore: Send + Sync {
    async fn page(&self, project: &PackageName) -> Result<Option<CachedPage>, MirrorStoreError>;

    /// The right to fetch `key` from the upstream, once every other process that shares
    /// these records has released it, waiting `wait` at most (then `TimedOut`). Its holder
    /// reads the records again before fetching: the previous holder may have stored it.
    async fn fetch_lock(
        &self,
        key: &FetchKey,
        wait: Duration,
    ) -> Result<FetchGuard, FetchLockError>;

    /// Stores `page` in place of any earlier one, and with it, as one record, the origin
    /// of each of its files that has a sha256.
    async fn put_page(
        &self,
        project: &PackageName,
        page: &CachedPage,
    ) -> Result<(), MirrorStoreError>;

    /// Records that the upstream confirmed the cached page (a 304): its fetch time and
    /// validators change, its detail and origins do not. Whether a page was cached.
    async fn touch_page(
        &self,
        project: &PackageName,
        revalidation: &Revalidation,
    ) -> Result<bool, MirrorStoreError>;

    /// Where the upstream file `filename` with `digest` comes from: the origins of the
    /// page of the project its name names (a page keeps only its own project's files).
    async fn upstream_file(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<UpstreamFile>, MirrorStoreError>;

    /// Records what reading METADATA from the stored wheel `filename` gave, in place of
    /// any earlier record.
    async fn put_extracted(
        &self,
        project: &PackageName,
        filename: &str,
        record: &ExtractedMetadata,
    ) -> Result<(), MirrorStoreError>;

    /// The record for `filename`, if it was read from the wheel with `wheel_sha256`: one
    /// for other bytes under the same name says nothing about these.
    async fn extracted(
        &self,
        project: &PackageName,
        filename: &str,
        wheel_sha256: Sha256Digest,
    ) -> Result<Option<ExtractedMetadata>, MirrorStoreError>;

    /// Every extraction recorded for `project`, by filename, whatever bytes each was read
    /// from (a page compares them with the digests it lists).
    async fn extracted_for_project(
        &self,
        project: &PackageName,
    ) -> Result<HashMap<String, ExtractedMetadata>, MirrorStoreError>;
}

/// The project whose page lists `filename`, if it names a distribution.
fn project_of(filename: &str) -> Option<PackageName> {
    filename
        .parse::<DistFilename>()
        .ok()
        .map(|parsed| parsed.name().clone())
}

/// Reads `filename`'s origin from `record`, the origins of `project`'s page.
fn find_origin(
    project: &PackageName,
    record: &[u8],
    digest: Sha256Digest,
    filename: &str,
) -> Result<Option<UpstreamFile>, MirrorStoreError> {
    page_origins::find(record, digest, filename).map_err(|error| MirrorStoreError::Corrupt {
        key: format!("upstream origins of {project}"),
        reason: error.to_string(),
    })
}
