//! The static `x86_64-unknown-linux-musl` binary that the Dockerfile ships, built with cargo
//! and run through the same end-to-end scenario as the cargo-built server.

mod common;

use std::process::Command;

use common::image::{build_runtime_image, docker, static_binary as build_static_binary};
use common::scenarios;
use common::server::{TestServer, base_config};

/// True when the ELF file has no `PT_INTERP` program header: nothing to load it.
fn is_static_elf(bytes: &[u8]) -> bool {
    assert_eq!(&bytes[..4], b"\x7fELF");
    let read_u16 = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let program_headers = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
    let (entry_size, count) = (read_u16(0x36), read_u16(0x38));
    const PT_INTERP: u32 = 3;
    (0..count).all(|index| {
        let at = program_headers + index * entry_size;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) != PT_INTERP
    })
}

#[test]
fn the_static_musl_binary_serves_pip_and_uv() {
    let binary = build_static_binary();
    assert!(
        is_static_elf(&std::fs::read(&binary).unwrap()),
        "{} is dynamically linked",
        binary.display()
    );
    let server = TestServer::start_binary(&binary, &base_config("", ""));
    let work = tempfile::tempdir().unwrap();
    scenarios::upload_then_install_for_musl(&server, work.path());
    // The image's HEALTHCHECK: the binary probes itself, as `FROM scratch` has no curl.
    let healthcheck = Command::new(&binary)
        .args(["healthcheck", "--url", &format!("{}/healthz", server.url)])
        .output()
        .unwrap();
    assert!(
        healthcheck.status.success(),
        "{}",
        common::text(&healthcheck)
    );
    let dead = Command::new(&binary)
        .args(["healthcheck", "--url", "http://127.0.0.1:9/healthz"])
        .output()
        .unwrap();
    assert!(!dead.status.success());
}

#[test]
fn the_runtime_image_builds_from_the_static_binary_and_answers_its_health_check() {
    if !common::farm::Runtime::Docker.available() {
        return;
    }
    let tag = format!("edelweiss-runtime-test:{}", std::process::id());
    build_runtime_image(&tag);
    let name = format!("edelweiss-runtime-test-{}", std::process::id());
    let started = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        "127.0.0.1::8080",
        "-e",
        "EDELWEISS_NO_UPSTREAM=true",
        &tag,
    ]);
    assert!(
        started.status.success(),
        "docker run failed: {}",
        common::text(&started)
    );
    let port_line = String::from_utf8_lossy(&docker(&["port", &name, "8080/tcp"]).stdout)
        .trim()
        .to_string();
    let address = port_line.lines().next().unwrap_or_default().to_string();
    let healthy = common::polled(
        std::time::Duration::from_secs(10),
        common::POLL_INTERVAL,
        || {
            reqwest::blocking::get(format!("http://{address}/healthz"))
                .is_ok_and(|response| response.status() == 200)
                .then_some(())
        },
    )
    .is_some();
    let probe = docker(&["exec", &name, "/edelweiss", "healthcheck"]);
    let inspect = docker(&[
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Volumes}} {{json .Config.Healthcheck.Test}}",
        &name,
    ]);
    let logs = common::text(&docker(&["logs", &name]));
    docker(&["rm", "--force", &name]);
    docker(&["rmi", "--force", &tag]);
    assert!(healthy, "/healthz did not answer on {address}: {logs}");
    assert!(
        probe.status.success(),
        "the image's health check failed: {}",
        common::text(&probe)
    );
    let config = String::from_utf8_lossy(&inspect.stdout);
    assert!(config.starts_with("65534:65534 {\"/data\":{}}"), "{config}");
    assert!(config.contains("healthcheck"), "{config}");
}
