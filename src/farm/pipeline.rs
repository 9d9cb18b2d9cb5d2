//! One build in this process: the sdist from the blob store, the container steps, and the
//! tested wheel into the index.

use std::path::PathBuf;

use super::recipe::Recipe;
use super::records::{BuildRecord, BuiltWheel, Failure};
use super::steps::{BuildInputs, ContainerSteps, TargetBuilders, infrastructure, package};
use crate::ingest::{IngestError, Ingestor, Spool};
use crate::metadata::{FileOrigin, IndexError};
use crate::storage::BlobStore;

pub struct Pipeline {
    pub steps: ContainerSteps,
    pub store: BlobStore,
    pub ingestor: Ingestor,
    pub work_root: PathBuf,
}

pub struct PipelineResult {
    pub outcome: Result<BuiltWheel, Failure>,
    pub log: Vec<u8>,
}

impl Pipeline {
    /// Runs the build; the work directory is removed afterwards, whatever happened.
    pub async fn run(
        &self,
        record: &BuildRecord,
        builders: &TargetBuilders,
        recipe: &Recipe,
        wheelhouse: &[(String, bytes::Bytes)],
        fetcher: Option<&dyn super::fetcher::RequirementFetcher>,
        crates: &dyn super::crates::CrateLoader,
    ) -> PipelineResult {
        let sdist = match self.store.get_bytes(record.sdist_sha256).await {
            Ok(sdist) => sdist,
            Err(error) => {
                return PipelineResult {
                    outcome: Err(infrastructure(error.to_string())),
                    log: Vec::new(),
                };
            }
        };
        let work = self.work_root.join(&record.id);
        let result = self
            .steps
            .run(
                record,
                builders,
                recipe,
                &work,
                &BuildInputs {
                    sdist: &sdist,
                    wheelhouse,
                    fetcher,
                    crates,
                },
            )
            .await;
        let outcome = match result.outcome {
            Ok(wheel) => self.ingest(&wheel.path, &wheel.filename.to_string()).await,
            Err(failure) => Err(failure),
        };
        let _ = std::fs::remove_dir_all(&work);
        PipelineResult {
            outcome,
            log: result.log,
        }
    }

    /// Stores a tested wheel as a built file of its project.
    pub async fn ingest(
        &self,
        path: &std::path::Path,
        filename: &str,
    ) -> Result<BuiltWheel, Failure> {
        let spooled = Spool::copy_from(self.ingestor.spool_dir(), u64::MAX, path)
            .await
            .map_err(|error| infrastructure(error.to_string()))?;
        match self
            .ingestor
            .ingest(spooled, filename, None, FileOrigin::Built)
            .await
        {
            Ok(ingested) => Ok(BuiltWheel {
                filename: ingested.record.filename,
                sha256: ingested.record.sha256,
            }),
            // A file is never replaced: a rebuild (a new builder, a new recipe) that makes
            // other bytes, or the same wheel spelled otherwise, keeps serving the wheel
            // already published for that name, version and tags.
            Err(IngestError::Index(IndexError::Conflict { held, existing, .. })) => {
                tracing::info!(filename, %held, %existing, "this wheel is already served; keeping it");
                Ok(BuiltWheel {
                    filename: held,
                    sha256: existing,
                })
            }
            Err(error) => Err(package(format!(
                "the built wheel was refused by the index: {error}"
            ))),
        }
    }
}
