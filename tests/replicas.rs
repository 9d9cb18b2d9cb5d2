//! Servers that share one PostgreSQL database (`metadata_url`): the build queue one replica
//! writes is the one every replica reads and leases from, a replica's restart leaves the
//! builds other replicas' workers hold alone, a page one replica mirrored is one the others
//! serve without asking the upstream, a page one replica changes is not served as it was by
//! the others, and `edelweiss migrate` brings the schema up to date by itself.

mod common;

use std::process::Command;
use std::time::Duration;

use common::dists::{WheelSpec, write_sdist};
use common::farm::{Runtime, TARGET, WORKER_TOKEN, c_extension_sdist, post_result, request_build};
use common::poll_until;
use common::postgres::TestDatabase;
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
    let tree = UpstreamTree::new(&work.path().join("tree"));
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let files = [
        WheelSpec::new("purelib", "2.0", "py3-none-any").write(&dists),
        write_sdist(&dists, "purelib", "2.0", &[]),
    ];
    tree.publish("purelib", &files);
    let upstream = UpstreamServer::start(&tree, "json");
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
    let tree = UpstreamTree::new(&work.path().join("tree"));
    let dists = work.path().join("dists");
    std::fs::create_dir_all(&dists).unwrap();
    let mut files = vec![
        WheelSpec::new("purelib", "2.0", "py3-none-any").write(&dists),
        write_sdist(&dists, "purelib", "2.0", &[]),
    ];
    tree.publish("purelib", &files);
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
    assert!(
        first.contains("build_queue: migrated from version 0 to"),
        "{first}"
    );
    let version =
        database.select("SELECT version FROM schema_version WHERE component = 'build_queue'");
    assert_eq!(version.len(), 1);
    let (ok, again, errors) = migrate(&database.url);
    assert!(ok, "{errors}");
    assert_eq!(
        again.trim(),
        format!("build_queue: at version {}", version[0])
    );

    let (ok, _, errors) = migrate("mysql://db.example/edelweiss");
    assert!(!ok);
    assert!(errors.contains("metadata_url"), "{errors}");
    // Nothing listens on port 9 of the loopback: a clear error, not a hang.
    let (ok, _, errors) = migrate("postgres://edelweiss@127.0.0.1:9/edelweiss");
    assert!(!ok);
    assert!(errors.contains("PostgreSQL is unavailable"), "{errors}");
}
