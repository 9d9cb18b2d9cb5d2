//! The old database, read from a copy. sled writes to a database when it opens it (its
//! configuration, a new segment), so the old directory is copied first and the copy opened.
//!
//! sled holds an exclusive `flock` on `index.sled/db` while a process has the database
//! open (a server, `edelweiss add`). The copy is made under a shared `flock` on that file,
//! taken without waiting: it is refused while a process holds the database, and while it
//! is held no edelweiss can open the database, so the copy is of a database at rest. A
//! lock changes nothing in the file.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::MoveError;
use crate::metadata::SledIndex;

pub struct SourceCopy {
    pub index: SledIndex,
    /// Removed when the move ends.
    _directory: tempfile::TempDir,
}

impl SourceCopy {
    /// Copies `data_dir/index.sled` into a temporary directory (under `TMPDIR`) and opens
    /// the copy.
    pub fn open(data_dir: &Path, cache_bytes: u64) -> Result<Self, MoveError> {
        let database = data_dir.join("index.sled");
        let lock_file = database.join("db");
        if !lock_file.is_file() {
            return Err(MoveError::NoDatabase {
                path: data_dir.to_path_buf(),
            });
        }
        let copy_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MoveError::Copy { path, source }
        };
        let lock = File::open(&lock_file).map_err(copy_error(&lock_file))?;
        match try_lock_shared(&lock) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(MoveError::InUse {
                    path: database.clone(),
                });
            }
            Err(error) => return Err(copy_error(&lock_file)(error)),
        }
        let directory = tempfile::Builder::new()
            .prefix("edelweiss-move-")
            .tempdir()
            .map_err(copy_error(&std::env::temp_dir()))?;
        let copied = directory.path().join("index.sled");
        copy_tree(&database, &copied)?;
        drop(lock);
        Ok(Self {
            index: SledIndex::open(&copied, cache_bytes)?,
            _directory: directory,
        })
    }
}

/// A shared `flock` on `file`, without waiting (released when the file is closed);
/// `WouldBlock` while another open file holds an exclusive one. (`File::try_lock_shared` is
/// newer than the crate's minimum Rust.)
fn try_lock_shared(file: &File) -> std::io::Result<()> {
    // SAFETY: flock only takes a lock on the open descriptor `file` owns for this call.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    match result {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Copies the directory `from` to `to`, files and subdirectories (sled keeps nothing else).
fn copy_tree(from: &Path, to: &Path) -> Result<(), MoveError> {
    let error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MoveError::Copy { path, source }
    };
    std::fs::create_dir_all(to).map_err(error(to))?;
    for entry in std::fs::read_dir(from).map_err(error(from))? {
        let entry = entry.map_err(error(from))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(error(&path))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&path, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&path, &target).map_err(error(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_held_open_is_refused_and_one_at_rest_is_read_from_a_copy() {
        let data_dir = tempfile::tempdir().unwrap();
        let held = SledIndex::open(&data_dir.path().join("index.sled"), 1 << 20).unwrap();
        assert!(matches!(
            SourceCopy::open(data_dir.path(), 1 << 20),
            Err(MoveError::InUse { .. })
        ));
        drop(held);
        let copy = SourceCopy::open(data_dir.path(), 1 << 20).unwrap();
        let reopened = SledIndex::open(&data_dir.path().join("index.sled"), 1 << 20);
        assert!(
            reopened.is_ok(),
            "the copy holds its own lock, not the original's"
        );
        drop(copy);
    }

    #[test]
    fn a_directory_without_a_database_is_refused() {
        let data_dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            SourceCopy::open(data_dir.path(), 1 << 20),
            Err(MoveError::NoDatabase { .. })
        ));
        assert_eq!(std::fs::read_dir(data_dir.path()).unwrap().count(), 0);
    }
}
