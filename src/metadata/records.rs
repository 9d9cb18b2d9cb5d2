//! Persisted record types. They are stored as JSON; `SledIndex::FORMAT` versions them.

use serde::{Deserialize, Serialize};

use crate::pypi::Sha256Digest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// Normalized (PEP 503) name; the record's key.
    pub name: String,
    /// The spelling of the first file's metadata, for page titles.
    pub display_name: String,
    /// Whether any file was uploaded here (not built): such a project hides its upstream
    /// namesake. Kept here so a page request need not read every file record.
    #[serde(default)]
    pub uploaded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Wheel,
    Sdist,
}

/// How a file came to be held here; only uploads claim a project name against upstreams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileOrigin {
    #[default]
    Uploaded,
    /// Built by the build farm from an sdist (local or mirrored).
    Built,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub project: String,
    pub filename: String,
    pub version: String,
    pub kind: FileKind,
    pub sha256: Sha256Digest,
    pub size: u64,
    /// RFC 3339, UTC.
    pub upload_time: String,
    pub requires_python: Option<String>,
    /// The blob holding the wheel's METADATA file (PEP 658), if one was extracted.
    pub metadata_sha256: Option<Sha256Digest>,
    /// PEP 592: `None` is not yanked; `Some("")` is yanked without a reason.
    pub yanked: Option<String>,
    #[serde(default)]
    pub origin: FileOrigin,
}
