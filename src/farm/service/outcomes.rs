//! Recording what a leased build came to, from an in-process or a remote worker: its log
//! stored, an infrastructure failure retried within the attempt budget, a missing wheel
//! turned into a wait for its build, anything else final.

use super::{BuildError, BuildService};
use crate::farm::queue::{Outcome, record_result};
use crate::farm::records::{BuildRecord, BuiltWheel, Failure, FailureKind, LeaseHolder};
use crate::pypi::Sha256Digest;
use crate::storage::PutOutcome;

/// A failure as it is stored and shown: its message may carry a worker's words or a name a
/// build made up, so it is escaped and bounded.
fn sanitized(failure: Failure) -> Failure {
    Failure {
        message: crate::untrusted::sanitize(&failure.message, crate::untrusted::MESSAGE_CHARS),
        ..failure
    }
}

impl BuildService {
    /// Records a leased build's outcome, then moves on the builds that wait for it.
    pub(super) async fn record_outcome(
        &self,
        record: &BuildRecord,
        holder: &LeaseHolder,
        outcome: Result<BuiltWheel, Failure>,
        log: &[u8],
    ) -> Result<(), BuildError> {
        let outcome = outcome.map_err(sanitized);
        let log_sha256 = self.store_log(log).await;
        match outcome {
            Err(failure) if failure.kind == FailureKind::MissingWheel => {
                self.wait_for_missing(record, holder, failure, log_sha256)
                    .await?;
            }
            outcome => {
                let reason = outcome
                    .as_ref()
                    .err()
                    .map(|failure| failure.message.clone());
                let queue = &*self.queue;
                let result = record_result(
                    queue,
                    record,
                    holder,
                    outcome,
                    log_sha256,
                    self.max_attempts,
                );
                match result.await? {
                    Outcome::Requeued => {
                        tracing::warn!(build = %record.id, reason = %reason.unwrap_or_default(), "infrastructure failure; build re-queued")
                    }
                    Outcome::Finished(finished) => log_finished(&finished),
                }
            }
        }
        self.wake_waiting().await;
        self.changed.notify_waiters();
        Ok(())
    }

    async fn store_log(&self, log: &[u8]) -> Option<Sha256Digest> {
        let digest = Sha256Digest::of(log);
        let bytes = bytes::Bytes::copy_from_slice(log);
        match self.pipeline.store.put_bytes(digest, bytes).await {
            Ok(PutOutcome::Stored | PutOutcome::AlreadyPresent) => Some(digest),
            Err(error) => {
                tracing::error!(%error, "could not store a build log");
                None
            }
        }
    }
}

fn log_finished(finished: &BuildRecord) {
    match &finished.failure {
        None => {
            tracing::info!(build = %finished.id, wheel = ?finished.wheel.as_ref().map(|wheel| &wheel.filename), "build succeeded")
        }
        Some(failure) => {
            tracing::warn!(build = %finished.id, kind = ?failure.kind, reason = %failure.message, "build failed")
        }
    }
}
