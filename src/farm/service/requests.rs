//! Asking for builds: a release's sdist found here or upstream, a request deduplicated by
//! build key (waiting first for the builds of requirements with no wheel), on-demand
//! requests for what a page lacks, and waiting for a build to end.

use std::time::Duration;

use futures::StreamExt;

use super::{BuildError, BuildService};
use crate::farm::id::BuildId;
use crate::farm::on_demand::MissingWheel;
use crate::farm::queue::Requested;
use crate::farm::records::{BuildRecord, BuildState, timestamp};
use crate::farm::resolve::BoxFuture;
use crate::metadata::FileKind;
use crate::mirror::{MirrorError, MirroredFile};
use crate::pypi::{DistFilename, PackageName, Sha256Digest, Target, Version};
use crate::storage::StorageError;

impl BuildService {
    /// Queues (or joins) a build of each of `missing` (releases that lack a wheel for
    /// `target`: `missing_wheels`); returns their build ids. Failures are logged: a page
    /// must not fail because of them.
    pub async fn queue_missing(
        &self,
        project: &PackageName,
        missing: &[MissingWheel],
        target: &Target,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        for missing in missing {
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

    /// The sdist of a release: held here, or fetched through the mirror (and so cached).
    pub async fn find_sdist(
        &self,
        project: &PackageName,
        version: &Version,
    ) -> Result<(String, Sha256Digest), BuildError> {
        let is_release_sdist = |filename: &str| matches!(filename.parse::<DistFilename>(), Ok(DistFilename::Sdist(sdist)) if &sdist.version == version);
        if let Some(local) = self
            .index
            .files(project)
            .await?
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
        let opened = self.mirror.open_file(digest, &filename).await?;
        if let MirroredFile::Streaming { mut body, .. } = opened.ok_or_else(no_sdist)? {
            // Read through, so the mirror stores it.
            while let Some(chunk) = body.next().await {
                chunk.map_err(|error| {
                    BuildError::Mirror(MirrorError::Storage(StorageError::Io {
                        path: filename.clone().into(),
                        source: error,
                    }))
                })?;
            }
        }
        Ok((filename, digest))
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
            let mut candidate = self.candidate(project, version, sdist, target).await?;
            let missing = candidate
                .build_requirements
                .as_ref()
                .and_then(|requirements| requirements.missing.clone());
            if let Some(missing) = missing {
                let mut chain = chain.to_vec();
                chain.push(project.clone());
                self.wait_or_fail(&mut candidate, &missing, target, &chain)
                    .await?;
            }
            let (record, requested) = self.queue.request(candidate).await?;
            if requested == Requested::Queued {
                tracing::info!(build = %record.id, project = %record.project, version = %record.version, target = %record.target, state = ?record.state, "build queued");
                self.changed.notify_waiters();
            }
            if record.state == BuildState::Waiting {
                // What it waits for may have ended already (a cached failure, a cycle).
                self.wake(&record).await?;
                let record = self.queue.get(&record.id).await?.unwrap_or(record);
                return Ok((record, requested));
            }
            Ok((record, requested))
        })
    }

    /// A new build's record, keyed by its inputs: the recipe, the resolved build
    /// requirements, the crates its Cargo.lock pins, the builder.
    async fn candidate(
        &self,
        project: &PackageName,
        version: &Version,
        sdist: (String, Sha256Digest),
        target: &Target,
    ) -> Result<BuildRecord, BuildError> {
        let recipe = self.recipes.for_release(project, version);
        let build_requirements = match self.resolve_build_requirements {
            true => Some(self.requirements.for_sdist(&sdist, target, recipe).await?),
            false => None,
        };
        let crates = self.crate_locks.of(&self.pipeline.store, &sdist).await?;
        let (key, builder) = self
            .key_of(
                &sdist,
                target,
                recipe,
                build_requirements.as_ref(),
                crates.as_ref(),
            )
            .await?;
        Ok(BuildRecord {
            id: BuildId::new().to_string(),
            key,
            project: project.clone(),
            version: version.clone(),
            target: target.clone(),
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
            crates,
            needs: Vec::new(),
        })
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
            let record = self.queue.get(id).await?;
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
}
