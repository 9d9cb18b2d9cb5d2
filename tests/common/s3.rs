//! The S3 server of the storage tests: `tests/s3/server.py` (moto's S3 service, from the venv
//! `.ci/setup` makes) on a free loopback port, one per test process, shared by its tests,
//! each under a prefix of its own. It exits with the test process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The bucket every test writes into, under its own prefix.
pub const BUCKET: &str = "edelweiss-tests";

pub struct S3Server {
    pub url: String,
    /// Held so the server's standard input stays open while this process runs.
    _child: Mutex<(Child, ChildStdin)>,
}

/// The Python of the S3 server's venv: `EDELWEISS_S3_PYTHON`, or what `.ci/setup` installs.
fn server_python() -> PathBuf {
    std::env::var_os("EDELWEISS_S3_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/edelweiss/tools/s3-venv/bin/python")
        })
}

impl S3Server {
    /// The shared server, or None (after a line saying so) where it is not installed.
    /// Under `CI=true` a missing server fails the test: a green CI run always ran on S3.
    pub fn shared() -> Option<&'static S3Server> {
        static SERVER: OnceLock<Option<S3Server>> = OnceLock::new();
        let server = SERVER.get_or_init(|| {
            let python = server_python();
            if python.exists() {
                return Some(Self::start(&python));
            }
            assert!(
                !super::in_ci(),
                "CI=true, but the S3 test server is not installed at {}: run .ci/setup",
                python.display()
            );
            None
        });
        if server.is_none() {
            eprintln!("skipped: the S3 test server is not installed (run .ci/setup)");
        }
        server.as_ref()
    }

    fn start(python: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/server.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(["--bucket", BUCKET])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("start the S3 server ({}): {error}", python.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the S3 server did not start: {line:?}"))
            .to_string();
        let stdin = child.stdin.take().unwrap();
        Self {
            url,
            _child: Mutex::new((child, stdin)),
        }
    }

    /// `s3://` URL of a store under `prefix` in the test bucket.
    pub fn storage_url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The `AWS_*` settings an operator sets for an S3-compatible server over plain HTTP.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "edelweiss-test"),
            ("AWS_SECRET_ACCESS_KEY", "edelweiss-test-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
    }

    /// The keys of the objects under `prefix`, as S3 lists them.
    pub async fn objects(&self, prefix: &str) -> Vec<String> {
        self.listed_keys(&format!("list-type=2&prefix={prefix}/"), "Contents")
            .await
    }

    /// The keys of the multipart uploads under `prefix` begun and neither completed nor
    /// aborted: invisible, but kept (and billed) by S3 until aborted.
    pub async fn incomplete_uploads(&self, prefix: &str) -> Vec<String> {
        self.listed_keys(&format!("uploads&prefix={prefix}/"), "Upload")
            .await
    }

    async fn listed_keys(&self, query: &str, element: &str) -> Vec<String> {
        let response = reqwest::get(format!("{}/{BUCKET}?{query}", self.url))
            .await
            .expect("list the S3 bucket");
        assert!(response.status().is_success(), "{response:?}");
        let xml = response.text().await.unwrap();
        xml.split(&format!("<{element}>"))
            .skip(1)
            .filter_map(|entry| {
                let key = entry.split_once("<Key>")?.1.split_once("</Key>")?.0;
                Some(key.to_string())
            })
            .collect()
    }
}
