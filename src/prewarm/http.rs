//! Prewarm from outside the server (`edelweiss prewarm`, a CI runner): pages and builds
//! through the server's HTTP API.

use std::time::{Duration, Instant};

use super::{BuiltRelease, Farm, Finished, PrewarmError, state_line};
use crate::farm::BuildState;
use crate::farm::wire::{BuildList, BuildRequest, BuildView};
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{PackageName, Target, Version};

/// How often a build's state is asked for.
const POLL_EVERY: Duration = Duration::from_secs(2);

pub struct HttpFarm {
    pub http: reqwest::Client,
    pub server: url::Url,
    pub token: Option<String>,
}

fn server_error(what: &str, error: impl std::fmt::Display) -> PrewarmError {
    PrewarmError::Server(format!("{what}: {error}"))
}

impl HttpFarm {
    fn url(&self, path: &str) -> url::Url {
        self.server.join(path).expect("API paths are relative URLs")
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(self.url(path));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, PrewarmError> {
        let response = self
            .get(path)
            .send()
            .await
            .map_err(|error| server_error(path, error))?;
        if !response.status().is_success() {
            return Err(server_error(path, response.status()));
        }
        response
            .json()
            .await
            .map_err(|error| server_error(path, error))
    }
}

#[async_trait::async_trait]
impl Farm for HttpFarm {
    fn index_url(&self, target: &Target) -> String {
        self.url(&format!("t/{target}/simple/")).to_string()
    }

    async fn page(
        &self,
        target: &Target,
        project: &PackageName,
    ) -> Result<ProjectDetail, PrewarmError> {
        let what = format!("the page of {project}");
        let response = self
            .get(&format!("t/{target}/simple/{project}/"))
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .send()
            .await
            .map_err(|error| server_error(&what, error))?;
        if !response.status().is_success() {
            return Err(server_error(&what, response.status()));
        }
        response
            .json()
            .await
            .map_err(|error| server_error(&what, error))
    }

    async fn build(
        &self,
        project: &PackageName,
        version: &Version,
        target: &Target,
        timeout: Duration,
        progress: &mut (dyn FnMut(String) + Send),
    ) -> Result<Finished, PrewarmError> {
        let token = self.token.as_deref().ok_or(PrewarmError::NoToken)?;
        let what = format!("the build request for {project} {version}");
        let response = self
            .http
            .post(self.url("api/v1/builds"))
            .bearer_auth(token)
            .json(&BuildRequest {
                project: project.clone(),
                version: version.clone(),
                target: target.clone(),
            })
            .send()
            .await
            .map_err(|error| server_error(&what, error))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(server_error(&what, format!("{status} {}", text.trim())));
        }
        let build: BuildView = response
            .json()
            .await
            .map_err(|error| server_error(&what, error))?;
        let id = build.id;
        let (started, mut last) = (Instant::now(), None);
        loop {
            let build: BuildView = self.json(&format!("api/v1/builds/{id}")).await?;
            let state = build.state;
            if last != Some(state) {
                let name = crate::status::state_name(state);
                progress(state_line(project, version, target, name, started));
                last = Some(state);
            }
            match state {
                BuildState::Succeeded | BuildState::Failed => {
                    return Ok(Finished {
                        succeeded: state == BuildState::Succeeded,
                        id,
                        reason: build.failure.map(|failure| failure.message),
                    });
                }
                _ if started.elapsed() > timeout => {
                    return Err(PrewarmError::Timeout {
                        project: project.to_string(),
                        version: version.to_string(),
                        state: crate::status::state_name(state).to_string(),
                        timeout,
                    });
                }
                _ => tokio::time::sleep(POLL_EVERY).await,
            }
        }
    }

    async fn succeeded_builds(&self) -> Result<Vec<BuiltRelease>, PrewarmError> {
        let listing: BuildList = self.json("api/v1/builds").await?;
        Ok(listing
            .builds
            .into_iter()
            .filter(|build| build.state == BuildState::Succeeded)
            .map(|build| BuiltRelease {
                project: build.project.to_string(),
                version: build.version.to_string(),
                target: build.target.to_string(),
            })
            .collect())
    }

    fn log_url(&self, id: &str) -> String {
        self.url(&format!("api/v1/builds/{id}")).to_string()
    }
}
