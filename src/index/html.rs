//! PEP 503 HTML rendering of the page models, with the `data-*` attributes of PEPs 592,
//! 629, 658 and 714.

use std::fmt::Write as _;

use crate::pypi::simple::{API_VERSION, ProjectDetail, ProjectList};

pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    <title>{}</title>\n  </head>\n  <body>\n",
        escape(title)
    )
}

const TAIL: &str = "  </body>\n</html>\n";

pub fn project_page(detail: &ProjectDetail) -> String {
    let title = format!("Links for {}", detail.name);
    let mut page = head(&title);
    let _ = writeln!(page, "    <h1>{}</h1>", escape(&title));
    for file in &detail.files {
        let mut href = file.url.clone();
        if let Some(sha256) = file.sha256() {
            let _ = write!(href, "#sha256={sha256}");
        }
        let _ = write!(page, "    <a href=\"{}\"", escape(&href));
        if let Some(requires_python) = &file.requires_python {
            let _ = write!(
                page,
                " data-requires-python=\"{}\"",
                escape(requires_python)
            );
        }
        if let Some(sha256) = file.core_metadata.sha256_hex() {
            let _ = write!(
                page,
                " data-dist-info-metadata=\"sha256={sha256}\" data-core-metadata=\"sha256={sha256}\""
            );
        }
        if file.yanked.is_yanked() {
            let _ = write!(
                page,
                " data-yanked=\"{}\"",
                escape(file.yanked.reason().unwrap_or_default())
            );
        }
        let _ = writeln!(page, ">{}</a><br>", escape(&file.filename));
    }
    page.push_str(TAIL);
    page
}

pub fn project_list(list: &ProjectList) -> String {
    let mut page = head("Simple index");
    for project in &list.projects {
        let name = escape(&project.name);
        let _ = writeln!(page, "    <a href=\"/simple/{name}/\">{name}</a><br>");
    }
    page.push_str(TAIL);
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::simple::{CoreMetadataRef, FileDetail, Hashes, Meta, Yanked};

    fn detail() -> ProjectDetail {
        let file = |filename: &str, yanked: Yanked, metadata: CoreMetadataRef| FileDetail {
            filename: filename.into(),
            url: format!("/files/{}/{filename}", "a".repeat(64)),
            hashes: Hashes::sha256("a".repeat(64)),
            requires_python: Some(">=3.8,<4".into()),
            core_metadata: metadata.clone(),
            dist_info_metadata: metadata,
            yanked,
            size: Some(10),
            upload_time: Some("2026-01-01T00:00:00.000000Z".into()),
        };
        ProjectDetail {
            meta: Meta::default(),
            name: "demo".into(),
            versions: vec!["1.0".into()],
            files: vec![
                file(
                    "demo-1.0-py3-none-any.whl",
                    Yanked::Flag(false),
                    CoreMetadataRef::sha256("b".repeat(64)),
                ),
                file(
                    "demo-1.0.tar.gz",
                    Yanked::Reason("broken <build>".into()),
                    CoreMetadataRef::Absent(false),
                ),
            ],
        }
    }

    #[test]
    fn renders_every_pep_attribute_escaped() {
        insta::assert_snapshot!(project_page(&detail()));
    }
}
