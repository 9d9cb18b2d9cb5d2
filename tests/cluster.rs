//! The high-availability layout of `deploy/compose.yaml` on the docker engine: PostgreSQL,
//! an S3 server, two edelweiss replicas of the runtime image behind HAProxy, and two remote
//! workers building through the host's engine. One project, started once, goes through the
//! failures the layout exists for, in order: a file uploaded through one replica installed
//! through the other; a replica killed mid-upload and mid-build; a replica cut off from
//! PostgreSQL; every service stopped and started again.
//!
//! No image can be pulled here: PostgreSQL, HAProxy and the S3 server are stand-ins built
//! from Debian's packages by `tests/cluster/build-images` (which `.ci/setup` runs), taking
//! the official images' interfaces; the edelweiss image is the Dockerfile's runtime stage
//! around this checkout's static binary. Where docker, compose or those images are missing
//! the test says so and passes, except under `CI=true`, where it fails.

mod common;
#[path = "cluster/compose.rs"]
mod compose;
#[path = "cluster/upload.rs"]
mod upload;

use std::path::Path;
use std::time::{Duration, Instant};

use common::dists::{WheelSpec, noise};
use common::farm::{Runtime, c_extension_sdist, request_build, wait_for_build};
use common::server::TestServer;
use compose::{Cluster, ComposeCli, Images};

/// The sdist of the build a replica is killed in sleeps this long in setup.py, so there is a
/// "mid-build" to act in.
const BUILD_SECONDS: u64 = 15;

/// The replicas' edelweiss.toml: deploy/edelweiss.toml with the test's builder images (the
/// musl test roots, imported), no upstream (the containers reach no index) and short leases.
fn replica_config(builder: &str, runtime: &str) -> String {
    let build = common::farm::build_config("docker", builder, runtime, 600)
        .replace("workers = 1", "workers = 0")
        .replace("lease_seconds = 30", "lease_seconds = 15");
    format!("listen = \"0.0.0.0:8080\"\ndata_dir = \"/data\"\nno_upstream = true\n{build}")
}

/// A file the cluster acknowledged: it must be listed and served, byte for byte, by every
/// replica from then on.
struct Acknowledged {
    project: String,
    filename: String,
    sha256: String,
}

impl Acknowledged {
    fn of(project: &str, file: &Path) -> Self {
        Self {
            project: project.to_string(),
            filename: file.file_name().unwrap().to_string_lossy().into_owned(),
            sha256: common::sha256_hex(&std::fs::read(file).unwrap()),
        }
    }

    fn assert_served_by(&self, server: &TestServer) {
        let bytes = server.listed_file(&self.project, &self.filename);
        assert_eq!(
            common::sha256_hex(&bytes),
            self.sha256,
            "{} through {}",
            self.filename,
            server.url
        );
    }
}

fn upload(server: &TestServer, file: &Path) {
    let output = server.twine_upload(&[file]);
    assert!(output.status.success(), "{}", common::text(&output));
}

/// The status and body of a twine-style upload of `file`, whatever the answer.
fn try_upload(server: &TestServer, file: &Path) -> (u16, String) {
    let filename = file.file_name().unwrap().to_string_lossy().into_owned();
    let content =
        reqwest::blocking::multipart::Part::bytes(std::fs::read(file).unwrap()).file_name(filename);
    let form = reqwest::blocking::multipart::Form::new()
        .text(":action", "file_upload")
        .text("protocol_version", "1")
        .part("content", content);
    let response = server
        .client()
        .post(format!("{}/legacy/", server.url))
        .basic_auth("__token__", Some(common::UPLOAD_TOKEN))
        .multipart(form)
        .send()
        .expect("POST /legacy/");
    (
        response.status().as_u16(),
        response.text().unwrap_or_default(),
    )
}

fn phase(name: &str, started: Instant) {
    eprintln!("cluster: {name} done at {:.0?}", started.elapsed());
}

#[test]
fn two_replicas_behind_a_balancer_lose_nothing_to_kills_a_lost_database_or_a_restart() {
    if !Runtime::Docker.available() {
        return;
    }
    let Some(cli) = ComposeCli::find() else {
        return;
    };
    let Some(images) = Images::present() else {
        return;
    };
    let started = Instant::now();
    let runtime_image = format!("edelweiss-cluster-test:{}", std::process::id());
    common::image::build_runtime_image(&runtime_image);
    let (builder, runtime) = Runtime::Docker.builders();
    let cluster = Cluster::start(
        cli,
        &images,
        &runtime_image,
        &replica_config(&builder, &runtime),
    );
    phase("start", started);
    let work = tempfile::tempdir().unwrap();

    let mut acknowledged = vec![uploaded_through_one_installed_through_the_other(
        &cluster,
        work.path(),
    )];
    phase("upload and install", started);
    acknowledged.push(killed_mid_upload(&cluster, work.path(), &acknowledged));
    phase("kill mid-upload", started);
    acknowledged.push(killed_mid_build(&cluster, work.path()));
    phase("kill mid-build", started);
    cut_off_from_the_database(&cluster, work.path(), &acknowledged);
    phase("cut off from PostgreSQL", started);
    everything_restarted(&cluster, &acknowledged);
    phase("restart", started);
}

/// Uploaded with twine through replica-1, installed with pip through replica-2.
fn uploaded_through_one_installed_through_the_other(
    cluster: &Cluster,
    work: &Path,
) -> Acknowledged {
    let wheel = WheelSpec::new("shared-pure", "1.0", "py3-none-any").write(work);
    upload(&cluster.server("replica-1"), &wheel);
    let target = work.join("installed");
    let other = cluster.server("replica-2");
    let address = other.url.trim_start_matches("http://");
    let host = address.split(':').next().unwrap();
    common::assert_success(
        common::tool("pip")
            .args(["install", "--no-deps", "--target"])
            .arg(&target)
            .args(["--index-url", &other.index_url()])
            // Plain http to an address other than the loopback's.
            .args(["--trusted-host", host])
            .arg("shared-pure==1.0"),
    );
    assert_eq!(
        std::fs::read_to_string(target.join("shared_pure/__init__.py")).unwrap(),
        "VERSION = \"1.0\"\n"
    );
    Acknowledged::of("shared-pure", &wheel)
}

/// Tried: replica-1 killed while half of a 24 MiB upload has reached it. Kept: the file is
/// listed by neither replica and its blob is not in the bucket; the files acknowledged
/// before are served by both; the same upload through the balancer afterwards is stored.
fn killed_mid_upload(cluster: &Cluster, work: &Path, before: &[Acknowledged]) -> Acknowledged {
    let mut large = WheelSpec::new("half-sent", "1.0", "py3-none-any");
    large
        .files
        .push(("half_sent/noise.bin".to_string(), noise(24 << 20)));
    large.stored = true;
    let wheel = large.write(work);
    let digest = common::sha256_hex(&std::fs::read(&wheel).unwrap());
    let connection =
        upload::half_sent_upload(&cluster.server("replica-1").url, &wheel, "half-sent", "1.0");
    cluster.kill("replica-1");
    drop(connection);

    let other = cluster.server("replica-2");
    assert_eq!(other.get("/simple/half-sent/").status(), 404);
    let objects = cluster.s3_objects();
    assert!(
        !objects.iter().any(|key| key.ends_with(&digest)),
        "the killed upload's blob is visible: {objects:?}"
    );
    cluster.start_services(&["replica-1"]);
    cluster.wait_healthy("replica-1");
    let restarted = cluster.server("replica-1");
    assert_eq!(restarted.get("/simple/half-sent/").status(), 404);
    for file in before {
        file.assert_served_by(&restarted);
        file.assert_served_by(&other);
    }

    upload(&cluster.server("balancer"), &wheel);
    let stored = Acknowledged::of("half-sent", &wheel);
    stored.assert_served_by(&restarted);
    stored.assert_served_by(&other);
    stored
}

/// Tried: replica-1 killed while a worker builds, its lease taken and renewed through the
/// balancer. Kept: the build succeeds once (one attempt, one wheel listed, one blob), and
/// asking for it again through any replica answers the same build without another run.
fn killed_mid_build(cluster: &Cluster, work: &Path) -> Acknowledged {
    let balancer = cluster.server("balancer");
    let sdist = c_extension_sdist(
        work,
        "cluster-ext",
        &format!("import time\ntime.sleep({BUILD_SECONDS})"),
    );
    upload(&balancer, &sdist);
    let id = request_build(&balancer, "cluster-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    common::poll_until(
        Duration::from_secs(180),
        format!("a build container of build {id}"),
        || !common::farm::running_containers(Runtime::Docker, &balancer, &id).is_empty(),
    );
    cluster.kill("replica-1");

    let build = wait_for_build(&balancer, &id, Duration::from_secs(600));
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    assert_eq!(build["attempts"], 1, "{build}");
    cluster.start_services(&["replica-1"]);
    cluster.wait_healthy("replica-1");
    let wheel = "cluster_ext-1.0-cp313-cp313-musllinux_1_2_x86_64.whl".to_string();
    for replica in ["replica-1", "replica-2"] {
        let server = cluster.server(replica);
        assert_eq!(
            server.listed_wheels("cluster-ext"),
            std::slice::from_ref(&wheel),
            "{replica}"
        );
        let again = request_build(&server, "cluster-ext", "1.0");
        assert_eq!(again["id"], id.as_str(), "{replica}: {again}");
        assert_eq!(again["state"], "succeeded", "{replica}: {again}");
    }
    let bytes = cluster
        .server("replica-2")
        .listed_file("cluster-ext", &wheel);
    let sha256 = common::sha256_hex(&bytes);
    let objects = cluster.s3_objects();
    assert_eq!(
        objects.iter().filter(|key| key.ends_with(&sha256)).count(),
        1,
        "{objects:?}"
    );
    assert_eq!(
        cluster.select(&format!(
            "SELECT state, record->>'attempts' FROM build_records WHERE id = '{id}'"
        )),
        ["succeeded|1"]
    );
    Acknowledged {
        project: "cluster-ext".to_string(),
        filename: wheel,
        sha256,
    }
}

/// Tried: replica-2 disconnected from the database's network. Kept: an upload through it
/// fails with a 503 that names the database (within the URL's `tcp_user_timeout`, not
/// after the kernel's retransmissions) and stores nothing; the page it had rendered is still served; once
/// reconnected, the same upload goes through and both replicas list it.
fn cut_off_from_the_database(cluster: &Cluster, work: &Path, acknowledged: &[Acknowledged]) {
    let page = "/simple/shared-pure/";
    let cached = cluster.server("replica-2").listed_filenames(page);
    cluster.disconnect("replica-2", "db");
    let replica = cluster.server("replica-2");
    let wheel = WheelSpec::new("while-cut-off", "1.0", "py3-none-any").write(work);
    let (status, body) = try_upload(&replica, &wheel);
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body.trim(),
        "Service Unavailable: the database does not answer; try again shortly"
    );
    let digest = common::sha256_hex(&std::fs::read(&wheel).unwrap());
    assert!(
        !cluster
            .s3_objects()
            .iter()
            .any(|key| key.ends_with(&digest)),
        "a refused upload's blob is in the bucket"
    );
    assert_eq!(replica.listed_filenames(page), cached);
    assert_eq!(
        cluster
            .server("replica-1")
            .get("/simple/while-cut-off/")
            .status(),
        404
    );

    cluster.connect("replica-2", "db");
    let replica = cluster.server("replica-2");
    common::poll_until(
        Duration::from_secs(60),
        "replica-2 taking uploads again",
        || try_upload(&replica, &wheel).0 == 200,
    );
    let stored = Acknowledged::of("while-cut-off", &wheel);
    stored.assert_served_by(&cluster.server("replica-1"));
    for file in acknowledged {
        file.assert_served_by(&replica);
    }
}

/// Tried: every service but the S3 server (whose objects live in its memory) stopped and
/// started again. Kept: every acknowledged file listed and served by both replicas and the
/// balancer, and the build still recorded.
fn everything_restarted(cluster: &Cluster, acknowledged: &[Acknowledged]) {
    let services = [
        "worker-1",
        "worker-2",
        "balancer",
        "replica-1",
        "replica-2",
        "postgres",
    ];
    cluster.stop_services(&services);
    let mut reversed = services;
    reversed.reverse();
    cluster.start_services(&reversed);
    for service in ["replica-1", "replica-2", "balancer"] {
        cluster.wait_healthy(service);
    }
    for service in ["replica-1", "replica-2", "balancer"] {
        let server = cluster.server(service);
        for file in acknowledged {
            file.assert_served_by(&server);
        }
    }
    assert_eq!(
        cluster.select("SELECT state FROM build_records"),
        ["succeeded"]
    );
}
