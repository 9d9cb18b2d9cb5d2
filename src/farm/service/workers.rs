//! The in-process worker pool: each worker leases a queued build, keeps its lease alive
//! while the pipeline runs it, and records the outcome; a sweeper re-queues builds whose
//! lease expired and moves waiting builds on.

use std::sync::Arc;
use std::time::Duration;

use super::{BuildError, BuildService};
use crate::farm::fetcher::Fetcher;
use crate::farm::pipeline::PipelineResult;
use crate::farm::queue::BuildQueue;
use crate::farm::records::{BuildRecord, LeaseHolder};

/// Between passes of the sweeper, and the longest an idle worker sleeps.
const SWEEP: Duration = Duration::from_secs(2);

impl BuildService {
    /// Takes one queued build and runs it; false when the queue had nothing for us.
    pub async fn work_once(&self, worker: &str) -> Result<bool, BuildError> {
        let holder = LeaseHolder::local(worker);
        let targets = self.targets();
        let leased = self.queue.lease(&holder, &targets, self.lease_seconds);
        let Some(record) = leased.await? else {
            return Ok(false);
        };
        tracing::info!(build = %record.id, worker, attempt = record.attempts, "build started");
        self.changed.notify_waiters();
        let result = self.run_leased(&record, &holder).await;
        self.changed.notify_waiters();
        result.map(|()| true)
    }

    async fn run_leased(
        &self,
        record: &BuildRecord,
        holder: &LeaseHolder,
    ) -> Result<(), BuildError> {
        let (builders, recipe) = self.plan(record)?;
        let heartbeat = tokio::spawn(keep_lease(
            self.queue.clone(),
            record.id.clone(),
            holder.clone(),
            self.lease_seconds,
        ));
        let wheelhouse = match self.inputs(record, &recipe, &builders.target).await {
            Ok(files) => self.wheelhouse_bytes(&files).await,
            Err(failure) => Err(failure),
        };
        let fetcher = Fetcher {
            wheels: self.requirements.index_wheels(&builders.target),
            recipe_pins: recipe.build_requires.clone(),
        };
        let result = match wheelhouse {
            Ok(wheelhouse) => {
                self.pipeline
                    .run(
                        record,
                        &builders,
                        &recipe,
                        &wheelhouse,
                        Some(&fetcher),
                        &self.crate_registry,
                    )
                    .await
            }
            Err(failure) => PipelineResult {
                log: format!("===== edelweiss: {}\n", failure.message).into_bytes(),
                outcome: Err(failure),
            },
        };
        heartbeat.abort();
        self.record_outcome(record, holder, result.outcome, &result.log)
            .await
    }

    /// Re-queues whatever a previous process left running (of a shared queue, only the
    /// builds whose lease has ended), then runs `count` workers and
    /// the sweeper for the life of the process. The re-queue is done before this returns, so
    /// no lease taken after start-up (a remote worker's included) is mistaken for a leftover.
    pub async fn spawn_workers(self: &Arc<Self>, count: usize, instance: &str) {
        match self.queue.requeue_abandoned(self.queue.exclusive()).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(?ids, "re-queued builds interrupted by a restart")
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "could not re-queue interrupted builds"),
        }
        for number in 0..count {
            tokio::spawn(self.clone().work(format!("{instance}-local-{number}")));
        }
        let sweeper = self.clone();
        tokio::spawn(async move { sweeper.sweep().await });
    }

    /// One in-process worker, forever.
    async fn work(self: Arc<Self>, worker: String) {
        loop {
            let idle = self.changed.notified();
            match self.work_once(&worker).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => tracing::error!(%error, worker, "build worker error"),
            }
            let _ = tokio::time::timeout(SWEEP, idle).await;
        }
    }

    /// Forever: re-queues builds whose lease expired, and moves on builds that wait on
    /// others a previous process or a remote worker finished.
    async fn sweep(&self) {
        loop {
            tokio::time::sleep(SWEEP).await;
            match self.queue.requeue_abandoned(false).await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::warn!(?ids, "re-queued builds whose worker lost its lease");
                    self.changed.notify_waiters();
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "could not re-queue expired leases"),
            }
            self.wake_waiting().await;
        }
    }
}

/// Renews a lease every third of its length until aborted.
async fn keep_lease(
    queue: Arc<dyn BuildQueue>,
    id: String,
    holder: LeaseHolder,
    lease_seconds: u64,
) {
    loop {
        tokio::time::sleep(Duration::from_secs((lease_seconds / 3).max(1))).await;
        if let Err(error) = queue.heartbeat(&id, &holder, lease_seconds).await {
            tracing::warn!(build = %id, %error, "lost the build's lease");
        }
    }
}
