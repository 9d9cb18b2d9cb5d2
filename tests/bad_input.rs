//! Bad input gets a clear 4xx and loses nothing. Every test records the store's blobs and
//! the index's listing before the bad request and asserts both are unchanged after it, and
//! that the answer is one short line and no spool file is left.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::UPLOAD_TOKEN;
use common::dists::{
    RawTar, WheelSpec, append_zip_symlink, gzip_repeating, noise, pax_record, tar_header,
    write_sdist, write_zip,
};
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

/// Posts `filename`/`bytes`, expects `status` with `message` in a short one-line body, and
/// checks that neither the store nor the index changed and no spool file is left.
fn assert_refused(server: &TestServer, filename: &str, bytes: &[u8], status: u16, message: &str) {
    let before = server.snapshot();
    let response = post(server, form(filename, bytes, &[]), Some(UPLOAD_TOKEN));
    let shown = &filename[..filename.len().min(80)];
    assert_eq!(response.status(), status, "{shown}");
    let body = response.text().unwrap();
    assert!(
        body.len() < 1024,
        "{shown}: a {}-byte answer quotes too much: {:?}",
        body.len(),
        &body[..body.len().min(300)]
    );
    assert!(
        body.contains(message),
        "{shown}: expected {message:?} in {body:?}"
    );
    assert_eq!(
        body.trim().lines().count(),
        1,
        "the reason is one line: {body:?}"
    );
    assert_eq!(
        server.snapshot(),
        before,
        "{shown}: the store or index changed"
    );
    assert_spool_empty(server);
}

fn assert_spool_empty(server: &TestServer) {
    let left: Vec<_> = std::fs::read_dir(server.data_dir.join("spool"))
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "spool files left behind: {left:?}");
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

#[test]
fn gnu_long_names_are_bounded_before_they_are_read() {
    // Tried: sdists whose `././@LongLink` record announces 1 GiB in a file of 2 KB, carries a
    // real 2 MB name, or carries 256 MiB of name gzipped to a few hundred KB (the attack that
    // took the server to 8 GiB, scaled down), and a long link name announcing 1 GiB.
    // Kept: a 400 naming the record and the bound, nothing stored, no spool file, and the
    // server's peak memory below 200 MB.
    let (server, _dir) = seeded_server(&base_config("", ""));
    let chunk = vec![b'a'; 1 << 20];
    let prefix = RawTar::sdist("longname", "1.0")
        .announce(b"././@LongLink", b'L', 256 << 20)
        .unfinished();
    let suffix = RawTar::default()
        .member("longname-1.0/x", b'0', b"x")
        .finish();
    let bomb = gzip_repeating(&prefix, &chunk, 256, &suffix);
    assert!(bomb.len() < 1 << 20, "the bomb is small: {}", bomb.len());
    assert_refused(
        &server,
        "longname-1.0.tar.gz",
        &bomb,
        400,
        "GNU long name of 268435456 bytes",
    );

    let peak = server.memory_bytes("VmHWM");
    assert!(peak < 200 << 20, "the server peaked at {} MB", peak >> 20);
    let announced = RawTar::sdist("longname", "1.0")
        .announce(b"././@LongLink", b'L', 1 << 30)
        .unfinished();
    let announced = gzip_repeating(&announced, b"", 0, b"");
    assert_refused(
        &server,
        "longname-1.0.tar.gz",
        &announced,
        400,
        "GNU long name of 1073741824 bytes; at most 4096 are read",
    );

    let real_name = format!("longname-1.0/{}", "a".repeat(2 << 20));
    let real = RawTar::sdist("longname", "1.0")
        .record(b"././@LongLink", b'L', real_name.as_bytes())
        .member("ignored-by-readers", b'0', b"x")
        .gzip();
    assert_refused(
        &server,
        "longname-1.0.tar.gz",
        &real,
        400,
        &format!("GNU long name of {} bytes", real_name.len()),
    );

    let long_link = RawTar::sdist("longname", "1.0")
        .announce(b"././@LongLink", b'K', 1 << 30)
        .unfinished();
    assert_refused(
        &server,
        "longname-1.0.tar.gz",
        &gzip_repeating(&long_link, b"", 0, b""),
        400,
        "GNU long link name of 1073741824 bytes",
    );
}

#[test]
fn pax_headers_are_bounded_and_their_size_is_the_one_counted() {
    // Tried: with a 16 MiB limit, 64 MiB of real zeros behind a PAX size over a header size
    // of 0 (readers unpack the PAX size); PAX headers announcing 1 GiB (local and global)
    // and a real 1 MB one; a PAX size of 6 GiB behind a header size of 0.
    // Kept: a 400 naming the bound broken, nothing stored, no spool file.
    let (small, _small_dir) = seeded_server(&base_config("", "max_unpacked_bytes = 16777216"));
    let prefix = RawTar::sdist("paxed", "1.0")
        .record(
            b"PaxHeader/big",
            b'x',
            &pax_record("size", &(64u64 << 20).to_string()),
        )
        .announce(b"paxed-1.0/big", b'0', 0)
        .unfinished();
    let end = RawTar::default().finish();
    let zeros = gzip_repeating(&prefix, &vec![0; 1 << 20], 64, &end);
    assert!(zeros.len() < 1 << 20, "the bomb is small: {}", zeros.len());
    assert_refused(
        &small,
        "paxed-1.0.tar.gz",
        &zeros,
        400,
        "would unpack to more than 16777216 bytes",
    );

    let (server, _dir) = seeded_server(&base_config("", ""));
    for (type_flag, kind) in [(b'x', "PAX header"), (b'g', "PAX global header")] {
        let announced = RawTar::sdist("paxed", "1.0")
            .announce(b"PaxHeader/x", type_flag, 1 << 30)
            .unfinished();
        assert_refused(
            &server,
            "paxed-1.0.tar.gz",
            &gzip_repeating(&announced, b"", 0, b""),
            400,
            &format!("{kind} of 1073741824 bytes; at most 65536 are read"),
        );
    }
    let comment = pax_record("comment", &"c".repeat(1 << 20));
    let real = RawTar::sdist("paxed", "1.0")
        .record(b"PaxHeader/x", b'x', &comment)
        .member("paxed-1.0/x", b'0', b"")
        .gzip();
    assert_refused(
        &server,
        "paxed-1.0.tar.gz",
        &real,
        400,
        &format!("PAX header of {} bytes", comment.len()),
    );
    let six_gib = RawTar::sdist("paxed", "1.0")
        .record(
            b"PaxHeader/big",
            b'x',
            &pax_record("size", &(6u64 << 30).to_string()),
        )
        .member("paxed-1.0/big", b'0', b"")
        .gzip();
    assert_refused(
        &server,
        "paxed-1.0.tar.gz",
        &six_gib,
        400,
        "would unpack to more than 4294967296 bytes",
    );
}

#[test]
fn members_that_readers_would_see_differently_are_refused() {
    // Tried: a directory whose "data" is a second header that `tarfile` would unpack and
    // the `tar` crate would skip; a global header renaming every later member; a GNU sparse
    // file announcing 6 GiB in 512 bytes; a PAX `GNU.sparse` map.
    // Kept: a 400 saying why, nothing stored, no spool file.
    let (server, _dir) = seeded_server(&base_config("", ""));
    let hidden = RawTar::default()
        .member("hidden-1.0/../../escaped", b'0', b"owned")
        .unfinished();
    let smuggled = RawTar::sdist("hidden", "1.0")
        .record(b"hidden-1.0/dir/", b'5', &hidden)
        .gzip();
    assert_refused(
        &server,
        "hidden-1.0.tar.gz",
        &smuggled,
        400,
        "is not a regular file but carries data",
    );

    let renaming = RawTar::default()
        .record(
            b"pax_global_header",
            b'g',
            &pax_record("path", "hidden-1.0/PKG-INFO"),
        )
        .raw(&RawTar::sdist("hidden", "1.0").unfinished())
        .gzip();
    assert_refused(
        &server,
        "hidden-1.0.tar.gz",
        &renaming,
        400,
        "sets a path, link or size for every later entry",
    );

    let mut sparse = tar_header(b"sparse-1.0/holes", b'S', 512, b"");
    let gnu = sparse.as_gnu_mut().unwrap();
    gnu.sparse[0].offset = *b"57777777000\0";
    gnu.sparse[0].numbytes = *b"00000001000\0";
    gnu.realsize = *b"60000000000\0";
    sparse.set_cksum();
    let sparse = RawTar::sdist("sparse", "1.0")
        .raw(sparse.as_bytes())
        .raw(&[b'x'; 512])
        .gzip();
    assert_refused(
        &server,
        "sparse-1.0.tar.gz",
        &sparse,
        400,
        "GNU sparse file",
    );

    let pax_sparse = RawTar::sdist("sparse", "1.0")
        .record(
            b"PaxHeader/holes",
            b'x',
            &pax_record("GNU.sparse.realsize", "6442450944"),
        )
        .member("sparse-1.0/holes", b'0', b"")
        .gzip();
    assert_refused(
        &server,
        "sparse-1.0.tar.gz",
        &pax_sparse,
        400,
        "GNU sparse file",
    );
}

#[test]
fn links_out_of_an_archive_are_refused_however_they_chain() {
    // Tried: symbolic links that each stay inside alone but leave the sdist's top directory
    // through an earlier or a later link; a PKG-INFO written again through a link to `.`;
    // an absolute target; a hard link to a symbolic link; a wheel whose zip entry is a
    // symbolic link (Unix mode) out of the install directory.
    // Kept: a 400 naming the link, nothing stored, no spool file; a link that stays inside
    // is still accepted.
    let (server, dir) = seeded_server(&base_config("", ""));
    let cases: [(RawTar, &str); 5] = [
        (
            RawTar::sdist("linked", "1.0")
                .link("linked-1.0/x", b'2', ".")
                .link("linked-1.0/d/y", b'2', "../x/.."),
            "`linked-1.0/d/y` is a link to `../x/..`, which resolves outside the archive",
        ),
        (
            RawTar::sdist("linked", "1.0")
                .link("linked-1.0/e", b'2', "x/..")
                .link("linked-1.0/x", b'2', "."),
            "`linked-1.0/e` is a link to `x/..`, which resolves outside the archive",
        ),
        (
            RawTar::sdist("linked", "1.0")
                .link("linked-1.0/docs", b'2', ".")
                .member(
                    "linked-1.0/docs/PKG-INFO",
                    b'0',
                    b"Metadata-Version: 2.2\nName: linked\nVersion: 6.6.6\n",
                ),
            "`linked-1.0/docs/PKG-INFO` would be written through the link `linked-1.0/docs`",
        ),
        (
            RawTar::sdist("linked", "1.0").link("linked-1.0/passwd", b'2', "/etc/passwd"),
            "is a link to `/etc/passwd`",
        ),
        (
            RawTar::sdist("linked", "1.0")
                .link("linked-1.0/a/s", b'2', "../x")
                .link("linked-1.0/h", b'1', "linked-1.0/a/s"),
            "`linked-1.0/h` is a hard link to the symbolic link `linked-1.0/a/s`",
        ),
    ];
    for (archive, message) in cases {
        assert_refused(&server, "linked-1.0.tar.gz", &archive.gzip(), 400, message);
    }

    let wheel = WheelSpec::new("zlinked", "1.0", "py3-none-any").write(dir.path());
    append_zip_symlink(&wheel, "zlinked/config", "../../../../etc/passwd");
    assert_refused(
        &server,
        "zlinked-1.0-py3-none-any.whl",
        &std::fs::read(&wheel).unwrap(),
        400,
        "`zlinked/config` is a link to `../../../../etc/passwd`",
    );

    let inside = RawTar::sdist("linked", "1.0")
        .member("linked-1.0/README", b'0', b"read me")
        .link("linked-1.0/docs/README", b'2', "../README")
        .gzip();
    let response = post(
        &server,
        form("linked-1.0.tar.gz", &inside, &[]),
        Some(UPLOAD_TOKEN),
    );
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
}

#[test]
fn a_long_hostile_name_gets_a_short_answer() {
    // Tried: a 65 KB filename, a 65 KB project name in an otherwise valid filename, a 65 KB
    // entry path and a 65 KB `Name:` in METADATA. Kept: a 400 of under 1 KB that quotes a
    // prefix of each, nothing stored, no spool file.
    let (server, dir) = seeded_server(&base_config("", ""));
    let long = "a".repeat(65_000);
    let bytes = wheel_bytes(dir.path(), &WheelSpec::new("short", "1.0", "py3-none-any"));
    assert_refused(
        &server,
        &format!("{long}.whl"),
        &bytes,
        400,
        "…` is not a wheel filename",
    );
    assert_refused(
        &server,
        &format!("{long}-1.0.tar.gz"),
        b"not gzip",
        400,
        "not a valid tar.gz archive",
    );

    let traversal = dir.path().join("long.whl");
    write_zip(&traversal, &[(format!("../{long}"), b"x".to_vec())]);
    assert_refused(
        &server,
        "long-1.0-py3-none-any.whl",
        &std::fs::read(&traversal).unwrap(),
        400,
        "is not a safe relative path",
    );

    let mut renamed = WheelSpec::new("renamed", "1.0", "py3-none-any");
    renamed.metadata_name = Some(&long);
    assert_refused(
        &server,
        "renamed-1.0-py3-none-any.whl",
        &wheel_bytes(dir.path(), &renamed),
        400,
        "but the filename is for `renamed`",
    );
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
