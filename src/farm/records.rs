//! A build as it is persisted: its inputs, its state, and its outcome.

use serde::{Deserialize, Serialize};

use super::BuildKey;
use crate::auth::CredentialId;
use crate::pypi::{PackageName, Sha256Digest, Target, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildState {
    /// Waits for the builds of requirements that had no wheel (`BuildRecord::needs`).
    Waiting,
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// Why a build failed. A package failure is final and cached under the key (the same
/// inputs fail the same way); an infrastructure failure is retried and not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    Package,
    Infrastructure,
    /// A requirement found while building (what the backend adds, a runtime dependency of
    /// the smoke test) has no wheel for the target: the farm builds it, then this build again.
    #[serde(rename = "missing-wheel")]
    MissingWheel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    /// For `MissingWheel`: the PEP 508 requirement that had no wheel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
}

impl Failure {
    pub fn package(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Package,
            message: message.into(),
            requirement: None,
        }
    }

    pub fn infrastructure(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Infrastructure,
            message: message.into(),
            requirement: None,
        }
    }

    pub fn missing_wheel(requirement: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::MissingWheel,
            message: message.into(),
            requirement: Some(requirement.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltWheel {
    pub filename: String,
    pub sha256: Sha256Digest,
}

/// A worker's hold on a running build. Records written before `credential` and `wheelhouse`
/// existed read as leases of in-process workers, which a restart re-queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub worker: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The token a remote worker took the lease with; none for in-process workers. Only
    /// requests carrying it may renew the lease, fetch the build's inputs or report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialId>,
    /// The wheelhouse wheels and crates the holder may fetch, besides the sdist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wheelhouse: Vec<Sha256Digest>,
}

/// Who asks about a lease: a worker's name (escaped and bounded: it is logged and shown)
/// and, for a remote worker, the credential its request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub worker: String,
    pub credential: Option<CredentialId>,
}

impl LeaseHolder {
    /// An in-process worker.
    pub fn local(worker: &str) -> Self {
        Self {
            worker: worker.to_string(),
            credential: None,
        }
    }

    /// A remote worker by the name it sends, with the credential of its request.
    pub fn remote(worker: &str, credential: CredentialId) -> Self {
        Self {
            worker: crate::untrusted::sanitize(worker, crate::untrusted::NAME_CHARS),
            credential: Some(credential),
        }
    }
}

/// Whether a lease answers to a holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    Holds,
    /// The build is not running, or another worker of the same credential holds it.
    NotLeased,
    /// Another credential holds the build.
    OtherCredential,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub id: String,
    pub key: BuildKey,
    pub project: PackageName,
    pub version: Version,
    pub target: Target,
    pub sdist_filename: String,
    pub sdist_sha256: Sha256Digest,
    pub builder: String,
    pub state: BuildState,
    pub lease: Option<Lease>,
    pub attempts: u32,
    pub failure: Option<Failure>,
    pub wheel: Option<BuiltWheel>,
    /// RFC 3339 times.
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The stored log blob (build and smoke steps).
    pub log_sha256: Option<Sha256Digest>,
    /// The build requirements resolved when the build was requested; `None` where
    /// resolution is off (the builder's own packages, without isolation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_requirements: Option<BuildRequirements>,
    /// While `Waiting`: the ids of the builds of its requirements that had no wheel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// The crates.io crates the sdist's Cargo.lock files pin, vendored for an offline cargo;
    /// `None` for an sdist without a Cargo.lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crates: Option<super::crates::LockedCrates>,
}

/// An sdist's build requirements (PEP 517/518) for one target, as resolved through this
/// index: part of the build key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequirements {
    /// What was asked for: `[build-system] requires` (or its default) and the recipe's pins.
    pub requested: Vec<String>,
    /// The wheels taken, by project name.
    pub pinned: Vec<super::resolve::Pinned>,
    /// Why the requirements could not be resolved: the build fails with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// A requirement with no wheel for the target yet: the build waits for the farm to
    /// build one, then resolves again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<MissingRequirement>,
}

/// A requirement that no wheel on this index satisfies for the target, and who asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingRequirement {
    pub requirement: String,
    pub from: String,
}

impl BuildRequirements {
    /// The key's view: what was asked for and each wheel's name and digest (or the refusal).
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("strings and digests serialize")
    }
}

impl BuildRecord {
    pub fn is_finished(&self) -> bool {
        matches!(self.state, BuildState::Succeeded | BuildState::Failed)
    }

    /// Whether `holder` holds this running build's lease.
    pub fn holding(&self, holder: &LeaseHolder) -> Holding {
        let lease = match &self.lease {
            Some(lease) if self.state == BuildState::Running => lease,
            _ => return Holding::NotLeased,
        };
        if lease.credential != holder.credential {
            Holding::OtherCredential
        } else if lease.worker != holder.worker {
            Holding::NotLeased
        } else {
            Holding::Holds
        }
    }

    /// Whether `digest` is an input of this build (its sdist, a wheelhouse wheel or a
    /// vendored crate) that a remote worker holding it with `credential` may fetch.
    pub fn lets_fetch(&self, credential: &CredentialId, digest: Sha256Digest) -> bool {
        let Some(lease) = self
            .lease
            .as_ref()
            .filter(|_| self.state == BuildState::Running)
        else {
            return false;
        };
        lease.credential.as_ref() == Some(credential)
            && (self.sdist_sha256 == digest || lease.wheelhouse.contains(&digest))
    }

    /// A result that answers every later request for the same key.
    pub fn is_final(&self) -> bool {
        match self.state {
            BuildState::Succeeded => true,
            BuildState::Failed => self
                .failure
                .as_ref()
                .is_some_and(|failure| failure.kind == FailureKind::Package),
            _ => false,
        }
    }
}

pub use crate::clock::{rfc3339_now as timestamp, unix_now};
