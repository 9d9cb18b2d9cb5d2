//! PyPI's JSON API as a pure function of a project's page model: the files, digests and
//! yanks the simple page lists, grouped by release, with absolute URLs spelled as pip
//! spells the links it reads from that page, so pip-tools matches every file it found to a
//! digest here and downloads none of them to hash it. Files without a sha256 are left out:
//! one file without `digests.sha256` makes pip-tools ignore the whole document.

use std::collections::BTreeMap;

use crate::pypi::json_api::{Digests, Info, PackageType, ProjectJson, ReleaseFile, Releases};
use crate::pypi::simple::{FileDetail, ProjectDetail};
use crate::pypi::{CoreMetadata, DistFilename, Sha256Digest, Version};

/// Longest summary given, as PyPI bounds it; a metadata file may carry any length.
const MAX_SUMMARY_CHARS: usize = 512;

/// Upstream text kept per file, in bytes: a longer `requires-python` or upload time is not
/// one (it is left out), a longer yank reason is cut to that many characters.
const MAX_FIELD_BYTES: usize = 1024;

fn bounded(value: Option<&str>) -> Option<String> {
    value
        .filter(|value| value.len() <= MAX_FIELD_BYTES)
        .map(str::to_string)
}

fn cut(value: &str) -> String {
    value.chars().take(MAX_FIELD_BYTES).collect()
}

/// One listed file with its parsed version.
struct Listed {
    version: Version,
    file: ReleaseFile,
}

/// Python's `urllib.parse.quote` with `/` and `@` safe, which pip applies to every link
/// path it reads from a page: `+` in a local version becomes `%2B` there, so here too.
fn quote_path(path: &str) -> String {
    let mut quoted = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"_.-~/@".contains(&byte) {
            quoted.push(byte as char);
        } else {
            quoted.push_str(&format!("%{byte:02X}"));
        }
    }
    quoted
}

/// A page URL made absolute against `base` (`scheme://host[:port]`, as the client asked).
fn absolute_url(base: &str, url: &str) -> String {
    match url.strip_prefix('/') {
        Some(path) => format!("{base}/{}", quote_path(path)),
        None => url.to_string(),
    }
}

fn listed(file: &FileDetail, base: &str) -> Option<Listed> {
    let sha256 = file.sha256()?.parse::<Sha256Digest>().ok()?;
    let (version, packagetype, python_version) = match file.filename.parse().ok()? {
        DistFilename::Wheel(wheel) => (wheel.version, PackageType::Wheel, wheel.python),
        DistFilename::Sdist(sdist) => (sdist.version, PackageType::Sdist, "source".into()),
    };
    let file = ReleaseFile {
        filename: file.filename.clone(),
        url: absolute_url(base, &file.url),
        digests: Digests {
            sha256: sha256.to_hex(),
        },
        packagetype,
        python_version,
        requires_python: bounded(file.requires_python.as_deref()),
        size: file.size,
        upload_time_iso_8601: bounded(file.upload_time.as_deref()),
        yanked: file.yanked.is_yanked(),
        yanked_reason: file.yanked.reason().map(cut),
    };
    Some(Listed { version, file })
}

/// The files of the page that have a sha256, by release. Equal versions spelled apart
/// (`1.0`, `1.0.0`) are one release.
fn releases(detail: &ProjectDetail, base: &str) -> BTreeMap<Version, Vec<Listed>> {
    let mut releases: BTreeMap<Version, Vec<Listed>> = BTreeMap::new();
    for listed in detail.files.iter().filter_map(|file| listed(file, base)) {
        releases
            .entry(listed.version.clone())
            .or_default()
            .push(listed);
    }
    releases
}

/// The release `info` describes when none is asked for: the newest final release with a
/// file not yanked, else the newest with a file not yanked, else the newest (as PyPI).
pub fn latest_release(detail: &ProjectDetail) -> Option<Version> {
    let releases = releases(detail, "");
    let live = |files: &Vec<Listed>| files.iter().any(|listed| !listed.file.yanked);
    let newest = |final_only: bool| {
        releases
            .iter()
            .rev()
            .find(|(version, files)| live(files) && !(final_only && version.any_prerelease()))
            .map(|(version, _)| version.clone())
    };
    newest(true)
        .or_else(|| newest(false))
        .or_else(|| releases.keys().next_back().cloned())
}

/// Whether the page lists a file of `version` that has a sha256.
pub fn has_release(detail: &ProjectDetail, version: &Version) -> bool {
    releases(detail, "").contains_key(version)
}

fn info(
    detail: &ProjectDetail,
    version: &Version,
    files: &[ReleaseFile],
    metadata: Option<&CoreMetadata>,
) -> Info {
    let all_yanked = !files.is_empty() && files.iter().all(|file| file.yanked);
    Info {
        name: metadata.map_or_else(
            || detail.name.clone(),
            |metadata| metadata.display_name.clone(),
        ),
        version: version.to_string(),
        summary: metadata.and_then(|metadata| {
            let summary = metadata.summary.as_deref()?;
            Some(summary.chars().take(MAX_SUMMARY_CHARS).collect())
        }),
        requires_dist: metadata
            .map(|metadata| metadata.requires_dist.clone())
            .filter(|requirements| !requirements.is_empty()),
        requires_python: metadata
            .and_then(|metadata| metadata.requires_python.clone())
            .or_else(|| files.iter().find_map(|file| file.requires_python.clone())),
        yanked: all_yanked,
        yanked_reason: all_yanked
            .then(|| files.iter().find_map(|file| file.yanked_reason.clone()))
            .flatten(),
    }
}

/// The document for `release` (one the page lists, see [`has_release`]); with every
/// release under `releases` for the project document. `metadata` is the release's core
/// metadata when known. `base` is `scheme://host[:port]` as the client reached this index.
pub fn project_json(
    detail: &ProjectDetail,
    base: &str,
    release: &Version,
    metadata: Option<&CoreMetadata>,
    with_releases: bool,
) -> ProjectJson {
    let releases = releases(detail, base);
    let urls: Vec<ReleaseFile> = releases
        .get(release)
        .map(|files| files.iter().map(|listed| listed.file.clone()).collect())
        .unwrap_or_default();
    let by_spelling = with_releases.then(|| {
        let mut keyed = Vec::new();
        for files in releases.values() {
            let mut spellings: Vec<String> = files
                .iter()
                .map(|listed| listed.version.to_string())
                .collect();
            spellings.sort();
            spellings.dedup();
            let release_files: Vec<ReleaseFile> =
                files.iter().map(|listed| listed.file.clone()).collect();
            for spelling in spellings {
                keyed.push((spelling, release_files.clone()));
            }
        }
        Releases(keyed)
    });
    ProjectJson {
        info: info(detail, release, &urls, metadata),
        releases: by_spelling,
        urls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::simple::{CoreMetadataRef, Meta, Yanked};

    fn file(filename: &str, url: Option<&str>, sha: Option<&[u8]>) -> FileDetail {
        let sha = sha.map(|bytes| Sha256Digest::of(bytes).to_hex());
        let url = url.map_or_else(
            || format!("/files/{}/{filename}", sha.clone().unwrap_or_default()),
            str::to_string,
        );
        let mut file = FileDetail::new(filename, url);
        if let Some(sha) = sha {
            file.hashes.insert("sha256", sha);
        }
        file.size = Some(1234);
        file.upload_time = Some("2025-06-01T12:00:00.000000Z".into());
        file
    }

    fn detail() -> ProjectDetail {
        let mut wheel = file("demo-1.0-py3-none-any.whl", None, Some(b"wheel"));
        wheel.requires_python = Some(">=3.8".into());
        wheel.core_metadata = CoreMetadataRef::sha256("ab".into());
        let mut yanked = file("demo-0.9.tar.gz", None, Some(b"old"));
        yanked.yanked = Yanked::Reason("broken <build>".into());
        ProjectDetail {
            meta: Meta::default(),
            name: "demo".into(),
            versions: vec!["0.9".into(), "1.0".into(), "2.0rc1".into()],
            files: vec![
                yanked,
                wheel,
                file("demo-1.0.tar.gz", None, Some(b"sdist")),
                file(
                    "demo-1.0.0-cp313-cp313-musllinux_1_2_x86_64.whl",
                    None,
                    Some(b"musl"),
                ),
                file("demo-2.0rc1.tar.gz", None, Some(b"rc")),
                file(
                    "demo-1.0-py2-none-any.whl",
                    Some("https://files.example/demo-1.0-py2-none-any.whl"),
                    None,
                ),
            ],
        }
    }

    fn metadata() -> CoreMetadata {
        "Metadata-Version: 2.1\nName: Demo\nVersion: 1.0\nSummary: a \"demo\" </script>\nRequires-Python: >=3.8\nRequires-Dist: idna>=2\nRequires-Dist: certifi; extra == \"secure\"\n"
            .parse()
            .unwrap()
    }

    #[test]
    fn the_latest_release_is_the_newest_final_one_not_yanked() {
        assert_eq!(latest_release(&detail()), Some("1.0".parse().unwrap()));
        let mut only_rc = detail();
        only_rc.files.retain(|file| file.filename.contains("rc1"));
        assert_eq!(latest_release(&only_rc), Some("2.0rc1".parse().unwrap()));
        let mut only_yanked = detail();
        only_yanked
            .files
            .retain(|file| file.filename.contains("0.9"));
        assert_eq!(latest_release(&only_yanked), Some("0.9".parse().unwrap()));
    }

    #[test]
    fn renders_the_project_document() {
        let document = project_json(
            &detail(),
            "http://index.example:8080",
            &"1.0".parse().unwrap(),
            Some(&metadata()),
            true,
        );
        insta::assert_snapshot!(serde_json::to_string_pretty(&document).unwrap());
    }

    #[test]
    fn renders_a_release_document_without_metadata() {
        let document = project_json(
            &detail(),
            "https://index.example",
            &"0.9".parse().unwrap(),
            None,
            false,
        );
        insta::assert_snapshot!(serde_json::to_string_pretty(&document).unwrap());
    }

    #[test]
    fn upstream_text_is_bounded() {
        let mut detail = detail();
        detail.files[1].requires_python = Some(format!(">={}", "9".repeat(1 << 20)));
        detail.files[1].yanked = Yanked::Reason("x".repeat(1 << 20));
        let document = project_json(&detail, "http://h", &"1.0".parse().unwrap(), None, true);
        assert_eq!(document.urls[0].requires_python, None);
        assert_eq!(
            document.urls[0].yanked_reason.as_ref().unwrap().len(),
            MAX_FIELD_BYTES
        );
    }

    #[test]
    fn quotes_link_paths_as_pip_does() {
        assert_eq!(
            absolute_url("http://h", "/files/ab/x-1.0+cu1-py3-none-any.whl"),
            "http://h/files/ab/x-1.0%2Bcu1-py3-none-any.whl"
        );
        assert_eq!(
            absolute_url("http://h", "https://elsewhere/x"),
            "https://elsewhere/x"
        );
    }
}
