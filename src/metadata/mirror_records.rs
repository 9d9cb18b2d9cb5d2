//! What the mirror keeps in sled: upstream project pages with their validators, for
//! every upstream file with a sha256, where it comes from, and for every upstream wheel
//! stored here, the METADATA read from it.
//!
//! Trees: `upstream_pages` (normalized name → `CachedPage`), `upstream_origins` (normalized
//! name → the origins of that page's files, one binary record: `page_origins`),
//! `extracted_metadata` (normalized name `\0` filename → `ExtractedMetadata`; keyed by
//! project so a page reads its few with one scan).
//!
//! `upstream_files` (`sha256 \0 filename` → `UpstreamFile`, one record per file) is what
//! data directories written before `upstream_origins` hold: it is no longer written, and
//! read only for a file that its project's origins record does not list, so the files of a
//! page stored by an older edelweiss keep their origins until the page is fetched again.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{IndexError, page_origins};
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{DistFilename, Sha256Digest};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPage {
    /// The upstream base URL the page came from (no credentials).
    pub upstream: String,
    /// Unix seconds of the last fetch or successful revalidation.
    pub fetched_at: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The page as the upstream gave it, with absolute file URLs.
    pub detail: ProjectDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamFile {
    pub upstream: String,
    /// Absolute URL of the file on the upstream (no credentials).
    pub url: String,
    pub metadata_sha256: Option<Sha256Digest>,
}

/// The PEP 658 metadata file read from an upstream wheel once it was stored here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractedMetadata {
    /// The wheel it was read from: a record for other bytes under the same name is ignored.
    pub wheel_sha256: Sha256Digest,
    pub outcome: Extraction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Extraction {
    /// The METADATA blob, served as `<wheel>.metadata`.
    Stored { metadata_sha256: Sha256Digest },
    /// Why the wheel has no metadata file (bounded: built from `excerpt`s).
    Refused { reason: String },
}

#[derive(Clone)]
pub struct MirrorRecords {
    pages: sled::Tree,
    origins: sled::Tree,
    /// Per-file origins written by older versions; read as a fallback only.
    legacy_files: sled::Tree,
    extracted: sled::Tree,
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, IndexError> {
    serde_json::from_slice(value).map_err(|source| IndexError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

fn file_key(digest: Sha256Digest, filename: &str) -> Vec<u8> {
    [digest.to_hex().as_bytes(), b"\0", filename.as_bytes()].concat()
}

impl MirrorRecords {
    pub fn open(db: &sled::Db) -> Result<Self, IndexError> {
        Ok(Self {
            pages: db.open_tree("upstream_pages")?,
            origins: db.open_tree("upstream_origins")?,
            legacy_files: db.open_tree("upstream_files")?,
            extracted: db.open_tree("extracted_metadata")?,
        })
    }

    pub fn page(&self, name: &str) -> Result<Option<CachedPage>, IndexError> {
        self.pages
            .get(name)?
            .map(|value| decode(name.as_bytes(), &value))
            .transpose()
    }

    /// Stores a page and, as one record, the origin of each of its files that has a sha256.
    /// The origins go first: origins without their page are harmless, only a page links
    /// to them.
    pub fn put_page(&self, name: &str, page: &CachedPage) -> Result<(), IndexError> {
        self.origins.insert(
            name,
            page_origins::encode(&page.upstream, &page.detail.files),
        )?;
        self.pages.insert(name, encode(page))?;
        Ok(())
    }

    /// Marks a cached page as confirmed by the upstream (a 304) at `now`.
    pub fn touch_page(
        &self,
        name: &str,
        mut page: CachedPage,
        now: u64,
    ) -> Result<CachedPage, IndexError> {
        page.fetched_at = now;
        self.pages.insert(name, encode(&page))?;
        Ok(page)
    }

    /// Where the upstream file `filename` with `digest` comes from: the origins record of
    /// the project its name names (a page keeps only its own project's files), else a
    /// per-file record of an older version.
    pub fn upstream_file(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<UpstreamFile>, IndexError> {
        if let Ok(parsed) = filename.parse::<DistFilename>() {
            let project = parsed.name().as_ref();
            if let Some(record) = self.origins.get(project)? {
                let found = page_origins::find(&record, digest, filename).map_err(|source| {
                    IndexError::CorruptOrigins {
                        project: project.to_string(),
                        source,
                    }
                })?;
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        self.legacy_upstream_file(digest, filename)
    }

    fn legacy_upstream_file(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<UpstreamFile>, IndexError> {
        let key = file_key(digest, filename);
        self.legacy_files
            .get(&key)?
            .map(|value| decode(&key, &value))
            .transpose()
    }
}

impl MirrorRecords {
    pub fn put_extracted(
        &self,
        name: &str,
        filename: &str,
        record: &ExtractedMetadata,
    ) -> Result<(), IndexError> {
        self.extracted
            .insert(project_file_key(name, filename), encode(record))?;
        Ok(())
    }

    pub fn extracted(
        &self,
        name: &str,
        filename: &str,
    ) -> Result<Option<ExtractedMetadata>, IndexError> {
        let key = project_file_key(name, filename);
        self.extracted
            .get(&key)?
            .map(|value| decode(&key, &value))
            .transpose()
    }

    /// Every extraction recorded for project `name`, by filename.
    pub fn extracted_for_project(
        &self,
        name: &str,
    ) -> Result<HashMap<String, ExtractedMetadata>, IndexError> {
        let prefix = project_file_key(name, "");
        self.extracted
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, value) = entry?;
                let filename = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                Ok((filename, decode(&key, &value)?))
            })
            .collect()
    }
}

fn project_file_key(name: &str, filename: &str) -> Vec<u8> {
    [name.as_bytes(), b"\0", filename.as_bytes()].concat()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs with string keys: serializing to JSON cannot fail.
    serde_json::to_vec(value).expect("records serialize to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::simple::{FileDetail, Meta};

    fn page(files: &[&str]) -> CachedPage {
        let files = files
            .iter()
            .map(|filename| {
                let mut file =
                    FileDetail::new(*filename, format!("https://files.example/{filename}"));
                let digest = Sha256Digest::of(filename.as_bytes()).to_hex();
                file.hashes.insert("sha256".into(), digest);
                file
            })
            .collect();
        CachedPage {
            upstream: "https://pypi.example/simple/".into(),
            fetched_at: 1,
            etag: None,
            last_modified: None,
            detail: ProjectDetail {
                meta: Meta::default(),
                name: "demo".into(),
                versions: vec!["1.0".into()],
                files,
            },
        }
    }

    fn origin_url(records: &MirrorRecords, filename: &str) -> Option<String> {
        let digest = Sha256Digest::of(filename.as_bytes());
        let origin = records.upstream_file(digest, filename).unwrap();
        origin.map(|origin| origin.url)
    }

    #[test]
    fn a_page_stores_its_origins_as_one_record() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let records = MirrorRecords::open(&db).unwrap();
        let wheel = "demo-1.0-py3-none-any.whl";
        records
            .put_page("demo", &page(&[wheel, "demo-1.0.tar.gz"]))
            .unwrap();
        assert_eq!(records.origins.len(), 1);
        assert!(records.legacy_files.is_empty());
        assert_eq!(
            origin_url(&records, wheel).as_deref(),
            Some("https://files.example/demo-1.0-py3-none-any.whl")
        );
        assert!(origin_url(&records, "demo-1.0.tar.gz").is_some());
        assert_eq!(origin_url(&records, "demo-2.0.tar.gz"), None);
        assert_eq!(origin_url(&records, "not a distribution"), None);
    }

    /// A data directory written before `upstream_origins` holds one record per file.
    #[test]
    fn per_file_origins_of_an_older_version_are_still_read() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let legacy = db.open_tree("upstream_files").unwrap();
        let old = "demo-0.9-py3-none-any.whl";
        let record = br#"{"upstream":"https://pypi.example/simple/","url":"https://files.example/old/demo-0.9-py3-none-any.whl","metadata_sha256":null}"#;
        let digest = Sha256Digest::of(old.as_bytes());
        legacy.insert(file_key(digest, old), &record[..]).unwrap();
        let records = MirrorRecords::open(&db).unwrap();
        assert_eq!(
            records.upstream_file(digest, old).unwrap(),
            Some(UpstreamFile {
                upstream: "https://pypi.example/simple/".into(),
                url: "https://files.example/old/demo-0.9-py3-none-any.whl".into(),
                metadata_sha256: None,
            })
        );
        records
            .put_page("demo", &page(&["demo-1.0-py3-none-any.whl"]))
            .unwrap();
        assert!(
            origin_url(&records, old).is_some(),
            "a file the new record does not list falls back to its old record"
        );
        assert!(origin_url(&records, "demo-1.0-py3-none-any.whl").is_some());
    }

    #[test]
    fn a_corrupt_origins_record_is_a_typed_error() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let records = MirrorRecords::open(&db).unwrap();
        records.origins.insert("demo", &b"EWO"[..]).unwrap();
        let filename = "demo-1.0-py3-none-any.whl";
        let error = records
            .upstream_file(Sha256Digest::of(filename.as_bytes()), filename)
            .unwrap_err();
        assert!(
            matches!(error, IndexError::CorruptOrigins { ref project, .. } if project == "demo"),
            "{error}"
        );
    }
}
