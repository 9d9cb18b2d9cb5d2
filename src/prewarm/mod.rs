//! `edelweiss prewarm`: makes sure every distribution a requirements file resolves to has a
//! wheel for each target before a Docker build runs. Resolution is uv's (`uv pip compile`
//! against the target-pinned index, wheels only: see [`uv`]); a requirement only an sdist
//! can satisfy is built by the farm first, and resolution goes on with the built wheel's
//! metadata. Missing wheels are built through the server's API.

pub mod uv;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context as _;

pub use crate::build::release_to_build;
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{DistFilename, PackageName, Target, Version};
use pep440_rs::VersionSpecifiers;
use uv::{Pin, Resolution};

/// The requirement lines of `path` and of the files it includes with `-r`, in order.
/// Index options are the server's business and are dropped with a note.
pub fn read_requirements(
    path: &Path,
    seen: &mut BTreeSet<PathBuf>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let canonical = path
        .canonicalize()
        .with_context(|| format!("reading {}", path.display()))?;
    if !seen.insert(canonical) {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
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

/// Whether the page lists a wheel of `version` that installs on `target`.
pub fn has_wheel(detail: &ProjectDetail, version: &str, target: &Target) -> bool {
    detail
        .files
        .iter()
        .any(|file| match file.filename.parse::<DistFilename>() {
            Ok(DistFilename::Wheel(wheel)) => {
                wheel.version.to_string() == version && target.accepts(&wheel)
            }
            _ => false,
        })
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

pub struct Client {
    pub http: reqwest::blocking::Client,
    pub server: url::Url,
    pub token: Option<String>,
}

impl Client {
    fn get(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        let request = self
            .http
            .get(self.server.join(path).expect("relative API path"));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub fn page(&self, target: &Target, project: &str) -> anyhow::Result<ProjectDetail> {
        let response = self
            .get(&format!("t/{target}/simple/{project}/"))
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .send()?;
        anyhow::ensure!(
            response.status().is_success(),
            "page of {project}: {}",
            response.status()
        );
        Ok(response.json()?)
    }

    fn log_url(&self, id: &str) -> anyhow::Result<String> {
        Ok(self
            .server
            .join(&format!("api/v1/builds/{id}"))?
            .to_string())
    }

    /// Builds one release and waits for it, printing a line per change of state.
    pub fn build(
        &self,
        project: &str,
        version: &str,
        target: &Target,
        timeout: Duration,
        progress: &mut dyn FnMut(String),
    ) -> anyhow::Result<Finished> {
        let token = self.token.as_deref().context("builds need --token")?;
        let response = self
            .http
            .post(self.server.join("api/v1/builds")?)
            .bearer_auth(token)
            .json(&serde_json::json!({"project": project, "version": version, "target": target.to_string()}))
            .send()?;
        anyhow::ensure!(
            response.status().is_success(),
            "build request for {project} {version}: {} {}",
            response.status(),
            response.text().unwrap_or_default().trim()
        );
        let build: serde_json::Value = response.json()?;
        let id = build["id"].as_str().context("build id")?.to_string();
        let (started, mut last) = (Instant::now(), String::new());
        loop {
            let build: serde_json::Value =
                self.get(&format!("api/v1/builds/{id}")).send()?.json()?;
            let state = build["state"].as_str().unwrap_or("unknown").to_string();
            if state != last {
                progress(format!(
                    "  {project} {version} [{target}]: {state} ({:.0?})",
                    started.elapsed()
                ));
                last = state.clone();
            }
            match state.as_str() {
                "succeeded" | "failed" => {
                    return Ok(Finished {
                        succeeded: state == "succeeded",
                        id,
                        reason: build["failure"]["message"].as_str().map(str::to_string),
                    });
                }
                _ if started.elapsed() > timeout => {
                    anyhow::bail!("{project} {version}: still {state} after {timeout:?}")
                }
                _ => std::thread::sleep(Duration::from_secs(2)),
            }
        }
    }
}

fn builds(client: &Client) -> anyhow::Result<Vec<serde_json::Value>> {
    let listing: serde_json::Value = client.get("api/v1/builds").send()?.json()?;
    Ok(listing["builds"].as_array().cloned().unwrap_or_default())
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

/// Resolves wheels only; while uv lacks wheels, builds one release of each project it
/// names and resolves again with the built wheels. `None` when a needed build failed or no
/// release could be built (said through `progress` and `built`).
fn resolve_with_builds(
    client: &Client,
    requirements: &[String],
    target: &Target,
    work: &Path,
    timeout: Duration,
    progress: &mut dyn FnMut(String),
    built: &mut Vec<BuiltNow>,
) -> anyhow::Result<Option<Vec<Pin>>> {
    let index_url = client
        .server
        .join(&format!("t/{target}/simple/"))?
        .to_string();
    let direct = direct_specifiers(requirements);
    let mut refresh: Vec<PackageName> = Vec::new();
    for _ in 0..MAX_RESOLUTION_ROUNDS {
        let lacking = match uv::compile(requirements, target, &index_url, work, &refresh)? {
            Resolution::Pinned(pins) => return Ok(Some(pins)),
            Resolution::LacksWheels(lacking) => lacking,
        };
        for wanted in lacking {
            let detail = client.page(target, wanted.name.as_ref())?;
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
            let finished = client.build(
                wanted.name.as_ref(),
                &version.to_string(),
                target,
                timeout,
                progress,
            )?;
            let succeeded = finished.succeeded;
            built.push(BuiltNow {
                name: wanted.name.clone(),
                version,
                log_url: client.log_url(&finished.id)?,
                finished,
                seconds: started.elapsed().as_secs_f64(),
            });
            if !succeeded {
                return Ok(None);
            }
            refresh.push(wanted.name);
        }
    }
    anyhow::bail!(
        "resolution for {target} still lacked wheels after {MAX_RESOLUTION_ROUNDS} rounds of builds"
    )
}

/// For each target: resolve (building what resolution needs first), then make sure every
/// pin has a wheel, building what lacks one. `progress` gets one line per step and per
/// change of a build's state.
pub fn run(
    client: &Client,
    requirements: &[String],
    targets: &[Target],
    timeout: Duration,
    progress: &mut dyn FnMut(String),
) -> anyhow::Result<Vec<Row>> {
    let work = tempfile::tempdir()?;
    let built_before = builds(client)?;
    let mut rows = Vec::new();
    for target in targets {
        let mut built = Vec::new();
        let resolved = resolve_with_builds(
            client,
            requirements,
            target,
            work.path(),
            timeout,
            progress,
            &mut built,
        )?;
        let Some(pins) = resolved else {
            rows.extend(
                built
                    .iter()
                    .filter(|build| !build.finished.succeeded)
                    .map(|build| build.row(target)),
            );
            if built.iter().all(|build| build.finished.succeeded) {
                anyhow::bail!("resolution for {target} needs a release that cannot be built");
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
            let detail = client.page(target, name.as_ref())?;
            if has_wheel(&detail, &version.to_string(), target) {
                let ours = built_before.iter().any(|build| {
                    build["project"] == name.as_ref()
                        && build["version"] == version.to_string().as_str()
                        && build["target"] == target.to_string().as_str()
                        && build["state"] == "succeeded"
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
            let finished = client.build(
                name.as_ref(),
                &version.to_string(),
                target,
                timeout,
                progress,
            )?;
            let build = BuiltNow {
                log_url: client.log_url(&finished.id)?,
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
