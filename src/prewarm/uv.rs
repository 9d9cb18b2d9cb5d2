//! Resolution by `uv pip compile` with building from source disabled (`--no-build`): uv then
//! reads only wheels and their PEP 658 metadata, so no package's code runs on the machine
//! that resolves, be it the server or a CI runner. A requirement that only an sdist could
//! satisfy comes back as [`Resolution::LacksWheels`], for the farm to build first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use pep440_rs::VersionSpecifiers;

use crate::pypi::{PackageName, PlatformTag, Target, Version};

/// How much of uv's own words an error keeps.
const MAX_MESSAGE_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub name: PackageName,
    pub version: Version,
}

/// A requirement uv could satisfy only by building: the project, and the versions uv
/// considered when it says (`psycopg2>=2.9 has no usable wheels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lacking {
    pub name: PackageName,
    pub specifiers: Option<VersionSpecifiers>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Pinned(Vec<Pin>),
    LacksWheels(Vec<Lacking>),
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("prewarm resolves musllinux targets only, not {0}")]
    NotMusllinux(PlatformTag),
    #[error("writing the requirements for uv to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("running `{uv}` (install uv, or set EDELWEISS_UV): {source}")]
    Spawn { uv: String, source: std::io::Error },
    #[error("resolution for {target} failed: {message}")]
    Failed { target: Target, message: String },
    #[error("uv printed `{line}`, which is not a `name==version` pin")]
    NotAPin { line: String },
}

/// uv's `--python-platform` for a musllinux target.
fn uv_platform(target: &Target) -> Result<String, ResolveError> {
    match &target.platform {
        PlatformTag::Musllinux { arch, .. } => Ok(format!("{}-unknown-linux-musl", arch.as_str())),
        other => Err(ResolveError::NotMusllinux(other.clone())),
    }
}

/// Resolves `requirements` for `target` against `index_url`, wheels only. `refresh` names
/// projects whose pages changed since uv last read them (a wheel was just built).
pub fn compile(
    requirements: &[String],
    target: &Target,
    index_url: &str,
    work: &Path,
    refresh: &[PackageName],
) -> Result<Resolution, ResolveError> {
    let input = work.join(format!("requirements-{target}.in"));
    std::fs::write(&input, requirements.join("\n") + "\n").map_err(|source| {
        ResolveError::Write {
            path: input.clone(),
            source,
        }
    })?;
    let uv = std::env::var("EDELWEISS_UV").unwrap_or_else(|_| "uv".into());
    let mut command = Command::new(&uv);
    command
        .args(["pip", "compile", "--quiet", "--no-header", "--no-annotate"])
        .args(["--no-config", "--no-build", "--python-platform"])
        .arg(uv_platform(target)?)
        .arg("--python-version")
        .arg(format!("{}.{}", target.major, target.minor))
        .args(["--index-url", index_url])
        // The target's interpreter is never needed: without this, uv spends seconds trying
        // to download one.
        .env("UV_PYTHON_DOWNLOADS", "never");
    for name in refresh {
        command.arg("--refresh-package").arg(name.as_ref());
    }
    let output = command
        .arg(&input)
        .output()
        .map_err(|source| ResolveError::Spawn { uv, source })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        return parse_pins(&String::from_utf8_lossy(&output.stdout)).map(Resolution::Pinned);
    }
    let lacking = parse_lacking(&stderr);
    if lacking.is_empty() {
        return Err(ResolveError::Failed {
            target: target.clone(),
            message: bounded(stderr.trim()),
        });
    }
    Ok(Resolution::LacksWheels(lacking))
}

fn bounded(text: &str) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text.to_string();
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `name==version` lines, as `uv pip compile --no-annotate` prints them.
fn parse_pins(stdout: &str) -> Result<Vec<Pin>, ResolveError> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let not_a_pin = || ResolveError::NotAPin {
                line: bounded(line).chars().take(200).collect(),
            };
            let (name, version) = line.split_once("==").ok_or_else(not_a_pin)?;
            Ok(Pin {
                name: PackageName::from_str(name.trim()).map_err(|_| not_a_pin())?,
                version: Version::from_str(version.trim()).map_err(|_| not_a_pin())?,
            })
        })
        .collect()
}

/// The projects uv names in `Wheels are required for `NAME` because building from source
/// is disabled`, each with the specifier of its `NAME<specifier> has no usable wheels`
/// clause where there is one.
pub fn parse_lacking(stderr: &str) -> Vec<Lacking> {
    const HINT: &str = "Wheels are required for `";
    let mut lacking: Vec<Lacking> = Vec::new();
    for (_, rest) in stderr
        .match_indices(HINT)
        .map(|(at, _)| stderr.split_at(at))
    {
        let Some((name, _)) = rest[HINT.len()..].split_once('`') else {
            continue;
        };
        let Ok(name) = PackageName::from_str(name) else {
            continue;
        };
        if lacking.iter().any(|known| known.name == name) {
            continue;
        }
        let specifiers = specifiers_without_wheels(stderr, &name);
        lacking.push(Lacking { name, specifiers });
    }
    lacking
}

/// The `>=2.9` of `psycopg2>=2.9 has no usable wheels`.
fn specifiers_without_wheels(stderr: &str, name: &PackageName) -> Option<VersionSpecifiers> {
    stderr
        .match_indices(" has no usable wheels")
        .find_map(|(at, _)| {
            let clause = stderr[..at].split_whitespace().next_back()?;
            let split = clause.find(['=', '<', '>', '!', '~'])?;
            let (candidate, specifiers) = clause.split_at(split);
            (PackageName::from_str(candidate).ok()? == *name)
                .then(|| VersionSpecifiers::from_str(specifiers).ok())
                .flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // uv 0.13's words, as it printed them for these requirements.
    const PINNED_SDIST_ONLY: &str = "error: No solution found when resolving dependencies
  cause: Because gdal==3.6.2 has no usable wheels and you require gdal==3.6.2, we can conclude that your requirements are unsatisfiable.

hint: Wheels are required for `gdal` because building from source is disabled for all packages (i.e., with `--no-build`)";
    const NO_WHEEL_AT_ALL: &str = "error: No solution found when resolving dependencies
  cause: Because all versions of psycopg2 have no usable wheels and you require psycopg2, we can conclude that your requirements are unsatisfiable.

hint: Wheels are required for `psycopg2` because building from source is disabled for all packages (i.e., with `--no-build`)";
    const SOME_WITH_WHEELS: &str = "error: No solution found when resolving dependencies
  cause: Because pygdal>=3.6.0.11 has no usable wheels and only the following versions of pygdal are available:
             pygdal<3.6
             pygdal>=3.6.0.11
         we can conclude that pygdal>=3.6 cannot be used.
         And because you require pygdal>=3.6, we can conclude that your requirements are unsatisfiable.

hint: Wheels are required for `pygdal` because building from source is disabled for all packages (i.e., with `--no-build`)";

    fn lacking(name: &str, specifiers: Option<&str>) -> Lacking {
        Lacking {
            name: PackageName::from_str(name).unwrap(),
            specifiers: specifiers.map(|text| VersionSpecifiers::from_str(text).unwrap()),
        }
    }

    #[test]
    fn names_what_lacks_a_wheel_with_the_versions_uv_considered() {
        assert_eq!(
            parse_lacking(PINNED_SDIST_ONLY),
            [lacking("gdal", Some("==3.6.2"))]
        );
        assert_eq!(parse_lacking(NO_WHEEL_AT_ALL), [lacking("psycopg2", None)]);
        assert_eq!(
            parse_lacking(SOME_WITH_WHEELS),
            [lacking("pygdal", Some(">=3.6.0.11"))]
        );
        assert_eq!(
            parse_lacking("error: Failed to fetch: `http://127.0.0.1:9/simple/x/`"),
            []
        );
    }

    #[test]
    fn reads_pins_and_refuses_anything_else() {
        let pins = parse_pins("django==5.1.4\n\nsqlparse==0.5.3\n").unwrap();
        assert_eq!(pins.len(), 2);
        assert_eq!(pins[0].name.as_ref(), "django");
        assert_eq!(pins[1].version.to_string(), "0.5.3");
        assert!(matches!(
            parse_pins("-e ../../etc\n"),
            Err(ResolveError::NotAPin { .. })
        ));
    }

    #[test]
    fn bounds_uv_messages() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        assert!(bounded(&long).len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
    }
}
