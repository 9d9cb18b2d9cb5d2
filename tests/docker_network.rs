//! The server and two workers as containers of the project's runtime image on a private
//! docker network, building with the docker executor through the host engine's socket: a
//! worker killed mid-build, a worker cut off from the network mid-build, and a worker whose
//! token is wrong.
//!
//! Why the socket and not runc inside the worker: a build container started through the
//! socket gets the same engine flags and limits as an in-process build (one executor, one
//! set of tests), while runc inside a container needs `--privileged`, nested cgroups and a
//! runc binary in a `FROM scratch` image. The price: the worker's work directory must have
//! the same path inside the worker and on the host, because the engine resolves bind mounts
//! on the host.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::farm::{
    Runtime, TARGET, WORKER_TOKEN, c_extension_sdist, leftover_containers, request_build,
    running_containers, wait_for_build,
};
use common::image::{build_runtime_image, docker};
use common::server::TestServer;

const SOCKET: &str = "/var/run/docker.sock";
/// Each build sleeps this long in setup.py, so there is a "mid-build" to act in.
const BUILD_SECONDS: u64 = 20;

/// The runtime image, built once per test process.
fn runtime_image() -> String {
    static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let tag = format!("edelweiss-network-test:{}", std::process::id());
            build_runtime_image(&tag);
            tag
        })
        .clone()
}

/// The host's docker CLI, mounted into the containers that talk to the engine. It is a
/// static binary here; a dynamically linked one could not run in a `FROM scratch` image.
fn docker_cli() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("docker"))
        .find(|candidate| candidate.is_file())
        .expect("a docker CLI on PATH")
}

fn expect_success(output: std::process::Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        common::text(&output)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// One private network with a server container; workers join it by name.
struct Cluster {
    prefix: String,
    network: String,
    dir: tempfile::TempDir,
    image: String,
    server: TestServer,
    workers: Vec<String>,
}

impl Cluster {
    fn start(test: &str) -> Self {
        let image = runtime_image();
        let (builder, runtime) = Runtime::Docker.builders();
        let prefix = format!("edelweiss-{test}-{}", std::process::id());
        let network = format!("{prefix}-net");
        expect_success(
            docker(&["network", "create", "--internal", &network]),
            "docker network create",
        );
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        make_writable_by_builds(&data);
        let config = common::farm::remote_workers_config("docker", &builder, &runtime);
        let config_path = dir.path().join("edelweiss.toml");
        std::fs::write(&config_path, config).unwrap();
        let name = format!("{prefix}-server");
        let mut args = vec![
            "run".to_string(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--network".into(),
            network.clone(),
            "--network-alias".into(),
            "server".into(),
            "-e".into(),
            "EDELWEISS_NO_UPSTREAM=true".into(),
            "-e".into(),
            "EDELWEISS_LOG=info".into(),
            "-v".into(),
            format!("{}:/data", data.display()),
            "-v".into(),
            format!("{}:/etc/edelweiss/edelweiss.toml:ro", config_path.display()),
        ];
        // The server asks the engine for image IDs: they are part of every build key.
        args.extend(engine_access(&data.join(".docker")));
        args.push(image.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_success(docker(&args), "starting the server container");
        let server = Self::reachable_address(&name, &prefix);
        let cluster = Self {
            prefix,
            network,
            dir,
            image,
            server: TestServer::in_container(&name, &server, &data),
            workers: Vec::new(),
        };
        cluster.wait_healthy();
        cluster
    }

    /// The private network is internal (no way in or out), so the server also joins an
    /// ordinary bridge network, whose address the test on the host reaches it at.
    fn reachable_address(name: &str, prefix: &str) -> String {
        let bridge = format!("{prefix}-host");
        expect_success(
            docker(&["network", "create", &bridge]),
            "docker network create",
        );
        expect_success(
            docker(&["network", "connect", &bridge, name]),
            "connecting the server to the host network",
        );
        let ip = expect_success(
            docker(&[
                "inspect",
                "--format",
                &format!("{{{{(index .NetworkSettings.Networks \"{bridge}\").IPAddress}}}}"),
                name,
            ]),
            "docker inspect",
        );
        format!("http://{ip}:8080")
    }

    fn wait_healthy(&self) {
        let healthy = common::polled(Duration::from_secs(30), common::POLL_INTERVAL, || {
            self.server
                .client()
                .get(format!("{}/healthz", self.server.url))
                .send()
                .is_ok_and(|response| response.status() == 200)
                .then_some(())
        });
        assert!(
            healthy.is_some(),
            "the server container did not answer /healthz: {}",
            self.server.log()
        );
    }

    fn container(&self, worker: &str) -> String {
        format!("{}-{worker}", self.prefix)
    }

    /// A worker container on the private network, with `token`.
    fn start_worker(&mut self, worker: &str, token: &str) {
        let work = self.work_dir(worker);
        std::fs::create_dir_all(&work).unwrap();
        make_writable_by_builds(&work);
        let work_text = work.display().to_string();
        let mut args = vec![
            "run".to_string(),
            "-d".into(),
            "--name".into(),
            self.container(worker),
            "--network".into(),
            self.network.clone(),
            "-e".into(),
            "EDELWEISS_LOG=info".into(),
            "-v".into(),
            // Same path inside and out: the engine mounts the build's directories from here.
            format!("{work_text}:{work_text}"),
        ];
        args.extend(engine_access(&work.join(".docker")));
        args.extend(
            [
                self.image.as_str(),
                "worker",
                "--server",
                "http://server:8080/",
                "--token",
                token,
                "--executor",
                "docker",
                "--target",
                TARGET,
                "--name",
                worker,
                "--poll-seconds",
                "1",
                "--work",
                &work_text,
            ]
            .map(str::to_string),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_success(docker(&args), "starting a worker container");
        self.workers.push(worker.to_string());
    }

    fn work_dir(&self, worker: &str) -> PathBuf {
        self.dir.path().join(worker)
    }

    fn worker_log(&self, worker: &str) -> String {
        common::text(&docker(&["logs", &self.container(worker)]))
    }

    fn upload_sleeping_extension(&self, project: &str) {
        let work = tempfile::tempdir().unwrap();
        let sdist = c_extension_sdist(
            work.path(),
            project,
            &format!("import time\ntime.sleep({BUILD_SECONDS})"),
        );
        let upload = self.server.twine_upload(&[&sdist]);
        assert!(upload.status.success(), "{}", common::text(&upload));
    }

    /// Waits until some worker holds the build's lease and returns its name.
    fn lease_holder(&self, id: &str) -> String {
        common::poll_for(
            Duration::from_secs(120),
            format!("a worker to lease build {id}"),
            || {
                let build = self.server.get_json_plain(&format!("/api/v1/builds/{id}"));
                build["lease"]["worker"].as_str().map(str::to_string)
            },
        )
    }

    /// Waits until a build container of build `id` runs on the host engine.
    fn wait_for_build_container(&self, id: &str) {
        common::poll_until(
            Duration::from_secs(120),
            format!("a running build container of build {id}"),
            || !running_containers(Runtime::Docker, &self.server, id).is_empty(),
        );
    }

    /// The one wheel the project's page lists, with its blob present exactly once.
    fn assert_stored_once(&self, project: &str) {
        let module = project.replace('-', "_");
        assert_eq!(
            self.server.listed_wheels(project),
            [format!("{module}-1.0-cp313-cp313-musllinux_1_2_x86_64.whl")]
        );
        let page = self.server.get_json(&format!("/simple/{project}/"));
        let wheel_sha = page["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|file| file["filename"].as_str().unwrap().ends_with(".whl"))
            .map(|file| file["hashes"]["sha256"].as_str().unwrap().to_string())
            .unwrap();
        let blobs = self.server.blobs();
        assert_eq!(
            blobs
                .iter()
                .filter(|blob| blob.contains(&wheel_sha))
                .count(),
            1,
            "{blobs:?}"
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut names = vec![format!("{}-server", self.prefix)];
        names.extend(self.workers.iter().map(|worker| self.container(worker)));
        for name in &names {
            docker(&["rm", "--force", name]);
        }
        // Build containers the workers started on the host engine, whatever became of them.
        for worker in &self.workers {
            let work = self.work_dir(worker).display().to_string();
            let listed = docker(&[
                "ps",
                "--all",
                "--quiet",
                "--filter",
                "label=edelweiss.instance",
            ]);
            for id in String::from_utf8_lossy(&listed.stdout).lines() {
                let mounts = docker(&["inspect", "--format", "{{json .Mounts}}", id]);
                if String::from_utf8_lossy(&mounts.stdout).contains(&work) {
                    docker(&["rm", "--force", id]);
                }
            }
        }
        docker(&["network", "rm", &self.network]);
        docker(&["network", "rm", &format!("{}-host", self.prefix)]);
        // Files the containers wrote as uid 65534 are removed by the TempDir as root.
    }
}

/// The engine's socket and CLI for a container running as uid 65534, which joins the
/// socket's group for access; the CLI keeps its config in `config_dir` (no home in a
/// `FROM scratch` image).
fn engine_access(config_dir: &Path) -> Vec<String> {
    let group = std::fs::metadata(SOCKET)
        .expect("the docker socket")
        .gid()
        .to_string();
    vec![
        "--group-add".into(),
        group,
        "-v".into(),
        format!("{SOCKET}:{SOCKET}"),
        "-v".into(),
        format!("{}:/usr/local/bin/docker:ro", docker_cli().display()),
        "-e".into(),
        format!("DOCKER_CONFIG={}", config_dir.display()),
    ]
}

/// The containers run as uid 65534.
fn make_writable_by_builds(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

fn wait_for_log(cluster: &Cluster, worker: &str, needle: &str, limit: Duration) -> String {
    wait_for_any_log(cluster, worker, &[needle], limit)
}

fn wait_for_any_log(cluster: &Cluster, worker: &str, needles: &[&str], limit: Duration) -> String {
    let found = common::polled(limit, Duration::from_millis(500), || {
        let log = cluster.worker_log(worker);
        needles
            .iter()
            .any(|needle| log.contains(needle))
            .then_some(log)
    });
    found.unwrap_or_else(|| {
        panic!(
            "{worker} never logged any of {needles:?}:\n{}",
            cluster.worker_log(worker)
        )
    })
}

#[test]
fn a_worker_container_killed_mid_build_loses_the_build_to_the_other_and_leaves_nothing_running() {
    if !Runtime::Docker.available() {
        return;
    }
    let mut cluster = Cluster::start("kill");
    cluster.upload_sleeping_extension("killed-ext");
    let id = request_build(&cluster.server, "killed-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Tried: a worker whose token the server does not know. Kept: the build stays queued
    // and unleased, and the worker stops with a clear error.
    cluster.start_worker("stranger", "not-a-worker-token");
    let exit = expect_success(
        docker(&["wait", &cluster.container("stranger")]),
        "docker wait",
    );
    assert_ne!(exit, "0", "a worker with a wrong token kept running");
    assert!(
        cluster
            .worker_log("stranger")
            .contains("refused this worker's token"),
        "{}",
        cluster.worker_log("stranger")
    );
    let build = cluster
        .server
        .get_json_plain(&format!("/api/v1/builds/{id}"));
    assert_eq!(build["state"], "queued", "{build}");
    assert_eq!(build["lease"], serde_json::Value::Null);
    assert_eq!(build["attempts"], 0);

    cluster.start_worker("worker-a", WORKER_TOKEN);
    assert_eq!(cluster.lease_holder(&id), "worker-a");
    cluster.start_worker("worker-b", WORKER_TOKEN);
    // Killed mid-build: while its build container runs.
    cluster.wait_for_build_container(&id);
    expect_success(
        docker(&["kill", &cluster.container("worker-a")]),
        "docker kill",
    );

    let build = wait_for_build(&cluster.server, &id, Duration::from_secs(600));
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    assert_eq!(build["attempts"], 2, "{build}");
    cluster.assert_stored_once("killed-ext");
    assert!(
        cluster
            .server
            .log()
            .contains("re-queued builds whose worker lost its lease")
    );

    // worker-a's build container outlived it on the host engine. Restarted on the same work
    // directory (the same instance), the worker removes what its crash left.
    assert!(
        !leftover_containers(Runtime::Docker, &cluster.server, &id).is_empty(),
        "the killed worker's build container should still exist"
    );
    expect_success(
        docker(&["start", &cluster.container("worker-a")]),
        "docker start",
    );
    wait_for_log(
        &cluster,
        "worker-a",
        "removed build containers left by a crash",
        Duration::from_secs(60),
    );
    assert_eq!(
        leftover_containers(Runtime::Docker, &cluster.server, &id),
        Vec::<String>::new()
    );
}

#[test]
fn a_worker_cut_off_mid_build_has_its_late_result_refused_or_deduplicated_and_the_wheel_stored_once()
 {
    if !Runtime::Docker.available() {
        return;
    }
    let mut cluster = Cluster::start("partition");
    cluster.upload_sleeping_extension("partitioned-ext");
    let id = request_build(&cluster.server, "partitioned-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    cluster.start_worker("worker-b", WORKER_TOKEN);
    assert_eq!(cluster.lease_holder(&id), "worker-b");
    cluster.start_worker("worker-a", WORKER_TOKEN);
    // Cut off mid-build: while its build container runs.
    cluster.wait_for_build_container(&id);
    expect_success(
        docker(&[
            "network",
            "disconnect",
            &cluster.network,
            &cluster.container("worker-b"),
        ]),
        "docker network disconnect",
    );

    // worker-b keeps building (its engine socket is not on the network) but cannot renew its
    // lease: the build goes to worker-a, which completes it.
    let build = wait_for_build(&cluster.server, &id, Duration::from_secs(600));
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    assert_eq!(build["attempts"], 2, "{build}");
    let stored = build["wheel"].clone();
    // worker-b finished too, and holds its result while the server is out of reach.
    wait_for_log(
        &cluster,
        "worker-b",
        "holding the result",
        Duration::from_secs(300),
    );
    expect_success(
        docker(&[
            "network",
            "connect",
            &cluster.network,
            &cluster.container("worker-b"),
        ]),
        "docker network connect",
    );
    // Its result arrives after worker-a's: refused (409) while another worker holds the
    // lease, acknowledged as a duplicate once that worker's wheel is recorded.
    let log = wait_for_any_log(
        &cluster,
        "worker-b",
        &[
            "the server refused a late result",
            "the server already had a wheel for this build",
        ],
        Duration::from_secs(120),
    );
    assert!(!log.contains("result reported"), "{log}");
    let after = cluster
        .server
        .get_json_plain(&format!("/api/v1/builds/{id}"));
    assert_eq!(
        after["wheel"], stored,
        "the late result replaced the stored one"
    );
    assert_eq!(after["attempts"], 2);
    cluster.assert_stored_once("partitioned-ext");
}
