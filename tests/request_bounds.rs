//! The request surface under hostile clients: bodies are read only after the token check and
//! are bounded in bytes, fields and time; slow clients cannot starve the server; protected
//! responses stay out of shared caches; `/metrics` follows `read_requires_token`; and every
//! change or refusal leaves one audit line naming the token, never showing it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::UPLOAD_TOKEN;
use common::dists::{WheelSpec, write_sdist};
use common::server::TestServer;
use reqwest::blocking::multipart;

const READ_TOKEN: &str = "test-read-token-0123456789";
const WORKER_TOKEN: &str = "test-worker-token-0123456789";
const TARGET: &str = "cp313-musllinux_1_2_x86_64";
const BOUNDARY: &str = "edelweiss-bounds-boundary";

/// Named upload and worker tokens, a plain read token (`read-1`), 3 s body timeouts, and a
/// target served by remote workers only (the test plays the worker).
fn config(read_requires_token: bool) -> String {
    config_with_builder(read_requires_token, "/nonexistent/builder-root")
}

/// `config`, with a builder root that exists so builds can be keyed and queued.
fn config_with_builder(read_requires_token: bool, builder: &str) -> String {
    format!(
        r#"[auth]
upload_tokens = [{{ name = "ci", token = "{UPLOAD_TOKEN}" }}]
read_tokens = ["{READ_TOKEN}"]
worker_tokens = [{{ name = "farm", token = "{WORKER_TOKEN}" }}]
read_requires_token = {read_requires_token}
[limits]
request_timeout_seconds = 3
upload_timeout_seconds = 3
[build]
workers = 0
executor = "runc"
# Builds here are queued and leased, never run: no index to resolve setuptools from.
resolve_build_requirements = false
[[build.targets]]
name = "{TARGET}"
builder = "{builder}"
"#
    )
}

fn address(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_string()
}

/// Sends `head` and `body` on a fresh connection (the body from another thread, so a server
/// that answers early and closes is still heard) and returns what came back within `within`.
fn exchange(server: &TestServer, head: &str, body: Vec<u8>, within: Duration) -> String {
    let mut stream = TcpStream::connect(address(server)).unwrap();
    stream.set_read_timeout(Some(within)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let started = Instant::now();
    while started.elapsed() < within {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
        if complete(&received) {
            break;
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    String::from_utf8_lossy(&received).into_owned()
}

/// Whether `received` holds a whole response with a `Content-Length` body.
fn complete(received: &[u8]) -> bool {
    let text = String::from_utf8_lossy(received);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .is_some_and(|length| body.len() >= length)
}

fn status_of(response: &str) -> Option<u16> {
    response.split(' ').nth(1)?.parse().ok()
}

fn head(method: &str, path: &str, token: Option<&str>, headers: &str) -> String {
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}{headers}\r\n")
}

fn multipart_form(fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{BOUNDARY}--\r\n").unwrap();
    body
}

fn post_form(server: &TestServer, path: &str, token: &str, body: Vec<u8>) -> String {
    let headers = format!(
        "Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n",
        body.len()
    );
    exchange(
        server,
        &head("POST", path, Some(token), &headers),
        body,
        Duration::from_secs(30),
    )
}

/// Uploads the file at `path` as twine does; `None` sends no credentials at all.
fn upload(
    server: &TestServer,
    path: &std::path::Path,
    token: Option<&str>,
) -> reqwest::blocking::Response {
    let filename = path.file_name().unwrap().to_string_lossy().into_owned();
    let form = multipart::Form::new().text(":action", "file_upload").part(
        "content",
        multipart::Part::bytes(std::fs::read(path).unwrap()).file_name(filename),
    );
    let mut request = server.client().post(format!("{}/legacy/", server.url));
    if let Some(token) = token {
        request = request.basic_auth("__token__", Some(token));
    }
    request.multipart(form).send().expect("POST /legacy/")
}

fn good_wheel(dir: &std::path::Path) -> std::path::PathBuf {
    WheelSpec::new("good", "1.0", "py3-none-any").write(dir)
}

/// The JSON routes that take a token, with the method each answers.
const JSON_ROUTES: [(&str, &str); 5] = [
    ("POST", "/api/v1/builds"),
    ("POST", "/api/v1/workers/lease"),
    ("POST", "/api/v1/workers/builds/b0123/heartbeat"),
    (
        "PUT",
        "/api/v1/projects/good/files/good-1.0-py3-none-any.whl/yank",
    ),
    ("POST", "/api/v1/prewarm"),
];

#[test]
fn an_anonymous_body_is_refused_before_it_is_read() {
    let server = TestServer::start_with(&config(false));
    // Declared bodies the old extractors would wait for (1 MB, under their 2 MiB cap) or
    // refuse by size (100 MB): neither is sent. The token check must answer at once.
    for length in [1_000_000u64, 100_000_000] {
        for (method, path) in JSON_ROUTES {
            let headers = format!("Content-Type: application/json\r\nContent-Length: {length}\r\n");
            let started = Instant::now();
            let response = exchange(
                &server,
                &head(method, path, None, &headers),
                Vec::new(),
                Duration::from_secs(2),
            );
            assert_eq!(
                status_of(&response),
                Some(401),
                "{method} {path} with an unsent {length}-byte body: {response:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(2));
        }
    }
    // The same for a form: an anonymous upload declaring 100 MB gets its 401 unread.
    let headers = format!(
        "Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 100000000\r\n"
    );
    let response = exchange(
        &server,
        &head("POST", "/legacy/", None, &headers),
        Vec::new(),
        Duration::from_secs(2),
    );
    assert_eq!(status_of(&response), Some(401), "{response:?}");
}

#[test]
fn json_bodies_are_capped() {
    let server = TestServer::start_with(&config(false));
    let big =
        serde_json::json!({"project": "a".repeat(100_000), "version": "1.0", "target": TARGET})
            .to_string();
    let cases = [
        ("POST", "/api/v1/builds", UPLOAD_TOKEN, big.clone()),
        ("POST", "/api/v1/workers/lease", WORKER_TOKEN, big.clone()),
        (
            "POST",
            "/api/v1/prewarm",
            UPLOAD_TOKEN,
            serde_json::json!({"requirements": "x\n".repeat(1 << 20), "targets": [TARGET]})
                .to_string(),
        ),
    ];
    for (method, path, token, body) in cases {
        let headers = format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        let response = exchange(
            &server,
            &head(method, path, Some(token), &headers),
            body.into_bytes(),
            Duration::from_secs(10),
        );
        assert_eq!(status_of(&response), Some(413), "{path}: {response:?}");
        assert!(response.contains("is larger than"), "{response:?}");
    }
    // Without a declared length the cap holds while reading: one 100 KB chunk.
    let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let response = exchange(
        &server,
        &head(
            "POST",
            "/api/v1/builds",
            Some(UPLOAD_TOKEN),
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
        ),
        chunked.into_bytes(),
        Duration::from_secs(10),
    );
    assert_eq!(status_of(&response), Some(413), "{response:?}");
    let builds = server.get_json_plain("/api/v1/builds");
    assert_eq!(
        builds["builds"].as_array().unwrap().len(),
        0,
        "no build was queued"
    );
}

/// Opens `count` connections to `path` that each send `head`, then `prefix`, then nothing
/// more than one byte a second: a slow-loris client.
fn slow_clients(server: &TestServer, head: &str, prefix: &[u8], count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut stream = TcpStream::connect(address(server)).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(prefix).unwrap();
            stream
        })
        .collect()
}

/// Reads what the server sent on `stream` and whether it has closed the connection.
fn drain(mut stream: &TcpStream) -> (String, bool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (String::from_utf8_lossy(&received).into_owned(), false);
            }
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), true),
        }
    }
}

#[test]
fn slow_clients_are_dropped_and_health_stays_up() {
    let server = TestServer::start_with(&config(false));
    let json = "Content-Type: application/json\r\nContent-Length: 10000\r\n";
    let form = format!(
        "Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 1000000\r\n"
    );
    let file_start = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"good-1.0.tar.gz\"\r\n\r\n"
    );
    // 300 connections: token holders dribbling a JSON body and an upload's file, and
    // anonymous clients dribbling a JSON body.
    let mut clients = slow_clients(
        &server,
        &head("POST", "/api/v1/builds", Some(UPLOAD_TOKEN), json),
        b"{",
        100,
    );
    clients.extend(slow_clients(
        &server,
        &head("POST", "/legacy/", Some(UPLOAD_TOKEN), &form),
        file_start.as_bytes(),
        100,
    ));
    clients.extend(slow_clients(
        &server,
        &head("POST", "/api/v1/builds", None, json),
        b"{",
        100,
    ));
    let clients = Arc::new(clients);
    let stop = Arc::new(AtomicBool::new(false));
    let dribbler = {
        let (clients, stop) = (clients.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for mut client in clients.iter() {
                    let _ = client.write_all(b" ");
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let started = Instant::now();
    let health = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    while started.elapsed() < Duration::from_secs(5) {
        let response = health
            .get(format!("{}/healthz", server.url))
            .send()
            .expect("/healthz answers within 1 s while slow clients hold connections");
        assert_eq!(response.status(), 200);
        std::thread::sleep(Duration::from_millis(500));
    }
    // The 3 s body timeout plus slack for a loaded machine.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    dribbler.join().unwrap();
    let mut still_open = 0;
    for (index, client) in clients.iter().enumerate() {
        let (response, closed) = drain(client);
        if !closed {
            still_open += 1;
            continue;
        }
        let expected = if index < 200 { 408 } else { 401 };
        if !response.is_empty() {
            assert_eq!(
                status_of(&response),
                Some(expected),
                "client {index}: {response:?}"
            );
        }
    }
    assert_eq!(
        still_open, 0,
        "slow clients the server kept open past its 3 s body timeout"
    );
    assert_eq!(server.get("/healthz").status(), 200);
}

#[test]
fn forms_are_bounded_in_fields_and_field_size() {
    let server = TestServer::start_with(&config(false));
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        upload(&server, &good_wheel(dir.path()), Some(UPLOAD_TOKEN)).status(),
        200
    );
    let before = server.snapshot();
    // 400 fields of 256 KiB, none of them a file: the old reader kept every one (100 MiB and
    // more). Now the form is refused at its 257th field and unread fields are not kept.
    let baseline = server.memory_bytes("VmHWM") >> 10;
    let mut fields = vec![(":action", b"file_upload".to_vec())];
    let names: Vec<String> = (0..400).map(|index| format!("field{index}")).collect();
    fields.extend(
        names
            .iter()
            .map(|name| (name.as_str(), vec![b'x'; 256 << 10])),
    );
    let started = Instant::now();
    let response = post_form(&server, "/legacy/", UPLOAD_TOKEN, multipart_form(&fields));
    let grown = (server.memory_bytes("VmHWM") >> 10).saturating_sub(baseline);
    assert!(
        grown < 48 << 10,
        "the server's peak memory grew by {grown} KiB"
    );
    assert_eq!(status_of(&response), Some(413), "{response:?}");
    assert!(response.contains("more than 256 fields"), "{response:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused in {:?}",
        started.elapsed()
    );
    // A kept field past 64 KiB is refused as it arrives.
    let response = post_form(
        &server,
        "/legacy/",
        UPLOAD_TOKEN,
        multipart_form(&[
            (":action", b"file_upload".to_vec()),
            ("name", vec![b'n'; 100 << 10]),
        ]),
    );
    assert_eq!(status_of(&response), Some(413), "{response:?}");
    assert!(
        response.contains("form field `name` is larger than 65536 bytes"),
        "{response:?}"
    );
    // A worker's result: only `log` (16 MiB) and `message` (1 MiB) may be large, `log` once.
    let result = "/api/v1/workers/builds/b0123/result";
    let response = post_form(
        &server,
        result,
        WORKER_TOKEN,
        multipart_form(&[
            ("outcome", b"package".to_vec()),
            ("message", vec![b'm'; 2 << 20]),
        ]),
    );
    assert_eq!(status_of(&response), Some(413), "{response:?}");
    assert!(response.contains("form field `message`"), "{response:?}");
    let response = post_form(
        &server,
        result,
        WORKER_TOKEN,
        multipart_form(&[("log", vec![b'l'; 1 << 20]), ("log", vec![b'l'; 1 << 20])]),
    );
    assert_eq!(status_of(&response), Some(400), "{response:?}");
    assert!(
        response.contains("`log` is sent more than once"),
        "{response:?}"
    );
    assert_eq!(server.snapshot(), before, "a refused form stored nothing");
}

fn yank(server: &TestServer, content_type: &str, body: &str) -> reqwest::blocking::Response {
    server
        .client()
        .put(format!(
            "{}/api/v1/projects/good/files/good-1.0-py3-none-any.whl/yank",
            server.url
        ))
        .bearer_auth(UPLOAD_TOKEN)
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .unwrap()
}

fn is_yanked(server: &TestServer) -> serde_json::Value {
    let page = server.get_json("/simple/good/");
    page["files"][0]["yanked"].clone()
}

#[test]
fn a_yank_with_an_invalid_body_changes_nothing() {
    let server = TestServer::start_with(&config(false));
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        upload(&server, &good_wheel(dir.path()), Some(UPLOAD_TOKEN)).status(),
        200
    );
    for (content_type, body) in [
        ("application/json", "not json"),
        ("application/json", "{\"reason\": 5}"),
        ("application/json", "{\"reasn\": \"typo\"}"),
        ("text/plain", "{\"reason\": \"wrong type\"}"),
    ] {
        let response = yank(&server, content_type, body);
        assert_eq!(response.status(), 400, "{content_type} {body}");
        let text = response.text().unwrap();
        assert_eq!(text.trim().lines().count(), 1, "one-line reason: {text:?}");
        assert_eq!(is_yanked(&server), false, "{body} must not yank");
    }
    let response = yank(&server, "application/json", "{\"reason\": \"broken\"}");
    assert_eq!(response.status(), 200);
    assert_eq!(is_yanked(&server), "broken");
}

#[test]
fn metrics_need_a_read_token_when_reads_do() {
    let protected = TestServer::start_with(&config(true));
    assert_eq!(protected.get("/metrics").status(), 401);
    let with_token = protected
        .client()
        .get(format!("{}/metrics", protected.url))
        .bearer_auth(READ_TOKEN)
        .send()
        .unwrap();
    assert_eq!(with_token.status(), 200);
    assert!(with_token.text().unwrap().contains("edelweiss_"));
    let wrong = protected
        .client()
        .get(format!("{}/metrics", protected.url))
        .bearer_auth("not-a-configured-token-012345")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(
        protected.get("/healthz").status(),
        200,
        "/healthz stays open"
    );
    let open = TestServer::start_with(&config(false));
    assert_eq!(open.get("/metrics").status(), 200);
}

fn cache_control(server: &TestServer, path: &str, token: &str, etag: Option<&str>) -> String {
    let mut request = server
        .client()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token);
    if let Some(etag) = etag {
        request = request.header("If-None-Match", etag);
    }
    let response = request.send().unwrap();
    assert!(
        response.status() == 200 || response.status() == 304,
        "{path}: {}",
        response.status()
    );
    response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_string()
}

fn cacheable_paths(server: &TestServer, token: &str) -> Vec<(String, Option<String>)> {
    let page = server
        .client()
        .get(format!("{}/simple/good/", server.url))
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .bearer_auth(token)
        .send()
        .unwrap();
    let etag = page.headers()["etag"].to_str().unwrap().to_string();
    let page: serde_json::Value = page.json().unwrap();
    let file = page["files"][0]["url"].as_str().unwrap().to_string();
    let sha256 = page["files"][0]["hashes"]["sha256"].as_str().unwrap();
    vec![
        ("/simple/good/".to_string(), None),
        ("/simple/good/".to_string(), Some(etag)),
        ("/simple/".to_string(), None),
        (file.clone(), None),
        (file.clone(), Some(format!("\"{sha256}\""))),
        (format!("{file}.metadata"), None),
    ]
}

#[test]
fn protected_responses_are_private_to_caches() {
    let dir = tempfile::tempdir().unwrap();
    for protected in [true, false] {
        let server = TestServer::start_with(&config(protected));
        assert_eq!(
            upload(&server, &good_wheel(dir.path()), Some(UPLOAD_TOKEN)).status(),
            200
        );
        for (path, etag) in cacheable_paths(&server, READ_TOKEN) {
            let directives = cache_control(&server, &path, READ_TOKEN, etag.as_deref());
            let listed: Vec<&str> = directives.split(',').map(str::trim).collect();
            if protected {
                assert!(
                    listed.contains(&"private") && !listed.contains(&"public"),
                    "{path} (If-None-Match {etag:?}) with read_requires_token: {directives}"
                );
            } else {
                assert!(
                    listed.contains(&"public") && !listed.contains(&"private"),
                    "{path} (If-None-Match {etag:?}) on an open index: {directives}"
                );
            }
            if path.starts_with("/files/") && !path.ends_with(".metadata") {
                assert!(listed.contains(&"immutable"), "{path}: {directives}");
            }
        }
    }
}

/// The audit lines whose fields include every one of `fields` (`key="value"`).
fn audit_matching(lines: &[String], fields: &[&str]) -> usize {
    lines
        .iter()
        .filter(|line| fields.iter().all(|field| line.contains(field)))
        .count()
}

#[test]
fn changes_and_refusals_leave_one_audit_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let builder = dir.path().join("builder-root");
    std::fs::create_dir_all(&builder).unwrap();
    std::fs::write(builder.join("marker"), "a root nothing runs in\n").unwrap();
    let server = TestServer::start_with(&config_with_builder(false, builder.to_str().unwrap()));
    let wheel = good_wheel(dir.path());
    assert_eq!(upload(&server, &wheel, None).status(), 401);
    assert_eq!(
        upload(&server, &wheel, Some("not-a-configured-token-012345")).status(),
        403
    );
    assert_eq!(upload(&server, &wheel, Some(UPLOAD_TOKEN)).status(), 200);
    let other = tempfile::tempdir().unwrap();
    let mut changed = WheelSpec::new("good", "1.0", "py3-none-any");
    changed
        .files
        .push(("good/other.py".into(), b"x = 2\n".to_vec()));
    assert_eq!(
        upload(&server, &changed.write(other.path()), Some(UPLOAD_TOKEN)).status(),
        409
    );
    let yank_url = format!(
        "{}/api/v1/projects/good/files/good-1.0-py3-none-any.whl/yank",
        server.url
    );
    let client = server.client();
    assert_eq!(
        client
            .put(&yank_url)
            .bearer_auth(UPLOAD_TOKEN)
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .delete(&yank_url)
            .bearer_auth(UPLOAD_TOKEN)
            .send()
            .unwrap()
            .status(),
        200
    );
    let sdist = write_sdist(dir.path(), "slow", "1.0", &[]);
    assert_eq!(upload(&server, &sdist, Some(UPLOAD_TOKEN)).status(), 200);
    let requested = client
        .post(format!("{}/api/v1/builds", server.url))
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({"project": "slow", "version": "1.0", "target": TARGET}))
        .send()
        .unwrap();
    assert_eq!(requested.status(), 202);
    let oversized = client
        .post(format!("{}/api/v1/builds", server.url))
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({"project": "x".repeat(100_000)}))
        .send()
        .unwrap();
    assert_eq!(oversized.status(), 413);
    let leased = client
        .post(format!("{}/api/v1/workers/lease", server.url))
        .bearer_auth(WORKER_TOKEN)
        .json(&serde_json::json!({"worker": "w1", "targets": [TARGET]}))
        .send()
        .unwrap();
    assert_eq!(leased.status(), 200);
    let assignment: serde_json::Value = leased.json().unwrap();
    let id = assignment["build"]["id"].as_str().unwrap().to_string();
    let form = multipart::Form::new()
        .text("worker", "w1")
        .text("outcome", "package")
        .text("message", "the compiler refused")
        .part(
            "log",
            multipart::Part::bytes(b"error: no\n".to_vec()).file_name("log"),
        );
    let reported = client
        .post(format!("{}/api/v1/workers/builds/{id}/result", server.url))
        .bearer_auth(WORKER_TOKEN)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(reported.status(), 200, "{:?}", reported.text());

    let lines = server.audit_lines();
    let expected: &[(&str, &[&str])] = &[
        (
            "anonymous upload",
            &[
                "who=\"anonymous\"",
                "route=\"upload\"",
                "outcome=\"refused\"",
                "status=401",
            ],
        ),
        (
            "unknown token",
            &["who=\"unknown-token\"", "route=\"upload\"", "status=403"],
        ),
        (
            "stored wheel",
            &[
                "who=\"ci\"",
                "action=\"upload\"",
                "good-1.0-py3-none-any.whl",
                "outcome=\"stored\"",
            ],
        ),
        (
            "conflict",
            &[
                "who=\"ci\"",
                "route=\"upload\"",
                "outcome=\"refused\"",
                "status=409",
            ],
        ),
        (
            "yank",
            &[
                "who=\"ci\"",
                "action=\"yank\"",
                "object=\"good/good-1.0-py3-none-any.whl\"",
                "outcome=\"yanked\"",
            ],
        ),
        (
            "restore",
            &["who=\"ci\"", "action=\"restore\"", "outcome=\"restored\""],
        ),
        (
            "stored sdist",
            &[
                "who=\"ci\"",
                "action=\"upload\"",
                "slow-1.0.tar.gz",
                "outcome=\"stored\"",
            ],
        ),
        (
            "build",
            &[
                "who=\"ci\"",
                "action=\"build\"",
                "route=\"builds\"",
                "outcome=\"queued\"",
                "status=202",
            ],
        ),
        (
            "oversized",
            &[
                "who=\"ci\"",
                "route=\"builds\"",
                "outcome=\"refused\"",
                "status=413",
            ],
        ),
        (
            "result",
            &[
                "who=\"farm\"",
                "action=\"result\"",
                "route=\"worker_result\"",
                "outcome=\"recorded\"",
            ],
        ),
    ];
    for (what, fields) in expected {
        assert_eq!(
            audit_matching(&lines, fields),
            1,
            "one audit line for the {what} with {fields:?}:\n{}",
            lines.join("\n")
        );
    }
    assert!(
        audit_matching(&lines, &[&id]) >= 2,
        "the build's id in its request and result lines"
    );
    let log = server.log();
    for token in [UPLOAD_TOKEN, WORKER_TOKEN, "not-a-configured-token-012345"] {
        assert!(!log.contains(token), "the log shows a token");
    }
}
