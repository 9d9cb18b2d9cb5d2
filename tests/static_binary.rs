//! The static `x86_64-unknown-linux-musl` binary that the Dockerfile ships, built with cargo
//! and run through the same end-to-end scenario as the cargo-built server.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::scenarios;
use common::server::{TestServer, base_config};

const TARGET: &str = "x86_64-unknown-linux-musl";

fn build_static_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A target dir of its own, so this build never waits on the one running the tests.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "--bin",
            "edelweiss",
            "--target",
            TARGET,
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "the static build failed (does `rustup target add {TARGET}` and musl-tools exist? see .ci/setup)"
    );
    target_dir.join(TARGET).join("release/edelweiss")
}

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
