//! The page models: pure functions from records to the PEP 691 documents.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::metadata::{FileRecord, ProjectRecord};
use crate::pypi::simple::{
    CoreMetadataRef, FileDetail, Hashes, Meta, ProjectDetail, ProjectList, ProjectListEntry, Yanked,
};
use crate::pypi::{DistFilename, Version};

/// A stored file as a page lists it. Taken, not copied: a page can hold many thousand.
pub(crate) fn file_detail(record: FileRecord) -> FileDetail {
    let sha256 = record.sha256.to_hex();
    let core_metadata = match record.metadata_sha256 {
        Some(digest) => CoreMetadataRef::sha256(digest.to_hex()),
        None => CoreMetadataRef::Absent(false),
    };
    FileDetail {
        // Root-relative, so it works under every index prefix.
        url: format!("/files/{sha256}/{}", record.filename),
        filename: record.filename,
        hashes: Hashes::sha256(sha256),
        requires_python: record.requires_python,
        dist_info_metadata: core_metadata.clone(),
        core_metadata,
        yanked: Yanked::from_reason(record.yanked.as_deref()),
        size: Some(record.size),
        upload_time: Some(record.upload_time),
    }
}

/// The files by version (PEP 440 order, unparsable ones first), then by filename.
pub fn project_detail(project: &ProjectRecord, records: Vec<FileRecord>) -> ProjectDetail {
    // Sorted as positions, not records: moving a 40,000-file list about costs more than
    // the comparisons. A filename appears once per project, so no two keys are equal.
    let mut order: Vec<(Option<Version>, usize)> = records
        .iter()
        .enumerate()
        .map(|(position, record)| (record.version.parse().ok(), position))
        .collect();
    order.sort_unstable_by(|(a, a_at), (b, b_at)| {
        a.cmp(b)
            .then_with(|| records[*a_at].filename.cmp(&records[*b_at].filename))
    });
    // A set beside the list: a project of 40,000 releases would otherwise compare each
    // version with every one before it.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut versions: Vec<String> = Vec::new();
    for (_, position) in &order {
        let version = records[*position].version.as_str();
        if seen.insert(version) {
            versions.push(version.to_string());
        }
    }
    drop(seen);
    let mut records: Vec<Option<FileRecord>> = records.into_iter().map(Some).collect();
    let files = order
        .into_iter()
        .filter_map(|(_, position)| records[position].take())
        .map(file_detail)
        .collect();
    ProjectDetail {
        meta: Meta::default(),
        name: project.name.clone(),
        versions,
        files,
    }
}

pub fn project_list(projects: &[ProjectRecord]) -> ProjectList {
    let projects = projects
        .iter()
        .map(|project| ProjectListEntry {
            name: project.name.clone(),
        })
        .collect();
    ProjectList {
        meta: Meta::default(),
        projects,
    }
}

/// Which of a project's files a page shows: all, or (`on_demand.wheels_only` on the
/// target-pinned pages) no sdists, so a builder without compilers fails fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    All,
    WheelsOnly,
}

impl View {
    pub fn apply(self, detail: &ProjectDetail) -> Cow<'_, ProjectDetail> {
        match self {
            Self::All => Cow::Borrowed(detail),
            Self::WheelsOnly => {
                let mut shown = detail.clone();
                shown.files.retain(|file| {
                    !matches!(
                        file.filename.parse::<DistFilename>(),
                        Ok(DistFilename::Sdist(_))
                    )
                });
                Cow::Owned(shown)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Body, render_detail};
    use crate::metadata::{FileKind, FileOrigin};
    use crate::pypi::Sha256Digest;

    fn record(filename: &str, version: &str, yanked: Option<&str>, metadata: bool) -> FileRecord {
        FileRecord {
            project: "demo".into(),
            filename: filename.into(),
            version: version.into(),
            kind: FileKind::Wheel,
            sha256: Sha256Digest::of(filename.as_bytes()),
            size: 1_500,
            upload_time: "2025-06-01T12:00:00.000000Z".into(),
            requires_python: metadata.then(|| ">=3.8".into()),
            metadata_sha256: metadata.then(|| Sha256Digest::of(version.as_bytes())),
            yanked: yanked.map(str::to_string),
            origin: FileOrigin::Uploaded,
        }
    }

    /// The PEP 691 document, byte for byte: files in PEP 440 order (versions that do not
    /// parse first), then by filename; each version once.
    #[test]
    fn renders_the_records_in_version_order() {
        let project = ProjectRecord {
            name: "demo".into(),
            display_name: "Demo".into(),
            uploaded: true,
        };
        let records = vec![
            record("demo-10.0-py3-none-any.whl", "10.0", None, true),
            record("demo-2.0.tar.gz", "2.0", Some("broken"), false),
            record("demo-2.0-py3-none-any.whl", "2.0", Some(""), true),
            record("demo-2.0.0-py2-none-any.whl", "2.0.0", None, false),
            record("demo-nightly.tar.gz", "nightly", None, false),
        ];
        let detail = project_detail(&project, records);
        let json = render_detail(&detail, Body::Json);
        insta::assert_snapshot!(std::str::from_utf8(&json).unwrap());
    }
}
