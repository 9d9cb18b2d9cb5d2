//! The remote-worker side: leasing a build with what it needs, renewing the lease, and
//! hearing a result only from the lease holder.

use std::path::PathBuf;

use super::wheelhouse::fetchable;
use super::{BuildError, BuildService};
use crate::farm::queue::{QueueError, check_holder};
use crate::farm::records::{BuildRecord, BuildState, Failure, LeaseHolder};
use crate::farm::wire::{Assignment, Recorded};
use crate::pypi::Target;

/// What a remote worker reports: a tested wheel (spooled here, and its filename) or a
/// failure, and the log.
pub struct RemoteReport {
    pub outcome: Result<(PathBuf, String), Failure>,
    pub log: Vec<u8>,
}

impl BuildService {
    /// A remote worker asks for work: the oldest queued build for its targets, with the
    /// recipe to run it with.
    pub async fn lease_remote(
        &self,
        holder: &LeaseHolder,
        targets: &[Target],
    ) -> Result<Option<Assignment>, BuildError> {
        let leased = self
            .queue
            .lease(holder, targets, self.lease_seconds)
            .await?;
        let Some(build) = leased else {
            return Ok(None);
        };
        tracing::info!(build = %build.id, worker = holder.worker.as_str(), attempt = build.attempts, "build leased to a remote worker");
        self.changed.notify_waiters();
        let (builders, recipe) = self.plan(&build)?;
        let wheelhouse = match self.inputs(&build, &recipe, &builders.target).await {
            Ok(files) => files,
            Err(failure) => {
                let log = format!("===== edelweiss: {}\n", failure.message).into_bytes();
                self.record_outcome(&build, holder, Err(failure), &log)
                    .await?;
                return Ok(None);
            }
        };
        let digests = fetchable(&build, &wheelhouse);
        let queue = &self.queue;
        let build = queue.grant_wheelhouse(&build.id, holder, &digests).await?;
        Ok(Some(Assignment {
            builder: builders.builder_for(&recipe),
            runtime: builders.runtime,
            build,
            recipe,
            wheelhouse,
            lease_seconds: self.lease_seconds,
        }))
    }

    pub async fn heartbeat_remote(&self, id: &str, holder: &LeaseHolder) -> Result<(), BuildError> {
        Ok(self.queue.heartbeat(id, holder, self.lease_seconds).await?)
    }

    /// A remote worker's result. Only the worker holding the lease, with the credential it
    /// took the lease with, is heard; a wheel of the same name sent after one was recorded
    /// (a retry, or a worker that lost its lease and finished anyway) is acknowledged as
    /// `Recorded::Already` and changes nothing.
    pub async fn report_remote(
        &self,
        id: &str,
        holder: &LeaseHolder,
        report: RemoteReport,
    ) -> Result<(BuildRecord, Recorded), BuildError> {
        let record = self
            .queue
            .get(id)
            .await?
            .ok_or_else(|| QueueError::NotFound { id: id.to_string() })?;
        let same_wheel = matches!((&record.wheel, &report.outcome), (Some(wheel), Ok((_, filename))) if *filename == wheel.filename);
        if record.state == BuildState::Succeeded && same_wheel {
            return Ok((record, Recorded::Already));
        }
        check_holder(&record, holder)?;
        let outcome = match report.outcome {
            Ok((path, filename)) => match crate::farm::steps::check_wheel(&filename, &record) {
                Ok(_) => self.pipeline.ingest(&path, &filename).await,
                Err(failure) => Err(failure),
            },
            Err(failure) => Err(failure),
        };
        self.record_outcome(&record, holder, outcome, &report.log)
            .await?;
        let recorded = self.queue.get(id).await?.unwrap_or(record);
        Ok((recorded, Recorded::Now))
    }
}
