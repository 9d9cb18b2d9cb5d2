//! Running one build step in a container. One trait; `runc` (a root filesystem directory,
//! no daemon) and `docker`/`podman` (an image, through their shared CLI flags).

mod cli;
mod files;
mod runc;
mod spec;

pub use cli::{ContainerCli, Engine};
pub use runc::Runc;
pub use spec::{BUILD_LABEL, BUILD_UID, INSTANCE_LABEL, Limits, Mount, RunOutcome, RunSpec};

use futures::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("{executor} is not usable here: {reason}")]
    Unavailable {
        executor: &'static str,
        reason: String,
    },
    #[error("{executor} failed to {action}: {reason}")]
    Failed {
        executor: &'static str,
        action: &'static str,
        reason: String,
    },
    #[error("cannot prepare the run: {0}")]
    Io(#[from] std::io::Error),
}

/// A container runtime. Every run is isolated (no network, read-only root, limits) and
/// leaves nothing behind, whatever its outcome.
pub trait Executor: Send + Sync {
    fn name(&self) -> &'static str;

    /// What identifies the builder for the build key: an image ID, or the root's content id.
    fn builder_identity(&self, image: &str) -> BoxFuture<'_, Result<String, ExecutorError>>;

    fn run(&self, spec: RunSpec) -> BoxFuture<'_, Result<RunOutcome, ExecutorError>>;

    /// Files of an image or root, read without running it: each path's bytes (symlinks
    /// followed inside the image), or `None` where it has no such file.
    fn read_files(
        &self,
        image: &str,
        paths: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Option<Vec<u8>>>, ExecutorError>>;

    /// Removes containers a crashed process of this instance left behind.
    fn remove_orphans(&self, instance: &str) -> BoxFuture<'_, Result<usize, ExecutorError>>;
}
