//! What every PostgreSQL backend shares: a connection pool opened from a URL, the schema
//! migrations each store brings (`migrations`), and the channel on which replicas tell each
//! other which pages a write changed (`page_changes`). The stores themselves (the build
//! queue, the index's records, the mirror's records) live beside their sled counterparts.
//!
//! Connections are plain TCP or a Unix socket, without TLS for now: the server is expected
//! on the same host or a private network.

pub mod migrations;
pub mod page_changes;
#[cfg(test)]
pub mod testing;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

pub use migrations::{Applied, Migrations};
pub use page_changes::PostgresPageChanges;

/// The schema of every store kept in PostgreSQL, in the order they are applied.
pub const SCHEMAS: &[&Migrations] = &[
    &crate::metadata::POSTGRES_MIGRATIONS,
    &crate::farm::queue::POSTGRES_MIGRATIONS,
    &crate::metadata::mirror_store::POSTGRES_MIGRATIONS,
];

/// Why a PostgreSQL store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("`{url}` is not a PostgreSQL URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("PostgreSQL is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(
        "the {component} schema is at version {found}, newer than this binary's {known}: \
         run a newer edelweiss"
    )]
    NewerSchema {
        component: &'static str,
        found: usize,
        known: usize,
    },
    #[error("migration {version} of the {component} schema failed: {source}")]
    Migration {
        component: &'static str,
        version: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest sent data may go unacknowledged before a connection counts as lost.
const TCP_USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections at most per pool: each store of each process holds its own pool.
const POOL_SIZE: usize = 8;

/// The connection settings `url` (`postgres://user:password@host:port/database`) names.
pub fn config(url: &str) -> Result<tokio_postgres::Config, OpenError> {
    let mut config: tokio_postgres::Config =
        url.parse()
            .map_err(|error: tokio_postgres::Error| OpenError::InvalidUrl {
                url: redacted(url),
                reason: error.to_string(),
            })?;
    if config.get_connect_timeout().is_none() {
        // A host that drops packets fails in seconds rather than after the kernel's retries.
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        // A server cut off mid-query (a partition, not a refusal) fails the query in seconds,
        // a 503, rather than after the kernel's quarter of an hour of retransmissions.
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    Ok(config)
}

/// A pool of connections to `url`. Nothing connects until the first use.
pub fn pool(url: &str) -> Result<Pool, OpenError> {
    let manager = Manager::from_config(
        config(url)?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .build()
        .map_err(|error| OpenError::Unavailable(Box::new(error)))
}

/// Opens a pool on `url` and brings its schema up to `migrations`.
pub async fn open(url: &str, migrations: &Migrations) -> Result<Pool, OpenError> {
    let pool = pool(url)?;
    migrate(&pool, &[migrations]).await?;
    Ok(pool)
}

/// The one pool every store of this process shares, on `url`, with every schema of
/// `SCHEMAS` brought up to date.
pub async fn open_shared(url: &str) -> Result<Pool, OpenError> {
    let pool = pool(url)?;
    migrate(&pool, SCHEMAS).await?;
    Ok(pool)
}

/// Brings each of `schemas` up to date; what each was and is now.
pub async fn migrate(pool: &Pool, schemas: &[&Migrations]) -> Result<Vec<Applied>, OpenError> {
    let mut client = pool
        .get()
        .await
        .map_err(|error| OpenError::Unavailable(Box::new(error)))?;
    let mut applied = Vec::with_capacity(schemas.len());
    for schema in schemas {
        applied.push(schema.apply(&mut client).await?);
    }
    Ok(applied)
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(an unparsable URL)".to_string(),
    }
}
