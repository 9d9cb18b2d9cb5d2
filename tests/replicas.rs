//! Servers that share one PostgreSQL database (`metadata_url`): a file uploaded through one
//! replica installs through another (with a bucket both store blobs in), the build queue one
//! replica writes is the one every replica reads and leases from, a replica's restart leaves the
//! builds other replicas' workers hold alone, a page one replica mirrored is one the others
//! serve without asking the upstream, a page or file two replicas are asked for at once is
//! fetched from the upstream once, a page one replica changes is not served as it was by
//! the others, and `edelweiss migrate` brings the schema up to date by itself.

mod common;

use std::process::Command;
use std::time::Duration;

use common::dists::{WheelSpec, write_sdist};
use common::farm::{Runtime, TARGET, WORKER_TOKEN, c_extension_sdist, post_result, request_build};
use common::poll_until;
use common::postgres::TestDatabase;
use common::s3::S3Server;
use common::server::{TestServer, base_config, binary};
use common::upstream::{UpstreamServer, UpstreamTree};

const PAGE_HITS: &str = "edelweiss_page_cache_lookups_total{result=\"hit\"}";

/// A server that builds only through remote workers, its records on `database`.
fn replica(database: &TestDatabase) -> TestServer {
    let (builder, runtime) = Runtime::Runc.builders();
    let config = common::farm::remote_workers_config("runc", &builder, &runtime);
    TestServer::start_with(&format!("metadata_url = {:?}\n{config}", database.url))
}

fn lease(server: &TestServer, worker: &str) -> reqwest::blocking::Response {
    server
        .client()
        .post(format!("{}/api/v1/workers/lease", server.url))
        .bearer_auth(WORKER_TOKEN)
        .json(&serde_json::json!({"worker": worker, "targets": [TARGET]}))
        .send()
        .unwrap()
}

fn state(server: &TestServer, id: &str) -> serde_json::Value {
    server.get_json_plain(&format!("/api/v1/builds/{id}"))["state"].clone()
}

/// Tried: a twine upload through one replica; pip installing it through the other; the same
/// filename with other bytes, and the same bytes again, uploaded through the other. Kept:
/// the first upload, installed whole; the other bytes refused with 409 by either replica;
/// the retry acknowledged; one record and one blob.
#[test]
fn a_file_uploaded_through_one_replica_installs_through_the_other() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let Some(s3) = S3Server::shared() else {
        return;
    };
    let prefix = format!("replicas-{}", uuid::Uuid::new_v4());
    let config = base_config(
        &format!(
            "metadata_url = {:?}\nstorage_url = {:?}",
            database.url,
            s3.storage_url(&prefix)
        ),
        "",
    );
    let first = TestServer::start_with_env(&config, s3.env());
    let second = TestServer::start_with_env(&config, s3.env());
    let work = tempfile::tempdir().unwrap();
    let wheel = WheelSpec::new("purelib", "2.0", "py3-none-any").write(work.path());
    let uploaded = first.twine_upload(&[&wheel]);
    assert!(uploaded.status.success(), "{}", common::text(&uploaded));

    let target = work.path().join("installed");
    let mut pip = common::tool("pip");
    pip.args(["install", "--no-deps", "--target"])
        .arg(&target)
        .args(["--index-url", &second.index_url(), "purelib==2.0"]);
    common::assert_success(&mut pip);
    let module = std::fs::read_to_string(target.join("purelib/__init__.py")).unwrap();
    assert_eq!(module, "VERSION = \"2.0\"\n");

    let other_dir = work.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let mut other = WheelSpec::new("purelib", "2.0", "py3-none-any");
    other
        .files
        .push(("purelib/extra.py".into(), b"X = 1\n".to_vec()));
    let other = other.write(&other_dir);
    let refused = second.twine_upload(&[&other]);
    assert!(!refused.status.success());
    assert!(
        common::text(&refused).contains("409"),
        "{}",
        common::text(&refused)
    );
    let again = second.twine_upload(&[&wheel]);
    assert!(again.status.success(), "{}", common::text(&again));
    for server in [&first, &second] {
        assert_eq!(
            server.listed_wheels("purelib"),
            ["purelib-2.0-py3-none-any.whl"]
        );
    }
    assert_eq!(
        database.select("SELECT count(*) FROM index_files"),
        ["1"],
        "one record"
    );
}

#[test]
fn replicas_on_one_database_share_the_build_queue() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let first = replica(&database);
    let second = replica(&database);
    let work = tempfile::tempdir().unwrap();
    let upload = first.twine_upload(&[&c_extension_sdist(work.path(), "shared-ext", "")]);
    assert!(upload.status.success());

    // Requested through the first replica, seen and leased through the second.
    let id = request_build(&first, "shared-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(state(&second, &id), "queued");
    let leased = lease(&second, "worker-on-second");
    assert_eq!(leased.status(), 200);
    let assignment: serde_json::Value = leased.json().unwrap();
    assert_eq!(assignment["build"]["id"], id.as_str());
    assert_eq!(
        lease(&first, "worker-on-first").status(),
        204,
        "one build is leased once, whichever replica is asked"
    );

    // A restarted replica finds the build running under another replica's lease: it is
    // not its own leftover, so it stays with the worker that holds it.
    let first = first.restart();
    assert_eq!(state(&first, &id), "running");

    let wheel =
        WheelSpec::new("shared-ext", "1.0", "cp313-cp313-musllinux_1_2_x86_64").write(work.path());
    let recorded = post_result(&first, &id, "worker-on-second", &wheel);
    assert_eq!(recorded.status(), 200, "{}", recorded.text().unwrap());
    assert_eq!(state(&second, &id), "succeeded");
    assert_eq!(
        database.select(&format!(
            "SELECT state FROM build_records WHERE id = '{id}'"
        )),
        ["succeeded"],
        "the record is in PostgreSQL"
    );
}

#[test]
fn a_page_one_replica_mirrored_is_served_by_the_others_from_the_database() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (upstream, _) = upstream_with_purelib(work.path());
    let config = format!(
        "metadata_url = {:?}\n{}",
        database.url,
        base_config("", "").replace("[limits]", "[mirror]\npage_ttl_seconds = 600\n[limits]")
    );
    let first = TestServer::mirroring(&[&upstream.simple_url()], &config);
    let second = TestServer::mirroring(&[&upstream.simple_url()], &config);

    let listed = first.listed_filenames("/simple/purelib/");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(upstream.count("/simple/purelib/"), 1);
    assert_eq!(second.listed_filenames("/simple/purelib/"), listed);
    assert_eq!(
        upstream.count("/simple/purelib/"),
        1,
        "the second replica read the page the first stored, fresh for page_ttl_seconds"
    );
}

/// Two replicas mirroring one upstream, their records in `database` and their blobs under
/// one prefix of the test S3 server (a `file://` store belongs to one process).
fn replicas_mirroring(
    database: &TestDatabase,
    s3: &S3Server,
    upstream: &UpstreamServer,
) -> (TestServer, TestServer) {
    let prefix = format!("replicas-{}", uuid::Uuid::new_v4());
    let top = format!(
        "metadata_url = {:?}\nstorage_url = {:?}",
        database.url,
        s3.storage_url(&prefix)
    );
    let config =
        base_config(&top, "").replace("[limits]", "[mirror]\npage_ttl_seconds = 600\n[limits]");
    let start = || TestServer::mirroring_with_env(&[&upstream.simple_url()], &config, s3.env());
    (start(), start())
}

/// An upstream tree publishing purelib 2.0, a wheel and an sdist: the tree, the directory
/// its distributions are written in, and those files (the wheel first).
struct PurelibTree {
    tree: UpstreamTree,
    dists: std::path::PathBuf,
    files: Vec<std::path::PathBuf>,
}

fn purelib_tree(work: &std::path::Path) -> PurelibTree {
    let tree = UpstreamTree::new(&work.join("tree"));
    let dists = work.join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let files = vec![
        WheelSpec::new("purelib", "2.0", "py3-none-any").write(&dists),
        write_sdist(&dists, "purelib", "2.0", &[]),
    ];
    tree.publish("purelib", &files);
    PurelibTree { tree, dists, files }
}

/// A project of one wheel and one sdist on a fresh upstream; the wheel's filename.
fn upstream_with_purelib(work: &std::path::Path) -> (UpstreamServer, String) {
    let purelib = purelib_tree(work);
    let filename = purelib.files[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    (UpstreamServer::start(&purelib.tree, "json"), filename)
}

/// Sessions of `database` waiting for an advisory lock.
fn lock_waiters(database: &TestDatabase) -> u64 {
    let count = database.select(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    count[0].trim().parse().unwrap()
}

/// Asks `first` for `path` while the upstream holds its requests, then `second` once the
/// upstream has the first's request; lets the upstream answer once `second` either waits
/// for the fetch lock or asks the upstream itself (then the test fails, saying so). The
/// two responses, in order.
fn asked_at_once(
    (first, second): (&TestServer, &TestServer),
    upstream: &UpstreamServer,
    database: &TestDatabase,
    path: &str,
    upstream_path: &str,
) -> [reqwest::blocking::Response; 2] {
    let held = format!("held {upstream_path}");
    upstream.fault(serde_json::json!({"hold": true}));
    std::thread::scope(|scope| {
        let first = scope.spawn(|| first.get(path));
        poll_until(
            Duration::from_secs(60),
            "the upstream holds the first replica's request",
            || upstream.count(&held) == 1,
        );
        let second = scope.spawn(|| second.get(path));
        poll_until(
            Duration::from_secs(60),
            "the second replica waits, or asks the upstream",
            || lock_waiters(database) == 1 || upstream.count(&held) == 2,
        );
        let asked = upstream.count(&held);
        upstream.fault(serde_json::json!({"hold": false}));
        let responses = [first.join().unwrap(), second.join().unwrap()];
        assert_eq!(
            asked, 1,
            "the second replica asked the upstream instead of waiting for the fetch lock"
        );
        responses
    })
}

#[test]
fn a_page_two_replicas_are_asked_for_at_once_is_fetched_once() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let Some(s3) = S3Server::shared() else { return };
    let work = tempfile::tempdir().unwrap();
    let (upstream, _) = upstream_with_purelib(work.path());
    let (first, second) = replicas_mirroring(&database, s3, &upstream);

    let page = "/simple/purelib/";
    let responses = asked_at_once((&first, &second), &upstream, &database, page, page);
    let [one, other] = responses.map(|response| {
        assert_eq!(response.status(), 200);
        response.text().unwrap()
    });
    assert!(one.contains("purelib-2.0.tar.gz"), "{one}");
    assert_eq!(
        one, other,
        "the second replica serves the page the first stored"
    );
    assert_eq!(
        upstream.count(page),
        1,
        "the upstream was asked for the page once"
    );
}

#[test]
fn a_file_two_replicas_are_asked_for_at_once_is_fetched_once() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let Some(s3) = S3Server::shared() else { return };
    let work = tempfile::tempdir().unwrap();
    let (upstream, wheel) = upstream_with_purelib(work.path());
    let (first, second) = replicas_mirroring(&database, s3, &upstream);
    let page = first.get_json("/simple/purelib/");
    let url = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["filename"] == wheel.as_str())
        .and_then(|file| file["url"].as_str())
        .unwrap()
        .to_string();

    let upstream_path = format!("/files/{wheel}");
    let responses = asked_at_once(
        (&first, &second),
        &upstream,
        &database,
        &url,
        &upstream_path,
    );
    let expected = std::fs::read(work.path().join("tree/files").join(&wheel)).unwrap();
    for response in responses {
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().unwrap().as_ref(), expected.as_slice());
    }
    assert_eq!(
        upstream.count(&upstream_path),
        1,
        "the upstream was asked for the file once"
    );
}

/// The reader keeps its copy of the upstream's page for ten minutes and the page it made
/// from it until then; the writer asks the upstream on every request. The writer's refresh
/// finds a new file, which the reader lists on its next page, from the copy the writer
/// stored, because the writer announced the change.
#[test]
fn a_page_one_replica_changed_is_made_again_by_the_others() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let PurelibTree {
        tree,
        dists,
        mut files,
    } = purelib_tree(work.path());
    let upstream = UpstreamServer::start(&tree, "json");
    let mirroring = |page_ttl_seconds: u64| {
        let mirror = format!("[mirror]\npage_ttl_seconds = {page_ttl_seconds}\n[limits]");
        let config = base_config("", "").replace("[limits]", &mirror);
        let config = format!("metadata_url = {:?}\n{config}", database.url);
        TestServer::mirroring(&[&upstream.simple_url()], &config)
    };
    let writer = mirroring(0);
    let reader = mirroring(600);

    let before = reader.listed_filenames("/simple/purelib/");
    assert_eq!(before.len(), 2, "{before:?}");
    let hits = reader.metric(PAGE_HITS);
    assert_eq!(reader.listed_filenames("/simple/purelib/"), before);
    assert!(
        reader.metric(PAGE_HITS) > hits,
        "the reader answered from the page it keeps"
    );

    files.push(WheelSpec::new("purelib", "2.1", "py3-none-any").write(&dists));
    tree.publish("purelib", &files);
    let after = writer.listed_filenames("/simple/purelib/");
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.contains(&"purelib-2.1-py3-none-any.whl".to_string()));
    poll_until(
        Duration::from_secs(30),
        "the reader to list the file the writer's refresh found",
        || reader.listed_filenames("/simple/purelib/") == after,
    );
    assert_eq!(
        upstream.count("/simple/purelib/"),
        2,
        "the reader asked the upstream once: its new page is made from the writer's copy"
    );
}

#[test]
fn migrate_brings_the_schema_up_to_date_once() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let migrate = |url: &str| {
        let output = Command::new(binary())
            .arg("migrate")
            .env("EDELWEISS_METADATA_URL", url)
            .output()
            .expect("run edelweiss migrate");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, first, errors) = migrate(&database.url);
    assert!(ok, "{errors}");
    let components = ["index_records", "build_queue", "mirror_records"];
    for component in components {
        assert!(
            first.contains(&format!("{component}: migrated from version 0 to")),
            "{first}"
        );
    }
    let versions = database.select(
        "SELECT component || ': at version ' || version FROM schema_version ORDER BY component",
    );
    assert_eq!(versions.len(), components.len(), "{versions:?}");
    let (ok, again, errors) = migrate(&database.url);
    assert!(ok, "{errors}");
    let mut again: Vec<&str> = again.lines().collect();
    again.sort();
    assert_eq!(again, versions, "nothing left to migrate");

    let (ok, _, errors) = migrate("mysql://db.example/edelweiss");
    assert!(!ok);
    assert!(errors.contains("metadata_url"), "{errors}");
    // Nothing listens on port 9 of the loopback: a clear error, not a hang.
    let (ok, _, errors) = migrate("postgres://edelweiss@127.0.0.1:9/edelweiss");
    assert!(!ok);
    assert!(errors.contains("PostgreSQL is unavailable"), "{errors}");
}
