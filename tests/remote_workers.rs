//! Remote `edelweiss worker`s against a real server: leases with expiry and heartbeat, a
//! worker killed mid-build, results recorded once, and tokens that can only work.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::dists::WheelSpec;
use common::farm::{
    Runtime, TARGET, WORKER_TOKEN, c_extension_sdist, post_result, request_build, wait_for_build,
};
use common::server::{TestServer, binary};

/// A server that builds only through remote workers, with short leases.
fn server_for_workers() -> TestServer {
    let (builder, runtime) = Runtime::Runc.builders();
    TestServer::start_with(&common::farm::remote_workers_config(
        "runc", &builder, &runtime,
    ))
}

struct Worker {
    name: String,
    child: Child,
    work: tempfile::TempDir,
}

impl Worker {
    fn start(server: &TestServer, name: &str) -> Self {
        let work = tempfile::tempdir().unwrap();
        let child = Command::new(binary())
            .args([
                "worker",
                "--server",
                &server.url,
                "--token",
                WORKER_TOKEN,
                "--executor",
                "runc",
                "--target",
                &common::farm::worker_target(common::farm::Runtime::Runc),
                "--name",
                name,
                "--poll-seconds",
                "1",
                "--work",
            ])
            .arg(work.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.path().join("worker.log")).unwrap())
            .spawn()
            .expect("start edelweiss worker");
        Self {
            name: name.to_string(),
            child,
            work,
        }
    }

    /// Whether a container runs in this worker's runc state.
    fn runs_a_container(&self) -> bool {
        let mut list = Command::new("runc");
        list.arg("--root")
            .arg(self.work.path().join("runc"))
            .args(["list", "--format", "json"]);
        let listing = common::listed_lines(&mut list).concat();
        let containers: Option<Vec<serde_json::Value>> =
            serde_json::from_str(&listing).expect("runc list JSON");
        containers
            .unwrap_or_default()
            .iter()
            .any(|container| container["status"] == "running")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The killed worker's build container lives on in its runc state: end it here.
        let state = self.work.path().join("runc");
        if let Ok(listing) = Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(["list", "--quiet"])
            .output()
        {
            for id in String::from_utf8_lossy(&listing.stdout).lines() {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&state)
                    .args(["delete", "--force", id])
                    .output();
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_worker_killed_mid_build_loses_its_lease_and_another_completes_the_build_once() {
    let server = server_for_workers();
    let work = tempfile::tempdir().unwrap();
    let upload = server.twine_upload(&[&c_extension_sdist(
        work.path(),
        "remote-ext",
        "import time\ntime.sleep(8)",
    )]);
    assert!(upload.status.success(), "{}", common::text(&upload));
    let mut workers = [
        Worker::start(&server, "worker-a"),
        Worker::start(&server, "worker-b"),
    ];
    let id = request_build(&server, "remote-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let holder = common::poll_for(
        Duration::from_secs(60),
        format!("a worker to lease build {id}"),
        || {
            let build = server.get_json_plain(&format!("/api/v1/builds/{id}"));
            build["lease"]["worker"].as_str().map(str::to_string)
        },
    );
    let holder_index = workers
        .iter()
        .position(|worker| worker.name == holder)
        .unwrap();
    // Killed mid-build: while its build container runs (setup.py sleeps 8 s).
    common::poll_until(
        Duration::from_secs(60),
        format!("{holder}'s build container to run"),
        || workers[holder_index].runs_a_container(),
    );
    workers[holder_index].kill();
    let build = wait_for_build(&server, &id, Duration::from_secs(300));
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    assert_eq!(build["attempts"], 2);
    assert_ne!(
        server.get_json_plain(&format!("/api/v1/builds/{id}"))["wheel"],
        serde_json::Value::Null
    );
    assert_eq!(
        server.listed_wheels("remote-ext"),
        ["remote_ext-1.0-cp313-cp313-musllinux_1_2_x86_64.whl"]
    );
    assert!(
        server
            .log()
            .contains("re-queued builds whose worker lost its lease")
    );
}

fn lease(server: &TestServer, worker: &str, token: &str) -> reqwest::blocking::Response {
    server
        .client()
        .post(format!("{}/api/v1/workers/lease", server.url))
        .bearer_auth(token)
        .json(&serde_json::json!({"worker": worker, "targets": [TARGET]}))
        .send()
        .unwrap()
}

#[test]
fn results_are_recorded_once_and_only_from_the_lease_holder() {
    let server = server_for_workers();
    let work = tempfile::tempdir().unwrap();
    let upload = server.twine_upload(&[&c_extension_sdist(work.path(), "twice-ext", "")]);
    assert!(upload.status.success());
    let id = request_build(&server, "twice-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();

    let refused = lease(&server, "intruder", "not-a-worker-token-at-all");
    assert_eq!(refused.status(), 403);
    let worker_cannot_upload = server.twine_upload_with_token(
        &[&c_extension_sdist(work.path(), "sneaky-ext", "")],
        WORKER_TOKEN,
    );
    assert!(
        !worker_cannot_upload.status.success(),
        "a worker token uploaded a file"
    );
    assert_eq!(
        server.get_json_plain(&format!("/api/v1/builds/{id}"))["state"],
        "queued"
    );

    let leased = lease(&server, "fake-worker", WORKER_TOKEN);
    assert_eq!(leased.status(), 200);
    let assignment: serde_json::Value = leased.json().unwrap();
    assert_eq!(assignment["build"]["id"], id.as_str());
    assert_eq!(
        lease(&server, "fake-worker-2", WORKER_TOKEN).status(),
        204,
        "nothing else is queued"
    );

    let wheel =
        WheelSpec::new("twice-ext", "1.0", "cp313-cp313-musllinux_1_2_x86_64").write(work.path());
    let stranger = post_result(&server, &id, "someone-else", &wheel);
    assert_eq!(
        stranger.status(),
        409,
        "a result from a worker without the lease is refused"
    );
    let first = post_result(&server, &id, "fake-worker", &wheel);
    assert_eq!(first.status(), 200, "{}", first.text().unwrap());
    let second = post_result(&server, &id, "fake-worker", &wheel);
    assert_eq!(second.status(), 200, "a repeated result is acknowledged");
    let build = server.get_json_plain(&format!("/api/v1/builds/{id}"));
    assert_eq!(build["state"], "succeeded");
    assert_eq!(build["log"], "built elsewhere\n");
    assert_eq!(server.listed_wheels("twice-ext").len(), 1);
}
