//! What a project page lists: the files held here alone (uploaded projects, or no
//! upstream), or the upstream's files merged with ours; and the page itself, rendered once
//! and kept (`index::PageCache`) until a write to the project or, for a mirrored page,
//! until its upstream copy is due for revalidation. Shared by `/simple/`, the
//! target-pinned `/t/<target>/simple/` pages and PyPI's JSON API.

use std::sync::Arc;

use crate::index::{Body, CachedPage, Index, PageKey, Scope, View, merged_detail, render_detail};
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

/// A project page ready to send.
pub struct ServedPage {
    pub page: Arc<CachedPage>,
    /// Why the upstream's part is a stale copy (the upstream failed); such a page is not kept.
    pub stale: Option<UpstreamError>,
    /// The whole page model (every file, whatever the view), when this request made the
    /// page; `None` when it was kept from before.
    pub detail: Option<ProjectDetail>,
}

/// A page this large took enough memory to make that it is handed back once the request
/// is done with the model (about 2,000 files).
const LARGE_PAGE: usize = 1 << 20;

impl Drop for ServedPage {
    fn drop(&mut self) {
        if self.detail.take().is_some() && self.page.identity().len() >= LARGE_PAGE {
            crate::memory::release_freed();
        }
    }
}

/// A page model, the version of its project it was made at, and how long a page made from
/// it may be kept.
struct Listing {
    detail: ProjectDetail,
    version: u64,
    /// Unix seconds; `None`: until a write (a page of local files only).
    expires_at: Option<u64>,
    stale: Option<UpstreamError>,
}

/// The files held here alone, as of a version read before them.
async fn local_listing(index: &Index, name: &PackageName) -> Result<Option<Listing>, CatalogError> {
    let version = index.pages().version(&Scope::Project(name.clone()));
    Ok(index.local_detail(name).await?.map(|detail| Listing {
        detail,
        version,
        expires_at: None,
        stale: None,
    }))
}

/// `name`'s page model, or `None` when neither this index nor an upstream has it.
async fn listing(
    index: &Index,
    mirror: &Mirror,
    name: &PackageName,
) -> Result<Option<Listing>, CatalogError> {
    // One record, not every file's, before deciding whether to ask the upstream.
    if mirror.hides_upstream(name, index.is_uploaded(name).await?) {
        return local_listing(index, name).await;
    }
    let scope = Scope::Project(name.clone());
    // The upstream's page may be another replica's, which announces its changes: one heard
    // between reading the page and reading the version below leaves this page unkept.
    let heard = index.pages().heard_version(&scope);
    let upstream = mirror.project_page(name).await;
    // Read after the upstream's page, whose refresh counts as a write to the project, and
    // before every record the page is made from, which are read again for that reason.
    let version = index.pages().version(&scope);
    let heard_since = index.pages().heard_version(&scope) != heard;
    if mirror.hides_upstream(name, index.is_uploaded(name).await?) {
        return local_listing(index, name).await;
    }
    let local = index.local_files(name).await?;
    let upstream = match upstream {
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
    // Without an upstream page the upstream is asked again next time: not kept.
    let expires_at = Some(match &upstream {
        Some(page) if !heard_since => page.fresh_until,
        _ => 0,
    });
    let (upstream, stale) = match upstream {
        Some(page) => (Some(page.detail), page.stale),
        None => (None, None),
    };
    Ok(Some(Listing {
        detail: merged_detail(name.as_ref(), upstream, &local),
        version,
        expires_at,
        stale,
    }))
}

/// `name`'s page in `view` as `body`: kept from before, or made now (by one request at a
/// time per page; the others wait and take it).
pub async fn page(
    index: &Index,
    mirror: &Mirror,
    name: &PackageName,
    view: View,
    body: Body,
) -> Result<Option<ServedPage>, CatalogError> {
    let pages = index.pages();
    let key = PageKey::project(name, view, body);
    let kept = |page| ServedPage {
        page,
        stale: None,
        detail: None,
    };
    if let Some(page) = pages.get(&key) {
        return Ok(Some(kept(page)));
    }
    let _turn = pages.making(&key).await;
    if let Some(page) = pages.peek(&key) {
        return Ok(Some(kept(page)));
    }
    let Some(listing) = listing(index, mirror, name).await? else {
        return Ok(None);
    };
    let rendered = pages.rendered(
        key,
        listing.version,
        render_detail(&view.apply(&listing.detail), body),
        listing.expires_at,
    );
    let page = match listing.stale {
        None => pages.keep(rendered),
        Some(_) => Arc::new(rendered),
    };
    Ok(Some(ServedPage {
        page,
        stale: listing.stale,
        detail: Some(listing.detail),
    }))
}

/// The page model whichever way it is made, with why it is stale if it is.
pub async fn detail(
    index: &Index,
    mirror: &Mirror,
    name: &PackageName,
) -> Result<Option<(ProjectDetail, Option<UpstreamError>)>, CatalogError> {
    Ok(listing(index, mirror, name)
        .await?
        .map(|listing| (listing.detail, listing.stale)))
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
