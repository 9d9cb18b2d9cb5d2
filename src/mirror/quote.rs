//! Upstream text as a log line may show it: escaped (no newline, control character or
//! terminal escape gets through) and cut to a short prefix, so a hostile page can neither
//! forge log lines nor flood the log.

use crate::pypi::excerpt_to;

/// Characters of upstream text a log line shows.
const SHOWN_CHARS: usize = 120;

/// `text` escaped and quoted, cut after `SHOWN_CHARS` characters with its full length noted.
pub fn quoted(text: &str) -> String {
    let shown = excerpt_to(text, SHOWN_CHARS);
    if text.chars().nth(SHOWN_CHARS).is_none() {
        format!("\"{shown}\"")
    } else {
        format!("\"{shown}\" ({} bytes)", text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_bounds() {
        assert_eq!(quoted("demo-1.0.tar.gz"), "\"demo-1.0.tar.gz\"");
        assert_eq!(
            quoted("a\nlevel=ERROR forged\0\u{1b}[31m\""),
            r#""a\nlevel=ERROR forged\0\u{1b}[31m"""#
        );
        let long = quoted(&"x".repeat(10_000));
        assert!(long.len() < 160, "{long}");
        assert!(long.ends_with("…\" (10000 bytes)"), "{long}");
    }
}
