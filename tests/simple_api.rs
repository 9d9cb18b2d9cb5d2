//! The simple API over HTTP: PEP 503/691 pages with the PEP 592/629/658/700/714 fields,
//! redirects, negotiation, immutable file downloads, yanking, health and metrics.

mod common;

use std::path::PathBuf;

use common::dists::{WheelSpec, platform_wheels, write_sdist};
use common::server::TestServer;
use common::{UPLOAD_TOKEN, sha256_hex, text};

struct Uploaded {
    server: TestServer,
    files: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

fn server_with_uploads() -> Uploaded {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut files = platform_wheels(dir.path(), "fastthing", "1.0");
    files.push(write_sdist(dir.path(), "fastthing", "1.0", &[]));
    let mut old = WheelSpec::new("fastthing", "0.9", "py3-none-any");
    old.requires_python = Some(">=3.8,<4");
    files.push(old.write(dir.path()));
    let paths: Vec<&std::path::Path> = files.iter().map(|path| path.as_path()).collect();
    let output = server.twine_upload(&paths);
    assert!(
        output.status.success(),
        "twine upload failed:\n{}",
        text(&output)
    );
    Uploaded {
        server,
        files,
        _dir: dir,
    }
}

fn file_entry<'a>(page: &'a serde_json::Value, filename: &str) -> &'a serde_json::Value {
    page["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["filename"] == filename)
        .unwrap_or_else(|| panic!("{filename} not listed"))
}

#[test]
fn json_page_carries_every_field_pip_and_uv_read() {
    let Uploaded {
        server,
        files,
        _dir,
    } = server_with_uploads();
    let page = server.get_json("/simple/fastthing/");
    assert_eq!(page["meta"]["api-version"], "1.1");
    assert_eq!(page["name"], "fastthing");
    assert_eq!(page["versions"], serde_json::json!(["0.9", "1.0"]));
    assert_eq!(page["files"].as_array().unwrap().len(), 4);
    for path in &files {
        let filename = path.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        let entry = file_entry(&page, filename);
        assert_eq!(entry["hashes"]["sha256"], sha256_hex(&bytes), "{filename}");
        assert_eq!(
            entry["url"],
            format!("/files/{}/{filename}", sha256_hex(&bytes))
        );
        assert_eq!(entry["size"], bytes.len());
        assert_eq!(entry["yanked"], false);
        let upload_time = entry["upload-time"].as_str().unwrap();
        assert!(
            upload_time.len() == 27
                && upload_time.ends_with('Z')
                && upload_time.as_bytes()[10] == b'T',
            "{upload_time}"
        );
    }
    let sdist = file_entry(&page, "fastthing-1.0.tar.gz");
    assert_eq!(sdist["requires-python"], ">=3.9");
    assert_eq!(sdist["core-metadata"], false);
    let wheel = file_entry(&page, "fastthing-0.9-py3-none-any.whl");
    assert_eq!(wheel["requires-python"], ">=3.8,<4");
    let metadata_hash = wheel["core-metadata"]["sha256"].as_str().unwrap();
    assert_eq!(wheel["dist-info-metadata"]["sha256"], metadata_hash);
    let metadata = server.get(&format!("{}.metadata", wheel["url"].as_str().unwrap()));
    assert_eq!(metadata.status(), 200);
    let metadata = metadata.bytes().unwrap();
    assert_eq!(sha256_hex(&metadata), metadata_hash);
    assert!(String::from_utf8_lossy(&metadata).contains("Name: fastthing\nVersion: 0.9\n"));
}

#[test]
fn html_page_escapes_and_carries_the_data_attributes() {
    let Uploaded { server, _dir, .. } = server_with_uploads();
    let response = server
        .client()
        .get(format!("{}/simple/fastthing/", server.url))
        .header("Accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_eq!(response.headers()["vary"], "Accept, Accept-Encoding");
    let html = response.text().unwrap();
    assert!(
        html.contains("<meta name=\"pypi:repository-version\" content=\"1.1\">"),
        "{html}"
    );
    assert!(
        html.contains("data-requires-python=\"&gt;=3.8,&lt;4\""),
        "{html}"
    );
    let json = server.get_json("/simple/fastthing/");
    let wheel = file_entry(&json, "fastthing-0.9-py3-none-any.whl");
    let metadata = wheel["core-metadata"]["sha256"].as_str().unwrap();
    let sha = wheel["hashes"]["sha256"].as_str().unwrap();
    assert!(
        html.contains(&format!(
            "href=\"/files/{sha}/fastthing-0.9-py3-none-any.whl#sha256={sha}\""
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "data-dist-info-metadata=\"sha256={metadata}\" data-core-metadata=\"sha256={metadata}\""
        )),
        "{html}"
    );
    let v1 = server
        .client()
        .get(format!("{}/simple/fastthing/", server.url))
        .header("Accept", "application/vnd.pypi.simple.v1+html")
        .send()
        .unwrap();
    assert_eq!(
        v1.headers()["content-type"],
        "application/vnd.pypi.simple.v1+html"
    );
}

#[test]
fn names_redirect_to_the_canonical_url_and_unknown_projects_are_404() {
    let Uploaded { server, _dir, .. } = server_with_uploads();
    for (path, location) in [
        ("/simple/FastThing/", "/simple/fastthing/"),
        ("/simple/fastthing", "/simple/fastthing/"),
        ("/simple/Fast_Thing", "/simple/fast-thing/"),
        ("/simple", "/simple/"),
    ] {
        let response = server.get(path);
        assert_eq!(response.status(), 301, "{path}");
        assert_eq!(response.headers()["location"], location, "{path}");
    }
    assert_eq!(server.get("/simple/no-such-project/").status(), 404);
    assert_eq!(server.get("/simple/..%2Fetc/").status(), 404);
    let list = server.get_json("/simple/");
    assert_eq!(list["projects"], serde_json::json!([{"name": "fastthing"}]));
    assert_eq!(list["meta"]["api-version"], "1.1");
    let html = server.get("/simple/").text().unwrap();
    assert!(
        html.contains("<a href=\"/simple/fastthing/\">fastthing</a>"),
        "{html}"
    );
}

#[test]
fn negotiation_answers_406_and_honours_q_values() {
    let Uploaded { server, _dir, .. } = server_with_uploads();
    let request = |accept: &str| {
        server
            .client()
            .get(format!("{}/simple/fastthing/", server.url))
            .header("Accept", accept)
            .send()
            .unwrap()
    };
    let refused = request("application/json");
    assert_eq!(refused.status(), 406);
    assert_eq!(
        refused.headers().get("vary").map(|v| v.to_str().unwrap()),
        None
    );
    assert!(
        refused
            .text()
            .unwrap()
            .contains("application/vnd.pypi.simple.v1+json")
    );
    let json = request("text/html;q=0.2, application/vnd.pypi.simple.v1+json;q=0.9");
    assert_eq!(
        json.headers()["content-type"],
        "application/vnd.pypi.simple.v1+json"
    );
    assert_eq!(json.headers()["vary"], "Accept, Accept-Encoding");
    let html = request("text/html;q=0.9, application/vnd.pypi.simple.v1+json;q=0.2");
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    let etag = html.headers()["etag"].to_str().unwrap().to_string();
    let again = server
        .client()
        .get(format!("{}/simple/fastthing/", server.url))
        .header("Accept", "text/html")
        .header("If-None-Match", etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), 304);
}

#[test]
fn files_are_immutable_ranged_and_revalidated() {
    let Uploaded {
        server,
        files,
        _dir,
    } = server_with_uploads();
    let bytes = std::fs::read(&files[0]).unwrap();
    let filename = files[0].file_name().unwrap().to_str().unwrap();
    let sha = sha256_hex(&bytes);
    let url = format!("{}/files/{sha}/{filename}", server.url);
    let client = server.client();

    let full = client.get(&url).send().unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(
        full.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(full.headers()["etag"], format!("\"{sha}\"").as_str());
    assert_eq!(
        full.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(full.bytes().unwrap().as_ref(), bytes.as_slice());

    let head = client.head(&url).send().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert!(head.bytes().unwrap().is_empty());

    let partial = client
        .get(&url)
        .header("Range", "bytes=10-19")
        .send()
        .unwrap();
    assert_eq!(partial.status(), 206);
    assert_eq!(
        partial.headers()["content-range"],
        format!("bytes 10-19/{}", bytes.len()).as_str()
    );
    assert_eq!(partial.bytes().unwrap().as_ref(), &bytes[10..20]);

    let past_end = client
        .get(&url)
        .header("Range", format!("bytes={}-", bytes.len()))
        .send()
        .unwrap();
    assert_eq!(past_end.status(), 416);

    let cached = client
        .get(&url)
        .header("If-None-Match", format!("\"{sha}\""))
        .send()
        .unwrap();
    assert_eq!(cached.status(), 304);

    let wrong_digest = client
        .get(format!(
            "{}/files/{}/{filename}",
            server.url,
            "0".repeat(64)
        ))
        .send()
        .unwrap();
    assert_eq!(wrong_digest.status(), 404);
    let not_a_digest = client
        .get(format!("{}/files/xyz/{filename}", server.url))
        .send()
        .unwrap();
    assert_eq!(not_a_digest.status(), 404);
    assert!(server.metric("edelweiss_file_bytes_served_total") >= bytes.len() as u64 + 10);
}

#[test]
fn yanking_shows_in_both_renderings_and_needs_a_token() {
    let Uploaded { server, _dir, .. } = server_with_uploads();
    let url = format!(
        "{}/api/v1/projects/fastthing/files/fastthing-0.9-py3-none-any.whl/yank",
        server.url
    );
    let client = server.client();
    assert_eq!(client.put(&url).send().unwrap().status(), 401);
    let yanked = client
        .put(&url)
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({"reason": "broken <build>"}))
        .send()
        .unwrap();
    assert_eq!(yanked.status(), 200);
    let page = server.get_json("/simple/fastthing/");
    assert_eq!(
        file_entry(&page, "fastthing-0.9-py3-none-any.whl")["yanked"],
        "broken <build>"
    );
    let html = server.get("/simple/fastthing/").text().unwrap();
    assert!(
        html.contains("data-yanked=\"broken &lt;build&gt;\""),
        "{html}"
    );
    assert_eq!(
        client
            .delete(&url)
            .bearer_auth(UPLOAD_TOKEN)
            .send()
            .unwrap()
            .status(),
        200
    );
    let page = server.get_json("/simple/fastthing/");
    assert_eq!(
        file_entry(&page, "fastthing-0.9-py3-none-any.whl")["yanked"],
        false
    );
    let missing = client
        .put(url.replace("0.9-py3", "7.7-py3"))
        .bearer_auth(UPLOAD_TOKEN)
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn health_and_metrics_report_the_store() {
    let Uploaded {
        server,
        files,
        _dir,
    } = server_with_uploads();
    assert_eq!(server.get("/healthz").text().unwrap(), "ok\n");
    server.get("/simple/fastthing/");
    assert_eq!(server.metric("edelweiss_files_stored"), files.len() as u64);
    assert!(
        server.metric("edelweiss_http_requests_total{route=\"project_page\",status=\"200\"}") >= 1
    );
    assert_eq!(
        server.metric("edelweiss_http_requests_total{route=\"upload\",status=\"200\"}"),
        files.len() as u64
    );
    let output = server.twine_upload(&[files[0].as_path()]);
    assert!(
        output.status.success(),
        "re-uploading identical bytes must be a no-op:\n{}",
        text(&output)
    );
    assert_eq!(server.metric("edelweiss_files_stored"), files.len() as u64);
}

#[test]
fn data_survives_a_restart() {
    let Uploaded { server, _dir, .. } = server_with_uploads();
    let before = server.snapshot();
    let server = server.restart();
    assert_eq!(server.snapshot(), before);
}
