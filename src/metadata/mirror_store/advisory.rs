//! Fetch locks in PostgreSQL: `pg_advisory_xact_lock` on `FetchKey::lock_id`, inside a
//! transaction that lives as long as the guard, so the lock ends with it however it ends.
//!
//! A lock keeps its connection for the whole fetch, and its holder still needs one to store
//! what it fetched: lock connections are therefore taken out of the shared pool
//! (`Object::take`, which lets the pool open another) and kept here, at most `MOST_HELD`
//! at once. Past that a fetch goes ahead without a lock rather than queue behind others.
//!
//! Drop cannot wait, so a released lock's `ROLLBACK` runs on a spawned task before its
//! connection is kept for the next lock. A future dropped while the server still queues it
//! for the lock cancels that wait and closes its connection instead: a connection left in a
//! lock queue would take the lock later, for nobody. A process that dies frees its locks
//! with its connections, and `lock_timeout` bounds every wait on the server's side too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{ClientWrapper, Object, Pool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::MirrorStoreError;
use super::fetch_lock::{FetchKey, FetchLockError};

/// Lock connections of one process at most, beside the shared pool's own.
const MOST_HELD: usize = 8;

type Idle = Arc<Mutex<Vec<ClientWrapper>>>;

#[derive(Clone)]
pub struct AdvisoryLocks {
    pool: Pool,
    idle: Idle,
    permits: Arc<Semaphore>,
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> FetchLockError {
    FetchLockError::Store(MirrorStoreError::Unavailable(Box::new(error)))
}

impl AdvisoryLocks {
    /// Locks whose connections come from `pool`.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            idle: Idle::default(),
            permits: Arc::new(Semaphore::new(MOST_HELD)),
        }
    }

    /// Takes the lock on `key`, waiting at most `wait` for whoever holds it.
    pub async fn lock(&self, key: &FetchKey, wait: Duration) -> Result<HeldLock, FetchLockError> {
        let busy = |_| FetchLockError::Busy { key: key.clone() };
        let permit = self.permits.clone().try_acquire_owned().map_err(busy)?;
        let mut held = HeldLock {
            client: Some(self.connection().await?),
            waiting: false,
            idle: self.idle.clone(),
            permit: Some(permit),
        };
        // lock_timeout 0 would mean no limit.
        let millis = wait.as_millis().clamp(1, i32::MAX as u128);
        let begin = format!("BEGIN; SET LOCAL lock_timeout = {millis}");
        held.client()
            .batch_execute(&begin)
            .await
            .map_err(unavailable)?;
        held.waiting = true;
        let lock = "SELECT pg_advisory_xact_lock($1)";
        let locked = held.client().execute(lock, &[&key.lock_id()]).await;
        held.waiting = false;
        match locked {
            Ok(_) => Ok(held),
            Err(error) if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                Err(FetchLockError::TimedOut {
                    key: key.clone(),
                    waited: wait,
                })
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// A kept lock connection that is still open, or one taken out of the pool.
    async fn connection(&self) -> Result<ClientWrapper, FetchLockError> {
        let kept = {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            idle.retain(|client| !client.is_closed());
            idle.pop()
        };
        match kept {
            Some(client) => Ok(client),
            None => Ok(Object::take(self.pool.get().await.map_err(unavailable)?)),
        }
    }
}

/// A connection in a transaction that holds, or waits for, one advisory lock.
pub struct HeldLock {
    client: Option<ClientWrapper>,
    /// Whether the lock query may still be queued on the server.
    waiting: bool,
    idle: Idle,
    permit: Option<OwnedSemaphorePermit>,
}

impl HeldLock {
    fn client(&self) -> &ClientWrapper {
        // Taken only by Drop.
        self.client
            .as_ref()
            .expect("a held lock has its connection")
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let (Some(client), permit) = (self.client.take(), self.permit.take()) else {
            return;
        };
        // Without a runtime the process is ending: the connection closes with it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.waiting {
            let cancel = client.cancel_token();
            runtime.spawn(async move {
                let _ = cancel.cancel_query(NoTls).await;
                drop((client, permit));
            });
            return;
        }
        let idle = self.idle.clone();
        runtime.spawn(async move {
            if client.batch_execute("ROLLBACK").await.is_ok() {
                (idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())).push(client);
            }
            drop(permit);
        });
    }
}

/// Two stores on one database stand for two replicas.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::MOST_HELD;
    use crate::metadata::mirror_store::{
        FetchKey, FetchLockError, MirrorStore, PostgresMirrorStore,
    };
    use crate::postgres::testing::{TestDatabase, connect};
    use crate::pypi::Sha256Digest;

    /// Longer than any test waits for a lock it should get.
    const WAIT: Duration = Duration::from_secs(120);

    fn demo() -> FetchKey {
        FetchKey::Page("demo".parse().unwrap())
    }

    /// Polls until `count` sessions of this database wait for an advisory lock.
    async fn until_waiting(database: &TestDatabase, count: i64) {
        let client = connect(&database.url).await.unwrap();
        for _ in 0..600 {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    &[],
                )
                .await
                .unwrap();
            if row.get::<_, i64>(0) == count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the number of sessions waiting for a lock never became {count}");
    }

    async fn two_replicas() -> Option<(TestDatabase, PostgresMirrorStore, PostgresMirrorStore)> {
        let database = TestDatabase::create().await?;
        let first = PostgresMirrorStore::open(&database.url).await.unwrap();
        let second = PostgresMirrorStore::open(&database.url).await.unwrap();
        Some((database, first, second))
    }

    #[tokio::test]
    async fn a_second_replica_waits_until_the_first_drops_its_guard() {
        let Some((database, first, second)) = two_replicas().await else {
            return;
        };
        let held = first.fetch_lock(&demo(), WAIT).await.unwrap();
        let other_key = FetchKey::File(Sha256Digest::of(b"demo"));
        let other = second.fetch_lock(&other_key, WAIT).await;
        assert!(other.is_ok(), "another key is not held up");
        let waiter = tokio::spawn(async move {
            let guard = second.fetch_lock(&demo(), WAIT).await;
            (second, guard.map(drop))
        });
        until_waiting(&database, 1).await;
        assert!(!waiter.is_finished(), "the lock is still held");
        drop(held);
        let (second, taken) = waiter.await.unwrap();
        taken.unwrap();
        drop((first, second, other));
        database.remove().await;
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_the_queue_and_a_cancelled_holder_frees_the_lock() {
        let Some((database, first, second)) = two_replicas().await else {
            return;
        };
        let (locked, holder_locked) = tokio::sync::oneshot::channel();
        let holder = tokio::spawn(async move {
            let _guard = first.fetch_lock(&demo(), WAIT).await.unwrap();
            let _ = locked.send(());
            std::future::pending::<()>().await
        });
        holder_locked.await.unwrap();
        let waiting_store = second.clone();
        let waiter = tokio::spawn(async move { waiting_store.fetch_lock(&demo(), WAIT).await });
        until_waiting(&database, 1).await;
        waiter.abort();
        // Without the cancel, the server would keep the session queued for WAIT.
        until_waiting(&database, 0).await;
        holder.abort();
        let _ = holder.await;
        let taken = second.fetch_lock(&demo(), WAIT).await;
        assert!(taken.is_ok(), "the aborted holder's lock was freed");
        drop((second, taken));
        database.remove().await;
    }

    #[tokio::test]
    async fn waiting_gives_up_after_the_wait_and_the_store_goes_on() {
        let Some((database, first, second)) = two_replicas().await else {
            return;
        };
        let held = first.fetch_lock(&demo(), WAIT).await.unwrap();
        let short = Duration::from_millis(200);
        let error = second.fetch_lock(&demo(), short).await.err().unwrap();
        assert!(
            matches!(&error, FetchLockError::TimedOut { key, waited }
                if *key == demo() && *waited == short),
            "{error}"
        );
        drop(held);
        assert!(second.fetch_lock(&demo(), WAIT).await.is_ok());
        drop((first, second));
        database.remove().await;
    }

    #[tokio::test]
    async fn locks_past_the_most_held_are_refused_and_records_still_answer() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let store = PostgresMirrorStore::open(&database.url).await.unwrap();
        let file = |index: usize| FetchKey::File(Sha256Digest::of(&index.to_be_bytes()));
        let mut held = Vec::new();
        for index in 0..MOST_HELD {
            held.push(store.fetch_lock(&file(index), WAIT).await.unwrap());
        }
        let refused = store
            .fetch_lock(&file(MOST_HELD), WAIT)
            .await
            .err()
            .unwrap();
        assert!(matches!(refused, FetchLockError::Busy { .. }), "{refused}");
        let project = "demo".parse().unwrap();
        assert_eq!(
            store.page(&project).await.unwrap(),
            None,
            "the pool is free"
        );
        held.pop();
        // The released lock's connection is kept for the next one once its ROLLBACK ran.
        let mut again = store.fetch_lock(&file(MOST_HELD), WAIT).await;
        while matches!(again, Err(FetchLockError::Busy { .. })) {
            tokio::task::yield_now().await;
            again = store.fetch_lock(&file(MOST_HELD), WAIT).await;
        }
        assert!(again.is_ok());
        drop((held, again, store));
        database.remove().await;
    }
}
