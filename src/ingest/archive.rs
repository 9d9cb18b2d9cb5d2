//! Archive validation: a wheel or sdist is opened from its spooled copy, every entry path,
//! size and link is checked before anything is read, and the core metadata is extracted and
//! compared with the filename. Messages quote entry names and fields through `excerpt`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use super::links::Links;
use super::tar_members::{MAX_LONG_NAME_BYTES, MemberKind, TarMembers};
use super::wheel_metadata;
use crate::pypi::{
    CoreMetadata, DistFilename, MetadataError, PackageName, SdistExtension, SdistFilename, Version,
    WheelFilename, WheelInfo, WheelInfoError, excerpt, parse_package_name,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    pub max_entries: u64,
    pub max_uncompressed_bytes: u64,
    pub max_metadata_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a valid {format} archive: {}", excerpt(.reason))]
    Unreadable {
        format: &'static str,
        reason: String,
    },
    #[error("archive has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("archive would unpack to more than {limit} bytes (zip bomb guard)")]
    TooLargeUnpacked { limit: u64 },
    #[error("archive has a {kind} of {size} bytes; at most {limit} are read")]
    RecordTooLarge {
        kind: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("archive entry `{}` is refused: {reason}", excerpt(.path))]
    Ambiguous { path: String, reason: &'static str },
    #[error(
        "archive entry `{}` is not a safe relative path (absolute, `..`, backslash or NUL)",
        excerpt(.path)
    )]
    UnsafePath { path: String },
    #[error(
        "archive entry `{}` is a link to `{}`, which resolves outside the archive",
        excerpt(.path),
        excerpt(.target)
    )]
    UnsafeLink { path: String, target: String },
    #[error(
        "archive entry `{}` would be written through the link `{}`",
        excerpt(.path),
        excerpt(.link)
    )]
    WrittenThroughLink { path: String, link: String },
    #[error(
        "archive entry `{}` is a hard link to the symbolic link `{}`",
        excerpt(.path),
        excerpt(.target)
    )]
    HardLinkToSymlink { path: String, target: String },
    #[error("archive entry `{}` resolves through too many links", excerpt(.path))]
    LinksTooDeep { path: String },
    #[error(
        "archive entry `{}` is not under the `{}/` directory",
        excerpt(.path),
        excerpt(.expected)
    )]
    OutsideTopDirectory { path: String, expected: String },
    #[error(
        "wheel has no `{}` directory (found: {})",
        excerpt(.expected),
        excerpt(.found)
    )]
    MissingDistInfo { expected: String, found: String },
    #[error(
        "wheel has more than one `.dist-info` directory ({}); installers refuse it",
        excerpt(.found)
    )]
    SeveralDistInfo { found: String },
    #[error("archive has no `{}`", excerpt(.path))]
    MissingFile { path: String },
    #[error("`{}` is larger than {limit} bytes", excerpt(.path))]
    MetadataTooLarge { path: String, limit: u64 },
    #[error("{}: {source}", excerpt(.path))]
    Metadata { path: String, source: MetadataError },
    #[error("WHEEL: {0}")]
    WheelInfo(#[from] WheelInfoError),
    #[error(
        "{} names project `{}`, but the filename is for `{}`",
        excerpt(.file),
        excerpt(.found),
        excerpt(.expected)
    )]
    NameMismatch {
        file: String,
        found: String,
        expected: String,
    },
    #[error(
        "{} says version `{}`, but the filename says `{}`",
        excerpt(.file),
        excerpt(.found),
        excerpt(.expected)
    )]
    VersionMismatch {
        file: String,
        found: String,
        expected: String,
    },
    #[error(
        "the filename claims tag `{}`, which WHEEL does not list",
        excerpt(.tag)
    )]
    TagMismatch { tag: String },
}

/// What ingest keeps from an archive.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub metadata: CoreMetadata,
    /// The wheel's METADATA bytes, served as the PEP 658 metadata file.
    pub metadata_file: Option<Vec<u8>>,
}

pub fn inspect(
    path: &Path,
    filename: &DistFilename,
    limits: &ArchiveLimits,
) -> Result<Inspected, ArchiveError> {
    match filename {
        DistFilename::Wheel(wheel) => inspect_wheel(path, wheel, limits),
        DistFilename::Sdist(sdist) if sdist.extension == SdistExtension::TarGz => {
            inspect_tar_sdist(path, sdist, limits)
        }
        DistFilename::Sdist(sdist) => inspect_zip_sdist(path, sdist, limits),
    }
}

/// Relative, no `..`, no backslash or NUL, no drive letter.
pub(super) fn check_entry_path(path: &str) -> Result<(), ArchiveError> {
    let unsafe_path = path.starts_with('/')
        || path.contains(['\\', '\0'])
        || path.split('/').any(|component| component == "..")
        || path.get(1..2) == Some(":");
    if unsafe_path || path.is_empty() {
        return Err(ArchiveError::UnsafePath {
            path: path.to_string(),
        });
    }
    Ok(())
}

/// Counts entries and the sizes a reader will use against the limits.
pub(super) struct Budget<'a> {
    limits: &'a ArchiveLimits,
    entries: u64,
    bytes: u64,
}

impl<'a> Budget<'a> {
    pub(super) fn new(limits: &'a ArchiveLimits) -> Self {
        Self {
            limits,
            entries: 0,
            bytes: 0,
        }
    }

    /// The bytes charged so far.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// One more entry of `size` bytes.
    pub(super) fn charge(&mut self, size: u64) -> Result<(), ArchiveError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        self.charge_bytes(size)
    }

    /// Bytes that are not an entry of their own, such as a long name record.
    pub(super) fn charge_bytes(&mut self, size: u64) -> Result<(), ArchiveError> {
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.max_uncompressed_bytes {
            return Err(ArchiveError::TooLargeUnpacked {
                limit: self.limits.max_uncompressed_bytes,
            });
        }
        Ok(())
    }
}

pub(super) fn read_bounded(
    reader: impl Read,
    path: &str,
    limit: u64,
) -> Result<Vec<u8>, ArchiveError> {
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| ArchiveError::Unreadable {
            format: "compressed",
            reason: format!("{path}: {error}"),
        })?;
    if bytes.len() as u64 > limit {
        return Err(ArchiveError::MetadataTooLarge {
            path: path.to_string(),
            limit,
        });
    }
    Ok(bytes)
}

pub(super) fn parse_metadata(bytes: &[u8], path: &str) -> Result<CoreMetadata, ArchiveError> {
    CoreMetadata::parse(bytes).map_err(|source| ArchiveError::Metadata {
        path: path.to_string(),
        source,
    })
}

pub(super) fn check_identity(
    metadata: &CoreMetadata,
    file: &str,
    name: &PackageName,
    version: &Version,
) -> Result<(), ArchiveError> {
    if &metadata.name != name {
        return Err(ArchiveError::NameMismatch {
            file: file.to_string(),
            found: metadata.display_name.clone(),
            expected: name.to_string(),
        });
    }
    if &metadata.version != version {
        return Err(ArchiveError::VersionMismatch {
            file: file.to_string(),
            found: metadata.version.to_string(),
            expected: version.to_string(),
        });
    }
    Ok(())
}

pub(super) type Zip = zip::ZipArchive<BufReader<File>>;

pub(super) fn open_zip(path: &Path, format: &'static str) -> Result<Zip, ArchiveError> {
    let unreadable = |reason: String| ArchiveError::Unreadable { format, reason };
    let file = File::open(path).map_err(|error| unreadable(error.to_string()))?;
    zip::ZipArchive::new(BufReader::new(file)).map_err(|error| unreadable(error.to_string()))
}

/// A zip entry's name, and its target when its Unix mode makes it a symbolic link (which
/// `unzip` and `bsdtar` create, though pip and `zipfile` write the target as a file).
pub(super) struct ZipEntry {
    pub(super) name: String,
    pub(super) link: Option<String>,
}

/// Checks every entry of a zip and returns the entries in order.
pub(super) fn zip_entries<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    limits: &ArchiveLimits,
    format: &'static str,
) -> Result<Vec<ZipEntry>, ArchiveError> {
    if archive.len() as u64 > limits.max_entries {
        return Err(ArchiveError::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    let mut budget = Budget::new(limits);
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = archive
            .by_index(index)
            .map_err(|error| ArchiveError::Unreadable {
                format,
                reason: error.to_string(),
            })?;
        let name = entry
            .name()
            .map_err(|error| ArchiveError::Unreadable {
                format,
                reason: error.to_string(),
            })?
            .into_owned();
        check_entry_path(&name)?;
        budget.charge(entry.size())?;
        let link = if entry.is_symlink() {
            let target = read_bounded(entry, &name, MAX_LONG_NAME_BYTES)?;
            Some(String::from_utf8_lossy(&target).into_owned())
        } else {
            None
        };
        entries.push(ZipEntry { name, link });
    }
    Ok(entries)
}

/// Applies the link rules of [`Links`] to a zip's entries, in order.
fn check_zip_links(entries: &[ZipEntry], root: &str) -> Result<(), ArchiveError> {
    let mut links = Links::new(root);
    for entry in entries {
        let path = entry.name.trim_end_matches('/');
        match &entry.link {
            Some(target) => links.add_symlink(path, target)?,
            None => links.check_entry(path)?,
        }
    }
    links.finish()
}

pub(super) fn read_zip_entry(
    archive: &mut Zip,
    path: &str,
    limit: u64,
    format: &'static str,
) -> Result<Vec<u8>, ArchiveError> {
    let entry = archive.by_name(path).map_err(|error| match error {
        zip::result::ZipError::FileNotFound => ArchiveError::MissingFile {
            path: path.to_string(),
        },
        error => ArchiveError::Unreadable {
            format,
            reason: error.to_string(),
        },
    })?;
    read_bounded(entry, path, limit)
}

fn inspect_wheel(
    path: &Path,
    wheel: &WheelFilename,
    limits: &ArchiveLimits,
) -> Result<Inspected, ArchiveError> {
    let mut archive = open_zip(path, "zip")?;
    let entries = zip_entries(&mut archive, limits, "zip")?;
    check_zip_links(&entries, "")?;
    let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
    let metadata = wheel_metadata::read(&mut archive, &names, wheel, limits)?;
    let wheel_path = format!("{}/WHEEL", metadata.dist_info);
    let info = WheelInfo::parse(&read_zip_entry(
        &mut archive,
        &wheel_path,
        limits.max_metadata_bytes,
        "zip",
    )?)?;
    if let Some(tag) = wheel.tags.iter().find(|tag| !info.tags.contains(tag)) {
        return Err(ArchiveError::TagMismatch {
            tag: tag.to_string(),
        });
    }
    Ok(Inspected {
        metadata: metadata.parsed,
        metadata_file: Some(metadata.bytes),
    })
}

/// An sdist unpacks into one `{name}-{version}/` directory holding `PKG-INFO`.
fn check_sdist_top(path: &str, sdist: &SdistFilename) -> Result<String, ArchiveError> {
    let top = path.split('/').next().unwrap_or_default();
    let matches = top.rsplit_once('-').is_some_and(|(name, version)| {
        parse_package_name(name).is_ok_and(|parsed| parsed == sdist.name)
            && version
                .parse::<Version>()
                .is_ok_and(|parsed| parsed == sdist.version)
    });
    if !matches {
        let expected = format!("{}-{}", sdist.name, sdist.version);
        return Err(ArchiveError::OutsideTopDirectory {
            path: path.to_string(),
            expected,
        });
    }
    Ok(top.to_string())
}

fn inspect_tar_sdist(
    path: &Path,
    sdist: &SdistFilename,
    limits: &ArchiveLimits,
) -> Result<Inspected, ArchiveError> {
    let file = File::open(path).map_err(|error| ArchiveError::Unreadable {
        format: "tar.gz",
        reason: error.to_string(),
    })?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let mut members = TarMembers::new(&mut archive)?;
    let mut budget = Budget::new(limits);
    let mut links: Option<Links> = None;
    let mut pkg_info = None;
    while let Some(member) = members.next_member(&mut budget)? {
        let entry_path = member.path.trim_start_matches("./").trim_end_matches('/');
        if entry_path.is_empty() || entry_path == "." {
            continue;
        }
        check_entry_path(entry_path)?;
        let top = check_sdist_top(entry_path, sdist)?;
        let links = links.get_or_insert_with(|| Links::new(&top));
        match (member.kind, &member.link) {
            (MemberKind::Symlink, Some(target)) => links.add_symlink(entry_path, target)?,
            (MemberKind::HardLink, Some(target)) => {
                check_hard_link_target(entry_path, target, sdist)?;
                links.check_hard_link(entry_path, target.trim_start_matches("./"))?;
            }
            _ => links.check_entry(entry_path)?,
        }
        if member.kind == MemberKind::File && entry_path == format!("{top}/PKG-INFO") {
            let bytes = read_bounded(member.data, entry_path, limits.max_metadata_bytes)?;
            pkg_info = Some((entry_path.to_string(), bytes));
        }
    }
    links.map(Links::finish).transpose()?;
    sdist_metadata(pkg_info, sdist)
}

/// Hard link targets are archive paths, not paths relative to the link.
fn check_hard_link_target(
    path: &str,
    target: &str,
    sdist: &SdistFilename,
) -> Result<(), ArchiveError> {
    let target_path = target.trim_start_matches("./");
    check_entry_path(target_path)
        .and_then(|()| check_sdist_top(target_path, sdist).map(drop))
        .map_err(|_| ArchiveError::UnsafeLink {
            path: path.to_string(),
            target: target.to_string(),
        })
}

fn inspect_zip_sdist(
    path: &Path,
    sdist: &SdistFilename,
    limits: &ArchiveLimits,
) -> Result<Inspected, ArchiveError> {
    let mut archive = open_zip(path, "zip")?;
    let entries = zip_entries(&mut archive, limits, "zip")?;
    let mut pkg_info_path = None;
    let mut root = None;
    for entry in &entries {
        let trimmed = entry.name.trim_end_matches('/');
        let top = check_sdist_top(trimmed, sdist)?;
        if entry.link.is_none() && trimmed == format!("{top}/PKG-INFO") {
            pkg_info_path = Some(entry.name.clone());
        }
        root.get_or_insert(top);
    }
    if let Some(root) = root {
        check_zip_links(&entries, &root)?;
    }
    let pkg_info = match pkg_info_path {
        Some(path) => Some((
            path.clone(),
            read_zip_entry(&mut archive, &path, limits.max_metadata_bytes, "zip")?,
        )),
        None => None,
    };
    sdist_metadata(pkg_info, sdist)
}

fn sdist_metadata(
    pkg_info: Option<(String, Vec<u8>)>,
    sdist: &SdistFilename,
) -> Result<Inspected, ArchiveError> {
    let expected = format!("{}-{}/PKG-INFO", sdist.name, sdist.version);
    let (path, bytes) = pkg_info.ok_or(ArchiveError::MissingFile { path: expected })?;
    let metadata = parse_metadata(&bytes, &path)?;
    check_identity(&metadata, &path, &sdist.name, &sdist.version)?;
    Ok(Inspected {
        metadata,
        metadata_file: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_must_stay_inside() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a\\b",
            "C:/x",
            "a\0b",
            "",
        ] {
            assert!(check_entry_path(bad).is_err(), "{bad:?}");
        }
        for good in ["a/b.py", "pkg-1.0.dist-info/METADATA", "a/..b/c"] {
            assert!(check_entry_path(good).is_ok(), "{good:?}");
        }
    }
}
