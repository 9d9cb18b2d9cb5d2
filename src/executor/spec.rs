//! What a container run needs, independent of the runtime that performs it.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Mount {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub time: Duration,
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids: u64,
    /// Size of the writable `/scratch` and `/tmp` (tmpfs).
    pub scratch_mb: u64,
    /// Largest file the process may write anywhere (RLIMIT_FSIZE where supported).
    pub max_file_mb: u64,
}

#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Unique container name; also the runc container id.
    pub name: String,
    /// `edelweiss.instance` and `edelweiss.build` labels, for cleanup after a crash.
    pub labels: Vec<(String, String)>,
    /// A root filesystem directory (runc) or an image reference (docker, podman).
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub workdir: String,
    pub limits: Limits,
    /// Where stdout and stderr are written.
    pub log: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Exited(i32),
    /// Killed at the time limit.
    TimedOut,
    /// Killed by the kernel for exceeding the memory limit.
    OutOfMemory,
}

/// The unprivileged user every build runs as.
pub const BUILD_UID: u32 = 65534;

pub const INSTANCE_LABEL: &str = "edelweiss.instance";
pub const BUILD_LABEL: &str = "edelweiss.build";
