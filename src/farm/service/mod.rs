//! The build farm's front, one job per file: `requests` (asking for builds and waiting on
//! them), `targets` (what the farm builds for, and with which builder), `wheelhouse` (what
//! a build may fetch), `workers` (the in-process pool), `outcomes` (recording a result),
//! `remote` (the remote-worker side), `dependencies` and `waiting` (builds that wait for
//! the builds of their requirements). The records live behind `BuildQueue`.

mod dependencies;
mod outcomes;
mod remote;
mod requests;
mod targets;
mod waiting;
mod wheelhouse;
mod workers;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, Notify};

use super::crates::{CrateRegistry, LockedCratesCache};
use super::pipeline::Pipeline;
use super::queue::{BuildQueue, QueueError};
use super::recipe::RecipeBook;
use super::records::BuildRecord;
use super::requirements::Requirements;
use super::steps::TargetBuilders;
use crate::auth::CredentialId;
use crate::executor::ExecutorError;
use crate::metadata::{IndexError, IndexStore};
use crate::mirror::{Mirror, MirrorError};
use crate::pypi::Sha256Digest;
use crate::storage::StorageError;

pub use dependencies::index_requirement;
pub use remote::RemoteReport;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("target `{target}` is not served by this build farm (configured: {configured})")]
    UnknownTarget { target: String, configured: String },
    #[error("no sdist of {project} {version} here or upstream")]
    NoSdist { project: String, version: String },
    #[error("cannot identify the builder for {target}: {source}")]
    Builder {
        target: String,
        source: ExecutorError,
    },
    #[error("cannot resolve the build requirements of {sdist} now: {reason}")]
    Resolve { sdist: String, reason: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct BuildService {
    queue: Arc<dyn BuildQueue>,
    pipeline: Pipeline,
    recipes: RecipeBook,
    targets: Vec<TargetBuilders>,
    index: Arc<dyn IndexStore>,
    mirror: Arc<Mirror>,
    /// Builder and runtime identities by image, asked of the executor once.
    identities: Mutex<HashMap<String, (String, String)>>,
    /// Notified whenever a build changes state: waiters and idle workers look again.
    changed: Notify,
    lease_seconds: u64,
    max_attempts: u32,
    resolve_build_requirements: bool,
    requirements: Requirements,
    known_missing: super::KnownMissing,
    crate_registry: CrateRegistry,
    crate_locks: LockedCratesCache,
}

pub struct ServiceParts {
    pub queue: Arc<dyn BuildQueue>,
    pub pipeline: Pipeline,
    pub recipes: RecipeBook,
    pub targets: Vec<TargetBuilders>,
    pub index: Arc<dyn IndexStore>,
    pub mirror: Arc<Mirror>,
    pub lease_seconds: u64,
    pub max_attempts: u32,
    /// Resolve each sdist's `[build-system]` through the index and build with isolation
    /// (false: the recipe's pins on top of the builder's own packages).
    pub resolve_build_requirements: bool,
    /// Where the crates of an sdist's Cargo.lock come from.
    pub crate_registry: CrateRegistry,
}

impl BuildService {
    pub fn new(parts: ServiceParts) -> Self {
        let requirements = Requirements::new(
            parts.index.clone(),
            parts.mirror.clone(),
            parts.pipeline.store.clone(),
        );
        Self {
            queue: parts.queue,
            pipeline: parts.pipeline,
            recipes: parts.recipes,
            targets: parts.targets,
            index: parts.index,
            mirror: parts.mirror,
            identities: Mutex::default(),
            changed: Notify::new(),
            lease_seconds: parts.lease_seconds,
            max_attempts: parts.max_attempts,
            resolve_build_requirements: parts.resolve_build_requirements,
            requirements,
            known_missing: super::KnownMissing::default(),
            crate_registry: parts.crate_registry,
            crate_locks: LockedCratesCache::default(),
        }
    }

    /// What project pages lacked per target when last checked (on-demand builds).
    pub fn known_missing(&self) -> &super::KnownMissing {
        &self.known_missing
    }

    /// A build by id.
    pub async fn record(&self, id: &str) -> Result<Option<BuildRecord>, BuildError> {
        Ok(self.queue.get(id).await?)
    }

    /// Every build, newest first.
    pub async fn list(&self) -> Result<Vec<BuildRecord>, BuildError> {
        Ok(self.queue.list().await?)
    }

    /// Whether a remote worker holding `credential` may fetch the blob `digest`: an input
    /// of a build it holds the lease of.
    pub async fn lets_fetch(
        &self,
        credential: &CredentialId,
        digest: Sha256Digest,
    ) -> Result<bool, BuildError> {
        Ok(self.queue.lets_fetch(credential, digest).await?)
    }

    pub async fn log_text(&self, record: &BuildRecord) -> Option<String> {
        let digest = record.log_sha256?;
        self.pipeline
            .store
            .get_bytes(digest)
            .await
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }
}
