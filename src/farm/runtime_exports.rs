//! The check after repair that auditwheel cannot make on musl (the rule is in `symbols`):
//! what a target's runtime exports, read from its image or root through the executor
//! without running it, and kept per runtime identity so that builds do not read it again.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::records::Failure;
use super::steps::{infrastructure, package};
use super::symbols::{self, ElfSymbols, TargetExports};
use crate::executor::Executor;
use crate::pypi::{Arch, PlatformTag, Target};

type Exports = Arc<BTreeSet<String>>;

/// A part of the runtime that exports symbols to a wheel, and where it is looked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Provider {
    /// musl's loader, which is its libc, by its musl architecture name.
    Libc(String),
    /// CPython `major.minor`: its libpython and its executable, where either is installed.
    Interpreter(u8, u8),
    /// A NEEDED library, in musl's default search path (`/etc/ld-musl-*.path` is not read).
    Library(String),
}

impl Provider {
    /// Every candidate found counts: the exports are their union.
    fn candidates(&self) -> Vec<String> {
        match self {
            Self::Libc(arch) => vec![format!("/lib/ld-musl-{arch}.so.1")],
            Self::Interpreter(major, minor) => {
                let library = format!("libpython{major}.{minor}.so.1.0");
                let program = format!("python{major}.{minor}");
                ["/usr/local/lib", "/usr/lib"]
                    .map(|dir| format!("{dir}/{library}"))
                    .into_iter()
                    .chain(["/usr/local/bin", "/usr/bin"].map(|dir| format!("{dir}/{program}")))
                    .collect()
            }
            // A NEEDED name with a `/` is a path the loader takes as is: not looked up here.
            Self::Library(name) if name.contains('/') => Vec::new(),
            Self::Library(name) => ["/lib", "/usr/local/lib", "/usr/lib"]
                .map(|dir| format!("{dir}/{name}"))
                .to_vec(),
        }
    }
}

/// musl's name for an architecture (its loader is `/lib/ld-musl-<name>.so.1`).
fn musl_arch(arch: &Arch) -> &str {
    match arch {
        Arch::I686 => "i386",
        Arch::Armv7l => "armhf",
        Arch::Ppc64le => "powerpc64le",
        other => other.as_str(),
    }
}

/// The exports of each runtime's providers; `None` for a provider the runtime lacks.
#[derive(Default)]
pub struct RuntimeExports {
    known: Mutex<HashMap<(String, Provider), Option<Exports>>>,
}

impl RuntimeExports {
    /// Fails the build (a package failure) when a file of the wheel at `wheel` needs what
    /// neither the wheel nor the `runtime` of `target` provides. Only musllinux targets are
    /// checked: on glibc, auditwheel's symbol-version policy already is this check.
    pub async fn check(
        &self,
        executor: &dyn Executor,
        runtime: &str,
        target: &Target,
        wheel: &Path,
    ) -> Result<(), Failure> {
        let PlatformTag::Musllinux { arch, .. } = &target.platform else {
            return Ok(());
        };
        let wheel = wheel.to_path_buf();
        let elfs = tokio::task::spawn_blocking(move || symbols::wheel_elfs(&wheel))
            .await
            .map_err(|error| infrastructure(error.to_string()))?
            .map_err(|error| package(error.to_string()))?;
        if elfs.is_empty() {
            return Ok(());
        }
        let target_exports = self
            .target_exports(executor, runtime, target, arch, &elfs)
            .await?;
        let unresolved = symbols::unresolved(&elfs, &target_exports);
        if unresolved.is_empty() {
            return Ok(());
        }
        let files: Vec<String> = unresolved.iter().map(ToString::to_string).collect();
        Err(package(format!(
            "the wheel needs symbols or libraries the target does not provide (on musl, \
             auditwheel cannot check symbols): {}",
            files.join("; ")
        )))
    }

    /// What `runtime` exports to `elfs`: its libc and interpreter, which it must have, and
    /// the libraries they need from it, which it may lack.
    async fn target_exports(
        &self,
        executor: &dyn Executor,
        runtime: &str,
        target: &Target,
        arch: &Arch,
        elfs: &[symbols::WheelElf],
    ) -> Result<TargetExports, Failure> {
        let libc = Provider::Libc(musl_arch(arch).to_string());
        let interpreter = Provider::Interpreter(target.major, target.minor);
        let libraries = symbols::needed_from_target(elfs)
            .into_iter()
            .map(Provider::Library);
        let wanted: Vec<Provider> = [libc.clone(), interpreter.clone()]
            .into_iter()
            .chain(libraries)
            .collect();
        let mut found = self.exports(executor, runtime, &wanted).await?;
        let mut required = |provider: &Provider, what: &str| {
            found.remove(provider).flatten().ok_or_else(|| {
                let places = provider.candidates().join(" or ");
                infrastructure(format!("the runtime {runtime} has no {what} at {places}"))
            })
        };
        Ok(TargetExports {
            libc: required(&libc, "musl loader")?,
            interpreter: required(&interpreter, "Python interpreter")?,
            libraries: found
                .into_iter()
                .filter_map(|(provider, exports)| match (provider, exports) {
                    (Provider::Library(name), Some(exports)) => Some((name, exports)),
                    _ => None,
                })
                .collect(),
        })
    }

    /// The exports of `wanted` in `runtime`, reading only what is not known yet for the
    /// runtime's identity.
    async fn exports(
        &self,
        executor: &dyn Executor,
        runtime: &str,
        wanted: &[Provider],
    ) -> Result<HashMap<Provider, Option<Exports>>, Failure> {
        let identity = executor.builder_identity(runtime).await.map_err(|error| {
            infrastructure(format!("cannot identify the runtime {runtime}: {error}"))
        })?;
        let key = |provider: &Provider| (identity.clone(), provider.clone());
        let mut known = self.known.lock().await;
        let unknown: Vec<&Provider> = wanted
            .iter()
            .filter(|provider| !known.contains_key(&key(provider)))
            .collect();
        if !unknown.is_empty() {
            let read = read_exports(executor, runtime, &unknown).await?;
            for (provider, exports) in unknown.into_iter().zip(read) {
                known.insert(key(provider), exports);
            }
        }
        Ok(wanted
            .iter()
            .map(|provider| {
                let exports = known.get(&key(provider)).cloned().flatten();
                (provider.clone(), exports)
            })
            .collect())
    }
}

/// Each provider's exports in `runtime`, in one executor call: the union over its candidates
/// found, `None` if none is.
async fn read_exports(
    executor: &dyn Executor,
    runtime: &str,
    providers: &[&Provider],
) -> Result<Vec<Option<Exports>>, Failure> {
    let paths: Vec<String> = providers
        .iter()
        .flat_map(|provider| provider.candidates())
        .collect();
    let started = std::time::Instant::now();
    let files = executor
        .read_files(runtime, paths.clone())
        .await
        .map_err(|error| infrastructure(format!("cannot read the runtime {runtime}: {error}")))?;
    tracing::info!(
        runtime,
        ?paths,
        found = files.iter().flatten().count(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read what the runtime exports"
    );
    let mut files = files.into_iter();
    let mut read = Vec::with_capacity(providers.len());
    for provider in providers {
        let mut exports: Option<BTreeSet<String>> = None;
        for (path, file) in provider.candidates().iter().zip(files.by_ref()) {
            let Some(bytes) = file else { continue };
            let parsed = ElfSymbols::parse(&bytes).ok().flatten().ok_or_else(|| {
                infrastructure(format!("{path} in the runtime {runtime} is not ELF"))
            })?;
            exports.get_or_insert_default().extend(parsed.exported);
        }
        read.push(exports.map(Arc::new));
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Runc;
    use crate::farm::FailureKind;
    use crate::farm::symbols::tests::{shared_library, wheel};

    /// A runtime root with the host's musl as its loader, a stand-in libpython and a fixed
    /// identity (`etc/edelweiss-root-id`).
    fn runtime_root(dir: &Path) -> std::path::PathBuf {
        let root = dir.join("runtime");
        for sub in ["lib", "usr/local/lib", "etc"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::copy(
            "/lib/ld-musl-x86_64.so.1",
            root.join("lib/ld-musl-x86_64.so.1"),
        )
        .unwrap();
        let libpython = shared_library(
            dir,
            "libpython3.13.so.1.0",
            "long PyLong_FromLong(long v) { return v; }\n",
            &[],
        );
        std::fs::write(root.join("usr/local/lib/libpython3.13.so.1.0"), libpython).unwrap();
        std::fs::write(root.join("etc/edelweiss-root-id"), "first\n").unwrap();
        root
    }

    #[tokio::test]
    async fn a_runtime_is_read_once_per_identity_and_judges_each_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let root = runtime_root(dir.path());
        let runtime = root.display().to_string();
        let runc = Runc::new(dir.path().join("state"), dir.path().join("bundles"));
        let target: Target = "cp313-musllinux_1_2_x86_64".parse().unwrap();
        let good = shared_library(
            dir.path(),
            "_good.so",
            "#include <stdio.h>\nextern long PyLong_FromLong(long);\n\
             long PyInit__good(void) { puts(\"hi\"); return PyLong_FromLong(1); }\n",
            &[],
        );
        let bad = shared_library(
            dir.path(),
            "_bad.so",
            "extern const char *gnu_get_libc_version(void);\n\
             const char *PyInit__bad(void) { return gnu_get_libc_version(); }\n",
            &[],
        );
        let wheel_in = |name: &str, entries: &[(&str, &[u8])]| {
            let place = dir.path().join(name);
            std::fs::create_dir_all(&place).unwrap();
            wheel(&place, entries)
        };
        let good = wheel_in("good", &[("demo/_good.so", &good)]);
        let exports = RuntimeExports::default();
        let check = |wheel: std::path::PathBuf| {
            let (exports, runc, runtime, target) = (&exports, &runc, &runtime, &target);
            async move { exports.check(runc, runtime, target, &wheel).await }
        };

        assert_eq!(check(good.clone()).await, Ok(()));
        std::fs::remove_file(root.join("lib/ld-musl-x86_64.so.1")).unwrap();
        assert_eq!(check(good.clone()).await, Ok(()), "known for this identity");
        let bad = wheel_in("bad", &[("demo/_bad.so", &bad)]);
        let failure = check(bad).await.unwrap_err();
        assert_eq!(failure.kind, FailureKind::Package);
        assert!(
            failure
                .message
                .ends_with(": demo/_bad.so: gnu_get_libc_version"),
            "{}",
            failure.message
        );

        std::fs::write(root.join("etc/edelweiss-root-id"), "second\n").unwrap();
        let failure = check(good).await.unwrap_err();
        assert_eq!(failure.kind, FailureKind::Infrastructure);
        assert!(
            failure
                .message
                .contains("no musl loader at /lib/ld-musl-x86_64.so.1"),
            "{}",
            failure.message
        );
        let pure = wheel_in("pure", &[("demo/__init__.py", b"")]);
        assert_eq!(check(pure).await, Ok(()), "nothing to check, nothing read");
    }
}
