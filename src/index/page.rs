//! The page models: pure functions from records to the PEP 691 documents.

use std::collections::BTreeMap;

use crate::metadata::{FileRecord, ProjectRecord};
use crate::pypi::Version;
use crate::pypi::simple::{
    CoreMetadataRef, FileDetail, Meta, ProjectDetail, ProjectList, ProjectListEntry, Yanked,
};

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
    let mut versions: Vec<String> = Vec::new();
    for record in &records {
        if versions.last() != Some(&record.version) && !versions.contains(&record.version) {
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
