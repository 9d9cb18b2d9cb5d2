//! Prewarm inside the server (`POST /api/v1/prewarm`): pages from the catalog and builds
//! from the build service, without a request to itself. Only uv reads the server's index
//! over HTTP, as any client would.

use std::time::{Duration, Instant};

use super::{BuiltRelease, Farm, Finished, PrewarmError, state_line};
use crate::farm::{BuildService, BuildState};
use crate::index::Index;
use crate::mirror::Mirror;
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{PackageName, Target, Version};

/// How long one wait for a build's next state lasts before the deadline is checked.
const WAIT_STEP: Duration = Duration::from_secs(5);

pub struct LocalFarm<'a> {
    pub index: &'a Index,
    pub mirror: &'a Mirror,
    pub builds: &'a BuildService,
    /// Where uv finds this server's index, and build log links point.
    pub server: url::Url,
}

#[async_trait::async_trait]
impl Farm for LocalFarm<'_> {
    fn index_url(&self, target: &Target) -> String {
        self.server
            .join(&format!("t/{target}/simple/"))
            .expect("a relative path")
            .to_string()
    }

    async fn page(
        &self,
        _target: &Target,
        project: &PackageName,
    ) -> Result<ProjectDetail, PrewarmError> {
        crate::catalog::detail(self.index, self.mirror, project)
            .await
            .map_err(|error| PrewarmError::Server(format!("the page of {project}: {error}")))?
            .map(|(detail, _)| detail)
            .ok_or_else(|| PrewarmError::Server(format!("{project} is not in this index")))
    }

    async fn build(
        &self,
        project: &PackageName,
        version: &Version,
        target: &Target,
        timeout: Duration,
        progress: &mut (dyn FnMut(String) + Send),
    ) -> Result<Finished, PrewarmError> {
        let sdist = self.builds.find_sdist(project, version).await?;
        let (record, _) = self.builds.request(project, version, sdist, target).await?;
        let (started, mut last) = (Instant::now(), None);
        let mut record = Some(record);
        loop {
            let Some(current) = record else {
                return Err(PrewarmError::Server(format!(
                    "the build of {project} {version} is gone"
                )));
            };
            if last != Some(current.state) {
                let state = crate::status::state_name(current.state);
                progress(state_line(project, version, target, state, started));
                last = Some(current.state);
            }
            match current.state {
                BuildState::Succeeded | BuildState::Failed => {
                    return Ok(Finished {
                        succeeded: current.state == BuildState::Succeeded,
                        reason: current.failure.map(|failure| failure.message),
                        id: current.id,
                    });
                }
                state if started.elapsed() > timeout => {
                    return Err(PrewarmError::Timeout {
                        project: project.to_string(),
                        version: version.to_string(),
                        state: crate::status::state_name(state).to_string(),
                        timeout,
                    });
                }
                _ => record = self.builds.wait(&current.id, WAIT_STEP).await?,
            }
        }
    }

    async fn succeeded_builds(&self) -> Result<Vec<BuiltRelease>, PrewarmError> {
        let records = self.builds.list().await.map_err(PrewarmError::Build)?;
        Ok(records
            .into_iter()
            .filter(|record| record.state == BuildState::Succeeded)
            .map(|record| BuiltRelease {
                project: record.project.to_string(),
                version: record.version.to_string(),
                target: record.target.to_string(),
            })
            .collect())
    }

    fn log_url(&self, id: &str) -> String {
        self.server
            .join(&format!("api/v1/builds/{id}"))
            .expect("a relative path")
            .to_string()
    }
}
