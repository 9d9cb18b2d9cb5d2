//! What a move did, as the lines `edelweiss migrate --from-data-dir` prints.

use std::fmt;

use super::blobs::BlobCounts;
use super::records::{BuildCounts, IndexCounts, MirrorCounts};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub blobs: BlobCounts,
    pub index: IndexCounts,
    pub mirror: MirrorCounts,
    pub builds: BuildCounts,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            blobs,
            index,
            mirror,
            builds,
        } = self;
        writeln!(
            f,
            "blobs: {} copied, {} already present; all {} verified by reading them back",
            blobs.copied,
            blobs.present,
            blobs.copied + blobs.present
        )?;
        writeln!(
            f,
            "projects: {}; files: {} copied, {} already present ({} yanks updated)",
            index.projects, index.files_copied, index.files_present, index.yanks_updated
        )?;
        writeln!(
            f,
            "mirrored pages: {} copied, {} already present; extracted metadata: {} copied, {} already present",
            mirror.pages_copied,
            mirror.pages_present,
            mirror.extracted_copied,
            mirror.extracted_present
        )?;
        writeln!(
            f,
            "builds: {} copied ({} running, queued again), {} already present; build keys: {} copied, {} already present",
            builds.builds_copied,
            builds.requeued,
            builds.builds_present,
            builds.keys_copied,
            builds.keys_present
        )
    }
}
