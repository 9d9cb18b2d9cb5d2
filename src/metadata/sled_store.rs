//! The sled implementation of `IndexStore`.
//!
//! Trees: `projects` (normalized name → `ProjectRecord`), `files` (`name \0 filename` →
//! `FileRecord`), `digests` (`sha256 \0 filename` → `name \0 filename`), `meta` (format).
//!
//! A release holds one file per `DistIdentity`, which no key spells: the check scans the
//! project's files, so inserts are serialized by a lock (a sled transaction cannot scan).
//! One process holds the database, so that lock covers every writer, and databases written
//! before the rule need no new tree or migration.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{
    FileOrigin, FileRecord, IndexError, IndexStore, InsertOutcome, ProjectRecord, check_held,
    find_same,
};
use crate::pypi::{DistFilename, PackageName, Sha256Digest};

impl From<sled::Error> for IndexError {
    fn from(error: sled::Error) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

/// Why the sled database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SledOpenError {
    #[error(
        "the data directory {path} is in use by another edelweiss process or cannot be opened: {source}"
    )]
    Open { path: String, source: sled::Error },
    #[error(
        "the index database was written in format {found}; this edelweiss reads format {expected}"
    )]
    Format { found: String, expected: String },
    #[error("the index database failed while opening: {0}")]
    Database(#[from] sled::Error),
}

/// Cheap to clone: every handle shares the one database, so a clone can run a call that
/// scans or flushes on a blocking thread.
#[derive(Clone)]
pub struct SledIndex {
    db: sled::Db,
    projects: sled::Tree,
    files: sled::Tree,
    digests: sled::Tree,
    /// Held from the same-file check to the end of the insert's transaction.
    inserts: Arc<Mutex<()>>,
}

fn file_key(project: &str, filename: &str) -> Vec<u8> {
    [project.as_bytes(), b"\0", filename.as_bytes()].concat()
}

fn digest_key(digest: Sha256Digest, filename: &str) -> Vec<u8> {
    [digest.to_hex().as_bytes(), b"\0", filename.as_bytes()].concat()
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, IndexError> {
    serde_json::from_slice(value).map_err(|source| IndexError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs to JSON cannot fail: no maps with non-string keys.
    serde_json::to_vec(value).expect("records serialize to JSON")
}

impl SledIndex {
    /// Bumped when a record's layout changes incompatibly.
    pub const FORMAT: &'static str = "1";

    /// Opens (or creates) the database at `path`, its own cache held to `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self, SledOpenError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|source| SledOpenError::Open {
                path: path.display().to_string(),
                source,
            })?;
        let meta = db.open_tree("meta")?;
        match meta.get("format")? {
            Some(found) if found.as_ref() != Self::FORMAT.as_bytes() => {
                let found = String::from_utf8_lossy(&found).into_owned();
                return Err(SledOpenError::Format {
                    found,
                    expected: Self::FORMAT.into(),
                });
            }
            Some(_) => {}
            None => {
                meta.insert("format", Self::FORMAT)?;
            }
        }
        Ok(Self {
            projects: db.open_tree("projects")?,
            files: db.open_tree("files")?,
            digests: db.open_tree("digests")?,
            inserts: Arc::new(Mutex::new(())),
            db,
        })
    }

    /// The database itself, for the build queue's and the mirror's trees.
    pub fn database(&self) -> &sled::Db {
        &self.db
    }

    /// Runs `work` on a blocking thread: for the calls that scan a whole tree or wait for
    /// the disk (a flush).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SledIndex) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let index = self.clone();
        tokio::task::spawn_blocking(move || work(&index))
            .await
            .map_err(|error| IndexError::Unavailable(Box::new(error)))?
    }

    fn read_files(&self, name: &PackageName) -> Result<Vec<FileRecord>, IndexError> {
        let prefix = file_key(name.as_ref(), "");
        self.files
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry?;
                decode(&key, &value)
            })
            .collect()
    }

    fn read_file(&self, name: &str, filename: &str) -> Result<Option<FileRecord>, IndexError> {
        let key = file_key(name, filename);
        self.files
            .get(&key)?
            .map(|value| decode(&key, &value))
            .transpose()
    }

    fn read_same_file(&self, filename: &DistFilename) -> Result<Option<FileRecord>, IndexError> {
        if let Some(record) = self.read_file(filename.name().as_ref(), filename.as_str())? {
            return Ok(Some(record));
        }
        let files = self.read_files(filename.name())?;
        Ok(find_same(&files, filename).cloned())
    }

    /// The identity is checked and the record written under `inserts`: no key spells the
    /// identity, and a sled transaction cannot scan.
    fn insert_now(
        &self,
        filename: &DistFilename,
        record: &FileRecord,
        display_name: &str,
    ) -> Result<InsertOutcome, IndexError> {
        debug_assert_eq!(filename.as_str(), record.filename);
        // A poisoned lock guards nothing but the ordering of inserts: keep going.
        let _serialized = self
            .inserts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(held) = self.read_same_file(filename)? {
            return check_held(&held, &record.filename, record.sha256);
        }
        let key = file_key(&record.project, &record.filename);
        let uploaded = record.origin == FileOrigin::Uploaded;
        let project = ProjectRecord {
            name: record.project.clone(),
            display_name: display_name.to_string(),
            uploaded,
        };
        let result = (&self.projects, &self.files, &self.digests).transaction(
            |(projects, files, digests)| {
                if let Some(existing) = files.get(&key)? {
                    let existing: FileRecord =
                        decode(&key, &existing).map_err(ConflictableTransactionError::Abort)?;
                    return check_held(&existing, &record.filename, record.sha256)
                        .map_err(ConflictableTransactionError::Abort);
                }
                let known = projects.get(record.project.as_bytes())?;
                let known: Option<ProjectRecord> = known
                    .map(|value| decode(record.project.as_bytes(), &value))
                    .transpose()
                    .map_err(ConflictableTransactionError::Abort)?;
                match known {
                    None => {
                        projects.insert(record.project.as_bytes(), encode(&project))?;
                    }
                    Some(mut known) if uploaded && !known.uploaded => {
                        known.uploaded = true;
                        projects.insert(record.project.as_bytes(), encode(&known))?;
                    }
                    Some(_) => {}
                }
                files.insert(key.as_slice(), encode(record))?;
                digests.insert(digest_key(record.sha256, &record.filename), key.as_slice())?;
                Ok(InsertOutcome::Inserted)
            },
        );
        let outcome = result.map_err(|error| match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => IndexError::from(error),
        })?;
        self.db.flush()?;
        Ok(outcome)
    }

    fn set_yanked_now(
        &self,
        name: &PackageName,
        filename: &str,
        reason: Option<String>,
    ) -> Result<FileRecord, IndexError> {
        let key = file_key(name.as_ref(), filename);
        let not_found = || IndexError::FileNotFound {
            project: name.to_string(),
            filename: filename.to_string(),
        };
        let mut record: FileRecord = decode(&key, &self.files.get(&key)?.ok_or_else(not_found)?)?;
        record.yanked = reason;
        self.files.insert(key, encode(&record))?;
        self.db.flush()?;
        Ok(record)
    }
}

#[async_trait]
impl IndexStore for SledIndex {
    async fn projects(&self) -> Result<Vec<ProjectRecord>, IndexError> {
        self.blocking(|index| {
            index
                .projects
                .iter()
                .map(|entry| {
                    let (key, value) = entry?;
                    decode(&key, &value)
                })
                .collect()
        })
        .await
    }

    async fn project(&self, name: &PackageName) -> Result<Option<ProjectRecord>, IndexError> {
        let key = name.as_ref().as_bytes();
        self.projects
            .get(key)?
            .map(|value| decode(key, &value))
            .transpose()
    }

    async fn files(&self, name: &PackageName) -> Result<Vec<FileRecord>, IndexError> {
        self.read_files(name)
    }

    async fn file(
        &self,
        name: &PackageName,
        filename: &str,
    ) -> Result<Option<FileRecord>, IndexError> {
        self.read_file(name.as_ref(), filename)
    }

    async fn same_file(&self, filename: &DistFilename) -> Result<Option<FileRecord>, IndexError> {
        self.read_same_file(filename)
    }

    async fn file_by_digest(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<FileRecord>, IndexError> {
        let Some(file_key) = self.digests.get(digest_key(digest, filename))? else {
            return Ok(None);
        };
        self.files
            .get(&file_key)?
            .map(|value| decode(&file_key, &value))
            .transpose()
    }

    async fn insert_file(
        &self,
        filename: &DistFilename,
        record: &FileRecord,
        display_name: &str,
    ) -> Result<InsertOutcome, IndexError> {
        let (filename, record) = (filename.clone(), record.clone());
        let display_name = display_name.to_string();
        self.blocking(move |index| index.insert_now(&filename, &record, &display_name))
            .await
    }

    async fn set_yanked(
        &self,
        name: &PackageName,
        filename: &str,
        reason: Option<String>,
    ) -> Result<FileRecord, IndexError> {
        let (name, filename) = (name.clone(), filename.to_string());
        self.blocking(move |index| index.set_yanked_now(&name, &filename, reason))
            .await
    }

    /// Counting a sled tree walks it.
    async fn file_count(&self) -> Result<u64, IndexError> {
        self.blocking(|index| Ok(index.files.len() as u64)).await
    }

    async fn ping(&self) -> Result<(), IndexError> {
        self.db.open_tree("meta")?.get("format")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_record_that_does_not_decode_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let index = SledIndex::open(dir.path(), 1 << 20).unwrap();
        index
            .files
            .insert(
                file_key("demo", "demo-1.0.tar.gz"),
                &br#"{"project": 1}"#[..],
            )
            .unwrap();
        let name = crate::pypi::parse_package_name("demo").unwrap();
        let error = index.files(&name).await.unwrap_err();
        assert!(
            matches!(error, IndexError::Corrupt { ref key, .. } if key == "demo\0demo-1.0.tar.gz"),
            "{error}"
        );
    }

    #[test]
    fn refuses_a_database_of_another_format() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert("format", "99")
                .unwrap();
            db.flush().unwrap();
        }
        assert!(matches!(
            SledIndex::open(dir.path(), 1 << 20),
            Err(SledOpenError::Format { .. })
        ));
    }
}
