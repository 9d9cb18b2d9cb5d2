//! PyPI's JSON API over the index's own records: `pip-compile --generate-hashes` (pip-tools)
//! takes every file's digest from it and downloads no file of the projects it pins, for
//! files uploaded here, mirrored with the upstream's metadata, and mirrored without it.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::dists::{WheelSpec, write_sdist};
use common::server::{TestServer, base_config};
use common::upstream::{UpstreamServer, UpstreamTree};
use common::{assert_success, client_tools, poll_until, sha256_hex, text};

const TARGET: &str = "cp313-musllinux_1_2_x86_64";

fn sha_of(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

/// `route`'s requests of any status so far, from the server's metrics.
fn requests(server: &TestServer, route: &str) -> u64 {
    let body = server.get("/metrics").text().unwrap();
    let prefix = format!("edelweiss_http_requests_total{{route=\"{route}\",");
    body.lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Upstream requests for files (not metadata files) so far.
fn upstream_file_requests(upstream: &UpstreamServer) -> u64 {
    let stats = upstream.stats();
    stats
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.starts_with("/files/") && !key.contains(' '))
        .filter(|(key, _)| !key.ends_with(".metadata"))
        .map(|(_, count)| count.as_u64().unwrap())
        .sum()
}

/// `pip-compile --generate-hashes` from pip-tools in the client venv.
fn pip_compile(index_url: &str, work: &Path, requirements: &str) -> String {
    let pip_compile = client_tools().join("pip-compile");
    assert!(
        pip_compile.exists(),
        "pip-compile not found in {}: run .ci/setup (it installs .ci/client-requirements.txt)",
        client_tools().display()
    );
    let input = work.join("requirements.in");
    let output = work.join("requirements.txt");
    std::fs::write(&input, requirements).unwrap();
    let mut command = common::tool("pip-compile");
    command
        .args([
            "--generate-hashes",
            "--no-header",
            "--no-annotate",
            "--quiet",
        ])
        .args(["--index-url", index_url, "--cache-dir"])
        .arg(work.join("pip-tools-cache"))
        .arg("-o")
        .arg(&output)
        .arg(&input);
    assert_success(&mut command);
    std::fs::read_to_string(output).unwrap()
}

/// The `--hash=sha256:…` values pinned under `pin` in a compiled requirements file.
fn pinned_hashes(compiled: &str, pin: &str) -> BTreeSet<String> {
    let mut lines = compiled.lines().skip_while(|line| !line.starts_with(pin));
    lines
        .next()
        .unwrap_or_else(|| panic!("{pin} is not pinned:\n{compiled}"));
    lines
        .take_while(|line| line.starts_with("    --hash="))
        .map(|line| {
            line.trim()
                .trim_end_matches(" \\")
                .trim_start_matches("--hash=sha256:")
                .to_string()
        })
        .collect()
}

fn shas(paths: &[&PathBuf]) -> BTreeSet<String> {
    paths.iter().map(|path| sha_of(path)).collect()
}

struct Fixture {
    work: tempfile::TempDir,
    upstream: UpstreamServer,
    server: TestServer,
    app: Vec<PathBuf>,
    dep_old: Vec<PathBuf>,
    dep: Vec<PathBuf>,
    bare: PathBuf,
    local: Vec<PathBuf>,
}

/// hash-app 1.0 (wheel, sdist) needs hash-dep (1.0; 2.0 with musllinux, manylinux and
/// pure wheels and an sdist), hash-bare (an upstream that publishes no metadata) and
/// hash-local (uploaded here).
fn fixture() -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    let mut app_wheel = WheelSpec::new("hash-app", "1.0", "py3-none-any");
    app_wheel.requires_dist = &["hash-dep>=2", "hash-bare", "hash-local"];
    let app = vec![
        app_wheel.write(&dists),
        write_sdist(&dists, "hash-app", "1.0", &[]),
    ];
    let dep_old = vec![WheelSpec::new("hash-dep", "1.0", "py3-none-any").write(&dists)];
    // No Requires-Python: pip-tools hashes every file of a release its interpreter could
    // take, whatever the platform.
    let mut dep: Vec<PathBuf> = [
        "cp313-cp313-musllinux_1_2_x86_64",
        "cp313-cp313-manylinux_2_17_x86_64",
        "py3-none-any",
    ]
    .iter()
    .map(|tag| WheelSpec::new("hash-dep", "2.0", tag).write(&dists))
    .collect();
    dep.push(write_sdist(&dists, "hash-dep", "2.0", &[]));
    let bare = WheelSpec::new("hash-bare", "1.0", "py3-none-any").write(&dists);
    tree.publish("hash-app", &app);
    tree.publish("hash-dep", &[dep_old.clone(), dep.clone()].concat());
    tree.publish_without_metadata("hash-bare", std::slice::from_ref(&bare));
    let upstream = UpstreamServer::start(&tree, "json");
    let config =
        base_config("", "").replace("[limits]", "[on_demand]\nwheels_only = true\n[limits]");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config);
    let local_dir = work.path().join("local");
    std::fs::create_dir_all(&local_dir).unwrap();
    let local = vec![
        WheelSpec::new("hash-local", "0.5", "py3-none-any").write(&local_dir),
        write_sdist(&local_dir, "hash-local", "0.5", &[]),
    ];
    let uploaded = server.twine_upload(&local.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert!(uploaded.status.success(), "{}", text(&uploaded));
    Fixture {
        work,
        upstream,
        server,
        app,
        dep_old,
        dep,
        bare,
        local,
    }
}

#[test]
fn pip_compile_generate_hashes_takes_every_digest_from_the_json_api_and_downloads_nothing() {
    let fixture = fixture();
    let (server, upstream) = (&fixture.server, &fixture.upstream);
    // hash-bare's upstream publishes no metadata: pulled through once, its METADATA is
    // read, and from then on resolvers need not download it either.
    let bare_url = format!(
        "/files/{}/hash_bare-1.0-py3-none-any.whl",
        sha_of(&fixture.bare)
    );
    server.get_json("/simple/hash-bare/");
    assert_eq!(server.get(&bare_url).status(), 200);
    poll_until(
        std::time::Duration::from_secs(60),
        "hash-bare's metadata read",
        || server.metric("edelweiss_metadata_extractions_total{result=\"stored\"}") == 1,
    );

    let files_before = requests(server, "file");
    let upstream_before = upstream_file_requests(upstream);
    let compiled = pip_compile(&server.index_url(), fixture.work.path(), "hash-app\n");
    assert_eq!(
        pinned_hashes(&compiled, "hash-app==1.0"),
        shas(&fixture.app.iter().collect::<Vec<_>>())
    );
    assert_eq!(
        pinned_hashes(&compiled, "hash-dep==2.0"),
        shas(&fixture.dep.iter().collect::<Vec<_>>()),
        "every file of the pinned release, any platform, and none of 1.0"
    );
    assert_eq!(
        pinned_hashes(&compiled, "hash-bare==1.0"),
        shas(&[&fixture.bare])
    );
    assert_eq!(
        pinned_hashes(&compiled, "hash-local==0.5"),
        shas(&fixture.local.iter().collect::<Vec<_>>())
    );
    assert_eq!(
        requests(server, "file"),
        files_before,
        "pip-compile downloaded no file from edelweiss:\n{compiled}"
    );
    assert_eq!(upstream_file_requests(upstream), upstream_before);
    assert!(
        requests(server, "file_metadata") >= 4,
        "it resolved from metadata files"
    );
    assert!(
        requests(server, "pypi_project") >= 4,
        "it asked the JSON API for each pin"
    );
}

#[test]
fn the_json_api_lists_what_the_simple_page_lists_with_its_digests() {
    let fixture = fixture();
    let server = &fixture.server;
    let document = server.get_json_plain("/pypi/Hash_Dep/json");
    assert_eq!(document["info"]["version"], "2.0");
    assert_eq!(document["info"]["name"], "hash-dep");
    let releases = document["releases"].as_object().unwrap();
    assert_eq!(releases.keys().collect::<Vec<_>>(), ["1.0", "2.0"]);
    let page = server.get_json("/simple/hash-dep/");
    let listed: Vec<&serde_json::Value> = page["files"].as_array().unwrap().iter().collect();
    for (release, paths) in [("1.0", &fixture.dep_old), ("2.0", &fixture.dep)] {
        let files = releases[release].as_array().unwrap();
        assert_eq!(files.len(), paths.len(), "{release}");
        for path in paths.iter() {
            let filename = path.file_name().unwrap().to_str().unwrap();
            let file = files
                .iter()
                .find(|file| file["filename"] == filename)
                .unwrap();
            let on_page = listed
                .iter()
                .find(|file| file["filename"] == filename)
                .unwrap();
            assert_eq!(file["digests"]["sha256"], sha_of(path));
            assert_eq!(
                file["url"],
                format!("{}{}", server.url, on_page["url"].as_str().unwrap())
            );
            assert_eq!(file["size"], std::fs::metadata(path).unwrap().len());
            let kind = if filename.ends_with(".whl") {
                "bdist_wheel"
            } else {
                "sdist"
            };
            assert_eq!(file["packagetype"], kind);
            let fetched = server.get(
                file["url"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(&server.url),
            );
            assert_eq!(sha256_hex(&fetched.bytes().unwrap()), sha_of(path));
        }
    }
    assert_eq!(document["urls"], releases["2.0"]);
    assert_eq!(document["info"]["summary"], serde_json::Value::Null);
    // Now that its wheels are stored, their metadata fills `info`.
    let document = server.get_json_plain("/pypi/hash-dep/json");
    assert_eq!(document["info"]["summary"], "test distribution");
    assert_eq!(
        document["releases"],
        serde_json::Value::Object(releases.clone())
    );

    let release = server.get_json_plain("/pypi/hash-dep/1.0/json");
    assert_eq!(release["info"]["version"], "1.0");
    assert_eq!(release["urls"], releases["1.0"]);
    assert!(release.get("releases").is_none());

    // hash-app's wheel metadata is read for `info` once held here.
    let app_page = server.get_json("/simple/hash-app/");
    let wheel = app_page["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["filename"] == "hash_app-1.0-py3-none-any.whl")
        .unwrap();
    assert_eq!(
        server
            .get(&format!("{}.metadata", wheel["url"].as_str().unwrap()))
            .status(),
        200
    );
    let app = server.get_json_plain("/pypi/hash-app/json");
    assert_eq!(
        app["info"]["requires_dist"],
        serde_json::json!(["hash-dep>=2", "hash-bare", "hash-local"])
    );
    assert_eq!(app["info"]["summary"], "test distribution");

    // The spellings pip-tools derives from an index URL, and the target view.
    for path in ["/hash-dep/json", "/simple/pypi/hash-dep/json"] {
        assert_eq!(server.get_json_plain(path), document, "{path}");
    }
    let target = server.get_json_plain(&format!("/t/{TARGET}/hash-dep/json"));
    let target_files = target["releases"]["2.0"].as_array().unwrap();
    assert_eq!(
        target_files.len(),
        3,
        "wheels_only leaves the sdist off: {target}"
    );
    assert!(
        target_files
            .iter()
            .all(|file| file["packagetype"] == "bdist_wheel")
    );
    assert_eq!(
        server.get_json_plain(&format!("/t/{TARGET}/pypi/hash-dep/2.0/json"))["urls"],
        target["urls"]
    );
    assert_eq!(
        server.get_json_plain(&format!("/t/{TARGET}/simple/pypi/hash-dep/json")),
        target
    );

    let local = server.get_json_plain("/pypi/hash-local/json");
    assert_eq!(local["info"]["version"], "0.5");
    assert_eq!(local["urls"].as_array().unwrap().len(), 2);

    for missing in [
        "/pypi/no-such-project/json",
        "/pypi/hash-dep/3.0/json",
        "/pypi/hash-dep/not-a-version/json",
        "/t/not-a-target/pypi/hash-dep/json",
    ] {
        assert_eq!(server.get(missing).status(), 404, "{missing}");
    }
    let hostile = server
        .client()
        .get(format!("{}/pypi/hash-dep/json", server.url))
        .header("Host", "evil.example/<script>")
        .send()
        .unwrap();
    assert_eq!(hostile.status(), 400);
}

#[test]
fn the_json_api_needs_a_read_token_when_pages_do() {
    let work = tempfile::tempdir().unwrap();
    let config = base_config("", "").replace(
        "[auth]\n",
        "[auth]\nread_requires_token = true\nread_tokens = [\"reader-token-0123456789\"]\n",
    );
    let server = TestServer::start_with(&config);
    let wheel = WheelSpec::new("secret", "1.0", "py3-none-any").write(work.path());
    let uploaded = server.twine_upload(&[&wheel]);
    assert!(uploaded.status.success(), "{}", text(&uploaded));
    assert_eq!(server.get("/pypi/secret/json").status(), 401);
    let answer = server
        .client()
        .get(format!("{}/pypi/secret/json", server.url))
        .bearer_auth("reader-token-0123456789")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private"),
        "a protected answer stays out of shared caches"
    );
    let document: serde_json::Value = answer.json().unwrap();
    assert_eq!(document["urls"][0]["digests"]["sha256"], sha_of(&wheel));
}
