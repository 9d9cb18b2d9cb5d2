//! PEP 658 metadata for mirrored wheels whose upstream publishes none: read from each wheel
//! once it is stored, advertised on the pages from then on, served as `<wheel>.metadata`,
//! and used by uv and pip instead of the wheel. A wheel whose METADATA cannot be read is
//! still served whole, without metadata, and says why.

mod common;

use std::path::Path;

use common::dists::{WheelSpec, write_zip};
use common::server::{TestServer, base_config};
use common::upstream::{UpstreamServer, UpstreamTree, wheel_metadata};
use common::{assert_success, poll_until, sha256_hex, text, tool};

const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn config(extra_limits: &str) -> String {
    base_config(
        "[mirror]\nread_timeout_seconds = 5\nretries = 1\nretry_backoff_ms = 50\n",
        extra_limits,
    )
}

/// The JSON page's entry for `filename`.
fn listed(server: &TestServer, project: &str, filename: &str) -> serde_json::Value {
    let page = server.get_json(&format!("/simple/{project}/"));
    page["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["filename"] == filename)
        .unwrap_or_else(|| panic!("{filename} is not listed: {page}"))
        .clone()
}

fn requests(server: &TestServer, route: &str) -> u64 {
    server.metric(&format!(
        "edelweiss_http_requests_total{{route=\"{route}\",status=\"200\"}}"
    ))
}

fn extractions(server: &TestServer, result: &str) -> u64 {
    server.metric(&format!(
        "edelweiss_metadata_extractions_total{{result=\"{result}\"}}"
    ))
}

fn download(server: &TestServer, url: &str) -> Vec<u8> {
    let response = server.get(url);
    assert_eq!(response.status(), 200, "{url}");
    response.bytes().unwrap().to_vec()
}

#[test]
fn a_mirrored_wheel_gets_metadata_once_stored_and_resolvers_use_it() {
    let work = tempfile::tempdir().unwrap();
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    let mut app = WheelSpec::new("meta-app", "1.0", "py3-none-any");
    app.requires_dist = &["meta-dep>=1.0"];
    app.requires_python = Some(">=3.8");
    let app_path = app.write(&dists);
    let dep_path = WheelSpec::new("meta-dep", "1.0", "py3-none-any").write(&dists);
    tree.publish_without_metadata("meta-app", std::slice::from_ref(&app_path));
    tree.publish_without_metadata("meta-dep", std::slice::from_ref(&dep_path));
    let upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config(""));

    let app_wheel = app.filename();
    let before = listed(&server, "meta-app", &app_wheel);
    assert_eq!(
        before["core-metadata"], false,
        "nothing is advertised before the wheel is stored: {before}"
    );

    // The first download stores both wheels; their METADATA is read then.
    for (project, path) in [("meta-app", &app_path), ("meta-dep", &dep_path)] {
        let filename = path.file_name().unwrap().to_str().unwrap();
        let url = listed(&server, project, filename)["url"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(download(&server, &url), std::fs::read(path).unwrap());
    }
    poll_until(WAIT, "both wheels' METADATA read", || {
        extractions(&server, "stored") == 2
    });

    let expected = wheel_metadata(&app_path).unwrap();
    let entry = listed(&server, "meta-app", &app_wheel);
    assert_eq!(entry["core-metadata"]["sha256"], sha256_hex(&expected));
    assert_eq!(entry["dist-info-metadata"], entry["core-metadata"]);
    let served = download(
        &server,
        &format!("{}.metadata", entry["url"].as_str().unwrap()),
    );
    assert_eq!(
        served, expected,
        "the metadata file is the wheel's METADATA"
    );
    let html = server.get("/simple/meta-app/").text().unwrap();
    assert!(
        html.contains(&format!(
            "data-core-metadata=\"sha256={}\"",
            sha256_hex(&expected)
        )),
        "{html}"
    );

    // uv and pip resolve from the metadata files: no wheel is downloaded again.
    let files_before = requests(&server, "file");
    let metadata_before = requests(&server, "file_metadata");
    let requirements = work.path().join("requirements.in");
    std::fs::write(&requirements, "meta-app\n").unwrap();
    let resolved = common::uv_compile_musl(&server.index_url(), &requirements);
    for pin in ["meta-app==1.0", "meta-dep==1.0"] {
        assert!(resolved.contains(pin), "{resolved}");
    }
    let report = work.path().join("report.json");
    assert_success(
        tool("pip")
            .args(["install", "--dry-run", "--ignore-installed", "--report"])
            .arg(&report)
            .args(["--index-url", &server.index_url(), "meta-app"]),
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["install"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(
        requests(&server, "file"),
        files_before,
        "uv and pip downloaded no wheel"
    );
    assert!(
        requests(&server, "file_metadata") >= metadata_before + 4,
        "uv and pip each read both metadata files"
    );
    assert_eq!(upstream.count(&format!("/files/{app_wheel}")), 1);
    assert_eq!(
        upstream.count(&format!("/files/{app_wheel}.metadata")),
        0,
        "the upstream has none and was never asked"
    );
}

/// A wheel of `project` 1.0 whose `.dist-info` holds `metadata` (if any), plus `extra`.
fn broken_wheel(
    dir: &Path,
    project: &str,
    metadata: Option<&str>,
    extra: &[(&str, &str)],
) -> std::path::PathBuf {
    let dist_info = format!("{project}-1.0.dist-info");
    let mut entries = vec![
        (format!("{project}/__init__.py"), b"".to_vec()),
        (
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
        ),
    ];
    if let Some(metadata) = metadata {
        entries.push((
            format!("{dist_info}/METADATA"),
            metadata.as_bytes().to_vec(),
        ));
    }
    for (path, text) in extra {
        entries.push((path.to_string(), text.as_bytes().to_vec()));
    }
    let path = dir.join(format!("{project}-1.0-py3-none-any.whl"));
    write_zip(&path, &entries);
    path
}

#[test]
fn a_wheel_whose_metadata_cannot_be_read_is_served_without_metadata_and_says_why() {
    let work = tempfile::tempdir().unwrap();
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let good = |name: &str| format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n");
    let huge = format!(
        "{}\n{}",
        good("hugemeta"),
        "a long description\n".repeat(8192)
    );
    let cases = [
        (
            "nometa",
            broken_wheel(&dists, "nometa", None, &[]),
            "archive has no `nometa-1.0.dist-info/METADATA`",
        ),
        (
            "twoinfo",
            broken_wheel(
                &dists,
                "twoinfo",
                Some(&good("twoinfo")),
                &[("evil-6.6.dist-info/METADATA", &good("evil"))],
            ),
            "more than one `.dist-info` directory (evil-6.6.dist-info, twoinfo-1.0.dist-info)",
        ),
        (
            "hugemeta",
            broken_wheel(&dists, "hugemeta", Some(&huge), &[]),
            "`hugemeta-1.0.dist-info/METADATA` is larger than 65536 bytes",
        ),
    ];
    let tree = UpstreamTree::new(&work.path().join("tree"));
    for (project, path, _) in &cases {
        tree.publish_without_metadata(project, std::slice::from_ref(path));
    }
    let upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(
        &[&upstream.simple_url()],
        &config("max_metadata_bytes = 65536"),
    );

    for (project, path, _) in &cases {
        let filename = path.file_name().unwrap().to_str().unwrap();
        let url = listed(&server, project, filename)["url"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            download(&server, &url),
            std::fs::read(path).unwrap(),
            "{project}: the wheel is served whole"
        );
    }
    poll_until(WAIT, "three refusals recorded", || {
        extractions(&server, "refused") == 3
    });
    assert_eq!(extractions(&server, "stored"), 0);
    for (project, path, reason) in &cases {
        let filename = path.file_name().unwrap().to_str().unwrap();
        let entry = listed(&server, project, filename);
        assert_eq!(entry["core-metadata"], false, "{project}: {entry}");
        assert_eq!(entry["dist-info-metadata"], false, "{project}: {entry}");
        let html = server.get(&format!("/simple/{project}/")).text().unwrap();
        assert!(!html.contains("data-core-metadata"), "{project}: {html}");
        let response = server.get(&format!("{}.metadata", entry["url"].as_str().unwrap()));
        assert_eq!(response.status(), 404, "{project}");
        let body = response.text().unwrap();
        assert!(body.contains(reason), "{project}: {body}");
        let log = server.log();
        assert!(
            log.lines().any(
                |line| line.contains("mirrored wheel has no metadata file to serve")
                    && line.contains(reason)
            ),
            "{project}: the log says why:\n{log}"
        );
        // A second download is served from the store; nothing is read or refused again.
        let again = download(&server, entry["url"].as_str().unwrap());
        assert_eq!(again, std::fs::read(path).unwrap(), "{project}");
    }
    assert_eq!(extractions(&server, "refused"), 3);
    // pip reads the wheel's own METADATA, whatever its size.
    let output = common::pip_download_musl(
        &server.index_url(),
        work.path().join("pip"),
        &["--no-deps", "hugemeta"],
    );
    assert!(
        output.status.success(),
        "pip takes the wheel all the same:\n{}",
        text(&output)
    );
}

/// The same bytes listed under a second spelling find the blob stored already, with nothing
/// recorded for that spelling: the wheel is read from the store on that download, as a wheel
/// stored by an edelweiss that did not read metadata is.
#[test]
fn a_stored_wheel_with_nothing_recorded_is_read_on_its_next_download() {
    let work = tempfile::tempdir().unwrap();
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let wheel = WheelSpec::new("meta-twin", "1.0", "py3-none-any").write(&dists);
    let respelled = work.path().join("Meta_Twin-1.0-py3-none-any.whl");
    std::fs::copy(&wheel, &respelled).unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    tree.publish_without_metadata("meta-twin", &[wheel.clone(), respelled.clone()]);
    let upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config(""));
    let expected = sha256_hex(&wheel_metadata(&wheel).unwrap());

    for (path, read) in [(&wheel, 1), (&respelled, 2)] {
        let filename = path.file_name().unwrap().to_str().unwrap();
        let url = listed(&server, "meta-twin", filename)["url"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(download(&server, &url), std::fs::read(path).unwrap());
        poll_until(WAIT, format!("{filename}'s METADATA read"), || {
            extractions(&server, "stored") == read
        });
        let entry = listed(&server, "meta-twin", filename);
        assert_eq!(entry["core-metadata"]["sha256"], expected, "{filename}");
    }
    assert_eq!(
        server.metric("edelweiss_upstream_file_cache_total{result=\"hit\"}"),
        1,
        "the second spelling came from the store"
    );
    assert_eq!(
        upstream.count(&format!("/files/{}", "Meta_Twin-1.0-py3-none-any.whl")),
        0
    );
}
