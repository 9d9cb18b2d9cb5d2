//! The resolver's view of this index for one target: the wheels held here and those of the
//! upstream pages the mirror serves, each stored (and so cached) once it is looked into.

use std::io::Read as _;
use std::sync::Arc;

use futures::StreamExt as _;

use super::resolve::{BoxFuture, Candidate, ResolveError, WheelSource};
use crate::metadata::IndexStore;
use crate::mirror::{Mirror, MirroredFile};
use crate::pypi::{CoreMetadata, DistFilename, PackageName, Sha256Digest, Target};
use crate::storage::BlobStore;

/// The largest METADATA read from a wheel.
const MAX_METADATA_BYTES: u64 = 4 << 20;

pub struct IndexWheels {
    pub index: Arc<dyn IndexStore>,
    pub mirror: Arc<Mirror>,
    pub store: BlobStore,
    pub target: Target,
}

/// Makes sure the blob of `filename` is in the store, through the mirror when it is not
/// held here; false when neither has it.
pub async fn store_through_mirror(
    mirror: &Mirror,
    store: &BlobStore,
    filename: &str,
    digest: Sha256Digest,
) -> Result<bool, String> {
    if store
        .contains(digest)
        .await
        .map_err(|error| error.to_string())?
    {
        return Ok(true);
    }
    let Some(file) = mirror
        .open_file(digest, filename)
        .await
        .map_err(|error| error.to_string())?
    else {
        return Ok(false);
    };
    if let MirroredFile::Streaming { mut body, .. } = file {
        while let Some(chunk) = body.next().await {
            chunk.map_err(|error| format!("{filename}: {error}"))?;
        }
    }
    Ok(true)
}

/// `Requires-Dist` of a wheel's METADATA.
pub fn wheel_requires_dist(filename: &str, wheel: &[u8]) -> Result<Vec<String>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(wheel))
        .map_err(|error| format!("{filename}: {error}"))?;
    let name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|name| name.ends_with(".dist-info/METADATA") && name.matches('/').count() == 1)
        .map(|name| name.into_owned())
        .ok_or_else(|| format!("{filename} has no .dist-info/METADATA"))?;
    let mut bytes = Vec::new();
    archive
        .by_name(&name)
        .map_err(|error| format!("{filename}: {error}"))?
        .take(MAX_METADATA_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("{filename}: {error}"))?;
    CoreMetadata::parse(&bytes)
        .map(|metadata| metadata.requires_dist)
        .map_err(|error| format!("{filename}: {error}"))
}

impl IndexWheels {
    fn candidate(
        &self,
        filename: &str,
        sha256: Option<Sha256Digest>,
        requires_python: Option<String>,
    ) -> Option<Candidate> {
        match filename.parse::<DistFilename>() {
            Ok(DistFilename::Wheel(wheel)) if self.target.accepts(&wheel) => Some(Candidate {
                filename: filename.to_string(),
                version: wheel.version,
                sha256: sha256?,
                requires_python,
            }),
            _ => None,
        }
    }

    /// Every wheel of `project` here and upstream that installs on the target.
    pub async fn list(&self, project: &PackageName) -> Result<Vec<Candidate>, ResolveError> {
        let held = self
            .index
            .files(project)
            .await
            .map_err(|error| ResolveError::Source(error.to_string()))?;
        let mut candidates: Vec<Candidate> = held
            .into_iter()
            .filter(|file| file.yanked.is_none())
            .filter_map(|file| {
                self.candidate(&file.filename, Some(file.sha256), file.requires_python)
            })
            .collect();
        // Only an upload hides the upstream (the dependency-confusion rule): a wheel the farm
        // built of an upstream project leaves every upstream release in view.
        let uploaded = self
            .index
            .project(project)
            .await
            .map_err(|error| ResolveError::Source(error.to_string()))?
            .is_some_and(|record| record.uploaded);
        if !self.mirror.is_enabled() || self.mirror.hides_upstream(project, uploaded) {
            return Ok(candidates);
        }
        match self.mirror.project_page(project).await {
            Ok(Some(page)) => candidates.extend(
                page.detail
                    .files
                    .iter()
                    .filter(|file| !file.yanked.is_yanked())
                    .filter_map(|file| {
                        let digest = file.sha256().and_then(|hex| hex.parse().ok());
                        self.candidate(&file.filename, digest, file.requires_python.clone())
                    }),
            ),
            Ok(None) => {}
            Err(error) if candidates.is_empty() => {
                return Err(ResolveError::Source(format!(
                    "the page of {project}: {error}"
                )));
            }
            Err(_) => {}
        }
        Ok(candidates)
    }

    async fn read_requires(&self, candidate: &Candidate) -> Result<Vec<String>, ResolveError> {
        let stored = store_through_mirror(
            &self.mirror,
            &self.store,
            &candidate.filename,
            candidate.sha256,
        )
        .await
        .map_err(ResolveError::Source)?;
        if !stored {
            return Err(ResolveError::Source(format!(
                "{} is listed but cannot be fetched",
                candidate.filename
            )));
        }
        let bytes = self
            .store
            .get_bytes(candidate.sha256)
            .await
            .map_err(|error| ResolveError::Source(error.to_string()))?;
        wheel_requires_dist(&candidate.filename, &bytes).map_err(|reason| {
            ResolveError::Requirement {
                requirement: candidate.filename.clone(),
                reason,
            }
        })
    }
}

impl WheelSource for IndexWheels {
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
        Box::pin(self.read_requires(candidate))
    }
}
