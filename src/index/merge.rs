//! The page of a mirrored project: the upstream's files, with URLs pointing back at
//! edelweiss so every download is cached, plus the files held here. Only `/files/` paths
//! and http(s) URLs are ever listed: the mirror vets pages when it fetches them, and this
//! is the last guard for a page it kept before that (or any other path in).

use std::collections::HashSet;

use super::page::file_detail;
use crate::metadata::FileRecord;
use crate::mirror::quoted;
use crate::pypi::simple::{CoreMetadataRef, FileDetail, Hashes, Meta, ProjectDetail};
use crate::pypi::{Sha256Digest, Version};

/// Why an upstream file cannot be listed: its filename is not one path segment of plain
/// printable ASCII.
fn unlistable_filename(filename: &str) -> Option<&'static str> {
    let safe_char = |c: char| c.is_ascii_graphic() && !matches!(c, '/' | '\\' | '?' | '#' | '%');
    let plain =
        !filename.is_empty() && !filename.starts_with('.') && filename.chars().all(safe_char);
    (!plain).then_some("the filename is not a plain file name")
}

/// An upstream URL as it may be listed: absolute http(s), in the `url` crate's form.
fn web_url(url: &str) -> Result<String, &'static str> {
    url::Url::parse(url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .map(String::from)
        .ok_or("the URL is not http or https")
}

fn log_unlisted(file: &FileDetail, reason: &str) {
    tracing::warn!(
        filename = %quoted(&file.filename),
        url = %quoted(&file.url),
        reason,
        "upstream file left off the page"
    );
}

/// Whether `hex` is a sha256 digest in its one canonical spelling (lowercase hex), so it
/// can be listed as the upstream wrote it.
fn is_sha256(hex: &str) -> bool {
    hex.parse::<Sha256Digest>().is_ok()
}

/// An upstream file as edelweiss lists it, or `None` when it cannot be listed. Files
/// without a sha256 cannot be verified or content-addressed, so they keep their upstream
/// URL and are not cached.
fn rewrite(mut file: FileDetail) -> Option<FileDetail> {
    if let Some(reason) = unlistable_filename(&file.filename) {
        log_unlisted(&file, reason);
        return None;
    }
    let hashes = std::mem::take(&mut file.hashes);
    let sha256 = match hashes.get("sha256").is_some_and(is_sha256) {
        true => hashes.into_sha256(),
        false => {
            file.hashes = hashes;
            None
        }
    };
    let Some(sha256) = sha256 else {
        file.url = match web_url(&file.url) {
            Ok(url) => url,
            Err(reason) => {
                log_unlisted(&file, reason);
                return None;
            }
        };
        file.core_metadata = CoreMetadataRef::Absent(false);
        file.dist_info_metadata = CoreMetadataRef::Absent(false);
        return Some(file);
    };
    file.url = format!("/files/{sha256}/{}", file.filename);
    file.hashes = Hashes::sha256(sha256);
    let metadata = match std::mem::replace(&mut file.core_metadata, CoreMetadataRef::Absent(false))
    {
        CoreMetadataRef::Hashes(hashes) => hashes.into_sha256().filter(|hex| is_sha256(hex)),
        CoreMetadataRef::Absent(_) => None,
    };
    let metadata = metadata.map_or(CoreMetadataRef::Absent(false), CoreMetadataRef::sha256);
    file.dist_info_metadata = metadata.clone();
    file.core_metadata = metadata;
    Some(file)
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
/// The upstream page is taken, not copied: it can hold many thousand files.
pub fn merged_detail(
    name: &str,
    upstream: Option<ProjectDetail>,
    local: &[FileRecord],
) -> ProjectDetail {
    let (upstream_files, upstream_versions) = upstream
        .map(|page| (page.files, page.versions))
        .unwrap_or_default();
    let mut files: Vec<FileDetail> = upstream_files.into_iter().filter_map(rewrite).collect();
    let upstream_names: HashSet<&str> = files.iter().map(|file| file.filename.as_str()).collect();
    let local_files: Vec<FileDetail> = local
        .iter()
        .filter(|record| !upstream_names.contains(record.filename.as_str()))
        .cloned()
        .map(file_detail)
        .collect();
    drop(upstream_names);
    files.extend(local_files);
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
                .map(|sha| Hashes::sha256(sha.to_string()))
                .unwrap_or_default(),
            requires_python: Some(">=3.9".into()),
            core_metadata: CoreMetadataRef::sha256("c".repeat(64)),
            dist_info_metadata: CoreMetadataRef::sha256("c".repeat(64)),
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
        let merged = merged_detail("psycopg2", Some(upstream), std::slice::from_ref(&built));
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

    #[test]
    fn lists_only_web_urls_and_plain_filenames() {
        let sha = "a".repeat(64);
        let mut files = Vec::new();
        for url in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "/relative/demo-1.0.tar.gz",
        ] {
            let mut file = upstream_file("demo-1.0.tar.gz", None);
            file.url = url.into();
            files.push(file);
        }
        for filename in [
            "../../../../etc/passwd",
            "demo-1.0.tar.gz\0",
            "a b.tar.gz",
            ".hidden",
        ] {
            files.push(upstream_file(filename, Some(&sha)));
        }
        files.push(upstream_file("demo-1.0.tar.gz", None));
        let upstream = ProjectDetail {
            meta: Meta::default(),
            name: "demo".into(),
            versions: vec!["1.0".into()],
            files,
        };
        let merged = merged_detail("demo", Some(upstream), &[]);
        let urls: Vec<&str> = merged.files.iter().map(|file| file.url.as_str()).collect();
        assert_eq!(
            urls,
            ["https://files.example/demo-1.0.tar.gz"],
            "only the http(s) file with a plain name is listed"
        );
    }
}
