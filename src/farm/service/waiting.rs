//! Moving waiting builds on: queued again under a fresh key once everything they wait for
//! has succeeded, settled with the outcome of the same build (by key), or failed with the
//! reason when what they wait for failed.

use super::dependencies::{DependencyError, no_wheel_context};
use super::{BuildError, BuildService};
use crate::farm::queue::{Needs, Released, needs_of};
use crate::farm::records::{BuildRecord, BuildState, BuiltWheel, Failure};

impl BuildService {
    /// Moves every waiting build on. Errors are logged: the next pass tries again.
    pub async fn wake_waiting(&self) {
        let waiting = match self.queue.waiting().await {
            Ok(waiting) => waiting,
            Err(error) => {
                tracing::error!(%error, "could not list the builds that wait");
                return;
            }
        };
        for record in waiting {
            if let Err(error) = self.wake(&record).await {
                tracing::warn!(build = %record.id, %error, "could not move a waiting build on");
            }
        }
    }

    pub(super) async fn wake(&self, record: &BuildRecord) -> Result<(), BuildError> {
        match needs_of(&*self.queue, record).await? {
            Needs::Pending => Ok(()),
            Needs::Failed(failure) => self.settle(record, Err(failure)).await,
            Needs::Built => self.queue_again(record).await,
        }
    }

    /// Ends a waiting build without running it. Every failure here is made of text already
    /// made safe: a stored failure, names and versions that parsed, `no_wheel_context`.
    async fn settle(
        &self,
        record: &BuildRecord,
        outcome: Result<BuiltWheel, Failure>,
    ) -> Result<(), BuildError> {
        let Some(settled) = self.queue.settle(&record.id, outcome).await? else {
            return Ok(());
        };
        match &settled.failure {
            Some(failure) => {
                tracing::warn!(build = %settled.id, kind = ?failure.kind, reason = %failure.message, "build failed")
            }
            None => {
                tracing::info!(build = %settled.id, "build took the outcome of the same build")
            }
        }
        self.changed.notify_waiters();
        Ok(())
    }

    /// Everything `record` waited for is built: its requirements resolve again (another
    /// may still lack a wheel) and it is queued under the key they give it.
    async fn queue_again(&self, record: &BuildRecord) -> Result<(), BuildError> {
        let (builders, recipe) = self.plan(record)?;
        let target = builders.target;
        let sdist = (record.sdist_filename.clone(), record.sdist_sha256);
        let requirements = match self.resolve_build_requirements {
            true => Some(
                self.requirements
                    .for_sdist(&sdist, &target, &recipe)
                    .await?,
            ),
            false => record.build_requirements.clone(),
        };
        if let Some(missing) = requirements.as_ref().and_then(|r| r.missing.clone()) {
            let context = no_wheel_context(&missing, &target);
            return match self
                .build_requirement(
                    &missing.requirement,
                    &target,
                    std::slice::from_ref(&record.project),
                )
                .await
            {
                Ok(dependency) if dependency.state == BuildState::Succeeded => {
                    let failure = Failure::package(format!(
                        "{context}, even after {} {} was built",
                        dependency.project, dependency.version
                    ));
                    self.settle(record, Err(failure)).await
                }
                Ok(dependency) => Ok(self
                    .queue
                    .set_needs(&record.id, vec![dependency.id])
                    .await?),
                Err(DependencyError::Build(error)) => Err(error),
                Err(error) => self.settle(record, Err(error.failure(&context))).await,
            };
        }
        let crates = record.crates.as_ref();
        let (key, _) = self
            .key_of(&sdist, &target, &recipe, requirements.as_ref(), crates)
            .await?;
        match self.queue.release(&record.id, &key, requirements).await? {
            Released::Queued(queued) => {
                tracing::info!(build = %queued.id, project = %queued.project, version = %queued.version, "build queued after the builds it waited for");
                self.changed.notify_waiters();
            }
            Released::Existing(existing) if existing.is_final() => {
                self.settle(record, outcome_of(&existing)).await?;
            }
            Released::Existing(existing) => {
                self.queue.set_needs(&record.id, vec![existing.id]).await?;
            }
            Released::Gone => {}
        }
        Ok(())
    }
}

/// The result of a finished build, for a waiting build that takes it.
fn outcome_of(finished: &BuildRecord) -> Result<BuiltWheel, Failure> {
    match (&finished.wheel, &finished.failure) {
        (Some(wheel), _) => Ok(wheel.clone()),
        (None, Some(failure)) => Err(failure.clone()),
        (None, None) => Err(Failure::package(format!(
            "build {} ended without a result",
            finished.id
        ))),
    }
}
