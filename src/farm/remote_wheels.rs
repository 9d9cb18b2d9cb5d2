//! A remote worker's view of its server's index, for what a build asks for while it runs
//! (what the backend adds, the wheel's runtime dependencies): the server's PEP 691 pages
//! and files, each file checked against the digest its page gave.

use std::str::FromStr as _;

use url::Url;

use super::fetcher::WheelLoader;
use super::index_wheels::wheel_requires_dist;
use super::records::Failure;
use super::resolve::{BoxFuture, Candidate, Pinned, ResolveError, WheelSource};
use crate::auth::Secret;
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{DistFilename, PackageName, Sha256Digest, Target};

/// The largest project page read.
const MAX_PAGE_BYTES: usize = 16 << 20;
/// The largest wheel fetched.
const MAX_WHEEL_BYTES: usize = 1 << 30;

pub struct RemoteWheels {
    pub client: reqwest::Client,
    pub server: Url,
    pub token: Secret,
    pub target: Target,
    /// Where each listed wheel is fetched from, by digest.
    urls: std::sync::Mutex<std::collections::HashMap<Sha256Digest, Url>>,
}

impl RemoteWheels {
    pub fn new(client: reqwest::Client, server: Url, token: Secret, target: Target) -> Self {
        Self {
            client,
            server,
            token,
            target,
            urls: Default::default(),
        }
    }

    async fn get(&self, url: Url, limit: usize) -> Result<bytes::Bytes, String> {
        let response = self
            .client
            .get(url.clone())
            .bearer_auth(self.token.expose())
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| format!("{url}: {error}"))?;
        if response
            .content_length()
            .is_some_and(|length| length as usize > limit)
        {
            return Err(format!("{url} is larger than {limit} bytes"));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        if bytes.len() > limit {
            return Err(format!("{url} is larger than {limit} bytes"));
        }
        Ok(bytes)
    }

    async fn list(&self, project: &PackageName) -> Result<Vec<Candidate>, ResolveError> {
        let page_url = self
            .server
            .join(&format!("simple/{project}/"))
            .map_err(|error| ResolveError::Source(error.to_string()))?;
        let bytes = self
            .get(page_url.clone(), MAX_PAGE_BYTES)
            .await
            .map_err(ResolveError::Source)?;
        let page: ProjectDetail = serde_json::from_slice(&bytes)
            .map_err(|error| ResolveError::Source(format!("{page_url}: {error}")))?;
        let mut candidates = Vec::new();
        let mut urls = self.urls.lock().expect("no panic while the map is held");
        for file in page.files.iter().filter(|file| !file.yanked.is_yanked()) {
            let Ok(DistFilename::Wheel(wheel)) = file.filename.parse::<DistFilename>() else {
                continue;
            };
            let digest = file
                .sha256()
                .and_then(|hex| Sha256Digest::from_str(hex).ok());
            let (Some(digest), Ok(url)) = (digest, page_url.join(&file.url)) else {
                continue;
            };
            // The worker's token goes with every fetch: only to the server itself.
            if url.origin() != self.server.origin() {
                continue;
            }
            if self.target.accepts(&wheel) {
                urls.insert(digest, url);
                candidates.push(Candidate {
                    filename: file.filename.clone(),
                    version: wheel.version,
                    sha256: digest,
                    requires_python: file.requires_python.clone(),
                });
            }
        }
        Ok(candidates)
    }

    async fn wheel(&self, filename: &str, digest: Sha256Digest) -> Result<bytes::Bytes, String> {
        let url = self
            .urls
            .lock()
            .expect("no panic while the map is held")
            .get(&digest)
            .cloned()
            .ok_or_else(|| format!("{filename} was not listed by the server"))?;
        let bytes = self.get(url, MAX_WHEEL_BYTES).await?;
        if Sha256Digest::of(&bytes) != digest {
            return Err(format!("{filename} does not match its digest {digest}"));
        }
        Ok(bytes)
    }
}

impl WheelSource for RemoteWheels {
    fn wheels<'a>(
        &'a self,
        project: &'a PackageName,
    ) -> BoxFuture<'a, Result<Vec<Candidate>, ResolveError>> {
        Box::pin(self.list(project))
    }

    fn requires_dist<'a>(
        &'a self,
        _project: &'a PackageName,
        candidate: &'a Candidate,
    ) -> BoxFuture<'a, Result<Vec<String>, ResolveError>> {
        Box::pin(async move {
            let bytes = self
                .wheel(&candidate.filename, candidate.sha256)
                .await
                .map_err(ResolveError::Source)?;
            wheel_requires_dist(&candidate.filename, &bytes).map_err(|reason| {
                ResolveError::Requirement {
                    requirement: candidate.filename.clone(),
                    reason,
                }
            })
        })
    }
}

impl WheelLoader for RemoteWheels {
    fn target(&self) -> &Target {
        &self.target
    }

    fn load<'a>(&'a self, pin: &'a Pinned) -> BoxFuture<'a, Result<bytes::Bytes, Failure>> {
        Box::pin(async move {
            self.wheel(&pin.filename, pin.sha256)
                .await
                .map_err(Failure::infrastructure)
        })
    }
}
