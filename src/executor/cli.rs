//! docker and podman, through the CLI flags they share.

use std::process::Stdio;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::process::Command;

use super::files::{CopiedEntry, MAX_SYMLINKS, copied_entry, symlink_destination};
use super::spec::{BUILD_UID, INSTANCE_LABEL, RunOutcome, RunSpec};
use super::{Executor, ExecutorError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Docker,
    Podman,
}

impl Engine {
    fn program(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Podman => "podman",
        }
    }
}

/// `nofile` and `nproc` for a build, never above this process's hard limits (from
/// /proc/self/limits). The caps are what builds need; higher values were refused by runc
/// under podman on these machines even below the hard limit.
fn host_rlimits() -> Vec<(&'static str, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let hard = |label: &str| {
        let line = limits.lines().find(|line| line.starts_with(label))?;
        line[label.len()..]
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    [
        ("nofile", "Max open files", 4_096),
        ("nproc", "Max processes", 16_384),
    ]
    .into_iter()
    .map(|(name, label, cap)| (name, hard(label).map_or(cap, |hard| hard.min(cap))))
    .collect()
}

/// How `cp` says the path does not exist: docker "Could not find the file", podman
/// "could not be found ... no such file or directory".
fn is_absent(stderr: &str) -> bool {
    let stderr = stderr.to_lowercase();
    ["could not find", "could not be found", "no such file"]
        .iter()
        .any(|phrase| stderr.contains(phrase))
}

pub struct ContainerCli {
    engine: Engine,
    /// Labels the containers this executor creates itself (to read an image's files), so
    /// `remove_orphans` finds them after a crash as it finds build containers.
    instance: String,
}

impl ContainerCli {
    pub fn new(engine: Engine, instance: &str) -> Self {
        Self {
            engine,
            instance: instance.to_string(),
        }
    }

    /// The `create` arguments of the never-started container files are copied out of.
    fn reader_arguments(&self, image: &str) -> Vec<String> {
        vec![
            "create".into(),
            "--network=none".into(),
            "--label".into(),
            format!("{INSTANCE_LABEL}={}", self.instance),
            image.into(),
            "/edelweiss-never-started".into(),
        ]
    }

    /// The `run` arguments for `spec`: no network, read-only root, no capabilities, an
    /// unprivileged user, and every limit.
    pub fn run_arguments(spec: &RunSpec) -> Vec<String> {
        let limits = &spec.limits;
        let mut args: Vec<String> = vec!["run".into(), "--name".into(), spec.name.clone()];
        for (key, value) in &spec.labels {
            args.extend(["--label".into(), format!("{key}={value}")]);
        }
        args.extend(
            [
                "--network=none",
                "--read-only",
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
            ]
            .map(String::from),
        );
        args.push(format!("--user={BUILD_UID}:{BUILD_UID}"));
        args.push(format!("--memory={}m", limits.memory_mb));
        args.push(format!("--memory-swap={}m", limits.memory_mb));
        args.push(format!("--cpus={}", limits.cpus));
        args.push(format!("--pids-limit={}", limits.pids));
        args.push(format!(
            "--ulimit=fsize={}",
            limits.max_file_mb * 1024 * 1024
        ));
        // Explicit, and within this process's own hard limits: podman's defaults for these
        // exceed what a restricted host allows, and runc then refuses to start at all.
        for (name, value) in host_rlimits() {
            args.push(format!("--ulimit={name}={value}:{value}"));
        }
        args.push(format!(
            "--tmpfs=/scratch:rw,exec,size={}m,mode=1777",
            limits.scratch_mb
        ));
        args.push(format!(
            "--tmpfs=/tmp:rw,exec,size={}m,mode=1777",
            limits.scratch_mb
        ));
        for mount in &spec.mounts {
            let mode = if mount.read_only { ",readonly" } else { "" };
            args.push(format!(
                "--mount=type=bind,source={},target={}{mode}",
                mount.host.display(),
                mount.container
            ));
        }
        for (key, value) in &spec.env {
            args.push(format!("--env={key}={value}"));
        }
        args.push(format!("--workdir={}", spec.workdir));
        args.push(spec.image.clone());
        args.extend(spec.command.iter().cloned());
        args
    }

    async fn output(&self, args: &[&str]) -> Result<String, ExecutorError> {
        let output = Command::new(self.engine.program())
            .args(args)
            .output()
            .await
            .map_err(|error| ExecutorError::Unavailable {
                executor: self.engine.program(),
                reason: error.to_string(),
            })?;
        if !output.status.success() {
            return Err(ExecutorError::Failed {
                executor: self.engine.program(),
                action: "answer",
                reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    async fn remove(&self, name: &str) {
        let _ = Command::new(self.engine.program())
            .args(["rm", "--force", name])
            .output()
            .await;
    }

    /// `image`'s files through a container that is created, copied from and removed, never
    /// started.
    async fn copy_files_out(
        &self,
        image: &str,
        paths: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, ExecutorError> {
        let arguments = self.reader_arguments(image);
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        let container = self.output(&arguments).await?;
        let mut files = Vec::with_capacity(paths.len());
        let copied: Result<(), ExecutorError> = async {
            for path in paths {
                files.push(self.copy_out(&container, path).await?);
            }
            Ok(())
        }
        .await;
        self.remove(&container).await;
        copied.map(|()| files)
    }

    /// One file out of a created container, following symlinks (docker copies a symlink
    /// as itself; podman follows it).
    async fn copy_out(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, ExecutorError> {
        let failed = |reason: String| ExecutorError::Failed {
            executor: self.engine.program(),
            action: "copy a file out of an image",
            reason,
        };
        let mut path = path.to_string();
        for _ in 0..=MAX_SYMLINKS {
            let output = Command::new(self.engine.program())
                .args(["cp", &format!("{container}:{path}"), "-"])
                .output()
                .await
                .map_err(|error| failed(error.to_string()))?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
                return match is_absent(&stderr) {
                    true => Ok(None),
                    false => Err(failed(stderr)),
                };
            }
            match copied_entry(&output.stdout).map_err(|error| failed(error.to_string()))? {
                CopiedEntry::File(bytes) => return Ok(Some(bytes)),
                CopiedEntry::Symlink(target) => path = symlink_destination(&path, &target),
            }
        }
        Err(failed(format!("{path}: more than {MAX_SYMLINKS} symlinks")))
    }

    async fn run_spec(&self, spec: RunSpec) -> Result<RunOutcome, ExecutorError> {
        let log = std::fs::File::create(&spec.log)?;
        let mut child = Command::new(self.engine.program())
            .args(Self::run_arguments(&spec))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| ExecutorError::Unavailable {
                executor: self.engine.program(),
                reason: error.to_string(),
            })?;
        let outcome = match tokio::time::timeout(spec.limits.time, child.wait()).await {
            Ok(status) => {
                let status = status?;
                let oom = self
                    .output(&["inspect", "--format", "{{.State.OOMKilled}}", &spec.name])
                    .await;
                // 137 = SIGKILL: with nothing of ours killing it before the time limit, the
                // kernel did, at the memory limit (podman does not always set OOMKilled).
                let code = status.code().unwrap_or(-1);
                if oom.is_ok_and(|text| text == "true") || code == 137 {
                    RunOutcome::OutOfMemory
                } else {
                    RunOutcome::Exited(code)
                }
            }
            Err(_) => {
                let _ = self.output(&["kill", &spec.name]).await;
                let _ = child.wait().await;
                RunOutcome::TimedOut
            }
        };
        self.remove(&spec.name).await;
        Ok(outcome)
    }
}

impl Executor for ContainerCli {
    fn name(&self) -> &'static str {
        self.engine.program()
    }

    fn builder_identity(&self, image: &str) -> BoxFuture<'_, Result<String, ExecutorError>> {
        let image = image.to_string();
        async move {
            self.output(&["image", "inspect", "--format", "{{.Id}}", &image])
                .await
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
        let image = image.to_string();
        async move { self.copy_files_out(&image, &paths).await }.boxed()
    }

    fn remove_orphans(&self, instance: &str) -> BoxFuture<'_, Result<usize, ExecutorError>> {
        let filter = format!("label={INSTANCE_LABEL}={instance}");
        async move {
            let names = self
                .output(&["ps", "--all", "--quiet", "--filter", &filter])
                .await?;
            let ids: Vec<&str> = names.lines().filter(|line| !line.is_empty()).collect();
            for id in &ids {
                self.remove(id).await;
            }
            Ok(ids.len())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{Limits, Mount};
    use std::time::Duration;

    #[test]
    fn runs_isolated_unprivileged_and_limited() {
        let spec = RunSpec {
            name: "edelweiss-build-7".into(),
            labels: vec![(INSTANCE_LABEL.into(), "abc".into())],
            image: "edelweiss-builder:cp313".into(),
            command: vec!["/bin/sh".into(), "/edelweiss/build.sh".into()],
            env: vec![("TARGET".into(), "cp313-musllinux_1_2_x86_64".into())],
            mounts: vec![Mount {
                host: "/srv/in".into(),
                container: "/input".into(),
                read_only: true,
            }],
            workdir: "/scratch".into(),
            limits: Limits {
                time: Duration::from_secs(60),
                memory_mb: 1024,
                cpus: 2.0,
                pids: 256,
                scratch_mb: 512,
                max_file_mb: 256,
            },
            log: "/dev/null".into(),
        };
        let args = ContainerCli::run_arguments(&spec).join(" ");
        for expected in [
            "--name edelweiss-build-7",
            "--label edelweiss.instance=abc",
            "--network=none",
            "--read-only",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            "--user=65534:65534",
            "--memory=1024m",
            "--pids-limit=256",
            "--tmpfs=/scratch:rw,exec,size=512m,mode=1777",
            "--mount=type=bind,source=/srv/in,target=/input,readonly",
            "--env=TARGET=cp313-musllinux_1_2_x86_64",
            "edelweiss-builder:cp313 /bin/sh /edelweiss/build.sh",
        ] {
            assert!(args.contains(expected), "{expected} missing from {args}");
        }
    }

    #[test]
    fn containers_made_to_read_files_carry_the_instance_label_and_never_run() {
        let args = ContainerCli::new(Engine::Docker, "abc")
            .reader_arguments("edelweiss-runtime:1")
            .join(" ");
        assert_eq!(
            args,
            "create --network=none --label edelweiss.instance=abc edelweiss-runtime:1 /edelweiss-never-started"
        );
    }
}
