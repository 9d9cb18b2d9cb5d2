//! The static `x86_64-unknown-linux-musl` binary the Dockerfile ships, built with cargo, and
//! the Dockerfile's runtime stage built around it with `docker build`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// The static binary, built once per test process.
pub fn static_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(build_static_binary).clone()
}

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
            MUSL_TARGET,
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "the static build failed (does `rustup target add {MUSL_TARGET}` and musl-tools exist? see .ci/setup)"
    );
    target_dir.join(MUSL_TARGET).join("release/edelweiss")
}

/// The Dockerfile's runtime stage, with the build stage's outputs taken from a context
/// directory instead: no image can be pulled here, and the legacy builder would build every
/// stage before the target.
pub fn runtime_stage(dockerfile: &str) -> String {
    let stage = &dockerfile[dockerfile
        .find("FROM scratch AS runtime")
        .expect("a runtime stage")..];
    stage
        .replace(
            "COPY --from=build /etc/ssl/certs/ca-certificates.crt",
            "COPY ca-certificates.crt",
        )
        .replace("COPY --from=build /out/edelweiss", "COPY edelweiss")
        .replace(
            "COPY --from=build --chown=65534:65534 /out/data",
            "COPY --chown=65534:65534 data",
        )
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("docker")
}

/// `docker build` of the runtime stage around the static binary, tagged `tag`.
pub fn build_runtime_image(tag: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(static_binary(), context.path().join("edelweiss")).unwrap();
    std::fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        context.path().join("ca-certificates.crt"),
    )
    .unwrap();
    std::fs::create_dir_all(context.path().join("data")).unwrap();
    std::fs::create_dir_all(context.path().join("config")).unwrap();
    std::fs::copy(
        root.join("config/edelweiss.toml"),
        context.path().join("config/edelweiss.toml"),
    )
    .unwrap();
    let dockerfile = runtime_stage(&std::fs::read_to_string(root.join("Dockerfile")).unwrap());
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    let built = docker(&[
        "build",
        "-q",
        "-t",
        tag,
        &context.path().display().to_string(),
    ]);
    assert!(
        built.status.success(),
        "docker build failed: {}",
        super::text(&built)
    );
}
