//! Reading a PEP 503 HTML project page (with the `data-*` attributes of PEPs 592, 658 and
//! 714) into the same model as a PEP 691 JSON page, for upstreams that serve only HTML:
//! devpi, Artifactory, or a static directory of files.
//!
//! An upstream page is hostile input, so it is read by a WHATWG tokenizer (html5gum, which
//! passes html5lib's tokenizer tests) rather than by pattern matching: comments, `>` inside
//! quoted attributes, markup inside a link's text and every named character reference come
//! out as a browser (and pip, through html.parser) would read them.

use std::collections::BTreeMap;

use html5gum::{Token, Tokenizer};

use super::filename::DistFilename;
use super::simple::{CoreMetadataRef, FileDetail, Hashes, Meta, ProjectDetail, Yanked};

fn metadata_attribute(value: Option<&String>) -> CoreMetadataRef {
    match value.map(String::as_str) {
        None | Some("false") => CoreMetadataRef::Absent(false),
        Some(value) => match value.split_once('=') {
            Some((algorithm, digest)) => {
                CoreMetadataRef::Hashes(Hashes::one(algorithm, digest.to_string()))
            }
            None => CoreMetadataRef::Absent(true),
        },
    }
}

/// Links that lead to pages, not files: empty, fragment-only, query-only (directory
/// listings' sort links) or ending in `/` (parent and sub directories).
fn is_navigation(url: &str) -> bool {
    url.is_empty() || url.starts_with('?') || url.ends_with('/')
}

fn file_from_anchor(attributes: &BTreeMap<String, String>, text: &str) -> Option<FileDetail> {
    let href = attributes.get("href")?;
    let (url, fragment) = href.split_once('#').unwrap_or((href, ""));
    if is_navigation(url) {
        return None;
    }
    let filename = text.trim().to_string();
    let filename = if filename.is_empty() {
        url.rsplit('/').next()?.to_string()
    } else {
        filename
    };
    let hashes = fragment
        .split_once('=')
        .map(|(algorithm, digest)| Hashes::one(algorithm, digest.to_string()))
        .unwrap_or_default();
    let core_metadata = metadata_attribute(
        attributes
            .get("data-core-metadata")
            .or_else(|| attributes.get("data-dist-info-metadata")),
    );
    let yanked = match attributes.get("data-yanked") {
        None => Yanked::Flag(false),
        Some(reason) => Yanked::from_reason(Some(reason)),
    };
    Some(FileDetail {
        filename,
        url: url.to_string(),
        hashes,
        requires_python: attributes.get("data-requires-python").cloned(),
        dist_info_metadata: core_metadata.clone(),
        core_metadata,
        yanked,
        size: None,
        upload_time: None,
    })
}

/// Every `<a href>` that is not navigation becomes a file, named by its text (or the last
/// segment of its URL), whether or not that name is a distribution filename: the caller
/// decides what to keep and says what it dropped. URLs are returned as written.
/// `versions` are those of the filenames that are distributions of `name` (normalized).
pub fn parse_project_page(name: &str, html: &str) -> ProjectDetail {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut files = Vec::new();
    // The attributes and text so far of the `<a>` being read. A page cut off inside one
    // loses that link rather than offering part of a name.
    let mut open: Option<(BTreeMap<String, String>, String)> = None;
    for Ok(token) in Tokenizer::new(html) {
        match token {
            Token::StartTag(tag) if tag.name == b"a" => {
                // An `<a>` inside another ends the first, as in a browser.
                if let Some((attributes, link_text)) = open.take() {
                    files.extend(file_from_anchor(&attributes, &link_text));
                }
                let attributes = tag
                    .attributes
                    .into_iter()
                    .map(|(key, value)| (text(&key), text(&value.value)))
                    .collect();
                open = Some((attributes, String::new()));
            }
            Token::String(chunk) => {
                if let Some((_, link_text)) = open.as_mut() {
                    link_text.push_str(&text(&chunk.value));
                }
            }
            Token::EndTag(tag) if tag.name == b"a" => {
                if let Some((attributes, link_text)) = open.take() {
                    files.extend(file_from_anchor(&attributes, &link_text));
                }
            }
            _ => {}
        }
    }
    let mut versions: Vec<super::Version> = files
        .iter()
        .filter_map(|file| {
            file.filename
                .parse::<DistFilename>()
                .ok()
                .filter(|parsed| parsed.name().as_ref() == name)
                .map(|parsed| parsed.version().clone())
        })
        .collect();
    versions.sort();
    versions.dedup();
    ProjectDetail {
        meta: Meta::default(),
        name: name.to_string(),
        versions: versions.iter().map(ToString::to_string).collect(),
        files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pep_503_anchors_with_data_attributes() {
        let html = r##"<!DOCTYPE html><html><body><h1>Links for demo</h1>
<a href="../../files/demo-1.0-py3-none-any.whl#sha256=abc" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=def">demo-1.0-py3-none-any.whl</a><br/>
<A HREF='https://files.example/demo-0.9.tar.gz' data-yanked="">demo-0.9.tar.gz</A>
<a href="../">parent</a> <a href="?C=N;O=D">Name</a> <a href="#top">top</a>
<a href="demo-2.0.tar.gz#sha256=123" data-yanked="bad &amp; broken" data-core-metadata="true">demo-2.0.tar.gz</a>
<a href="/etc/passwd">../../../../etc/passwd</a>
<a href="other-9.0.tar.gz">other-9.0.tar.gz</a>
</body></html>"##;
        let page = parse_project_page("demo", html);
        assert_eq!(
            page.versions,
            ["0.9", "1.0", "2.0"],
            "other's 9.0 is not demo's"
        );
        let names: Vec<&str> = page
            .files
            .iter()
            .map(|file| file.filename.as_str())
            .collect();
        assert_eq!(
            names[3..],
            ["../../../../etc/passwd", "other-9.0.tar.gz"],
            "non-distribution anchors are handed on for the caller to drop and log"
        );
        let wheel = &page.files[0];
        assert_eq!(wheel.url, "../../files/demo-1.0-py3-none-any.whl");
        assert_eq!(wheel.sha256(), Some("abc"));
        assert_eq!(wheel.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(wheel.core_metadata.sha256_hex(), Some("def"));
        assert_eq!(page.files[1].yanked, Yanked::Flag(true));
        assert_eq!(page.files[1].url, "https://files.example/demo-0.9.tar.gz");
        assert_eq!(page.files[2].yanked, Yanked::Reason("bad & broken".into()));
        assert_eq!(page.files[2].core_metadata, CoreMetadataRef::Absent(true));
    }

    #[test]
    fn reads_what_a_browser_reads_not_what_a_pattern_would() {
        let html = r##"<html><body>
<!-- <a href="commented-1.0.tar.gz">commented-1.0.tar.gz</a> -->
<a data-requires-python=">=3.9" href="demo-3.0.tar.gz#sha256=aa">demo-3.0.tar.gz</a>
<a href="demo-3.1.tar.gz"><span>demo-3.1</span>.tar.gz</a>
<a href='demo-3.2.tar.gz' data-yanked="caf&eacute; &hellip; &#x2F;">demo-3.2.tar.gz</a>
<a href="demo-3.3.tar.gz">demo-3.3.tar.gz
"##;
        let page = parse_project_page("demo", html);
        let names: Vec<&str> = page
            .files
            .iter()
            .map(|file| file.filename.as_str())
            .collect();
        assert_eq!(
            names,
            ["demo-3.0.tar.gz", "demo-3.1.tar.gz", "demo-3.2.tar.gz"],
            "no commented link, markup inside a link's text is not its name, a cut-off link is dropped"
        );
        assert_eq!(page.files[0].requires_python.as_deref(), Some(">=3.9"));
        assert_eq!(page.files[0].sha256(), Some("aa"));
        assert_eq!(page.files[2].yanked, Yanked::Reason("café … /".into()));
    }
}
