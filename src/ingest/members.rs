//! Archives read for what is in them rather than ingested: chosen files of an sdist (its
//! `Cargo.lock` files), and a Rust crate unpacked into a directory. Both go through the same
//! member reader, path rules and budget as `inspect`, so a hostile archive is refused here
//! exactly as an upload would be.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::archive::{
    ArchiveError, ArchiveLimits, Budget, check_entry_path, read_bounded, zip_entries,
};
use super::tar_members::{MemberKind, TarMembers};
use crate::pypi::excerpt;

/// The regular files of an sdist (`.tar.gz`, or `.zip` when `zip`) whose archive path
/// `wanted` accepts, at most `max_files` of them, each read whole up to
/// `limits.max_metadata_bytes`. Links are never followed: a wanted path that is a link is
/// not a file.
pub fn sdist_files(
    bytes: &[u8],
    zip: bool,
    wanted: &dyn Fn(&str) -> bool,
    max_files: usize,
    limits: &ArchiveLimits,
) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let mut files = Vec::new();
    let mut keep = |path: &str, reader: &mut dyn Read| -> Result<(), ArchiveError> {
        if files.len() == max_files {
            return Err(ArchiveError::Ambiguous {
                path: path.to_string(),
                reason: "the archive has too many files of this name",
            });
        }
        files.push((
            path.to_string(),
            read_bounded(reader, path, limits.max_metadata_bytes)?,
        ));
        Ok(())
    };
    if zip {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|error| {
            ArchiveError::Unreadable {
                format: "zip",
                reason: error.to_string(),
            }
        })?;
        for entry in zip_entries(&mut archive, limits, "zip")? {
            if entry.link.is_none() && !entry.name.ends_with('/') && wanted(&entry.name) {
                let mut file =
                    archive
                        .by_name(&entry.name)
                        .map_err(|error| ArchiveError::Unreadable {
                            format: "zip",
                            reason: error.to_string(),
                        })?;
                keep(&entry.name, &mut file)?;
            }
        }
        return Ok(files);
    }
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut members = TarMembers::new(&mut archive)?;
    let mut budget = Budget::new(limits);
    while let Some(mut member) = members.next_member(&mut budget)? {
        let path = member.path.trim_start_matches("./").to_string();
        check_entry_path(path.trim_end_matches('/'))?;
        if member.kind == MemberKind::File && !path.ends_with('/') && wanted(&path) {
            keep(&path, &mut member.data)?;
        }
    }
    Ok(files)
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl UnpackError {
    /// Whether the archive is at fault (it is refused the same way every time), rather than
    /// the disk it was written to.
    pub fn is_archive(&self) -> bool {
        matches!(self, Self::Archive(_))
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Unpacks a `.crate` (a `.tar.gz` of one `top/` directory) into `destination`, which then
/// holds `top/`. Only directories and regular files are written, each path checked and each
/// file created anew (never through or over anything), executable bits kept and nothing
/// else of the archive's modes; links and special files are refused. Returns the bytes
/// unpacked, as the budget counted them.
pub fn unpack_crate(
    bytes: &[u8],
    top: &str,
    destination: &Path,
    limits: &ArchiveLimits,
) -> Result<u64, UnpackError> {
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut members = TarMembers::new(&mut archive)?;
    let mut budget = Budget::new(limits);
    while let Some(mut member) = members.next_member(&mut budget)? {
        let path = member
            .path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() || path == "." {
            continue;
        }
        check_entry_path(&path)?;
        if path != top && !path.starts_with(&format!("{top}/")) {
            return Err(ArchiveError::OutsideTopDirectory {
                path,
                expected: top.to_string(),
            }
            .into());
        }
        let target = destination.join(&path);
        match member.kind {
            MemberKind::Directory => std::fs::create_dir_all(&target).map_err(io_error(&target))?,
            MemberKind::File => {
                let executable = member
                    .data
                    .header()
                    .mode()
                    .is_ok_and(|mode| mode & 0o111 != 0);
                write_new_file(&target, &mut member.data, executable, &path)?;
            }
            kind => {
                return Err(ArchiveError::Ambiguous {
                    path,
                    reason: match kind {
                        MemberKind::Symlink => "a crate may hold no symbolic link",
                        MemberKind::HardLink => "a crate may hold no hard link",
                        _ => "a crate may hold no device or FIFO",
                    },
                }
                .into());
            }
        }
    }
    Ok(budget.bytes())
}

fn write_new_file(
    target: &Path,
    data: &mut dyn Read,
    executable: bool,
    path: &str,
) -> Result<(), UnpackError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => UnpackError::Archive(ArchiveError::Ambiguous {
                path: path.to_string(),
                reason: "it appears twice",
            }),
            _ => io_error(target)(error),
        })?;
    std::io::copy(data, &mut file).map_err(|error| match error.kind() {
        // The tar reader failing mid-member: the archive, not the disk.
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
            UnpackError::Archive(ArchiveError::Unreadable {
                format: "tar.gz",
                reason: format!("{}: {error}", excerpt(path)),
            })
        }
        _ => io_error(target)(error),
    })?;
    file.flush().map_err(io_error(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ArchiveLimits = ArchiveLimits {
        max_entries: 100,
        max_uncompressed_bytes: 1 << 20,
        max_metadata_bytes: 1 << 10,
    };

    /// `(path, type flag, data or link target, mode)`, each path written as given (the `tar`
    /// crate's builder refuses the hostile ones).
    fn tar_gz(entries: &[(&str, u8, &[u8], u32)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, kind, data, mode) in entries {
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_entry_type(tar::EntryType::new(*kind));
            header.set_mode(*mode);
            let data: &[u8] = if *kind == b'2' || *kind == b'1' {
                header.as_old_mut().linkname[..data.len()].copy_from_slice(data);
                &[]
            } else {
                data
            };
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn a_crate_unpacks_its_files_and_directories_with_executable_bits() {
        let bytes = tar_gz(&[
            ("demo-1.0.0/Cargo.toml", b'0', b"[package]\n", 0o644),
            ("demo-1.0.0/src/", b'5', b"", 0o755),
            ("demo-1.0.0/src/lib.rs", b'0', b"pub fn f() {}\n", 0o600),
            ("demo-1.0.0/configure", b'0', b"#!/bin/sh\n", 0o775),
        ]);
        let dir = tempfile::tempdir().unwrap();
        unpack_crate(&bytes, "demo-1.0.0", dir.path(), &LIMITS).unwrap();
        let top = dir.path().join("demo-1.0.0");
        assert_eq!(
            std::fs::read(top.join("src/lib.rs")).unwrap(),
            b"pub fn f() {}\n"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |path: &str| {
            std::fs::metadata(top.join(path))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("configure"), 0o755);
        assert_eq!(mode("src/lib.rs"), 0o644);
    }

    /// What a hostile crate tries, and what is refused: nothing of it escapes `destination`.
    #[test]
    fn hostile_crates_are_refused() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tar_gz(&[("demo-1.0.0/../../escape", b'0', b"x", 0o644)]),
                "not a safe relative path",
            ),
            (
                tar_gz(&[("other-1.0.0/src/lib.rs", b'0', b"x", 0o644)]),
                "is not under",
            ),
            (
                tar_gz(&[("demo-1.0.0/link", b'2', b"/etc/passwd", 0o777)]),
                "no symbolic link",
            ),
            (
                tar_gz(&[("demo-1.0.0/hard", b'1', b"demo-1.0.0/a", 0o644)]),
                "no hard link",
            ),
            (
                tar_gz(&[
                    ("demo-1.0.0/a", b'0', b"first", 0o644),
                    ("demo-1.0.0/a", b'0', b"second", 0o644),
                ]),
                "appears twice",
            ),
            (
                tar_gz(&[("demo-1.0.0/big", b'0', &vec![0; 2 << 20], 0o644)]),
                "more than",
            ),
        ];
        for (bytes, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let destination = dir.path().join("vendor");
            std::fs::create_dir(&destination).unwrap();
            let error = unpack_crate(&bytes, "demo-1.0.0", &destination, &LIMITS).unwrap_err();
            assert!(error.is_archive(), "{error}");
            assert!(
                error.to_string().contains(expected),
                "{error} lacks {expected:?}"
            );
            assert!(!dir.path().join("escape").exists());
        }
    }

    #[test]
    fn wanted_sdist_files_are_read_bounded() {
        let bytes = tar_gz(&[
            ("demo-1.0/Cargo.lock", b'0', b"version = 4\n", 0o644),
            ("demo-1.0/src/Cargo.lock", b'2', b"../Cargo.lock", 0o777),
            ("demo-1.0/README", b'0', b"hello", 0o644),
        ]);
        let wanted = |path: &str| path.ends_with("Cargo.lock");
        let files = sdist_files(&bytes, false, &wanted, 4, &LIMITS).unwrap();
        assert_eq!(
            files,
            [("demo-1.0/Cargo.lock".to_string(), b"version = 4\n".to_vec())]
        );
        let large = tar_gz(&[("demo-1.0/Cargo.lock", b'0', &vec![b'#'; 2048], 0o644)]);
        assert!(matches!(
            sdist_files(&large, false, &wanted, 4, &LIMITS),
            Err(ArchiveError::MetadataTooLarge { .. })
        ));
        let many = tar_gz(&[
            ("demo-1.0/a/Cargo.lock", b'0', b"", 0o644),
            ("demo-1.0/b/Cargo.lock", b'0', b"", 0o644),
        ]);
        assert!(sdist_files(&many, false, &wanted, 1, &LIMITS).is_err());
    }
}
