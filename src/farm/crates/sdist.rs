//! The crates an sdist pins: every `Cargo.lock` in the archive (a maturin or setuptools-rust
//! sdist carries its workspace's, and sometimes more), read as data with the archive rules
//! of ingest, merged into one set.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::lock::{LockError, LockedCrate, MAX_LOCKED_PACKAGES, parse_lock};
use crate::ingest::{ArchiveLimits, sdist_files};
use crate::pypi::Sha256Digest;
use crate::storage::{BlobStore, StorageError};

/// Bounds of the scan for lock files: entries and unpacked bytes as ingest counts them, and
/// the largest lock file read (a big workspace's is a few hundred KiB).
const SCAN_LIMITS: ArchiveLimits = ArchiveLimits {
    max_entries: 200_000,
    max_uncompressed_bytes: 8 << 30,
    max_metadata_bytes: 8 << 20,
};
/// Lock files read from one sdist.
const MAX_LOCK_FILES: usize = 32;

/// The crates an sdist's Cargo.lock files pin: part of its build key, and what is vendored
/// for its build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedCrates {
    /// The lock files read, by archive path.
    pub locks: Vec<String>,
    /// Every crates.io crate they pin, once each, sorted by name and version.
    pub crates: Vec<LockedCrate>,
    /// Why they cannot be vendored: the build fails with this before any container runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl LockedCrates {
    fn refused(locks: Vec<String>, reason: String) -> Self {
        Self {
            locks,
            crates: Vec::new(),
            refused: Some(reason),
        }
    }

    /// The key's view: the lock files, each crate's name, version and digest (or the refusal).
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("strings and digests serialize")
    }
}

fn is_cargo_lock(path: &str) -> bool {
    path.rsplit('/').next() == Some("Cargo.lock")
}

/// The crates `filename`'s Cargo.lock files pin; `None` when it has none. A lock that cannot
/// be vendored (a git source, a bad checksum) gives a refusal, which fails the build.
pub fn locked_crates(filename: &str, bytes: &[u8]) -> Option<LockedCrates> {
    let zip = filename.ends_with(".zip");
    let files = match sdist_files(bytes, zip, &is_cargo_lock, MAX_LOCK_FILES, &SCAN_LIMITS) {
        Ok(files) if files.is_empty() => return None,
        Ok(files) => files,
        Err(error) => {
            return Some(LockedCrates::refused(
                Vec::new(),
                format!("{filename} cannot be read for its Cargo.lock files: {error}"),
            ));
        }
    };
    let locks: Vec<String> = files.iter().map(|(path, _)| path.clone()).collect();
    match merge(&files) {
        Ok(crates) => Some(LockedCrates {
            locks,
            crates,
            refused: None,
        }),
        Err(error) => Some(LockedCrates::refused(locks, error.to_string())),
    }
}

/// Sdists whose crates a `LockedCratesCache` remembers.
const REMEMBERED_SDISTS: usize = 1024;

/// The crates of recently requested sdists, by sdist digest: on-demand page views request the
/// same builds again and again, and each reading decompresses the whole archive.
#[derive(Default)]
pub struct LockedCratesCache {
    remembered: tokio::sync::Mutex<HashMap<Sha256Digest, Option<LockedCrates>>>,
}

impl LockedCratesCache {
    /// [`locked_crates`] of the stored sdist `(filename, digest)`.
    pub async fn of(
        &self,
        store: &BlobStore,
        sdist: &(String, Sha256Digest),
    ) -> Result<Option<LockedCrates>, StorageError> {
        if let Some(known) = self.remembered.lock().await.get(&sdist.1) {
            return Ok(known.clone());
        }
        let bytes = store.get_bytes(sdist.1).await?;
        let filename = sdist.0.clone();
        let locked = tokio::task::spawn_blocking(move || locked_crates(&filename, &bytes))
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        let mut remembered = self.remembered.lock().await;
        if remembered.len() >= REMEMBERED_SDISTS {
            remembered.clear();
        }
        remembered.insert(sdist.1, locked.clone());
        Ok(locked)
    }
}

fn merge(files: &[(String, Vec<u8>)]) -> Result<Vec<LockedCrate>, LockError> {
    let mut crates = BTreeMap::new();
    for (path, bytes) in files {
        let text = std::str::from_utf8(bytes).map_err(|_| LockError::Invalid {
            path: path.clone(),
            reason: "it is not UTF-8".into(),
        })?;
        for locked in parse_lock(path, text)? {
            let key = (locked.name.clone(), locked.version.clone());
            match crates.get(&key) {
                Some(held) if held != &locked => {
                    return Err(LockError::Conflict {
                        name: locked.name.to_string(),
                        version: locked.version.to_string(),
                    });
                }
                _ => {
                    crates.insert(key, locked);
                }
            }
            if crates.len() > MAX_LOCKED_PACKAGES {
                return Err(LockError::TooMany);
            }
        }
    }
    Ok(crates.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_archives::tar_gz;

    fn lock(name: &str, checksum: &str) -> String {
        format!(
            "version = 3\n[[package]]\nname = \"{name}\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{checksum}\"\n"
        )
    }

    #[test]
    fn every_lock_file_of_the_sdist_is_merged() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let sdist = tar_gz(&[
            ("demo-1.0/PKG-INFO", b"Metadata-Version: 2.1\n"),
            ("demo-1.0/Cargo.lock", lock("zeta", &a).as_bytes()),
            (
                "demo-1.0/bindings/Cargo.lock",
                (lock("alpha", &b) + &lock("zeta", &a)[11..]).as_bytes(),
            ),
        ]);
        let locked = locked_crates("demo-1.0.tar.gz", &sdist).unwrap();
        assert_eq!(
            locked.locks,
            ["demo-1.0/Cargo.lock", "demo-1.0/bindings/Cargo.lock"]
        );
        let names: Vec<String> = locked.crates.iter().map(LockedCrate::directory).collect();
        assert_eq!(names, ["alpha-1.0.0", "zeta-1.0.0"]);
        assert_eq!(locked.refused, None);
    }

    #[test]
    fn an_sdist_without_a_lock_has_no_crates() {
        let sdist = tar_gz(&[("demo-1.0/Cargo.toml", b"[package]\nname = \"demo\"\n")]);
        assert_eq!(locked_crates("demo-1.0.tar.gz", &sdist), None);
    }

    /// One crate version with two checksums cannot be vendored as either.
    #[test]
    fn conflicting_checksums_are_refused() {
        let sdist = tar_gz(&[
            (
                "demo-1.0/Cargo.lock",
                lock("zeta", &"a".repeat(64)).as_bytes(),
            ),
            (
                "demo-1.0/sub/Cargo.lock",
                lock("zeta", &"c".repeat(64)).as_bytes(),
            ),
        ]);
        let locked = locked_crates("demo-1.0.tar.gz", &sdist).unwrap();
        assert_eq!(
            locked.refused.as_deref(),
            Some("the sdist's Cargo.lock files give crate `zeta` 1.0.0 two checksums")
        );
        assert!(locked.crates.is_empty());
    }

    #[test]
    fn an_unreadable_archive_is_refused_by_name() {
        let locked = locked_crates("demo-1.0.tar.gz", b"not gzip").unwrap();
        assert!(
            locked
                .refused
                .unwrap()
                .starts_with("demo-1.0.tar.gz cannot be read for its Cargo.lock files")
        );
    }
}
