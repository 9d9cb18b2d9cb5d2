//! How a build record changes at each step of its life, the same for every backend: a
//! backend reads the record, checks the step applies, applies one of these and writes it
//! back atomically.

use crate::farm::BuildKey;
use crate::farm::records::{
    BuildRecord, BuildRequirements, BuildState, BuiltWheel, Failure, Lease, LeaseHolder, timestamp,
    unix_now,
};
use crate::pypi::Sha256Digest;

/// A queued build taken by `holder`: one more attempt.
pub fn lease(record: &mut BuildRecord, holder: &LeaseHolder, lease_seconds: u64) {
    record.state = BuildState::Running;
    record.lease = Some(Lease {
        worker: holder.worker.clone(),
        expires_at: unix_now() + lease_seconds,
        credential: holder.credential.clone(),
        wheelhouse: Vec::new(),
    });
    record.attempts += 1;
    record.started_at = Some(timestamp());
}

pub fn heartbeat(record: &mut BuildRecord, lease_seconds: u64) {
    if let Some(lease) = record.lease.as_mut() {
        lease.expires_at = unix_now() + lease_seconds;
    }
}

/// A leased build's result.
pub fn finish(
    record: &mut BuildRecord,
    outcome: &Result<BuiltWheel, Failure>,
    log_sha256: Option<Sha256Digest>,
) {
    record.lease = None;
    record.finished_at = Some(timestamp());
    record.log_sha256 = log_sha256;
    match outcome {
        Ok(wheel) => {
            record.state = BuildState::Succeeded;
            record.wheel = Some(wheel.clone());
            record.failure = None;
        }
        Err(failure) => {
            record.state = BuildState::Failed;
            record.failure = Some(failure.clone());
        }
    }
}

pub fn grant_wheelhouse(record: &mut BuildRecord, wheelhouse: &[Sha256Digest]) {
    if let Some(lease) = record.lease.as_mut() {
        lease.wheelhouse = wheelhouse.to_vec();
    }
}

/// A running build stops to wait for `needs`.
pub fn wait_on(record: &mut BuildRecord, needs: &[String], log_sha256: Option<Sha256Digest>) {
    record.state = BuildState::Waiting;
    record.lease = None;
    record.needs = needs.to_vec();
    record.log_sha256 = log_sha256;
}

/// A waiting build ends without running.
pub fn settle(record: &mut BuildRecord, outcome: &Result<BuiltWheel, Failure>) {
    record.needs.clear();
    record.finished_at = Some(timestamp());
    match outcome {
        Ok(wheel) => {
            record.state = BuildState::Succeeded;
            record.wheel = Some(wheel.clone());
        }
        Err(failure) => {
            record.state = BuildState::Failed;
            record.failure = Some(failure.clone());
        }
    }
}

/// A waiting build joins the queue under `key`.
pub fn release(
    record: &mut BuildRecord,
    key: &BuildKey,
    build_requirements: &Option<BuildRequirements>,
) {
    record.key = *key;
    record.build_requirements = build_requirements.clone();
    record.state = BuildState::Queued;
    record.needs.clear();
}

/// A running build goes back to the queue.
pub fn requeue(record: &mut BuildRecord) {
    record.state = BuildState::Queued;
    record.lease = None;
}

/// Whether a running build's lease is gone (`all`: every running build counts).
pub fn is_abandoned(record: &BuildRecord, all: bool, now: u64) -> bool {
    record.state == BuildState::Running
        && (all
            || record
                .lease
                .as_ref()
                .is_none_or(|lease| lease.expires_at <= now))
}

/// Whether a request for `existing`'s key joins it or takes its result instead of
/// building again (a final result, or a build still live).
pub fn answers_key(existing: &BuildRecord) -> bool {
    existing.is_final() || !existing.is_finished()
}
