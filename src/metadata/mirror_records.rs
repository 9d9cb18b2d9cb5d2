//! What the mirror keeps in sled: upstream project pages with their validators, for
//! every upstream file with a sha256, where it comes from, and for every upstream wheel
//! stored here, the METADATA read from it.
//!
//! Trees: `upstream_pages` (normalized name → `CachedPage`), `upstream_files`
//! (`sha256 \0 filename` → `UpstreamFile`), `extracted_metadata` (normalized name `\0`
//! filename → `ExtractedMetadata`; keyed by project so a page reads its few with one scan).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::IndexError;
use crate::pypi::Sha256Digest;
use crate::pypi::simple::ProjectDetail;

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

const ORIGIN_BATCH: usize = 512;

#[derive(Clone)]
pub struct MirrorRecords {
    pages: sled::Tree,
    files: sled::Tree,
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
            files: db.open_tree("upstream_files")?,
            extracted: db.open_tree("extracted_metadata")?,
        })
    }

    pub fn page(&self, name: &str) -> Result<Option<CachedPage>, IndexError> {
        self.pages
            .get(name)?
            .map(|value| decode(name.as_bytes(), &value))
            .transpose()
    }

    /// Stores a page and the origin of each of its files that has a sha256. The origins go
    /// in batches of `ORIGIN_BATCH`: sled keeps what one batch displaces until the batch is
    /// done, and one batch of a 40,000-file page's origins left it holding 220 MB (65 MB in
    /// batches of 512). An origin without its page is harmless: only a page links to it.
    pub fn put_page(&self, name: &str, page: &CachedPage) -> Result<(), IndexError> {
        let mut batch = sled::Batch::default();
        let mut batched = 0;
        for file in &page.detail.files {
            let Some(digest) = file
                .sha256()
                .and_then(|hex| hex.parse::<Sha256Digest>().ok())
            else {
                continue;
            };
            let metadata_sha256 = file
                .core_metadata
                .sha256_hex()
                .and_then(|hex| hex.parse().ok());
            let record = UpstreamFile {
                upstream: page.upstream.clone(),
                url: file.url.clone(),
                metadata_sha256,
            };
            batch.insert(file_key(digest, &file.filename), encode(&record));
            batched += 1;
            if batched == ORIGIN_BATCH {
                self.files.apply_batch(std::mem::take(&mut batch))?;
                batched = 0;
            }
        }
        self.files.apply_batch(batch)?;
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

    pub fn upstream_file(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<UpstreamFile>, IndexError> {
        let key = file_key(digest, filename);
        self.files
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
