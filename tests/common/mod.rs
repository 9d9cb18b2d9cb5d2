//! Test harness: the real `edelweiss` binary on a loopback port over a temporary data dir,
//! the real Python clients from `.ci/setup`, and distributions the tests build themselves.

#![allow(dead_code)]

pub mod dists;
pub mod exposition;
pub mod farm;
pub mod image;
pub mod musl_root;
pub mod postgres;
pub mod s3;
pub mod scenarios;
pub mod server;
pub mod upstream;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Whether this is a CI run (`CI=true`), where a test that needs a server fails instead of
/// skipping when the server is missing.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

pub const UPLOAD_TOKEN: &str = "test-upload-token-0123456789";

/// The directory holding pip, twine and uv, installed by `.ci/setup`.
pub fn client_tools() -> PathBuf {
    let dir = std::env::var_os("EDELWEISS_CLIENT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/edelweiss/tools/venv/bin")
        });
    for tool in ["pip", "twine", "uv"] {
        assert!(
            dir.join(tool).exists(),
            "{tool} not found in {}: run .ci/setup first",
            dir.display()
        );
    }
    dir
}

pub fn tool(name: &str) -> Command {
    let mut command = Command::new(client_tools().join(name));
    // Only the index the test names: no user or machine configuration, caches or find-links.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("PIP_") || key.starts_with("UV_") {
            command.env_remove(key.as_ref());
        }
    }
    command
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_NO_CACHE_DIR", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("UV_NO_CONFIG", "1")
        .env("UV_NO_CACHE", "1")
        .env("UV_PYTHON_DOWNLOADS", "never");
    command
}

pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn assert_success(command: &mut Command) -> Output {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}",
        text(&output)
    );
    output
}

/// The non-empty lines a listing command (`docker ps`, `runc list`) prints. Its failure
/// fails the test: an engine that does not answer must not read as "nothing listed".
pub fn listed_lines(command: &mut Command) -> Vec<String> {
    let output = assert_success(command);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_string)
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `pip download` of wheels only, as pip on Alpine with CPython 3.13 would choose them.
pub fn pip_download_musl(
    index_url: &str,
    dest: impl AsRef<std::path::Path>,
    requirements: &[&str],
) -> Output {
    run(tool("pip")
        .args([
            "download",
            "--only-binary=:all:",
            "--platform",
            "musllinux_1_2_x86_64",
        ])
        .args([
            "--python-version",
            "3.13",
            "--implementation",
            "cp",
            "--abi",
            "cp313",
        ])
        .args(["--index-url", index_url, "--dest"])
        .arg(dest.as_ref())
        .args(requirements))
}

/// `uv pip compile` of `requirements` for CPython 3.13 on musl against `index_url`.
pub fn uv_compile_musl(index_url: &str, requirements: &std::path::Path) -> String {
    let output = assert_success(
        tool("uv")
            .args([
                "pip",
                "compile",
                "--no-header",
                "--python-platform",
                "x86_64-unknown-linux-musl",
            ])
            .args(["--python-version", "3.13", "--index-url", index_url])
            .arg(requirements),
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The NEEDED entries of an ELF file, as binutils' readelf reads them (independent of the
/// parser the farm's own symbol check uses).
pub fn elf_needed(library: &[u8]) -> Vec<String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), library).unwrap();
    let output = std::process::Command::new("readelf")
        .arg("-d")
        .arg(file.path())
        .output()
        .expect("readelf (binutils)");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| {
            line.split('[')
                .nth(1)
                .map(|rest| rest.trim_end_matches(']').to_string())
        })
        .collect()
}

/// How often a test asks whether the state it waits for has come.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Asks `probe` every `interval` until it answers, for at most `within`: `None` once that
/// has passed. Tests wait for a state this way, never for a guessed time.
pub fn polled<T>(
    within: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(answer) = probe() {
            return Some(answer);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(interval);
    }
}

/// Waits until `probe` answers, failing the test with `what` after `within`.
pub fn poll_for<T>(
    within: Duration,
    what: impl std::fmt::Display,
    probe: impl FnMut() -> Option<T>,
) -> T {
    polled(within, POLL_INTERVAL, probe)
        .unwrap_or_else(|| panic!("waited {within:?} for {what}, in vain"))
}

/// Waits until `ready` holds, failing the test with `what` after `within`.
pub fn poll_until(within: Duration, what: impl std::fmt::Display, mut ready: impl FnMut() -> bool) {
    poll_for(within, what, || ready().then_some(()))
}
