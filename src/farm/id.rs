//! A build's id: `b` and 16 lowercase hex digits. It names the build's work directory and
//! containers, so a worker parses the one a server sends before it touches anything.

use std::fmt;
use std::str::FromStr;

const HEX_DIGITS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BuildId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not a build id: expected `b` and {HEX_DIGITS} lowercase hex digits")]
pub struct BuildIdError {
    /// The refused value, escaped and cut short: it came from outside.
    input: String,
}

impl BuildId {
    pub fn new() -> Self {
        Self(format!(
            "b{}",
            &uuid::Uuid::new_v4().simple().to_string()[..HEX_DIGITS]
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for BuildId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for BuildId {
    type Err = BuildIdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let well_formed = input.strip_prefix('b').is_some_and(|hex| {
            hex.len() == HEX_DIGITS && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if well_formed {
            Ok(Self(input.to_string()))
        } else {
            Err(BuildIdError {
                input: crate::untrusted::sanitize(input, crate::untrusted::PREFIX_CHARS),
            })
        }
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_round_trip() {
        let id = BuildId::new();
        assert_eq!(id.to_string().parse::<BuildId>(), Ok(id));
    }

    #[test]
    fn paths_and_control_characters_are_refused() {
        for hostile in [
            "../../canary",
            "/tmp/canary",
            "b0123456789abcdef/..",
            "b0123456789abcde\0",
            "B0123456789ABCDEF",
            "",
        ] {
            assert!(
                hostile.parse::<BuildId>().is_err(),
                "{hostile:?} was accepted"
            );
        }
        let error = "\x1b[31m/tmp/x\n".parse::<BuildId>().unwrap_err();
        assert!(
            error.to_string().contains("\\u{1b}[31m/tmp/x\\n"),
            "{error}"
        );
    }
}
