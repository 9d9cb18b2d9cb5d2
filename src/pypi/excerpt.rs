//! Input quoted in a message: a short prefix with control characters escaped, so a hostile
//! filename, path or field value can neither make an error response large nor break its
//! one line.

use std::fmt;

/// How many characters of an input a message quotes.
pub const EXCERPT_CHARS: usize = 100;

/// `input` as a message quotes it: at most [`EXCERPT_CHARS`] characters, each escaped as
/// `escape_debug` does except quotes, and `…` when the input was longer.
pub fn excerpt(input: &str) -> Excerpt<'_> {
    excerpt_to(input, EXCERPT_CHARS)
}

/// Like [`excerpt`], with another bound: for a whole message rather than one input in it.
pub fn excerpt_to(input: &str, max_chars: usize) -> Excerpt<'_> {
    Excerpt { input, max_chars }
}

/// Line separators and the bidirectional and zero-width format characters that make a line
/// read as something it is not.
fn reorders_text(character: char) -> bool {
    matches!(
        character,
        '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
    )
}

#[derive(Debug, Clone, Copy)]
pub struct Excerpt<'a> {
    input: &'a str,
    max_chars: usize,
}

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for character in self.input.chars().take(self.max_chars) {
            match character {
                '"' | '\'' => fmt::Write::write_char(formatter, character)?,
                other if reorders_text(other) => write!(formatter, "{}", other.escape_unicode())?,
                other => write!(formatter, "{}", other.escape_debug())?,
            }
        }
        if self.input.chars().nth(self.max_chars).is_some() {
            formatter.write_str("…")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_quoted_whole() {
        assert_eq!(excerpt("pkg-1.0/setup.py").to_string(), "pkg-1.0/setup.py");
        assert_eq!(excerpt("it's \"fine\"").to_string(), "it's \"fine\"");
        assert_eq!(excerpt("").to_string(), "");
    }

    #[test]
    fn long_input_is_cut_to_a_prefix() {
        let quoted = excerpt(&"a".repeat(65_000)).to_string();
        assert_eq!(quoted, format!("{}…", "a".repeat(EXCERPT_CHARS)));
        let exact = "b".repeat(EXCERPT_CHARS);
        assert_eq!(excerpt(&exact).to_string(), exact);
        let wide = "é".repeat(EXCERPT_CHARS + 1);
        assert_eq!(
            excerpt(&wide).to_string(),
            format!("{}…", "é".repeat(EXCERPT_CHARS))
        );
    }

    #[test]
    fn control_characters_cannot_break_the_line() {
        assert_eq!(
            excerpt("a\nb\r\0\u{1b}[31m\\").to_string(),
            "a\\nb\\r\\0\\u{1b}[31m\\\\"
        );
        assert_eq!(
            excerpt("safe\u{202e}txt.exe\u{2028}").to_string(),
            "safe\\u{202e}txt.exe\\u{2028}"
        );
        let worst = excerpt(&"\u{1}".repeat(10_000)).to_string();
        assert!(!worst.contains('\n') && worst.len() < 1_000, "{worst}");
    }

    #[test]
    fn a_message_can_have_its_own_bound() {
        assert_eq!(excerpt_to("abcdef", 3).to_string(), "abc…");
        assert_eq!(excerpt_to("abc", 3).to_string(), "abc");
    }
}
