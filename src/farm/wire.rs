//! The build farm's messages over HTTP, defined once for both ends: a remote worker and the
//! server (lease, heartbeat, result), `edelweiss prewarm` and the server (build requests,
//! builds). Each end parses what it receives into these types before using any of it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::recipe::Recipe;
use super::records::{BuildRecord, BuildState, Failure, FailureKind};
use crate::pypi::{PackageName, Sha256Digest, Target, Version};

/// `POST /api/v1/workers/lease`: a worker asks for the oldest queued build of its targets
/// (any target when none are named).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    pub worker: String,
    #[serde(default)]
    pub targets: Vec<Target>,
}

/// The body of a heartbeat and of other requests that only name the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerName {
    pub worker: String,
}

/// The answer to a lease: a build handed to a remote worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// A wheel of a build's requirements, held in the blob store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WheelhouseFile {
    pub filename: String,
    pub sha256: Sha256Digest,
}

/// The `outcome` field of a result form (`POST /api/v1/workers/builds/<id>/result`).
/// The form's other fields: `worker`, `message`, `requirement` (for `missing-wheel`),
/// `wheel_sha256`, and the files `log` and `wheel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutcome {
    Succeeded,
    Failed(FailureKind),
}

impl ResultOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed(FailureKind::Package) => "package",
            Self::Failed(FailureKind::Infrastructure) => "infrastructure",
            Self::Failed(FailureKind::MissingWheel) => "missing-wheel",
        }
    }
}

impl fmt::Display for ResultOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown outcome `{0}`: expected succeeded, package, infrastructure or missing-wheel")]
pub struct UnknownOutcome(String);

impl FromStr for ResultOutcome {
    type Err = UnknownOutcome;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "succeeded" => Self::Succeeded,
            "package" => Self::Failed(FailureKind::Package),
            "infrastructure" => Self::Failed(FailureKind::Infrastructure),
            "missing-wheel" => Self::Failed(FailureKind::MissingWheel),
            other => {
                return Err(UnknownOutcome(crate::untrusted::sanitize(
                    other,
                    crate::untrusted::NAME_CHARS,
                )));
            }
        })
    }
}

/// Whether a remote result was recorded by this report or earlier (by a retry or by another
/// worker's result); sent in the `Edelweiss-Result` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Now,
    Already,
}

impl Recorded {
    pub const HEADER: &'static str = "edelweiss-result";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Now => "recorded",
            Self::Already => "already-recorded",
        }
    }
}

/// `POST /api/v1/builds`: build one release for one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    pub project: PackageName,
    pub version: Version,
    pub target: Target,
}

/// What a client reads of a build (`GET /api/v1/builds/<id>`, and each of
/// `GET /api/v1/builds`'s `builds`); the server sends the whole record, without the lease's
/// credential, plus `log_url` and `log`.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildView {
    pub id: String,
    pub project: PackageName,
    pub version: Version,
    pub target: Target,
    pub state: BuildState,
    #[serde(default)]
    pub failure: Option<Failure>,
}

/// `GET /api/v1/builds`.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildList {
    pub builds: Vec<BuildView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_and_an_unknown_one_is_named_escaped() {
        for outcome in [
            ResultOutcome::Succeeded,
            ResultOutcome::Failed(FailureKind::Package),
            ResultOutcome::Failed(FailureKind::Infrastructure),
            ResultOutcome::Failed(FailureKind::MissingWheel),
        ] {
            assert_eq!(outcome.as_str().parse::<ResultOutcome>().unwrap(), outcome);
        }
        let error = "done\n2026 INFO forged"
            .parse::<ResultOutcome>()
            .unwrap_err();
        assert!(!error.to_string().contains('\n'), "{error}");
    }

    #[test]
    fn a_lease_request_parses_its_targets() {
        let request: LeaseRequest =
            serde_json::from_str(r#"{"worker": "w1", "targets": ["cp313-musllinux_1_2_x86_64"]}"#)
                .unwrap();
        assert_eq!(request.targets[0].to_string(), "cp313-musllinux_1_2_x86_64");
        assert!(
            serde_json::from_str::<LeaseRequest>(r#"{"worker": "w1", "targets": ["../x"]}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<LeaseRequest>(r#"{"worker": "w1", "extra": 1}"#).is_err());
    }

    #[test]
    fn a_build_view_reads_a_record_as_the_api_sends_it() {
        let view: BuildView = serde_json::from_value(serde_json::json!({
            "id": "b1", "project": "Demo_Pkg", "version": "1.0", "state": "failed",
            "target": "cp313-musllinux_1_2_x86_64", "log_url": "/api/v1/builds/b1",
            "failure": {"kind": "package", "message": "no compiler"}
        }))
        .unwrap();
        assert_eq!(view.project.as_ref(), "demo-pkg");
        assert_eq!(view.state, BuildState::Failed);
        assert_eq!(view.failure.unwrap().message, "no compiler");
        let hostile = serde_json::json!({
            "id": "b1", "project": "demo", "version": "1.0", "state": "done",
            "target": "cp313-musllinux_1_2_x86_64"
        });
        assert!(serde_json::from_value::<BuildView>(hostile).is_err());
    }
}
