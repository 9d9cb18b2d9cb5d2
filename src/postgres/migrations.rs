//! Schema migrations versioned in the binary. Each store names its component and lists its
//! SQL steps in order; `schema_version` holds, per component, how many were applied. A
//! step, once released, never changes: a change of schema is a new step at the end.
//!
//! Applying is idempotent and safe when several processes open the same database at once:
//! every opener takes one transaction-scoped advisory lock, so one applies the missing
//! steps and the others then find nothing left to do.

use super::OpenError;

/// The advisory lock key every migration holds ("edelweis" in ASCII).
const LOCK_KEY: i64 = 0x6564_656c_7765_6973;

pub struct Migrations {
    /// The store these steps belong to: its row in `schema_version`.
    pub component: &'static str,
    pub steps: &'static [&'static str],
}

impl Migrations {
    /// Applies the steps past the recorded version, all in one transaction.
    pub async fn apply(&self, client: &mut tokio_postgres::Client) -> Result<Applied, OpenError> {
        let unavailable = |error: tokio_postgres::Error| OpenError::Unavailable(Box::new(error));
        let transaction = client.transaction().await.map_err(unavailable)?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(unavailable)?;
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_version (
                    component text PRIMARY KEY,
                    version integer NOT NULL
                )",
            )
            .await
            .map_err(unavailable)?;
        let row = transaction
            .query_opt(
                "SELECT version FROM schema_version WHERE component = $1",
                &[&self.component],
            )
            .await
            .map_err(unavailable)?;
        let applied = row.map_or(0, |row| row.get::<_, i32>(0)) as usize;
        if applied > self.steps.len() {
            return Err(OpenError::NewerSchema {
                component: self.component,
                found: applied,
                known: self.steps.len(),
            });
        }
        for (index, step) in self.steps.iter().enumerate().skip(applied) {
            transaction
                .batch_execute(step)
                .await
                .map_err(|error| OpenError::Migration {
                    component: self.component,
                    version: index + 1,
                    source: Box::new(error),
                })?;
        }
        if applied < self.steps.len() {
            let version = self.steps.len() as i32;
            transaction
                .execute(
                    "INSERT INTO schema_version (component, version) VALUES ($1, $2)
                     ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                    &[&self.component, &version],
                )
                .await
                .map_err(unavailable)?;
        }
        transaction.commit().await.map_err(unavailable)?;
        Ok(Applied {
            component: self.component,
            from: applied,
            to: self.steps.len(),
        })
    }
}

/// What `Migrations::apply` found and left: `from == to` when the schema was up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub component: &'static str,
    pub from: usize,
    pub to: usize,
}
