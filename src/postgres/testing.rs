//! A fresh database per test on the test server of `.ci/setup`, so tests run in parallel.
//! Where no server answers, a test says so and passes; under `CI=true` it fails instead,
//! so that a green CI run always ran against PostgreSQL.

use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// Tries of a drop that an autovacuum worker holds up, 100 ms apart.
const AUTOVACUUM_WAITS: usize = 50;

/// The server `.ci/setup` starts, unless `EDELWEISS_TEST_POSTGRES` names another (a URL of
/// a role that may create databases).
const DEFAULT_SERVER: &str = "postgres://edelweiss_test:edelweiss_test@127.0.0.1:5433/postgres";

pub struct TestDatabase {
    /// The fresh database's URL.
    pub url: String,
    server: String,
    name: String,
}

impl TestDatabase {
    /// A new empty database, or `None` where no server answers outside CI.
    pub async fn create() -> Option<Self> {
        let server =
            std::env::var("EDELWEISS_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.into());
        let client = match connect(&server).await {
            Ok(client) => client,
            Err(error) => {
                assert!(
                    !in_ci(),
                    "CI=true, but no PostgreSQL answers at {server} ({error}): run .ci/setup"
                );
                eprintln!("skipped: no PostgreSQL answers at {server}; run .ci/setup");
                return None;
            }
        };
        let name = format!("edelweiss_test_{}", uuid::Uuid::new_v4().simple());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("the test role may create databases");
        let mut url = url::Url::parse(&server).expect("the test server URL parses");
        url.set_path(&name);
        Some(Self {
            url: url.to_string(),
            server,
            name,
        })
    }

    /// Drops the database, ending any connection still open to it. An autovacuum worker
    /// in it is a backend the test role may not end: the drop is refused until it is done,
    /// which takes moments on a test's few rows.
    pub async fn remove(self) {
        let client = connect(&self.server).await.expect("the server answered");
        let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        for _ in 0..AUTOVACUUM_WAITS {
            match client.batch_execute(&drop).await {
                Err(error) if error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                result => return result.expect("the test database drops"),
            }
        }
        client
            .batch_execute(&drop)
            .await
            .expect("the test database drops");
    }
}

/// One connection, driven on its own task.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}
