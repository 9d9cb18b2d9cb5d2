//! Rendered pages kept per project within a byte budget, and sent compressed: what a
//! write drops (its project only), which page the budget evicts (the least recently used),
//! and gzip and zstd bodies that decode to the page as rendered, for pip and uv alike.
//! What the server did is read from its counters (`/metrics`), never from timings.

mod common;

use std::io::Read as _;
use std::path::Path;

use common::dists::WheelSpec;
use common::server::{TestServer, base_config};
use common::upstream::{UpstreamServer, UpstreamTree};
use common::{UPLOAD_TOKEN, assert_success, text, tool};

const JSON: &str = "application/vnd.pypi.simple.v1+json";
const PIP_ENCODINGS: &str = "gzip, deflate";
const UV_ENCODINGS: &str = "gzip, deflate, zstd";

fn upload(server: &TestServer, files: &[&Path]) {
    let output = server.twine_upload(files);
    assert!(output.status.success(), "twine upload:\n{}", text(&output));
}

fn wheel(dir: &Path, name: &str, version: &str) -> std::path::PathBuf {
    WheelSpec::new(name, version, "py3-none-any").write(dir)
}

fn renders(server: &TestServer) -> u64 {
    server.metric("edelweiss_page_renders_total")
}

/// A GET of `path` with `Accept` and, when given, `Accept-Encoding` and `If-None-Match`.
fn fetch(
    server: &TestServer,
    path: &str,
    accept: &str,
    encodings: Option<&str>,
    if_none_match: Option<&str>,
) -> reqwest::blocking::Response {
    let mut request = server
        .client()
        .get(format!("{}{path}", server.url))
        .header("Accept", accept);
    if let Some(encodings) = encodings {
        request = request.header("Accept-Encoding", encodings);
    }
    if let Some(etag) = if_none_match {
        request = request.header("If-None-Match", etag);
    }
    request.send().expect("GET")
}

fn header(response: &reqwest::blocking::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_string())
}

/// Each page of `paths` (JSON and HTML) once, then again: the second round renders nothing.
fn render_then_keep(server: &TestServer, paths: &[&str]) {
    for path in paths {
        for accept in [JSON, "text/html"] {
            assert_eq!(
                fetch(server, path, accept, None, None).status(),
                200,
                "{path}"
            );
        }
    }
    let rendered = renders(server);
    for path in paths {
        for accept in [JSON, "text/html"] {
            assert_eq!(
                fetch(server, path, accept, None, None).status(),
                200,
                "{path}"
            );
        }
    }
    assert_eq!(
        renders(server),
        rendered,
        "kept pages are not rendered again"
    );
}

/// Uploads and a yank to `alpha` leave `beta`'s pages (and the target-pinned page, which is
/// the same page) in place; `alpha`'s page shows each change on the next request.
#[test]
fn a_write_to_one_project_keeps_the_other_projects_pages() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let alpha = wheel(dir.path(), "alpha", "1.0");
    upload(&server, &[&alpha, &wheel(dir.path(), "beta", "1.0")]);
    let target_page = "/t/cp313-musllinux_1_2_x86_64/simple/beta/";
    render_then_keep(&server, &["/simple/alpha/", "/simple/beta/", target_page]);
    let before = renders(&server);

    upload(&server, &[&wheel(dir.path(), "alpha", "2.0")]);
    render_then_keep(&server, &["/simple/beta/", target_page]);
    assert_eq!(renders(&server), before, "beta's pages were kept");
    assert_eq!(
        server.listed_filenames("/simple/alpha/"),
        ["alpha-1.0-py3-none-any.whl", "alpha-2.0-py3-none-any.whl"],
        "alpha's page shows the upload at once"
    );
    assert_eq!(
        renders(&server),
        before + 1,
        "only alpha's JSON page was made again"
    );

    let yank = server
        .client()
        .put(format!(
            "{}/api/v1/projects/alpha/files/alpha-1.0-py3-none-any.whl/yank",
            server.url
        ))
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({"reason": "broken"}))
        .send()
        .unwrap();
    assert_eq!(yank.status(), 200, "{}", yank.text().unwrap());
    render_then_keep(&server, &["/simple/beta/"]);
    assert_eq!(renders(&server), before + 1, "beta's pages were kept");
    let page = server.get_json("/simple/alpha/");
    assert_eq!(page["files"][0]["yanked"], "broken");
    assert!(server.metric("edelweiss_page_cache_lookups_total{result=\"hit\"}") > 0);
}

/// A mirrored page is kept like a local one: an upload to another project leaves it, and
/// a file stored for the mirrored project itself (merged with its upstream) shows at once.
#[test]
fn mirrored_pages_are_kept_until_their_project_changes() {
    let work = tempfile::tempdir().unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    tree.publish("purelib", &[wheel(&dists, "purelib", "2.0")]);
    let upstream = UpstreamServer::start(&tree, "json");
    let config = base_config("", "").replace(
        "[limits]",
        "[mirror]\nmerge_projects = [\"purelib\"]\n[limits]",
    );
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config);
    render_then_keep(&server, &["/simple/purelib/"]);
    let before = renders(&server);
    let fetches = upstream.count("/simple/purelib/");

    upload(&server, &[&wheel(&dists, "localthing", "1.0")]);
    render_then_keep(&server, &["/simple/purelib/"]);
    assert_eq!(renders(&server), before, "the mirrored page was kept");

    upload(&server, &[&wheel(&dists, "purelib", "3.0")]);
    assert_eq!(
        server.listed_filenames("/simple/purelib/"),
        [
            "purelib-2.0-py3-none-any.whl",
            "purelib-3.0-py3-none-any.whl"
        ],
        "the merged page shows the upload at once"
    );
    assert_eq!(renders(&server), before + 1);
    assert_eq!(
        upstream.count("/simple/purelib/"),
        fetches,
        "the upstream's copy was fresh: not asked again"
    );
    let gzip = fetch(&server, "/simple/purelib/", JSON, Some(PIP_ENCODINGS), None);
    assert_eq!(header(&gzip, "content-encoding").as_deref(), Some("gzip"));
}

/// With room for a few pages, the one used least recently goes: a page asked for after
/// every other stays, the one asked for once, long ago, is made again.
#[test]
fn the_least_recently_used_page_goes_when_the_budget_is_spent() {
    const BUDGET: u64 = 3000;
    let server = TestServer::start_with(&base_config("", &format!("page_cache_bytes = {BUDGET}")));
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..8).map(|number| format!("lru-{number}")).collect();
    let wheels: Vec<_> = names
        .iter()
        .map(|name| wheel(dir.path(), name, "1.0"))
        .collect();
    let paths: Vec<&Path> = wheels.iter().map(|path| path.as_path()).collect();
    upload(&server, &paths);
    let page = |name: &str| {
        let response = fetch(&server, &format!("/simple/{name}/"), JSON, None, None);
        assert_eq!(response.status(), 200);
        response.bytes().unwrap().len() as u64
    };
    let size = page(&names[0]);
    assert!(
        size * 3 < BUDGET && size * 8 > BUDGET,
        "pages of {size} bytes: three fit in {BUDGET} bytes, eight do not"
    );
    for name in &names[1..] {
        page(name);
        page(&names[0]);
    }
    assert!(server.metric("edelweiss_page_cache_evictions_total") > 0);
    assert!(server.metric("edelweiss_page_cache_bytes") <= BUDGET);

    let before = renders(&server);
    page(&names[0]);
    assert_eq!(
        renders(&server),
        before,
        "the most recently used page was kept"
    );
    page(&names[7]);
    assert_eq!(renders(&server), before, "the newest page was kept");
    page(&names[1]);
    assert_eq!(
        renders(&server),
        before + 1,
        "the least recently used page was evicted"
    );
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut decoded)
        .expect("a gzip body");
    decoded
}

/// Project pages (JSON and HTML), the project list and the target-pinned page, as pip and
/// uv ask for them: gzip and zstd bodies decode to exactly the identity bytes, each coding
/// has its own validator, and each page is compressed once however often it is sent.
#[test]
fn compressed_pages_decode_to_the_page_as_rendered() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..20)
        .flat_map(|number| {
            [
                wheel(dir.path(), "zipped", &format!("1.{number}")),
                wheel(dir.path(), &format!("listed-{number}"), "1.0"),
            ]
        })
        .collect();
    let paths: Vec<&Path> = files.iter().map(|path| path.as_path()).collect();
    upload(&server, &paths);
    // (path, Accept, compressions it makes): the target-pinned page is the same kept page
    // as /simple/zipped/, already compressed.
    let pages = [
        ("/simple/zipped/", JSON, 1),
        ("/simple/zipped/", "text/html", 1),
        ("/simple/", JSON, 1),
        ("/t/cp313-musllinux_1_2_x86_64/simple/zipped/", JSON, 0),
    ];
    for (path, accept, compressions_made) in pages {
        let identity = fetch(&server, path, accept, None, None);
        assert_eq!(identity.status(), 200);
        assert_eq!(header(&identity, "content-encoding"), None, "{path}");
        assert_eq!(
            header(&identity, "vary").as_deref(),
            Some("Accept, Accept-Encoding")
        );
        let identity_etag = header(&identity, "etag").unwrap();
        let identity = identity.bytes().unwrap();

        for (encodings, coding) in [(PIP_ENCODINGS, "gzip"), (UV_ENCODINGS, "zstd")] {
            let compressions =
                format!("edelweiss_page_compressions_total{{encoding=\"{coding}\"}}");
            let made = server.metric(&compressions);
            let mut etag = String::new();
            for _ in 0..3 {
                let response = fetch(&server, path, accept, Some(encodings), None);
                assert_eq!(response.status(), 200);
                assert_eq!(
                    header(&response, "content-encoding").as_deref(),
                    Some(coding)
                );
                assert_eq!(
                    header(&response, "vary").as_deref(),
                    Some("Accept, Accept-Encoding")
                );
                etag = header(&response, "etag").unwrap();
                assert_ne!(etag, identity_etag, "{path} {coding}");
                let body = response.bytes().unwrap();
                assert!(body.len() < identity.len(), "{path} {coding}");
                let decoded = match coding {
                    "gzip" => gunzip(&body),
                    _ => zstd::decode_all(&body[..]).expect("a zstd body"),
                };
                assert_eq!(decoded, identity, "{path} {coding}");
            }
            assert_eq!(
                server.metric(&compressions),
                made + compressions_made,
                "{path}: compressed once"
            );
            let revalidated = fetch(&server, path, accept, Some(encodings), Some(&etag));
            assert_eq!(revalidated.status(), 304, "{path} {coding}");
            assert!(revalidated.bytes().unwrap().is_empty());
            let other_coding = fetch(&server, path, accept, None, Some(&etag));
            assert_eq!(
                other_coding.status(),
                200,
                "{path}: the {coding} validator does not match the identity body"
            );
        }
    }
}

/// pip (gzip) and uv (zstd) resolve, download and install through compressed pages.
#[test]
fn pip_and_uv_install_through_compressed_pages() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::scenarios::upload_then_install_for_musl(&server, work.path());
    let pip_target = work.path().join("pip-target");
    assert_success(
        tool("pip")
            .args(["install", "--no-deps", "--target"])
            .arg(&pip_target)
            .args(["--index-url", &server.index_url(), "purelib==2.0"]),
    );
    let uv_target = work.path().join("uv-target");
    assert_success(
        tool("uv")
            .args(["pip", "install", "--no-deps", "--python"])
            .arg(common::client_tools().join("python"))
            .arg("--target")
            .arg(&uv_target)
            .args(["--index-url", &server.index_url(), "purelib==2.0"]),
    );
    for target in [&pip_target, &uv_target] {
        assert!(
            target.join("purelib/__init__.py").exists(),
            "purelib is not installed in {}",
            target.display()
        );
    }
    assert!(server.metric("edelweiss_page_responses_total{encoding=\"gzip\"}") >= 2);
    assert!(server.metric("edelweiss_page_responses_total{encoding=\"zstd\"}") >= 2);
}

/// Gzip members in `body` (each member decoded to count it).
fn gzip_members(body: &[u8]) -> usize {
    let mut members = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut decoder, &mut std::io::sink()).expect("a gzip member");
        rest = decoder.into_inner();
        members += 1;
    }
    members
}

/// A page of several MiB is gzipped as one member (uv stops reading after the first of
/// several): the body decodes to the page as rendered, and pip resolves from it and
/// installs the one real wheel, fetched from the upstream through the page's origins record.
#[test]
fn pip_installs_through_a_large_gzipped_page() {
    let work = tempfile::tempdir().unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    tree.publish("purelib", &[wheel(&dists, "purelib", "2.0")]);
    let listed_only: Vec<serde_json::Value> = (0..16_000)
        .map(|number| {
            let filename = format!(
                "purelib-1.{}.{}-py3-none-any.whl",
                number / 1000,
                number % 1000
            );
            serde_json::json!({
                "filename": filename,
                "url": format!("../../files/{filename}"),
                "hashes": {"sha256": common::sha256_hex(filename.as_bytes())},
                "requires-python": ">=3.8",
            })
        })
        .collect();
    tree.append_entries("purelib", &listed_only, "");
    let upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &base_config("", ""));

    let identity = fetch(&server, "/simple/purelib/", JSON, None, None)
        .bytes()
        .unwrap();
    assert!(identity.len() >= 4 << 20, "{} bytes", identity.len());
    let gzip = fetch(&server, "/simple/purelib/", JSON, Some(PIP_ENCODINGS), None);
    assert_eq!(header(&gzip, "content-encoding").as_deref(), Some("gzip"));
    let body = gzip.bytes().unwrap();
    assert_eq!(
        gzip_members(&body),
        1,
        "one gzip member, which uv reads whole"
    );
    let mut decoded = Vec::new();
    flate2::read::MultiGzDecoder::new(&body[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, identity);

    let target = work.path().join("pip-target");
    assert_success(
        tool("pip")
            .args(["install", "--no-deps", "--target"])
            .arg(&target)
            .args(["--index-url", &server.index_url(), "purelib==2.0"]),
    );
    assert!(target.join("purelib/__init__.py").exists());
    assert!(server.metric("edelweiss_page_responses_total{encoding=\"gzip\"}") >= 2);
}
