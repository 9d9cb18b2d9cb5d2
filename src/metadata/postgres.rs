//! The index's records in PostgreSQL, for replicas that share one database. A project is a
//! row of `index_projects`; a file is a row of `index_files`: the `FileRecord` as JSONB,
//! plus the columns looked up by (project and filename, digest and filename).
//!
//! A release holds one file per `DistIdentity`, and no column spells the identity: it is
//! decided in Rust (`check_held` over `DistFilename::identity`), as in sled, so a change of
//! the parser's rules needs no migration. An insert is therefore one transaction that
//! first takes the project's row lock (creating the row if the project is new), then reads
//! the project's files and writes the new one: concurrent inserts into one project, from
//! any replica, take turns, and each sees the files committed before it. The primary key
//! on (project, filename) stays as a second guard for the exact spelling.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio_postgres::Transaction;

use super::{
    FileOrigin, FileRecord, IndexError, IndexStore, InsertOutcome, ProjectRecord, check_held,
    find_same,
};
use crate::postgres::{Migrations, OpenError};
use crate::pypi::{DistFilename, PackageName, Sha256Digest};

pub const MIGRATIONS: Migrations = Migrations {
    component: "index_records",
    steps: &["CREATE TABLE index_projects (
            name text PRIMARY KEY,
            display_name text NOT NULL,
            uploaded boolean NOT NULL
        );
        CREATE TABLE index_files (
            project text NOT NULL REFERENCES index_projects (name),
            filename text NOT NULL,
            sha256 text NOT NULL,
            record jsonb NOT NULL,
            PRIMARY KEY (project, filename)
        );
        CREATE INDEX index_files_digest ON index_files (sha256, filename);"],
};

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> IndexError {
    IndexError::Unavailable(Box::new(error))
}

/// The server's own message when it sent one (a bare `tokio_postgres::Error` says only
/// "db error").
fn failed(error: tokio_postgres::Error) -> IndexError {
    match error.as_db_error() {
        Some(server) => unavailable(server.clone()),
        None => unavailable(error),
    }
}

fn decode_file(row: &tokio_postgres::Row) -> Result<FileRecord, IndexError> {
    let project: &str = row.get("project");
    let filename: &str = row.get("filename");
    serde_json::from_value(row.get("record")).map_err(|source| IndexError::Corrupt {
        key: format!("index_files/{project}/{filename}"),
        source,
    })
}

fn project_of(row: &tokio_postgres::Row) -> ProjectRecord {
    ProjectRecord {
        name: row.get("name"),
        display_name: row.get("display_name"),
        uploaded: row.get("uploaded"),
    }
}

/// Creates the project's row if it is new and locks it for the rest of the transaction.
async fn lock_project(
    transaction: &Transaction<'_>,
    project: &ProjectRecord,
) -> Result<ProjectRecord, IndexError> {
    transaction
        .execute(
            "INSERT INTO index_projects (name, display_name, uploaded) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[&project.name, &project.display_name, &project.uploaded],
        )
        .await
        .map_err(failed)?;
    let row = transaction
        .query_one(
            "SELECT name, display_name, uploaded FROM index_projects WHERE name = $1 FOR UPDATE",
            &[&project.name],
        )
        .await
        .map_err(failed)?;
    Ok(project_of(&row))
}

async fn files_of(
    client: &impl tokio_postgres::GenericClient,
    project: &str,
) -> Result<Vec<FileRecord>, IndexError> {
    let rows = client
        .query(
            "SELECT project, filename, record FROM index_files WHERE project = $1
             ORDER BY filename COLLATE \"C\"",
            &[&project],
        )
        .await
        .map_err(failed)?;
    rows.iter().map(decode_file).collect()
}

#[derive(Clone)]
pub struct PostgresIndexStore {
    pool: Pool,
}

impl PostgresIndexStore {
    /// Connects to `url` and brings the records' schema up to date.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let pool = crate::postgres::open(url, &MIGRATIONS).await?;
        Ok(Self { pool })
    }

    /// The records on a pool whose schemas are already up to date (`postgres::open_shared`).
    pub fn on(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, IndexError> {
        self.pool.get().await.map_err(unavailable)
    }
}

#[async_trait]
impl IndexStore for PostgresIndexStore {
    async fn projects(&self) -> Result<Vec<ProjectRecord>, IndexError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, display_name, uploaded FROM index_projects
                 ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(failed)?;
        Ok(rows.iter().map(project_of).collect())
    }

    async fn project(&self, name: &PackageName) -> Result<Option<ProjectRecord>, IndexError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT name, display_name, uploaded FROM index_projects WHERE name = $1",
                &[&name.as_ref()],
            )
            .await
            .map_err(failed)?;
        Ok(row.as_ref().map(project_of))
    }

    async fn files(&self, name: &PackageName) -> Result<Vec<FileRecord>, IndexError> {
        files_of(&**self.client().await?, name.as_ref()).await
    }

    async fn file(
        &self,
        name: &PackageName,
        filename: &str,
    ) -> Result<Option<FileRecord>, IndexError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT project, filename, record FROM index_files
                 WHERE project = $1 AND filename = $2",
                &[&name.as_ref(), &filename],
            )
            .await
            .map_err(failed)?;
        row.as_ref().map(decode_file).transpose()
    }

    async fn same_file(&self, filename: &DistFilename) -> Result<Option<FileRecord>, IndexError> {
        let files = self.files(filename.name()).await?;
        Ok(find_same(&files, filename).cloned())
    }

    async fn file_by_digest(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<FileRecord>, IndexError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT project, filename, record FROM index_files
                 WHERE sha256 = $1 AND filename = $2",
                &[&digest.to_hex(), &filename],
            )
            .await
            .map_err(failed)?;
        row.as_ref().map(decode_file).transpose()
    }

    async fn insert_file(
        &self,
        filename: &DistFilename,
        record: &FileRecord,
        display_name: &str,
    ) -> Result<InsertOutcome, IndexError> {
        debug_assert_eq!(filename.as_str(), record.filename);
        let uploaded = record.origin == FileOrigin::Uploaded;
        let new_project = ProjectRecord {
            name: record.project.clone(),
            display_name: display_name.to_string(),
            uploaded,
        };
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(failed)?;
        let project = lock_project(&transaction, &new_project).await?;
        let files = files_of(&*transaction, &record.project).await?;
        if let Some(held) = find_same(&files, filename) {
            return check_held(held, &record.filename, record.sha256);
        }
        // A plain struct: serializing to JSON cannot fail.
        let value = serde_json::to_value(record).expect("file records serialize");
        transaction
            .execute(
                "INSERT INTO index_files (project, filename, sha256, record)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &record.project,
                    &record.filename,
                    &record.sha256.to_hex(),
                    &value,
                ],
            )
            .await
            .map_err(failed)?;
        if uploaded && !project.uploaded {
            transaction
                .execute(
                    "UPDATE index_projects SET uploaded = true WHERE name = $1",
                    &[&record.project],
                )
                .await
                .map_err(failed)?;
        }
        transaction.commit().await.map_err(failed)?;
        Ok(InsertOutcome::Inserted)
    }

    async fn set_yanked(
        &self,
        name: &PackageName,
        filename: &str,
        reason: Option<String>,
    ) -> Result<FileRecord, IndexError> {
        let yanked = serde_json::Value::from(reason);
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE index_files SET record = jsonb_set(record, '{yanked}', $3)
                 WHERE project = $1 AND filename = $2
                 RETURNING project, filename, record",
                &[&name.as_ref(), &filename, &yanked],
            )
            .await
            .map_err(failed)?;
        let Some(row) = row else {
            return Err(IndexError::FileNotFound {
                project: name.to_string(),
                filename: filename.to_string(),
            });
        };
        decode_file(&row)
    }

    async fn file_count(&self) -> Result<u64, IndexError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT count(*) FROM index_files", &[])
            .await
            .map_err(failed)?;
        Ok(row.get::<_, i64>(0).unsigned_abs())
    }

    async fn ping(&self) -> Result<(), IndexError> {
        self.client()
            .await?
            .query_one("SELECT 1", &[])
            .await
            .map_err(failed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::FileKind;
    use crate::postgres::testing::{TestDatabase, connect};

    fn sdist(filename: &str, content: &[u8]) -> (DistFilename, FileRecord) {
        let parsed: DistFilename = filename.parse().unwrap();
        let record = FileRecord {
            project: parsed.name().to_string(),
            filename: filename.to_string(),
            version: parsed.version().to_string(),
            kind: FileKind::Sdist,
            sha256: Sha256Digest::of(content),
            size: content.len() as u64,
            upload_time: "2026-01-01T00:00:00Z".into(),
            requires_python: None,
            metadata_sha256: None,
            yanked: None,
            origin: FileOrigin::Uploaded,
        };
        (parsed, record)
    }

    /// Two replicas, each with its own pool, opened at once on one database (the schema
    /// is applied once) and racing one file under two spellings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_inserting_one_file_at_once_insert_it_once() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let (first, second) = tokio::join!(
            PostgresIndexStore::open(&database.url),
            PostgresIndexStore::open(&database.url),
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        for version in 0..10 {
            let (one, one_record) = sdist(&format!("demo-{version}.0.tar.gz"), b"one");
            let (two, two_record) = sdist(&format!("Demo-{version}.0.0.tar.gz"), b"two");
            let (from_first, from_second) = tokio::join!(
                first.insert_file(&one, &one_record, "demo"),
                second.insert_file(&two, &two_record, "Demo"),
            );
            let outcomes = [from_first, from_second];
            let inserted = outcomes
                .iter()
                .filter(|outcome| matches!(outcome, Ok(InsertOutcome::Inserted)))
                .count();
            let conflicts = outcomes
                .iter()
                .filter(|outcome| matches!(outcome, Err(IndexError::Conflict { .. })))
                .count();
            assert_eq!((inserted, conflicts), (1, 1), "{outcomes:?}");
        }
        assert_eq!(second.file_count().await.unwrap(), 10);
        drop((first, second));
        database.remove().await;
    }

    #[tokio::test]
    async fn a_record_that_does_not_decode_is_corrupt() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let store = PostgresIndexStore::open(&database.url).await.unwrap();
        let (filename, record) = sdist("demo-1.0.tar.gz", b"one");
        store.insert_file(&filename, &record, "demo").await.unwrap();
        let client = connect(&database.url).await.unwrap();
        client
            .batch_execute(r#"UPDATE index_files SET record = '{"project": 1}'"#)
            .await
            .unwrap();
        let error = store.files(filename.name()).await.unwrap_err();
        assert!(
            matches!(error, IndexError::Corrupt { ref key, .. } if key == "index_files/demo/demo-1.0.tar.gz"),
            "{error}"
        );
        drop((store, client));
        database.remove().await;
    }
}
