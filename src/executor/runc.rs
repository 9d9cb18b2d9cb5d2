//! runc: a daemonless run from an OCI bundle over a root filesystem directory. The bundle's
//! config gives the same isolation the docker flags give: a fresh network namespace with
//! nothing in it, a read-only root, no capabilities, an unprivileged user, cgroup limits.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::process::Command;

use super::files::read_in_root;
use super::spec::{BUILD_UID, RunOutcome, RunSpec};
use super::{Executor, ExecutorError};

/// A root that carries these files (written by workers/musl-root/build: its cache key and
/// inputs, and for a derived runtime root its own id) is identified by their content,
/// without walking every file.
const ROOT_ID_FILES: [&str; 2] = ["etc/edelweiss-musl-root", "etc/edelweiss-root-id"];

/// Mount points the executor itself adds to a root; they never count in its identity.
const MOUNT_POINTS: [&str; 8] = [
    "scratch",
    "tmp",
    "input",
    "output",
    "wheelhouse",
    "edelweiss",
    "proc",
    "dev",
];

pub struct Runc {
    /// runc's state directory, kept apart from any other runc user on the host.
    state_dir: PathBuf,
    /// Where bundles are written.
    bundles: PathBuf,
}

fn tmpfs(destination: &str, size_mb: u64) -> Value {
    json!({"destination": destination, "type": "tmpfs", "source": "tmpfs",
           "options": ["nosuid", "nodev", "mode=1777", format!("size={size_mb}m")]})
}

/// The OCI runtime config for `spec` over `rootfs`.
pub fn oci_config(spec: &RunSpec, rootfs: &Path) -> Value {
    let limits = &spec.limits;
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        tmpfs("/scratch", limits.scratch_mb),
        tmpfs("/tmp", limits.scratch_mb),
    ];
    for mount in &spec.mounts {
        let access = if mount.read_only { "ro" } else { "rw" };
        mounts.push(json!({"destination": mount.container, "type": "bind", "source": mount.host, "options": ["rbind", access, "nosuid", "nodev"]}));
    }
    let env: Vec<String> = spec
        .env
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let period: u64 = 100_000;
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": BUILD_UID, "gid": BUILD_UID},
            "args": spec.command,
            "env": env,
            "cwd": spec.workdir,
            "noNewPrivileges": true,
            "capabilities": {"bounding": [], "effective": [], "permitted": [], "ambient": []},
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096},
                {"type": "RLIMIT_FSIZE", "hard": limits.max_file_mb * 1024 * 1024, "soft": limits.max_file_mb * 1024 * 1024}
            ]
        },
        "root": {"path": rootfs, "readonly": true},
        "hostname": "edelweiss-build",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "resources": {
                "memory": {"limit": limits.memory_mb * 1024 * 1024, "swap": limits.memory_mb * 1024 * 1024},
                "pids": {"limit": limits.pids},
                "cpu": {"quota": (limits.cpus * period as f64) as i64, "period": period}
            },
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

impl Runc {
    pub fn new(state_dir: PathBuf, bundles: PathBuf) -> Self {
        Self { state_dir, bundles }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("runc");
        command.arg("--root").arg(&self.state_dir);
        command
    }

    async fn quiet(&self, args: &[&str]) -> Result<String, ExecutorError> {
        let output = self.command().args(args).output().await.map_err(|error| {
            ExecutorError::Unavailable {
                executor: "runc",
                reason: error.to_string(),
            }
        })?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    async fn destroy(&self, id: &str) {
        let _ = self.quiet(&["kill", id, "KILL"]).await;
        let _ = self.quiet(&["delete", "--force", id]).await;
    }

    /// A read-only root cannot gain mount points at run time, so they are made first.
    /// runc gives a tmpfs the mode of the directory it covers, so the scratch mount
    /// points must be world-writable (sticky) for the unprivileged build user.
    fn ensure_mount_points(rootfs: &Path, spec: &RunSpec) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let targets = spec
            .mounts
            .iter()
            .map(|mount| mount.container.as_str())
            .chain(["/proc", "/dev"]);
        for target in targets {
            let path = rootfs.join(target.trim_start_matches('/'));
            if !path.exists() {
                std::fs::create_dir_all(path)?;
            }
        }
        for scratch in ["scratch", "tmp"] {
            let path = rootfs.join(scratch);
            std::fs::create_dir_all(&path)?;
            if path.metadata()?.permissions().mode() & 0o7777 != 0o1777 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o1777))?;
            }
        }
        Ok(())
    }

    async fn run_spec(&self, spec: RunSpec) -> Result<RunOutcome, ExecutorError> {
        let rootfs = std::path::absolute(&spec.image)?;
        if !rootfs.join("bin").exists() && !rootfs.join("usr").exists() {
            return Err(ExecutorError::Unavailable {
                executor: "runc",
                reason: format!("{} is not a root filesystem", rootfs.display()),
            });
        }
        Self::ensure_mount_points(&rootfs, &spec)?;
        let bundle = self.bundles.join(&spec.name);
        std::fs::create_dir_all(&bundle)?;
        std::fs::create_dir_all(&self.state_dir)?;
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&oci_config(&spec, &rootfs))
                .map_err(std::io::Error::other)?,
        )?;
        self.destroy(&spec.name).await;
        let log = std::fs::File::create(&spec.log)?;
        let mut child = self
            .command()
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&spec.name)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| ExecutorError::Unavailable {
                executor: "runc",
                reason: error.to_string(),
            })?;
        let outcome = match tokio::time::timeout(spec.limits.time, child.wait()).await {
            Ok(status) => {
                let code = status?.code().unwrap_or(-1);
                // 137 = killed by SIGKILL; with a memory limit set, the OOM killer is the sender.
                if code == 137 {
                    RunOutcome::OutOfMemory
                } else {
                    RunOutcome::Exited(code)
                }
            }
            Err(_) => {
                self.destroy(&spec.name).await;
                let _ = child.wait().await;
                RunOutcome::TimedOut
            }
        };
        self.destroy(&spec.name).await;
        let _ = std::fs::remove_dir_all(&bundle);
        Ok(outcome)
    }
}

/// Hashes relative path, size and modification time of every file: changes when the root
/// does, without reading hundreds of megabytes.
fn walk_identity(rootfs: &Path) -> std::io::Result<String> {
    let mut entries = Vec::new();
    let mut stack = vec![rootfs.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if dir == rootfs
                && entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| MOUNT_POINTS.contains(&name))
            {
                continue;
            }
            let metadata = entry.path().symlink_metadata()?;
            if metadata.is_dir() {
                stack.push(entry.path());
            }
            let modified = metadata
                .modified()
                .ok()
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |since| since.as_secs());
            let relative = entry
                .path()
                .strip_prefix(rootfs)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            entries.push(format!(
                "{}\0{}\0{modified}\n",
                relative.display(),
                metadata.len()
            ));
        }
    }
    entries.sort();
    let mut hasher = Sha256::new();
    for entry in entries {
        hasher.update(entry.as_bytes());
    }
    Ok(format!("rootfs-walk:{}", hex::encode(hasher.finalize())))
}

impl Executor for Runc {
    fn name(&self) -> &'static str {
        "runc"
    }

    fn builder_identity(&self, image: &str) -> BoxFuture<'_, Result<String, ExecutorError>> {
        let rootfs = PathBuf::from(image);
        async move {
            let ids: Vec<Vec<u8>> = ROOT_ID_FILES
                .iter()
                .filter_map(|file| std::fs::read(rootfs.join(file)).ok())
                .collect();
            if !ids.is_empty() {
                return Ok(format!(
                    "rootfs:{}",
                    crate::pypi::Sha256Digest::of(&ids.concat())
                ));
            }
            tokio::task::spawn_blocking(move || walk_identity(&rootfs))
                .await
                .map_err(|error| ExecutorError::Failed {
                    executor: "runc",
                    action: "hash the root",
                    reason: error.to_string(),
                })?
                .map_err(ExecutorError::Io)
        }
        .boxed()
    }

    fn run(&self, spec: RunSpec) -> BoxFuture<'_, Result<RunOutcome, ExecutorError>> {
        self.run_spec(spec).boxed()
    }

    fn read_files(
        &self,
        image: &str,
        paths: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Option<Vec<u8>>>, ExecutorError>> {
        let rootfs = PathBuf::from(image);
        let failed = |reason: String| ExecutorError::Failed {
            executor: "runc",
            action: "read a file of the root",
            reason,
        };
        async move {
            tokio::task::spawn_blocking(move || {
                paths
                    .iter()
                    .map(|path| read_in_root(&rootfs, path))
                    .collect::<std::io::Result<Vec<_>>>()
            })
            .await
            .map_err(|error| failed(error.to_string()))?
            .map_err(|error| failed(error.to_string()))
        }
        .boxed()
    }

    fn remove_orphans(&self, instance: &str) -> BoxFuture<'_, Result<usize, ExecutorError>> {
        let prefix = format!("edelweiss-{instance}-");
        async move {
            let listing = self.quiet(&["list", "--quiet"]).await?;
            let orphans: Vec<&str> = listing
                .lines()
                .filter(|id| id.starts_with(&prefix))
                .collect();
            for id in &orphans {
                self.destroy(id).await;
            }
            Ok(orphans.len())
        }
        .boxed()
    }
}
