//! The page of a mirrored project: the upstream's files, with URLs pointing back at
//! edelweiss so every download is cached, plus the files held here.

use std::collections::{BTreeMap, HashSet};

use super::page::file_detail;
use crate::metadata::FileRecord;
use crate::pypi::simple::{CoreMetadataRef, FileDetail, Meta, ProjectDetail};
use crate::pypi::{Sha256Digest, Version};

/// An upstream file as edelweiss lists it. Files without a sha256 cannot be verified or
/// content-addressed, so they keep their upstream URL and are not cached.
fn rewrite(mut file: FileDetail) -> FileDetail {
    let Some(digest) = file
        .sha256()
        .and_then(|hex| hex.parse::<Sha256Digest>().ok())
    else {
        file.core_metadata = CoreMetadataRef::Absent(false);
        file.dist_info_metadata = CoreMetadataRef::Absent(false);
        return file;
    };
    file.url = format!("/files/{digest}/{}", file.filename);
    file.hashes = BTreeMap::from([("sha256".to_string(), digest.to_hex())]);
    let metadata = match file
        .core_metadata
        .sha256_hex()
        .and_then(|hex| hex.parse::<Sha256Digest>().ok())
    {
        Some(metadata) => CoreMetadataRef::sha256(&metadata.to_hex()),
        None => CoreMetadataRef::Absent(false),
    };
    file.core_metadata = metadata.clone();
    file.dist_info_metadata = metadata;
    file
}

fn version_order(versions: impl Iterator<Item = String>) -> Vec<String> {
    let mut keyed: Vec<(Option<Version>, String)> =
        versions.map(|text| (text.parse().ok(), text)).collect();
    keyed.sort();
    keyed.dedup_by(|a, b| a.1 == b.1);
    keyed.into_iter().map(|(_, text)| text).collect()
}

/// Upstream files first, as the upstream ordered them; then local files whose filename
/// the upstream does not have (an upstream file of the same name wins: it is canonical).
pub fn merged_detail(
    name: &str,
    upstream: Option<&ProjectDetail>,
    local: &[FileRecord],
) -> ProjectDetail {
    let mut files: Vec<FileDetail> = upstream
        .map(|page| page.files.iter().cloned().map(rewrite).collect())
        .unwrap_or_default();
    let upstream_names: HashSet<String> = files.iter().map(|file| file.filename.clone()).collect();
    files.extend(
        local
            .iter()
            .filter(|record| !upstream_names.contains(&record.filename))
            .map(file_detail),
    );
    let upstream_versions = upstream
        .map(|page| page.versions.clone())
        .unwrap_or_default();
    let local_versions = local.iter().map(|record| record.version.clone());
    ProjectDetail {
        meta: Meta::default(),
        name: name.to_string(),
        versions: version_order(upstream_versions.into_iter().chain(local_versions)),
        files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::FileKind;
    use crate::pypi::simple::Yanked;

    fn upstream_file(filename: &str, sha: Option<&str>) -> FileDetail {
        FileDetail {
            filename: filename.into(),
            url: format!("https://files.example/{filename}"),
            hashes: sha
                .map(|sha| BTreeMap::from([("sha256".to_string(), sha.to_string())]))
                .unwrap_or_default(),
            requires_python: Some(">=3.9".into()),
            core_metadata: CoreMetadataRef::sha256(&"c".repeat(64)),
            dist_info_metadata: CoreMetadataRef::sha256(&"c".repeat(64)),
            yanked: Yanked::Reason("old".into()),
            size: Some(5),
            upload_time: Some("2020-01-01T00:00:00.000000Z".into()),
        }
    }

    #[test]
    fn points_verifiable_files_at_edelweiss_and_adds_local_wheels() {
        let sha = "a".repeat(64);
        let upstream = ProjectDetail {
            meta: Meta::default(),
            name: "psycopg2".into(),
            versions: vec!["2.9.9".into(), "2.9.10".into()],
            files: vec![
                upstream_file("psycopg2-2.9.10.tar.gz", Some(&sha)),
                upstream_file("psycopg2-2.9.9.tar.gz", None),
            ],
        };
        let built = FileRecord {
            project: "psycopg2".into(),
            filename: "psycopg2-2.9.10-cp313-cp313-musllinux_1_2_x86_64.whl".into(),
            version: "2.9.10".into(),
            kind: FileKind::Wheel,
            sha256: Sha256Digest::of(b"wheel"),
            size: 5,
            upload_time: "2026-01-01T00:00:00.000000Z".into(),
            requires_python: None,
            metadata_sha256: None,
            yanked: None,
            origin: crate::metadata::FileOrigin::Built,
        };
        let merged = merged_detail("psycopg2", Some(&upstream), std::slice::from_ref(&built));
        assert_eq!(merged.versions, ["2.9.9", "2.9.10"]);
        assert_eq!(merged.files.len(), 3);
        let sdist = &merged.files[0];
        assert_eq!(sdist.url, format!("/files/{sha}/psycopg2-2.9.10.tar.gz"));
        assert_eq!(
            sdist.core_metadata.sha256_hex(),
            Some("c".repeat(64).as_str())
        );
        assert_eq!(sdist.yanked, Yanked::Reason("old".into()));
        assert_eq!(sdist.requires_python.as_deref(), Some(">=3.9"));
        let unverifiable = &merged.files[1];
        assert_eq!(
            unverifiable.url,
            "https://files.example/psycopg2-2.9.9.tar.gz"
        );
        assert_eq!(unverifiable.core_metadata, CoreMetadataRef::Absent(false));
        assert_eq!(merged.files[2].filename, built.filename);
    }
}
