//! The build queue in sled: requests deduplicated by key, leases with expiry, and results
//! recorded once. Trees: `builds` (id → `BuildRecord`), `build_keys` (key → id),
//! `build_queue` (sequence → id, in request order).

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::records::{
    BuildRecord, BuildRequirements, BuildState, BuiltWheel, Failure, Holding, Lease, LeaseHolder,
    timestamp, unix_now,
};
use crate::auth::CredentialId;
use crate::metadata::IndexError;
use crate::pypi::Sha256Digest;

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

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("build {id} is not leased by {worker}; its result is refused")]
    NotLeased { id: String, worker: String },
    #[error("no build {id}")]
    NotFound { id: String },
    #[error("build {id} is leased with another credential; nothing changed")]
    OtherCredential { id: String },
}

impl From<sled::Error> for QueueError {
    fn from(error: sled::Error) -> Self {
        Self::Index(IndexError::Database(error))
    }
}

#[derive(Clone)]
pub struct BuildQueue {
    db: sled::Db,
    builds: sled::Tree,
    keys: sled::Tree,
    queue: sled::Tree,
}

fn decode(key: &[u8], value: &[u8]) -> Result<BuildRecord, IndexError> {
    serde_json::from_slice(value).map_err(|source| IndexError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

fn encode(record: &BuildRecord) -> Vec<u8> {
    // A plain struct: serializing to JSON cannot fail.
    serde_json::to_vec(record).expect("build records serialize")
}

type TxResult<T> = Result<T, ConflictableTransactionError<IndexError>>;

fn tx_get(tree: &TransactionalTree, id: &[u8]) -> TxResult<Option<BuildRecord>> {
    match tree.get(id)? {
        Some(value) => decode(id, &value)
            .map(Some)
            .map_err(ConflictableTransactionError::Abort),
        None => Ok(None),
    }
}

fn flatten<T>(result: Result<T, TransactionError<IndexError>>) -> Result<T, QueueError> {
    result.map_err(|error| match error {
        TransactionError::Abort(error) => QueueError::Index(error),
        TransactionError::Storage(error) => QueueError::from(error),
    })
}

impl BuildQueue {
    pub fn open(db: &sled::Db) -> Result<Self, QueueError> {
        Ok(Self {
            db: db.clone(),
            builds: db.open_tree("builds")?,
            keys: db.open_tree("build_keys")?,
            queue: db.open_tree("build_queue")?,
        })
    }

    /// Queues `candidate` unless its key has a final result or a live build; atomic, so
    /// concurrent requests for one key make one build.
    pub fn request(&self, candidate: BuildRecord) -> Result<(BuildRecord, Requested), QueueError> {
        let sequence = self.db.generate_id()?.to_be_bytes();
        let result =
            (&self.builds, &self.keys, &self.queue).transaction(|(builds, keys, queue)| {
                if let Some(id) = keys.get(candidate.key.as_bytes())? {
                    if let Some(existing) = tx_get(builds, &id)? {
                        if existing.is_final() {
                            return Ok((existing, Requested::Cached));
                        }
                        if !existing.is_finished() {
                            return Ok((existing, Requested::Joined));
                        }
                    }
                }
                builds.insert(candidate.id.as_bytes(), encode(&candidate))?;
                keys.insert(candidate.key.as_bytes(), candidate.id.as_bytes())?;
                // A waiting build joins the queue when what it needs is built.
                if candidate.state == BuildState::Queued {
                    queue.insert(&sequence, candidate.id.as_bytes())?;
                }
                Ok((candidate.clone(), Requested::Queued))
            });
        let outcome = flatten(result)?;
        self.db.flush()?;
        Ok(outcome)
    }

    /// Takes the oldest queued build whose target is in `targets` for `holder`.
    pub fn lease(
        &self,
        holder: &LeaseHolder,
        targets: &[String],
        lease_seconds: u64,
    ) -> Result<Option<BuildRecord>, QueueError> {
        for entry in self.queue.iter() {
            let (sequence, id) = entry?;
            let Some(record) = self.get(&String::from_utf8_lossy(&id))? else {
                continue;
            };
            if !targets.is_empty() && !targets.contains(&record.target) {
                continue;
            }
            let result = (&self.builds, &self.queue).transaction(|(builds, queue)| {
                if queue.remove(&sequence)?.is_none() {
                    return Ok(None);
                }
                let Some(mut record) = tx_get(builds, &id)? else {
                    return Ok(None);
                };
                record.state = BuildState::Running;
                record.lease = Some(Lease {
                    worker: holder.worker.clone(),
                    expires_at: unix_now() + lease_seconds,
                    credential: holder.credential.clone(),
                    wheelhouse: Vec::new(),
                });
                record.attempts += 1;
                record.started_at = Some(timestamp());
                builds.insert(&id, encode(&record))?;
                Ok(Some(record))
            });
            if let Some(record) = flatten(result)? {
                self.db.flush()?;
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    fn update_leased<T>(
        &self,
        id: &str,
        holder: &LeaseHolder,
        change: impl Fn(&mut BuildRecord) -> T,
    ) -> Result<T, QueueError> {
        let result = self.builds.transaction(|builds| {
            let Some(mut record) = tx_get(builds, id.as_bytes())? else {
                return Ok(Err(QueueError::NotFound { id: id.to_string() }));
            };
            if let Err(error) = Self::check_holder(&record, holder) {
                return Ok(Err(error));
            }
            let value = change(&mut record);
            builds.insert(id.as_bytes(), encode(&record))?;
            Ok(Ok(value))
        });
        let value = flatten(result)??;
        self.db.flush()?;
        Ok(value)
    }

    /// Refuses `holder` unless it holds `record`'s lease.
    pub fn check_holder(record: &BuildRecord, holder: &LeaseHolder) -> Result<(), QueueError> {
        match record.holding(holder) {
            Holding::Holds => Ok(()),
            Holding::NotLeased => Err(QueueError::NotLeased {
                id: record.id.clone(),
                worker: holder.worker.clone(),
            }),
            Holding::OtherCredential => Err(QueueError::OtherCredential {
                id: record.id.clone(),
            }),
        }
    }

    pub fn heartbeat(
        &self,
        id: &str,
        holder: &LeaseHolder,
        lease_seconds: u64,
    ) -> Result<(), QueueError> {
        self.update_leased(id, holder, |record| {
            if let Some(lease) = record.lease.as_mut() {
                lease.expires_at = unix_now() + lease_seconds;
            }
        })
    }

    /// Records a result, only from the worker that holds the lease: a late or duplicate
    /// result is refused, never recorded twice.
    pub fn finish(
        &self,
        id: &str,
        holder: &LeaseHolder,
        outcome: Result<BuiltWheel, Failure>,
        log_sha256: Option<crate::pypi::Sha256Digest>,
    ) -> Result<BuildRecord, QueueError> {
        let record = self.update_leased(id, holder, |record| {
            record.lease = None;
            record.finished_at = Some(timestamp());
            record.log_sha256 = log_sha256;
            match &outcome {
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
            record.clone()
        })?;
        Ok(record)
    }

    /// Records the wheelhouse blobs the holder of a fresh lease may fetch.
    pub fn grant_wheelhouse(
        &self,
        id: &str,
        holder: &LeaseHolder,
        wheelhouse: &[Sha256Digest],
    ) -> Result<BuildRecord, QueueError> {
        self.update_leased(id, holder, |record| {
            if let Some(lease) = record.lease.as_mut() {
                lease.wheelhouse = wheelhouse.to_vec();
            }
            record.clone()
        })
    }

    /// Whether `digest` is an input of a build running under a lease taken with
    /// `credential`: the only blobs a remote worker may fetch.
    pub fn lets_fetch(
        &self,
        credential: &CredentialId,
        digest: Sha256Digest,
    ) -> Result<bool, QueueError> {
        for entry in self.builds.iter() {
            let (key, value) = entry?;
            if decode(&key, &value)?.lets_fetch(credential, digest) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A running build held by `holder` stops to wait for the builds `needs` (a requirement
    /// it found had no wheel); it is queued again by `release`.
    pub fn wait_on(
        &self,
        id: &str,
        holder: &LeaseHolder,
        needs: Vec<String>,
        log_sha256: Option<Sha256Digest>,
    ) -> Result<BuildRecord, QueueError> {
        self.update_leased(id, holder, |record| {
            record.state = BuildState::Waiting;
            record.lease = None;
            record.needs = needs.clone();
            record.log_sha256 = log_sha256;
            record.clone()
        })
    }

    /// Changes what a waiting build waits for.
    pub fn set_needs(&self, id: &str, needs: Vec<String>) -> Result<(), QueueError> {
        self.update_waiting(id, |record| record.needs = needs.clone())
            .map(|_| ())
    }

    /// Ends a waiting build without running it: a requirement could not be built, or the
    /// same build (by key) already has this outcome.
    pub fn settle(
        &self,
        id: &str,
        outcome: Result<BuiltWheel, Failure>,
    ) -> Result<Option<BuildRecord>, QueueError> {
        self.update_waiting(id, |record| {
            record.needs.clear();
            record.finished_at = Some(timestamp());
            match &outcome {
                Ok(wheel) => {
                    record.state = BuildState::Succeeded;
                    record.wheel = Some(wheel.clone());
                }
                Err(failure) => {
                    record.state = BuildState::Failed;
                    record.failure = Some(failure.clone());
                }
            }
        })
    }

    /// Queues a waiting build whose requirements now resolve, under the key they give it.
    /// When that key already belongs to another live or final build, nothing changes and
    /// that build is returned: the waiting one takes its outcome instead of building again.
    pub fn release(
        &self,
        id: &str,
        key: &str,
        build_requirements: Option<BuildRequirements>,
    ) -> Result<Released, QueueError> {
        let sequence = self.db.generate_id()?.to_be_bytes();
        let result =
            (&self.builds, &self.keys, &self.queue).transaction(|(builds, keys, queue)| {
                let Some(mut record) = tx_get(builds, id.as_bytes())? else {
                    return Ok(Released::Gone);
                };
                if record.state != BuildState::Waiting {
                    return Ok(Released::Gone);
                }
                if let Some(other) = keys.get(key.as_bytes())? {
                    if other.as_ref() != id.as_bytes() {
                        if let Some(existing) = tx_get(builds, &other)? {
                            if existing.is_final() || !existing.is_finished() {
                                return Ok(Released::Existing(existing));
                            }
                        }
                    }
                }
                if keys.get(record.key.as_bytes())?.as_deref() == Some(id.as_bytes()) {
                    keys.remove(record.key.as_bytes())?;
                }
                record.key = key.to_string();
                record.build_requirements = build_requirements.clone();
                record.state = BuildState::Queued;
                record.needs.clear();
                builds.insert(id.as_bytes(), encode(&record))?;
                keys.insert(key.as_bytes(), id.as_bytes())?;
                queue.insert(&sequence, id.as_bytes())?;
                Ok(Released::Queued(record))
            });
        let released = flatten(result)?;
        self.db.flush()?;
        Ok(released)
    }

    /// Builds waiting for others.
    pub fn waiting(&self) -> Result<Vec<BuildRecord>, QueueError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|record| record.state == BuildState::Waiting)
            .collect())
    }

    fn update_waiting(
        &self,
        id: &str,
        change: impl Fn(&mut BuildRecord),
    ) -> Result<Option<BuildRecord>, QueueError> {
        let result = self.builds.transaction(|builds| {
            let Some(mut record) = tx_get(builds, id.as_bytes())? else {
                return Ok(None);
            };
            if record.state != BuildState::Waiting {
                return Ok(None);
            }
            change(&mut record);
            builds.insert(id.as_bytes(), encode(&record))?;
            Ok(Some(record))
        });
        let record = flatten(result)?;
        self.db.flush()?;
        Ok(record)
    }

    /// Puts a running build back in the queue (an infrastructure failure to retry, or a
    /// lease that expired).
    pub fn requeue(&self, id: &str) -> Result<(), QueueError> {
        let sequence = self.db.generate_id()?.to_be_bytes();
        let result = (&self.builds, &self.queue).transaction(|(builds, queue)| {
            let Some(mut record) = tx_get(builds, id.as_bytes())? else {
                return Ok(());
            };
            if record.state != BuildState::Running {
                return Ok(());
            }
            record.state = BuildState::Queued;
            record.lease = None;
            builds.insert(id.as_bytes(), encode(&record))?;
            queue.insert(&sequence, id.as_bytes())?;
            Ok(())
        });
        flatten(result)?;
        self.db.flush()?;
        Ok(())
    }

    /// Running builds whose lease has expired (a worker died), or every running build
    /// (`all`, at startup: no worker of a crashed process survives it).
    pub fn requeue_abandoned(&self, all: bool) -> Result<Vec<String>, QueueError> {
        let now = unix_now();
        let abandoned: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|record| record.state == BuildState::Running)
            .filter(|record| {
                all || record
                    .lease
                    .as_ref()
                    .is_none_or(|lease| lease.expires_at <= now)
            })
            .map(|record| record.id)
            .collect();
        for id in &abandoned {
            self.requeue(id)?;
        }
        Ok(abandoned)
    }

    pub fn get(&self, id: &str) -> Result<Option<BuildRecord>, QueueError> {
        Ok(self
            .builds
            .get(id.as_bytes())?
            .map(|value| decode(id.as_bytes(), &value))
            .transpose()?)
    }

    /// Every build, newest first.
    pub fn list(&self) -> Result<Vec<BuildRecord>, QueueError> {
        let mut records: Vec<BuildRecord> = self
            .builds
            .iter()
            .map(|entry| {
                entry
                    .map_err(QueueError::from)
                    .and_then(|(key, value)| Ok(decode(&key, &value)?))
            })
            .collect::<Result<_, _>>()?;
        records.sort_by(|a, b| b.queued_at.cmp(&a.queued_at));
        Ok(records)
    }

    /// A failed infrastructure attempt past the retry budget becomes final for this id
    /// (but not for the key: a later request builds again).
    pub fn give_up(
        &self,
        id: &str,
        holder: &LeaseHolder,
        message: String,
        log_sha256: Option<crate::pypi::Sha256Digest>,
    ) -> Result<BuildRecord, QueueError> {
        self.finish(
            id,
            holder,
            Err(Failure::infrastructure(message)),
            log_sha256,
        )
    }
}
