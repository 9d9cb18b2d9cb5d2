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

use super::{BuildError, BuildService};
use crate::farm::queue::waits_for_any;
use crate::farm::records::{BuildRecord, BuildState, Failure, LeaseHolder, MissingRequirement};
use crate::pypi::simple::{FileDetail, ProjectDetail, Yanked};
use crate::pypi::{PackageName, Sha256Digest, Target};

/// Requirement text longer than this is refused (it comes from workers and sdists).
const MAX_REQUIREMENT_CHARS: usize = 1_000;
/// Builds needing builds needing builds..., at most.
const MAX_DEPTH: usize = 12;
/// Runs of one build that each stopped for a missing wheel, at most.
const MAX_RUNS: u32 = 12;

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
    #[error("the build requirements form a cycle: {}", arrows(.0))]
    Cycle(Vec<PackageName>),
    #[error("builds needing builds went {MAX_DEPTH} deep: {}", arrows(.0))]
    TooDeep(Vec<PackageName>),
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

fn arrows(projects: &[PackageName]) -> String {
    projects
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → ")
}

impl DependencyError {
    /// The failure of the build that needed it, after `context` (text already made safe):
    /// this error's own text quotes requirements from sdists and workers, so it is escaped
    /// and bounded.
    pub(super) fn failure(&self, context: &str) -> Failure {
        let reason = untrusted(&self.to_string());
        match self {
            Self::Build(_) => Failure::infrastructure(format!("{context}: {reason}")),
            _ => Failure::package(format!("{context}: {reason}")),
        }
    }
}

/// Text from an sdist or a worker, escaped and bounded for a failure message.
fn untrusted(text: &str) -> String {
    crate::untrusted::sanitize(text, crate::untrusted::MESSAGE_CHARS)
}

/// Why a build fails or waits when a build requirement has no wheel, made safe to store.
pub(super) fn no_wheel_context(missing: &MissingRequirement, target: &Target) -> String {
    format!(
        "build requirement `{}` (from {}) has no wheel for {target}",
        untrusted(&missing.requirement),
        untrusted(&missing.from)
    )
}

impl BuildService {
    /// The build of a release that satisfies `requirement` on `target`, requested for the
    /// builds in `chain` (outermost first), which all wait for it.
    pub(super) async fn build_requirement(
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
                .cloned()
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
        let version = crate::farm::release::release_to_build(
            &releases,
            &specifiers,
            target,
            &BTreeSet::new(),
        )
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
            let on_chain = |waiting: &BuildRecord| {
                waiting.target == record.target && chain.contains(&waiting.project)
            };
            let cycle = waits_for_any(&*self.queue, &record, on_chain).await;
            if let Some(mut cycle) = cycle.map_err(BuildError::from)? {
                cycle.splice(0..0, chain.last().cloned());
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
            .files(project)
            .await?
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
        let uploaded = self
            .index
            .project(project)
            .await?
            .is_some_and(|record| record.uploaded);
        let hides = self.mirror.hides_upstream(project, uploaded);
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
                candidate.finished_at = Some(crate::farm::records::timestamp());
                candidate.failure = Some(error.failure(&no_wheel_context(missing, target)));
            }
        }
        Ok(())
    }

    /// A running build stopped on a requirement with no wheel (`failure` says which, its
    /// message already made safe): it waits for a build of it, or fails when none can be
    /// made.
    pub(super) async fn wait_for_missing(
        &self,
        record: &BuildRecord,
        holder: &LeaseHolder,
        failure: Failure,
        log_sha256: Option<Sha256Digest>,
    ) -> Result<(), BuildError> {
        let dependency = match self.missing_wheel_build(record, &failure).await? {
            Ok(dependency) => dependency,
            Err(ends_with) => {
                let queue = &self.queue;
                queue
                    .finish(&record.id, holder, Err(ends_with), log_sha256)
                    .await?;
                return Ok(());
            }
        };
        tracing::info!(build = %record.id, needs = %dependency.id, requirement = ?failure.requirement, "build waits for the build of a requirement");
        let needs = vec![dependency.id.clone()];
        let queue = &*self.queue;
        queue.wait_on(&record.id, holder, needs, log_sha256).await?;
        let back_here = |waiting: &BuildRecord| waiting.id == record.id;
        if let Some(cycle) = waits_for_any(queue, &dependency, back_here).await? {
            let mut path = vec![record.project.clone()];
            path.extend(cycle);
            let cycle = DependencyError::Cycle(path).failure(&failure.message);
            queue.settle(&record.id, Err(cycle)).await?;
        }
        Ok(())
    }

    /// The build of the requirement `failure` names, for `record` to wait for; or the
    /// failure `record` ends with when there is none to wait for.
    async fn missing_wheel_build(
        &self,
        record: &BuildRecord,
        failure: &Failure,
    ) -> Result<Result<BuildRecord, Failure>, BuildError> {
        let target = &record.target;
        let Some(requirement) = &failure.requirement else {
            return Ok(Err(Failure::package(failure.message.clone())));
        };
        if record.attempts >= MAX_RUNS {
            return Ok(Err(Failure::package(format!(
                "{} (stopped for a missing wheel {MAX_RUNS} times)",
                failure.message
            ))));
        }
        let chain = std::slice::from_ref(&record.project);
        Ok(
            match self.build_requirement(requirement, target, chain).await {
                Ok(dependency) if dependency.state == BuildState::Succeeded => {
                    Err(Failure::package(format!(
                        "{}, even after {} {} was built ({})",
                        failure.message,
                        dependency.project,
                        dependency.version,
                        dependency
                            .wheel
                            .map(|wheel| wheel.filename)
                            .unwrap_or_default()
                    )))
                }
                Ok(dependency) => Ok(dependency),
                Err(error) => Err(error.failure(&failure.message)),
            },
        )
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

    #[test]
    fn failures_quoting_requirement_text_escape_it_once() {
        let forged = "evil\n2026-12-01T00:00:00Z INFO forged";
        let missing = MissingRequirement {
            requirement: forged.to_string(),
            from: "pyproject.toml\u{1b}[31m".to_string(),
        };
        let target: Target = "cp313-musllinux_1_2_x86_64".parse().unwrap();
        let error = DependencyError::Requirement {
            requirement: forged.to_string(),
            reason: "expected a version".to_string(),
        };
        let failure = error.failure(&no_wheel_context(&missing, &target));
        assert_eq!(failure.kind, crate::farm::records::FailureKind::Package);
        assert!(
            !failure.message.chars().any(char::is_control),
            "{}",
            failure.message
        );
        assert_eq!(
            failure.message.matches("evil\\n2026").count(),
            2,
            "{}",
            failure.message
        );
        assert!(
            !failure.message.contains("\\\\"),
            "escaped twice: {}",
            failure.message
        );
    }
}
