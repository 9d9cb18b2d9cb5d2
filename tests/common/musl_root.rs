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
