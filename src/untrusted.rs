//! Text from outside (a worker's failure message or name, a value a server sent) made safe
//! for a log line or a page: control characters are escaped, so the text cannot end a log
//! line, start a forged one or drive a terminal, and its length is bounded.

/// Longest failure message kept from a worker, in characters.
pub const MESSAGE_CHARS: usize = 2000;
/// Longest worker name kept, in characters.
pub const NAME_CHARS: usize = 64;
/// How much of a refused value a log line quotes, in characters.
pub const PREFIX_CHARS: usize = 48;

/// Characters that break a line or steer a terminal or a text viewer: C0 and C1 controls
/// (newline, CR, ESC, DEL…), Unicode line separators, and bidirectional and zero-width
/// format characters that make a line read as something it is not.
fn needs_escape(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

/// `text` with every such character escaped as Rust writes it (`\n`, `\u{1b}`), cut after
/// `max_chars` characters of the input with `…` and the number of characters left out.
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut clean = String::with_capacity(text.len().min(max_chars * 2));
    for character in text.chars().take(max_chars) {
        if needs_escape(character) {
            clean.extend(character.escape_default());
        } else {
            clean.push(character);
        }
    }
    let left_out = text.chars().count().saturating_sub(max_chars);
    if left_out > 0 {
        clean.push_str(&format!("…({left_out} more characters)"));
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
        assert!(!clean.chars().any(needs_escape));
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
        assert_eq!(
            sanitize(&"\0".repeat(3), 2),
            "\\u{0}\\u{0}…(1 more characters)"
        );
    }
}
