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

fn last_line(output: &[u8]) -> PathBuf {
    PathBuf::from(
        String::from_utf8_lossy(output)
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
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("workers/musl-root/build");
        let output = Command::new(&script)
            .output()
            .expect("run workers/musl-root/build");
        assert!(
            output.status.success(),
            "the musl root did not build:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let builder = last_line(&output.stdout);
        assert!(
            builder.join("usr/local/bin/python3.13").exists(),
            "{} has no python3.13",
            builder.display()
        );
        let runtime = Command::new(&script)
            .arg("--runtime")
            .output()
            .expect("run workers/musl-root/build --runtime");
        assert!(
            runtime.status.success(),
            "the runtime root did not build:\n{}",
            String::from_utf8_lossy(&runtime.stderr)
        );
        MuslRoot {
            builder,
            runtime: last_line(&runtime.stdout),
        }
    })
}

/// The builder root with the optional C++ layer (`workers/musl-root/build --cxx`): zig as
/// C and C++ compiler, sqlite3, PROJ and libgdal. Built once per machine, cached by inputs.
pub fn cxx_builder() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(root) = std::env::var_os("EDELWEISS_TEST_CXX_ROOT") {
            return PathBuf::from(root);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("workers/musl-root/build");
        let output = Command::new(&script)
            .arg("--cxx")
            .output()
            .expect("run workers/musl-root/build --cxx");
        assert!(
            output.status.success(),
            "the C++ layer did not build:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let root = last_line(&output.stdout);
        assert!(
            root.join("etc/edelweiss/build.env").exists(),
            "{} has no build.env",
            root.display()
        );
        root
    })
}

/// `program` inside the plain runtime root (no compiler, no -dev files, no network), with
/// `site` at /tmp/site on `PYTHONPATH` and the working directory /tmp/work (a tmpfs).
pub fn run_in_runtime_root(site: &Path, program: &[&str]) -> std::process::Output {
    let root = &musl_root().runtime;
    assert!(
        !root.join("usr/bin/gcc").exists() && !root.join("usr/local/bin/gcc").exists(),
        "the runtime root must have no compiler"
    );
    Command::new("bwrap")
        .arg("--ro-bind")
        .arg(root)
        .arg("/")
        .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
        .arg("--ro-bind")
        .arg(site)
        .arg("/tmp/site")
        .args([
            "--dir",
            "/tmp/work",
            "--chdir",
            "/tmp/work",
            "--unshare-net",
            "--clearenv",
        ])
        .args([
            "--setenv",
            "HOME",
            "/tmp",
            "--setenv",
            "PYTHONPATH",
            "/tmp/site",
        ])
        .args(["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin"])
        .args(program)
        .output()
        .expect("bwrap (bubblewrap)")
}
