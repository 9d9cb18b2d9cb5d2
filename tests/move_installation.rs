//! `edelweiss migrate --from-data-dir`: an installation filled through a real server (twine
//! uploads, a yank, a mirrored page and file, a build leased by a worker) moved to
//! PostgreSQL and S3, served from there, moved again without duplicates, and a corrupted
//! blob refused by name; the old data directory is never changed.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::UPLOAD_TOKEN;
use common::dists::{WheelSpec, write_sdist};
use common::farm::{Runtime, TARGET, WORKER_TOKEN, c_extension_sdist, request_build};
use common::postgres::TestDatabase;
use common::s3::S3Server;
use common::server::{TestServer, binary};
use common::upstream::{UpstreamServer, UpstreamTree};

/// The remote-worker config of the build tests, its mirrored pages fresh for ten minutes,
/// with `top` (the stores) in front.
fn config(top: &str) -> String {
    let (builder, runtime) = Runtime::Runc.builders();
    let config = common::farm::remote_workers_config("runc", &builder, &runtime)
        .replace("[limits]", "[mirror]\npage_ttl_seconds = 600\n[limits]");
    format!("{top}\n{config}")
}

fn stores(database: &TestDatabase, s3: &S3Server, prefix: &str) -> String {
    format!(
        "metadata_url = {:?}\nstorage_url = {:?}",
        database.url,
        s3.storage_url(prefix)
    )
}

/// `edelweiss migrate --from-data-dir old_dir` into `database` and the bucket under `prefix`.
fn move_installation(
    old_dir: &Path,
    database: &TestDatabase,
    s3: &S3Server,
    prefix: &str,
) -> Output {
    Command::new(binary())
        .arg("migrate")
        .arg("--from-data-dir")
        .arg(old_dir)
        .env("EDELWEISS_METADATA_URL", &database.url)
        .env("EDELWEISS_STORAGE_URL", s3.storage_url(prefix))
        .envs(s3.env())
        .output()
        .expect("run edelweiss migrate")
}

/// The sha256 of every file under `dir`, by path.
fn hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                found.insert(path, common::sha256_hex(&bytes));
            }
        }
    }
    found
}

/// SIGTERM, then waits until the process has exited (its database closed and flushed).
fn stop(server: &mut TestServer) {
    let pid = server.pid().expect("a child process");
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    common::poll_until(Duration::from_secs(30), "the server to exit", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.split(") ")
            .nth(1)
            .is_none_or(|rest| rest.starts_with('Z'))
    });
    server.kill();
}

fn yank(server: &TestServer, project: &str, filename: &str) {
    let response = server
        .client()
        .put(format!(
            "{}/api/v1/projects/{project}/files/{filename}/yank",
            server.url
        ))
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({"reason": "broken"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn lease(server: &TestServer) -> serde_json::Value {
    let response = server
        .client()
        .post(format!("{}/api/v1/workers/lease", server.url))
        .bearer_auth(WORKER_TOKEN)
        .json(&serde_json::json!({"worker": "old-worker", "targets": [TARGET]}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().unwrap()
}

fn pip_install(server: &TestServer, target: &Path, requirement: &str) {
    let mut pip = common::tool("pip");
    pip.args(["install", "--no-deps", "--target"])
        .arg(target)
        .args(["--index-url", &server.index_url(), requirement]);
    common::assert_success(&mut pip);
}

/// What a page lists: each file's name, sha256 and yank.
fn listing(server: &TestServer, project: &str) -> Vec<String> {
    let page = server.get_json(&format!("/simple/{project}/"));
    let files = page["files"].as_array().expect("files");
    files
        .iter()
        .map(|file| {
            format!(
                "{} {} yanked={}",
                file["filename"], file["hashes"]["sha256"], file["yanked"]
            )
        })
        .collect()
}

/// The installation to move: uploads, a yank, a mirrored page and wheel, a leased build.
struct Filled {
    server: TestServer,
    upstream: UpstreamServer,
    build_id: String,
    sdist_sha256: String,
    listings: Vec<Vec<String>>,
}

const PROJECTS: [&str; 3] = ["movedpkg", "moved-ext", "mirrored"];

fn fill(work: &Path) -> Filled {
    let tree = UpstreamTree::new(&work.join("tree"));
    let upstream_dists = work.join("upstream-dists");
    std::fs::create_dir_all(&upstream_dists).unwrap();
    let mirrored = [
        WheelSpec::new("mirrored", "3.0", "py3-none-any").write(&upstream_dists),
        write_sdist(&upstream_dists, "mirrored", "3.0", &[]),
    ];
    tree.publish("mirrored", &mirrored);
    let upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config(""));

    let dists = work.join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let wheels = [
        WheelSpec::new("movedpkg", "1.0", "py3-none-any").write(&dists),
        WheelSpec::new("movedpkg", "2.0", "py3-none-any").write(&dists),
    ];
    let sdist = c_extension_sdist(&dists, "moved-ext", "");
    let uploaded = server.twine_upload(&[&wheels[0], &wheels[1], &sdist]);
    assert!(uploaded.status.success(), "{}", common::text(&uploaded));
    yank(&server, "movedpkg", "movedpkg-2.0-py3-none-any.whl");
    // The mirrored wheel is fetched, so its blob and its METADATA's are stored here.
    server.listed_file("mirrored", "mirrored-3.0-py3-none-any.whl");

    let build_id = request_build(&server, "moved-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(lease(&server)["build"]["id"], build_id.as_str());
    let listings = PROJECTS
        .iter()
        .map(|project| listing(&server, project))
        .collect();
    Filled {
        server,
        upstream,
        build_id,
        sdist_sha256: common::sha256_hex(&std::fs::read(&sdist).unwrap()),
        listings,
    }
}

#[test]
fn a_data_directory_moves_to_postgres_and_s3_and_is_left_untouched() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let Some(s3) = S3Server::shared() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut old = fill(work.path());
    let old_dir = old.server.data_dir.clone();
    let prefix = format!("moved-{}", uuid::Uuid::new_v4());

    let refused = move_installation(&old_dir, &database, s3, &prefix);
    assert!(!refused.status.success());
    assert!(
        common::text(&refused).contains("held by a running edelweiss"),
        "{}",
        common::text(&refused)
    );
    stop(&mut old.server);
    let before = hashes(&old_dir);

    let moved = move_installation(&old_dir, &database, s3, &prefix);
    assert!(moved.status.success(), "{}", common::text(&moved));
    let summary = String::from_utf8_lossy(&moved.stdout).into_owned();
    assert_eq!(
        hashes(&old_dir),
        before,
        "the old data directory is unchanged"
    );
    // Three uploads and the METADATA of the two wheels; the mirrored wheel and its METADATA.
    for line in [
        "blobs: 7 copied, 0 already present; all 7 verified by reading them back",
        "projects: 2; files: 3 copied, 0 already present (0 yanks updated)",
        "mirrored pages: 1 copied, 0 already present; extracted metadata: 1 copied, 0 already present",
        "builds: 1 copied (1 running, queued again), 0 already present; build keys: 1 copied, 0 already present",
    ] {
        assert!(summary.contains(line), "{line}\n{summary}");
    }

    let new = TestServer::mirroring_with_env(
        &[&old.upstream.simple_url()],
        &config(&stores(&database, s3, &prefix)),
        s3.env(),
    );
    let pages_fetched = old.upstream.count("/simple/mirrored/");
    let listings: Vec<Vec<String>> = PROJECTS
        .iter()
        .map(|project| listing(&new, project))
        .collect();
    assert_eq!(listings, old.listings);
    assert_eq!(
        old.upstream.count("/simple/mirrored/"),
        pages_fetched,
        "the mirrored page is served from the moved record"
    );
    let installed = work.path().join("installed");
    pip_install(&new, &installed, "movedpkg");
    assert_eq!(
        std::fs::read_to_string(installed.join("movedpkg/__init__.py")).unwrap(),
        "VERSION = \"1.0\"\n",
        "2.0 is still yanked, so pip takes 1.0"
    );
    pip_install(&new, &installed, "mirrored==3.0");
    let sdist = new.listed_file("moved-ext", "moved_ext-1.0.tar.gz");
    assert_eq!(common::sha256_hex(&sdist), old.sdist_sha256);
    let build = new.get_json_plain(&format!("/api/v1/builds/{}", old.build_id));
    assert_eq!(
        build["state"], "queued",
        "the build a worker held is queued again"
    );

    let again = move_installation(&old_dir, &database, s3, &prefix);
    assert!(again.status.success(), "{}", common::text(&again));
    let summary = String::from_utf8_lossy(&again.stdout).into_owned();
    for line in [
        "blobs: 0 copied, 7 already present",
        "projects: 2; files: 0 copied, 3 already present (0 yanks updated)",
        "mirrored pages: 0 copied, 1 already present; extracted metadata: 0 copied, 1 already present",
        "builds: 0 copied (0 running, queued again), 1 already present; build keys: 0 copied, 1 already present",
    ] {
        assert!(summary.contains(line), "{line}\n{summary}");
    }
    for (table, rows) in [
        ("index_projects", 2),
        ("index_files", 3),
        ("mirror_pages", 1),
        ("mirror_extracted_metadata", 1),
        ("build_records", 1),
        ("build_keys", 1),
    ] {
        let count = database.select(&format!("SELECT count(*) FROM {table}"));
        assert_eq!(count, [rows.to_string()], "{table}");
    }
    assert_eq!(
        hashes(&old_dir),
        before,
        "the old data directory is unchanged"
    );
}

#[test]
fn a_corrupt_blob_fails_the_move_naming_it() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let Some(s3) = S3Server::shared() else {
        return;
    };
    let mut server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let wheel = WheelSpec::new("flipped", "1.0", "py3-none-any").write(work.path());
    let uploaded = server.twine_upload(&[&wheel]);
    assert!(uploaded.status.success(), "{}", common::text(&uploaded));
    stop(&mut server);
    let digest = common::sha256_hex(&std::fs::read(&wheel).unwrap());
    let blob = server.data_dir.join(format!(
        "blobs/sha256/{}/{}/{digest}",
        &digest[0..2],
        &digest[2..4]
    ));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&blob, bytes).unwrap();

    let prefix = format!("corrupt-{}", uuid::Uuid::new_v4());
    let refused = move_installation(&server.data_dir, &database, s3, &prefix);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        message.contains(&format!("blob {digest}")) && message.contains("is corrupt"),
        "{message}"
    );
    assert_eq!(
        database.select("SELECT count(*) FROM index_files"),
        ["0"],
        "no record is written for a move that failed on its blobs"
    );
}
