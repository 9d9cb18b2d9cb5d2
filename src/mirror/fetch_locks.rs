//! The mirror's side of `MirrorStore::fetch_lock`, taken inside the single-flight jobs: one
//! fetch per key in a process comes first, one per key across the processes that share the
//! records second. A job that takes the lock reads the records again before it fetches.
//!
//! Waiting is bounded by `mirror.page_timeout_seconds`. Past it, or with every lock
//! connection in use, the job fetches without the lock: the lock only saves upstream
//! requests, and a client should not fail because another replica's fetch is slow (a large
//! file can take longer than a page). Records that are unavailable fail the fetch, as they
//! would when it stores what it fetched.

use std::sync::Arc;
use std::time::Duration;

use crate::metadata::mirror_store::{FetchGuard, FetchKey, FetchLockError};
use crate::metadata::{MirrorStore, MirrorStoreError};

#[derive(Clone)]
pub struct FetchLocks {
    records: Arc<dyn MirrorStore>,
    wait: Duration,
}

impl FetchLocks {
    pub fn new(records: Arc<dyn MirrorStore>, wait: Duration) -> Self {
        Self { records, wait }
    }

    /// The lock on fetching `key`, or a guard holding nothing when waiting for it failed
    /// in a way worth fetching anyway.
    pub async fn take(&self, key: FetchKey) -> Result<FetchGuard, MirrorStoreError> {
        match self.records.fetch_lock(&key, self.wait).await {
            Ok(guard) => Ok(guard),
            Err(FetchLockError::Store(error)) => Err(error),
            Err(error) => {
                tracing::warn!(%error, "fetching from the upstream without the fetch lock");
                Ok(FetchGuard::in_process())
            }
        }
    }
}
