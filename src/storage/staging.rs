//! The staging files of a `file://` store that a crash leaves behind.
//!
//! object_store's `LocalFileSystem` writes every put into `<target>#<n>` (n = 1, 2, … the
//! first free number) next to its target and renames or links it into place on completion.
//! A process killed mid-write leaves that file for good: the next write of the same blob
//! takes the next free number, and listing skips such names. The names are exact: a blob
//! key ends in its 64 hex digits (`StorageKey::Blob`), so `<64 hex>#<digits>` can only be
//! staging, never a committed blob.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::blob_store::StorageError;

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweptStaging {
    pub files: u64,
    pub bytes: u64,
}

/// Whether `name` is object_store's staging name for a blob key's last segment.
fn is_blob_staging_name(name: &str) -> bool {
    let Some((digest, number)) = name.split_once('#') else {
        return false;
    };
    digest.len() == 64
        && digest
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        && !number.is_empty()
        && number.bytes().all(|byte| byte.is_ascii_digit())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The entries of `dir`; nothing if it does not exist.
fn entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, StorageError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.collect::<Result<_, _>>().map_err(io_error(dir)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(io_error(dir)(source)),
    }
}

/// The fan-out directories `sha256/<2>/<2>/` under `root`, where blobs and their staging
/// files live.
fn fan_out_directories(root: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let mut level = vec![root.join("sha256")];
    for _ in 0..2 {
        let mut next = Vec::new();
        for dir in &level {
            for entry in entries(dir)? {
                if entry.file_type().map_err(io_error(dir))?.is_dir() {
                    next.push(entry.path());
                }
            }
        }
        level = next;
    }
    Ok(level)
}

/// Removes the blob staging files under `root` last modified before `cutoff`. A store
/// belongs to one running edelweiss, so at its start every staging file is a dead write's;
/// the cutoff spares a write that began since.
pub fn sweep_staging(root: &Path, cutoff: SystemTime) -> Result<SweptStaging, StorageError> {
    let mut swept = SweptStaging::default();
    for dir in fan_out_directories(root)? {
        for entry in entries(&dir)? {
            let staging = entry.file_name().to_str().is_some_and(is_blob_staging_name);
            if !staging {
                continue;
            }
            let path = entry.path();
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(io_error(&path)(source)),
            };
            if !metadata.is_file() || metadata.modified().is_ok_and(|time| time >= cutoff) {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    swept.files += 1;
                    swept.bytes += metadata.len();
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error(&path)(source)),
            }
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::Sha256Digest;
    use crate::storage::StorageKey;

    #[test]
    fn only_staging_names_of_blob_keys_are_staging() {
        let hex = Sha256Digest::of(b"abc").to_hex();
        assert!(is_blob_staging_name(&format!("{hex}#1")));
        assert!(is_blob_staging_name(&format!("{hex}#12")));
        for name in [
            hex.clone(),
            format!("{hex}#"),
            format!("{hex}#1a"),
            format!("{}#1", &hex[1..]),
            format!("{}#1", hex.to_uppercase()),
            "notes#1".to_string(),
        ] {
            assert!(!is_blob_staging_name(&name), "{name}");
        }
    }

    #[test]
    fn sweeps_old_staging_files_and_leaves_blobs_and_new_writes() {
        let root = tempfile::tempdir().unwrap();
        let blob = |content: &[u8]| {
            let path = root
                .path()
                .join(StorageKey::Blob(Sha256Digest::of(content)).path().as_ref());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            path
        };
        let committed = blob(b"committed");
        std::fs::write(&committed, b"committed").unwrap();
        let staging = |path: &Path, number: u32| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!("#{number}"));
            PathBuf::from(name)
        };
        let dead = [staging(&committed, 1), staging(&blob(b"partial"), 3)];
        for path in &dead {
            std::fs::write(path, b"half a blob").unwrap();
        }
        let cutoff = SystemTime::now() + std::time::Duration::from_secs(1);
        let swept = sweep_staging(root.path(), cutoff).unwrap();
        assert_eq!(
            swept,
            SweptStaging {
                files: 2,
                bytes: 22
            }
        );
        assert!(dead.iter().all(|path| !path.exists()));
        assert_eq!(std::fs::read(&committed).unwrap(), b"committed");

        let live = staging(&committed, 2);
        std::fs::write(&live, b"being written").unwrap();
        let earlier = SystemTime::now() - std::time::Duration::from_secs(60);
        assert_eq!(
            sweep_staging(root.path(), earlier).unwrap(),
            SweptStaging::default()
        );
        assert!(live.exists(), "a write newer than the cutoff is left alone");
    }

    #[test]
    fn an_empty_or_missing_store_has_nothing_to_sweep() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("not-yet");
        assert_eq!(
            sweep_staging(&missing, SystemTime::now()).unwrap(),
            SweptStaging::default()
        );
    }
}
