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
