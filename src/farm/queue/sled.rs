//! The build queue in sled. Trees: `builds` (id → `BuildRecord` as JSON), `build_keys`
//! (key → id), `build_queue` (sequence → id, in request order), and two indexes kept in
//! the same transactions, so the periodic passes read only what they need:
//! `build_waiting` and `build_running` (id → nothing). The empty tree `build_indexed` marks
//! a database whose indexes were built from its records.

use async_trait::async_trait;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::{BuildQueue, QueueError, Released, Requested, check_holder, transitions};
use crate::auth::CredentialId;
use crate::farm::BuildKey;
use crate::farm::records::{
    BuildRecord, BuildRequirements, BuildState, BuiltWheel, Failure, LeaseHolder, unix_now,
};
use crate::pypi::{Sha256Digest, Target};

impl From<sled::Error> for QueueError {
    fn from(error: sled::Error) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

fn decode(key: &[u8], value: &[u8]) -> Result<BuildRecord, QueueError> {
    serde_json::from_slice(value).map_err(|error| QueueError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: error.to_string(),
    })
}

fn encode(record: &BuildRecord) -> Vec<u8> {
    // A plain struct: serializing to JSON cannot fail.
    serde_json::to_vec(record).expect("build records serialize")
}

type TxResult<T> = Result<T, ConflictableTransactionError<QueueError>>;

/// The trees inside one transaction.
struct Tx<'a> {
    builds: &'a TransactionalTree,
    keys: &'a TransactionalTree,
    queue: &'a TransactionalTree,
    waiting: &'a TransactionalTree,
    running: &'a TransactionalTree,
}

impl Tx<'_> {
    fn get(&self, id: &[u8]) -> TxResult<Option<BuildRecord>> {
        match self.builds.get(id)? {
            Some(value) => decode(id, &value)
                .map(Some)
                .map_err(ConflictableTransactionError::Abort),
            None => Ok(None),
        }
    }

    fn require(&self, id: &str) -> TxResult<BuildRecord> {
        self.get(id.as_bytes())?.ok_or_else(|| {
            ConflictableTransactionError::Abort(QueueError::NotFound { id: id.to_string() })
        })
    }

    /// Writes `record` and keeps the state indexes in step with it.
    fn put(&self, record: &BuildRecord) -> TxResult<()> {
        let id = record.id.as_bytes();
        self.builds.insert(id, encode(record))?;
        for (tree, state) in [
            (self.waiting, BuildState::Waiting),
            (self.running, BuildState::Running),
        ] {
            match record.state == state {
                true => tree.insert(id, sled::IVec::default())?,
                false => tree.remove(id)?,
            };
        }
        Ok(())
    }

    fn enqueue(&self, sequence: &[u8; 8], id: &str) -> TxResult<()> {
        self.queue.insert(sequence, id.as_bytes())?;
        Ok(())
    }
}

#[derive(Clone)]
pub struct SledBuildQueue {
    db: sled::Db,
    builds: sled::Tree,
    keys: sled::Tree,
    queue: sled::Tree,
    waiting: sled::Tree,
    running: sled::Tree,
}

impl SledBuildQueue {
    /// Opens the queue's trees, and builds the state indexes from the records when they
    /// are new (a database written before they existed).
    pub fn open(db: &sled::Db) -> Result<Self, QueueError> {
        let queue = Self {
            db: db.clone(),
            builds: db.open_tree("builds")?,
            keys: db.open_tree("build_keys")?,
            queue: db.open_tree("build_queue")?,
            waiting: db.open_tree("build_waiting")?,
            running: db.open_tree("build_running")?,
        };
        let indexed = db
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == b"build_indexed");
        if !indexed {
            queue.index_states()?;
            db.open_tree("build_indexed")?;
            db.flush()?;
        }
        Ok(queue)
    }

    fn index_states(&self) -> Result<(), QueueError> {
        for entry in self.builds.iter() {
            let (key, value) = entry?;
            match decode(&key, &value)?.state {
                BuildState::Waiting => self.waiting.insert(&key, sled::IVec::default())?,
                BuildState::Running => self.running.insert(&key, sled::IVec::default())?,
                _ => None,
            };
        }
        Ok(())
    }

    /// Runs `change` as one transaction over every tree, then flushes.
    fn transact<T>(&self, change: impl Fn(&Tx) -> TxResult<T>) -> Result<T, QueueError> {
        let trees = (
            &self.builds,
            &self.keys,
            &self.queue,
            &self.waiting,
            &self.running,
        );
        let result = trees.transaction(|(builds, keys, queue, waiting, running)| {
            change(&Tx {
                builds,
                keys,
                queue,
                waiting,
                running,
            })
        });
        let value = result.map_err(|error| match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => QueueError::from(error),
        })?;
        self.db.flush()?;
        Ok(value)
    }

    fn sequence(&self) -> Result<[u8; 8], QueueError> {
        Ok(self.db.generate_id()?.to_be_bytes())
    }

    fn update_leased<T>(
        &self,
        id: &str,
        holder: &LeaseHolder,
        change: impl Fn(&mut BuildRecord) -> T,
    ) -> Result<T, QueueError> {
        self.transact(|tx| {
            let mut record = tx.require(id)?;
            check_holder(&record, holder).map_err(ConflictableTransactionError::Abort)?;
            let value = change(&mut record);
            tx.put(&record)?;
            Ok(value)
        })
    }

    fn update_waiting(
        &self,
        id: &str,
        change: impl Fn(&mut BuildRecord),
    ) -> Result<Option<BuildRecord>, QueueError> {
        self.transact(|tx| {
            let Some(mut record) = tx.get(id.as_bytes())? else {
                return Ok(None);
            };
            if record.state != BuildState::Waiting {
                return Ok(None);
            }
            change(&mut record);
            tx.put(&record)?;
            Ok(Some(record))
        })
    }

    /// The records whose ids `index` holds.
    fn indexed(&self, index: &sled::Tree) -> Result<Vec<BuildRecord>, QueueError> {
        let mut records = Vec::new();
        for entry in index.iter() {
            let (id, _) = entry?;
            if let Some(value) = self.builds.get(&id)? {
                records.push(decode(&id, &value)?);
            }
        }
        Ok(records)
    }

    /// Every build key with the build that answers it (`edelweiss migrate
    /// --from-data-dir` copies them; no backend needs to list them otherwise).
    pub fn key_owners(&self) -> Result<Vec<(String, String)>, QueueError> {
        self.keys
            .iter()
            .map(|entry| {
                let (key, id) = entry?;
                let text = |bytes: &[u8]| {
                    String::from_utf8(bytes.to_vec()).map_err(|error| QueueError::Corrupt {
                        key: String::from_utf8_lossy(&key).into_owned(),
                        reason: error.to_string(),
                    })
                };
                Ok((text(&key)?, text(&id)?))
            })
            .collect()
    }

    fn get_now(&self, id: &[u8]) -> Result<Option<BuildRecord>, QueueError> {
        self.builds
            .get(id)?
            .map(|value| decode(id, &value))
            .transpose()
    }
}

#[async_trait]
impl BuildQueue for SledBuildQueue {
    fn exclusive(&self) -> bool {
        true
    }

    async fn request(
        &self,
        candidate: BuildRecord,
    ) -> Result<(BuildRecord, Requested), QueueError> {
        let sequence = self.sequence()?;
        self.transact(|tx| {
            if let Some(id) = tx.keys.get(candidate.key.to_string().as_bytes())? {
                if let Some(existing) = tx.get(&id)? {
                    if existing.is_final() {
                        return Ok((existing, Requested::Cached));
                    }
                    if !existing.is_finished() {
                        return Ok((existing, Requested::Joined));
                    }
                }
            }
            tx.put(&candidate)?;
            tx.keys.insert(
                candidate.key.to_string().as_bytes(),
                candidate.id.as_bytes(),
            )?;
            if candidate.state == BuildState::Queued {
                tx.enqueue(&sequence, &candidate.id)?;
            }
            Ok((candidate.clone(), Requested::Queued))
        })
    }

    async fn lease(
        &self,
        holder: &LeaseHolder,
        targets: &[Target],
        lease_seconds: u64,
    ) -> Result<Option<BuildRecord>, QueueError> {
        for entry in self.queue.iter() {
            let (sequence, id) = entry?;
            let Some(record) = self.get_now(&id)? else {
                continue;
            };
            if !targets.is_empty() && !targets.contains(&record.target) {
                continue;
            }
            let leased = self.transact(|tx| {
                if tx.queue.remove(&sequence)?.is_none() {
                    return Ok(None);
                }
                let Some(mut record) = tx.get(&id)? else {
                    return Ok(None);
                };
                transitions::lease(&mut record, holder, lease_seconds);
                tx.put(&record)?;
                Ok(Some(record))
            })?;
            if leased.is_some() {
                return Ok(leased);
            }
        }
        Ok(None)
    }

    async fn heartbeat(
        &self,
        id: &str,
        holder: &LeaseHolder,
        lease_seconds: u64,
    ) -> Result<(), QueueError> {
        self.update_leased(id, holder, |record| {
            transitions::heartbeat(record, lease_seconds)
        })
    }

    async fn finish(
        &self,
        id: &str,
        holder: &LeaseHolder,
        outcome: Result<BuiltWheel, Failure>,
        log_sha256: Option<Sha256Digest>,
    ) -> Result<BuildRecord, QueueError> {
        self.update_leased(id, holder, |record| {
            transitions::finish(record, &outcome, log_sha256);
            record.clone()
        })
    }

    async fn grant_wheelhouse(
        &self,
        id: &str,
        holder: &LeaseHolder,
        wheelhouse: &[Sha256Digest],
    ) -> Result<BuildRecord, QueueError> {
        self.update_leased(id, holder, |record| {
            transitions::grant_wheelhouse(record, wheelhouse);
            record.clone()
        })
    }

    async fn lets_fetch(
        &self,
        credential: &CredentialId,
        digest: Sha256Digest,
    ) -> Result<bool, QueueError> {
        Ok(self
            .indexed(&self.running)?
            .iter()
            .any(|record| record.lets_fetch(credential, digest)))
    }

    async fn wait_on(
        &self,
        id: &str,
        holder: &LeaseHolder,
        needs: Vec<String>,
        log_sha256: Option<Sha256Digest>,
    ) -> Result<BuildRecord, QueueError> {
        self.update_leased(id, holder, |record| {
            transitions::wait_on(record, &needs, log_sha256);
            record.clone()
        })
    }

    async fn set_needs(&self, id: &str, needs: Vec<String>) -> Result<(), QueueError> {
        self.update_waiting(id, |record| record.needs = needs.clone())
            .map(|_| ())
    }

    async fn settle(
        &self,
        id: &str,
        outcome: Result<BuiltWheel, Failure>,
    ) -> Result<Option<BuildRecord>, QueueError> {
        self.update_waiting(id, |record| transitions::settle(record, &outcome))
    }

    async fn release(
        &self,
        id: &str,
        key: &BuildKey,
        build_requirements: Option<BuildRequirements>,
    ) -> Result<Released, QueueError> {
        let sequence = self.sequence()?;
        self.transact(|tx| {
            let Some(mut record) = tx.get(id.as_bytes())? else {
                return Ok(Released::Gone);
            };
            if record.state != BuildState::Waiting {
                return Ok(Released::Gone);
            }
            if let Some(other) = tx.keys.get(key.to_string().as_bytes())? {
                if other.as_ref() != id.as_bytes() {
                    if let Some(existing) = tx.get(&other)? {
                        if transitions::answers_key(&existing) {
                            return Ok(Released::Existing(existing));
                        }
                    }
                }
            }
            if tx.keys.get(record.key.to_string().as_bytes())?.as_deref() == Some(id.as_bytes()) {
                tx.keys.remove(record.key.to_string().as_bytes())?;
            }
            transitions::release(&mut record, key, &build_requirements);
            tx.put(&record)?;
            tx.keys.insert(key.to_string().as_bytes(), id.as_bytes())?;
            tx.enqueue(&sequence, id)?;
            Ok(Released::Queued(record))
        })
    }

    async fn waiting(&self) -> Result<Vec<BuildRecord>, QueueError> {
        self.indexed(&self.waiting)
    }

    async fn requeue(&self, id: &str) -> Result<(), QueueError> {
        let sequence = self.sequence()?;
        self.transact(|tx| {
            let Some(mut record) = tx.get(id.as_bytes())? else {
                return Ok(());
            };
            if record.state != BuildState::Running {
                return Ok(());
            }
            transitions::requeue(&mut record);
            tx.put(&record)?;
            tx.enqueue(&sequence, id)
        })
    }

    async fn requeue_abandoned(&self, all: bool) -> Result<Vec<String>, QueueError> {
        let now = unix_now();
        let abandoned: Vec<String> = self
            .indexed(&self.running)?
            .into_iter()
            .filter(|record| transitions::is_abandoned(record, all, now))
            .map(|record| record.id)
            .collect();
        for id in &abandoned {
            self.requeue(id).await?;
        }
        Ok(abandoned)
    }

    async fn get(&self, id: &str) -> Result<Option<BuildRecord>, QueueError> {
        self.get_now(id.as_bytes())
    }

    async fn list(&self) -> Result<Vec<BuildRecord>, QueueError> {
        let mut records: Vec<BuildRecord> = self
            .builds
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode(&key, &value)
            })
            .collect::<Result<_, _>>()?;
        records.sort_by(|a, b| b.queued_at.cmp(&a.queued_at));
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::queue::conformance::candidate;

    #[tokio::test]
    async fn a_database_written_before_the_indexes_gets_them_once() {
        let db = ::sled::Config::new().temporary(true).open().unwrap();
        let builds = db.open_tree("builds").unwrap();
        for (id, state) in [
            ("a", BuildState::Waiting),
            ("b", BuildState::Running),
            ("c", BuildState::Succeeded),
        ] {
            let record = BuildRecord {
                state,
                ..candidate(id, id)
            };
            builds.insert(id, encode(&record)).unwrap();
        }
        let queue = SledBuildQueue::open(&db).unwrap();
        let waiting = queue.waiting().await.unwrap();
        assert_eq!(
            waiting.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(queue.requeue_abandoned(true).await.unwrap(), ["b"]);

        // Written behind the queue's back after the indexes exist: not indexed again.
        let late = BuildRecord {
            state: BuildState::Waiting,
            ..candidate("d", "d")
        };
        builds.insert("d", encode(&late)).unwrap();
        let reopened = SledBuildQueue::open(&db).unwrap();
        assert_eq!(reopened.waiting().await.unwrap().len(), 1);
    }
}
