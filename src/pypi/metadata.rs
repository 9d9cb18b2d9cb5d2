//! Core metadata (`METADATA` in a wheel, `PKG-INFO` in an sdist): the email-header format
//! of the core metadata spec. Only the fields the index serves or checks are kept.

use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::Requirement;

use super::excerpt::excerpt;
use super::name::{PackageName, parse_package_name};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("core metadata is not UTF-8 text")]
    NotUtf8,
    #[error("core metadata has no `{field}` field")]
    MissingField { field: &'static str },
    #[error("core metadata line {line} is not a `Field: value` header")]
    MalformedHeader { line: usize },
    #[error("core metadata `Name: {}` is not a valid project name", excerpt(.value))]
    Name { value: String },
    #[error("core metadata `Version: {}` is not a PEP 440 version", excerpt(.value))]
    Version { value: String },
    #[error(
        "core metadata `Requires-Python: {}` is not a PEP 440 specifier set",
        excerpt(.value)
    )]
    RequiresPython { value: String },
    #[error(
        "core metadata `Requires-Dist: {}` is not a PEP 508 requirement",
        excerpt(.value)
    )]
    RequiresDist { value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreMetadata {
    pub metadata_version: String,
    pub name: PackageName,
    /// The name as the project spells it, for page titles.
    pub display_name: String,
    pub version: Version,
    pub requires_python: Option<String>,
    pub requires_dist: Vec<String>,
    pub summary: Option<String>,
}

/// Splits the header block into `(field, value)` pairs, joining continuation lines.
/// The body (after the first blank line) is the long description and is ignored.
fn headers(text: &str) -> Result<Vec<(&str, String)>, MetadataError> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        // Only an empty line ends the headers: a line of spaces continues a folded value
        // (the blank lines of a license text kept in `License:`).
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = pairs
                .last_mut()
                .ok_or(MetadataError::MalformedHeader { line: index + 1 })?;
            value.push('\n');
            value.push_str(line.trim());
            continue;
        }
        let (field, value) = line
            .split_once(':')
            .ok_or(MetadataError::MalformedHeader { line: index + 1 })?;
        pairs.push((field.trim(), value.trim().to_string()));
    }
    Ok(pairs)
}

impl CoreMetadata {
    pub fn parse(bytes: &[u8]) -> Result<Self, MetadataError> {
        let text = std::str::from_utf8(bytes).map_err(|_| MetadataError::NotUtf8)?;
        Self::from_str(text)
    }
}

impl FromStr for CoreMetadata {
    type Err = MetadataError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let pairs = headers(text)?;
        let single = |field: &'static str| {
            pairs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(field))
                .map(|(_, value)| value.clone())
        };
        let required =
            |field: &'static str| single(field).ok_or(MetadataError::MissingField { field });
        let display_name = required("Name")?;
        let name = parse_package_name(&display_name).map_err(|_| MetadataError::Name {
            value: display_name.clone(),
        })?;
        let version_text = required("Version")?;
        let version = version_text.parse().map_err(|_| MetadataError::Version {
            value: version_text.clone(),
        })?;
        let requires_python = single("Requires-Python").filter(|value| !value.is_empty());
        if let Some(value) = &requires_python {
            VersionSpecifiers::from_str(value).map_err(|_| MetadataError::RequiresPython {
                value: value.clone(),
            })?;
        }
        let requires_dist: Vec<String> = pairs
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case("Requires-Dist"))
            .map(|(_, value)| value.clone())
            .collect();
        for value in &requires_dist {
            Requirement::<pep508_rs::VerbatimUrl>::from_str(value).map_err(|_| {
                MetadataError::RequiresDist {
                    value: value.clone(),
                }
            })?;
        }
        Ok(Self {
            metadata_version: required("Metadata-Version")?,
            name,
            display_name,
            version,
            requires_python,
            requires_dist,
            summary: single("Summary"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// setuptools-scm 8.1.0's METADATA folds its license text, blank lines as lines of
    /// spaces, before `Requires-Dist`: the requirements after it are still read.
    #[test]
    fn a_folded_value_with_blank_continuation_lines_does_not_end_the_headers() {
        let text = "Metadata-Version: 2.1\nName: setuptools-scm\nVersion: 8.1.0\nLicense: Permission is hereby granted\n        \n        THE SOFTWARE IS PROVIDED\n        \nRequires-Python: >=3.8\nRequires-Dist: packaging >=20\n\nlong description\nRequires-Dist: not-a-header\n";
        let metadata: CoreMetadata = text.parse().unwrap();
        assert_eq!(metadata.requires_dist, ["packaging >=20"]);
        assert_eq!(metadata.requires_python.as_deref(), Some(">=3.8"));
    }

    const SAMPLE: &str = "Metadata-Version: 2.1\nName: Psycopg2\nVersion: 2.9.10\nSummary: psycopg2 - Python-PostgreSQL Database Adapter\nRequires-Python: >=3.8\nRequires-Dist: typing-extensions>=4.0; python_version < \"3.11\"\nRequires-Dist: idna\nLicense: LGPL with exceptions\n  or ZPL\n\nLong description: Name: not-a-header\n";

    #[test]
    fn extracts_the_fields_the_index_serves() {
        let metadata: CoreMetadata = SAMPLE.parse().unwrap();
        assert_eq!(metadata.name.as_ref(), "psycopg2");
        assert_eq!(metadata.display_name, "Psycopg2");
        assert_eq!(metadata.version.to_string(), "2.9.10");
        assert_eq!(metadata.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(
            metadata.requires_dist,
            ["typing-extensions>=4.0; python_version < \"3.11\"", "idna"]
        );
    }

    #[test]
    fn names_the_broken_field() {
        let cases = [
            ("Metadata-Version: 2.1\nVersion: 1.0\n", "no `Name` field"),
            (
                "Metadata-Version: 2.1\nName: x\nVersion: one\n",
                "`Version: one`",
            ),
            (
                "Metadata-Version: 2.1\nName: x\nVersion: 1\nRequires-Python: >>3\n",
                "Requires-Python",
            ),
            (
                "Metadata-Version: 2.1\nName: x\nVersion: 1\nRequires-Dist: ???\n",
                "Requires-Dist",
            ),
            ("Metadata-Version: 2.1\nName x\n", "line 2"),
        ];
        for (text, expected) in cases {
            let error = text.parse::<CoreMetadata>().unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        assert_eq!(
            CoreMetadata::parse(b"\xff\xfe"),
            Err(MetadataError::NotUtf8)
        );
    }
}
