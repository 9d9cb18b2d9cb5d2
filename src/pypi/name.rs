//! Project names, normalized per PEP 503 (`[-_.]+` become `-`, lowercase).
//!
//! The type itself is `pep508_rs::PackageName`, which validates against the PEP 508 name
//! grammar and stores the normalized form; this module adds the error that names the input.

pub use pep508_rs::PackageName;

use super::excerpt::excerpt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{}` is not a valid project name: names are ASCII letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit",
    excerpt(.input)
)]
pub struct InvalidProjectName {
    pub input: String,
}

/// The PEP 508 name grammar, checked here because the normalizing constructor is lenient
/// (it accepts the empty string).
fn follows_grammar(input: &str) -> bool {
    let bytes = input.as_bytes();
    let inner_ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(inner_ok)
        }
        _ => false,
    }
}

pub fn parse_package_name(input: &str) -> Result<PackageName, InvalidProjectName> {
    let invalid = || InvalidProjectName {
        input: input.to_string(),
    };
    if !follows_grammar(input) {
        return Err(invalid());
    }
    PackageName::new(input.to_string()).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_per_pep_503() {
        for (raw, normalized) in [
            ("Django", "django"),
            ("zope.interface", "zope-interface"),
            ("Foo__Bar", "foo-bar"),
            ("a-_.-b", "a-b"),
            ("psycopg2", "psycopg2"),
        ] {
            assert_eq!(parse_package_name(raw).unwrap().as_ref(), normalized);
        }
    }

    #[test]
    fn rejects_names_outside_the_grammar() {
        for bad in [
            "", "-a", "a-", "a/b", "..", "a\0b", "naïve", "a b", "../etc",
        ] {
            assert!(parse_package_name(bad).is_err(), "{bad:?}");
        }
    }
}
