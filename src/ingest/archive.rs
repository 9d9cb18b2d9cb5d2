//! Archive validation: a wheel or sdist is opened from its spooled copy, every entry path
//! and size is checked before anything is read, and the core metadata is extracted and
//! compared with the filename.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use crate::pypi::{
    CoreMetadata, DistFilename, MetadataError, PackageName, SdistExtension, SdistFilename, Version,
    WheelFilename, WheelInfo, WheelInfoError, parse_package_name,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    pub max_entries: u64,
    pub max_uncompressed_bytes: u64,
    pub max_metadata_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a valid {format} archive: {reason}")]
    Unreadable {
        format: &'static str,
        reason: String,
    },
    #[error("archive has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("archive would unpack to more than {limit} bytes (zip bomb guard)")]
    TooLargeUnpacked { limit: u64 },
    #[error(
        "archive entry `{path}` is not a safe relative path (absolute, `..`, backslash or NUL)"
    )]
    UnsafePath { path: String },
    #[error("archive entry `{path}` is a link to `{target}`, outside the archive")]
    UnsafeLink { path: String, target: String },
    #[error("archive entry `{path}` is not under the `{expected}/` directory")]
    OutsideTopDirectory { path: String, expected: String },
    #[error("wheel has no `{expected}` directory (found: {found})")]
    MissingDistInfo { expected: String, found: String },
    #[error("archive has no `{path}`")]
    MissingFile { path: String },
    #[error("`{path}` is larger than {limit} bytes")]
    MetadataTooLarge { path: String, limit: u64 },
    #[error("{path}: {source}")]
    Metadata { path: String, source: MetadataError },
    #[error("WHEEL: {0}")]
    WheelInfo(#[from] WheelInfoError),
    #[error("{file} names project `{found}`, but the filename is for `{expected}`")]
    NameMismatch {
        file: String,
        found: String,
        expected: String,
    },
    #[error("{file} says version `{found}`, but the filename says `{expected}`")]
    VersionMismatch {
        file: String,
        found: String,
        expected: String,
    },
    #[error("the filename claims tag `{tag}`, which WHEEL does not list")]
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
fn check_entry_path(path: &str) -> Result<(), ArchiveError> {
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

/// Counts entries and declared sizes against the limits.
struct Budget<'a> {
    limits: &'a ArchiveLimits,
    entries: u64,
    bytes: u64,
}

impl<'a> Budget<'a> {
    fn new(limits: &'a ArchiveLimits) -> Self {
        Self {
            limits,
            entries: 0,
            bytes: 0,
        }
    }

    fn charge(&mut self, size: u64) -> Result<(), ArchiveError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.max_uncompressed_bytes {
            return Err(ArchiveError::TooLargeUnpacked {
                limit: self.limits.max_uncompressed_bytes,
            });
        }
        Ok(())
    }
}

fn read_bounded(reader: impl Read, path: &str, limit: u64) -> Result<Vec<u8>, ArchiveError> {
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

fn parse_metadata(bytes: &[u8], path: &str) -> Result<CoreMetadata, ArchiveError> {
    CoreMetadata::parse(bytes).map_err(|source| ArchiveError::Metadata {
        path: path.to_string(),
        source,
    })
}

fn check_identity(
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

type Zip = zip::ZipArchive<BufReader<File>>;

fn open_zip(path: &Path, format: &'static str) -> Result<Zip, ArchiveError> {
    let unreadable = |reason: String| ArchiveError::Unreadable { format, reason };
    let file = File::open(path).map_err(|error| unreadable(error.to_string()))?;
    zip::ZipArchive::new(BufReader::new(file)).map_err(|error| unreadable(error.to_string()))
}

/// Checks every entry of a zip and returns the entry names.
fn zip_entry_names(
    archive: &mut Zip,
    limits: &ArchiveLimits,
    format: &'static str,
) -> Result<Vec<String>, ArchiveError> {
    if archive.len() as u64 > limits.max_entries {
        return Err(ArchiveError::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    let mut budget = Budget::new(limits);
    let mut names = Vec::with_capacity(archive.len());
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
        names.push(name);
    }
    Ok(names)
}

fn read_zip_entry(
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

fn dist_info_matches(directory: &str, name: &PackageName, version: &Version) -> bool {
    let Some(stem) = directory.strip_suffix(".dist-info") else {
        return false;
    };
    let Some((dist_name, dist_version)) = stem.rsplit_once('-') else {
        return false;
    };
    parse_package_name(dist_name).is_ok_and(|parsed| &parsed == name)
        && dist_version
            .parse::<Version>()
            .is_ok_and(|parsed| &parsed == version)
}

fn inspect_wheel(
    path: &Path,
    wheel: &WheelFilename,
    limits: &ArchiveLimits,
) -> Result<Inspected, ArchiveError> {
    let mut archive = open_zip(path, "zip")?;
    let names = zip_entry_names(&mut archive, limits, "zip")?;
    let mut dist_infos: Vec<&str> = names
        .iter()
        .filter_map(|name| {
            name.split('/')
                .next()
                .filter(|top| top.ends_with(".dist-info"))
        })
        .collect();
    dist_infos.sort_unstable();
    dist_infos.dedup();
    let expected = format!(
        "{}-{}.dist-info",
        wheel.name.as_dist_info_name(),
        wheel.version
    );
    let Some(dist_info) = dist_infos
        .iter()
        .find(|dir| dist_info_matches(dir, &wheel.name, &wheel.version))
    else {
        let found = if dist_infos.is_empty() {
            "none".to_string()
        } else {
            dist_infos.join(", ")
        };
        return Err(ArchiveError::MissingDistInfo { expected, found });
    };
    let metadata_path = format!("{dist_info}/METADATA");
    let metadata_file = read_zip_entry(
        &mut archive,
        &metadata_path,
        limits.max_metadata_bytes,
        "zip",
    )?;
    let metadata = parse_metadata(&metadata_file, &metadata_path)?;
    check_identity(&metadata, &metadata_path, &wheel.name, &wheel.version)?;
    let wheel_path = format!("{dist_info}/WHEEL");
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
        metadata,
        metadata_file: Some(metadata_file),
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

fn check_link(path: &str, target: &str) -> Result<(), ArchiveError> {
    let depth = path.split('/').count().saturating_sub(1);
    let mut level: i64 = depth as i64;
    for component in target.split('/') {
        match component {
            ".." => level -= 1,
            "" | "." => {}
            _ => level += 1,
        }
        if level < 1 {
            break;
        }
    }
    if target.starts_with('/') || target.contains('\0') || level < 1 {
        return Err(ArchiveError::UnsafeLink {
            path: path.to_string(),
            target: target.to_string(),
        });
    }
    Ok(())
}

fn inspect_tar_sdist(
    path: &Path,
    sdist: &SdistFilename,
    limits: &ArchiveLimits,
) -> Result<Inspected, ArchiveError> {
    let unreadable = |reason: String| ArchiveError::Unreadable {
        format: "tar.gz",
        reason,
    };
    let file = File::open(path).map_err(|error| unreadable(error.to_string()))?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let mut budget = Budget::new(limits);
    let mut pkg_info = None;
    for entry in archive
        .entries()
        .map_err(|error| unreadable(error.to_string()))?
    {
        let entry = entry.map_err(|error| unreadable(error.to_string()))?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let entry_path = raw_path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if entry_path.is_empty() || entry_path == "." {
            continue;
        }
        check_entry_path(&entry_path)?;
        budget.charge(entry.header().size().unwrap_or(u64::MAX))?;
        let top = check_sdist_top(&entry_path, sdist)?;
        if let Some(target) = entry.link_name_bytes() {
            let target = String::from_utf8_lossy(&target).into_owned();
            if entry.header().entry_type().is_hard_link() {
                // Hard link targets are archive paths, not paths relative to the link.
                check_entry_path(&target)
                    .and_then(|()| check_sdist_top(&target, sdist).map(drop))
                    .map_err(|_| ArchiveError::UnsafeLink {
                        path: entry_path.clone(),
                        target,
                    })?;
            } else {
                check_link(&entry_path, &target)?;
            }
        }
        if entry_path == format!("{top}/PKG-INFO") {
            pkg_info = Some((
                entry_path.clone(),
                read_bounded(entry, &entry_path, limits.max_metadata_bytes)?,
            ));
        }
    }
    sdist_metadata(pkg_info, sdist)
}

fn inspect_zip_sdist(
    path: &Path,
    sdist: &SdistFilename,
    limits: &ArchiveLimits,
) -> Result<Inspected, ArchiveError> {
    let mut archive = open_zip(path, "zip")?;
    let names = zip_entry_names(&mut archive, limits, "zip")?;
    let mut pkg_info_path = None;
    for name in &names {
        let trimmed = name.trim_end_matches('/');
        let top = check_sdist_top(trimmed, sdist)?;
        if trimmed == format!("{top}/PKG-INFO") {
            pkg_info_path = Some(name.clone());
        }
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

    #[test]
    fn links_must_resolve_inside_the_archive() {
        assert!(check_link("pkg-1.0/a/link", "../b").is_ok());
        assert!(check_link("pkg-1.0/link", "../../etc/passwd").is_err());
        assert!(check_link("pkg-1.0/link", "/etc/passwd").is_err());
        assert!(check_link("pkg-1.0/link", "..").is_err());
    }
}
