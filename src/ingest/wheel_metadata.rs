//! A wheel's METADATA, the file PEP 658 serves beside it. It is read from the wheel's one
//! top-level `.dist-info` directory, which must be named for the filename's project and
//! version (pip and uv refuse a wheel with two), bounded in size, parsed, and checked
//! against the filename. An upload gets it while its archive is inspected; a wheel the
//! mirror stores gets it from [`extract`], which reads nothing else of the archive.

use std::path::Path;

use super::archive::{
    ArchiveError, ArchiveLimits, Zip, check_identity, open_zip, parse_metadata, read_zip_entry,
};
use crate::pypi::{CoreMetadata, PackageName, Version, WheelFilename, parse_package_name};

#[derive(Debug, Clone)]
pub struct WheelMetadata {
    /// The `.dist-info` directory it was read from, without a trailing slash.
    pub dist_info: String,
    /// The METADATA file as the wheel holds it: the bytes PEP 658 serves.
    pub bytes: Vec<u8>,
    pub parsed: CoreMetadata,
}

/// The METADATA of the wheel spooled at `path`, for a wheel that is served whatever this
/// answers (one the mirror stored after verifying its upstream's sha256). Only the entry
/// count and METADATA's size are bounded: nothing else is read, nothing is unpacked.
pub fn extract(
    path: &Path,
    wheel: &WheelFilename,
    limits: &ArchiveLimits,
) -> Result<WheelMetadata, ArchiveError> {
    let mut archive = open_zip(path, "zip")?;
    if archive.len() as u64 > limits.max_entries {
        return Err(ArchiveError::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    let names = archive
        .file_names()
        .map(|name| name.map(|name| name.into_owned()))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|error| ArchiveError::Unreadable {
            format: "zip",
            reason: error.to_string(),
        })?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    read(&mut archive, &names, wheel, limits)
}

/// Reads METADATA from the one `.dist-info` directory among `names` (the archive's entry
/// names) and checks it against the filename.
pub(super) fn read(
    archive: &mut Zip,
    names: &[&str],
    wheel: &WheelFilename,
    limits: &ArchiveLimits,
) -> Result<WheelMetadata, ArchiveError> {
    let dist_info = dist_info_dir(names, wheel)?;
    let path = format!("{dist_info}/METADATA");
    let copies = names.iter().filter(|name| **name == path).count();
    if copies > 1 {
        return Err(ArchiveError::Ambiguous {
            path,
            reason: "the archive holds more than one entry of that name",
        });
    }
    let bytes = read_zip_entry(archive, &path, limits.max_metadata_bytes, "zip")?;
    let parsed = parse_metadata(&bytes, &path)?;
    check_identity(&parsed, &path, &wheel.name, &wheel.version)?;
    Ok(WheelMetadata {
        dist_info,
        bytes,
        parsed,
    })
}

/// The wheel's top-level `.dist-info` directories, sorted and without repeats.
fn dist_info_dirs<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut found: Vec<&str> = names
        .iter()
        .filter_map(|name| {
            name.split('/')
                .next()
                .filter(|top| top.ends_with(".dist-info"))
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// The one `.dist-info` directory, which must be `{name}-{version}.dist-info` for the
/// filename's project and version (in any spelling that normalizes to them).
fn dist_info_dir(names: &[&str], wheel: &WheelFilename) -> Result<String, ArchiveError> {
    let found = dist_info_dirs(names);
    let expected = format!(
        "{}-{}.dist-info",
        wheel.name.as_dist_info_name(),
        wheel.version
    );
    match found.as_slice() {
        [one] if dist_info_matches(one, &wheel.name, &wheel.version) => Ok(one.to_string()),
        [] | [_] => Err(ArchiveError::MissingDistInfo {
            expected,
            found: match found.is_empty() {
                true => "none".to_string(),
                false => found.join(", "),
            },
        }),
        several => Err(ArchiveError::SeveralDistInfo {
            found: several.join(", "),
        }),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel() -> WheelFilename {
        "Demo_Pkg-1.0-py3-none-any.whl".parse().unwrap()
    }

    #[test]
    fn the_one_dist_info_directory_must_be_the_filenames() {
        let names = ["demo_pkg/__init__.py", "demo.pkg-1.0.0.dist-info/METADATA"];
        assert_eq!(
            dist_info_dir(&names, &wheel()).unwrap(),
            "demo.pkg-1.0.0.dist-info"
        );
        let other = ["other-1.0.dist-info/METADATA"];
        let error = dist_info_dir(&other, &wheel()).unwrap_err().to_string();
        assert!(error.contains("found: other-1.0.dist-info"), "{error}");
        let none = ["demo_pkg/__init__.py"];
        let error = dist_info_dir(&none, &wheel()).unwrap_err().to_string();
        assert!(error.contains("found: none"), "{error}");
    }

    #[test]
    fn two_dist_info_directories_are_refused_even_when_one_matches() {
        let names = [
            "demo_pkg-1.0.dist-info/METADATA",
            "evil-6.6.dist-info/METADATA",
        ];
        let error = dist_info_dir(&names, &wheel()).unwrap_err().to_string();
        assert!(
            error.contains("demo_pkg-1.0.dist-info, evil-6.6.dist-info"),
            "{error}"
        );
    }
}
