//! What of an upstream page edelweiss keeps: a file stays only if its name is a wheel or
//! sdist filename of the page's project and its URL is http(s) on an allowed file host.
//! Everything else is dropped before the page is stored, with a log line that quotes the
//! upstream's text escaped and bounded.

use url::Url;

use super::UpstreamUrl;
use super::file_hosts::{FileHosts, origin_of};
use super::quote::quoted;
use crate::pypi::simple::{FileDetail, ProjectDetail};
use crate::pypi::{DistFilename, PackageName};

/// Longest file URL kept; PyPI's are under 200 bytes.
const MAX_URL_BYTES: usize = 2048;
/// Old distribution formats PyPI still lists.
const LEGACY_EXTENSIONS: &[&str] = &[".egg", ".exe", ".msi", ".rpm", ".dmg", ".deb"];
/// Dropped files logged one by one per page; the rest are counted in one line.
const LOGGED_DROPS: usize = 10;

/// Why an upstream file is left off the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// An egg, a Windows installer or another format pip never installs: PyPI still lists
    /// them for old releases, so they are left off without a log line.
    LegacyFormat,
    NotADistribution,
    OtherProject,
    NotAUrl,
    NotHttp,
    HostNotAllowed,
}

impl Rejection {
    fn reason(self) -> &'static str {
        match self {
            Self::LegacyFormat => "a legacy distribution format pip does not install",
            Self::NotADistribution => "the filename is not a wheel or sdist filename",
            Self::OtherProject => "the filename names another project",
            Self::NotAUrl => "the URL is not an absolute URL (or is too long)",
            Self::NotHttp => "the URL is not http or https",
            Self::HostNotAllowed => {
                "the URL is on a host that is neither the upstream's nor in mirror.file_hosts"
            }
        }
    }
}

/// Why `file`, listed by `upstream` for `project`, may not be kept; `None` when it may.
pub fn rejection(
    file: &FileDetail,
    project: &PackageName,
    upstream: &UpstreamUrl,
    hosts: &FileHosts,
) -> Option<Rejection> {
    let Ok(filename) = file.filename.parse::<DistFilename>() else {
        let legacy = LEGACY_EXTENSIONS
            .iter()
            .any(|extension| file.filename.ends_with(extension));
        return Some(match legacy {
            true => Rejection::LegacyFormat,
            false => Rejection::NotADistribution,
        });
    };
    if filename.name() != project {
        return Some(Rejection::OtherProject);
    }
    let url = Url::parse(&file.url)
        .ok()
        .filter(|_| file.url.len() <= MAX_URL_BYTES);
    match url {
        None => Some(Rejection::NotAUrl),
        Some(url) if !matches!(url.scheme(), "http" | "https") => Some(Rejection::NotHttp),
        Some(url) if !hosts.allows(upstream, &url) => Some(Rejection::HostNotAllowed),
        Some(_) => None,
    }
}

/// `detail` (with absolute URLs) without the files that may not be kept.
pub fn vet_page(
    mut detail: ProjectDetail,
    project: &PackageName,
    upstream: &UpstreamUrl,
    hosts: &FileHosts,
) -> ProjectDetail {
    let mut dropped = 0;
    detail.files.retain(|file| {
        let Some(rejection) = rejection(file, project, upstream, hosts) else {
            return true;
        };
        if rejection == Rejection::LegacyFormat {
            return false;
        }
        dropped += 1;
        if dropped <= LOGGED_DROPS {
            log_drop(file, rejection, project, upstream);
        }
        false
    });
    if dropped > LOGGED_DROPS {
        tracing::warn!(
            %upstream,
            %project,
            more = dropped - LOGGED_DROPS,
            "more upstream files dropped from the page for the same reasons"
        );
    }
    detail
}

fn log_drop(
    file: &FileDetail,
    rejection: Rejection,
    project: &PackageName,
    upstream: &UpstreamUrl,
) {
    // A host refusal shows only the host: the rest of the URL is the upstream's choosing.
    let url = match (rejection, Url::parse(&file.url)) {
        (Rejection::HostNotAllowed, Ok(url)) => origin_of(&url),
        _ => quoted(&file.url),
    };
    tracing::warn!(
        %upstream,
        %project,
        filename = %quoted(&file.filename),
        %url,
        reason = rejection.reason(),
        "upstream file dropped from the page"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::parse_package_name;
    use crate::pypi::simple::Meta;

    fn file(filename: &str, url: &str) -> FileDetail {
        FileDetail::new(filename, url)
    }

    #[test]
    fn keeps_only_files_of_the_project_on_allowed_hosts() {
        let upstream: UpstreamUrl = "http://127.0.0.1:8000/simple/".parse().unwrap();
        let hosts = FileHosts::new(
            &[super::super::FileHost::pypi_files()],
            std::slice::from_ref(&upstream),
        );
        let project = parse_package_name("demo").unwrap();
        let own = "http://127.0.0.1:8000/files/";
        let cases = [
            (
                file("demo-1.0.tar.gz", &format!("{own}demo-1.0.tar.gz")),
                None,
            ),
            (
                file(
                    "demo-1.0-py3-none-any.whl",
                    "https://files.pythonhosted.org/packages/demo-1.0-py3-none-any.whl",
                ),
                None,
            ),
            (
                file("../../../../etc/passwd", &format!("{own}x")),
                Some(Rejection::NotADistribution),
            ),
            (
                file("demo-1.0.tar.gz\0", &format!("{own}x")),
                Some(Rejection::NotADistribution),
            ),
            (
                file("sub/demo-1.0.tar.gz", &format!("{own}x")),
                Some(Rejection::NotADistribution),
            ),
            (
                file("other-1.0.tar.gz", &format!("{own}other-1.0.tar.gz")),
                Some(Rejection::OtherProject),
            ),
            (
                file("demo-1.0-py2.7.egg", &format!("{own}demo-1.0-py2.7.egg")),
                Some(Rejection::LegacyFormat),
            ),
            (
                file("demo-1.0.tar.gz", "javascript:alert(1)"),
                Some(Rejection::NotHttp),
            ),
            (
                file("demo-1.0.tar.gz", "data:text/html,x"),
                Some(Rejection::NotHttp),
            ),
            (
                file("demo-1.0.tar.gz", "file:///etc/passwd"),
                Some(Rejection::NotHttp),
            ),
            (
                file("demo-1.0.tar.gz", "http://127.0.0.1:8001/secret"),
                Some(Rejection::HostNotAllowed),
            ),
            (
                file("demo-1.0.tar.gz", "../demo-1.0.tar.gz"),
                Some(Rejection::NotAUrl),
            ),
        ];
        for (file, expected) in &cases {
            assert_eq!(
                rejection(file, &project, &upstream, &hosts),
                *expected,
                "{file:?}"
            );
        }
        let detail = ProjectDetail {
            meta: Meta::default(),
            name: "demo".into(),
            versions: vec!["1.0".into()],
            files: cases.iter().map(|(file, _)| file.clone()).collect(),
        };
        let kept = vet_page(detail, &project, &upstream, &hosts);
        assert_eq!(kept.files.len(), 2);
    }
}
