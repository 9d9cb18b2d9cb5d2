//! `edelweiss worker`: takes builds from a server over HTTP, runs the container steps with
//! its own executor, and reports results. A lease is renewed while the build runs; a worker
//! that dies loses it and the server hands the build to another. Nothing the server sends
//! becomes a path before `CheckedAssignment` has parsed it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use url::Url;

use super::assignment_check::{AssignmentError, CheckedAssignment};
use super::crates::{CrateLoader, LockedCrate};
use super::id::BuildId;
use super::records::FailureKind;
use super::resolve::BoxFuture;
use super::steps::{ContainerSteps, TargetBuilders, infrastructure};
use super::wire::{Assignment, LeaseRequest, Recorded, ResultOutcome, WorkerName};
use crate::auth::Secret;
use crate::pypi::{Sha256Digest, Target};
use crate::untrusted::{MESSAGE_CHARS, PREFIX_CHARS, sanitize};

/// The largest lease offer a worker reads.
const MAX_OFFER_BYTES: usize = 1 << 20;
/// The largest build input (an sdist or a wheelhouse wheel) a worker reads.
const MAX_INPUT_BYTES: usize = 2 << 30;

/// A response's body, refused once it passes `limit` bytes.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<bytes::Bytes, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| error.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// `name[:tag][@digest]` of a registry image: no flag, space or control character.
fn is_image_reference(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 256
        && !text.starts_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@{}".contains(c))
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the server at {server} failed: {detail}")]
    Server { server: String, detail: String },
    #[error("the server refused this worker's token")]
    Refused,
    #[error("local I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

pub struct RemoteWorker {
    pub client: reqwest::Client,
    pub server: Url,
    pub token: Secret,
    pub name: String,
    /// Targets this worker builds; its builder and runtime for each, when they differ from
    /// the server's names.
    pub targets: Vec<Target>,
    pub builders: HashMap<String, (String, String)>,
    pub steps: ContainerSteps,
    pub work_root: PathBuf,
}

/// How long a worker keeps trying to deliver a finished result to a server it cannot reach.
const REPORT_PATIENCE: Duration = Duration::from_secs(15 * 60);

/// A finished build's result as the worker sends it; kept so it can be sent again.
struct Report {
    log: Vec<u8>,
    outcome: ReportedOutcome,
}

enum ReportedOutcome {
    Wheel {
        filename: String,
        bytes: Vec<u8>,
    },
    Failed {
        kind: FailureKind,
        message: String,
        requirement: Option<String>,
    },
}

impl Report {
    fn from_steps(result: super::steps::StepsResult) -> std::io::Result<Self> {
        let outcome = match result.outcome {
            Ok(wheel) => ReportedOutcome::Wheel {
                filename: wheel.filename.to_string(),
                bytes: std::fs::read(&wheel.path)?,
            },
            Err(failure) => ReportedOutcome::Failed {
                kind: failure.kind,
                message: failure.message,
                requirement: failure.requirement,
            },
        };
        Ok(Self {
            log: result.log,
            outcome,
        })
    }

    fn form(&self, worker: &str) -> reqwest::multipart::Form {
        let form = reqwest::multipart::Form::new()
            .text("worker", worker.to_string())
            .part(
                "log",
                reqwest::multipart::Part::bytes(self.log.clone()).file_name("build.log"),
            );
        match &self.outcome {
            ReportedOutcome::Wheel { filename, bytes } => form
                .text("outcome", ResultOutcome::Succeeded.as_str())
                .text("wheel_sha256", Sha256Digest::of(bytes).to_hex())
                .part(
                    "wheel",
                    reqwest::multipart::Part::bytes(bytes.clone()).file_name(filename.clone()),
                ),
            ReportedOutcome::Failed {
                kind,
                message,
                requirement,
            } => {
                let form = form
                    .text("outcome", ResultOutcome::Failed(*kind).as_str())
                    .text("message", message.clone());
                match requirement {
                    Some(requirement) => form.text("requirement", requirement.clone()),
                    None => form,
                }
            }
        }
    }
}

impl RemoteWorker {
    fn url(&self, path: &str) -> Url {
        self.server.join(path).expect("API paths are relative URLs")
    }

    fn server_error(&self, detail: impl ToString) -> WorkerError {
        WorkerError::Server {
            server: self.server.to_string(),
            detail: detail.to_string(),
        }
    }

    async fn check(&self, response: reqwest::Response) -> Result<reqwest::Response, WorkerError> {
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(WorkerError::Refused),
            status if status.is_success() => Ok(response),
            status => {
                let body = response.text().await.unwrap_or_default();
                Err(self.server_error(format!(
                    "{status}: {}",
                    sanitize(body.trim(), MESSAGE_CHARS)
                )))
            }
        }
    }

    /// The server's offer as JSON, parsed by `CheckedAssignment` before any use.
    async fn lease(&self) -> Result<Option<serde_json::Value>, WorkerError> {
        let body = LeaseRequest {
            worker: self.name.clone(),
            targets: self.targets.clone(),
        };
        let response = self
            .client
            .post(self.url("api/v1/workers/lease"))
            .bearer_auth(self.token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|error| self.server_error(error))?;
        let response = self.check(response).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let body = read_capped(response, MAX_OFFER_BYTES)
            .await
            .map_err(|error| self.server_error(error))?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|error| self.server_error(error))
    }

    fn heartbeat(&self, id: &BuildId, lease_seconds: u64) -> tokio::task::JoinHandle<()> {
        let (client, url, token, worker) = (
            self.client.clone(),
            self.url(&format!("api/v1/workers/builds/{id}/heartbeat")),
            self.token.clone(),
            self.name.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs((lease_seconds / 3).max(1))).await;
                let sent = client
                    .post(url.clone())
                    .bearer_auth(token.expose())
                    .json(&WorkerName {
                        worker: worker.clone(),
                    })
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => {
                        tracing::warn!(status = %response.status(), "heartbeat refused: the lease is lost")
                    }
                    Err(error) => tracing::warn!(%error, "heartbeat failed"),
                }
            }
        })
    }

    /// Builder and runtime here: the worker's own for the target, or the server's names.
    /// This machine's builder and runtime for `target`, or the server's names for them. A
    /// runc worker builds only in root directories it names itself: a directory the server
    /// names would be a host path chosen by the server. Image names from the server must
    /// read as image references, not as flags.
    fn builders_for(
        &self,
        assignment: &Assignment,
        target: &Target,
    ) -> Result<TargetBuilders, String> {
        let (builder, runtime) = match self.builders.get(&target.to_string()) {
            Some((builder, runtime)) => (
                builder.replace("{recipe}", &assignment.recipe.image_tag()),
                runtime.clone(),
            ),
            None if self.steps.executor.name() == "runc" => {
                return Err(format!(
                    "worker {} runs runc and names no root for {target}: start it with --target {target}=BUILDER_ROOT,RUNTIME_ROOT",
                    self.name
                ));
            }
            None => {
                for image in [&assignment.builder, &assignment.runtime] {
                    if !is_image_reference(image) {
                        return Err(format!(
                            "the server named `{}` as an image",
                            sanitize(image, PREFIX_CHARS)
                        ));
                    }
                }
                (assignment.builder.clone(), assignment.runtime.clone())
            }
        };
        Ok(TargetBuilders {
            target: target.clone(),
            builder,
            runtime,
        })
    }

    /// Bytes from the server's worker API, only if they hash to `expected`.
    async fn fetch_verified(&self, path: &str, expected: Sha256Digest) -> Option<bytes::Bytes> {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .ok()?;
        let bytes = read_capped(response.error_for_status().ok()?, MAX_INPUT_BYTES)
            .await
            .ok()?;
        (Sha256Digest::of(&bytes) == expected).then_some(bytes)
    }

    /// Takes one build if there is one; false when the server had nothing, or offered a
    /// lease this worker refused.
    pub async fn take_one(&self) -> Result<bool, WorkerError> {
        let Some(offer) = self.lease().await? else {
            return Ok(false);
        };
        let leased = match CheckedAssignment::parse(offer) {
            Ok(leased) => leased,
            Err(refusal) => {
                self.refuse(refusal).await?;
                return Ok(false);
            }
        };
        tracing::info!(build = %leased.id, project = %leased.project, version = %leased.version, sdist = %leased.sdist, "leased a build");
        let heartbeat = self.heartbeat(&leased.id, leased.assignment.lease_seconds);
        let work = self.work_root.join(leased.id.as_str());
        let result = self.run(&leased, &work).await;
        heartbeat.abort();
        let reported = match Report::from_steps(result) {
            Ok(report) => self.report(&leased.id, report).await,
            Err(error) => Err(error.into()),
        };
        let _ = std::fs::remove_dir_all(&work);
        reported.map(|()| true)
    }

    /// Ends a lease whose assignment did not parse, in one log line; the server hears of
    /// it as an infrastructure failure when the build id at least was sound.
    async fn refuse(&self, refusal: AssignmentError) -> Result<(), WorkerError> {
        tracing::error!("{refusal}; nothing was fetched or written");
        let AssignmentError::Inputs { id, .. } = &refusal else {
            return Ok(());
        };
        let report = Report {
            log: format!("===== edelweiss worker {}: {refusal}\n", self.name).into_bytes(),
            outcome: ReportedOutcome::Failed {
                kind: FailureKind::Infrastructure,
                message: format!("worker {}: {refusal}", self.name),
                requirement: None,
            },
        };
        self.report(id, report).await
    }

    async fn run(
        &self,
        leased: &CheckedAssignment,
        work: &std::path::Path,
    ) -> super::steps::StepsResult {
        let assignment = &leased.assignment;
        let build = &assignment.build;
        let failed = |message: String| super::steps::StepsResult {
            outcome: Err(infrastructure(message)),
            log: Vec::new(),
        };
        let builders = match self.builders_for(assignment, &leased.target) {
            Ok(builders) => builders,
            Err(refusal) => return failed(refusal),
        };
        match self
            .steps
            .executor
            .builder_identity(&builders.builder)
            .await
        {
            Ok(identity) if identity == build.builder => {}
            Ok(identity) => {
                return failed(format!(
                    "worker {} has builder {identity}; the build key was made for {}",
                    self.name, build.builder
                ));
            }
            Err(error) => return failed(format!("worker {}: {error}", self.name)),
        }
        let sdist_path = format!("api/v1/workers/builds/{}/sdist", leased.id);
        let Some(sdist) = self.fetch_verified(&sdist_path, build.sdist_sha256).await else {
            return failed(format!(
                "worker {} could not fetch the sdist intact",
                self.name
            ));
        };
        let mut wheelhouse = Vec::new();
        for (filename, sha256) in &leased.wheelhouse {
            let path = format!("api/v1/workers/blobs/{sha256}");
            let Some(bytes) = self.fetch_verified(&path, *sha256).await else {
                return failed(format!(
                    "worker {} could not fetch {filename} intact",
                    self.name
                ));
            };
            wheelhouse.push((filename.to_string(), bytes));
        }
        let fetcher = super::fetcher::Fetcher {
            wheels: super::remote_wheels::RemoteWheels::new(
                self.client.clone(),
                self.server.clone(),
                self.token.clone(),
                leased.target.clone(),
            ),
            recipe_pins: assignment.recipe.build_requires.clone(),
        };
        let inputs = super::steps::BuildInputs {
            sdist: &sdist,
            wheelhouse: &wheelhouse,
            fetcher: Some(&fetcher),
            crates: &ServerCrates { worker: self },
        };
        self.steps
            .run(build, &builders, &assignment.recipe, work, &inputs)
            .await
    }

    /// Sends a finished build's result. A result is worth keeping (a build can take half an
    /// hour), so a server that cannot be reached is asked again until `REPORT_PATIENCE` has
    /// passed; the server decides whether the result still counts (409: the lease went to
    /// another worker, whose result is the one kept; 403: to a worker with another token).
    async fn report(&self, id: &BuildId, report: Report) -> Result<(), WorkerError> {
        let url = self.url(&format!("api/v1/workers/builds/{id}/result"));
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_secs(1);
        let response = loop {
            let sent = self
                .client
                .post(url.clone())
                .bearer_auth(self.token.expose())
                .multipart(report.form(&self.name))
                .send()
                .await;
            match sent {
                Ok(response) => break response,
                Err(error) if started.elapsed() < REPORT_PATIENCE => {
                    tracing::warn!(build = %id, %error, "cannot reach the server; holding the result and trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(15));
                }
                Err(error) => return Err(self.server_error(error)),
            }
        };
        match response.status() {
            StatusCode::CONFLICT | StatusCode::FORBIDDEN => {
                tracing::warn!(build = %id, status = %response.status(), "the server refused a late result: another worker has the build");
                Ok(())
            }
            _ => {
                let response = self.check(response).await?;
                let already = response
                    .headers()
                    .get(Recorded::HEADER)
                    .is_some_and(|value| value == Recorded::Already.as_str());
                if already {
                    tracing::warn!(build = %id, "the server already had a wheel for this build (an earlier send of this result, or another worker's); nothing changed");
                } else {
                    tracing::info!(build = %id, "result reported");
                }
                Ok(())
            }
        }
    }

    /// Works until stopped; transient server errors are logged and retried.
    pub async fn run_forever(&self, poll: Duration) -> Result<(), WorkerError> {
        loop {
            match self.take_one().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(WorkerError::Refused) => return Err(WorkerError::Refused),
                Err(error) => tracing::warn!(%error, "worker cycle failed; retrying"),
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// A remote build's crates, from the server's worker API (which serves only the crates of a
/// build leased with this worker's token), each kept only if it hashes to the lock's checksum.
struct ServerCrates<'a> {
    worker: &'a RemoteWorker,
}

impl CrateLoader for ServerCrates<'_> {
    fn load<'a>(
        &'a self,
        locked: &'a LockedCrate,
    ) -> BoxFuture<'a, Result<bytes::Bytes, super::records::Failure>> {
        Box::pin(async move {
            let path = format!("api/v1/workers/blobs/{}", locked.sha256);
            self.worker
                .fetch_verified(&path, locked.sha256)
                .await
                .ok_or_else(|| {
                    infrastructure(format!(
                        "worker {} could not fetch crate {} {} intact",
                        self.worker.name, locked.name, locked.version
                    ))
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_image_reference;

    #[test]
    fn server_named_images_must_read_as_references() {
        for image in [
            "python:3.13-alpine",
            "registry.example:5000/team/edelweiss-builder:cp313-default",
            "edelweiss-builder@sha256:0123abcd",
        ] {
            assert!(is_image_reference(image), "{image}");
        }
        for hostile in [
            "",
            "--privileged",
            "-v/:/host",
            "alpine --rm",
            "alpine\n",
            &"a".repeat(300),
        ] {
            assert!(!is_image_reference(hostile), "{hostile:?}");
        }
    }
}
