//! `edelweiss add`: offline ingest into a data dir, with the same validation as uploads.

mod common;

use std::process::Command;

use common::dists::{WheelSpec, write_sdist};
use common::server::{TestServer, binary};
use common::text;

fn add(data_dir: &std::path::Path, files: &[&std::path::Path]) -> std::process::Output {
    Command::new(binary())
        .arg("add")
        .arg("--data")
        .arg(data_dir)
        .args(files)
        .output()
        .expect("run edelweiss add")
}

#[test]
fn add_ingests_files_that_a_server_then_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wheel = WheelSpec::new("seeded", "1.0", "py3-none-any").write(dir.path());
    let sdist = write_sdist(dir.path(), "seeded", "1.0", &[]);
    let output = add(&data, &[&wheel, &sdist]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("added seeded-1.0-py3-none-any.whl sha256="));

    let again = add(&data, &[&wheel]);
    assert!(again.status.success());
    assert!(text(&again).contains("unchanged seeded-1.0-py3-none-any.whl"));

    let broken = dir.path().join("broken-1.0-py3-none-any.whl");
    std::fs::write(&broken, b"not a zip").unwrap();
    let refused = add(&data, &[&broken]);
    assert!(!refused.status.success());
    assert!(
        text(&refused)
            .contains("invalid archive broken-1.0-py3-none-any.whl: not a valid zip archive"),
        "{}",
        text(&refused)
    );

    let config = dir.path().join("edelweiss.toml");
    std::fs::write(&config, "").unwrap();
    let server = TestServer::spawn(&data, &config);
    let page = server.get_json("/simple/seeded/");
    assert_eq!(page["files"].as_array().unwrap().len(), 2);

    let while_serving = add(&data, &[&wheel]);
    assert!(!while_serving.status.success());
    assert!(
        text(&while_serving).contains("in use by another edelweiss process"),
        "{}",
        text(&while_serving)
    );
}

/// Linux's signal number for a write to a pipe nobody reads.
const SIGPIPE: i32 = 13;

/// Tried: `edelweiss add` whose output is closed at once (`| head -0`). Kept: the process ends
/// as Unix tools do (quietly, by SIGPIPE, or normally), never with a panic.
#[test]
fn add_ends_quietly_when_its_output_is_closed() {
    use std::os::unix::process::ExitStatusExt as _;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (1..=5)
        .map(|n| WheelSpec::new("piped", &format!("1.{n}"), "py3-none-any").write(dir.path()))
        .collect();
    let mut child = Command::new(binary())
        .arg("add")
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(&files)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run edelweiss add");
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        output.status.success() || output.status.signal() == Some(SIGPIPE),
        "{:?}: {stderr}",
        output.status
    );
}
