//! Reading a PEP 503 HTML project page (with the `data-*` attributes of PEPs 592, 658 and
//! 714) into the same model as a PEP 691 JSON page, for upstreams that serve only HTML:
//! devpi, Artifactory, or a static directory of files.

use std::collections::BTreeMap;

use super::filename::DistFilename;
use super::simple::{CoreMetadataRef, FileDetail, Meta, ProjectDetail, Yanked};

/// Decodes the character references a simple page uses (named basics and numeric).
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find('&') {
        out.push_str(&rest[..position]);
        rest = &rest[position..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| {
                    entity
                        .strip_prefix('#')
                        .and_then(|decimal| decimal.parse().ok())
                })
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses the attributes of one start tag (the text between `<a` and `>`).
fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut attributes = BTreeMap::new();
    let mut rest = tag.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, remaining) = match after.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let close = after[1..]
                        .find(quote)
                        .map_or(after.len(), |index| index + 1);
                    (&after[1..close], after.get(close + 1..).unwrap_or_default())
                }
                _ => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            rest = remaining.trim_start();
            unescape(value)
        } else {
            String::new()
        };
        if !name.is_empty() && name != "/" {
            attributes.insert(name, value);
        }
    }
    attributes
}

fn metadata_attribute(value: Option<&String>) -> CoreMetadataRef {
    match value.map(String::as_str) {
        None | Some("false") => CoreMetadataRef::Absent(false),
        Some(value) => match value.split_once('=') {
            Some((algorithm, digest)) => CoreMetadataRef::Hashes(BTreeMap::from([(
                algorithm.to_string(),
                digest.to_string(),
            )])),
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
    let filename = unescape(text.trim());
    let filename = if filename.is_empty() {
        url.rsplit('/').next()?.to_string()
    } else {
        filename
    };
    let hashes = fragment
        .split_once('=')
        .map(|(algorithm, digest)| BTreeMap::from([(algorithm.to_string(), digest.to_string())]))
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
    let mut files = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut cursor = 0;
    while let Some(start) = lower[cursor..].find("<a").map(|offset| cursor + offset) {
        let after_tag_name = lower.as_bytes().get(start + 2).copied();
        cursor = start + 2;
        if !matches!(after_tag_name, Some(b' ' | b'\t' | b'\n' | b'\r')) {
            continue;
        }
        let Some(tag_end) = lower[start..].find('>').map(|offset| start + offset) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</a").map(|offset| tag_end + offset) else {
            break;
        };
        let attributes = attributes(&html[start + 2..tag_end]);
        if let Some(file) = file_from_anchor(&attributes, &html[tag_end + 1..close]) {
            files.push(file);
        }
        cursor = close;
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
    fn unescapes_numeric_and_named_references() {
        assert_eq!(
            unescape("&lt;3 &#x27;a&#39; &amp;&unknown; &"),
            "<3 'a' &&unknown; &"
        );
    }
}
