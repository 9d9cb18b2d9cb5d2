//! What a remote worker accepts of a server's lease. The build id names the work directory
//! (which a build deletes and recreates), the sdist and wheelhouse filenames name files
//! written in it (and the crates' names and versions, typed by `LockedCrate`, directories), and all of them end up in URLs, container names and log lines: each is
//! parsed by the same typed parsers as uploads before anything touches the filesystem.

use super::id::{BuildId, BuildIdError};
use super::wire::Assignment;
use crate::pypi::{PackageName, SdistFilename, Sha256Digest, Target, Version, WheelFilename};
use crate::untrusted::{PREFIX_CHARS, sanitize};

/// Longest explanation of a malformed assignment a log line carries, in characters.
const REASON_CHARS: usize = 240;

/// A lease whose every path-bound value is parsed; `assignment` holds the same values as
/// text, now known to be safe.
pub struct CheckedAssignment {
    pub id: BuildId,
    pub project: PackageName,
    pub version: Version,
    pub target: Target,
    pub sdist: SdistFilename,
    pub wheelhouse: Vec<(WheelFilename, Sha256Digest)>,
    pub assignment: Assignment,
}

#[derive(Debug, thiserror::Error)]
pub enum AssignmentError {
    /// Without an id there is no build to report on: the lease lapses on the server.
    #[error("refused a lease: {0}")]
    Id(BuildIdError),
    /// The build is reported as an infrastructure failure, so the server can retry it.
    #[error("refused the lease of build {id}: {reason}")]
    Inputs { id: BuildId, reason: String },
}

/// `what` was `input`, which is not acceptable: named with a short escaped prefix.
fn refused(what: &str, input: &str, rule: &str) -> String {
    format!("{what} `{}` is not {rule}", sanitize(input, PREFIX_CHARS))
}

impl CheckedAssignment {
    /// Parses a lease response: the build id first (so a refusal can be reported), then
    /// the whole assignment and each value in it that becomes a path or a name.
    pub fn parse(offer: serde_json::Value) -> Result<Self, AssignmentError> {
        let raw_id = &offer["build"]["id"];
        let id: BuildId = raw_id
            .as_str()
            .map_or_else(|| raw_id.to_string(), str::to_string)
            .parse()
            .map_err(AssignmentError::Id)?;
        let inputs = |reason: String| AssignmentError::Inputs {
            id: id.clone(),
            reason,
        };
        let assignment: Assignment = serde_json::from_value(offer).map_err(|error| {
            inputs(format!(
                "the assignment is malformed: {}",
                sanitize(&error.to_string(), REASON_CHARS)
            ))
        })?;
        let build = &assignment.build;
        // The project, version and target were parsed with the record.
        let (project, version, target) = (
            build.project.clone(),
            build.version.clone(),
            build.target.clone(),
        );
        let sdist = build.sdist_filename.parse().map_err(|_| {
            inputs(refused(
                "the sdist filename",
                &build.sdist_filename,
                "an sdist filename",
            ))
        })?;
        let wheelhouse = assignment
            .wheelhouse
            .iter()
            .map(|file| {
                let filename = file.filename.parse().map_err(|_| {
                    inputs(refused(
                        "the wheelhouse filename",
                        &file.filename,
                        "a wheel filename",
                    ))
                })?;
                Ok((filename, file.sha256))
            })
            .collect::<Result<_, AssignmentError>>()?;
        Ok(Self {
            id,
            project,
            version,
            target,
            sdist,
            wheelhouse,
            assignment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> serde_json::Value {
        let digest = Sha256Digest::of(b"bytes").to_hex();
        serde_json::json!({
            "build": {
                "id": "b0123456789abcdef", "key": digest, "project": "demo", "version": "1.0",
                "target": "cp313-musllinux_1_2_x86_64", "sdist_filename": "demo-1.0.tar.gz",
                "sdist_sha256": digest, "builder": "b", "state": "running", "lease": null,
                "attempts": 1, "failure": null, "wheel": null, "queued_at": "t",
                "started_at": null, "finished_at": null, "log_sha256": null,
                "crates": {
                    "locks": ["demo-1.0/Cargo.lock"],
                    "crates": [{"name": "cfg-if", "version": "1.0.0", "sha256": digest}]
                }
            },
            "recipe": {},
            "wheelhouse": [{"filename": "numpy-2.2.6-py3-none-any.whl", "sha256": digest}],
            "builder": "b", "runtime": "r", "lease_seconds": 30
        })
    }

    fn with(pointer: &str, value: &str) -> serde_json::Value {
        let mut offer = offer();
        *offer.pointer_mut(pointer).unwrap() = value.into();
        offer
    }

    #[test]
    fn a_sound_assignment_parses() {
        let checked = CheckedAssignment::parse(offer()).unwrap();
        assert_eq!(checked.id.as_str(), "b0123456789abcdef");
        assert_eq!(checked.sdist.to_string(), "demo-1.0.tar.gz");
        assert_eq!(
            checked.wheelhouse[0].0.to_string(),
            "numpy-2.2.6-py3-none-any.whl"
        );
        let crates = checked.assignment.build.crates.unwrap().crates;
        assert_eq!(crates[0].directory(), "cfg-if-1.0.0");
    }

    #[test]
    fn a_build_id_that_is_a_path_is_refused_without_naming_it_raw() {
        for id in ["../../home", "/etc", "b0123456789abcdef\n", "\u{1b}[2J"] {
            let refusal = CheckedAssignment::parse(with("/build/id", id))
                .err()
                .unwrap();
            assert!(matches!(refusal, AssignmentError::Id(_)), "{id:?}");
            assert!(
                !refusal.to_string().chars().any(char::is_control),
                "{refusal}"
            );
        }
    }

    #[test]
    fn names_that_become_paths_are_refused_and_reported_under_the_build_id() {
        for (pointer, value) in [
            ("/build/sdist_filename", "/etc/passwd"),
            ("/build/sdist_filename", "../demo-1.0.tar.gz"),
            ("/build/sdist_filename", "demo-1.0.tar.gz\0"),
            ("/wheelhouse/0/filename", "../../../x-1.0-py3-none-any.whl"),
            ("/wheelhouse/0/filename", "/tmp/x-1.0-py3-none-any.whl"),
            ("/wheelhouse/0/sha256", "../../not-a-digest"),
            ("/build/project", "demo\n2026 INFO forged"),
            ("/build/version", "1.0/../../x"),
            ("/build/target", "cp313-../../etc"),
            ("/build/key", "../k"),
            ("/build/crates/crates/0/name", "../../../etc"),
            ("/build/crates/crates/0/version", "1.0.0/../../x"),
            ("/build/crates/crates/0/sha256", "../x"),
        ] {
            match CheckedAssignment::parse(with(pointer, value)) {
                Err(AssignmentError::Inputs { id, reason }) => {
                    assert_eq!(id.as_str(), "b0123456789abcdef");
                    assert!(!reason.chars().any(char::is_control), "{reason}");
                }
                Err(other) => panic!("{pointer} = {value:?}: {other}"),
                Ok(_) => panic!("{pointer} = {value:?} was accepted"),
            }
        }
    }
}
