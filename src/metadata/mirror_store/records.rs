//! The mirror's records, as every backend stores them (JSON where a backend keeps JSON; the
//! sled trees of older data directories hold these same shapes).

use serde::{Deserialize, Serialize};

use crate::pypi::Sha256Digest;
use crate::pypi::simple::ProjectDetail;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPage {
    /// The upstream base URL the page came from (no credentials).
    pub upstream: String,
    /// Unix seconds of the last fetch or successful revalidation.
    pub fetched_at: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The page as the upstream gave it, with absolute file URLs.
    pub detail: ProjectDetail,
}

/// An upstream's confirmation that a cached page is current (a 304): when, and the
/// validators to send next time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revalidation {
    pub fetched_at: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamFile {
    pub upstream: String,
    /// Absolute URL of the file on the upstream (no credentials).
    pub url: String,
    pub metadata_sha256: Option<Sha256Digest>,
}

/// The PEP 658 metadata file read from an upstream wheel once it was stored here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractedMetadata {
    /// The wheel it was read from: a record for other bytes under the same name is ignored.
    pub wheel_sha256: Sha256Digest,
    pub outcome: Extraction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Extraction {
    /// The METADATA blob, served as `<wheel>.metadata`.
    Stored { metadata_sha256: Sha256Digest },
    /// Why the wheel has no metadata file (bounded: built from `excerpt`s).
    Refused { reason: String },
}
