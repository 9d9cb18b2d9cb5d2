//! Simple repository API documents: PEP 691 JSON, with PEP 592 yanking, PEP 629 API
//! version, PEP 658/714 core metadata and PEP 700 `versions`/`size`/`upload-time`.
//! The same structs are the page model the HTML rendering reads.

use serde::{Deserialize, Serialize};

pub use super::hashes::Hashes;

/// PEP 629 `api-version`; 1.1 is the first with PEP 700's fields.
pub const API_VERSION: &str = "1.1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(rename = "api-version")]
    pub api_version: String,
}

impl Default for Meta {
    fn default() -> Self {
        Self {
            api_version: API_VERSION.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectList {
    pub meta: Meta,
    pub projects: Vec<ProjectListEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectListEntry {
    /// The normalized name, which is also the project page's path segment.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectDetail {
    #[serde(default)]
    pub meta: Meta,
    pub name: String,
    /// PEP 700; absent from API 1.0 pages.
    #[serde(default)]
    pub versions: Vec<String>,
    pub files: Vec<FileDetail>,
}

/// PEP 658/714: `false` when there is no metadata file, else the file's hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CoreMetadataRef {
    Absent(bool),
    Hashes(Hashes),
}

impl CoreMetadataRef {
    /// Only a sha256, as lowercase hex.
    pub fn sha256(hex: String) -> Self {
        Self::Hashes(Hashes::sha256(hex))
    }

    pub fn sha256_hex(&self) -> Option<&str> {
        match self {
            Self::Hashes(hashes) => hashes.get("sha256"),
            Self::Absent(_) => None,
        }
    }
}

/// PEP 592: `false`, `true`, or the reason (which implies yanked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Yanked {
    Flag(bool),
    Reason(String),
}

impl Yanked {
    pub fn from_reason(reason: Option<&str>) -> Self {
        match reason {
            None => Self::Flag(false),
            Some("") => Self::Flag(true),
            Some(reason) => Self::Reason(reason.to_string()),
        }
    }

    pub fn is_yanked(&self) -> bool {
        !matches!(self, Self::Flag(false))
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Reason(reason) => Some(reason),
            Self::Flag(_) => None,
        }
    }
}

// Deserialized by hand, not as `untagged`: serde buffers every untagged value before
// trying its variants, which was a tenth of the time to read a 40,000-file page.
impl<'de> Deserialize<'de> for CoreMetadataRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CoreMetadataRef;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a boolean or a map of hashes")
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Self::Value, E> {
                Ok(CoreMetadataRef::Absent(value))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let hashes =
                    Hashes::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(CoreMetadataRef::Hashes(hashes))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl<'de> Deserialize<'de> for Yanked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Yanked;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a boolean or a reason")
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Self::Value, E> {
                Ok(Yanked::Flag(value))
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Yanked::Reason(value.to_string()))
            }

            fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Self::Value, E> {
                Ok(Yanked::Reason(value))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDetail {
    pub filename: String,
    pub url: String,
    #[serde(default)]
    pub hashes: Hashes,
    #[serde(
        rename = "requires-python",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub requires_python: Option<String>,
    #[serde(rename = "core-metadata", default = "absent_metadata")]
    pub core_metadata: CoreMetadataRef,
    /// PEP 714 keeps the old key for clients that predate it.
    #[serde(rename = "dist-info-metadata", default = "absent_metadata")]
    pub dist_info_metadata: CoreMetadataRef,
    #[serde(default = "not_yanked")]
    pub yanked: Yanked,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(
        rename = "upload-time",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub upload_time: Option<String>,
}

fn absent_metadata() -> CoreMetadataRef {
    CoreMetadataRef::Absent(false)
}

fn not_yanked() -> Yanked {
    Yanked::Flag(false)
}

impl FileDetail {
    /// A file with only its name and URL: no hashes, metadata, size or time, not yanked.
    pub fn new(filename: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            filename: filename.into(),
            url: url.into(),
            hashes: Hashes::default(),
            requires_python: None,
            core_metadata: absent_metadata(),
            dist_info_metadata: absent_metadata(),
            yanked: not_yanked(),
            size: None,
            upload_time: None,
        }
    }

    pub fn sha256(&self) -> Option<&str> {
        self.hashes.get("sha256")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yanked_and_metadata_follow_the_peps_wire_forms() {
        assert_eq!(
            serde_json::to_string(&Yanked::from_reason(None)).unwrap(),
            "false"
        );
        assert_eq!(
            serde_json::to_string(&Yanked::from_reason(Some(""))).unwrap(),
            "true"
        );
        assert_eq!(
            serde_json::to_string(&Yanked::from_reason(Some("broken"))).unwrap(),
            "\"broken\""
        );
        let metadata = CoreMetadataRef::sha256("ab".into());
        assert_eq!(
            serde_json::to_string(&metadata).unwrap(),
            r#"{"sha256":"ab"}"#
        );
        let parsed: CoreMetadataRef = serde_json::from_str("true").unwrap();
        assert_eq!(parsed, CoreMetadataRef::Absent(true));
    }

    #[test]
    fn reads_every_wire_form_back_and_refuses_others() {
        for yanked in [
            Yanked::Flag(false),
            Yanked::Flag(true),
            Yanked::Reason("broken".into()),
        ] {
            let text = serde_json::to_string(&yanked).unwrap();
            assert_eq!(serde_json::from_str::<Yanked>(&text).unwrap(), yanked);
        }
        for metadata in [
            CoreMetadataRef::Absent(false),
            CoreMetadataRef::sha256("ab".into()),
        ] {
            let text = serde_json::to_string(&metadata).unwrap();
            assert_eq!(
                serde_json::from_str::<CoreMetadataRef>(&text).unwrap(),
                metadata
            );
        }
        assert!(serde_json::from_str::<Yanked>("1").is_err());
        assert!(serde_json::from_str::<CoreMetadataRef>("\"ab\"").is_err());
        assert!(serde_json::from_str::<CoreMetadataRef>(r#"{"sha256":1}"#).is_err());
    }
}
