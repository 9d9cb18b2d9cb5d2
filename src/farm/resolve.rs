//! Resolving a set of PEP 508 requirements to wheels that install on one target, from this
//! index only (held or mirrored), wheels only: no sdist is ever built, so no package code
//! runs on the host. Used for an sdist's build requirements and for a built wheel's runtime
//! dependencies in its smoke test.
//!
//! The resolver is deliberately small: it takes the newest acceptable version of each
//! project, breadth-first, and checks every later requirement against what it took. It does
//! not backtrack: when a later requirement excludes an earlier choice it fails with both
//! named (a recipe can then pin the project), and it never returns a set that violates a
//! requirement it saw.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;

use pep440_rs::VersionSpecifiers;
use pep508_rs::{
    ExtraName, MarkerEnvironment, MarkerEnvironmentBuilder, Requirement, VersionOrUrl,
};

use super::records::Failure;
use super::wire::WheelhouseFile;
use crate::pypi::{PackageName, PlatformTag, Sha256Digest, Target, Version};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Projects in one resolution, at most.
const MAX_PROJECTS: usize = 300;
/// Requirements looked at in one resolution, at most.
const MAX_STEPS: usize = 20_000;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("`{requirement}` is not a PEP 508 requirement: {reason}")]
    Requirement { requirement: String, reason: String },
    #[error(
        "`{requirement}` (from {from}) names a URL; only index wheels can be installed offline"
    )]
    DirectUrl { requirement: String, from: String },
    #[error("no wheel of `{requirement}` (from {from}) for {target} on this index")]
    NoWheel {
        requirement: String,
        from: String,
        target: String,
    },
    #[error(
        "{project} {chosen} was taken for {chosen_for}, but {from} requires `{requirement}`; pin it in a recipe"
    )]
    Conflict {
        project: String,
        chosen: String,
        chosen_for: String,
        requirement: String,
        from: String,
    },
    #[error("the resolution grew past {MAX_PROJECTS} projects or {MAX_STEPS} requirements")]
    TooLarge,
    /// The index, the mirror or the store failed: worth another attempt.
    #[error("{0}")]
    Source(String),
}

impl ResolveError {
    /// Only a failing index is ours; a missing wheel is one the farm can build; the rest
    /// fails the same way every time.
    pub fn into_failure(self, what: &str) -> Failure {
        let message = format!("{what}: {self}");
        match self {
            Self::Source(_) => Failure::infrastructure(message),
            Self::NoWheel { requirement, .. } => Failure::missing_wheel(requirement, message),
            _ => Failure::package(message),
        }
    }
}

/// A wheel of a project that installs on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub filename: String,
    pub version: Version,
    pub sha256: Sha256Digest,
    pub requires_python: Option<String>,
}

/// A resolved project: the wheel taken for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pinned {
    pub project: String,
    pub version: String,
    pub filename: String,
    pub sha256: Sha256Digest,
}

impl Pinned {
    pub fn file(&self) -> WheelhouseFile {
        WheelhouseFile {
            filename: self.filename.clone(),
            sha256: self.sha256,
        }
    }
}

/// Where candidates come from: this index, for one target.
pub trait WheelSource: Send + Sync {
    /// Unyanked wheels of `project`, any version, that install on the target.
    fn wheels<'a>(
        &'a self,
        project: &'a PackageName,
    ) -> BoxFuture<'a, Result<Vec<Candidate>, ResolveError>>;
    /// The `Requires-Dist` lines of one of those wheels.
    fn requires_dist<'a>(
        &'a self,
        project: &'a PackageName,
        candidate: &'a Candidate,
    ) -> BoxFuture<'a, Result<Vec<String>, ResolveError>>;
}

pub fn parse_requirement(text: &str) -> Result<Requirement, ResolveError> {
    Requirement::from_str(text).map_err(|error| ResolveError::Requirement {
        requirement: text.to_string(),
        reason: error.message.to_string(),
    })
}

/// The PEP 508 environment of CPython `major.minor` on a Linux target.
pub fn marker_environment(target: &Target) -> MarkerEnvironment {
    let machine = match &target.platform {
        PlatformTag::Musllinux { arch, .. }
        | PlatformTag::Manylinux { arch, .. }
        | PlatformTag::Linux { arch } => arch.as_str().to_string(),
        _ => String::new(),
    };
    let python = format!("{}.{}", target.major, target.minor);
    let full = format!("{python}.0");
    MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: &full,
        os_name: "posix",
        platform_machine: &machine,
        platform_python_implementation: "CPython",
        platform_release: "",
        platform_system: "Linux",
        platform_version: "",
        python_full_version: &full,
        python_version: &python,
        sys_platform: "linux",
    })
    // Invariant: both versions are digits and dots made just above.
    .expect("a target's Python version is a PEP 440 version")
}

struct Chosen {
    pinned: Pinned,
    candidate: Candidate,
    chosen_for: String,
    requires: Option<Vec<Requirement>>,
    extras: BTreeSet<ExtraName>,
}

pub struct Resolver<'a> {
    source: &'a dyn WheelSource,
    target: &'a Target,
    environment: MarkerEnvironment,
    python: Version,
    /// Requirements that replace every other requirement on their project (recipe pins).
    overrides: BTreeMap<PackageName, Requirement>,
}

impl<'a> Resolver<'a> {
    pub fn new(
        source: &'a dyn WheelSource,
        target: &'a Target,
        overrides: &[String],
    ) -> Result<Self, ResolveError> {
        let overrides = overrides
            .iter()
            .map(|text| {
                parse_requirement(text).map(|requirement| (requirement.name.clone(), requirement))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            source,
            target,
            environment: marker_environment(target),
            python: Version::new([u64::from(target.major), u64::from(target.minor), 0]),
            overrides,
        })
    }

    /// Resolves `requirements` (each with who asked for it) on top of `fixed`, which stay as
    /// they are; returns every pin, `fixed` included, by project name.
    pub async fn resolve(
        &self,
        requirements: &[(String, String)],
        fixed: &[Pinned],
    ) -> Result<Vec<Pinned>, ResolveError> {
        let mut chosen: BTreeMap<PackageName, Chosen> = BTreeMap::new();
        for pinned in fixed {
            let name = PackageName::from_str(&pinned.project)
                .map_err(|error| ResolveError::Source(format!("a fixed pin: {error}")))?;
            let version = Version::from_str(&pinned.version)
                .map_err(|error| ResolveError::Source(format!("a fixed pin: {error}")))?;
            chosen.insert(
                name,
                Chosen {
                    candidate: Candidate {
                        filename: pinned.filename.clone(),
                        version,
                        sha256: pinned.sha256,
                        requires_python: None,
                    },
                    pinned: pinned.clone(),
                    chosen_for: "the build requirements".into(),
                    requires: None,
                    extras: BTreeSet::new(),
                },
            );
        }
        let mut queue = VecDeque::new();
        for (text, from) in requirements {
            let requirement = parse_requirement(text)?;
            if requirement.marker.evaluate(&self.environment, &[]) {
                queue.push_back((requirement, from.clone()));
            }
        }
        for requirement in self.overrides.values() {
            queue.push_back((requirement.clone(), "the recipe".to_string()));
        }
        let mut steps = 0;
        while let Some((requirement, from)) = queue.pop_front() {
            steps += 1;
            if steps > MAX_STEPS || chosen.len() > MAX_PROJECTS {
                return Err(ResolveError::TooLarge);
            }
            let requirement = self.overridden(requirement);
            let specifiers = match &requirement.version_or_url {
                None => VersionSpecifiers::empty(),
                Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers.clone(),
                Some(VersionOrUrl::Url(_)) => {
                    return Err(ResolveError::DirectUrl {
                        requirement: requirement.to_string(),
                        from,
                    });
                }
            };
            let name = requirement.name.clone();
            if !chosen.contains_key(&name) {
                let candidate = self.choose(&requirement, &specifiers, &from).await?;
                chosen.insert(
                    name.clone(),
                    Chosen {
                        pinned: Pinned {
                            project: name.to_string(),
                            version: candidate.version.to_string(),
                            filename: candidate.filename.clone(),
                            sha256: candidate.sha256,
                        },
                        candidate,
                        chosen_for: from.clone(),
                        requires: None,
                        extras: BTreeSet::new(),
                    },
                );
                let entry = chosen.get_mut(&name).expect("inserted just above");
                self.push_requires(entry, None, &mut queue).await?;
            }
            let entry = chosen.get_mut(&name).expect("chosen above or before");
            if !specifiers.contains(&entry.candidate.version) {
                return Err(ResolveError::Conflict {
                    project: name.to_string(),
                    chosen: entry.pinned.version.clone(),
                    chosen_for: entry.chosen_for.clone(),
                    requirement: requirement.to_string(),
                    from,
                });
            }
            for extra in &requirement.extras {
                if entry.extras.insert(extra.clone()) {
                    self.push_requires(entry, Some(extra), &mut queue).await?;
                }
            }
        }
        Ok(chosen.into_values().map(|entry| entry.pinned).collect())
    }

    fn overridden(&self, requirement: Requirement) -> Requirement {
        match self.overrides.get(&requirement.name) {
            Some(pin) => Requirement {
                extras: requirement.extras,
                ..pin.clone()
            },
            None => requirement,
        }
    }

    /// The newest acceptable wheel: final releases first, pre-releases only when the
    /// requirement names one or nothing else fits (PEP 440).
    async fn choose(
        &self,
        requirement: &Requirement,
        specifiers: &VersionSpecifiers,
        from: &str,
    ) -> Result<Candidate, ResolveError> {
        let python_fits = |candidate: &Candidate| {
            candidate.requires_python.as_deref().is_none_or(|text| {
                VersionSpecifiers::from_str(text)
                    .map(|specifiers| specifiers.contains(&self.python))
                    .unwrap_or(false)
            })
        };
        let mut fitting: Vec<Candidate> = self
            .source
            .wheels(&requirement.name)
            .await?
            .into_iter()
            .filter(|candidate| specifiers.contains(&candidate.version) && python_fits(candidate))
            .collect();
        let allow_pre = specifiers
            .iter()
            .any(|specifier| specifier.any_prerelease())
            || fitting
                .iter()
                .all(|candidate| candidate.version.any_prerelease());
        fitting.retain(|candidate| allow_pre || !candidate.version.any_prerelease());
        // The first listed wheel of the newest version (a stable order for the same page).
        let newest = fitting
            .iter()
            .map(|candidate| &candidate.version)
            .max()
            .cloned();
        fitting
            .into_iter()
            .find(|candidate| Some(&candidate.version) == newest.as_ref())
            .ok_or_else(|| ResolveError::NoWheel {
                requirement: requirement.to_string(),
                from: from.to_string(),
                target: self.target.to_string(),
            })
    }

    /// Queues the chosen wheel's requirements that apply with `extra` (or with none).
    async fn push_requires(
        &self,
        entry: &mut Chosen,
        extra: Option<&ExtraName>,
        queue: &mut VecDeque<(Requirement, String)>,
    ) -> Result<(), ResolveError> {
        if entry.requires.is_none() {
            let name = PackageName::from_str(&entry.pinned.project)
                .map_err(|error| ResolveError::Source(error.to_string()))?;
            let lines = self.source.requires_dist(&name, &entry.candidate).await?;
            let requires = lines
                .iter()
                .map(|line| parse_requirement(line))
                .collect::<Result<Vec<_>, _>>()?;
            entry.requires = Some(requires);
        }
        let extras: Vec<ExtraName> = extra.into_iter().cloned().collect();
        let from = format!("{} {}", entry.pinned.project, entry.pinned.version);
        for requirement in entry.requires.iter().flatten() {
            let applies = requirement.marker.evaluate(&self.environment, &extras);
            // With an extra, what applies without it was queued when the wheel was taken.
            let queued_before =
                extra.is_some() && requirement.marker.evaluate(&self.environment, &[]);
            if applies && !queued_before {
                queue.push_back((requirement.clone(), from.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::farm::FailureKind;

    /// An index in memory: (project, version, requires-python, requires-dist).
    struct Fake {
        projects: HashMap<String, Vec<(Candidate, Vec<String>)>>,
        asked: std::sync::Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(releases: &[(&str, &str, Option<&str>, &[&str])]) -> Self {
            let mut projects: HashMap<String, Vec<(Candidate, Vec<String>)>> = HashMap::new();
            for (name, version, requires_python, requires) in releases {
                let filename = format!("{name}-{version}-py3-none-any.whl");
                projects.entry(name.to_string()).or_default().push((
                    Candidate {
                        sha256: Sha256Digest::of(filename.as_bytes()),
                        filename,
                        version: version.parse().unwrap(),
                        requires_python: requires_python.map(str::to_string),
                    },
                    requires.iter().map(|line| line.to_string()).collect(),
                ));
            }
            Self {
                projects,
                asked: Default::default(),
            }
        }
    }

    impl WheelSource for Fake {
        fn wheels<'a>(
            &'a self,
            project: &'a PackageName,
        ) -> BoxFuture<'a, Result<Vec<Candidate>, ResolveError>> {
            self.asked.lock().unwrap().push(project.to_string());
            let found = self
                .projects
                .get(project.as_ref())
                .map(|releases| {
                    releases
                        .iter()
                        .map(|(candidate, _)| candidate.clone())
                        .collect()
                })
                .unwrap_or_default();
            Box::pin(async move { Ok(found) })
        }

        fn requires_dist<'a>(
            &'a self,
            project: &'a PackageName,
            candidate: &'a Candidate,
        ) -> BoxFuture<'a, Result<Vec<String>, ResolveError>> {
            let requires = self.projects[project.as_ref()]
                .iter()
                .find(|(known, _)| known == candidate)
                .map(|(_, requires)| requires.clone())
                .unwrap();
            Box::pin(async move { Ok(requires) })
        }
    }

    fn target() -> Target {
        "cp313-musllinux_1_2_x86_64".parse().unwrap()
    }

    fn asked(requirements: &[&str]) -> Vec<(String, String)> {
        requirements
            .iter()
            .map(|text| (text.to_string(), "pyproject.toml".to_string()))
            .collect()
    }

    async fn pins(
        fake: &Fake,
        requirements: &[&str],
        overrides: &[&str],
    ) -> Result<Vec<String>, ResolveError> {
        let target = target();
        let overrides: Vec<String> = overrides.iter().map(|text| text.to_string()).collect();
        let resolver = Resolver::new(fake, &target, &overrides)?;
        let pinned = resolver.resolve(&asked(requirements), &[]).await?;
        Ok(pinned
            .into_iter()
            .map(|pin| format!("{}=={}", pin.project, pin.version))
            .collect())
    }

    #[tokio::test]
    async fn the_newest_fitting_versions_with_their_dependencies_and_markers() {
        let fake = Fake::new(&[
            (
                "hatchling",
                "1.25.0",
                Some(">=3.8"),
                &[
                    "packaging>=23.2",
                    "pluggy>=1.0.0",
                    "tomli>=1.2.2; python_version < '3.11'",
                    "trove-classifiers",
                ],
            ),
            ("hatchling", "1.26.0", Some(">=3.14"), &[]),
            ("packaging", "23.1", None, &[]),
            ("packaging", "24.1", None, &[]),
            ("packaging", "25.0rc1", None, &[]),
            ("pluggy", "1.5.0", None, &["pytest; extra == 'dev'"]),
            ("trove-classifiers", "2024.7.2", None, &[]),
        ]);
        assert_eq!(
            pins(&fake, &["hatchling"], &[]).await.unwrap(),
            [
                "hatchling==1.25.0",
                "packaging==24.1",
                "pluggy==1.5.0",
                "trove-classifiers==2024.7.2"
            ],
            "1.26.0 needs Python 3.14, tomli is for older Pythons, the rc is not final and pytest is an extra"
        );
        assert!(!fake.asked.lock().unwrap().contains(&"tomli".to_string()));
    }

    #[tokio::test]
    async fn extras_bring_their_requirements_and_recipe_pins_override() {
        let fake = Fake::new(&[
            (
                "setuptools-scm",
                "8.1.0",
                None,
                &["packaging>=20", "toml; extra == 'toml'"],
            ),
            ("setuptools-scm", "7.0.0", None, &["packaging>=20"]),
            ("packaging", "24.1", None, &[]),
            ("toml", "0.10.2", None, &[]),
        ]);
        assert_eq!(
            pins(&fake, &["setuptools_scm[toml]>=6.2"], &[])
                .await
                .unwrap(),
            ["packaging==24.1", "setuptools-scm==8.1.0", "toml==0.10.2"]
        );
        assert_eq!(
            pins(&fake, &["setuptools_scm>=8"], &["setuptools-scm==7.0.0"])
                .await
                .unwrap(),
            ["packaging==24.1", "setuptools-scm==7.0.0"],
            "the recipe's pin replaces the sdist's own requirement"
        );
    }

    /// What cannot be resolved fails with the requirement and who asked for it named; a
    /// conflict is reported, never papered over.
    #[tokio::test]
    async fn failures_name_the_requirement() {
        let fake = Fake::new(&[
            ("a", "1.0", None, &["c<2"]),
            ("b", "1.0", None, &["c>=2"]),
            ("c", "1.0", None, &[]),
            ("c", "2.0", None, &[]),
        ]);
        let error = pins(&fake, &["a", "b"], &[]).await.unwrap_err();
        assert!(
            matches!(&error, ResolveError::Conflict { project, chosen, .. } if project == "c" && chosen == "1.0"),
            "{error}"
        );
        let error = pins(&fake, &["absent>=1"], &[]).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "no wheel of `absent>=1` (from pyproject.toml) for cp313-musllinux_1_2_x86_64 on this index"
        );
        let error = pins(&fake, &["a @ https://example.invalid/a.whl"], &[])
            .await
            .unwrap_err();
        assert!(matches!(error, ResolveError::DirectUrl { .. }), "{error}");
        assert_eq!(
            error.clone().into_failure("build requirements").kind,
            FailureKind::Package
        );
        assert_eq!(
            ResolveError::Source("down".into()).into_failure("x").kind,
            FailureKind::Infrastructure
        );
        let missing = ResolveError::NoWheel {
            requirement: "absent>=1".into(),
            from: "pyproject.toml".into(),
            target: "cp313-musllinux_1_2_x86_64".into(),
        }
        .into_failure("build requirements");
        assert_eq!(missing.kind, FailureKind::MissingWheel);
        assert_eq!(missing.requirement.as_deref(), Some("absent>=1"));
    }

    #[tokio::test]
    async fn fixed_pins_stay_and_new_requirements_join_them() {
        let fake = Fake::new(&[
            ("cmake", "3.30.0", None, &[]),
            ("scikit-build-core", "0.10.0", None, &[]),
        ]);
        let target = target();
        let resolver = Resolver::new(&fake, &target, &[]).unwrap();
        let fixed = Pinned {
            project: "scikit-build-core".into(),
            version: "0.9.0".into(),
            filename: "scikit_build_core-0.9.0-py3-none-any.whl".into(),
            sha256: Sha256Digest::of(b"x"),
        };
        let pinned = resolver
            .resolve(
                &asked(&["cmake>=3.15", "scikit-build-core"]),
                std::slice::from_ref(&fixed),
            )
            .await
            .unwrap();
        assert_eq!(pinned.len(), 2);
        assert!(pinned.contains(&fixed), "{pinned:?}");
    }
}
