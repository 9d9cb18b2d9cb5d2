//! Which releases of a project page lack a wheel for a target but have an sdist to build
//! one from: what on-demand builds and prewarming queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::pypi::simple::ProjectDetail;
use crate::pypi::{DistFilename, PackageName, Sha256Digest, Target, Version};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingWheel {
    pub version: Version,
    pub sdist_filename: String,
    pub sdist_sha256: Sha256Digest,
}

/// Whether the page lists an unyanked wheel of `version` that installs on `target`: the one
/// answer on-demand builds and prewarm both go by.
pub fn release_has_wheel(detail: &ProjectDetail, version: &Version, target: &Target) -> bool {
    detail
        .files
        .iter()
        .filter(|file| !file.yanked.is_yanked())
        .any(|file| match file.filename.parse::<DistFilename>() {
            Ok(DistFilename::Wheel(wheel)) => &wheel.version == version && target.accepts(&wheel),
            _ => false,
        })
}

/// For the newest `releases` final, non-yanked releases of `detail`: those with an sdist
/// (with a sha256) and no wheel that installs on `target`.
pub fn missing_wheels(
    detail: &ProjectDetail,
    target: &Target,
    releases: usize,
) -> Vec<MissingWheel> {
    let mut versions: Vec<Version> = detail
        .files
        .iter()
        .filter(|file| !file.yanked.is_yanked())
        .filter_map(|file| {
            file.filename
                .parse::<DistFilename>()
                .ok()
                .map(|parsed| parsed.version().clone())
        })
        .filter(|version| !version.any_prerelease())
        .collect();
    versions.sort();
    versions.dedup();
    versions
        .iter()
        .rev()
        .take(releases)
        .filter(|version| !release_has_wheel(detail, version, target))
        .filter_map(|version| {
            let (sdist_filename, sdist_sha256) = detail
                .files
                .iter()
                .filter(|file| !file.yanked.is_yanked())
                .filter(|file| {
                    matches!(file.filename.parse::<DistFilename>(), Ok(DistFilename::Sdist(sdist)) if &sdist.version == version)
                })
                .find_map(|file| {
                    let digest = file.sha256()?.parse().ok()?;
                    Some((file.filename.clone(), digest))
                })?;
            Some(MissingWheel {
                version: version.clone(),
                sdist_filename,
                sdist_sha256,
            })
        })
        .collect()
}

/// What each project's page lacks for each target, as of a version of the page
/// (`index::CachedPage::version`): a page request checks its releases once per version,
/// not on every request.
#[derive(Default)]
pub struct KnownMissing {
    entries: Mutex<HashMap<(PackageName, Target), KnownAt>>,
}

/// The version of a page, and what it lacked.
type KnownAt = (u64, Arc<[MissingWheel]>);

/// Past this many (project, target) pairs the table starts over.
const MAX_KNOWN: usize = 16_384;

impl KnownMissing {
    pub fn get(
        &self,
        project: &PackageName,
        target: &Target,
        version: u64,
    ) -> Option<Arc<[MissingWheel]>> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(&(project.clone(), target.clone()))
            .filter(|(known_at, _)| *known_at == version)
            .map(|(_, missing)| missing.clone())
    }

    pub fn remember(
        &self,
        project: &PackageName,
        target: &Target,
        version: u64,
        missing: Arc<[MissingWheel]>,
    ) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_KNOWN {
            entries.clear();
        }
        entries.insert((project.clone(), target.clone()), (version, missing));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::simple::{FileDetail, Meta};
    use std::collections::BTreeMap;

    fn file(filename: &str) -> FileDetail {
        let mut file = FileDetail::new(filename, format!("/files/x/{filename}"));
        let digest = Sha256Digest::of(filename.as_bytes()).to_hex();
        file.hashes = BTreeMap::from([("sha256".into(), digest)]);
        file
    }

    #[test]
    fn finds_the_newest_releases_without_a_wheel_for_the_target() {
        let target: Target = "cp313-musllinux_1_2_x86_64".parse().unwrap();
        let detail = ProjectDetail {
            meta: Meta::default(),
            name: "psycopg2".into(),
            versions: vec![],
            files: vec![
                file("psycopg2-2.9.9.tar.gz"),
                file("psycopg2-2.9.10.tar.gz"),
                file("psycopg2-2.9.10-cp313-cp313-manylinux_2_17_x86_64.whl"),
                file("psycopg2-3.0.0a1.tar.gz"),
            ],
        };
        let missing = missing_wheels(&detail, &target, 1);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].version.to_string(), "2.9.10");
        assert_eq!(missing_wheels(&detail, &target, 2).len(), 2);
        let mut built = detail.clone();
        built
            .files
            .push(file("psycopg2-2.9.10-cp313-cp313-musllinux_1_2_x86_64.whl"));
        assert!(missing_wheels(&built, &target, 1).is_empty());
        let mut pure = detail;
        pure.files.push(file("psycopg2-2.9.10-py3-none-any.whl"));
        assert!(missing_wheels(&pure, &target, 1).is_empty());
    }
}
