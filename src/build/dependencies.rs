//! Builds that other builds need: a requirement with no wheel for the target (a build
//! requirement found when the build is requested, what the backend adds, or a runtime
//! dependency of the smoke test) becomes a build of its own, under its own key, and the build
//! that needs it waits. Like a topological build order, but discovered as the builds go: a
//! waiting build is queued again once everything it waits for has succeeded, and fails with
//! the reason when one of them fails. A cycle (A's build needs B, whose build needs A) is
//! found by following what each build waits for, and fails every build on it.

use std::collections::BTreeSet;
use std::str::FromStr;

use pep508_rs::{Requirement, VersionOrUrl};

use super::queue::Released;
use super::records::{
    BuildRecord, BuildState, BuiltWheel, Failure, FailureKind, LeaseHolder, MissingRequirement,
};
use super::service::{BuildError, BuildService};
use crate::pypi::simple::{FileDetail, ProjectDetail, Yanked};
use crate::pypi::{PackageName, Sha256Digest, Target};

/// Requirement text longer than this is refused (it comes from workers and sdists).
const MAX_REQUIREMENT_CHARS: usize = 1_000;
/// Builds needing builds needing builds..., at most.
const MAX_DEPTH: usize = 12;
/// Runs of one build that each stopped for a missing wheel, at most.
const MAX_RUNS: u32 = 12;
/// Builds looked at when following what a build waits for.
const MAX_WALK: usize = 1_000;

/// A requirement on a project of an index (no URL), parsed.
pub fn index_requirement(text: &str) -> Result<Requirement, String> {
    if text.chars().count() > MAX_REQUIREMENT_CHARS {
        return Err(format!("longer than {MAX_REQUIREMENT_CHARS} characters"));
    }
    let requirement = Requirement::from_str(text).map_err(|error| error.message.to_string())?;
    if matches!(requirement.version_or_url, Some(VersionOrUrl::Url(_))) {
        return Err(format!("`{requirement}` names a URL"));
    }
    Ok(requirement)
}

#[derive(Debug, thiserror::Error)]
pub enum DependencyError {
    #[error("`{requirement}` is not a requirement on an index project: {reason}")]
    Requirement { requirement: String, reason: String },
    #[error("the build requirements form a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
    #[error("builds needing builds went {MAX_DEPTH} deep: {}", .0.join(" → "))]
    TooDeep(Vec<String>),
    #[error("no release of {project} with an sdist fits `{requirement}` on {target}")]
    NoRelease {
        project: String,
        requirement: String,
        target: String,
    },
    /// The index, the mirror or the queue failed: worth another attempt.
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl DependencyError {
    fn failure(&self, context: &str) -> Failure {
        match self {
            Self::Build(error) => Failure::infrastructure(format!("{context}: {error}")),
            error => Failure::package(format!("{context}: {error}")),
        }
    }
}

impl BuildService {
    /// The build of a release that satisfies `requirement` on `target`, requested for the
    /// builds in `chain` (outermost first), which all wait for it.
    async fn build_requirement(
        &self,
        requirement: &str,
        target: &Target,
        chain: &[PackageName],
    ) -> Result<BuildRecord, DependencyError> {
        let parsed =
            index_requirement(requirement).map_err(|reason| DependencyError::Requirement {
                requirement: requirement.to_string(),
                reason,
            })?;
        let project = parsed.name.clone();
        let path = || {
            chain
                .iter()
                .chain(std::iter::once(&project))
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        if chain.contains(&project) {
            return Err(DependencyError::Cycle(path()));
        }
        if chain.len() >= MAX_DEPTH {
            return Err(DependencyError::TooDeep(path()));
        }
        let specifiers = match parsed.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(specifiers)) => vec![specifiers],
            _ => Vec::new(),
        };
        let no_release = || DependencyError::NoRelease {
            project: project.to_string(),
            requirement: requirement.to_string(),
            target: target.to_string(),
        };
        let releases = self.releases(&project).await?;
        let version =
            super::release::release_to_build(&releases, &specifiers, target, &BTreeSet::new())
                .ok_or_else(no_release)?;
        let sdist = match self.find_sdist(&project, &version).await {
            Ok(sdist) => sdist,
            Err(BuildError::NoSdist { .. }) => return Err(no_release()),
            Err(error) => return Err(error.into()),
        };
        let (record, _) = self
            .request_within(&project, &version, sdist, target, chain)
            .await?;
        if record.state == BuildState::Waiting {
            let projects: Vec<String> = chain.iter().map(ToString::to_string).collect();
            if let Some(mut cycle) = self.waits_for_any(&record, |waiting| {
                waiting.target == record.target && projects.contains(&waiting.project)
            })? {
                cycle.insert(0, chain.last().map(ToString::to_string).unwrap_or_default());
                return Err(DependencyError::Cycle(cycle));
            }
        }
        Ok(record)
    }

    /// The files of `project` held here and upstream, as one page: where a release to
    /// build is chosen.
    async fn releases(&self, project: &PackageName) -> Result<ProjectDetail, BuildError> {
        let mut files: Vec<FileDetail> = self
            .index
            .files(project)?
            .into_iter()
            .map(|held| {
                let mut file = FileDetail::new(held.filename, String::new());
                file.hashes
                    .insert("sha256".to_string(), held.sha256.to_hex());
                file.requires_python = held.requires_python;
                file.yanked = Yanked::from_reason(held.yanked.as_deref());
                file
            })
            .collect();
        let hides = self.mirror.hides_upstream(project, !files.is_empty());
        if self.mirror.is_enabled() && !hides {
            if let Some(page) = self.mirror.project_page(project).await? {
                files.extend(page.detail.files.iter().cloned());
            }
        }
        Ok(ProjectDetail {
            meta: Default::default(),
            name: project.to_string(),
            versions: Vec::new(),
            files,
        })
    }

    /// A new build whose build requirements lack a wheel: it waits for the build of one,
    /// or fails now when none can be made (the reason is the package's: no release fits,
    /// a cycle). A failing index is the caller's error.
    pub(super) async fn wait_or_fail(
        &self,
        candidate: &mut BuildRecord,
        missing: &MissingRequirement,
        target: &Target,
        chain: &[PackageName],
    ) -> Result<(), BuildError> {
        match self
            .build_requirement(&missing.requirement, target, chain)
            .await
        {
            Ok(dependency) => {
                candidate.state = BuildState::Waiting;
                candidate.needs = vec![dependency.id];
            }
            Err(DependencyError::Build(error)) => return Err(error),
            Err(error) => {
                candidate.state = BuildState::Failed;
                candidate.finished_at = Some(super::records::timestamp());
                candidate.failure = Some(error.failure(&format!(
                    "build requirement `{}` (from {}) has no wheel for {target}",
                    missing.requirement, missing.from
                )));
            }
        }
        Ok(())
    }

    /// A running build stopped on a requirement with no wheel (`failure` says which): it
    /// waits for a build of it, or fails when none can be made.
    pub(super) async fn wait_for_missing(
        &self,
        record: &BuildRecord,
        holder: &LeaseHolder,
        failure: Failure,
        log_sha256: Option<Sha256Digest>,
    ) -> Result<(), BuildError> {
        let fail = |failure: Failure| {
            self.queue
                .finish(&record.id, holder, Err(failure), log_sha256)
        };
        let (Some(requirement), Ok(target)) =
            (&failure.requirement, record.target.parse::<Target>())
        else {
            fail(Failure::package(failure.message))?;
            return Ok(());
        };
        if record.attempts >= MAX_RUNS {
            fail(Failure::package(format!(
                "{} (stopped for a missing wheel {MAX_RUNS} times)",
                failure.message
            )))?;
            return Ok(());
        }
        let project =
            crate::pypi::parse_package_name(&record.project).map_err(|_| BuildError::NoSdist {
                project: record.project.clone(),
                version: record.version.clone(),
            })?;
        match self
            .build_requirement(requirement, &target, std::slice::from_ref(&project))
            .await
        {
            Ok(dependency) if dependency.state == BuildState::Succeeded => {
                fail(Failure::package(format!(
                    "{}, even after {} {} was built ({})",
                    failure.message,
                    dependency.project,
                    dependency.version,
                    dependency
                        .wheel
                        .map(|wheel| wheel.filename)
                        .unwrap_or_default()
                )))?;
            }
            Ok(dependency) => {
                tracing::info!(build = %record.id, needs = %dependency.id, requirement, "build waits for the build of a requirement");
                self.queue
                    .wait_on(&record.id, holder, vec![dependency.id.clone()], log_sha256)?;
                if let Some(cycle) =
                    self.waits_for_any(&dependency, |waiting| waiting.id == record.id)?
                {
                    let mut path = vec![record.project.clone()];
                    path.extend(cycle);
                    self.queue.settle(
                        &record.id,
                        Err(DependencyError::Cycle(path).failure(&failure.message)),
                    )?;
                }
            }
            Err(error) => {
                fail(error.failure(&failure.message))?;
            }
        }
        Ok(())
    }

    /// Follows what `start` waits for, transitively; the projects on the way to the first
    /// waiting build that `stops_at` accepts, or none.
    fn waits_for_any(
        &self,
        start: &BuildRecord,
        stops_at: impl Fn(&BuildRecord) -> bool,
    ) -> Result<Option<Vec<String>>, BuildError> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![(start.clone(), vec![start.project.clone()])];
        while let Some((record, path)) = stack.pop() {
            if !seen.insert(record.id.clone()) || seen.len() > MAX_WALK {
                continue;
            }
            for id in &record.needs {
                let Some(needed) = self.queue.get(id)? else {
                    continue;
                };
                let mut path = path.clone();
                path.push(needed.project.clone());
                if stops_at(&needed) {
                    return Ok(Some(path));
                }
                if needed.state == BuildState::Waiting {
                    stack.push((needed, path));
                }
            }
        }
        Ok(None)
    }

    /// Moves every waiting build on: queued again when what it waits for has succeeded,
    /// failed when that failed. Errors are logged: the next pass tries again.
    pub async fn wake_waiting(&self) {
        let waiting = match self.queue.waiting() {
            Ok(waiting) => waiting,
            Err(error) => {
                tracing::error!(%error, "could not list the builds that wait");
                return;
            }
        };
        for record in waiting {
            if let Err(error) = self.wake(&record).await {
                tracing::warn!(build = %record.id, %error, "could not move a waiting build on");
            }
        }
    }

    pub(super) async fn wake(&self, record: &BuildRecord) -> Result<(), BuildError> {
        for id in &record.needs {
            let needed = self.queue.get(id)?;
            let failure = match &needed {
                None => Some(Failure::infrastructure(format!(
                    "build {id}, which this build waited for, is gone"
                ))),
                Some(needed) if needed.state == BuildState::Failed => {
                    let reason = needed
                        .failure
                        .as_ref()
                        .map(|failure| failure.message.as_str())
                        .unwrap_or("no reason recorded");
                    let message = format!(
                        "its requirement {} {} could not be built: {reason}",
                        needed.project, needed.version
                    );
                    Some(match needed.is_final() {
                        true => Failure::package(message),
                        false => Failure::infrastructure(message),
                    })
                }
                Some(needed) if !needed.is_finished() => return Ok(()),
                Some(_) => None,
            };
            if let Some(failure) = failure {
                self.settle(record, Err(failure))?;
                return Ok(());
            }
        }
        self.queue_again(record).await
    }

    fn settle(
        &self,
        record: &BuildRecord,
        outcome: Result<BuiltWheel, Failure>,
    ) -> Result<(), BuildError> {
        if let Some(settled) = self.queue.settle(&record.id, outcome)? {
            match &settled.failure {
                Some(failure) => {
                    tracing::warn!(build = %settled.id, kind = ?failure.kind, reason = %failure.message, "build failed")
                }
                None => {
                    tracing::info!(build = %settled.id, "build took the outcome of the same build")
                }
            }
            self.changed.notify_waiters();
        }
        Ok(())
    }

    /// Everything `record` waited for is built: its requirements resolve again (another
    /// may still lack a wheel) and it is queued under the key they give it.
    async fn queue_again(&self, record: &BuildRecord) -> Result<(), BuildError> {
        let (builders, recipe) = self.plan(record)?;
        let target = builders.target;
        let sdist = (record.sdist_filename.clone(), record.sdist_sha256);
        let requirements = match self.resolve_build_requirements {
            true => Some(
                self.requirements
                    .for_sdist(&sdist, &target, &recipe)
                    .await?,
            ),
            false => record.build_requirements.clone(),
        };
        if let Some(missing) = requirements.as_ref().and_then(|r| r.missing.clone()) {
            let project = crate::pypi::parse_package_name(&record.project).map_err(|_| {
                BuildError::NoSdist {
                    project: record.project.clone(),
                    version: record.version.clone(),
                }
            })?;
            let context = format!(
                "build requirement `{}` (from {}) has no wheel for {target}",
                missing.requirement, missing.from
            );
            return match self
                .build_requirement(&missing.requirement, &target, &[project])
                .await
            {
                Ok(dependency) if dependency.state == BuildState::Succeeded => self.settle(
                    record,
                    Err(Failure::package(format!(
                        "{context}, even after {} {} was built",
                        dependency.project, dependency.version
                    ))),
                ),
                Ok(dependency) => {
                    self.queue.set_needs(&record.id, vec![dependency.id])?;
                    Ok(())
                }
                Err(DependencyError::Build(error)) => Err(error),
                Err(error) => self.settle(record, Err(error.failure(&context))),
            };
        }
        let (key, _) = self
            .key_of(&sdist, &target, &recipe, requirements.as_ref())
            .await?;
        match self
            .queue
            .release(&record.id, &key.to_string(), requirements)?
        {
            Released::Queued(queued) => {
                tracing::info!(build = %queued.id, project = %queued.project, version = %queued.version, "build queued after the builds it waited for");
                self.changed.notify_waiters();
            }
            Released::Existing(existing) if existing.is_final() => {
                let outcome = match (&existing.wheel, &existing.failure) {
                    (Some(wheel), _) => Ok(wheel.clone()),
                    (None, Some(failure)) => Err(failure.clone()),
                    (None, None) => Err(Failure {
                        kind: FailureKind::Package,
                        message: format!("build {} ended without a result", existing.id),
                        requirement: None,
                    }),
                };
                self.settle(record, outcome)?;
            }
            Released::Existing(existing) => {
                self.queue.set_needs(&record.id, vec![existing.id])?;
            }
            Released::Gone => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_from_outside_are_parsed_and_bounded() {
        assert_eq!(
            index_requirement("flit_core >=3.2").unwrap().to_string(),
            "flit-core>=3.2"
        );
        assert!(index_requirement("thing @ https://example.com/thing.whl").is_err());
        assert!(index_requirement("not a requirement ((").is_err());
        assert!(index_requirement(&"a".repeat(MAX_REQUIREMENT_CHARS + 1)).is_err());
    }
}
