//! `edelweiss prewarm`: makes sure every distribution a requirements file resolves to has a
//! wheel for each target before a Docker build runs. Resolution is uv's (`uv pip compile`
//! against the target-pinned index); missing wheels are built through the server's API.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::pypi::simple::ProjectDetail;
use crate::pypi::{DistFilename, PlatformTag, Target};

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

/// uv's `--python-platform` for a musllinux target.
fn uv_platform(target: &Target) -> anyhow::Result<String> {
    match &target.platform {
        PlatformTag::Musllinux { arch, .. } => Ok(format!("{}-unknown-linux-musl", arch.as_str())),
        other => anyhow::bail!("prewarm resolves musllinux targets only, not {other}"),
    }
}

/// `name==version` pins from `uv pip compile`.
pub fn resolve(
    requirements: &[String],
    target: &Target,
    index_url: &str,
    work: &Path,
) -> anyhow::Result<Vec<(String, String)>> {
    let input = work.join(format!("requirements-{target}.in"));
    std::fs::write(&input, requirements.join("\n") + "\n")?;
    let uv = std::env::var("EDELWEISS_UV").unwrap_or_else(|_| "uv".into());
    let output = Command::new(&uv)
        .args([
            "pip",
            "compile",
            "--quiet",
            "--no-header",
            "--no-annotate",
            "--no-config",
            "--python-platform",
        ])
        .arg(uv_platform(target)?)
        .args([
            "--python-version",
            &format!("{}.{}", target.major, target.minor),
            "--index-url",
            index_url,
        ])
        .arg(&input)
        .output()
        .with_context(|| format!("running `{uv} pip compile` (install uv, or set EDELWEISS_UV)"))?;
    anyhow::ensure!(
        output.status.success(),
        "resolution for {target} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            line.split_once("==")
                .map(|(name, version)| (name.trim().to_string(), version.trim().to_string()))
        })
        .collect())
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

    /// Builds one release and waits for it, printing a line per change of state.
    pub fn build(
        &self,
        project: &str,
        version: &str,
        target: &Target,
        timeout: Duration,
        progress: &mut dyn FnMut(String),
    ) -> anyhow::Result<(bool, String)> {
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
                "succeeded" => return Ok((true, id)),
                "failed" => return Ok((false, id)),
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

/// For each target: resolve, then make sure every pin has a wheel, building what lacks one.
/// `progress` gets one line per step and per change of a build's state.
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
        let index_url = client
            .server
            .join(&format!("t/{target}/simple/"))?
            .to_string();
        let pins = resolve(requirements, target, &index_url, work.path())?;
        progress(format!("{target}: {} distributions resolved", pins.len()));
        for (project, version) in pins {
            let started = Instant::now();
            let detail = client.page(target, &project)?;
            let row = |source, log_url| Row {
                project: project.clone(),
                version: version.clone(),
                target: target.to_string(),
                source,
                seconds: started.elapsed().as_secs_f64(),
                log_url,
            };
            if has_wheel(&detail, &version, target) {
                let normalized = project.to_lowercase().replace(['_', '.'], "-");
                let ours = built_before.iter().any(|build| {
                    build["project"] == normalized.as_str()
                        && build["version"] == version.as_str()
                        && build["target"] == target.to_string().as_str()
                        && build["state"] == "succeeded"
                });
                rows.push(row(
                    if ours {
                        "built before"
                    } else {
                        "upstream wheel"
                    },
                    None,
                ));
                continue;
            }
            let (succeeded, id) = client.build(&project, &version, target, timeout, progress)?;
            let log_url = client
                .server
                .join(&format!("api/v1/builds/{id}"))?
                .to_string();
            rows.push(row(
                if succeeded { "built now" } else { "failed" },
                Some(log_url),
            ));
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
