//! One compose project of `deploy/compose.yaml` with `tests/cluster/compose.test.yaml` (the
//! S3 server) over it, under a name of its own, with the stand-in images
//! `tests/cluster/build-images` makes and the runtime image built from this checkout. The
//! test reaches every container at its address on the project's `front` network, as the
//! workers and the balancer do; dropping the project removes its containers, networks,
//! volumes and the build containers its workers started, whatever the test's outcome.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common;
use crate::common::server::TestServer;

/// The bucket the test's S3 server holds and the replicas store into, under `PREFIX`.
pub const BUCKET: &str = "edelweiss";
pub const PREFIX: &str = "index";
const POSTGRES_PASSWORD: &str = "cluster-test-password";
/// The port every edelweiss container and the balancer listen on, and the S3 server's.
const HTTP_PORT: u16 = 8080;
const S3_PORT: u16 = 5000;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The stand-ins for the postgres, haproxy and S3 images, by the names `build-images` gives.
pub struct Images {
    postgres: String,
    haproxy: String,
    s3: String,
}

impl Images {
    /// The images of this checkout's `build-images` key, or None (after a line saying so)
    /// where one is missing; under `CI=true` a missing image fails the test instead.
    pub fn present() -> Option<Self> {
        let script = repository().join("tests/cluster/build-images");
        let output = Command::new(&script)
            .arg("--names")
            .output()
            .expect("run tests/cluster/build-images --names");
        assert!(output.status.success(), "{}", common::text(&output));
        let names = String::from_utf8_lossy(&output.stdout).into_owned();
        let image = |service: &str| {
            names
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{service}=")))
                .unwrap_or_else(|| panic!("build-images names no {service} image: {names}"))
                .to_string()
        };
        let images = Self {
            postgres: image("postgres"),
            haproxy: image("haproxy"),
            s3: image("s3"),
        };
        for name in [&images.postgres, &images.haproxy, &images.s3] {
            let inspected = Command::new("docker")
                .args(["image", "inspect", name])
                .output()
                .expect("docker");
            if !inspected.status.success() {
                assert!(
                    !common::in_ci(),
                    "CI=true, but the image {name} is missing: run .ci/setup (tests/cluster/build-images)"
                );
                eprintln!(
                    "skipped: the image {name} is missing; tests/cluster/build-images makes it"
                );
                return None;
            }
        }
        Some(images)
    }
}

/// `docker compose` (v2) where the engine's CLI has it, else Debian's `docker-compose`.
#[derive(Clone)]
pub struct ComposeCli {
    program: &'static str,
    leading: &'static [&'static str],
}

impl ComposeCli {
    /// The first of the two that answers `version`, or None (after a line saying so); under
    /// `CI=true` neither answering fails the test.
    pub fn find() -> Option<Self> {
        let candidates = [
            Self {
                program: "docker",
                leading: &["compose"],
            },
            Self {
                program: "docker-compose",
                leading: &[],
            },
        ];
        let found = candidates.into_iter().find(|cli| {
            Command::new(cli.program)
                .args(cli.leading)
                .arg("version")
                .output()
                .is_ok_and(|output| output.status.success())
        });
        if found.is_none() {
            assert!(
                !common::in_ci(),
                "CI=true, but neither `docker compose` nor `docker-compose` answers"
            );
            eprintln!("skipped: neither `docker compose` nor `docker-compose` answers here");
        }
        found
    }
}

/// A running compose project.
pub struct Cluster {
    project: String,
    cli: ComposeCli,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    runtime_image: String,
}

impl Cluster {
    /// Starts every service with `config` as the replicas' edelweiss.toml and waits until the
    /// balancer and both replicas answer `/healthz`.
    pub fn start(cli: ComposeCli, images: &Images, runtime_image: &str, config: &str) -> Self {
        let project = format!(
            "edelweiss-cluster-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("edelweiss.toml");
        std::fs::write(&config_path, config).unwrap();
        let work = dir.path().join("work");
        for worker in ["worker-1", "worker-2"] {
            std::fs::create_dir_all(work.join(worker)).unwrap();
            make_writable_by_containers(&work.join(worker));
        }
        let env = [
            ("EDELWEISS_IMAGE", runtime_image.to_string()),
            ("EDELWEISS_POSTGRES_IMAGE", images.postgres.clone()),
            ("EDELWEISS_HAPROXY_IMAGE", images.haproxy.clone()),
            ("EDELWEISS_S3_IMAGE", images.s3.clone()),
            ("EDELWEISS_S3_BUCKET", BUCKET.to_string()),
            ("EDELWEISS_POSTGRES_PASSWORD", POSTGRES_PASSWORD.to_string()),
            ("EDELWEISS_STORAGE_URL", format!("s3://{BUCKET}/{PREFIX}")),
            ("EDELWEISS_UPLOAD_TOKENS", common::UPLOAD_TOKEN.to_string()),
            (
                "EDELWEISS_WORKER_TOKEN",
                common::farm::WORKER_TOKEN.to_string(),
            ),
            ("EDELWEISS_DOCKER_GID", docker_socket_group()),
            ("EDELWEISS_DOCKER_CLI", docker_cli().display().to_string()),
            ("EDELWEISS_WORK_DIR", work.display().to_string()),
            ("EDELWEISS_CONFIG", config_path.display().to_string()),
            // Not on the host's port 8080: a free loopback port, so runs never collide.
            ("EDELWEISS_PUBLISH", "127.0.0.1:".to_string()),
            ("AWS_ACCESS_KEY_ID", "edelweiss-test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "edelweiss-test-secret".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", format!("http://s3:{S3_PORT}")),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        let cluster = Self {
            project,
            cli,
            env,
            dir,
            runtime_image: runtime_image.to_string(),
        };
        cluster.compose_ok(&["up", "--detach"], "docker compose up");
        for service in ["replica-1", "replica-2", "balancer"] {
            cluster.wait_healthy(service);
        }
        cluster
    }

    fn compose(&self, args: &[&str]) -> Output {
        let mut command = Command::new(self.cli.program);
        command.args(self.cli.leading).args([
            "--project-name",
            &self.project,
            "--file",
            &repository()
                .join("deploy/compose.yaml")
                .display()
                .to_string(),
            "--file",
            &repository()
                .join("tests/cluster/compose.test.yaml")
                .display()
                .to_string(),
        ]);
        // Only what this project sets: none of the host's own AWS or compose settings.
        for (name, _) in std::env::vars() {
            if name.starts_with("AWS_") || name.starts_with("COMPOSE_") {
                command.env_remove(name);
            }
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        command.args(args).output().expect("run docker compose")
    }

    fn compose_ok(&self, args: &[&str], what: &str) {
        let output = self.compose(args);
        assert!(
            output.status.success(),
            "{what} failed: {}",
            common::text(&output)
        );
    }

    /// The container of `service`, running or not.
    pub fn container(&self, service: &str) -> String {
        self.find_container(service)
            .unwrap_or_else(|| panic!("no container of {service} in {}", self.project))
    }

    fn find_container(&self, service: &str) -> Option<String> {
        let listed = docker(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
        ]);
        listed.lines().next().map(str::to_string)
    }

    /// The project's network `name` (`db` or `front`) as the engine names it.
    pub fn network(&self, name: &str) -> String {
        format!("{}_{name}", self.project)
    }

    fn address(&self, service: &str) -> String {
        let front = self.network("front");
        let address = docker(&[
            "inspect",
            "--format",
            &format!("{{{{(index .NetworkSettings.Networks \"{front}\").IPAddress}}}}"),
            &self.container(service),
        ]);
        assert!(!address.is_empty(), "{service} has no address on {front}");
        address
    }

    /// An edelweiss replica or the balancer, at its current address (a restart may move it).
    pub fn server(&self, service: &str) -> TestServer {
        TestServer::remote(&format!("http://{}:{HTTP_PORT}", self.address(service)))
    }

    pub fn wait_healthy(&self, service: &str) {
        let healthy = common::polled(Duration::from_secs(120), common::POLL_INTERVAL, || {
            let server = self.server(service);
            server
                .client()
                .get(format!("{}/healthz", server.url))
                .timeout(Duration::from_secs(5))
                .send()
                .is_ok_and(|response| response.status() == 200)
                .then_some(())
        });
        assert!(
            healthy.is_some(),
            "{service} did not answer /healthz:\n{}",
            self.logs(service)
        );
    }

    /// What `service` logged, or nothing where it has no container (compose failed).
    pub fn logs(&self, service: &str) -> String {
        let Some(container) = self.find_container(service) else {
            return String::new();
        };
        common::text(&common::image::docker(&["logs", &container]))
    }

    /// SIGKILL, as a crash or a lost machine would.
    pub fn kill(&self, service: &str) {
        docker_ok(&["kill", &self.container(service)], "docker kill");
    }

    pub fn start_services(&self, services: &[&str]) {
        let mut args = vec!["start"];
        args.extend(services);
        self.compose_ok(&args, "docker compose start");
    }

    pub fn stop_services(&self, services: &[&str]) {
        let mut args = vec!["stop"];
        args.extend(services);
        self.compose_ok(&args, "docker compose stop");
    }

    pub fn disconnect(&self, service: &str, network: &str) {
        docker_ok(
            &[
                "network",
                "disconnect",
                &self.network(network),
                &self.container(service),
            ],
            "docker network disconnect",
        );
    }

    pub fn connect(&self, service: &str, network: &str) {
        docker_ok(
            &[
                "network",
                "connect",
                &self.network(network),
                &self.container(service),
            ],
            "docker network connect",
        );
    }

    /// The keys S3 lists under the replicas' prefix: what is visible in the bucket.
    pub fn s3_objects(&self) -> Vec<String> {
        let url = format!(
            "http://{}:{S3_PORT}/{BUCKET}?list-type=2&prefix={PREFIX}/",
            self.address("s3")
        );
        let xml = reqwest::blocking::get(&url)
            .and_then(|response| response.error_for_status())
            .and_then(|response| response.text())
            .unwrap_or_else(|error| panic!("list the bucket at {url}: {error}"));
        xml.split("<Key>")
            .skip(1)
            .filter_map(|entry| Some(entry.split_once("</Key>")?.0.to_string()))
            .collect()
    }

    /// Rows `query` selects in the replicas' database, one line each, columns joined by `|`.
    pub fn select(&self, query: &str) -> Vec<String> {
        let output = common::image::docker(&[
            "exec",
            &self.container("postgres"),
            "psql",
            "--username",
            "edelweiss",
            "--dbname",
            "edelweiss",
            "--tuples-only",
            "--no-align",
            "--command",
            query,
        ]);
        assert!(
            output.status.success(),
            "{query}: {}",
            common::text(&output)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for service in ["replica-1", "replica-2", "worker-1", "worker-2", "balancer"] {
                eprintln!("--- {service} ---\n{}", tail(&self.logs(service), 60));
            }
        }
        let _ = self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "2"]);
        // Build containers the workers started on the host engine, whatever became of them.
        let work = self.work_dir().display().to_string();
        for id in docker(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            "label=edelweiss.build",
        ])
        .lines()
        {
            let mounts = docker(&["inspect", "--format", "{{json .Mounts}}", id]);
            if mounts.contains(&work) {
                docker(&["rm", "--force", id]);
            }
        }
        docker(&["image", "rm", &self.runtime_image]);
        // Files the containers wrote as uid 65534 are removed by the TempDir as root.
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `docker ARGS`, its standard output trimmed (empty when it failed).
fn docker(args: &[&str]) -> String {
    let output = common::image::docker(args);
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn docker_ok(args: &[&str], what: &str) {
    let output = common::image::docker(args);
    assert!(
        output.status.success(),
        "{what} failed: {}",
        common::text(&output)
    );
}

/// The group of the engine's socket, which the replicas and workers (uid 65534) join.
fn docker_socket_group() -> String {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/var/run/docker.sock")
        .expect("the docker socket")
        .gid()
        .to_string()
}

/// The host's docker CLI, a static binary here, mounted into the `FROM scratch` containers.
fn docker_cli() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("docker"))
        .find(|candidate| candidate.is_file())
        .expect("a docker CLI on PATH")
}

/// The containers run as uid 65534.
fn make_writable_by_containers(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}
