//! Text from outside (a worker's failure message or name, a value a server sent) made safe
//! for a log line or a page: control characters are escaped, so the text cannot end a log
//! line, start a forged one or drive a terminal, and its length is bounded.

use crate::pypi::excerpt_to;

/// Longest failure message kept from a worker, in characters.
pub const MESSAGE_CHARS: usize = 2000;
/// Longest worker name kept, in characters.
pub const NAME_CHARS: usize = 64;
/// How much of a refused value a log line quotes, in characters.
pub const PREFIX_CHARS: usize = 48;

/// `text` escaped as [`excerpt_to`] escapes it (`\n`, `\u{1b}`), cut after `max_chars`
/// characters of the input with `…` and the number of characters left out.
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut clean = excerpt_to(text, max_chars).to_string();
    let left_out = text.chars().count().saturating_sub(max_chars);
    if left_out > 0 {
        clean.push_str(&format!("({left_out} more characters)"));
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_terminal_escapes_are_escaped() {
        let forged = "x\n2026-12-01T00:00:00Z INFO forged line\x1b[31m\r\u{202e}";
        let clean = sanitize(forged, MESSAGE_CHARS);
        assert_eq!(
            clean,
            "x\\n2026-12-01T00:00:00Z INFO forged line\\u{1b}[31m\\r\\u{202e}"
        );
        assert!(!clean.chars().any(char::is_control));
    }

    #[test]
    fn plain_text_is_kept_as_it_is() {
        let message = "the build step exited with status 1: `cc` not found (naïve)";
        assert_eq!(sanitize(message, MESSAGE_CHARS), message);
    }

    #[test]
    fn long_text_is_cut_and_says_how_much_was_left_out() {
        let clean = sanitize(&"a".repeat(100), 10);
        assert_eq!(clean, format!("{}…(90 more characters)", "a".repeat(10)));
        assert_eq!(sanitize("short", 10), "short");
        assert_eq!(sanitize(&"\0".repeat(3), 2), "\\0\\0…(1 more characters)");
    }
}
