//! The remote-worker protocol against hostile peers. On the server: a lease belongs to the
//! token that took it, worker routes serve only that lease's inputs and stream them, and a
//! worker's words reach the log escaped. On the worker: a hostile server cannot make it
//! write or delete anything outside its work directory.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::UPLOAD_TOKEN;
use common::dists::{WheelSpec, noise, write_sdist};
use common::farm::{TARGET, build_config, request_build};
use common::server::{TestServer, base_config, binary};
use common::sha256_hex;

const TOKEN_A: &str = "worker-token-a-0123456789";
const TOKEN_B: &str = "worker-token-b-0123456789";
const ROOT_ID: &[u8] = b"fake builder root for the worker protocol tests\n";

/// A builder "root" the runc executor identifies by its id file. No build runs on it: these
/// tests play the worker's part by hand.
fn fake_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/edelweiss-root-id"), ROOT_ID).unwrap();
    root
}

/// A server with no in-process workers, two worker tokens, and `extra_build` keys.
fn server_with_two_worker_tokens(root: &Path, extra_build: &str, extra_auth: &str) -> TestServer {
    let root = root.display().to_string();
    let build = build_config("runc", &root, &root, 600)
        .replace("workers = 1", "workers = 0")
        .replace("[build]\n", &format!("[build]\n{extra_build}"));
    let config = base_config("", "").replace(
        "[auth]\n",
        &format!("[auth]\nworker_tokens = [\"{TOKEN_A}\", \"{TOKEN_B}\"]\n{extra_auth}"),
    ) + &build;
    TestServer::start_with(&config)
}

fn upload(server: &TestServer, files: &[&Path]) {
    let output = server.twine_upload(files);
    assert!(output.status.success(), "{}", common::text(&output));
}

fn lease(server: &TestServer, token: &str, worker: &str) -> serde_json::Value {
    let response = server
        .client()
        .post(format!("{}/api/v1/workers/lease", server.url))
        .bearer_auth(token)
        .json(&serde_json::json!({"worker": worker, "targets": [TARGET]}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "lease for {worker}");
    response.json().unwrap()
}

fn heartbeat(server: &TestServer, token: &str, id: &str, worker: &str) -> u16 {
    server
        .client()
        .post(format!(
            "{}/api/v1/workers/builds/{id}/heartbeat",
            server.url
        ))
        .bearer_auth(token)
        .json(&serde_json::json!({"worker": worker}))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Posts a result form; `wheel` makes it a success, else a package failure with `message`.
fn post_result(
    server: &TestServer,
    token: &str,
    id: &str,
    worker: &str,
    wheel: Option<&Path>,
    message: &str,
) -> u16 {
    let log = reqwest::blocking::multipart::Part::bytes(b"built elsewhere\n".to_vec())
        .file_name("build.log");
    let form = reqwest::blocking::multipart::Form::new()
        .text("worker", worker.to_string())
        .part("log", log);
    let form = match wheel {
        Some(wheel) => {
            let bytes = std::fs::read(wheel).unwrap();
            let name = wheel.file_name().unwrap().to_str().unwrap().to_string();
            form.text("outcome", "succeeded")
                .text("wheel_sha256", sha256_hex(&bytes))
                .part(
                    "wheel",
                    reqwest::blocking::multipart::Part::bytes(bytes).file_name(name),
                )
        }
        None => form
            .text("outcome", "package")
            .text("message", message.to_string()),
    };
    server
        .client()
        .post(format!("{}/api/v1/workers/builds/{id}/result", server.url))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn fetch(server: &TestServer, token: Option<&str>, path: &str) -> (u16, Vec<u8>) {
    let mut request = server.client().get(format!("{}{path}", server.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().unwrap().to_vec())
}

/// The fields of a build record that a refused request must leave as they were.
fn lease_state(server: &TestServer, id: &str) -> serde_json::Value {
    let build = server.get_json_plain(&format!("/api/v1/builds/{id}"));
    serde_json::json!([
        build["state"],
        build["lease"]["worker"],
        build["attempts"],
        build["wheel"],
        build["failure"]
    ])
}

#[test]
fn a_lease_belongs_to_the_token_that_took_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_two_worker_tokens(&fake_root(dir.path()), "", "");
    upload(
        &server,
        &[&write_sdist(dir.path(), "owned-ext", "1.0", &[])],
    );
    let id = request_build(&server, "owned-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let assignment = lease(&server, TOKEN_A, "worker-a");
    assert_eq!(assignment["build"]["id"], id.as_str());
    let before = lease_state(&server, &id);
    assert_eq!(before[1], "worker-a");
    let shown = server.get(&format!("/api/v1/builds/{id}")).text().unwrap();
    assert!(
        !shown.contains("credential"),
        "the build API shows which token holds the lease: {shown}"
    );

    // Token B sends token A's worker name: the name is no credential.
    let wheel =
        WheelSpec::new("owned-ext", "1.0", "cp313-cp313-musllinux_1_2_x86_64").write(dir.path());
    assert_eq!(heartbeat(&server, TOKEN_B, &id, "worker-a"), 403);
    assert_eq!(
        post_result(&server, TOKEN_B, &id, "worker-a", Some(&wheel), ""),
        403,
        "token B reported a wheel for token A's lease"
    );
    assert_eq!(
        post_result(&server, TOKEN_B, &id, "worker-a", None, "sabotage"),
        403,
        "token B failed token A's build"
    );
    assert_eq!(
        lease_state(&server, &id),
        before,
        "refused requests changed the build"
    );
    let wheel_digest = sha256_hex(&std::fs::read(&wheel).unwrap());
    assert!(
        !server
            .blobs()
            .iter()
            .any(|blob| blob.ends_with(&wheel_digest)),
        "token B's wheel was stored"
    );

    // What token A's worker sends still counts.
    assert_eq!(heartbeat(&server, TOKEN_A, &id, "worker-a"), 200);
    assert_eq!(
        post_result(&server, TOKEN_A, &id, "worker-a", Some(&wheel), ""),
        200
    );
    let build = server.get_json_plain(&format!("/api/v1/builds/{id}"));
    assert_eq!(build["state"], "succeeded");
    assert_eq!(
        server.listed_wheels("owned-ext"),
        ["owned_ext-1.0-cp313-cp313-musllinux_1_2_x86_64.whl"]
    );
}

#[test]
fn worker_routes_serve_only_the_inputs_of_the_requesting_tokens_lease() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("recipes.toml");
    std::fs::write(
        &recipes,
        "[default]\n[[recipe]]\nproject = \"scoped-ext\"\nbuild_requires = [\"helper-wheel==1.0\"]\n",
    )
    .unwrap();
    let server = server_with_two_worker_tokens(
        &fake_root(dir.path()),
        &format!("recipes = \"{}\"\n", recipes.display()),
        "read_requires_token = true\n",
    );
    let helper = WheelSpec::new("helper-wheel", "1.0", "py3-none-any").write(dir.path());
    let sdist = write_sdist(dir.path(), "scoped-ext", "1.0", &[]);
    // Readable only with a read or upload token: nothing a worker token may read.
    let private = write_sdist(dir.path(), "private-ext", "1.0", &[]);
    upload(&server, &[&helper, &sdist, &private]);
    let id = request_build(&server, "scoped-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let assignment = lease(&server, TOKEN_A, "worker-a");
    assert_eq!(assignment["build"]["id"], id.as_str());
    let helper_digest = assignment["wheelhouse"][0]["sha256"].as_str().unwrap();
    assert_eq!(helper_digest, sha256_hex(&std::fs::read(&helper).unwrap()));
    let sdist_bytes = std::fs::read(&sdist).unwrap();
    let private_digest = sha256_hex(&std::fs::read(&private).unwrap());

    let sdist_path = format!("/api/v1/workers/builds/{id}/sdist");
    let helper_path = format!("/api/v1/workers/blobs/{helper_digest}");
    let private_path = format!("/api/v1/workers/blobs/{private_digest}");
    // The lease holder gets its build's inputs.
    assert_eq!(
        fetch(&server, Some(TOKEN_A), &sdist_path),
        (200, sdist_bytes)
    );
    assert_eq!(
        fetch(&server, Some(TOKEN_A), &helper_path),
        (200, std::fs::read(&helper).unwrap())
    );
    // Nothing else, and nothing to another token.
    for (token, path) in [
        (TOKEN_A, &private_path),
        (TOKEN_B, &private_path),
        (TOKEN_B, &helper_path),
        (TOKEN_B, &sdist_path),
    ] {
        let (status, body) = fetch(&server, Some(token), path);
        assert_eq!(
            status,
            404,
            "{token} read {path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(fetch(&server, None, &helper_path).0, 401);
    // The upload itself is still there for a reader with the right token.
    let (status, _) = fetch(
        &server,
        Some(UPLOAD_TOKEN),
        &format!("/files/{private_digest}/private_ext-1.0.tar.gz"),
    );
    assert_eq!(status, 200);
}

#[test]
fn four_concurrent_fetches_of_a_large_sdist_are_streamed_not_buffered() {
    const BLOB: usize = 64 << 20;
    const READERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_two_worker_tokens(&fake_root(dir.path()), "", "");
    let payload = noise(BLOB);
    let sdist = write_sdist(
        dir.path(),
        "big-ext",
        "1.0",
        &[("big_ext-1.0/payload.bin", &payload)],
    );
    drop(payload);
    let expected = sha256_hex(&std::fs::read(&sdist).unwrap());
    upload(&server, &[&sdist]);
    let id = request_build(&server, "big-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    lease(&server, TOKEN_A, "worker-a");
    std::thread::sleep(Duration::from_millis(500));
    let baseline = server.memory_bytes("VmRSS");

    // Every reader has its response open and has read its first bytes; none has read the
    // rest. A server that reads the blob whole holds READERS copies now.
    let started = Arc::new(Barrier::new(READERS + 1));
    let measured = Arc::new(Barrier::new(READERS + 1));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (started, measured) = (started.clone(), measured.clone());
            let (client, url) = (
                server.client(),
                format!("{}/api/v1/workers/builds/{id}/sdist", server.url),
            );
            std::thread::spawn(move || {
                let mut response = client.get(url).bearer_auth(TOKEN_A).send().unwrap();
                assert_eq!(response.status(), 200);
                let mut body = vec![0u8; 64 << 10];
                response.read_exact(&mut body).unwrap();
                started.wait();
                measured.wait();
                response.read_to_end(&mut body).unwrap();
                sha256_hex(&body)
            })
        })
        .collect();
    started.wait();
    std::thread::sleep(Duration::from_millis(500));
    let during = server.memory_bytes("VmRSS");
    measured.wait();
    for reader in readers {
        assert_eq!(reader.join().unwrap(), expected, "a reader got other bytes");
    }
    let growth = during.saturating_sub(baseline);
    assert!(
        growth < (BLOB as u64) / 2,
        "the server grew by {} MiB while serving {READERS} fetches of a {} MiB sdist: it buffers blobs",
        growth >> 20,
        BLOB >> 20
    );
}

#[test]
fn a_workers_failure_message_cannot_forge_log_lines() {
    const FORGED: &str = "2026-12-01T00:00:00Z INFO forged";
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_two_worker_tokens(&fake_root(dir.path()), "", "");
    upload(
        &server,
        &[&write_sdist(dir.path(), "forging-ext", "1.0", &[])],
    );
    let id = request_build(&server, "forging-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let worker = format!("w\n{FORGED} name\x1b[2J");
    lease(&server, TOKEN_A, &worker);
    let message = format!("x\n{FORGED} line\x1b[31m\r\u{202e}");
    assert_eq!(
        post_result(&server, TOKEN_A, &id, &worker, None, &message),
        200
    );
    let build = server.get_json_plain(&format!("/api/v1/builds/{id}"));
    assert_eq!(build["state"], "failed");
    let stored = build["failure"]["message"].as_str().unwrap();
    assert_eq!(
        stored,
        format!("x\\n{FORGED} line\\u{{1b}}[31m\\r\\u{{202e}}"),
        "the message is kept, escaped"
    );

    let log = server.log();
    assert!(
        log.contains(&format!("x\\n{FORGED} line\\u{{1b}}[31m")),
        "the failure was not logged escaped:\n{log}"
    );
    for line in log.lines() {
        assert!(!line.starts_with(FORGED), "a forged log line: {line:?}");
    }
    assert!(!log.contains('\x1b'), "the log carries an escape sequence");
    assert!(!log.contains('\r'), "the log carries a carriage return");
}

/// A worker's "missing-wheel" report names the requirement the farm should build. It is
/// parsed as a PEP 508 requirement on an index project before anything acts on it: a URL
/// or garbage is refused with 400 and the lease stays as it was; a sound requirement that no
/// release satisfies fails the build as the package's, and no other build is queued.
#[test]
fn a_workers_missing_wheel_report_is_parsed_before_the_farm_acts_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_two_worker_tokens(&fake_root(dir.path()), "", "");
    upload(
        &server,
        &[&write_sdist(dir.path(), "needy-ext", "1.0", &[])],
    );
    let id = request_build(&server, "needy-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    lease(&server, TOKEN_A, "w1");
    let report = |requirement: &str| {
        let form = reqwest::blocking::multipart::Form::new()
            .text("worker", "w1")
            .text("outcome", "missing-wheel")
            .text("message", "the wheel's runtime dependencies: no wheel")
            .text("requirement", requirement.to_string());
        server
            .client()
            .post(format!("{}/api/v1/workers/builds/{id}/result", server.url))
            .bearer_auth(TOKEN_A)
            .multipart(form)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let before = lease_state(&server, &id);
    for hostile in [
        "evil @ https://attacker.example/evil-1.0.tar.gz",
        "../../etc/passwd",
        "",
        &"x".repeat(5_000),
    ] {
        assert_eq!(report(hostile), 400, "{hostile:.40}");
        assert_eq!(
            lease_state(&server, &id),
            before,
            "{hostile:.40} changed the build"
        );
    }
    assert_eq!(report("absent-dependency>=1"), 200);
    let build = server.get_json_plain(&format!("/api/v1/builds/{id}"));
    assert_eq!(build["state"], "failed", "{build}");
    assert_eq!(build["failure"]["kind"], "package", "{build}");
    let message = build["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("no release of absent-dependency"),
        "{message}"
    );
    let builds = server.get_json_plain("/api/v1/builds")["builds"].clone();
    assert_eq!(builds.as_array().unwrap().len(), 1, "{builds}");
}

// ---- The worker against a hostile server ----------------------------------------------

/// What the fake server was asked.
#[derive(Default)]
struct Seen {
    leases: usize,
    /// (path, body) of every result.
    results: Vec<(String, String)>,
}

/// A worker API that hands out `offers` in order, then nothing; serves `blobs` to any GET
/// that ends in a known digest or in `/sdist`; and records results.
struct HostileServer {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

impl HostileServer {
    fn start(offers: Vec<serde_json::Value>, sdist: Vec<u8>, wheel: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = (Arc::new(Mutex::new(offers)), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = Self::answer(stream, &state.0, &state.1, &sdist, &wheel);
            }
        });
        Self { url, seen }
    }

    fn answer(
        stream: TcpStream,
        offers: &Mutex<Vec<serde_json::Value>>,
        seen: &Mutex<Seen>,
        sdist: &[u8],
        wheel: &[u8],
    ) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (status, response): (&str, Vec<u8>) = match method {
            "POST" if path.ends_with("/lease") => {
                seen.lock().unwrap().leases += 1;
                let mut offers = offers.lock().unwrap();
                if offers.is_empty() {
                    ("204 No Content", Vec::new())
                } else {
                    ("200 OK", offers.remove(0).to_string().into_bytes())
                }
            }
            "POST" if path.ends_with("/result") => {
                let text = String::from_utf8_lossy(&body).into_owned();
                seen.lock().unwrap().results.push((path.to_string(), text));
                ("200 OK", b"{}".to_vec())
            }
            "POST" => ("200 OK", Vec::new()),
            "GET" if path.ends_with("/sdist") || path.ends_with(&sha256_hex(sdist)) => {
                ("200 OK", sdist.to_vec())
            }
            "GET" if path.ends_with(&sha256_hex(wheel)) => ("200 OK", wheel.to_vec()),
            _ => ("404 Not Found", Vec::new()),
        };
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            response.len()
        )?;
        stream.write_all(&response)?;
        stream.flush()
    }
}

/// An assignment the worker would build on `root`: each hostile one differs in one value.
fn assignment(id: &str, root: &Path, sdist: &[u8], wheel: &[u8]) -> serde_json::Value {
    let root = root.display().to_string();
    serde_json::json!({
        "build": {
            "id": id, "key": sha256_hex(b"build key"), "project": "canary-ext", "version": "1.0", "target": TARGET,
            "sdist_filename": "canary_ext-1.0.tar.gz", "sdist_sha256": sha256_hex(sdist),
            "builder": format!("rootfs:{}", sha256_hex(ROOT_ID)), "state": "running",
            "lease": null, "attempts": 1, "failure": null, "wheel": null,
            "queued_at": "2026-12-01T00:00:00Z", "started_at": null, "finished_at": null,
            "log_sha256": null
        },
        "recipe": {"apk": [], "env": {}, "import_check": "", "build_requires": [], "version_must_match": ""},
        "wheelhouse": [{"filename": "helper_wheel-1.0-py3-none-any.whl", "sha256": sha256_hex(wheel)}],
        "builder": root, "runtime": root, "lease_seconds": 30
    })
}

struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_hostile_server_cannot_make_a_worker_touch_paths_outside_its_work_directory() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path();
    let root = fake_root(outside);
    let work = outside.join("work");
    // Canaries beside the work directory: a build id that is a path would delete them.
    for canary in ["canary", "absolute-canary"] {
        std::fs::create_dir_all(outside.join(canary)).unwrap();
        std::fs::write(outside.join(canary).join("keep"), b"kept").unwrap();
    }
    let (sdist, wheel) = (b"sdist bytes".to_vec(), b"wheel bytes".to_vec());
    let with = |id: &str, change: &dyn Fn(&mut serde_json::Value)| {
        let mut offer = assignment(id, &root, &sdist, &wheel);
        change(&mut offer);
        offer
    };
    let same = |_: &mut serde_json::Value| {};
    let escaped = |name: &str| outside.join(name).display().to_string();
    let offers = vec![
        // work/builds/../../canary is the canary.
        with("../../canary", &same),
        with(&escaped("absolute-canary"), &same),
        with("b\u{1b}[31m\n2026-12-01T00:00:00Z INFO forged\0", &same),
        with("b00000000000000a1", &|offer| {
            offer["build"]["sdist_filename"] = escaped("escaped-sdist.tar.gz").into();
        }),
        with("b00000000000000a2", &|offer| {
            offer["wheelhouse"][0]["filename"] = "../../../../escaped-wheel.whl".into();
        }),
        with("b00000000000000a3", &|offer| {
            offer["wheelhouse"][0]["filename"] = escaped("absolute-wheel.whl").into();
        }),
        with("b00000000000000a4", &|offer| {
            offer["wheelhouse"][0]["sha256"] = "../../not-a-digest".into();
        }),
    ];
    let hostile_offers = offers.len();
    let server = HostileServer::start(offers, sdist.clone(), wheel.clone());
    std::fs::create_dir_all(&work).unwrap();
    let log_path = outside.join("worker.log");
    let mut worker = KilledOnDrop(
        Command::new(binary())
            .args(["worker", "--server", &server.url, "--token", TOKEN_A])
            .args([
                "--executor",
                "runc",
                "--target",
                &common::farm::worker_target(common::farm::Runtime::Runc),
                "--name",
                "hostile-test",
            ])
            .args(["--poll-seconds", "1", "--work"])
            .arg(&work)
            .env("EDELWEISS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("start edelweiss worker"),
    );

    // The worker has seen every offer once it asks again after the last.
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.seen.lock().unwrap().leases <= hostile_offers {
        assert!(
            Instant::now() < deadline,
            "the worker stopped asking for work:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the worker exited on a hostile assignment"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();

    for canary in ["canary", "absolute-canary"] {
        assert_eq!(
            std::fs::read(outside.join(canary).join("keep"))
                .ok()
                .as_deref(),
            Some(&b"kept"[..]),
            "a build id deleted {canary} outside the work directory:\n{log}"
        );
    }
    for name in [
        "escaped-sdist.tar.gz",
        "escaped-wheel.whl",
        "absolute-wheel.whl",
    ] {
        assert!(
            !outside.join(name).exists(),
            "a server-sent filename wrote {name} outside the work directory:\n{log}"
        );
    }
    // Each refusal is one line; the three with a sound id are reported so the server can
    // retry them elsewhere, the others cannot be named to the server at all.
    assert_eq!(log.matches("refused a lease: ").count(), 3, "{log}");
    let results = &server.seen.lock().unwrap().results;
    let mut reported: Vec<&str> = results
        .iter()
        .map(|(path, body)| {
            assert!(body.contains("infrastructure"), "{path}: {body}");
            path.as_str()
        })
        .collect();
    reported.sort();
    assert_eq!(
        reported,
        [
            "/api/v1/workers/builds/b00000000000000a1/result",
            "/api/v1/workers/builds/b00000000000000a2/result",
            "/api/v1/workers/builds/b00000000000000a3/result",
            "/api/v1/workers/builds/b00000000000000a4/result",
        ]
    );
    assert!(
        log.contains("refused the lease of build b00000000000000a1: the sdist filename"),
        "{log}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with("2026-12-01T00:00:00Z"),
            "a forged line: {line:?}"
        );
    }
    assert!(
        !log.contains('\x1b'),
        "the worker log carries an escape sequence"
    );
}
