//! The `WHEEL` file of a wheel's `.dist-info` directory (PEP 427).

use std::collections::BTreeSet;

use super::excerpt::excerpt;
use super::tags::TagTriple;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WheelInfoError {
    #[error("WHEEL is not UTF-8 text")]
    NotUtf8,
    #[error("WHEEL has no `Wheel-Version` field")]
    MissingVersion,
    #[error(
        "WHEEL declares `Wheel-Version: {}`; only major version 1 is supported",
        excerpt(.version)
    )]
    UnsupportedVersion { version: String },
    #[error("WHEEL `Tag: {}` is not a `python-abi-platform` tag", excerpt(.tag))]
    MalformedTag { tag: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelInfo {
    pub wheel_version: String,
    pub tags: BTreeSet<TagTriple>,
}

impl WheelInfo {
    pub fn parse(bytes: &[u8]) -> Result<Self, WheelInfoError> {
        let text = std::str::from_utf8(bytes).map_err(|_| WheelInfoError::NotUtf8)?;
        let mut wheel_version = None;
        let mut tags = BTreeSet::new();
        for line in text.lines() {
            let Some((field, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match field.trim() {
                "Wheel-Version" => wheel_version = Some(value.to_string()),
                "Tag" => {
                    let tag = value.parse().map_err(|_| WheelInfoError::MalformedTag {
                        tag: value.to_string(),
                    })?;
                    tags.insert(tag);
                }
                _ => {}
            }
        }
        let wheel_version = wheel_version.ok_or(WheelInfoError::MissingVersion)?;
        if wheel_version.split('.').next() != Some("1") {
            return Err(WheelInfoError::UnsupportedVersion {
                version: wheel_version,
            });
        }
        Ok(Self {
            wheel_version,
            tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version_and_tags() {
        let info = WheelInfo::parse(b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp313-cp313-musllinux_1_2_x86_64\n").unwrap();
        assert_eq!(info.wheel_version, "1.0");
        assert_eq!(
            info.tags.iter().next().unwrap().to_string(),
            "cp313-cp313-musllinux_1_2_x86_64"
        );
    }

    #[test]
    fn rejects_future_major_versions_and_bad_tags() {
        assert!(matches!(
            WheelInfo::parse(b"Wheel-Version: 2.0\n"),
            Err(WheelInfoError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            WheelInfo::parse(b"Wheel-Version: 1.0\nTag: nonsense\n"),
            Err(WheelInfoError::MalformedTag { .. })
        ));
        assert_eq!(
            WheelInfo::parse(b"Tag: py3-none-any\n"),
            Err(WheelInfoError::MissingVersion)
        );
    }
}
