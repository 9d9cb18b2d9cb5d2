//! PEP 691 content negotiation over the `Accept` header.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `application/vnd.pypi.simple.v1+json`
    Json,
    /// `application/vnd.pypi.simple.v1+html`
    HtmlV1,
    /// `text/html`, the PEP 503 form and the default.
    Html,
}

/// The document a format is rendered as: both HTML formats are the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    Json,
    Html,
}

impl Format {
    pub fn body(self) -> Body {
        match self {
            Self::Json => Body::Json,
            Self::HtmlV1 | Self::Html => Body::Html,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/vnd.pypi.simple.v1+json",
            Self::HtmlV1 => "application/vnd.pypi.simple.v1+html",
            Self::Html => "text/html; charset=utf-8",
        }
    }

    /// Which formats a media range covers; `latest` is an alias of v1 (PEP 691).
    fn matched_by(self, media_range: &str) -> bool {
        matches!(
            (self, media_range),
            (_, "*/*")
                | (
                    Self::Json,
                    "application/vnd.pypi.simple.v1+json"
                        | "application/vnd.pypi.simple.latest+json"
                )
                | (
                    Self::HtmlV1,
                    "application/vnd.pypi.simple.v1+html"
                        | "application/vnd.pypi.simple.latest+html"
                )
                | (Self::Html, "text/html" | "text/*")
        )
    }
}

/// The server's own preference, used to break ties in q-value.
const SERVER_ORDER: [Format; 3] = [Format::Html, Format::HtmlV1, Format::Json];

fn parse_range(item: &str) -> Option<(String, f32)> {
    let mut parts = item.split(';');
    let media_range = parts.next()?.trim().to_ascii_lowercase();
    if media_range.is_empty() {
        return None;
    }
    let mut quality = 1.0;
    for parameter in parts {
        if let Some((key, value)) = parameter.split_once('=') {
            if key.trim().eq_ignore_ascii_case("q") {
                quality = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|q: &f32| (0.0..=1.0).contains(q))?;
            }
        }
    }
    Some((media_range, quality))
}

/// Chooses a format for an `Accept` header, or `None` when it allows none (406).
/// No header means `text/html`, as PEP 691 asks. A more specific media range wins over
/// `*/*` for the same format; among formats, the highest q wins, then the server order.
pub fn negotiate(accept: Option<&str>) -> Option<Format> {
    let Some(accept) = accept.filter(|accept| !accept.trim().is_empty()) else {
        return Some(Format::Html);
    };
    let ranges: Vec<(String, f32)> = accept.split(',').filter_map(parse_range).collect();
    let quality_of = |format: Format| {
        let specific = ranges
            .iter()
            .filter(|(range, _)| range != "*/*" && format.matched_by(range));
        let quality = specific.map(|(_, q)| *q).reduce(f32::max);
        quality.or_else(|| {
            ranges
                .iter()
                .find(|(range, _)| range == "*/*")
                .map(|(_, q)| *q)
        })
    };
    SERVER_ORDER
        .iter()
        .filter_map(|format| {
            quality_of(*format)
                .filter(|q| *q > 0.0)
                .map(|q| (*format, q))
        })
        .fold(
            None,
            |best: Option<(Format, f32)>, (format, q)| match best {
                Some((_, best_q)) if best_q.partial_cmp(&q) != Some(Ordering::Less) => best,
                _ => Some((format, q)),
            },
        )
        .map(|(format, _)| format)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers as the clients send them.
    #[test]
    fn negotiation_table() {
        let table = [
            (
                Some(
                    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01",
                ),
                Some(Format::Json),
            ), // pip
            (
                Some(
                    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01",
                ),
                Some(Format::Json),
            ), // uv
            (Some("text/html"), Some(Format::Html)), // old pip, devpi clients
            (None, Some(Format::Html)),
            (Some(""), Some(Format::Html)),
            (Some("*/*"), Some(Format::Html)), // curl
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                Some(Format::Html),
            ), // browsers
            (
                Some("application/vnd.pypi.simple.v1+html"),
                Some(Format::HtmlV1),
            ),
            (
                Some("application/vnd.pypi.simple.latest+json"),
                Some(Format::Json),
            ),
            (
                Some("application/vnd.pypi.simple.v1+json;q=0.5, text/html;q=0.4"),
                Some(Format::Json),
            ),
            (
                Some("application/vnd.pypi.simple.v1+json;q=0.5, text/html;q=0.5"),
                Some(Format::Html),
            ),
            (Some("application/json"), None),
            (Some("application/vnd.pypi.simple.v2+json"), None),
            (Some("text/html;q=0"), None),
            (Some("*/*;q=0.1, text/html;q=0"), Some(Format::HtmlV1)),
        ];
        for (accept, expected) in table {
            assert_eq!(negotiate(accept), expected, "{accept:?}");
        }
    }
}
