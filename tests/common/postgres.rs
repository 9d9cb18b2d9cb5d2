//! A fresh database per test on the PostgreSQL server `.ci/setup` starts, made and dropped
//! with `psql`. Where no server answers, the test says so and passes; under `CI=true` it
//! fails instead, so a green CI run always ran against PostgreSQL.

use std::process::Command;

const DEFAULT_SERVER: &str = "postgres://edelweiss_test:edelweiss_test@127.0.0.1:5433/postgres";

pub struct TestDatabase {
    /// The fresh database's URL, for `metadata_url`.
    pub url: String,
    server: String,
    name: String,
}

impl TestDatabase {
    pub fn create() -> Option<Self> {
        let server =
            std::env::var("EDELWEISS_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.into());
        let name = format!("edelweiss_it_{}", uuid::Uuid::new_v4().simple());
        if let Err(error) = psql(&server, &format!("CREATE DATABASE {name}")) {
            assert!(
                !super::in_ci(),
                "CI=true, but no PostgreSQL answers at {server} ({error}): run .ci/setup"
            );
            eprintln!("skipped: no PostgreSQL answers at {server}; run .ci/setup");
            return None;
        }
        let mut url = url::Url::parse(&server).expect("the test server URL parses");
        url.set_path(&name);
        Some(Self {
            url: url.to_string(),
            server,
            name,
        })
    }

    /// The rows `query` selects in this database, one line each, columns joined by `|`.
    pub fn select(&self, query: &str) -> Vec<String> {
        let output = psql(&self.url, query).expect("query runs");
        output.lines().map(str::to_string).collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, command: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args(["--no-psqlrc", "--tuples-only", "--no-align", "--quiet"])
        .args(["--dbname", url, "--command", command])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .map_err(|error| format!("psql: {error}"))?;
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
    }
}
