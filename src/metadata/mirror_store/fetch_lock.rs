//! One upstream fetch per page or file across the processes that share the mirror's records.
//! In one process `SingleFlight` already makes one fetch per key; a `FetchGuard` extends
//! that to every replica on one database: its holder fetches, and the next holder reads what
//! it stored instead of asking the upstream again. A store only one process opens (sled)
//! hands out guards that hold nothing.

use std::fmt;
use std::time::Duration;

use super::MirrorStoreError;
use super::advisory::HeldLock;
use crate::pypi::{PackageName, Sha256Digest};

/// What one fetch brings: a project's upstream page, or an upstream file by its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchKey {
    Page(PackageName),
    File(Sha256Digest),
}

/// Bump when the derivation of `FetchKey::lock_id` changes. Replicas of two versions side
/// by side then take different locks for one fetch, and at worst fetch it twice.
const LOCK_ID_VERSION: &str = "edelweiss fetch lock v1";

impl FetchKey {
    /// A 64-bit id for this fetch: the first 8 bytes (big-endian) of the sha256 of, in
    /// order and separated by NUL, `LOCK_ID_VERSION`, the kind (`page` or `file`), and the
    /// normalized project name or the file's hex digest. The kind keeps a page and a file
    /// apart whatever their names; 64 bits make a collision between two fetches in flight
    /// at once negligible (and one would only make them take turns).
    pub fn lock_id(&self) -> i64 {
        let (kind, key) = match self {
            Self::Page(name) => ("page", name.to_string()),
            Self::File(digest) => ("file", digest.to_hex()),
        };
        let input = [LOCK_ID_VERSION, kind, &key].join("\0");
        let digest = Sha256Digest::of(input.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_bytes()[..8]);
        i64::from_be_bytes(first)
    }
}

impl fmt::Display for FetchKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Page(name) => write!(formatter, "the upstream page of {name}"),
            Self::File(digest) => write!(formatter, "the upstream file {digest}"),
        }
    }
}

/// The right to fetch one key; whoever asks for it next waits until this is dropped. It
/// is released however it is dropped: returned, on a panic, or with a cancelled future.
#[must_use = "the lock is released when the guard is dropped"]
pub struct FetchGuard {
    _held: Option<HeldLock>,
}

impl FetchGuard {
    /// A guard that holds nothing: for a store one process owns, whose `SingleFlight`
    /// already makes one fetch per key.
    pub fn in_process() -> Self {
        Self { _held: None }
    }

    pub(super) fn held(lock: HeldLock) -> Self {
        Self { _held: Some(lock) }
    }
}

/// Why no fetch lock was taken. `TimedOut` and `Busy` are worth fetching without one: at
/// worst the upstream is asked twice, as without the lock at all.
#[derive(Debug, thiserror::Error)]
pub enum FetchLockError {
    #[error("waited {waited:?} for another replica's fetch of {key}")]
    TimedOut { key: FetchKey, waited: Duration },
    #[error("every connection for fetch locks is in use; {key} is fetched without one")]
    Busy { key: FetchKey },
    #[error(transparent)]
    Store(#[from] MirrorStoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_ids_are_pinned_and_keep_pages_and_files_apart() {
        let page = FetchKey::Page("Demo_Project".parse().unwrap());
        let file = FetchKey::File(Sha256Digest::of(b"demo"));
        // A changed derivation fails here: bump LOCK_ID_VERSION with it.
        assert_eq!(page.lock_id(), -4943536545862600175);
        assert_eq!(file.lock_id(), 8438086222772613271);
        let name_as_hex = FetchKey::Page(Sha256Digest::of(b"demo").to_hex().parse().unwrap());
        assert_ne!(name_as_hex.lock_id(), file.lock_id());
    }
}
