//! `edelweiss prewarm` on a requirements file that mixes pure-Python packages, one with an
//! upstream musllinux wheel and two that must be built.

mod common;

use std::path::Path;

use common::dists::{WheelSpec, platform_wheels, write_project_sdist_declaring, write_sdist};
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

/// Starts a prewarm through `POST /api/v1/prewarm` and waits for it to end: its progress.
fn prewarm_through_the_api(server: &TestServer, requirements: &str) -> serde_json::Value {
    let started = server
        .client()
        .post(format!("{}/api/v1/prewarm", server.url))
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({"requirements": requirements, "targets": [TARGET]}))
        .send()
        .unwrap();
    assert_eq!(started.status(), 202);
    let id = started.json::<serde_json::Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    common::poll_for(
        std::time::Duration::from_secs(300),
        format!("prewarm {id} to finish"),
        || {
            let progress = server.get_json_plain(&format!("/api/v1/prewarm/{id}"));
            (progress["state"] != "running").then_some(progress)
        },
    )
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
    let progress = prewarm_through_the_api(&server, "need-c\npurelib==2.0\n");
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

/// A PEP 517 backend in the sdist itself (`backend-path`, no build requirements) that
/// builds a pure wheel by hand and, whenever it runs, first writes `marker`.
fn marking_backend(project: &str, marker: &Path) -> String {
    let module = project.replace('-', "_");
    format!(
        r#"import base64, hashlib, os, zipfile

MARKER = {marker:?}
DIST_INFO = "{module}-1.0.dist-info"
METADATA = "Metadata-Version: 2.1\nName: {project}\nVersion: 1.0\n"
WHEEL = "Wheel-Version: 1.0\nGenerator: marking-backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _mark():
    try:
        with open(MARKER, "w") as marker:
            marker.write("package code ran here")
    except OSError:
        pass


def get_requires_for_build_wheel(config_settings=None):
    _mark()
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _mark()
    os.makedirs(os.path.join(metadata_directory, DIST_INFO))
    for name, text in (("METADATA", METADATA), ("WHEEL", WHEEL)):
        with open(os.path.join(metadata_directory, DIST_INFO, name), "w") as out:
            out.write(text)
    return DIST_INFO


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _mark()
    files = {{
        "{module}/__init__.py": b"VALUE = 1\n",
        DIST_INFO + "/METADATA": METADATA.encode(),
        DIST_INFO + "/WHEEL": WHEEL.encode(),
    }}
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{name}},sha256={{digest}},{{len(data)}}")
    record.append(DIST_INFO + "/RECORD,,")
    files[DIST_INFO + "/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = "{module}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return filename
"#,
        marker = marker.to_str().unwrap()
    )
}

/// An uploaded sdist whose build backend writes a marker file wherever it runs. Resolving
/// it must never run it on the machine that resolves: prewarm (the CLI on a CI runner, and
/// the API on the server) asks uv for wheels only, so the farm builds the sdist inside a
/// container first and resolution goes on with the built wheel.
#[test]
fn prewarm_runs_no_package_code_outside_a_container() {
    let work = tempfile::tempdir().unwrap();
    let server = common::farm::farm_server(Runtime::Runc, 600);
    let marker = |project: &str| work.path().join(format!("{project}-ran-here"));
    for project in ["marked-cli", "marked-api"] {
        let pyproject =
            "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n";
        let backend = marking_backend(project, &marker(project));
        // Dynamic metadata: a resolver must ask the backend to learn the dependencies.
        let sdist = write_project_sdist_declaring(
            work.path(),
            project,
            "1.0",
            "raise SystemExit('the backend in pyproject.toml builds this sdist')\n",
            &[("pyproject.toml", pyproject), ("backend.py", &backend)],
            "Dynamic: Requires-Dist\n",
        );
        let upload = server.twine_upload(&[&sdist]);
        assert!(upload.status.success(), "{}", text(&upload));
    }

    let requirements = work.path().join("requirements.txt");
    std::fs::write(&requirements, "marked-cli\n").unwrap();
    let output = std::process::Command::new(binary())
        .args(["prewarm", "-r"])
        .arg(&requirements)
        .args(["--target", TARGET, "--server", &format!("{}/", server.url)])
        .args(["--token", UPLOAD_TOKEN])
        .env("EDELWEISS_UV", common::client_tools().join("uv"))
        .output()
        .unwrap();
    let said = text(&output);
    assert!(
        !marker("marked-cli").exists(),
        "the CLI's resolution ran the sdist's build backend on this machine:\n{said}"
    );
    assert!(output.status.success(), "prewarm failed:\n{said}");
    assert!(
        said.lines()
            .any(|line| line.starts_with("marked-cli ") && line.contains("built now")),
        "the sdist was built by the farm, then resolved from its wheel:\n{said}"
    );

    let progress = prewarm_through_the_api(&server, "marked-api\n");
    assert!(
        !marker("marked-api").exists(),
        "the server's resolution ran the sdist's build backend on the server: {progress}"
    );
    assert_eq!(progress["state"], "succeeded", "{progress}");
    assert_eq!(progress["rows"][0]["source"], "built now", "{progress}");
}
