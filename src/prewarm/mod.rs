//! `edelweiss prewarm`: makes sure every distribution a requirements file resolves to has a
//! wheel for each target before a Docker build runs. Resolution is uv's (`uv pip compile`
//! against the target-pinned index, wheels only: see [`uv`]); a requirement only an sdist
//! can satisfy is built by the farm first, and resolution goes on with the built wheel's
//! metadata. The same steps run against a [`Farm`]: the server's HTTP API from the CLI
//! ([`HttpFarm`]), or the build service itself inside the server ([`LocalFarm`]).

mod http;
mod jobs;
mod local;
pub mod uv;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::farm::BuildError;
use crate::farm::release_has_wheel;
pub use crate::farm::release_to_build;
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{PackageName, Target, Version};
pub use http::HttpFarm;
pub use jobs::{PrewarmJobs, PrewarmProgress};
pub use local::LocalFarm;
use pep440_rs::VersionSpecifiers;
use uv::{Pin, Resolution};

#[derive(Debug, thiserror::Error)]
pub enum PrewarmError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a work directory for uv: {0}")]
    Work(std::io::Error),
    #[error(transparent)]
    Resolve(#[from] uv::ResolveError),
    #[error("{0}")]
    Server(String),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("builds need --token")]
    NoToken,
    #[error("{project} {version}: still {state} after {timeout:?}")]
    Timeout {
        project: String,
        version: String,
        state: String,
        timeout: Duration,
    },
    #[error(
        "resolution for {target} still lacked wheels after {MAX_RESOLUTION_ROUNDS} rounds of builds"
    )]
    TooManyRounds { target: Target },
    #[error("resolution for {target} needs a release that cannot be built")]
    Unbuildable { target: Target },
}

/// A release the farm built a wheel of, for a target (as the build API spells them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltRelease {
    pub project: String,
    pub version: String,
    pub target: String,
}

/// Where prewarm reads pages and has wheels built.
#[async_trait::async_trait]
pub trait Farm: Send + Sync {
    /// The target-pinned index uv resolves against.
    fn index_url(&self, target: &Target) -> String;
    /// The project's page as the target sees it.
    async fn page(
        &self,
        target: &Target,
        project: &PackageName,
    ) -> Result<ProjectDetail, PrewarmError>;
    /// Builds one release and waits for it (or `timeout`), calling `progress` with a line
    /// per change of state.
    async fn build(
        &self,
        project: &PackageName,
        version: &Version,
        target: &Target,
        timeout: Duration,
        progress: &mut (dyn FnMut(String) + Send),
    ) -> Result<Finished, PrewarmError>;
    /// Every build that succeeded so far.
    async fn succeeded_builds(&self) -> Result<Vec<BuiltRelease>, PrewarmError>;
    fn log_url(&self, id: &str) -> String;
}

/// The requirement lines of `path` and of the files it includes with `-r`, in order.
/// Index options are the server's business and are dropped with a note.
pub fn read_requirements(
    path: &Path,
    seen: &mut BTreeSet<PathBuf>,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, PrewarmError> {
    let read_error = |source| PrewarmError::Read {
        path: path.to_path_buf(),
        source,
    };
    let canonical = path.canonicalize().map_err(read_error)?;
    if !seen.insert(canonical) {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let mut requirements = Vec::new();
    for line in text.replace("\\\n", " ").lines() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let included = line
            .strip_prefix("-r ")
            .or_else(|| line.strip_prefix("--requirement "));
        if let Some(included) = included {
            let included = path
                .parent()
                .unwrap_or(Path::new("."))
                .join(included.trim());
            requirements.extend(read_requirements(&included, seen, notes)?);
        } else if line.starts_with('-') {
            notes.push(format!(
                "{}: ignored `{line}` (edelweiss is the index)",
                path.display()
            ));
        } else {
            requirements.push(line.to_string());
        }
    }
    Ok(requirements)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub project: String,
    pub version: String,
    pub target: String,
    pub source: &'static str,
    pub seconds: f64,
    pub log_url: Option<String>,
    /// A failed build's reason, in one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A build prewarm asked for, once it has ended.
pub struct Finished {
    pub succeeded: bool,
    pub id: String,
    pub reason: Option<String>,
}

/// One line of a state change of a build, as prewarm prints it.
pub fn state_line(
    project: &PackageName,
    version: &Version,
    target: &Target,
    state: &str,
    since: Instant,
) -> String {
    format!(
        "  {project} {version} [{target}]: {state} ({:.0?})",
        since.elapsed()
    )
}

/// A build prewarm started while resolving: an sdist-only release that resolution needed.
struct BuiltNow {
    name: PackageName,
    version: Version,
    finished: Finished,
    log_url: String,
    seconds: f64,
}

impl BuiltNow {
    fn row(&self, target: &Target) -> Row {
        Row {
            project: self.name.to_string(),
            version: self.version.to_string(),
            target: target.to_string(),
            source: if self.finished.succeeded {
                "built now"
            } else {
                "failed"
            },
            seconds: self.seconds,
            log_url: Some(self.log_url.clone()),
            reason: self.finished.reason.clone(),
        }
    }
}

/// How many times resolution may stop for want of wheels before prewarm gives up.
const MAX_RESOLUTION_ROUNDS: usize = 50;

/// The version specifiers each requirement line puts on its project.
fn direct_specifiers(requirements: &[String]) -> BTreeMap<PackageName, Vec<VersionSpecifiers>> {
    let mut specifiers: BTreeMap<PackageName, Vec<VersionSpecifiers>> = BTreeMap::new();
    for line in requirements {
        let Ok(requirement) = pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line)
        else {
            continue;
        };
        let entry = specifiers.entry(requirement.name).or_default();
        if let Some(pep508_rs::VersionOrUrl::VersionSpecifier(allowed)) = requirement.version_or_url
        {
            entry.push(allowed);
        }
    }
    specifiers
}

/// `uv pip compile` off the async runtime (it waits on a child process).
async fn compile(
    requirements: &[String],
    target: &Target,
    index_url: String,
    work: &Path,
    refresh: &[PackageName],
) -> Result<Resolution, PrewarmError> {
    let (requirements, target, work, refresh) = (
        requirements.to_vec(),
        target.clone(),
        work.to_path_buf(),
        refresh.to_vec(),
    );
    tokio::task::spawn_blocking(move || {
        uv::compile(&requirements, &target, &index_url, &work, &refresh)
    })
    .await
    .map_err(|error| PrewarmError::Server(format!("uv's resolution stopped: {error}")))?
    .map_err(PrewarmError::from)
}

/// Resolves wheels only; while uv lacks wheels, builds one release of each project it
/// names and resolves again with the built wheels. `None` when a needed build failed or no
/// release could be built (said through `progress` and `built`).
async fn resolve_with_builds(
    farm: &dyn Farm,
    requirements: &[String],
    target: &Target,
    work: &Path,
    timeout: Duration,
    progress: &mut (dyn FnMut(String) + Send),
    built: &mut Vec<BuiltNow>,
) -> Result<Option<Vec<Pin>>, PrewarmError> {
    let direct = direct_specifiers(requirements);
    let mut refresh: Vec<PackageName> = Vec::new();
    for _ in 0..MAX_RESOLUTION_ROUNDS {
        let resolution =
            compile(requirements, target, farm.index_url(target), work, &refresh).await?;
        let lacking = match resolution {
            Resolution::Pinned(pins) => return Ok(Some(pins)),
            Resolution::LacksWheels(lacking) => lacking,
        };
        for wanted in lacking {
            let detail = farm.page(target, &wanted.name).await?;
            let mut allowed = direct.get(&wanted.name).cloned().unwrap_or_default();
            allowed.extend(wanted.specifiers);
            let tried: BTreeSet<Version> = built
                .iter()
                .filter(|build| build.name == wanted.name)
                .map(|build| build.version.clone())
                .collect();
            let Some(version) = release_to_build(&detail, &allowed, target, &tried) else {
                progress(format!(
                    "{target}: {} has no wheel for this target and no release with an sdist fits the requirements",
                    wanted.name
                ));
                return Ok(None);
            };
            progress(format!(
                "{target}: {} {version} has only an sdist: building it before resolving on",
                wanted.name
            ));
            let started = Instant::now();
            let finished = farm
                .build(&wanted.name, &version, target, timeout, progress)
                .await?;
            let succeeded = finished.succeeded;
            built.push(BuiltNow {
                name: wanted.name.clone(),
                version,
                log_url: farm.log_url(&finished.id),
                finished,
                seconds: started.elapsed().as_secs_f64(),
            });
            if !succeeded {
                return Ok(None);
            }
            refresh.push(wanted.name);
        }
    }
    Err(PrewarmError::TooManyRounds {
        target: target.clone(),
    })
}

/// For each target: resolve (building what resolution needs first), then make sure every
/// pin has a wheel, building what lacks one. `progress` gets one line per step and per
/// change of a build's state.
pub async fn run(
    farm: &dyn Farm,
    requirements: &[String],
    targets: &[Target],
    timeout: Duration,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Vec<Row>, PrewarmError> {
    let work = tempfile::tempdir().map_err(PrewarmError::Work)?;
    let built_before = farm.succeeded_builds().await?;
    let mut rows = Vec::new();
    for target in targets {
        let mut built = Vec::new();
        let resolved = resolve_with_builds(
            farm,
            requirements,
            target,
            work.path(),
            timeout,
            progress,
            &mut built,
        )
        .await?;
        let Some(pins) = resolved else {
            rows.extend(
                built
                    .iter()
                    .filter(|build| !build.finished.succeeded)
                    .map(|build| build.row(target)),
            );
            if built.iter().all(|build| build.finished.succeeded) {
                return Err(PrewarmError::Unbuildable {
                    target: target.clone(),
                });
            }
            continue;
        };
        progress(format!("{target}: {} distributions resolved", pins.len()));
        for Pin { name, version } in pins {
            if let Some(build) = built
                .iter()
                .find(|build| build.name == name && build.version == version)
            {
                rows.push(build.row(target));
                continue;
            }
            let started = Instant::now();
            let detail = farm.page(target, &name).await?;
            if release_has_wheel(&detail, &version, target) {
                let ours = built_before.contains(&BuiltRelease {
                    project: name.to_string(),
                    version: version.to_string(),
                    target: target.to_string(),
                });
                rows.push(Row {
                    project: name.to_string(),
                    version: version.to_string(),
                    target: target.to_string(),
                    source: if ours {
                        "built before"
                    } else {
                        "upstream wheel"
                    },
                    seconds: started.elapsed().as_secs_f64(),
                    log_url: None,
                    reason: None,
                });
                continue;
            }
            let finished = farm
                .build(&name, &version, target, timeout, progress)
                .await?;
            let build = BuiltNow {
                log_url: farm.log_url(&finished.id),
                name,
                version,
                finished,
                seconds: started.elapsed().as_secs_f64(),
            };
            rows.push(build.row(target));
        }
    }
    Ok(rows)
}

pub fn print_table(rows: &[Row]) {
    println!(
        "\n{:<28} {:<14} {:<30} {:<16} {:>8}",
        "package", "version", "target", "source", "time"
    );
    for row in rows {
        println!(
            "{:<28} {:<14} {:<30} {:<16} {:>7.1}s",
            row.project, row.version, row.target, row.source, row.seconds
        );
    }
    for row in rows.iter().filter(|row| row.reason.is_some()) {
        let (reason, log) = (row.reason.as_deref(), row.log_url.as_deref());
        println!(
            "\n{} {} [{}] failed: {}\n  log: {}",
            row.project,
            row.version,
            row.target,
            reason.unwrap_or_default(),
            log.unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_includes_and_drops_index_options() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.txt"),
            "# base\nrequests>=2.31\n--index-url https://elsewhere/simple\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("app.txt"), "-r base.txt\npsycopg2==2.9.10  # db\nuvloop ; sys_platform != \"win32\"\nfoo[bar] \\\n  >=1.0\n").unwrap();
        let (mut seen, mut notes) = (BTreeSet::new(), Vec::new());
        let requirements =
            read_requirements(&dir.path().join("app.txt"), &mut seen, &mut notes).unwrap();
        assert_eq!(
            requirements,
            [
                "requests>=2.31",
                "psycopg2==2.9.10",
                "uvloop ; sys_platform != \"win32\"",
                "foo[bar]    >=1.0"
            ]
        );
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("--index-url"));
    }
}
