//! Prewarm from outside the server (`edelweiss prewarm`, a CI runner): pages and builds
//! through the server's HTTP API.

use std::time::{Duration, Instant};

use super::{BuiltRelease, Farm, Finished, PrewarmError, state_line};
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

    async fn json(&self, path: &str) -> Result<serde_json::Value, PrewarmError> {
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
            .json(&serde_json::json!({"project": project.to_string(), "version": version.to_string(), "target": target.to_string()}))
            .send()
            .await
            .map_err(|error| server_error(&what, error))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(server_error(&what, format!("{status} {}", text.trim())));
        }
        let build: serde_json::Value = response
            .json()
            .await
            .map_err(|error| server_error(&what, error))?;
        let id = build["id"]
            .as_str()
            .ok_or_else(|| server_error(&what, "no build id in the answer"))?
            .to_string();
        let (started, mut last) = (Instant::now(), String::new());
        loop {
            let build = self.json(&format!("api/v1/builds/{id}")).await?;
            let state = build["state"].as_str().unwrap_or("unknown").to_string();
            if state != last {
                progress(state_line(project, version, target, &state, started));
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
                    return Err(PrewarmError::Timeout {
                        project: project.to_string(),
                        version: version.to_string(),
                        state,
                        timeout,
                    });
                }
                _ => tokio::time::sleep(POLL_EVERY).await,
            }
        }
    }

    async fn succeeded_builds(&self) -> Result<Vec<BuiltRelease>, PrewarmError> {
        let listing = self.json("api/v1/builds").await?;
        Ok(listing["builds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|build| build["state"] == "succeeded")
            .filter_map(|build| {
                Some(BuiltRelease {
                    project: build["project"].as_str()?.to_string(),
                    version: build["version"].as_str()?.to_string(),
                    target: build["target"].as_str()?.to_string(),
                })
            })
            .collect())
    }

    fn log_url(&self, id: &str) -> String {
        self.url(&format!("api/v1/builds/{id}")).to_string()
    }
}
