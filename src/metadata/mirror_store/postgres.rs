//! The mirror's records in PostgreSQL, for replicas that share one database.
//!
//! `mirror_pages` holds a page's validators as columns and its detail as the JSON of
//! `ProjectDetail` in `bytea` (opaque here, written once per fetch), so a revalidation
//! updates a few small columns and leaves the detail's stored value as it is.
//! `mirror_origins` holds one row per project: the `page_origins` record of its page,
//! written in the same transaction as the page. `mirror_extracted_metadata` is keyed by
//! (project, filename), so a page reads its project's few with one indexed scan.
//!
//! Fetch locks are advisory locks (`advisory`), on connections of their own.
//!
//! No table stands for sled's legacy `upstream_files`: no data written before
//! `upstream_origins` was ever in PostgreSQL.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::advisory::AdvisoryLocks;
use super::{
    CachedPage, ExtractedMetadata, Extraction, FetchGuard, FetchKey, FetchLockError, MirrorStore,
    MirrorStoreError, Revalidation, UpstreamFile, find_origin, page_origins, project_of,
};
use crate::postgres::{Migrations, OpenError};
use crate::pypi::{PackageName, Sha256Digest};

pub const MIGRATIONS: Migrations = Migrations {
    component: "mirror_records",
    steps: &["CREATE TABLE mirror_pages (
            project text PRIMARY KEY,
            upstream text NOT NULL,
            fetched_at bigint NOT NULL,
            etag text,
            last_modified text,
            detail bytea NOT NULL
        );
        CREATE TABLE mirror_origins (
            project text PRIMARY KEY,
            origins bytea NOT NULL
        );
        CREATE TABLE mirror_extracted_metadata (
            project text NOT NULL,
            filename text NOT NULL,
            wheel_sha256 text NOT NULL,
            -- Exactly one: the METADATA blob, or why the wheel has none.
            metadata_sha256 text,
            refused text,
            PRIMARY KEY (project, filename),
            CHECK ((metadata_sha256 IS NULL) <> (refused IS NULL))
        );"],
};

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> MirrorStoreError {
    MirrorStoreError::Unavailable(Box::new(error))
}

fn corrupt(key: String, reason: impl ToString) -> MirrorStoreError {
    MirrorStoreError::Corrupt {
        key,
        reason: reason.to_string(),
    }
}

/// Unix seconds as PostgreSQL's `bigint`; a time past its range is kept as its largest.
fn to_column(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

fn decode_page(project: &PackageName, row: &Row) -> Result<CachedPage, MirrorStoreError> {
    let key = || format!("upstream page of {project}");
    let fetched_at: i64 = row.get("fetched_at");
    let detail: &[u8] = row.get("detail");
    Ok(CachedPage {
        upstream: row.get("upstream"),
        fetched_at: u64::try_from(fetched_at).map_err(|error| corrupt(key(), error))?,
        etag: row.get("etag"),
        last_modified: row.get("last_modified"),
        detail: serde_json::from_slice(detail).map_err(|error| corrupt(key(), error))?,
    })
}

fn decode_extracted(
    project: &PackageName,
    row: &Row,
) -> Result<(String, ExtractedMetadata), MirrorStoreError> {
    let filename: String = row.get("filename");
    let key = || format!("extracted metadata of {project} {filename}");
    let digest = |column: &str| {
        let hex: &str = row.get(column);
        hex.parse::<Sha256Digest>()
            .map_err(|error| corrupt(key(), error))
    };
    let refused: Option<String> = row.get("refused");
    let metadata: Option<&str> = row.get("metadata_sha256");
    let outcome = match (refused, metadata) {
        (Some(reason), _) => Extraction::Refused { reason },
        (None, Some(_)) => Extraction::Stored {
            metadata_sha256: digest("metadata_sha256")?,
        },
        (None, None) => return Err(corrupt(key(), "neither stored nor refused")),
    };
    let record = ExtractedMetadata {
        wheel_sha256: digest("wheel_sha256")?,
        outcome,
    };
    Ok((filename, record))
}

#[derive(Clone)]
pub struct PostgresMirrorStore {
    pool: Pool,
    locks: AdvisoryLocks,
}

impl PostgresMirrorStore {
    /// Connects to `url` and brings the mirror's schema up to date.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let pool = crate::postgres::open(url, &MIGRATIONS).await?;
        Ok(Self::on(pool))
    }

    /// The mirror's records on a pool whose schemas are already up to date
    /// (`postgres::open_shared`).
    pub fn on(pool: Pool) -> Self {
        let locks = AdvisoryLocks::new(pool.clone());
        Self { pool, locks }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, MirrorStoreError> {
        self.pool.get().await.map_err(unavailable)
    }
}

#[async_trait]
impl MirrorStore for PostgresMirrorStore {
    async fn page(&self, project: &PackageName) -> Result<Option<CachedPage>, MirrorStoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT upstream, fetched_at, etag, last_modified, detail
                 FROM mirror_pages WHERE project = $1",
                &[&project.as_ref()],
            )
            .await
            .map_err(unavailable)?;
        row.map(|row| decode_page(project, &row)).transpose()
    }

    async fn fetch_lock(
        &self,
        key: &FetchKey,
        wait: Duration,
    ) -> Result<FetchGuard, FetchLockError> {
        self.locks.lock(key, wait).await.map(FetchGuard::held)
    }

    async fn put_page(
        &self,
        project: &PackageName,
        page: &CachedPage,
    ) -> Result<(), MirrorStoreError> {
        // A plain struct with string keys: serializing to JSON cannot fail.
        let detail = serde_json::to_vec(&page.detail).expect("pages serialize to JSON");
        let origins = page_origins::encode(&page.upstream, &page.detail.files);
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        transaction
            .execute(
                "INSERT INTO mirror_origins (project, origins) VALUES ($1, $2)
                 ON CONFLICT (project) DO UPDATE SET origins = EXCLUDED.origins",
                &[&project.as_ref(), &origins],
            )
            .await
            .map_err(unavailable)?;
        transaction
            .execute(
                "INSERT INTO mirror_pages
                     (project, upstream, fetched_at, etag, last_modified, detail)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (project) DO UPDATE SET
                     upstream = EXCLUDED.upstream,
                     fetched_at = EXCLUDED.fetched_at,
                     etag = EXCLUDED.etag,
                     last_modified = EXCLUDED.last_modified,
                     detail = EXCLUDED.detail",
                &[
                    &project.as_ref(),
                    &page.upstream,
                    &to_column(page.fetched_at),
                    &page.etag,
                    &page.last_modified,
                    &detail,
                ],
            )
            .await
            .map_err(unavailable)?;
        transaction.commit().await.map_err(unavailable)
    }

    async fn touch_page(
        &self,
        project: &PackageName,
        revalidation: &Revalidation,
    ) -> Result<bool, MirrorStoreError> {
        let updated = self
            .client()
            .await?
            .execute(
                "UPDATE mirror_pages SET fetched_at = $2, etag = $3, last_modified = $4
                 WHERE project = $1",
                &[
                    &project.as_ref(),
                    &to_column(revalidation.fetched_at),
                    &revalidation.etag,
                    &revalidation.last_modified,
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(updated > 0)
    }

    async fn upstream_file(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<UpstreamFile>, MirrorStoreError> {
        let Some(project) = project_of(filename) else {
            return Ok(None);
        };
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT origins FROM mirror_origins WHERE project = $1",
                &[&project.as_ref()],
            )
            .await
            .map_err(unavailable)?;
        match row {
            Some(row) => find_origin(&project, row.get("origins"), digest, filename),
            None => Ok(None),
        }
    }

    async fn put_extracted(
        &self,
        project: &PackageName,
        filename: &str,
        record: &ExtractedMetadata,
    ) -> Result<(), MirrorStoreError> {
        let (metadata, refused) = match &record.outcome {
            Extraction::Stored { metadata_sha256 } => (Some(metadata_sha256.to_hex()), None),
            Extraction::Refused { reason } => (None, Some(reason.as_str())),
        };
        self.client()
            .await?
            .execute(
                "INSERT INTO mirror_extracted_metadata
                     (project, filename, wheel_sha256, metadata_sha256, refused)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (project, filename) DO UPDATE SET
                     wheel_sha256 = EXCLUDED.wheel_sha256,
                     metadata_sha256 = EXCLUDED.metadata_sha256,
                     refused = EXCLUDED.refused",
                &[
                    &project.as_ref(),
                    &filename,
                    &record.wheel_sha256.to_hex(),
                    &metadata,
                    &refused,
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn extracted(
        &self,
        project: &PackageName,
        filename: &str,
        wheel_sha256: Sha256Digest,
    ) -> Result<Option<ExtractedMetadata>, MirrorStoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT filename, wheel_sha256, metadata_sha256, refused
                 FROM mirror_extracted_metadata
                 WHERE project = $1 AND filename = $2 AND wheel_sha256 = $3",
                &[&project.as_ref(), &filename, &wheel_sha256.to_hex()],
            )
            .await
            .map_err(unavailable)?;
        let record = row.map(|row| decode_extracted(project, &row)).transpose()?;
        Ok(record.map(|(_, record)| record))
    }

    async fn extracted_for_project(
        &self,
        project: &PackageName,
    ) -> Result<HashMap<String, ExtractedMetadata>, MirrorStoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT filename, wheel_sha256, metadata_sha256, refused
                 FROM mirror_extracted_metadata WHERE project = $1",
                &[&project.as_ref()],
            )
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| decode_extracted(project, row))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::mirror_store::conformance::{page, project};
    use crate::postgres::testing::{TestDatabase, connect};

    #[tokio::test]
    async fn a_store_opened_again_or_on_a_shared_pool_reads_what_was_written() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let first = PostgresMirrorStore::open(&database.url).await.unwrap();
        let written = page("demo", &["demo-1.0.tar.gz"]);
        first.put_page(&project("demo"), &written).await.unwrap();
        let again = PostgresMirrorStore::open(&database.url).await.unwrap();
        let shared = PostgresMirrorStore::on(first.pool.clone());
        for store in [&again, &shared] {
            let read = store.page(&project("demo")).await.unwrap();
            assert_eq!(read.as_ref(), Some(&written));
        }
        drop((first, again, shared));
        database.remove().await;
    }

    #[tokio::test]
    async fn corrupt_rows_are_typed_errors() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let store = PostgresMirrorStore::open(&database.url).await.unwrap();
        let client = connect(&database.url).await.unwrap();
        client
            .batch_execute(
                "INSERT INTO mirror_pages (project, upstream, fetched_at, detail)
                     VALUES ('demo', 'https://pypi.example/simple/', 1, '\\x7b'::bytea);
                 INSERT INTO mirror_origins (project, origins) VALUES ('demo', 'EWO'::bytea);
                 INSERT INTO mirror_extracted_metadata
                     (project, filename, wheel_sha256, refused)
                     VALUES ('demo', 'demo-1.0-py3-none-any.whl', 'not hex', 'no METADATA');",
            )
            .await
            .unwrap();
        let demo = project("demo");
        let wheel = "demo-1.0-py3-none-any.whl";
        let errors = [
            store.page(&demo).await.unwrap_err(),
            (store.upstream_file(Sha256Digest::of(b"wheel"), wheel).await).unwrap_err(),
            store.extracted_for_project(&demo).await.unwrap_err(),
        ];
        for (error, key) in errors.iter().zip(["page", "origins", "extracted"]) {
            assert!(
                matches!(error, MirrorStoreError::Corrupt { key: found, .. }
                    if found.contains(key) && found.contains("demo")),
                "{error}"
            );
        }
        drop((store, client));
        database.remove().await;
    }
}
