//! The build farm's front: requests (deduplicated by key), the in-process worker pool,
//! waiting for results, and finding the sdist a request names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Mutex, Notify};

use super::fetcher::Fetcher;
use super::key::{BuildKey, KeyInputs};
use super::pipeline::Pipeline;
use super::queue::{BuildQueue, QueueError, Requested};
use super::recipe::{Recipe, RecipeBook};
use super::records::{
    BuildRecord, BuildRequirements, BuildState, BuiltWheel, Failure, FailureKind, LeaseHolder,
    timestamp,
};
use super::requirements::Requirements;
use super::resolve::BoxFuture;
use super::steps::TargetBuilders;
use crate::executor::ExecutorError;
use crate::metadata::{FileKind, IndexError, IndexStore};
use crate::mirror::{Mirror, MirrorError, MirroredFile};
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{DistFilename, PackageName, Sha256Digest, Target, Version};
use crate::storage::{PutOutcome, StorageError};

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

/// A wheel of a build's requirements, held in the blob store.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WheelhouseFile {
    pub filename: String,
    pub sha256: Sha256Digest,
}

/// A build handed to a remote worker.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Assignment {
    pub build: BuildRecord,
    pub recipe: Recipe,
    /// Fetched from `/api/v1/workers/blobs/<sha256>`.
    pub wheelhouse: Vec<WheelhouseFile>,
    /// The builder for this build's recipe, as the server's target names it.
    pub builder: String,
    pub runtime: String,
    pub lease_seconds: u64,
}

/// What a remote worker reports: a tested wheel (spooled here, and its filename) or a
/// failure, and the log.
/// Whether a remote result was recorded by this report or earlier (by a retry or by another
/// worker's result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Now,
    Already,
}

impl Recorded {
    /// The `Edelweiss-Result` response header the worker reads.
    pub const HEADER: &'static str = "edelweiss-result";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Now => "recorded",
            Self::Already => "already-recorded",
        }
    }
}

pub struct RemoteReport {
    pub outcome: Result<(std::path::PathBuf, String), Failure>,
    pub log: Vec<u8>,
}

pub struct BuildService {
    pub(super) queue: BuildQueue,
    pipeline: Pipeline,
    pub(super) recipes: RecipeBook,
    targets: Vec<TargetBuilders>,
    pub(super) index: Arc<dyn IndexStore>,
    pub(super) mirror: Arc<Mirror>,
    identities: Mutex<HashMap<String, (String, String)>>,
    pub(super) changed: Notify,
    lease_seconds: u64,
    max_attempts: u32,
    pub(super) resolve_build_requirements: bool,
    pub(super) requirements: Requirements,
}

pub struct ServiceParts {
    pub queue: BuildQueue,
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
        }
    }

    pub fn queue(&self) -> &BuildQueue {
        &self.queue
    }

    pub fn serves(&self, target: &Target) -> bool {
        self.targets
            .iter()
            .any(|builders| &builders.target == target)
    }

    /// The farm's target whose wheels install on a client's target: same interpreter and
    /// arch, the newest musllinux version at most the client's.
    pub fn target_for_client(&self, client: &Target) -> Option<Target> {
        let mut usable: Vec<&Target> = self
            .targets
            .iter()
            .map(|builders| &builders.target)
            .filter(|target| {
                target.major == client.major
                    && target.minor == client.minor
                    && target.platform.runs_on(&client.platform)
            })
            .collect();
        usable.sort_by_key(|target| target.to_string());
        usable.last().map(|target| (*target).clone())
    }

    /// Queues (or joins) builds for the releases of `detail` that lack a wheel for `target`;
    /// returns their build ids. Failures are logged: a page must not fail because of them.
    pub async fn queue_missing(
        &self,
        project: &PackageName,
        detail: &ProjectDetail,
        target: &Target,
        releases: usize,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        for missing in super::on_demand::missing_wheels(detail, target, releases) {
            let result = async {
                let sdist = self.find_sdist(project, &missing.version).await?;
                self.request(project, &missing.version, sdist, target).await
            }
            .await;
            match result {
                Ok((record, _)) if record.is_final() && record.state == BuildState::Failed => {}
                Ok((record, _)) => ids.push(record.id),
                Err(error) => {
                    tracing::warn!(project = %project, version = %missing.version, %error, "could not queue an on-demand build")
                }
            }
        }
        ids
    }

    pub fn target_names(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|builders| builders.target.to_string())
            .collect()
    }

    fn builders(&self, target: &Target) -> Result<&TargetBuilders, BuildError> {
        self.targets
            .iter()
            .find(|builders| &builders.target == target)
            .ok_or_else(|| BuildError::UnknownTarget {
                target: target.to_string(),
                configured: self.target_names().join(", "),
            })
    }

    /// Builder and runtime identities, asked of the executor once per image.
    async fn identities(
        &self,
        builders: &TargetBuilders,
        recipe: &Recipe,
    ) -> Result<(String, String), BuildError> {
        let builder_image = builders.builder_for(recipe);
        let key = format!("{builder_image}\0{}", builders.runtime);
        let mut known = self.identities.lock().await;
        if let Some(identities) = known.get(&key) {
            return Ok(identities.clone());
        }
        let error = |source| BuildError::Builder {
            target: builders.target.to_string(),
            source,
        };
        let executor = &self.pipeline.steps.executor;
        let builder = executor
            .builder_identity(&builder_image)
            .await
            .map_err(error)?;
        let runtime = executor
            .builder_identity(&builders.runtime)
            .await
            .map_err(error)?;
        known.insert(key, (builder.clone(), runtime.clone()));
        Ok((builder, runtime))
    }

    /// The sdist of a release: held here, or fetched through the mirror (and so cached).
    pub async fn find_sdist(
        &self,
        project: &PackageName,
        version: &Version,
    ) -> Result<(String, Sha256Digest), BuildError> {
        let is_release_sdist = |filename: &str| matches!(filename.parse::<DistFilename>(), Ok(DistFilename::Sdist(sdist)) if &sdist.version == version);
        if let Some(local) = self
            .index
            .files(project)?
            .into_iter()
            .find(|file| file.kind == FileKind::Sdist && is_release_sdist(&file.filename))
        {
            return Ok((local.filename, local.sha256));
        }
        let no_sdist = || BuildError::NoSdist {
            project: project.to_string(),
            version: version.to_string(),
        };
        if !self.mirror.is_enabled() {
            return Err(no_sdist());
        }
        let page = self
            .mirror
            .project_page(project)
            .await?
            .ok_or_else(no_sdist)?;
        let (filename, digest) = page
            .detail
            .files
            .iter()
            .filter(|file| is_release_sdist(&file.filename) && !file.yanked.is_yanked())
            .find_map(|file| {
                Some((
                    file.filename.clone(),
                    file.sha256()?.parse::<Sha256Digest>().ok()?,
                ))
            })
            .ok_or_else(no_sdist)?;
        match self
            .mirror
            .open_file(digest, &filename)
            .await?
            .ok_or_else(no_sdist)?
        {
            MirroredFile::Stored(_) => {}
            MirroredFile::Streaming { mut body, .. } => {
                while let Some(chunk) = body.next().await {
                    chunk.map_err(|error| {
                        BuildError::Mirror(MirrorError::Storage(StorageError::Io {
                            path: filename.clone().into(),
                            source: error,
                        }))
                    })?;
                }
            }
        }
        Ok((filename, digest))
    }

    async fn wheelhouse_bytes(
        &self,
        files: &[WheelhouseFile],
    ) -> Result<Vec<(String, bytes::Bytes)>, Failure> {
        let mut loaded = Vec::new();
        for file in files {
            let bytes = self
                .pipeline
                .store
                .get_bytes(file.sha256)
                .await
                .map_err(|error| Failure::infrastructure(error.to_string()))?;
            loaded.push((file.filename.clone(), bytes));
        }
        Ok(loaded)
    }

    /// Requests a build of a stored sdist for `target`: a cached result, a running build
    /// joined, or a new one queued (waiting first for the builds of build requirements that
    /// have no wheel yet).
    pub async fn request(
        &self,
        project: &PackageName,
        version: &Version,
        sdist: (String, Sha256Digest),
        target: &Target,
    ) -> Result<(BuildRecord, Requested), BuildError> {
        self.request_within(project, version, sdist, target, &[])
            .await
    }

    /// `request`, made for the builds in `chain` (outermost first) that need this one.
    pub(super) fn request_within<'a>(
        &'a self,
        project: &'a PackageName,
        version: &'a Version,
        sdist: (String, Sha256Digest),
        target: &'a Target,
        chain: &'a [PackageName],
    ) -> BoxFuture<'a, Result<(BuildRecord, Requested), BuildError>> {
        Box::pin(async move {
            let recipe = self.recipes.for_release(project, version);
            let build_requirements = match self.resolve_build_requirements {
                true => Some(self.requirements.for_sdist(&sdist, target, recipe).await?),
                false => None,
            };
            let (key, builder) = self
                .key_of(&sdist, target, recipe, build_requirements.as_ref())
                .await?;
            let missing = build_requirements
                .as_ref()
                .and_then(|requirements| requirements.missing.clone());
            let mut candidate = BuildRecord {
                id: super::id::BuildId::new().to_string(),
                key: key.to_string(),
                project: project.to_string(),
                version: version.to_string(),
                target: target.to_string(),
                sdist_filename: sdist.0,
                sdist_sha256: sdist.1,
                builder,
                state: BuildState::Queued,
                lease: None,
                attempts: 0,
                failure: None,
                wheel: None,
                queued_at: timestamp(),
                started_at: None,
                finished_at: None,
                log_sha256: None,
                build_requirements,
                needs: Vec::new(),
            };
            if let Some(missing) = missing {
                let mut chain = chain.to_vec();
                chain.push(project.clone());
                self.wait_or_fail(&mut candidate, &missing, target, &chain)
                    .await?;
            }
            let (record, requested) = self.queue.request(candidate)?;
            if requested == Requested::Queued {
                tracing::info!(build = %record.id, project = %record.project, version = %record.version, target = %record.target, state = ?record.state, "build queued");
                self.changed.notify_waiters();
            }
            if record.state == BuildState::Waiting {
                // What it waits for may have ended already (a cached failure, a cycle).
                self.wake(&record).await?;
                let record = self.queue.get(&record.id)?.unwrap_or(record);
                return Ok((record, requested));
            }
            Ok((record, requested))
        })
    }

    /// A build's key and its builder's identity, from its inputs.
    pub(super) async fn key_of(
        &self,
        sdist: &(String, Sha256Digest),
        target: &Target,
        recipe: &Recipe,
        build_requirements: Option<&BuildRequirements>,
    ) -> Result<(BuildKey, String), BuildError> {
        let builders = self.builders(target)?;
        let (builder, runtime) = self.identities(builders, recipe).await?;
        let key = BuildKey::compute(&KeyInputs {
            sdist_sha256: sdist.1,
            target,
            recipe: &recipe.canonical_json(),
            builder: &builder,
            runtime: &runtime,
            build_requirements: &build_requirements
                .map(BuildRequirements::canonical_json)
                .unwrap_or_default(),
        });
        Ok((key, builder))
    }

    /// Waits until build `id` finishes or `timeout` passes; returns its latest record.
    pub async fn wait(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<BuildRecord>, BuildError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let record = self.queue.get(id)?;
            if record.as_ref().is_none_or(BuildRecord::is_finished)
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(record);
            }
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(500)),
                notified,
            )
            .await;
        }
    }

    /// Takes one queued build and runs it; false when the queue had nothing for us.
    pub async fn work_once(&self, worker: &str) -> Result<bool, BuildError> {
        let holder = LeaseHolder::local(worker);
        let Some(record) = self
            .queue
            .lease(&holder, &self.target_names(), self.lease_seconds)?
        else {
            return Ok(false);
        };
        tracing::info!(build = %record.id, worker, attempt = record.attempts, "build started");
        self.changed.notify_waiters();
        let result = self.run_leased(&record, &holder).await;
        self.changed.notify_waiters();
        result.map(|()| true)
    }

    fn unknown(record: &BuildRecord) -> BuildError {
        BuildError::NoSdist {
            project: record.project.clone(),
            version: record.version.clone(),
        }
    }

    /// The target builders and the recipe a leased build runs with.
    pub(super) fn plan(
        &self,
        record: &BuildRecord,
    ) -> Result<(TargetBuilders, Recipe), BuildError> {
        let target: Target = record
            .target
            .parse()
            .map_err(|_| BuildError::UnknownTarget {
                target: record.target.clone(),
                configured: self.target_names().join(", "),
            })?;
        let builders = self.builders(&target)?.clone();
        let project =
            crate::pypi::parse_package_name(&record.project).map_err(|_| Self::unknown(record))?;
        let version: Version = record.version.parse().map_err(|_| Self::unknown(record))?;
        Ok((
            builders,
            self.recipes.for_release(&project, &version).clone(),
        ))
    }

    async fn run_leased(
        &self,
        record: &BuildRecord,
        holder: &LeaseHolder,
    ) -> Result<(), BuildError> {
        let (builders, recipe) = self.plan(record)?;
        let heartbeat = {
            let (queue, id, holder, lease_seconds) = (
                self.queue.clone(),
                record.id.clone(),
                holder.clone(),
                self.lease_seconds,
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs((lease_seconds / 3).max(1))).await;
                    if let Err(error) = queue.heartbeat(&id, &holder, lease_seconds) {
                        tracing::warn!(build = %id, %error, "lost the build's lease");
                    }
                }
            })
        };
        let wheelhouse = match self
            .requirements
            .wheelhouse(record, &recipe, &builders.target)
            .await
        {
            Ok(files) => self.wheelhouse_bytes(&files).await,
            Err(failure) => Err(failure),
        };
        let fetcher = Fetcher {
            wheels: self.requirements.index_wheels(&builders.target),
            recipe_pins: recipe.build_requires.clone(),
        };
        let result = match wheelhouse {
            Ok(wheelhouse) => {
                self.pipeline
                    .run(record, &builders, &recipe, &wheelhouse, Some(&fetcher))
                    .await
            }
            Err(failure) => super::pipeline::PipelineResult {
                log: format!("===== edelweiss: {}\n", failure.message).into_bytes(),
                outcome: Err(failure),
            },
        };
        heartbeat.abort();
        self.record_outcome(record, holder, result.outcome, &result.log)
            .await
    }

    /// Records a leased build's outcome: an infrastructure failure within the attempt
    /// budget goes back to the queue; anything else is final for this build. A failure's
    /// message may carry a worker's words or a name a build made up: it is logged, stored
    /// and shown escaped and bounded.
    async fn record_outcome(
        &self,
        record: &BuildRecord,
        holder: &LeaseHolder,
        outcome: Result<BuiltWheel, Failure>,
        log: &[u8],
    ) -> Result<(), BuildError> {
        let outcome = outcome.map_err(|failure| Failure {
            message: crate::untrusted::sanitize(&failure.message, crate::untrusted::MESSAGE_CHARS),
            ..failure
        });
        let log_sha256 = self.store_log(log).await;
        match outcome {
            Err(failure) if failure.kind == FailureKind::MissingWheel => {
                self.wait_for_missing(record, holder, failure, log_sha256)
                    .await?;
            }
            Err(failure)
                if failure.kind == FailureKind::Infrastructure
                    && record.attempts < self.max_attempts =>
            {
                tracing::warn!(build = %record.id, reason = %failure.message, "infrastructure failure; build re-queued");
                self.queue.requeue(&record.id)?;
            }
            outcome => {
                let finished = self.queue.finish(&record.id, holder, outcome, log_sha256)?;
                match &finished.failure {
                    None => {
                        tracing::info!(build = %finished.id, wheel = ?finished.wheel.as_ref().map(|wheel| &wheel.filename), "build succeeded")
                    }
                    Some(failure) => {
                        tracing::warn!(build = %finished.id, kind = ?failure.kind, reason = %failure.message, "build failed")
                    }
                }
            }
        }
        self.wake_waiting().await;
        self.changed.notify_waiters();
        Ok(())
    }

    /// A remote worker asks for work: the oldest queued build for its targets, with the
    /// recipe to run it with.
    pub async fn lease_remote(
        &self,
        holder: &LeaseHolder,
        targets: &[String],
    ) -> Result<Option<Assignment>, BuildError> {
        let Some(build) = self.queue.lease(holder, targets, self.lease_seconds)? else {
            return Ok(None);
        };
        tracing::info!(build = %build.id, worker = holder.worker.as_str(), attempt = build.attempts, "build leased to a remote worker");
        self.changed.notify_waiters();
        let (builders, recipe) = self.plan(&build)?;
        let wheelhouse = match self
            .requirements
            .wheelhouse(&build, &recipe, &builders.target)
            .await
        {
            Ok(files) => files,
            Err(failure) => {
                self.record_outcome(&build, holder, Err(failure), b"")
                    .await?;
                return Ok(None);
            }
        };
        let digests: Vec<Sha256Digest> = wheelhouse.iter().map(|file| file.sha256).collect();
        let build = self.queue.grant_wheelhouse(&build.id, holder, &digests)?;
        Ok(Some(Assignment {
            builder: builders.builder_for(&recipe),
            runtime: builders.runtime,
            build,
            recipe,
            wheelhouse,
            lease_seconds: self.lease_seconds,
        }))
    }

    pub fn heartbeat_remote(&self, id: &str, holder: &LeaseHolder) -> Result<(), BuildError> {
        Ok(self.queue.heartbeat(id, holder, self.lease_seconds)?)
    }

    /// A remote worker's result. Only the worker holding the lease, with the credential it
    /// took the lease with, is heard; a wheel of the same name sent after one was recorded
    /// (a retry, or a worker that lost its lease and finished anyway) is acknowledged as
    /// `Recorded::Already` and changes nothing.
    pub async fn report_remote(
        &self,
        id: &str,
        holder: &LeaseHolder,
        report: RemoteReport,
    ) -> Result<(BuildRecord, Recorded), BuildError> {
        let record = self
            .queue
            .get(id)?
            .ok_or_else(|| QueueError::NotFound { id: id.to_string() })?;
        let same_wheel = matches!((&record.wheel, &report.outcome), (Some(wheel), Ok((_, filename))) if *filename == wheel.filename);
        if record.state == BuildState::Succeeded && same_wheel {
            return Ok((record, Recorded::Already));
        }
        BuildQueue::check_holder(&record, holder)?;
        let target: Target = record.target.parse().map_err(|_| Self::unknown(&record))?;
        let outcome = match report.outcome {
            Ok((path, filename)) => match super::steps::check_wheel(&filename, &record, &target) {
                Ok(_) => self.pipeline.ingest(&path, &filename).await,
                Err(failure) => Err(failure),
            },
            Err(failure) => Err(failure),
        };
        self.record_outcome(&record, holder, outcome, &report.log)
            .await?;
        Ok((self.queue.get(id)?.unwrap_or(record), Recorded::Now))
    }

    async fn store_log(&self, log: &[u8]) -> Option<Sha256Digest> {
        let digest = Sha256Digest::of(log);
        match self
            .pipeline
            .store
            .put_bytes(digest, bytes::Bytes::copy_from_slice(log))
            .await
        {
            Ok(PutOutcome::Stored | PutOutcome::AlreadyPresent) => Some(digest),
            Err(error) => {
                tracing::error!(%error, "could not store a build log");
                None
            }
        }
    }

    /// Runs `count` workers for the life of the process, after re-queuing whatever a
    /// previous process left running.
    pub fn spawn_workers(self: &Arc<Self>, count: usize, instance: &str) {
        match self.queue.requeue_abandoned(true) {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(?ids, "re-queued builds interrupted by a restart")
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "could not re-queue interrupted builds"),
        }
        let sweeper = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                match sweeper.queue.requeue_abandoned(false) {
                    Ok(ids) if !ids.is_empty() => {
                        tracing::warn!(?ids, "re-queued builds whose worker lost its lease");
                        sweeper.changed.notify_waiters();
                    }
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, "could not re-queue expired leases"),
                }
                // Builds that wait on others a previous process or a remote worker finished.
                sweeper.wake_waiting().await;
            }
        });
        for number in 0..count {
            let service = self.clone();
            let worker = format!("{instance}-local-{number}");
            tokio::spawn(async move {
                loop {
                    let idle = service.changed.notified();
                    match service.work_once(&worker).await {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(error) => tracing::error!(%error, worker, "build worker error"),
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(2), idle).await;
                }
            });
        }
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
