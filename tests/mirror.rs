//! The pull-through mirror against real upstream HTTP servers of ours (PEP 691 JSON and a
//! static PEP 503 HTML tree) serving real files; the upstream counts what it is asked.

mod common;

use std::path::{Path, PathBuf};

use common::dists::{WheelSpec, noise, platform_wheels, write_sdist};
use common::server::{TestServer, base_config};
use common::upstream::{UpstreamServer, UpstreamTree};
use common::{sha256_hex, text};

/// An upstream tree with fastthing (musllinux, manylinux, sdist), purelib and demo-app.
fn upstream_tree(dir: &Path) -> (UpstreamTree, Vec<PathBuf>) {
    let dists = dir.join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let tree = UpstreamTree::new(&dir.join("tree"));
    let mut fastthing = platform_wheels(&dists, "fastthing", "1.0");
    fastthing.push(write_sdist(&dists, "fastthing", "1.0", &[]));
    tree.publish("fastthing", &fastthing);
    let mut pure = WheelSpec::new("purelib", "2.0", "py3-none-any");
    pure.requires_python = Some(">=3.8");
    tree.publish("purelib", &[pure.write(&dists)]);
    let mut app = WheelSpec::new("demo-app", "0.1", "py3-none-any");
    app.requires_dist = &["fastthing>=1.0", "purelib"];
    tree.publish("demo-app", &[app.write(&dists)]);
    let mut big = WheelSpec::new("bigthing", "1.0", "py3-none-any");
    big.files.push(("bigthing/blob.bin".into(), noise(4 << 20)));
    let big = big.write(&dists);
    tree.publish("bigthing", std::slice::from_ref(&big));
    (tree, fastthing)
}

fn pip_download(server: &TestServer, dest: &Path, requirement: &str) -> std::process::Output {
    common::pip_download_musl(&server.index_url(), dest, &["--no-deps", requirement])
}

fn uv_compile(server: &TestServer, work: &Path) -> String {
    let requirements = work.join("requirements.in");
    std::fs::write(&requirements, "demo-app\n").unwrap();
    common::uv_compile_musl(&server.index_url(), &requirements)
}

const FAST_CONFIG: &str = "[mirror]\nread_timeout_seconds = 2\nconnect_timeout_seconds = 2\npage_timeout_seconds = 5\nretries = 1\nretry_backoff_ms = 50\n";

fn config(page_ttl: u64) -> String {
    base_config("", "").replace(
        "[limits]",
        &format!("{FAST_CONFIG}page_ttl_seconds = {page_ttl}\n[limits]"),
    )
}

#[test]
fn pip_and_uv_work_cold_then_from_cache_with_the_upstream_stopped() {
    let work = tempfile::tempdir().unwrap();
    let (tree, fastthing) = upstream_tree(work.path());
    let mut upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config(600));

    let cold = work.path().join("cold");
    let output = pip_download(&server, &cold, "fastthing==1.0");
    assert!(output.status.success(), "{}", text(&output));
    let musl = "fastthing-1.0-cp313-cp313-musllinux_1_2_x86_64.whl";
    let expected = sha256_hex(
        &std::fs::read(fastthing.iter().find(|path| path.ends_with(musl)).unwrap()).unwrap(),
    );
    assert_eq!(
        sha256_hex(&std::fs::read(cold.join(musl)).unwrap()),
        expected
    );
    let resolved = uv_compile(&server, work.path());
    for pin in ["demo-app==0.1", "fastthing==1.0", "purelib==2.0"] {
        assert!(resolved.contains(pin), "{resolved}");
    }
    assert_eq!(
        upstream.count("/simple/fastthing/"),
        1,
        "pip and uv share one cached page fetch"
    );
    assert_eq!(upstream.count(&format!("/files/{musl}")), 1);
    assert_eq!(
        upstream.count("/files/demo_app-0.1-py3-none-any.whl.metadata"),
        1,
        "uv's metadata came through edelweiss: {}",
        upstream.stats()
    );
    assert_eq!(
        upstream.count("/files/demo_app-0.1-py3-none-any.whl"),
        0,
        "uv needed no whole wheel: {}",
        upstream.stats()
    );
    assert!(server.metric("edelweiss_upstream_page_cache_total{result=\"hit\"}") >= 1);

    upstream.stop();
    let warm = work.path().join("warm");
    let output = pip_download(&server, &warm, "fastthing==1.0");
    assert!(
        output.status.success(),
        "warm pip with the upstream stopped:\n{}",
        text(&output)
    );
    assert_eq!(
        sha256_hex(&std::fs::read(warm.join(musl)).unwrap()),
        expected
    );
    assert!(uv_compile(&server, work.path()).contains("fastthing==1.0"));
    assert!(server.metric("edelweiss_upstream_file_cache_total{result=\"hit\"}") >= 1);
}

#[test]
fn an_html_only_upstream_is_mirrored_with_its_data_attributes() {
    let work = tempfile::tempdir().unwrap();
    let (tree, _) = upstream_tree(work.path());
    let upstream = UpstreamServer::start(&tree, "html");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config(600));
    let page = server.get_json("/simple/fastthing/");
    assert_eq!(page["versions"], serde_json::json!(["1.0"]));
    let wheel = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["filename"].as_str().unwrap().contains("musllinux"))
        .unwrap();
    assert!(
        wheel["url"].as_str().unwrap().starts_with("/files/"),
        "{wheel}"
    );
    assert_eq!(wheel["requires-python"], ">=3.13");
    let metadata = server.get(&format!("{}.metadata", wheel["url"].as_str().unwrap()));
    assert_eq!(metadata.status(), 200);
    assert_eq!(
        sha256_hex(&metadata.bytes().unwrap()),
        wheel["core-metadata"]["sha256"].as_str().unwrap()
    );
    let output = pip_download(&server, &work.path().join("out"), "fastthing==1.0");
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn stale_pages_are_revalidated_with_etags_and_served_when_the_upstream_fails() {
    let work = tempfile::tempdir().unwrap();
    let (tree, _) = upstream_tree(work.path());
    let upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config(0));
    let first = server.get_json("/simple/fastthing/");
    let second = server.get_json("/simple/fastthing/");
    assert_eq!(first, second);
    assert_eq!(upstream.count("/simple/fastthing/ 200"), 1);
    assert_eq!(
        upstream.count("/simple/fastthing/ 304"),
        1,
        "the second fetch revalidates"
    );
    assert_eq!(
        server.metric(&format!(
            "edelweiss_upstream_requests_total{{upstream=\"{}\",outcome=\"not_modified\"}}",
            upstream.simple_url()
        )),
        1
    );

    for fault in ["500", "hang", "close"] {
        upstream.fault(serde_json::json!({"pages": fault}));
        let response = server
            .client()
            .get(format!("{}/simple/fastthing/", server.url))
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{fault}: the cached page is served");
        assert!(
            response.headers()["warning"]
                .to_str()
                .unwrap()
                .starts_with("110"),
            "{fault}"
        );
        assert!(
            response.headers()["x-edelweiss-stale"]
                .to_str()
                .unwrap()
                .contains(&upstream.simple_url()),
            "{fault}"
        );
        let page: serde_json::Value = response.json().unwrap();
        assert_eq!(page, first, "{fault}");
        let uncached = server.get("/simple/purelib/");
        assert_eq!(uncached.status(), 502, "{fault}: a page never cached fails");
        let message = uncached.text().unwrap();
        assert!(
            message.contains(&upstream.simple_url()),
            "{fault}: {message}"
        );
    }
    assert!(server.metric("edelweiss_upstream_page_cache_total{result=\"stale\"}") >= 3);
    assert!(server.log().contains("serving a stale upstream page"));
}

#[test]
fn a_down_upstream_gives_502_for_uncached_files_and_cached_files_still_serve() {
    let work = tempfile::tempdir().unwrap();
    let (tree, _) = upstream_tree(work.path());
    let mut upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config(600));
    let page = server.get_json("/simple/fastthing/");
    let urls: Vec<String> = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["url"].as_str().unwrap().to_string())
        .collect();
    let cached = server.get(&urls[0]).bytes().unwrap();
    upstream.stop();
    assert_eq!(
        server.get(&urls[0]).bytes().unwrap(),
        cached,
        "a cached file is always served"
    );
    let before = server.blobs();
    let response = server.get(&urls[1]);
    assert_eq!(response.status(), 502);
    let message = response.text().unwrap();
    assert!(
        message.contains(&format!(
            "upstream {} is unreachable",
            upstream.simple_url()
        )),
        "{message}"
    );
    assert_eq!(server.blobs(), before);
    assert_eq!(server.get("/simple/never-seen/").status(), 502);
}

/// Fetches `url` through edelweiss and returns what the client got, or None if the
/// transfer failed.
fn fetch(server: &TestServer, url: &str) -> Option<Vec<u8>> {
    let response = server.get(url);
    if response.status() != 200 {
        return None;
    }
    response.bytes().ok().map(|bytes| bytes.to_vec())
}

/// A JSON upstream over the test tree, and a server mirroring it.
fn mirror_of_upstream_tree() -> (tempfile::TempDir, UpstreamTree, UpstreamServer, TestServer) {
    let work = tempfile::tempdir().unwrap();
    let (tree, _) = upstream_tree(work.path());
    let upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config(600));
    (work, tree, upstream, server)
}

struct ListedFile {
    url: String,
    sha256: String,
    filename: String,
}

/// The first file of a project page as edelweiss lists it.
fn listed_file(server: &TestServer, project: &str) -> ListedFile {
    let page = server.get_json(&format!("/simple/{project}/"));
    let file = &page["files"][0];
    let text = |value: &serde_json::Value| value.as_str().unwrap().to_string();
    ListedFile {
        url: text(&file["url"]),
        sha256: text(&file["hashes"]["sha256"]),
        filename: text(&file["filename"]),
    }
}

#[test]
fn wrong_hash_and_cut_bodies_are_never_stored_or_served_whole() {
    let (work, _tree, upstream, server) = mirror_of_upstream_tree();
    let file = listed_file(&server, "bigthing");
    let (url, sha) = (file.url.clone(), file.sha256.clone());
    let before = server.blobs();
    for fault in ["wronghash", "truncate"] {
        upstream.fault(serde_json::json!({"files": fault}));
        let got = fetch(&server, &url);
        assert!(
            got.as_ref()
                .is_none_or(|bytes| sha256_hex(bytes) != sha && bytes.len() < 4 << 20),
            "{fault}: the client got a whole wrong body"
        );
        assert_eq!(server.blobs(), before, "{fault}: something was stored");
    }
    let output = pip_download(&server, &work.path().join("bad"), "bigthing==1.0");
    assert!(
        !output.status.success(),
        "pip must fail while the upstream sends a truncated file"
    );
    upstream.fault(serde_json::json!({"files": "none"}));
    let good = fetch(&server, &url).expect("the file once the upstream is healthy");
    assert_eq!(sha256_hex(&good), sha);
    assert_eq!(server.blobs().len(), before.len() + 1);
    assert!(server.log().contains("nothing stored"));
}

#[test]
fn an_upstream_that_hangs_mid_file_times_out() {
    let work = tempfile::tempdir().unwrap();
    let (tree, _) = upstream_tree(work.path());
    let upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config(600));
    let page = server.get_json("/simple/purelib/");
    let url = page["files"][0]["url"].as_str().unwrap().to_string();
    let before = server.blobs();
    upstream.fault(serde_json::json!({"files": "hang"}));
    let response = server.get(&url);
    assert_eq!(response.status(), 502);
    assert!(response.text().unwrap().contains("timed out"));
    assert_eq!(server.blobs(), before);
}

#[test]
fn fifty_concurrent_misses_make_one_upstream_fetch() {
    let (_work, tree, upstream, server) = mirror_of_upstream_tree();
    let file = listed_file(&server, "bigthing");
    let (url, sha) = (file.url.clone(), file.sha256.clone());
    let filename = file.filename.clone();
    upstream.fault(serde_json::json!({"file_delay": 1.0}));
    let results: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| scope.spawn(|| sha256_hex(&fetch(&server, &url).expect("download"))))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    assert!(results.iter().all(|got| *got == sha));
    assert_eq!(
        upstream.count(&format!("/files/{filename}")),
        1,
        "one upstream fetch for fifty clients"
    );
    assert_eq!(
        server.metric("edelweiss_upstream_bytes_fetched_total"),
        std::fs::metadata(tree.root.join("files").join(&filename))
            .unwrap()
            .len()
    );
}

#[test]
fn a_local_project_hides_its_upstream_namesake_unless_allowed() {
    let work = tempfile::tempdir().unwrap();
    let (tree, _) = upstream_tree(work.path());
    let dists = work.path().join("dists");
    tree.publish(
        "acme-internal",
        &[WheelSpec::new("acme-internal", "99.0", "py3-none-any").write(&dists)],
    );
    let upstream = UpstreamServer::start(&tree, "json");
    let local =
        WheelSpec::new("acme-internal", "1.0", "py3-none-any").write(&work.path().join("tree"));
    for (merge, expected) in [
        ("", vec!["acme_internal-1.0-py3-none-any.whl"]),
        (
            "merge_projects = [\"acme-internal\"]\n",
            vec![
                "acme_internal-99.0-py3-none-any.whl",
                "acme_internal-1.0-py3-none-any.whl",
            ],
        ),
    ] {
        let config = config(600).replace("[limits]", &format!("{merge}[limits]"));
        let server = TestServer::mirroring(&[&upstream.simple_url()], &config);
        assert!(server.twine_upload(&[local.as_path()]).status.success());
        let listed = server.listed_filenames("/simple/acme-internal/");
        assert_eq!(listed, expected, "merge setting {merge:?}");
        let output = pip_download(
            &server,
            &work.path().join(format!("acme{}", listed.len())),
            "acme-internal",
        );
        assert!(output.status.success(), "{}", text(&output));
        let got: Vec<String> = std::fs::read_dir(work.path().join(format!("acme{}", listed.len())))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(got, [expected[0]]);
    }
    assert_eq!(
        upstream.count("/simple/acme-internal/"),
        1,
        "without merge_projects the upstream is never asked"
    );
}

/// Against the real PyPI; run with EDELWEISS_TEST_REAL_PYPI=1 on a machine that reaches it.
#[test]
fn real_pypi_musllinux_wheels_come_through_with_their_hashes() {
    if std::env::var_os("EDELWEISS_TEST_REAL_PYPI").is_none() {
        eprintln!("skipped: set EDELWEISS_TEST_REAL_PYPI=1 to test against the real PyPI");
        return;
    }
    let server = TestServer::mirroring(&["https://pypi.org/simple/"], &base_config("", ""));
    let work = tempfile::tempdir().unwrap();
    for requirement in ["cffi==1.17.1", "psycopg2-binary==2.9.10"] {
        let output = pip_download(&server, work.path(), requirement);
        assert!(output.status.success(), "{requirement}: {}", text(&output));
    }
    for entry in std::fs::read_dir(work.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.contains("musllinux"), "{name}");
        let project = name.split('-').next().unwrap().replace('_', "-");
        let page = server.get_json(&format!("/simple/{project}/"));
        let listed = page["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|file| file["filename"] == name.as_str())
            .unwrap();
        assert_eq!(
            listed["hashes"]["sha256"],
            sha256_hex(&std::fs::read(&path).unwrap())
        );
    }
}

#[test]
fn upstream_credentials_are_sent_but_never_logged_or_shown() {
    let work = tempfile::tempdir().unwrap();
    let (tree, _) = upstream_tree(work.path());
    let upstream = UpstreamServer::start(&tree, "json");
    let with_credentials = upstream
        .simple_url()
        .replace("http://", "http://reader:upstream-secret-42@");
    let server = TestServer::mirroring(&[&with_credentials], &config(600));
    let page = server.get_json("/simple/purelib/");
    let url = page["files"][0]["url"].as_str().unwrap().to_string();
    assert_eq!(server.get(&url).status(), 200);
    let basic = "Basic cmVhZGVyOnVwc3RyZWFtLXNlY3JldC00Mg=="; // reader:upstream-secret-42
    assert_eq!(
        upstream.count(&format!("authorization {basic}")),
        2,
        "page and file were fetched with credentials"
    );
    upstream.fault(serde_json::json!({"pages": "500"}));
    let failed = server.get("/simple/fastthing/").text().unwrap();
    assert!(
        failed.contains(&upstream.simple_url()) && !failed.contains("upstream-secret-42"),
        "{failed}"
    );
    let metrics = server.get("/metrics").text().unwrap();
    assert!(!metrics.contains("upstream-secret-42"));
    assert!(
        !server.log().contains("upstream-secret-42"),
        "the log shows the upstream password"
    );
}
