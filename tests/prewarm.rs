//! `edelweiss prewarm` on a requirements file that mixes pure-Python packages, one with an
//! upstream musllinux wheel and two that must be built.

mod common;

use common::dists::{WheelSpec, platform_wheels, write_sdist};
use common::farm::{Runtime, TARGET, c_extension_sdist};
use common::server::{TestServer, base_config, binary};
use common::upstream::{UpstreamServer, UpstreamTree};
use common::{UPLOAD_TOKEN, text};

#[test]
fn prewarm_builds_what_lacks_a_wheel_and_then_pip_needs_no_sdist() {
    let work = tempfile::tempdir().unwrap();
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    tree.publish(
        "purelib",
        &[WheelSpec::new("purelib", "2.0", "py3-none-any").write(&dists)],
    );
    let mut fastthing = platform_wheels(&dists, "fastthing", "1.0");
    fastthing.push(write_sdist(&dists, "fastthing", "1.0", &[]));
    tree.publish("fastthing", &fastthing);
    tree.publish("need-a", &[c_extension_sdist(&dists, "need-a", "")]);
    tree.publish("need-b", &[c_extension_sdist(&dists, "need-b", "")]);
    let upstream = UpstreamServer::start(&tree, "json");
    let (builder, runtime) = Runtime::Runc.builders();
    let config = base_config("", "")
        + &common::farm::build_config("runc", &builder, &runtime, 600)
        + "[on_demand]\non_miss = \"off\"\n";
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config);

    let requirements = work.path().join("requirements.txt");
    std::fs::write(
        work.path().join("base.txt"),
        "purelib==2.0\nfastthing>=1.0\n",
    )
    .unwrap();
    std::fs::write(&requirements, "-r base.txt\n--index-url https://pypi.org/simple/\nneed-a\nneed-b==1.0 ; python_version >= \"3.8\"\n").unwrap();
    let prewarm = || {
        std::process::Command::new(binary())
            .args(["prewarm", "-r"])
            .arg(&requirements)
            .args([
                "--target",
                TARGET,
                "--server",
                &format!("{}/", server.url),
                "--token",
                UPLOAD_TOKEN,
            ])
            .env("EDELWEISS_UV", common::client_tools().join("uv"))
            .output()
            .unwrap()
    };
    let output = prewarm();
    let said = text(&output);
    assert!(output.status.success(), "prewarm failed:\n{said}");
    assert!(
        said.contains("ignored `--index-url https://pypi.org/simple/`"),
        "{said}"
    );
    let row = |project: &str| {
        said.lines()
            .find(|line| line.starts_with(project))
            .unwrap_or_else(|| panic!("no row for {project}:\n{said}"))
            .to_string()
    };
    assert!(row("purelib ").contains("upstream wheel"), "{said}");
    assert!(row("fastthing ").contains("upstream wheel"), "{said}");
    assert!(row("need-a ").contains("built now"), "{said}");
    assert!(row("need-b ").contains("built now"), "{said}");

    let again = prewarm();
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again)
            .lines()
            .any(|line| line.starts_with("need-a ") && line.contains("built before")),
        "{}",
        text(&again)
    );

    let pip_requirements = work.path().join("pip.txt");
    std::fs::write(
        &pip_requirements,
        "purelib==2.0\nfastthing>=1.0\nneed-a\nneed-b==1.0\n",
    )
    .unwrap();
    let download = common::pip_download_musl(
        &server.index_url(),
        work.path().join("wheels"),
        &["-r", pip_requirements.to_str().unwrap()],
    );
    assert!(download.status.success(), "{}", text(&download));
}

#[test]
fn the_prewarm_api_reports_progress_and_the_table() {
    let work = tempfile::tempdir().unwrap();
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    tree.publish("need-c", &[c_extension_sdist(&dists, "need-c", "")]);
    tree.publish(
        "purelib",
        &[WheelSpec::new("purelib", "2.0", "py3-none-any").write(&dists)],
    );
    let upstream = UpstreamServer::start(&tree, "json");
    let (builder, runtime) = Runtime::Runc.builders();
    let config = base_config("", "")
        + &common::farm::build_config("runc", &builder, &runtime, 600)
        + "[on_demand]\non_miss = \"off\"\n";
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config);
    let started = server
        .client()
        .post(format!("{}/api/v1/prewarm", server.url))
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({"requirements": "need-c\npurelib==2.0\n", "targets": [TARGET]}))
        .send()
        .unwrap();
    assert_eq!(started.status(), 202);
    let id = started.json::<serde_json::Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let progress = common::poll_for(
        std::time::Duration::from_secs(300),
        format!("prewarm {id} to finish"),
        || {
            let progress = server.get_json_plain(&format!("/api/v1/prewarm/{id}"));
            (progress["state"] != "running").then_some(progress)
        },
    );
    assert_eq!(progress["state"], "succeeded", "{progress}");
    let rows = progress["rows"].as_array().unwrap();
    let source = |project: &str| {
        rows.iter()
            .find(|row| row["project"] == project)
            .map(|row| row["source"].clone())
    };
    assert_eq!(
        source("need-c"),
        Some(serde_json::json!("built now")),
        "{progress}"
    );
    assert_eq!(
        source("purelib"),
        Some(serde_json::json!("upstream wheel")),
        "{progress}"
    );
    assert!(
        progress["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line.as_str().unwrap().contains("succeeded")),
        "{progress}"
    );
    let unauthenticated = server
        .client()
        .post(format!("{}/api/v1/prewarm", server.url))
        .json(&serde_json::json!({"requirements": "x", "targets": [TARGET]}))
        .send()
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}
