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
    // Storing fastthing's wheel read its METADATA, which changed its page (it now
    // advertises the metadata file): the page is made once more, then kept.
    let hits = server.metric("edelweiss_page_cache_lookups_total{result=\"hit\"}");
    let listed = server.listed_filenames("/simple/fastthing/");
    assert_eq!(server.listed_filenames("/simple/fastthing/"), listed);
    assert!(
        server.metric("edelweiss_page_cache_lookups_total{result=\"hit\"}") > hits,
        "a repeated request for fastthing's page was answered from the rendered pages"
    );

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
    assert!(server.blobs().iter().any(|blob| blob.ends_with(&sha)));
    common::poll_until(
        std::time::Duration::from_secs(30),
        "the wheel and its METADATA stored, and nothing else",
        || server.blobs().len() == before.len() + 2,
    );
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

/// A hostile upstream and an internal service it would like edelweiss to reach. The
/// upstream publishes project `hostile` with one real sdist (0.9); the internal service, on
/// another loopback port, is an upstream server of its own over a tree holding that sdist,
/// a "secret" `hostile-1.0.tar.gz` and a `bounced` project, and counts every request.
struct HostileUpstream {
    _work: tempfile::TempDir,
    tree: UpstreamTree,
    internal: UpstreamServer,
    /// sha256 of `hostile-0.9.tar.gz`, which both serve.
    sdist_sha256: String,
    /// sha256 of the internal service's `hostile-1.0.tar.gz`.
    secret_sha256: String,
}

const SECRET: &[u8] = b"internal-only: database password";

fn hostile_upstream() -> HostileUpstream {
    let work = tempfile::tempdir().unwrap();
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let sdist = write_sdist(&dists, "hostile", "0.9", &[]);
    let tree = UpstreamTree::new(&work.path().join("tree"));
    tree.publish("hostile", std::slice::from_ref(&sdist));
    let secret = write_sdist(&dists, "hostile", "1.0", &[("SECRET.txt", SECRET)]);
    let internal_tree = UpstreamTree::new(&work.path().join("internal"));
    internal_tree.publish("hostile", &[sdist.clone(), secret.clone()]);
    internal_tree.publish("bounced", &[write_sdist(&dists, "bounced", "1.0", &[])]);
    let internal = UpstreamServer::start(&internal_tree, "json");
    HostileUpstream {
        sdist_sha256: sha256_hex(&std::fs::read(&sdist).unwrap()),
        secret_sha256: sha256_hex(&std::fs::read(&secret).unwrap()),
        _work: work,
        tree,
        internal,
    }
}

/// Text for an HTML anchor: what a page author would escape, with NUL as a reference.
fn anchor_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\0', "&#0;")
}

/// The server's log without the terminal colours its formatter adds around field names.
fn plain_log(server: &TestServer) -> String {
    let log = server.log();
    let mut plain = String::with_capacity(log.len());
    let mut rest = log.as_str();
    while let Some(start) = rest.find("\x1b[") {
        plain.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    plain.push_str(rest);
    plain
}

/// edelweiss's project page for `hostile`, as HTML (what pip and browsers read) and JSON.
fn rendered_pages(server: &TestServer) -> (String, String) {
    let html = server.get("/simple/hostile/");
    assert_eq!(html.status(), 200);
    let json = server.get_json("/simple/hostile/");
    (html.text().unwrap(), json.to_string())
}

#[test]
fn a_file_listed_on_another_port_is_dropped_and_never_fetched() {
    let hostile = hostile_upstream();
    let secret_url = format!("{}/files/hostile-1.0.tar.gz", hostile.internal.url);
    let sha = &hostile.secret_sha256;
    hostile.tree.append_entries(
        "hostile",
        &[serde_json::json!({
            "filename": "hostile-1.0.tar.gz", "url": secret_url, "hashes": {"sha256": sha},
        })],
        &format!("<a href=\"{secret_url}#sha256={sha}\">hostile-1.0.tar.gz</a>\n"),
    );
    let internal_port = hostile.internal.url.rsplit(':').next().unwrap().to_string();
    for mode in ["json", "html"] {
        let upstream = UpstreamServer::start(&hostile.tree, mode);
        let server = TestServer::mirroring(&[&upstream.simple_url()], &config(600));
        assert_eq!(
            server.listed_filenames("/simple/hostile/"),
            ["hostile-0.9.tar.gz"],
            "{mode}: a file on another port of the upstream's address is not listed; the \
             upstream's own file is kept"
        );
        let (html, json) = rendered_pages(&server);
        for page in [&html, &json] {
            assert!(
                !page.contains("hostile-1.0")
                    && !page.contains(&format!("127.0.0.1:{internal_port}")),
                "{mode}: {page}"
            );
        }
        let response = server.get(&format!("/files/{sha}/hostile-1.0.tar.gz"));
        assert_eq!(
            response.status(),
            404,
            "{mode}: the secret file is not served"
        );
        let body = response.bytes().unwrap();
        assert!(!body.windows(SECRET.len()).any(|window| window == SECRET));
        assert_eq!(
            hostile.internal.count("all"),
            0,
            "{mode}: edelweiss sent the internal service a request: {}",
            hostile.internal.stats()
        );
        let kept = server.get(&format!(
            "/files/{}/hostile-0.9.tar.gz",
            hostile.sdist_sha256
        ));
        assert_eq!(
            kept.status(),
            200,
            "{mode}: the upstream's own file still downloads"
        );
        let log = server.log();
        let line = log
            .lines()
            .find(|line| line.contains("upstream file dropped from the page"))
            .unwrap_or_else(|| panic!("{mode}: no log line for the dropped file:\n{log}"));
        assert!(
            line.contains(&format!("127.0.0.1:{internal_port}"))
                && line.contains("mirror.file_hosts"),
            "{mode}: {line}"
        );
    }
}

#[test]
fn redirects_are_followed_only_to_allowed_hosts() {
    let hostile = hostile_upstream();
    let upstream = UpstreamServer::start(&hostile.tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config(600));
    upstream.redirect("/simple/hostile/", "/simple/hostile/?moved");
    assert_eq!(
        server.listed_filenames("/simple/hostile/"),
        ["hostile-0.9.tar.gz"],
        "a redirect on the upstream's own host is followed"
    );
    assert_eq!(upstream.count("/simple/hostile/ 302"), 1);

    let internal = &hostile.internal.url;
    upstream.redirect(
        "/files/hostile-0.9.tar.gz",
        &format!("{internal}/files/hostile-0.9.tar.gz"),
    );
    let before = server.blobs();
    let response = server.get(&format!(
        "/files/{}/hostile-0.9.tar.gz",
        hostile.sdist_sha256
    ));
    assert_eq!(
        response.status(),
        502,
        "a file redirected elsewhere is not fetched"
    );
    let message = response.text().unwrap();
    assert!(
        message.contains(&upstream.simple_url()) && message.contains("not followed"),
        "{message}"
    );
    assert_eq!(server.blobs(), before, "nothing was stored");
    assert_eq!(
        upstream.count("/files/hostile-0.9.tar.gz 302"),
        1,
        "a refused redirect is not retried"
    );

    upstream.redirect("/simple/bounced/", &format!("{internal}/simple/bounced/"));
    let response = server.get("/simple/bounced/");
    assert_eq!(
        response.status(),
        502,
        "a page redirected to the internal service is not fetched"
    );
    assert!(response.text().unwrap().contains("not followed"));
    assert_eq!(
        hostile.internal.count("all"),
        0,
        "edelweiss followed a redirect to the internal service: {}",
        hostile.internal.stats()
    );
    assert!(server.log().contains("not followed"));
}

#[test]
fn javascript_data_and_file_urls_never_reach_a_page() {
    let hostile = hostile_upstream();
    let json = |version: &str, url: &str, hashes: serde_json::Value| serde_json::json!({"filename": format!("hostile-{version}.tar.gz"), "url": url, "hashes": hashes});
    let some_sha = serde_json::json!({"sha256": "a".repeat(64)});
    hostile.tree.append_entries(
        "hostile",
        &[
            json("1.0", "javascript:alert(document.cookie)", serde_json::json!({})),
            json("1.1", "data:text/html,<script>alert(1)</script>", serde_json::json!({})),
            json("1.2", "file:///etc/passwd", serde_json::json!({})),
            json("1.3", "JaVaScRiPt:alert(1)", some_sha),
        ],
        &[
            "<a href=\"javascript:alert(document.cookie)\">hostile-1.0.tar.gz</a>",
            "<a href=\"data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;\">hostile-1.1.tar.gz</a>",
            "<a href=\"file:///etc/passwd\">hostile-1.2.tar.gz</a>",
            &format!("<a href=\"  JaVaScRiPt:alert(1)#sha256={}\">hostile-1.3.tar.gz</a>", "a".repeat(64)),
        ]
        .join("\n"),
    );
    for mode in ["json", "html"] {
        let upstream = UpstreamServer::start(&hostile.tree, mode);
        let server = TestServer::mirroring(&[&upstream.simple_url()], &config(600));
        let (html, json) = rendered_pages(&server);
        for page in [&html, &json] {
            let lower = page.to_lowercase();
            for scheme in ["javascript:", "data:", "file:"] {
                assert!(
                    !lower.contains(scheme),
                    "{mode}: {scheme} on the page: {page}"
                );
            }
        }
        assert_eq!(
            server.listed_filenames("/simple/hostile/"),
            ["hostile-0.9.tar.gz"],
            "{mode}: only the http file is listed"
        );
        let log = server.log();
        assert_eq!(
            log.matches("the URL is not http or https").count(),
            4,
            "{mode}: one log line per dropped file:\n{log}"
        );
    }
}

#[test]
fn upstream_filenames_that_are_not_the_projects_distributions_are_dropped_and_logged() {
    let hostile = hostile_upstream();
    let long = format!("{}/hostile-1.0.tar.gz", "a".repeat(5000));
    let names = [
        "../../../../etc/passwd",
        "hostile-1.0/../../../etc/passwd.tar.gz",
        "hostile-1.0.tar.gz\0",
        "other-1.0.tar.gz",
        "hostile-1.0.tar.gz\nlevel=ERROR forged log line",
        long.as_str(),
    ];
    // The real sdist's URL and hash: listed under these names, each would download.
    let (url, sha) = ("../../files/hostile-0.9.tar.gz", &hostile.sdist_sha256);
    let json_entries: Vec<serde_json::Value> = names
        .iter()
        .map(|name| serde_json::json!({"filename": name, "url": url, "hashes": {"sha256": sha}}))
        .collect();
    let anchors: String = names
        .iter()
        .map(|name| format!("<a href=\"{url}#sha256={sha}\">{}</a>\n", anchor_text(name)))
        .collect();
    hostile
        .tree
        .append_entries("hostile", &json_entries, &anchors);
    for mode in ["json", "html"] {
        let upstream = UpstreamServer::start(&hostile.tree, mode);
        let server = TestServer::mirroring(&[&upstream.simple_url()], &config(600));
        assert_eq!(
            server.listed_filenames("/simple/hostile/"),
            ["hostile-0.9.tar.gz"],
            "{mode}: only the project's own distribution is listed"
        );
        let (html, json) = rendered_pages(&server);
        for page in [&html, &json] {
            assert!(
                !page.contains("passwd") && !page.contains("other-1.0") && !page.contains("forged"),
                "{mode}: {page}"
            );
        }
        let log = plain_log(&server);
        let dropped = log
            .lines()
            .filter(|line| line.contains("upstream file dropped from the page"))
            .count();
        assert_eq!(
            dropped,
            names.len(),
            "{mode}: one line per dropped file:\n{log}"
        );
        // An HTML page cannot carry a NUL: the tokenizer reads `&#0;` as U+FFFD, as pip's
        // HTML parser does.
        let with_nul = match mode {
            "json" => r#"filename="hostile-1.0.tar.gz\0""#,
            _ => "filename=\"hostile-1.0.tar.gz\u{fffd}\"",
        };
        for expected in [
            r#"filename="../../../../etc/passwd""#,
            with_nul,
            r#"filename="hostile-1.0.tar.gz\nlevel=ERROR forged log line""#,
            "the filename names another project",
            "…\" (5019 bytes)",
        ] {
            assert!(log.contains(expected), "{mode}: {expected} not in\n{log}");
        }
        assert!(
            !log.contains("\nlevel=ERROR forged") && !log.contains(&"a".repeat(200)),
            "{mode}: upstream text reached the log unescaped or unbounded:\n{log}"
        );
    }
}
