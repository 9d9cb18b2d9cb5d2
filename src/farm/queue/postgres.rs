//! The build queue in PostgreSQL, for replicas that share one database. A record is a row:
//! the `BuildRecord` as JSONB, plus the columns the queue selects on (key, state, target,
//! queue order, lease expiry and credential), written together from the record. Build keys
//! map to the build that answers them in `build_keys`, as in sled.
//!
//! Every change is one SQL transaction that locks the rows it changes. Leases take the
//! oldest queued row with `FOR UPDATE SKIP LOCKED`, so replicas leasing at once never take
//! one build twice; requests and releases lock the build key (a transaction-scoped
//! advisory lock), so concurrent requests for one key make one build.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio_postgres::Transaction;

use super::{BuildQueue, QueueError, Released, Requested, check_holder, transitions};
use crate::auth::CredentialId;
use crate::farm::BuildKey;
use crate::farm::records::{
    BuildRecord, BuildRequirements, BuildState, BuiltWheel, Failure, LeaseHolder, unix_now,
};
use crate::postgres::{Migrations, OpenError};
use crate::pypi::{Sha256Digest, Target};

pub const MIGRATIONS: Migrations = Migrations {
    component: "build_queue",
    steps: &["CREATE TABLE build_records (
            id text PRIMARY KEY,
            key text NOT NULL,
            state text NOT NULL,
            target text NOT NULL,
            -- Set while the build is queued: its place in the queue.
            queue_sequence bigint,
            lease_expires_at bigint,
            lease_credential text,
            queued_at text NOT NULL,
            record jsonb NOT NULL
        );
        CREATE SEQUENCE build_queue_sequence;
        CREATE INDEX build_records_queue ON build_records (queue_sequence)
            WHERE queue_sequence IS NOT NULL;
        CREATE INDEX build_records_key ON build_records (key);
        CREATE INDEX build_records_live ON build_records (state, lease_expires_at)
            WHERE state IN ('waiting', 'running');
        CREATE INDEX build_records_credential ON build_records (lease_credential)
            WHERE lease_credential IS NOT NULL;
        CREATE TABLE build_keys (
            key text PRIMARY KEY,
            id text NOT NULL
        );"],
};

/// The first half of the advisory lock on a build key (the second is the key's hash).
const KEY_LOCK_CLASS: i32 = 0x6275_696c; // "buil"

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> QueueError {
    QueueError::Unavailable(Box::new(error))
}

fn decode(id: &str, value: serde_json::Value) -> Result<BuildRecord, QueueError> {
    serde_json::from_value(value).map_err(|error| QueueError::Corrupt {
        key: id.to_string(),
        reason: error.to_string(),
    })
}

fn decode_row(row: &tokio_postgres::Row) -> Result<BuildRecord, QueueError> {
    decode(row.get("id"), row.get("record"))
}

fn state_name(state: BuildState) -> &'static str {
    match state {
        BuildState::Waiting => "waiting",
        BuildState::Queued => "queued",
        BuildState::Running => "running",
        BuildState::Succeeded => "succeeded",
        BuildState::Failed => "failed",
    }
}

/// Locks the record `id` for the rest of the transaction.
async fn get_locked(
    transaction: &Transaction<'_>,
    id: &str,
) -> Result<Option<BuildRecord>, QueueError> {
    let row = transaction
        .query_opt(
            "SELECT id, record FROM build_records WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(unavailable)?;
    row.as_ref().map(decode_row).transpose()
}

async fn get_unlocked(
    client: &impl tokio_postgres::GenericClient,
    id: &str,
) -> Result<Option<BuildRecord>, QueueError> {
    let row = client
        .query_opt("SELECT id, record FROM build_records WHERE id = $1", &[&id])
        .await
        .map_err(unavailable)?;
    row.as_ref().map(decode_row).transpose()
}

/// Writes `record` with its columns; `enqueue` gives it a new place at the end of the
/// queue, and a record that is not queued has none.
async fn put(
    transaction: &Transaction<'_>,
    record: &BuildRecord,
    enqueue: bool,
) -> Result<(), QueueError> {
    let lease = record
        .lease
        .as_ref()
        .filter(|_| record.state == BuildState::Running);
    let expires_at = lease.map(|lease| i64::try_from(lease.expires_at).unwrap_or(i64::MAX));
    let credential = lease.and_then(|lease| lease.credential.as_ref().map(ToString::to_string));
    let value = serde_json::to_value(record).expect("build records serialize");
    transaction
        .execute(
            "INSERT INTO build_records (id, key, state, target, queue_sequence,
                 lease_expires_at, lease_credential, queued_at, record)
             VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN nextval('build_queue_sequence') END,
                 $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET
                 key = EXCLUDED.key,
                 state = EXCLUDED.state,
                 target = EXCLUDED.target,
                 queue_sequence = CASE
                     WHEN $5 THEN EXCLUDED.queue_sequence
                     WHEN EXCLUDED.state = 'queued' THEN build_records.queue_sequence
                 END,
                 lease_expires_at = EXCLUDED.lease_expires_at,
                 lease_credential = EXCLUDED.lease_credential,
                 queued_at = EXCLUDED.queued_at,
                 record = EXCLUDED.record",
            &[
                &record.id,
                &record.key.to_string(),
                &state_name(record.state),
                &record.target.to_string(),
                &enqueue,
                &expires_at,
                &credential,
                &record.queued_at,
                &value,
            ],
        )
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Serializes every change to `keys` until the transaction ends, taken in one order.
async fn lock_keys(transaction: &Transaction<'_>, keys: &[&BuildKey]) -> Result<(), QueueError> {
    let mut keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&KEY_LOCK_CLASS, &key],
            )
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// The build that answers `key`.
async fn key_owner(
    transaction: &Transaction<'_>,
    key: &BuildKey,
) -> Result<Option<String>, QueueError> {
    let row = transaction
        .query_opt(
            "SELECT id FROM build_keys WHERE key = $1",
            &[&key.to_string()],
        )
        .await
        .map_err(unavailable)?;
    Ok(row.map(|row| row.get(0)))
}

async fn set_key_owner(
    transaction: &Transaction<'_>,
    key: &BuildKey,
    id: &str,
) -> Result<(), QueueError> {
    transaction
        .execute(
            "INSERT INTO build_keys (key, id) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET id = EXCLUDED.id",
            &[&key.to_string(), &id],
        )
        .await
        .map_err(unavailable)?;
    Ok(())
}

#[derive(Clone)]
pub struct PostgresBuildQueue {
    pool: Pool,
}

impl PostgresBuildQueue {
    /// Connects to `url` and brings the queue's schema up to date.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let pool = crate::postgres::open(url, &MIGRATIONS).await?;
        Ok(Self { pool })
    }

    /// The queue on a pool whose schemas are already up to date (`postgres::open_shared`).
    pub fn on(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, QueueError> {
        self.pool.get().await.map_err(unavailable)
    }

    async fn update_leased<T>(
        &self,
        id: &str,
        holder: &LeaseHolder,
        change: impl FnOnce(&mut BuildRecord) -> T,
    ) -> Result<T, QueueError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        let mut record = get_locked(&transaction, id)
            .await?
            .ok_or_else(|| QueueError::NotFound { id: id.to_string() })?;
        check_holder(&record, holder)?;
        let value = change(&mut record);
        put(&transaction, &record, false).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(value)
    }

    async fn update_waiting(
        &self,
        id: &str,
        change: impl FnOnce(&mut BuildRecord),
    ) -> Result<Option<BuildRecord>, QueueError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        let Some(mut record) = get_locked(&transaction, id).await? else {
            return Ok(None);
        };
        if record.state != BuildState::Waiting {
            return Ok(None);
        }
        change(&mut record);
        put(&transaction, &record, false).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(Some(record))
    }

    /// Puts a running build back in the queue when `abandoned` still holds of it under
    /// the row lock; whether it did.
    async fn requeue_if(
        &self,
        id: &str,
        abandoned: impl FnOnce(&BuildRecord) -> bool,
    ) -> Result<bool, QueueError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        let Some(mut record) = get_locked(&transaction, id).await? else {
            return Ok(false);
        };
        if record.state != BuildState::Running || !abandoned(&record) {
            return Ok(false);
        }
        transitions::requeue(&mut record);
        put(&transaction, &record, true).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    /// Writes `record`, read from another queue, unless a build of its id is here already
    /// (`edelweiss migrate --from-data-dir`); whether it was written. A build that was
    /// running is queued again: no worker holds a lease on it here.
    pub async fn import(&self, mut record: BuildRecord) -> Result<bool, QueueError> {
        if record.state == BuildState::Running {
            transitions::requeue(&mut record);
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        if get_locked(&transaction, &record.id).await?.is_some() {
            return Ok(false);
        }
        put(&transaction, &record, record.state == BuildState::Queued).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    /// Makes build `id` the one that answers `key`, read from another queue, unless the
    /// key answers to a build here already; whether it was written.
    pub async fn import_key_owner(&self, key: &str, id: &str) -> Result<bool, QueueError> {
        let written = self
            .client()
            .await?
            .execute(
                "INSERT INTO build_keys (key, id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &id],
            )
            .await
            .map_err(unavailable)?;
        Ok(written > 0)
    }

    /// The records in `state`, by id.
    async fn in_state(&self, state: BuildState) -> Result<Vec<BuildRecord>, QueueError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, record FROM build_records WHERE state = $1 ORDER BY id COLLATE \"C\"",
                &[&state_name(state)],
            )
            .await
            .map_err(unavailable)?;
        rows.iter().map(decode_row).collect()
    }
}

#[async_trait]
impl BuildQueue for PostgresBuildQueue {
    async fn request(
        &self,
        candidate: BuildRecord,
    ) -> Result<(BuildRecord, Requested), QueueError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        lock_keys(&transaction, &[&candidate.key]).await?;
        if let Some(id) = key_owner(&transaction, &candidate.key).await? {
            if let Some(existing) = get_unlocked(&*transaction, &id).await? {
                if existing.is_final() {
                    return Ok((existing, Requested::Cached));
                }
                if !existing.is_finished() {
                    return Ok((existing, Requested::Joined));
                }
            }
        }
        put(
            &transaction,
            &candidate,
            candidate.state == BuildState::Queued,
        )
        .await?;
        set_key_owner(&transaction, &candidate.key, &candidate.id).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok((candidate, Requested::Queued))
    }

    async fn lease(
        &self,
        holder: &LeaseHolder,
        targets: &[Target],
        lease_seconds: u64,
    ) -> Result<Option<BuildRecord>, QueueError> {
        let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        let row = transaction
            .query_opt(
                "SELECT id, record FROM build_records
                 WHERE queue_sequence IS NOT NULL
                     AND (cardinality($1::text[]) = 0 OR target = ANY($1::text[]))
                 ORDER BY queue_sequence
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED",
                &[&targets],
            )
            .await
            .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut record = decode_row(&row)?;
        transitions::lease(&mut record, holder, lease_seconds);
        put(&transaction, &record, false).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(Some(record))
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
        .await
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
        .await
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
        .await
    }

    async fn lets_fetch(
        &self,
        credential: &CredentialId,
        digest: Sha256Digest,
    ) -> Result<bool, QueueError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, record FROM build_records
                 WHERE state = 'running' AND lease_credential = $1",
                &[&credential.to_string()],
            )
            .await
            .map_err(unavailable)?;
        for row in &rows {
            if decode_row(row)?.lets_fetch(credential, digest) {
                return Ok(true);
            }
        }
        Ok(false)
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
        .await
    }

    async fn set_needs(&self, id: &str, needs: Vec<String>) -> Result<(), QueueError> {
        self.update_waiting(id, |record| record.needs = needs)
            .await
            .map(|_| ())
    }

    async fn settle(
        &self,
        id: &str,
        outcome: Result<BuiltWheel, Failure>,
    ) -> Result<Option<BuildRecord>, QueueError> {
        self.update_waiting(id, |record| transitions::settle(record, &outcome))
            .await
    }

    async fn release(
        &self,
        id: &str,
        key: &BuildKey,
        build_requirements: Option<BuildRequirements>,
    ) -> Result<Released, QueueError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        let Some(mut record) = get_locked(&transaction, id).await? else {
            return Ok(Released::Gone);
        };
        if record.state != BuildState::Waiting {
            return Ok(Released::Gone);
        }
        lock_keys(&transaction, &[&record.key, key]).await?;
        if let Some(other) = key_owner(&transaction, key).await? {
            if other != id {
                if let Some(existing) = get_unlocked(&*transaction, &other).await? {
                    if transitions::answers_key(&existing) {
                        return Ok(Released::Existing(existing));
                    }
                }
            }
        }
        transaction
            .execute(
                "DELETE FROM build_keys WHERE key = $1 AND id = $2",
                &[&record.key.to_string(), &id],
            )
            .await
            .map_err(unavailable)?;
        transitions::release(&mut record, key, &build_requirements);
        put(&transaction, &record, true).await?;
        set_key_owner(&transaction, key, id).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(Released::Queued(record))
    }

    async fn waiting(&self) -> Result<Vec<BuildRecord>, QueueError> {
        self.in_state(BuildState::Waiting).await
    }

    async fn requeue(&self, id: &str) -> Result<(), QueueError> {
        self.requeue_if(id, |_| true).await.map(|_| ())
    }

    async fn requeue_abandoned(&self, all: bool) -> Result<Vec<String>, QueueError> {
        let now = unix_now();
        let mut requeued = Vec::new();
        for record in self.in_state(BuildState::Running).await? {
            if !transitions::is_abandoned(&record, all, now) {
                continue;
            }
            // Checked again under the lock: a heartbeat may have come in between.
            let abandoned = |record: &BuildRecord| transitions::is_abandoned(record, all, now);
            if self.requeue_if(&record.id, abandoned).await? {
                requeued.push(record.id);
            }
        }
        Ok(requeued)
    }

    async fn get(&self, id: &str) -> Result<Option<BuildRecord>, QueueError> {
        get_unlocked(&**self.client().await?, id).await
    }

    async fn list(&self) -> Result<Vec<BuildRecord>, QueueError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, record FROM build_records
                 ORDER BY queued_at COLLATE \"C\" DESC, id COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(unavailable)?;
        rows.iter().map(decode_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::farm::queue::conformance::candidate;
    use crate::postgres::testing::{TestDatabase, connect};

    /// Leases from `queue` until it is empty; the ids it got.
    async fn lease_all(queue: PostgresBuildQueue, worker: &str) -> Vec<String> {
        let holder = LeaseHolder::local(worker);
        let mut leased = Vec::new();
        while let Some(record) = queue.lease(&holder, &[], 600).await.unwrap() {
            leased.push(record.id);
        }
        leased
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_leasing_at_once_never_take_one_build_twice() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let first = PostgresBuildQueue::open(&database.url).await.unwrap();
        let second = PostgresBuildQueue::open(&database.url).await.unwrap();
        let ids: Vec<String> = (0..20).map(|index| format!("build-{index:02}")).collect();
        for id in &ids {
            first.request(candidate(id, id)).await.unwrap();
        }

        let (from_first, from_second) = tokio::join!(
            tokio::spawn(lease_all(first.clone(), "first")),
            tokio::spawn(lease_all(second.clone(), "second")),
        );
        let (from_first, from_second) = (from_first.unwrap(), from_second.unwrap());
        let mut every: Vec<String> = from_first.iter().chain(&from_second).cloned().collect();
        every.sort();
        assert_eq!(every, ids, "first {from_first:?}, second {from_second:?}");
        for record in first.list().await.unwrap() {
            assert_eq!((record.state, record.attempts), (BuildState::Running, 1));
        }
        drop((first, second));
        database.remove().await;
    }

    /// Tried: a running build, a queued one and a key imported twice. Kept: the running
    /// build queued again, both leased in the order they were imported, each imported once.
    #[tokio::test]
    async fn an_imported_build_is_queued_and_imported_once() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let queue = PostgresBuildQueue::open(&database.url).await.unwrap();
        let running = BuildRecord {
            state: BuildState::Running,
            ..candidate("running", "key-running")
        };
        let queued = candidate("queued", "key-queued");
        for _ in 0..2 {
            queue.import(running.clone()).await.unwrap();
            queue.import(queued.clone()).await.unwrap();
        }
        assert!(!queue.import(queued).await.unwrap(), "already here");
        assert!(
            queue
                .import_key_owner("key-queued", "queued")
                .await
                .unwrap()
        );
        assert!(!queue.import_key_owner("key-queued", "other").await.unwrap());
        assert_eq!(queue.list().await.unwrap().len(), 2);
        assert_eq!(
            lease_all(queue.clone(), "worker").await,
            ["running", "queued"]
        );
        drop(queue);
        database.remove().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_requesting_one_key_at_once_make_one_build() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let first = PostgresBuildQueue::open(&database.url).await.unwrap();
        let second = PostgresBuildQueue::open(&database.url).await.unwrap();
        let request_each = |queue: PostgresBuildQueue, replica: &'static str| {
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for key in 0..10 {
                    let id = format!("{replica}-{key}");
                    let candidate = candidate(&id, &format!("key-{key}"));
                    answers.push(queue.request(candidate).await.unwrap());
                }
                answers
            })
        };
        let (from_first, from_second) = tokio::join!(
            request_each(first.clone(), "first"),
            request_each(second.clone(), "second")
        );
        for ((a, a_requested), (b, b_requested)) in
            from_first.unwrap().iter().zip(&from_second.unwrap())
        {
            assert_eq!(a.id, b.id, "one build answers {}", a.key);
            let mut requested = [*a_requested, *b_requested];
            requested.sort_by_key(|requested| *requested == Requested::Joined);
            assert_eq!(requested, [Requested::Queued, Requested::Joined]);
        }
        assert_eq!(first.list().await.unwrap().len(), 10);
        drop((first, second));
        database.remove().await;
    }

    async fn schema_versions(url: &str) -> Vec<(String, i32)> {
        let client = connect(url).await.unwrap();
        let rows = client
            .query("SELECT component, version FROM schema_version", &[])
            .await
            .unwrap();
        rows.iter().map(|row| (row.get(0), row.get(1))).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrations_applied_twice_and_at_once_leave_one_schema_version() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let open = |url: String| tokio::spawn(async move { PostgresBuildQueue::open(&url).await });
        let (first, second) = tokio::join!(open(database.url.clone()), open(database.url.clone()));
        let (first, second) = (first.unwrap().unwrap(), second.unwrap().unwrap());
        let again = PostgresBuildQueue::open(&database.url).await.unwrap();
        let latest = ("build_queue".to_string(), MIGRATIONS.steps.len() as i32);
        assert_eq!(schema_versions(&database.url).await, [latest]);

        // Each opener reaches the same tables.
        first.request(candidate("a", "k")).await.unwrap();
        let ids: BTreeSet<String> = (second.list().await.unwrap().into_iter())
            .chain(again.list().await.unwrap())
            .map(|record| record.id)
            .collect();
        assert_eq!(ids, BTreeSet::from(["a".to_string()]));
        drop((first, second, again));
        database.remove().await;
    }

    #[tokio::test]
    async fn a_schema_newer_than_the_binary_is_refused() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        drop(PostgresBuildQueue::open(&database.url).await.unwrap());
        let client = connect(&database.url).await.unwrap();
        client
            .execute("UPDATE schema_version SET version = version + 1", &[])
            .await
            .unwrap();
        let refused = PostgresBuildQueue::open(&database.url).await;
        assert!(
            matches!(
                refused,
                Err(OpenError::NewerSchema {
                    found: 2,
                    known: 1,
                    ..
                })
            ),
            "{:?}",
            refused.err()
        );
        drop(client);
        database.remove().await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_and_a_bad_url_is_refused() {
        let bad = PostgresBuildQueue::open("postgres://host:notaport/db").await;
        assert!(
            matches!(bad, Err(OpenError::InvalidUrl { .. })),
            "{:?}",
            bad.err()
        );
        // Port 1 on loopback: nothing listens there.
        let down = PostgresBuildQueue::open("postgres://nobody@127.0.0.1:1/db").await;
        assert!(
            matches!(down, Err(OpenError::Unavailable(_))),
            "{:?}",
            down.err()
        );
    }
}
