//! The records of builds behind one trait: requests deduplicated by build key, leases with
//! expiry, results recorded once and only from the lease holder, builds that wait for
//! others. `SledBuildQueue` is the embedded backend, `PostgresBuildQueue` the one that
//! replicas share; one conformance suite (`conformance`) holds every backend to the same
//! behaviour.

mod postgres;
mod schedule;
mod sled;
mod transitions;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod memory;

use async_trait::async_trait;

use super::records::{BuildRecord, BuildRequirements, BuiltWheel, Failure, Holding, LeaseHolder};
use crate::auth::CredentialId;
use crate::farm::BuildKey;
use crate::pypi::{Sha256Digest, Target};

pub use self::postgres::{MIGRATIONS as POSTGRES_MIGRATIONS, PostgresBuildQueue};
pub use self::sled::SledBuildQueue;
pub use schedule::{Needs, Outcome, needs_of, record_result, waits_for_any};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// The key already has a final result: nothing will run.
    Cached,
    /// A build for the key is queued or running: this request joins it.
    Joined,
    /// A new build was queued.
    Queued,
}

/// What `release` did with a waiting build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    Queued(BuildRecord),
    /// Another build holds the key: the waiting build follows it.
    Existing(BuildRecord),
    /// The build is no longer waiting (settled or released by another task).
    Gone,
}

/// A queue's failures, the same for every backend: a backend folds its own errors into
/// `Unavailable` (worth another try) or `Corrupt` (a record that does not decode).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The build is not running under this worker's lease: a late or duplicate result.
    #[error("build {id} is not leased by {worker}; its result is refused")]
    Conflict { id: String, worker: String },
    #[error("build {id} is leased with another credential; nothing changed")]
    OtherCredential { id: String },
    #[error("no build {id}")]
    NotFound { id: String },
    #[error("the build queue is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("build record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// The build queue. Every change is atomic: concurrent requests for one key make one
/// build, and of two workers only the lease holder records a result.
#[async_trait]
pub trait BuildQueue: Send + Sync {
    /// Queues `candidate` unless its key has a final result or a live build. A candidate in
    /// `Waiting` is recorded but joins the queue only through `release`; one already
    /// `Failed` is recorded as it is.
    async fn request(&self, candidate: BuildRecord)
    -> Result<(BuildRecord, Requested), QueueError>;

    /// Takes the oldest queued build whose target is in `targets` (any target when empty)
    /// for `holder`, counting the attempt.
    async fn lease(
        &self,
        holder: &LeaseHolder,
        targets: &[Target],
        lease_seconds: u64,
    ) -> Result<Option<BuildRecord>, QueueError>;

    /// Extends the holder's lease by `lease_seconds` from now.
    async fn heartbeat(
        &self,
        id: &str,
        holder: &LeaseHolder,
        lease_seconds: u64,
    ) -> Result<(), QueueError>;

    /// Records a result, only from the worker that holds the lease: a late or duplicate
    /// result is refused, never recorded twice.
    async fn finish(
        &self,
        id: &str,
        holder: &LeaseHolder,
        outcome: Result<BuiltWheel, Failure>,
        log_sha256: Option<Sha256Digest>,
    ) -> Result<BuildRecord, QueueError>;

    /// Records the wheelhouse blobs the holder of a fresh lease may fetch.
    async fn grant_wheelhouse(
        &self,
        id: &str,
        holder: &LeaseHolder,
        wheelhouse: &[Sha256Digest],
    ) -> Result<BuildRecord, QueueError>;

    /// Whether `digest` is an input of a build running under a lease taken with
    /// `credential`: the only blobs a remote worker may fetch.
    async fn lets_fetch(
        &self,
        credential: &CredentialId,
        digest: Sha256Digest,
    ) -> Result<bool, QueueError>;

    /// A running build held by `holder` stops to wait for the builds `needs` (a requirement
    /// it found had no wheel); it is queued again by `release`.
    async fn wait_on(
        &self,
        id: &str,
        holder: &LeaseHolder,
        needs: Vec<String>,
        log_sha256: Option<Sha256Digest>,
    ) -> Result<BuildRecord, QueueError>;

    /// Changes what a waiting build waits for.
    async fn set_needs(&self, id: &str, needs: Vec<String>) -> Result<(), QueueError>;

    /// Ends a waiting build without running it: a requirement could not be built, or the
    /// same build (by key) already has this outcome. `None` when it no longer waits.
    async fn settle(
        &self,
        id: &str,
        outcome: Result<BuiltWheel, Failure>,
    ) -> Result<Option<BuildRecord>, QueueError>;

    /// Queues a waiting build whose requirements now resolve, under the key they give it.
    /// When that key already belongs to another live or final build, nothing changes and
    /// that build is returned: the waiting one takes its outcome instead of building again.
    async fn release(
        &self,
        id: &str,
        key: &BuildKey,
        build_requirements: Option<BuildRequirements>,
    ) -> Result<Released, QueueError>;

    /// Builds waiting for others.
    async fn waiting(&self) -> Result<Vec<BuildRecord>, QueueError>;

    /// Puts a running build back in the queue (an infrastructure failure to retry, or a
    /// lease that expired); nothing happens to a build that is not running.
    async fn requeue(&self, id: &str) -> Result<(), QueueError>;

    /// Re-queues running builds whose lease has expired (a worker died), or every running
    /// build (`all`, at startup of an `exclusive` queue: no worker of a crashed process
    /// survives it); their ids.
    async fn requeue_abandoned(&self, all: bool) -> Result<Vec<String>, QueueError>;

    /// Whether this process is the queue's only user (an embedded database), so a build
    /// found running at start-up was left by a previous run. A shared queue's running
    /// builds may belong to other replicas: they are re-queued only when their lease ends.
    fn exclusive(&self) -> bool {
        false
    }

    async fn get(&self, id: &str) -> Result<Option<BuildRecord>, QueueError>;

    /// Every build, newest first.
    async fn list(&self) -> Result<Vec<BuildRecord>, QueueError>;

    /// A failed infrastructure attempt past the retry budget becomes final for this id
    /// (but not for the key: a later request builds again).
    async fn give_up(
        &self,
        id: &str,
        holder: &LeaseHolder,
        message: String,
        log_sha256: Option<Sha256Digest>,
    ) -> Result<BuildRecord, QueueError> {
        self.finish(
            id,
            holder,
            Err(Failure::infrastructure(message)),
            log_sha256,
        )
        .await
    }
}

/// Refuses `holder` unless it holds `record`'s lease.
pub fn check_holder(record: &BuildRecord, holder: &LeaseHolder) -> Result<(), QueueError> {
    match record.holding(holder) {
        Holding::Holds => Ok(()),
        Holding::NotLeased => Err(QueueError::Conflict {
            id: record.id.clone(),
            worker: holder.worker.clone(),
        }),
        Holding::OtherCredential => Err(QueueError::OtherCredential {
            id: record.id.clone(),
        }),
    }
}
