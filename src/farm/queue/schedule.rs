//! Scheduling decisions that need only the queue: retry or record a result, whether what a
//! waiting build needs has ended, and following waits to find a cycle.

use std::collections::BTreeSet;

use super::{BuildQueue, QueueError};
use crate::farm::records::{
    BuildRecord, BuildState, BuiltWheel, Failure, FailureKind, LeaseHolder,
};
use crate::pypi::{PackageName, Sha256Digest};

/// Builds looked at when following what a build waits for.
const MAX_WALK: usize = 1_000;

/// What became of a leased build's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An infrastructure failure within the attempt budget: queued again.
    Requeued,
    Finished(Box<BuildRecord>),
}

/// Records a leased build's result: an infrastructure failure within `max_attempts` goes
/// back to the queue; anything else is final for this build.
pub async fn record_result(
    queue: &dyn BuildQueue,
    record: &BuildRecord,
    holder: &LeaseHolder,
    outcome: Result<BuiltWheel, Failure>,
    log_sha256: Option<Sha256Digest>,
    max_attempts: u32,
) -> Result<Outcome, QueueError> {
    match outcome {
        Err(failure)
            if failure.kind == FailureKind::Infrastructure && record.attempts < max_attempts =>
        {
            super::check_holder(
                &queue
                    .get(&record.id)
                    .await?
                    .unwrap_or_else(|| record.clone()),
                holder,
            )?;
            queue.requeue(&record.id).await?;
            Ok(Outcome::Requeued)
        }
        Err(failure) if failure.kind == FailureKind::Infrastructure => {
            let finished = queue
                .give_up(&record.id, holder, failure.message, log_sha256)
                .await?;
            Ok(Outcome::Finished(Box::new(finished)))
        }
        outcome => {
            let finished = queue.finish(&record.id, holder, outcome, log_sha256);
            Ok(Outcome::Finished(Box::new(finished.await?)))
        }
    }
}

/// Where the builds a waiting build needs stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needs {
    /// One of them is still waiting, queued or running.
    Pending,
    /// One of them failed (or is gone): the waiting build fails with this.
    Failed(Failure),
    /// All of them succeeded: the waiting build may be queued again.
    Built,
}

/// Where the builds `record` waits for stand, in the order it lists them.
pub async fn needs_of(queue: &dyn BuildQueue, record: &BuildRecord) -> Result<Needs, QueueError> {
    for id in &record.needs {
        match queue.get(id).await? {
            None => {
                return Ok(Needs::Failed(Failure::infrastructure(format!(
                    "build {id}, which this build waited for, is gone"
                ))));
            }
            Some(needed) if needed.state == BuildState::Failed => {
                return Ok(Needs::Failed(failure_of_requirement(&needed)));
            }
            Some(needed) if !needed.is_finished() => return Ok(Needs::Pending),
            Some(_) => {}
        }
    }
    Ok(Needs::Built)
}

/// A waiting build's failure when `needed` failed: final when `needed`'s failure is.
fn failure_of_requirement(needed: &BuildRecord) -> Failure {
    let reason = needed
        .failure
        .as_ref()
        .map(|failure| failure.message.as_str())
        .unwrap_or("no reason recorded");
    let message = format!(
        "its requirement {} {} could not be built: {reason}",
        needed.project, needed.version
    );
    match needed.is_final() {
        true => Failure::package(message),
        false => Failure::infrastructure(message),
    }
}

/// Follows what `start` waits for, transitively; the projects on the way to the first
/// build that `stops_at` accepts, or none.
pub async fn waits_for_any(
    queue: &dyn BuildQueue,
    start: &BuildRecord,
    stops_at: impl Fn(&BuildRecord) -> bool,
) -> Result<Option<Vec<PackageName>>, QueueError> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![(start.clone(), vec![start.project.clone()])];
    while let Some((record, path)) = stack.pop() {
        if !seen.insert(record.id.clone()) || seen.len() > MAX_WALK {
            continue;
        }
        for id in &record.needs {
            let Some(needed) = queue.get(id).await? else {
                continue;
            };
            let mut path = path.clone();
            path.push(needed.project.clone());
            if stops_at(&needed) {
                return Ok(Some(path));
            }
            if needed.state == BuildState::Waiting {
                stack.push((needed, path));
            }
        }
    }
    Ok(None)
}
