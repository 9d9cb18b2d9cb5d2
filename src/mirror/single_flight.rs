//! One in-flight job per key: concurrent callers share the first caller's result. The job
//! runs on its own task, so a caller that goes away does not cancel it for the others.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

type Flight<V> = Shared<BoxFuture<'static, V>>;

pub struct SingleFlight<K, V: Clone> {
    inflight: Arc<Mutex<HashMap<K, Flight<V>>>>,
}

impl<K, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            inflight: Arc::default(),
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `job` unless one is already running for `key`; returns its result and whether
    /// this call started it.
    pub async fn run<F>(&self, key: K, job: impl FnOnce() -> F) -> (V, bool)
    where
        F: std::future::Future<Output = V> + Send + 'static,
    {
        let (flight, leader) = self.join(key, job);
        (flight.await, leader)
    }

    /// Like `run`, but returns the shared result without waiting for it, so a leader can
    /// consume a side channel its job feeds (a download streamed to its own client).
    pub fn join<F>(&self, key: K, job: impl FnOnce() -> F) -> (Shared<BoxFuture<'static, V>>, bool)
    where
        F: std::future::Future<Output = V> + Send + 'static,
    {
        {
            let mut inflight = self
                .inflight
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match inflight.get(&key) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let landing = Landing {
                        registry: self.inflight.clone(),
                        key: key.clone(),
                    };
                    let work = job();
                    let task = tokio::spawn(async move {
                        let _landing = landing;
                        work.await
                    });
                    // A panicking job is a bug; surface it instead of hanging the waiters.
                    let flight = task
                        .map(|joined| joined.expect("single-flight job panicked"))
                        .boxed()
                        .shared();
                    inflight.insert(key, flight.clone());
                    (flight, true)
                }
            }
        }
    }
}

/// Takes a finished flight off the registry when its task ends, by returning or by
/// panicking, so the next caller for the key starts a new job.
struct Landing<K: Eq + Hash, V: Clone> {
    registry: Arc<Mutex<HashMap<K, Flight<V>>>>,
    key: K,
}

impl<K: Eq + Hash, V: Clone> Drop for Landing<K, V> {
    fn drop(&mut self) {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flights: Arc<SingleFlight<&str, usize>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let callers = (0..20).map(|_| {
            let (flights, runs) = (flights.clone(), runs.clone());
            tokio::spawn(async move {
                flights
                    .run("key", || async move {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        runs.fetch_add(1, Ordering::SeqCst) + 1
                    })
                    .await
            })
        });
        let results = futures::future::join_all(callers).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|result| result.as_ref().unwrap().0 == 1));
        assert_eq!(
            results
                .iter()
                .filter(|result| result.as_ref().unwrap().1)
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_hold_its_key() {
        let flights: Arc<SingleFlight<&str, usize>> = Arc::default();
        let first = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("key", || async {
                        panic!("the job failed in a way nobody expected")
                    })
                    .await
            })
        };
        assert!(first.await.is_err(), "the waiter sees the panic");
        let (value, leader) = flights.run("key", || async { 7 }).await;
        assert_eq!((value, leader), (7, true), "a later call starts a new job");
    }
}
