//! PyPI's JSON API documents (`/pypi/<project>/json`, `/pypi/<project>/<version>/json`),
//! with the fields lock-file tools read: pip-tools' `--generate-hashes` takes each file's
//! `digests.sha256` from `releases[<version>]` where `packagetype` is `bdist_wheel` or
//! `sdist`, matched to the files it found by `url`. No PEP governs this API; the shape is
//! PyPI's (<https://docs.pypi.org/api/json/>), unknown values are `null` as there.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// `/pypi/<project>/json` (with `releases`) or `/pypi/<project>/<version>/json` (without).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectJson {
    pub info: Info,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub releases: Option<Releases>,
    /// The files of the release `info` describes.
    pub urls: Vec<ReleaseFile>,
}

/// The release `version` of the project, from its core metadata where a wheel's metadata
/// file is held here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub summary: Option<String>,
    pub requires_dist: Option<Vec<String>>,
    pub requires_python: Option<String>,
    /// Whether every file of the release is yanked (PEP 592).
    pub yanked: bool,
    pub yanked_reason: Option<String>,
}

/// Release files by version, in version order (a JSON object keeps the order it is
/// written in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Releases(pub Vec<(String, Vec<ReleaseFile>)>);

impl Serialize for Releases {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (version, files) in &self.0 {
            map.serialize_entry(version, files)?;
        }
        map.end()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PackageType {
    #[serde(rename = "bdist_wheel")]
    Wheel,
    #[serde(rename = "sdist")]
    Sdist,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digests {
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseFile {
    pub filename: String,
    /// Absolute, as pip spells the link it found on the simple page: pip-tools matches
    /// the two by string.
    pub url: String,
    pub digests: Digests,
    pub packagetype: PackageType,
    /// A wheel's Python tag (`py3`, `cp313`), `source` for an sdist.
    pub python_version: String,
    pub requires_python: Option<String>,
    pub size: Option<u64>,
    pub upload_time_iso_8601: Option<String>,
    pub yanked: bool,
    pub yanked_reason: Option<String>,
}
