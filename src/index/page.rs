//! The page models: pure functions from records to the PEP 691 documents.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use crate::metadata::{FileRecord, ProjectRecord};
use crate::pypi::simple::{
    CoreMetadataRef, FileDetail, Meta, ProjectDetail, ProjectList, ProjectListEntry, Yanked,
};
use crate::pypi::{DistFilename, Version};

/// URL of a stored file; root-relative so it works under every index prefix.
pub fn file_url(record: &FileRecord) -> String {
    format!("/files/{}/{}", record.sha256, record.filename)
}

pub(crate) fn file_detail(record: &FileRecord) -> FileDetail {
    let core_metadata = match record.metadata_sha256 {
        Some(digest) => CoreMetadataRef::sha256(&digest.to_hex()),
        None => CoreMetadataRef::Absent(false),
    };
    FileDetail {
        filename: record.filename.clone(),
        url: file_url(record),
        hashes: BTreeMap::from([("sha256".to_string(), record.sha256.to_hex())]),
        requires_python: record.requires_python.clone(),
        dist_info_metadata: core_metadata.clone(),
        core_metadata,
        yanked: Yanked::from_reason(record.yanked.as_deref()),
        size: Some(record.size),
        upload_time: Some(record.upload_time.clone()),
    }
}

fn sort_key(record: &FileRecord) -> (Option<Version>, String) {
    (record.version.parse().ok(), record.filename.clone())
}

pub fn project_detail(project: &ProjectRecord, records: &[FileRecord]) -> ProjectDetail {
    let mut records: Vec<&FileRecord> = records.iter().collect();
    records.sort_by_cached_key(|record| sort_key(record));
    // A set beside the list: a project of 40,000 releases would otherwise compare each
    // version with every one before it.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut versions: Vec<String> = Vec::new();
    for record in &records {
        if seen.insert(record.version.as_str()) {
            versions.push(record.version.clone());
        }
    }
    ProjectDetail {
        meta: Meta::default(),
        name: project.name.clone(),
        versions,
        files: records.into_iter().map(file_detail).collect(),
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
