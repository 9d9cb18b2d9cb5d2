//! What a project page lists: the files held here alone (uploaded projects, or no
//! upstream), or the upstream's files merged with ours. Shared by `/simple/`, the
//! target-pinned `/t/<target>/simple/` pages and PyPI's JSON API.

use crate::index::{Index, merged_detail, project_detail};
use crate::metadata::IndexError;
use crate::mirror::{Mirror, MirrorError, UpstreamError};
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{CoreMetadata, DistFilename, PackageName, Sha256Digest, Version};
use crate::storage::BlobStore;

/// Largest metadata file read for the JSON API's `info`; the ones ingest and the mirror
/// store are bounded below this.
const MAX_METADATA_READ: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
}

pub enum Listing {
    /// Only files held here: the index renders (and caches) the page itself.
    Local,
    /// The upstream's page merged with ours; `stale` when the upstream failed and a cached
    /// copy stands in.
    Merged {
        detail: ProjectDetail,
        stale: Option<UpstreamError>,
    },
}

/// How `name`'s page is made, or `None` when neither this index nor an upstream has it.
pub async fn listing(
    index: &Index,
    mirror: &Mirror,
    name: &PackageName,
) -> Result<Option<Listing>, CatalogError> {
    // One record, not every file's: this runs on every page request.
    let project = index.store().project(name)?;
    let uploaded = project.as_ref().is_some_and(|project| project.uploaded);
    if mirror.hides_upstream(name, uploaded) {
        return Ok(project.map(|_| Listing::Local));
    }
    let local = index.store().files(name)?;
    let upstream = match mirror.project_page(name).await {
        Ok(upstream) => upstream,
        Err(error) if !local.is_empty() => {
            tracing::warn!(project = %name, %error, "upstream failed; serving local files only");
            None
        }
        Err(error) => return Err(error.into()),
    };
    if upstream.is_none() && local.is_empty() {
        return Ok(None);
    }
    let detail = merged_detail(
        name.as_ref(),
        upstream.as_ref().map(|page| &page.detail),
        &local,
    );
    Ok(Some(Listing::Merged {
        detail,
        stale: upstream.and_then(|page| page.stale),
    }))
}

/// The page model whichever way it is made.
pub async fn detail(
    index: &Index,
    mirror: &Mirror,
    name: &PackageName,
) -> Result<Option<(ProjectDetail, Option<UpstreamError>)>, CatalogError> {
    Ok(match listing(index, mirror, name).await? {
        None => None,
        Some(Listing::Merged { detail, stale }) => Some((detail, stale)),
        Some(Listing::Local) => {
            let project = index.store().project(name)?;
            project
                .map(|project| {
                    Ok::<_, IndexError>((
                        project_detail(&project, &index.store().files(name)?),
                        None,
                    ))
                })
                .transpose()?
        }
    })
}

/// The core metadata of `release`, from the first of its wheels on the page whose metadata
/// file is held here; `None` when none is (nothing is fetched for it: the JSON API does
/// not wait on an upstream for a summary).
pub async fn release_metadata(
    store: &BlobStore,
    detail: &ProjectDetail,
    release: &Version,
) -> Option<CoreMetadata> {
    for file in &detail.files {
        let is_release_wheel = matches!(
            file.filename.parse::<DistFilename>(),
            Ok(DistFilename::Wheel(wheel)) if &wheel.version == release
        );
        let digest = file
            .core_metadata
            .sha256_hex()
            .and_then(|hex| hex.parse::<Sha256Digest>().ok());
        let Some(digest) = digest.filter(|_| is_release_wheel) else {
            continue;
        };
        if !store
            .size(digest)
            .await
            .is_ok_and(|size| size <= MAX_METADATA_READ)
        {
            continue;
        }
        let Ok(bytes) = store.get_bytes(digest).await else {
            continue;
        };
        if let Ok(metadata) = CoreMetadata::parse(&bytes) {
            return Some(metadata);
        }
    }
    None
}
