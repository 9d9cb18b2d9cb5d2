//! One writer per blob in this process. Concurrent puts of the same digest take turns, so
//! the first stores it and the others find it stored instead of uploading it again. Between
//! processes the store itself decides: a `file://` store belongs to one process, and S3
//! refuses the second create of a key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

use crate::pypi::Sha256Digest;

type Held = Arc<Mutex<HashMap<Sha256Digest, Arc<TurnLock<()>>>>>;

#[derive(Debug, Clone, Default)]
pub struct DigestLocks {
    held: Held,
}

/// The turn to write one digest; the next writer of it goes when this is dropped.
pub struct DigestTurn {
    held: Held,
    digest: Sha256Digest,
    turn: Option<OwnedMutexGuard<()>>,
}

impl DigestLocks {
    pub async fn turn(&self, digest: Sha256Digest) -> DigestTurn {
        let lock = {
            let mut held = self
                .held
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // A writer cancelled while it waited leaves its digest's lock unheld.
            held.retain(|_, lock| Arc::strong_count(lock) > 1);
            held.entry(digest).or_default().clone()
        };
        DigestTurn {
            held: self.held.clone(),
            digest,
            turn: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for DigestTurn {
    fn drop(&mut self) {
        self.turn.take();
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Only the map still holds the lock when no writer waits for it.
        if held
            .get(&self.digest)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            held.remove(&self.digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writers_of_one_digest_take_turns_and_leave_nothing_behind() {
        let locks = DigestLocks::default();
        let digest = Sha256Digest::of(b"blob");
        let first = locks.turn(digest).await;
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move { drop(locks.turn(digest).await) }
        });
        let other = locks.turn(Sha256Digest::of(b"other blob")).await;
        drop(other);
        assert!(!waiting.is_finished());
        drop(first);
        waiting.await.unwrap();
        assert!(locks.held.lock().unwrap().is_empty());
    }
}
