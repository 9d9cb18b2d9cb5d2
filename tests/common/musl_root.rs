//! The musl test root (`workers/musl-root/build`): built once per machine and cached by its
//! inputs; each test process asks for it once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct MuslRoot {
    /// The builder: CPython 3.13, pip, auditwheel, patchelf, a C compiler, libpq.
    pub builder: PathBuf,
    /// The plain runtime: the same root without compiler or -dev libraries.
    pub runtime: PathBuf,
}

/// `workers/musl-root/build ARGS`: the root directory it prints last.
fn root_from_script(args: &[&str]) -> PathBuf {
    root_from("build", args)
}

/// `workers/musl-root/SCRIPT ARGS`: the root directory it prints last.
fn root_from(script: &str, args: &[&str]) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("workers/musl-root")
        .join(script);
    let output = Command::new(&script)
        .args(args)
        .output()
        .expect("run a workers/musl-root script");
    assert!(
        output.status.success(),
        "{} {args:?} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    )
}

pub fn musl_root() -> &'static MuslRoot {
    static ROOT: OnceLock<MuslRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        // A root assembled elsewhere (a development shortcut; CI always runs the script).
        if let Some(builder) = std::env::var_os("EDELWEISS_TEST_MUSL_ROOT").map(PathBuf::from) {
            let runtime = std::env::var_os("EDELWEISS_TEST_MUSL_RUNTIME")
                .map_or_else(|| builder.clone(), PathBuf::from);
            return MuslRoot { builder, runtime };
        }
        let builder = root_from_script(&[]);
        assert!(
            builder.join("usr/local/bin/python3.13").exists(),
            "{} has no python3.13",
            builder.display()
        );
        MuslRoot {
            builder,
            runtime: root_from_script(&["--runtime"]),
        }
    })
}

/// The builder root with the optional C++ layer (`workers/musl-root/build --cxx`): zig as
/// C++ compiler beside the root's gcc for C, PROJ and libgdal. Built once per machine, cached
/// by inputs.
pub fn cxx_builder() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(root) = std::env::var_os("EDELWEISS_TEST_CXX_ROOT") {
            return PathBuf::from(root);
        }
        let root = root_from_script(&["--cxx"]);
        assert!(
            root.join("etc/edelweiss/build.env").exists(),
            "{} has no build.env",
            root.display()
        );
        root
    })
}

/// The builder root with the Rust layer (`workers/musl-root/rust-layer`): rustc and cargo
/// building for musl, with build scripts and proc-macros built for glibc. Built once per
/// machine, cached by inputs.
pub fn rust_builder() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(root) = std::env::var_os("EDELWEISS_TEST_RUST_ROOT") {
            return PathBuf::from(root);
        }
        let root = root_from("rust-layer", &[]);
        assert!(
            root.join("usr/local/bin/cargo").exists(),
            "{} has no cargo",
            root.display()
        );
        root
    })
}

/// `program` inside the plain runtime root (no compiler, no -dev files, no network), with
/// `site` at /tmp/site on `PYTHONPATH` and the working directory /tmp/work (a tmpfs).
pub fn run_in_runtime_root(site: &Path, program: &[&str]) -> std::process::Output {
    in_runtime_root(site, "--ro-bind")
        .args([
            "--dir",
            "/tmp/work",
            "--chdir",
            "/tmp/work",
            "--unshare-net",
        ])
        .args(["--setenv", "PYTHONPATH", "/tmp/site"])
        .args(program)
        .output()
        .expect("bwrap (bubblewrap)")
}

/// bwrap over the plain runtime root, read-only, with `site` at /tmp/site (`bind`:
/// `--bind` or `--ro-bind`) and a clean environment; the caller adds the program.
pub fn in_runtime_root(site: &Path, bind: &str) -> Command {
    let root = &musl_root().runtime;
    assert!(
        !root.join("usr/bin/gcc").exists() && !root.join("usr/local/bin/gcc").exists(),
        "the runtime root must have no compiler"
    );
    let mut command = Command::new("bwrap");
    command
        .arg("--ro-bind")
        .arg(root)
        .arg("/")
        .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
        .arg(bind)
        .arg(site)
        .arg("/tmp/site")
        .args(["--clearenv", "--setenv", "HOME", "/tmp"])
        .args(["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin"]);
    command
}
