//! A build queue in memory, for unit tests of the scheduling logic: one lock over plain
//! maps, the same transitions as every backend.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{BuildQueue, QueueError, Released, Requested, check_holder, transitions};
use crate::auth::CredentialId;
use crate::farm::BuildKey;
use crate::farm::records::{
    BuildRecord, BuildRequirements, BuildState, BuiltWheel, Failure, LeaseHolder, unix_now,
};
use crate::pypi::{Sha256Digest, Target};

#[derive(Default)]
struct State {
    builds: HashMap<String, BuildRecord>,
    keys: HashMap<BuildKey, String>,
    /// Sequence → id, in request order.
    queue: BTreeMap<u64, String>,
    next_sequence: u64,
}

impl State {
    fn enqueue(&mut self, id: &str) {
        self.next_sequence += 1;
        self.queue.insert(self.next_sequence, id.to_string());
    }

    fn leased(&mut self, id: &str, holder: &LeaseHolder) -> Result<&mut BuildRecord, QueueError> {
        let record = self
            .builds
            .get_mut(id)
            .ok_or_else(|| QueueError::NotFound { id: id.to_string() })?;
        check_holder(record, holder)?;
        Ok(record)
    }

    fn waiting(&mut self, id: &str) -> Option<&mut BuildRecord> {
        self.builds
            .get_mut(id)
            .filter(|record| record.state == BuildState::Waiting)
    }
}

#[derive(Default)]
pub struct MemoryBuildQueue {
    state: Mutex<State>,
}

impl MemoryBuildQueue {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("no test panics while holding the queue")
    }
}

#[async_trait]
impl BuildQueue for MemoryBuildQueue {
    fn exclusive(&self) -> bool {
        true
    }

    async fn request(
        &self,
        candidate: BuildRecord,
    ) -> Result<(BuildRecord, Requested), QueueError> {
        let mut state = self.state();
        if let Some(existing) = state
            .keys
            .get(&candidate.key)
            .and_then(|id| state.builds.get(id))
        {
            if existing.is_final() {
                return Ok((existing.clone(), Requested::Cached));
            }
            if !existing.is_finished() {
                return Ok((existing.clone(), Requested::Joined));
            }
        }
        state.keys.insert(candidate.key, candidate.id.clone());
        if candidate.state == BuildState::Queued {
            state.enqueue(&candidate.id);
        }
        state.builds.insert(candidate.id.clone(), candidate.clone());
        Ok((candidate, Requested::Queued))
    }

    async fn lease(
        &self,
        holder: &LeaseHolder,
        targets: &[Target],
        lease_seconds: u64,
    ) -> Result<Option<BuildRecord>, QueueError> {
        let mut state = self.state();
        let found = state.queue.iter().find_map(|(sequence, id)| {
            let record = state.builds.get(id)?;
            (targets.is_empty() || targets.contains(&record.target)).then_some(*sequence)
        });
        let Some(sequence) = found else {
            return Ok(None);
        };
        let id = state.queue.remove(&sequence).expect("found above");
        let record = state.builds.get_mut(&id).expect("queued builds exist");
        transitions::lease(record, holder, lease_seconds);
        Ok(Some(record.clone()))
    }

    async fn heartbeat(
        &self,
        id: &str,
        holder: &LeaseHolder,
        lease_seconds: u64,
    ) -> Result<(), QueueError> {
        transitions::heartbeat(self.state().leased(id, holder)?, lease_seconds);
        Ok(())
    }

    async fn finish(
        &self,
        id: &str,
        holder: &LeaseHolder,
        outcome: Result<BuiltWheel, Failure>,
        log_sha256: Option<Sha256Digest>,
    ) -> Result<BuildRecord, QueueError> {
        let mut state = self.state();
        let record = state.leased(id, holder)?;
        transitions::finish(record, &outcome, log_sha256);
        Ok(record.clone())
    }

    async fn grant_wheelhouse(
        &self,
        id: &str,
        holder: &LeaseHolder,
        wheelhouse: &[Sha256Digest],
    ) -> Result<BuildRecord, QueueError> {
        let mut state = self.state();
        let record = state.leased(id, holder)?;
        transitions::grant_wheelhouse(record, wheelhouse);
        Ok(record.clone())
    }

    async fn lets_fetch(
        &self,
        credential: &CredentialId,
        digest: Sha256Digest,
    ) -> Result<bool, QueueError> {
        Ok(self
            .state()
            .builds
            .values()
            .any(|record| record.lets_fetch(credential, digest)))
    }

    async fn wait_on(
        &self,
        id: &str,
        holder: &LeaseHolder,
        needs: Vec<String>,
        log_sha256: Option<Sha256Digest>,
    ) -> Result<BuildRecord, QueueError> {
        let mut state = self.state();
        let record = state.leased(id, holder)?;
        transitions::wait_on(record, &needs, log_sha256);
        Ok(record.clone())
    }

    async fn set_needs(&self, id: &str, needs: Vec<String>) -> Result<(), QueueError> {
        if let Some(record) = self.state().waiting(id) {
            record.needs = needs;
        }
        Ok(())
    }

    async fn settle(
        &self,
        id: &str,
        outcome: Result<BuiltWheel, Failure>,
    ) -> Result<Option<BuildRecord>, QueueError> {
        let mut state = self.state();
        Ok(state.waiting(id).map(|record| {
            transitions::settle(record, &outcome);
            record.clone()
        }))
    }

    async fn release(
        &self,
        id: &str,
        key: &BuildKey,
        build_requirements: Option<BuildRequirements>,
    ) -> Result<Released, QueueError> {
        let mut state = self.state();
        let Some(old_key) = state.waiting(id).map(|record| record.key) else {
            return Ok(Released::Gone);
        };
        let holder = state.keys.get(key).filter(|other| *other != id);
        if let Some(existing) = holder.and_then(|other| state.builds.get(other)) {
            if transitions::answers_key(existing) {
                return Ok(Released::Existing(existing.clone()));
            }
        }
        if state.keys.get(&old_key).map(String::as_str) == Some(id) {
            state.keys.remove(&old_key);
        }
        state.keys.insert(*key, id.to_string());
        state.enqueue(id);
        let record = state.builds.get_mut(id).expect("waiting above");
        transitions::release(record, key, &build_requirements);
        Ok(Released::Queued(record.clone()))
    }

    async fn waiting(&self) -> Result<Vec<BuildRecord>, QueueError> {
        Ok(self
            .state()
            .builds
            .values()
            .filter(|record| record.state == BuildState::Waiting)
            .cloned()
            .collect())
    }

    async fn requeue(&self, id: &str) -> Result<(), QueueError> {
        let mut state = self.state();
        let Some(record) = state
            .builds
            .get_mut(id)
            .filter(|record| record.state == BuildState::Running)
        else {
            return Ok(());
        };
        transitions::requeue(record);
        state.enqueue(id);
        Ok(())
    }

    async fn requeue_abandoned(&self, all: bool) -> Result<Vec<String>, QueueError> {
        let now = unix_now();
        let abandoned: Vec<String> = self
            .state()
            .builds
            .values()
            .filter(|record| transitions::is_abandoned(record, all, now))
            .map(|record| record.id.clone())
            .collect();
        for id in &abandoned {
            self.requeue(id).await?;
        }
        Ok(abandoned)
    }

    async fn get(&self, id: &str) -> Result<Option<BuildRecord>, QueueError> {
        Ok(self.state().builds.get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<BuildRecord>, QueueError> {
        let mut records: Vec<BuildRecord> = self.state().builds.values().cloned().collect();
        records.sort_by(|a, b| b.queued_at.cmp(&a.queued_at));
        Ok(records)
    }
}
