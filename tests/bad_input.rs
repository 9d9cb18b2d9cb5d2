//! Bad input gets a clear 4xx and loses nothing. Every test records the store's blobs and
//! the index's listing before the bad request and asserts both are unchanged after it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::UPLOAD_TOKEN;
use common::dists::{WheelSpec, noise, write_sdist, write_zip};
use common::server::{TestServer, base_config};
use reqwest::blocking::Response;

const BOUNDARY: &str = "edelweiss-test-boundary";

/// A twine-shaped multipart body carrying `bytes` as `filename`.
fn form(filename: &str, bytes: &[u8], extra: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut fields = vec![(":action", "file_upload"), ("protocol_version", "1")];
    fields.extend_from_slice(extra);
    for (name, value) in fields {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .unwrap();
    }
    write!(body, "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").unwrap();
    body.extend_from_slice(bytes);
    write!(body, "\r\n--{BOUNDARY}--\r\n").unwrap();
    body
}

fn post(server: &TestServer, body: Vec<u8>, token: Option<&str>) -> Response {
    let mut request = server
        .client()
        .post(format!("{}/legacy/", server.url))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(token) = token {
        request = request.basic_auth("__token__", Some(token));
    }
    request.send().expect("POST /legacy/")
}

/// Posts `filename`/`bytes`, expects `status` with `message` in the body, and checks that
/// neither the store nor the index changed.
fn assert_refused(server: &TestServer, filename: &str, bytes: &[u8], status: u16, message: &str) {
    let before = server.snapshot();
    let response = post(server, form(filename, bytes, &[]), Some(UPLOAD_TOKEN));
    assert_eq!(response.status(), status, "{filename}");
    let body = response.text().unwrap();
    assert!(
        body.contains(message),
        "{filename}: expected {message:?} in {body:?}"
    );
    assert_eq!(
        body.trim().lines().count(),
        1,
        "the reason is one line: {body:?}"
    );
    assert_eq!(
        server.snapshot(),
        before,
        "{filename}: the store or index changed"
    );
}

/// A server that already holds one good file, so "unchanged" is not trivially empty.
fn seeded_server(config: &str) -> (TestServer, tempfile::TempDir) {
    let server = TestServer::start_with(config);
    let dir = tempfile::tempdir().unwrap();
    let good = WheelSpec::new("good", "1.0", "py3-none-any").write(dir.path());
    let response = post(
        &server,
        form(
            "good-1.0-py3-none-any.whl",
            &std::fs::read(good).unwrap(),
            &[],
        ),
        Some(UPLOAD_TOKEN),
    );
    assert_eq!(response.status(), 200);
    (server, dir)
}

fn wheel_bytes(dir: &Path, spec: &WheelSpec) -> Vec<u8> {
    std::fs::read(spec.write(dir)).unwrap()
}

#[test]
fn malformed_and_traversal_filenames_are_refused() {
    let (server, dir) = seeded_server(&base_config("", ""));
    let bytes = wheel_bytes(dir.path(), &WheelSpec::new("evil", "1.0", "py3-none-any"));
    let cases = [
        ("notes.txt", "must end in `.whl`, `.tar.gz` or `.zip`"),
        ("../../evil-1.0-py3-none-any.whl", "contains `/`"),
        ("..\\evil-1.0-py3-none-any.whl", "contains `/`"),
        ("evil-1.0-py3-none.whl", "not a wheel filename"),
        ("evil-one-py3-none-any.whl", "not a PEP 440 version"),
        ("evil-1.0-py3-none-any$.whl", "is not a tag"),
    ];
    for (filename, message) in cases {
        assert_refused(&server, filename, &bytes, 400, message);
    }
}

#[test]
fn broken_and_lying_archives_are_refused() {
    let (server, dir) = seeded_server(&base_config("", ""));
    assert_refused(
        &server,
        "broken-1.0-py3-none-any.whl",
        b"PK\x03\x04 this is not a zip",
        400,
        "not a valid zip archive",
    );

    let mut other = WheelSpec::new("victim", "1.0", "py3-none-any");
    other.metadata_name = Some("someone-else");
    assert_refused(
        &server,
        "victim-1.0-py3-none-any.whl",
        &wheel_bytes(dir.path(), &other),
        400,
        "names project `someone-else`, but the filename is for `victim`",
    );

    let tagged = wheel_bytes(dir.path(), &WheelSpec::new("tagged", "1.0", "py3-none-any"));
    assert_refused(
        &server,
        "tagged-1.0-cp313-cp313-musllinux_1_2_x86_64.whl",
        &tagged,
        400,
        "the filename claims tag `cp313-cp313-musllinux_1_2_x86_64`, which WHEEL does not list",
    );

    let traversal = dir.path().join("traversal.whl");
    write_zip(
        &traversal,
        &[("../../etc/cron.d/evil".to_string(), b"x".to_vec())],
    );
    assert_refused(
        &server,
        "traversal-1.0-py3-none-any.whl",
        &std::fs::read(&traversal).unwrap(),
        400,
        "`../../etc/cron.d/evil` is not a safe relative path",
    );

    let sdist = write_sdist(
        dir.path(),
        "sneaky",
        "1.0",
        &[("sneaky-1.0/../../outside", b"x")],
    );
    assert_refused(
        &server,
        "sneaky-1.0.tar.gz",
        &std::fs::read(sdist).unwrap(),
        400,
        "not a safe relative path",
    );

    let no_pkg_info = dir.path().join("bare.tar.gz");
    std::fs::write(&no_pkg_info, b"\x1f\x8b not really gzip").unwrap();
    assert_refused(
        &server,
        "bare-1.0.tar.gz",
        &std::fs::read(no_pkg_info).unwrap(),
        400,
        "not a valid tar.gz archive",
    );
}

#[test]
fn a_zip_bomb_is_refused_before_it_is_unpacked() {
    // 64 MiB of zeros compresses to ~64 KiB; the server allows 16 MiB unpacked.
    let (server, dir) = seeded_server(&base_config("", "max_unpacked_bytes = 16777216"));
    let mut bomb = WheelSpec::new("bomb", "1.0", "py3-none-any");
    bomb.files
        .push(("bomb/zeros.bin".to_string(), vec![0u8; 64 << 20]));
    let bytes = wheel_bytes(dir.path(), &bomb);
    assert!(
        bytes.len() < 1 << 20,
        "the bomb should be small compressed: {}",
        bytes.len()
    );
    assert_refused(&server, &bomb.filename(), &bytes, 400, "zip bomb guard");
}

#[test]
fn a_second_different_file_under_a_taken_name_is_a_conflict() {
    let (server, dir) = seeded_server(&base_config("", ""));
    let mut different = WheelSpec::new("good", "1.0", "py3-none-any");
    different.requires_python = Some(">=3.12");
    assert_refused(
        &server,
        "good-1.0-py3-none-any.whl",
        &wheel_bytes(dir.path(), &different),
        409,
        "already exists with different content",
    );
}

#[test]
fn digest_mismatch_and_form_identity_are_checked() {
    let (server, dir) = seeded_server(&base_config("", ""));
    let bytes = wheel_bytes(
        dir.path(),
        &WheelSpec::new("checked", "1.0", "py3-none-any"),
    );
    let before = server.snapshot();
    let response = post(
        &server,
        form(
            "checked-1.0-py3-none-any.whl",
            &bytes,
            &[("sha256_digest", &"0".repeat(64))],
        ),
        Some(UPLOAD_TOKEN),
    );
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .unwrap()
            .contains("does not match the uploaded bytes")
    );
    let response = post(
        &server,
        form("checked-1.0-py3-none-any.whl", &bytes, &[("name", "other")]),
        Some(UPLOAD_TOKEN),
    );
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .unwrap()
            .contains("form field name `other` does not match")
    );
    assert_eq!(server.snapshot(), before);
}

#[test]
fn wrong_or_missing_tokens_are_refused_and_never_logged() {
    let (server, dir) = seeded_server(&base_config("", ""));
    let path = WheelSpec::new("sneak", "1.0", "py3-none-any").write(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let before = server.snapshot();
    let missing = post(
        &server,
        form("sneak-1.0-py3-none-any.whl", &bytes, &[]),
        None,
    );
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    assert!(missing.text().unwrap().contains("authentication required"));
    let wrong = post(
        &server,
        form("sneak-1.0-py3-none-any.whl", &bytes, &[]),
        Some("not-the-right-token-at-all"),
    );
    assert_eq!(wrong.status(), 403);
    let twine = server.twine_upload_with_token(&[path.as_path()], "not-the-right-token-at-all");
    assert!(!twine.status.success());
    assert!(
        common::text(&twine).contains("403"),
        "{}",
        common::text(&twine)
    );
    assert_eq!(server.snapshot(), before);
    assert!(!server.log().contains(UPLOAD_TOKEN) && !server.log().contains("not-the-right-token"));
}

#[test]
fn reads_can_require_a_token() {
    let config = base_config("", "").replace(
        "[auth]\n",
        "[auth]\nread_requires_token = true\nread_tokens = [\"reader-token-0123456789\"]\n",
    );
    let (server, _dir) = seeded_server(&config);
    assert_eq!(server.get("/simple/").status(), 401);
    assert_eq!(server.get("/simple/good/").status(), 401);
    let page = server
        .client()
        .get(format!("{}/simple/good/", server.url))
        .bearer_auth("reader-token-0123456789")
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(server.get("/healthz").status(), 200);
}

#[test]
fn an_oversized_upload_is_refused_with_413() {
    let (server, dir) = seeded_server(&base_config("", "max_upload_bytes = 1048576"));
    let mut big = WheelSpec::new("big", "1.0", "py3-none-any");
    big.files
        .push(("big/noise.bin".to_string(), noise(3_000_000)));
    let bytes = wheel_bytes(dir.path(), &big);
    assert!(bytes.len() > 1 << 20);
    assert_refused(
        &server,
        &big.filename(),
        &bytes,
        413,
        "larger than the 1048576-byte limit",
    );
    assert!(
        std::fs::read_dir(server.data_dir.join("spool"))
            .unwrap()
            .next()
            .is_none(),
        "spool file left behind"
    );
}

/// Opens a connection and sends the head of an upload whose body is `length` bytes.
fn upload_head(server: &TestServer, length: u64) -> std::io::Result<TcpStream> {
    let address = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = format!(
        "POST /legacy/ HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {UPLOAD_TOKEN}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;
    Ok(stream)
}

/// Opens a connection and sends an upload's head and the first `sent` bytes of `body`,
/// whose full length the head declares.
fn start_upload(server: &TestServer, body: &[u8], sent: usize) -> TcpStream {
    let mut stream = upload_head(server, body.len() as u64).unwrap();
    stream.write_all(&body[..sent]).unwrap();
    stream
}

/// Uploads the file at `path` as `filename` from another thread, streaming it from disk
/// (a body too large to hold twice in memory), and returns the raw answer: an error if the
/// server dies mid-upload.
fn upload_from_disk(
    server: &TestServer,
    filename: &str,
    path: &Path,
) -> std::thread::JoinHandle<std::io::Result<String>> {
    let shell = form(filename, b"", &[]);
    let tail_length = format!("\r\n--{BOUNDARY}--\r\n").len();
    let (head, tail) = shell.split_at(shell.len() - tail_length);
    let (head, tail) = (head.to_vec(), tail.to_vec());
    let file_length = std::fs::metadata(path).unwrap().len();
    let length = head.len() as u64 + file_length + tail.len() as u64;
    let mut stream = upload_head(server, length).unwrap();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // A large body is hashed twice and copied into the store before the answer.
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        stream.write_all(&head)?;
        std::io::copy(&mut std::fs::File::open(path)?, &mut stream)?;
        stream.write_all(&tail)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    })
}

/// Sends part of an upload, then closes the socket.
fn send_truncated(server: &TestServer, body: &[u8], sent: usize) {
    let mut stream = start_upload(server, body, sent);
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
}

#[test]
fn a_truncated_upload_stores_nothing() {
    let (server, dir) = seeded_server(&base_config("", ""));
    let bytes = wheel_bytes(dir.path(), &WheelSpec::new("cut", "1.0", "py3-none-any"));
    let body = form("cut-1.0-py3-none-any.whl", &bytes, &[]);
    let before = server.snapshot();
    send_truncated(&server, &body, body.len() / 2);
    assert_eq!(server.snapshot(), before);
    assert!(
        std::fs::read_dir(server.data_dir.join("spool"))
            .unwrap()
            .next()
            .is_none(),
        "spool file left behind"
    );
    assert_eq!(server.get("/healthz").status(), 200);
}

#[test]
fn a_crash_mid_upload_leaves_nothing_visible_after_restart() {
    let (server, dir) = seeded_server(&base_config("", ""));
    let mut large = WheelSpec::new("large", "1.0", "py3-none-any");
    large
        .files
        .push(("large/noise.bin".to_string(), noise(20_000_000)));
    let body = form(&large.filename(), &wheel_bytes(dir.path(), &large), &[]);
    let before = server.snapshot();
    let stream = start_upload(&server, &body, body.len() * 3 / 4);
    common::poll_until(
        Duration::from_secs(10),
        "the upload to be spooling when the server dies",
        || {
            std::fs::read_dir(server.data_dir.join("spool"))
                .unwrap()
                .count()
                == 1
        },
    );
    let server = server.restart();
    assert_eq!(
        server.snapshot(),
        before,
        "a crash mid-upload must leave nothing visible"
    );
    assert!(
        std::fs::read_dir(server.data_dir.join("spool"))
            .unwrap()
            .next()
            .is_none(),
        "restart clears the spool"
    );
    drop(stream);
}

/// The staging files a `file://` store writes a blob into (`<sha256>#<n>` next to it), as
/// paths relative to the store.
fn partial_blobs(server: &TestServer) -> Vec<String> {
    server
        .blobs()
        .into_iter()
        .filter(|blob| blob.contains('#'))
        .collect()
}

/// Every committed blob's bytes hash to its name.
fn assert_blobs_intact(server: &TestServer) {
    for blob in server.blobs() {
        let bytes = std::fs::read(server.data_dir.join("blobs").join(&blob)).unwrap();
        assert!(
            blob.ends_with(&common::sha256_hex(&bytes)),
            "{blob} does not hold its content"
        );
    }
}

#[test]
fn crashes_mid_blob_write_leave_no_partial_blob_after_restart() {
    // Tried: SIGKILL while the blob of a large upload is being written, three times over.
    // Kept: the held files and their blobs; nothing of the killed writes after a start.
    let (mut server, dir) = seeded_server(&base_config("", ""));
    let mut large = WheelSpec::new("huge", "1.0", "py3-none-any");
    large
        .files
        .push(("huge/noise.bin".to_string(), noise(48 << 20)));
    large.stored = true;
    let (filename, wheel) = (large.filename(), large.write(dir.path()));
    drop(large);
    let digest = common::sha256_hex(&std::fs::read(&wheel).unwrap());
    let before = server.snapshot();
    for kill in 1..=3 {
        let sender = upload_from_disk(&server, &filename, &wheel);
        let writing = common::polled(Duration::from_secs(120), Duration::from_millis(1), || {
            partial_blobs(&server)
                .iter()
                .any(|blob| blob.contains(&format!("{digest}#")))
                .then_some(())
        });
        assert!(
            writing.is_some(),
            "kill {kill}: the blob write never started:\n{}",
            server.log()
        );
        server.kill();
        let _ = sender.join();
        assert!(
            !partial_blobs(&server).is_empty(),
            "kill {kill} came after the blob was committed: nothing to clean"
        );
        server = server.restart();
        assert_eq!(
            partial_blobs(&server),
            Vec::<String>::new(),
            "start {kill} left partial blob writes behind"
        );
        assert!(
            std::fs::read_dir(server.data_dir.join("spool"))
                .unwrap()
                .next()
                .is_none(),
            "start {kill} left the killed upload's spool file behind"
        );
        assert_eq!(
            server.snapshot(),
            before,
            "a crash mid-write must leave the store and index as they were"
        );
        assert_blobs_intact(&server);
    }
    assert!(
        server
            .log()
            .contains("removed partial blob writes left by a crash")
    );

    // The same upload, not interrupted, is stored whole and served.
    let answer = upload_from_disk(&server, &filename, &wheel)
        .join()
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        server.listed_filenames("/simple/huge/"),
        [filename.as_str()]
    );
    assert_eq!(
        common::sha256_hex(&server.listed_file("huge", &filename)),
        digest
    );
    assert_eq!(partial_blobs(&server), Vec::<String>::new());
}

#[test]
fn other_spellings_of_a_held_file_are_conflicts_naming_it() {
    let (server, dir) = seeded_server(&base_config("", ""));
    let held = write_sdist(dir.path(), "norm_pkg", "1.0", &[]);
    let held_bytes = std::fs::read(&held).unwrap();
    let response = post(
        &server,
        form("norm_pkg-1.0.tar.gz", &held_bytes, &[]),
        Some(UPLOAD_TOKEN),
    );
    assert_eq!(response.status(), 200);

    // Tried: the same sdist (project, version, kind) spelled otherwise, with other bytes.
    // Kept: the file held, the only one the release lists.
    for (name, version) in [("Norm.Pkg", "1.0"), ("norm_pkg", "1.0.0")] {
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        let top = format!("{name}-{version}");
        let path = write_sdist(
            &other,
            name,
            version,
            &[(&format!("{top}/extra.txt"), b"other bytes")],
        );
        let filename = format!("{top}.tar.gz");
        assert_eq!(path.file_name().unwrap().to_str(), Some(filename.as_str()));
        assert_refused(
            &server,
            &filename,
            &std::fs::read(&path).unwrap(),
            409,
            "is the same file as norm_pkg-1.0.tar.gz (equal normalized name, version, and tags or sdist kind), which already exists with different content",
        );
    }
    assert_eq!(
        server.listed_filenames("/simple/norm-pkg/"),
        ["norm_pkg-1.0.tar.gz"]
    );
    assert_eq!(
        server.listed_file("norm-pkg", "norm_pkg-1.0.tar.gz"),
        held_bytes
    );

    // The same for a wheel: `2.0` and `2.0.0` are one version.
    let wheel = WheelSpec::new("norm_pkg", "2.0", "py3-none-any");
    let wheel_bytes_held = wheel_bytes(dir.path(), &wheel);
    let response = post(
        &server,
        form(&wheel.filename(), &wheel_bytes_held, &[]),
        Some(UPLOAD_TOKEN),
    );
    assert_eq!(response.status(), 200);
    for spec in [
        WheelSpec::new("norm_pkg", "2.0.0", "py3-none-any"),
        WheelSpec::new("Norm.Pkg", "2.0", "py3-none-any"),
    ] {
        assert_refused(
            &server,
            &spec.filename(),
            &wheel_bytes(dir.path(), &spec),
            409,
            "is the same file as norm_pkg-2.0-py3-none-any.whl",
        );
    }
    // Another spelling of the held file with its very bytes is refused too, saying so.
    assert_refused(
        &server,
        "Norm.Pkg-2.0-py3-none-any.whl",
        &wheel_bytes_held,
        409,
        "which already exists with the same content",
    );
    // The same bytes under the same name stay a harmless retry.
    let retry = post(
        &server,
        form(&wheel.filename(), &wheel_bytes_held, &[]),
        Some(UPLOAD_TOKEN),
    );
    assert_eq!(retry.status(), 200);
    assert!(
        retry
            .text()
            .unwrap()
            .contains("already stored with the same content")
    );
    assert_eq!(
        server.listed_filenames("/simple/norm-pkg/"),
        ["norm_pkg-1.0.tar.gz", "norm_pkg-2.0-py3-none-any.whl"]
    );
    assert_eq!(
        server.listed_file("norm-pkg", "norm_pkg-2.0-py3-none-any.whl"),
        wheel_bytes_held
    );
}
