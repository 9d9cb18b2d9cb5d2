//! The mirror's records in sled, in the index's database.
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
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::{
    CachedPage, ExtractedMetadata, FetchGuard, FetchKey, FetchLockError, MirrorStore,
    MirrorStoreError, Revalidation, UpstreamFile, find_origin, page_origins, project_of,
};
use crate::pypi::{PackageName, Sha256Digest};

fn unavailable(error: sled::Error) -> MirrorStoreError {
    MirrorStoreError::Unavailable(Box::new(error))
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, MirrorStoreError> {
    serde_json::from_slice(value).map_err(|error| MirrorStoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: error.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs with string keys: serializing to JSON cannot fail.
    serde_json::to_vec(value).expect("records serialize to JSON")
}

fn file_key(digest: Sha256Digest, filename: &str) -> Vec<u8> {
    [digest.to_hex().as_bytes(), b"\0", filename.as_bytes()].concat()
}

fn project_file_key(project: &str, filename: &str) -> Vec<u8> {
    [project.as_bytes(), b"\0", filename.as_bytes()].concat()
}

fn corrupt_key(key: &[u8], reason: impl ToString) -> MirrorStoreError {
    MirrorStoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_string(),
    }
}

/// A key that names a project: the normalized name it was written under.
fn project_key(key: &[u8]) -> Result<PackageName, MirrorStoreError> {
    let text = std::str::from_utf8(key).map_err(|error| corrupt_key(key, error))?;
    let name = crate::pypi::parse_package_name(text).map_err(|error| corrupt_key(key, error))?;
    match name.as_ref() == text {
        true => Ok(name),
        false => Err(corrupt_key(key, "not a normalized project name")),
    }
}

#[derive(Clone)]
pub struct SledMirrorStore {
    pages: sled::Tree,
    origins: sled::Tree,
    /// Per-file origins written by older versions; read as a fallback only.
    legacy_files: sled::Tree,
    extracted: sled::Tree,
}

impl SledMirrorStore {
    /// The mirror's trees in `db` (the index's database), created when missing.
    pub fn open(db: &sled::Db) -> Result<Self, MirrorStoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(unavailable);
        Ok(Self {
            pages: tree("upstream_pages")?,
            origins: tree("upstream_origins")?,
            legacy_files: tree("upstream_files")?,
            extracted: tree("extracted_metadata")?,
        })
    }

    /// Every cached page, by project (`edelweiss migrate --from-data-dir` reads a data
    /// directory's mirror through this; the trait asks only for one project at a time).
    /// A key that is not a normalized project name is corrupt.
    pub fn all_pages(&self) -> Result<Vec<(PackageName, CachedPage)>, MirrorStoreError> {
        self.pages
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(unavailable)?;
                Ok((project_key(&key)?, decode(&key, &value)?))
            })
            .collect()
    }

    /// Every extraction recorded, as (project, filename, record).
    pub fn all_extracted(
        &self,
    ) -> Result<Vec<(PackageName, String, ExtractedMetadata)>, MirrorStoreError> {
        self.extracted
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(unavailable)?;
                let split = key.iter().position(|byte| *byte == 0);
                let Some(split) = split else {
                    return Err(corrupt_key(&key, "no NUL between project and filename"));
                };
                let filename = std::str::from_utf8(&key[split + 1..])
                    .map_err(|error| corrupt_key(&key, error))?;
                Ok((
                    project_key(&key[..split])?,
                    filename.to_string(),
                    decode(&key, &value)?,
                ))
            })
            .collect()
    }

    fn legacy_upstream_file(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<UpstreamFile>, MirrorStoreError> {
        let key = file_key(digest, filename);
        let value = self.legacy_files.get(&key).map_err(unavailable)?;
        value.map(|value| decode(&key, &value)).transpose()
    }
}

#[async_trait]
impl MirrorStore for SledMirrorStore {
    async fn page(&self, project: &PackageName) -> Result<Option<CachedPage>, MirrorStoreError> {
        let key = project.as_ref().as_bytes();
        let value = self.pages.get(key).map_err(unavailable)?;
        value.map(|value| decode(key, &value)).transpose()
    }

    /// One process owns a sled database, and its `SingleFlight` already fetches each key
    /// once: there is nobody else to wait for.
    async fn fetch_lock(
        &self,
        _key: &FetchKey,
        _wait: Duration,
    ) -> Result<FetchGuard, FetchLockError> {
        Ok(FetchGuard::in_process())
    }

    /// The origins go first: origins without their page are harmless, only a page links
    /// to them.
    async fn put_page(
        &self,
        project: &PackageName,
        page: &CachedPage,
    ) -> Result<(), MirrorStoreError> {
        let origins = page_origins::encode(&page.upstream, &page.detail.files);
        let key = project.as_ref();
        self.origins.insert(key, origins).map_err(unavailable)?;
        self.pages.insert(key, encode(page)).map_err(unavailable)?;
        Ok(())
    }

    /// Swaps in the touched record only if the page is still the one read, so a page
    /// stored meanwhile is never overwritten with the older detail.
    async fn touch_page(
        &self,
        project: &PackageName,
        revalidation: &Revalidation,
    ) -> Result<bool, MirrorStoreError> {
        let key = project.as_ref().as_bytes();
        loop {
            let Some(current) = self.pages.get(key).map_err(unavailable)? else {
                return Ok(false);
            };
            let mut page: CachedPage = decode(key, &current)?;
            page.fetched_at = revalidation.fetched_at;
            page.etag.clone_from(&revalidation.etag);
            page.last_modified.clone_from(&revalidation.last_modified);
            let swapped = (self.pages)
                .compare_and_swap(key, Some(current), Some(encode(&page)))
                .map_err(unavailable)?;
            if swapped.is_ok() {
                return Ok(true);
            }
        }
    }

    /// Falls back to a per-file record of an older version for a file that the project's
    /// origins record does not list.
    async fn upstream_file(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<UpstreamFile>, MirrorStoreError> {
        if let Some(project) = project_of(filename) {
            let record = self.origins.get(project.as_ref()).map_err(unavailable)?;
            if let Some(record) = record {
                let found = find_origin(&project, &record, digest, filename)?;
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        self.legacy_upstream_file(digest, filename)
    }

    async fn put_extracted(
        &self,
        project: &PackageName,
        filename: &str,
        record: &ExtractedMetadata,
    ) -> Result<(), MirrorStoreError> {
        let key = project_file_key(project.as_ref(), filename);
        self.extracted
            .insert(key, encode(record))
            .map_err(unavailable)?;
        Ok(())
    }

    async fn extracted(
        &self,
        project: &PackageName,
        filename: &str,
        wheel_sha256: Sha256Digest,
    ) -> Result<Option<ExtractedMetadata>, MirrorStoreError> {
        let key = project_file_key(project.as_ref(), filename);
        let value = self.extracted.get(&key).map_err(unavailable)?;
        let record: Option<ExtractedMetadata> =
            value.map(|value| decode(&key, &value)).transpose()?;
        Ok(record.filter(|record| record.wheel_sha256 == wheel_sha256))
    }

    async fn extracted_for_project(
        &self,
        project: &PackageName,
    ) -> Result<HashMap<String, ExtractedMetadata>, MirrorStoreError> {
        let prefix = project_file_key(project.as_ref(), "");
        self.extracted
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, value) = entry.map_err(unavailable)?;
                let filename = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                Ok((filename, decode(&key, &value)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::mirror_store::conformance::{page, project};

    fn temporary() -> sled::Db {
        sled::Config::new().temporary(true).open().unwrap()
    }

    async fn origin_url(records: &SledMirrorStore, filename: &str) -> Option<String> {
        let digest = Sha256Digest::of(filename.as_bytes());
        let origin = records.upstream_file(digest, filename).await.unwrap();
        origin.map(|origin| origin.url)
    }

    #[tokio::test]
    async fn a_page_stores_its_origins_as_one_record() {
        let records = SledMirrorStore::open(&temporary()).unwrap();
        let wheel = "demo-1.0-py3-none-any.whl";
        let files = [wheel, "demo-1.0.tar.gz"];
        records
            .put_page(&project("demo"), &page("demo", &files))
            .await
            .unwrap();
        assert_eq!(records.origins.len(), 1);
        assert!(records.legacy_files.is_empty());
        assert_eq!(
            origin_url(&records, wheel).await.as_deref(),
            Some("https://files.example/demo-1.0-py3-none-any.whl")
        );
    }

    /// A data directory written before `upstream_origins` holds one record per file.
    #[tokio::test]
    async fn per_file_origins_of_an_older_version_are_still_read() {
        let db = temporary();
        let legacy = db.open_tree("upstream_files").unwrap();
        let old = "demo-0.9-py3-none-any.whl";
        let record = br#"{"upstream":"https://pypi.example/simple/","url":"https://files.example/old/demo-0.9-py3-none-any.whl","metadata_sha256":null}"#;
        let digest = Sha256Digest::of(old.as_bytes());
        legacy.insert(file_key(digest, old), &record[..]).unwrap();
        let records = SledMirrorStore::open(&db).unwrap();
        assert_eq!(
            records.upstream_file(digest, old).await.unwrap(),
            Some(UpstreamFile {
                upstream: "https://pypi.example/simple/".into(),
                url: "https://files.example/old/demo-0.9-py3-none-any.whl".into(),
                metadata_sha256: None,
            })
        );
        let new = "demo-1.0-py3-none-any.whl";
        records
            .put_page(&project("demo"), &page("demo", &[new]))
            .await
            .unwrap();
        assert!(
            origin_url(&records, old).await.is_some(),
            "a file the new record does not list falls back to its old record"
        );
        assert!(origin_url(&records, new).await.is_some());
    }

    #[tokio::test]
    async fn a_corrupt_origins_record_is_a_typed_error() {
        let records = SledMirrorStore::open(&temporary()).unwrap();
        records.origins.insert("demo", &b"EWO"[..]).unwrap();
        let filename = "demo-1.0-py3-none-any.whl";
        let error = records
            .upstream_file(Sha256Digest::of(filename.as_bytes()), filename)
            .await
            .unwrap_err();
        assert!(
            matches!(error, MirrorStoreError::Corrupt { ref key, .. } if key.ends_with("demo")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_corrupt_page_is_a_typed_error() {
        let records = SledMirrorStore::open(&temporary()).unwrap();
        records
            .pages
            .insert("demo", &b"{\"upstream\":"[..])
            .unwrap();
        let error = records.page(&project("demo")).await.unwrap_err();
        assert!(
            matches!(error, MirrorStoreError::Corrupt { ref key, .. } if key == "demo"),
            "{error}"
        );
    }
}
