//! The mirror: upstream project pages cached with a TTL and revalidated, upstream files
//! fetched once and kept by content hash, single-flight for both (across the processes that
//! share the records too: `fetch_locks`), and stale serving when an upstream fails.
//! Upstream pages are hostile input: only files of the project, on an allowed host, are
//! kept (`vet`), and only allowed hosts are ever asked (`file_hosts`).

mod client;
mod download;
mod extracted;
mod fetch_locks;
mod file_hosts;
mod metadata_file;
mod quote;
mod redirect;
mod single_flight;
mod upstream_url;
mod vet;

pub use client::{UpstreamClient, UpstreamError};
pub use file_hosts::{FileHost, FileHostError, FileHosts};
pub use quote::quoted;
pub use single_flight::SingleFlight;
pub use upstream_url::{UpstreamUrl, UpstreamUrlError};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use url::Url;

use crate::config::MirrorSettings;
use crate::index::Published;
use crate::ingest::Ingestor;
use crate::metadata::mirror_store::FetchKey;
use crate::metadata::{
    CachedPage, Extraction, MirrorStore, MirrorStoreError, Revalidation, UpstreamFile,
};
use crate::metrics::Metrics;
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{PackageName, Sha256Digest, WheelFilename, excerpt};
use crate::storage::{BlobStore, StorageError};
use client::{PageFetch, Validators};
use download::DownloadJob;
use fetch_locks::FetchLocks;
use metadata_file::MetadataFileJob;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Records(#[from] MirrorStoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{} has no metadata file: {reason}", excerpt(.filename))]
    NoMetadata { filename: String, reason: String },
}

/// An upstream page, and why it is stale when the upstream could not be asked.
pub struct UpstreamPage {
    pub detail: ProjectDetail,
    pub stale: Option<UpstreamError>,
    /// Unix seconds from which the page is due for revalidation (0 for a stale copy).
    pub fresh_until: u64,
}

pub enum MirroredFile {
    /// In the blob store (now or already): serve it like a local file.
    Stored(Sha256Digest),
    /// Being fetched for this client: the body arrives as the upstream sends it.
    Streaming {
        size: Option<u64>,
        body: BoxStream<'static, std::io::Result<Bytes>>,
    },
}

type PageResult = Result<Option<CachedPage>, UpstreamError>;

pub struct Mirror {
    upstreams: Vec<UpstreamUrl>,
    hosts: FileHosts,
    client: UpstreamClient,
    records: Arc<dyn MirrorStore>,
    /// One upstream fetch per key across the processes that share `records`.
    locks: FetchLocks,
    store: BlobStore,
    spool_dir: PathBuf,
    page_ttl: Duration,
    merge_projects: Vec<String>,
    metrics: Arc<Metrics>,
    /// Reads METADATA from each upstream wheel once it is stored (PEP 658).
    ingestor: Ingestor,
    /// A changed upstream page drops the project's rendered pages.
    published: Published,
    pages: SingleFlight<String, PageResult>,
    files: SingleFlight<Sha256Digest, Result<(), UpstreamError>>,
    /// Metadata read from wheels stored before anything was recorded for them.
    late_extractions: SingleFlight<Sha256Digest, ()>,
}

use crate::clock::unix_now as now;

pub struct MirrorParts {
    pub upstreams: Vec<UpstreamUrl>,
    pub settings: MirrorSettings,
    pub records: Arc<dyn MirrorStore>,
    pub store: BlobStore,
    pub spool_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    pub ingestor: Ingestor,
    pub published: Published,
}

impl Mirror {
    pub fn new(parts: MirrorParts) -> Result<Self, UpstreamError> {
        let hosts = FileHosts::new(&parts.settings.file_hosts, &parts.upstreams);
        let client = UpstreamClient::new(&parts.settings, hosts.clone(), parts.metrics.clone())
            .map_err(|error| UpstreamError::Unreachable {
                upstream: "(client)".into(),
                detail: error.to_string(),
            })?;
        let merge_projects = parts
            .settings
            .merge_projects
            .iter()
            .filter_map(|name| {
                crate::pypi::parse_package_name(name)
                    .ok()
                    .map(|name| name.to_string())
            })
            .collect();
        let lock_wait = Duration::from_secs(parts.settings.page_timeout_seconds);
        Ok(Self {
            upstreams: parts.upstreams,
            hosts,
            client,
            locks: FetchLocks::new(parts.records.clone(), lock_wait),
            records: parts.records,
            store: parts.store,
            spool_dir: parts.spool_dir,
            page_ttl: Duration::from_secs(parts.settings.page_ttl_seconds),
            merge_projects,
            metrics: parts.metrics,
            ingestor: parts.ingestor,
            published: parts.published,
            pages: SingleFlight::default(),
            files: SingleFlight::default(),
            late_extractions: SingleFlight::default(),
        })
    }

    pub fn upstream_names(&self) -> Vec<String> {
        self.upstreams.iter().map(ToString::to_string).collect()
    }

    pub fn is_enabled(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// The dependency-confusion rule: a project uploaded here hides its upstream namesake
    /// unless the configuration lists it in `mirror.merge_projects`.
    pub fn hides_upstream(&self, name: &PackageName, held_locally: bool) -> bool {
        !self.is_enabled()
            || (held_locally
                && !self
                    .merge_projects
                    .iter()
                    .any(|allowed| allowed == name.as_ref()))
    }

    /// The upstream page for `name`: fresh from cache, fetched (once for all concurrent
    /// callers), or stale when the upstream fails and a copy was ever cached; with the
    /// metadata read from its stored wheels advertised where the upstream lists none.
    pub async fn project_page(
        &self,
        name: &PackageName,
    ) -> Result<Option<UpstreamPage>, MirrorError> {
        let Some(mut page) = self.upstream_page(name).await? else {
            return Ok(None);
        };
        let extracted = self.records.extracted_for_project(name).await?;
        extracted::advertise(&mut page.detail, &extracted);
        Ok(Some(page))
    }

    async fn upstream_page(&self, name: &PackageName) -> Result<Option<UpstreamPage>, MirrorError> {
        let cached = self.records.page(name).await?;
        let fresh =
            |page: &CachedPage| now().saturating_sub(page.fetched_at) < self.page_ttl.as_secs();
        // A fresh page is handed over as decoded, not copied: it can hold many thousand files.
        let cached = match cached {
            Some(page) if fresh(&page) => {
                self.metrics.page_cache("hit");
                return Ok(Some(UpstreamPage {
                    fresh_until: page.fetched_at + self.page_ttl.as_secs(),
                    detail: page.detail,
                    stale: None,
                }));
            }
            cached => cached,
        };
        self.metrics.page_cache("miss");
        let job = PageJob {
            client: self.client.clone(),
            upstreams: self.upstreams.clone(),
            hosts: self.hosts.clone(),
            records: self.records.clone(),
            locks: self.locks.clone(),
            page_ttl: self.page_ttl,
            name: name.clone(),
            cached: cached.clone(),
            published: self.published.clone(),
        };
        let (result, _) = self.pages.run(name.to_string(), move || job.run()).await;
        match (result, cached) {
            (Ok(page), _) => Ok(page.map(|page| UpstreamPage {
                fresh_until: page.fetched_at + self.page_ttl.as_secs(),
                detail: page.detail,
                stale: None,
            })),
            (Err(error), Some(page)) => {
                tracing::warn!(project = %name, %error, "serving a stale upstream page");
                self.metrics.page_cache("stale");
                Ok(Some(UpstreamPage {
                    detail: page.detail,
                    stale: Some(error),
                    fresh_until: 0,
                }))
            }
            (Err(error), None) => Err(error.into()),
        }
    }

    /// Where an upstream-listed file comes from, if `/files/<digest>/<filename>` names one.
    async fn origin(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<UpstreamFile>, MirrorStoreError> {
        self.records.upstream_file(digest, filename).await
    }

    fn upstream_for(&self, origin: &UpstreamFile) -> UpstreamUrl {
        let configured = self
            .upstreams
            .iter()
            .find(|upstream| upstream.to_string() == origin.upstream);
        // An upstream removed from the configuration is still asked, without credentials.
        configured.cloned().unwrap_or_else(|| {
            origin
                .upstream
                .parse()
                .unwrap_or_else(|_| UpstreamUrl::pypi())
        })
    }

    /// An upstream file (or its PEP 658 metadata file) by the URL edelweiss gave for it.
    pub async fn open_file(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<MirroredFile>, MirrorError> {
        if let Some(wheel) = filename.strip_suffix(".metadata") {
            if let Some(origin) = self.origin(digest, wheel).await? {
                return match origin.metadata_sha256 {
                    Some(_) => self.metadata_file(origin).await,
                    None => self.extracted_metadata_file(wheel, digest).await,
                };
            }
        }
        let Some(origin) = self.origin(digest, filename).await? else {
            return Ok(None);
        };
        if self.store.contains(digest).await? {
            self.metrics.file_cache("hit");
            self.read_metadata_if_unread(filename, digest).await?;
            return Ok(Some(MirroredFile::Stored(digest)));
        }
        self.metrics.file_cache("miss");
        let url = Url::parse(&origin.url).map_err(|error| UpstreamError::Body {
            upstream: origin.upstream.clone(),
            url: origin.url.clone(),
            detail: error.to_string(),
        })?;
        let (started_tx, started_rx) = oneshot::channel();
        let (body_tx, body_rx) = mpsc::channel(16);
        let job = DownloadJob {
            client: self.client.clone(),
            locks: self.locks.clone(),
            upstream: self.upstream_for(&origin),
            url,
            filename: filename.to_string(),
            ingestor: self.ingestor.clone(),
            expected: digest,
            store: self.store.clone(),
            spool_dir: self.spool_dir.clone(),
            metrics: self.metrics.clone(),
            body: body_tx,
        };
        let (flight, leader) = self.files.join(digest, move || job.run(started_tx));
        if !leader {
            flight.await?;
            return Ok(Some(MirroredFile::Stored(digest)));
        }
        match started_rx.await {
            Ok(Ok(size)) => {
                let body = stream::unfold(body_rx, |mut receiver| async move {
                    receiver.recv().await.map(|chunk| (chunk, receiver))
                });
                Ok(Some(MirroredFile::Streaming {
                    size,
                    body: body.boxed(),
                }))
            }
            Ok(Err(error)) => Err(error.into()),
            Err(_) => flight
                .await
                .map(|()| Some(MirroredFile::Stored(digest)))
                .map_err(Into::into),
        }
    }

    /// The metadata file read from a stored upstream wheel, when its upstream has none.
    async fn extracted_metadata_file(
        &self,
        filename: &str,
        digest: Sha256Digest,
    ) -> Result<Option<MirroredFile>, MirrorError> {
        let Ok(wheel) = filename.parse::<WheelFilename>() else {
            return Ok(None);
        };
        let record = self
            .records
            .extracted(&wheel.name, filename, digest)
            .await?;
        match record {
            None => Ok(None),
            Some(record) => match record.outcome {
                Extraction::Stored { metadata_sha256 } => {
                    Ok(Some(MirroredFile::Stored(metadata_sha256)))
                }
                Extraction::Refused { reason } => Err(MirrorError::NoMetadata {
                    filename: filename.to_string(),
                    reason,
                }),
            },
        }
    }

    /// A stored upstream wheel with nothing recorded about its METADATA (stored by an
    /// edelweiss that did not read it) has it read in the background, once.
    async fn read_metadata_if_unread(
        &self,
        filename: &str,
        digest: Sha256Digest,
    ) -> Result<(), MirrorStoreError> {
        let Ok(wheel) = filename.parse::<WheelFilename>() else {
            return Ok(());
        };
        let recorded = self
            .records
            .extracted(&wheel.name, filename, digest)
            .await?;
        if recorded.is_some() {
            return Ok(());
        }
        let (ingestor, filename) = (self.ingestor.clone(), filename.to_string());
        // The job runs on its own task; nobody waits for it.
        let _ = self.late_extractions.join(digest, move || async move {
            if let Err(error) = ingestor.stored_wheel(&wheel, &filename, digest).await {
                tracing::warn!(
                    filename = %excerpt(&filename),
                    %error,
                    "could not read the metadata of a stored upstream wheel"
                );
            }
        });
        Ok(())
    }

    async fn metadata_file(
        &self,
        origin: UpstreamFile,
    ) -> Result<Option<MirroredFile>, MirrorError> {
        let Some(digest) = origin.metadata_sha256 else {
            return Ok(None);
        };
        if self.store.contains(digest).await? {
            self.metrics.file_cache("hit");
            return Ok(Some(MirroredFile::Stored(digest)));
        }
        self.metrics.file_cache("miss");
        let job = MetadataFileJob {
            client: self.client.clone(),
            locks: self.locks.clone(),
            store: self.store.clone(),
            upstream: self.upstream_for(&origin),
            origin,
            digest,
        };
        let (result, _) = self.files.run(digest, move || job.run()).await;
        result?;
        Ok(Some(MirroredFile::Stored(digest)))
    }
}

/// Fetches one project page from the first upstream that has it, unless another process
/// that shares the records fetched it while this one waited for the fetch lock.
struct PageJob {
    client: UpstreamClient,
    upstreams: Vec<UpstreamUrl>,
    hosts: FileHosts,
    records: Arc<dyn MirrorStore>,
    locks: FetchLocks,
    page_ttl: Duration,
    name: PackageName,
    cached: Option<CachedPage>,
    published: Published,
}

impl PageJob {
    fn store_error(upstream: &UpstreamUrl, error: MirrorStoreError) -> UpstreamError {
        UpstreamError::Store {
            upstream: upstream.to_string(),
            detail: error.to_string(),
        }
    }

    fn vet(&self, upstream: &UpstreamUrl, detail: ProjectDetail) -> ProjectDetail {
        vet::vet_page(detail, &self.name, upstream, &self.hosts)
    }

    /// A cached page the upstream confirmed (a 304), now under the validators the 304
    /// sent, each kept from the cached copy where the 304 left it out (RFC 9111 4.3.4).
    /// Only its validators are written, unless the copy was kept unvetted by an older
    /// edelweiss: then it is stored again, vetted.
    async fn confirmed(
        &self,
        upstream: &UpstreamUrl,
        mut page: CachedPage,
        sent: Validators,
    ) -> Result<CachedPage, UpstreamError> {
        let store_error = |error| Self::store_error(upstream, error);
        page.fetched_at = now();
        page.etag = sent.etag.or(page.etag);
        page.last_modified = sent.last_modified.or(page.last_modified);
        let vetted = self.vet(upstream, page.detail.clone());
        let changed = vetted != page.detail;
        page.detail = vetted;
        let revalidation = Revalidation {
            fetched_at: page.fetched_at,
            etag: page.etag.clone(),
            last_modified: page.last_modified.clone(),
        };
        let touched = !changed
            && (self.records)
                .touch_page(&self.name, &revalidation)
                .await
                .map_err(store_error)?;
        if !touched {
            (self.records)
                .put_page(&self.name, &page)
                .await
                .map_err(store_error)?;
        }
        if changed {
            self.published.upstream_page_changed(&self.name).await;
        }
        Ok(page)
    }

    async fn run(mut self) -> PageResult {
        let Some(first) = self.upstreams.first().cloned() else {
            return Ok(None);
        };
        let store_error = |error| Self::store_error(&first, error);
        let _guard =
            (self.locks.take(FetchKey::Page(self.name.clone())).await).map_err(store_error)?;
        match self.stored_meanwhile().await.map_err(store_error)? {
            Some(page) => Ok(Some(page)),
            None => self.fetch().await,
        }
    }

    /// The page as the records hold it once the fetch lock is held: fresh when another
    /// process fetched it meanwhile; otherwise the copy to revalidate is the newest one.
    async fn stored_meanwhile(&mut self) -> Result<Option<CachedPage>, MirrorStoreError> {
        match self.records.page(&self.name).await? {
            Some(page) if now().saturating_sub(page.fetched_at) < self.page_ttl.as_secs() => {
                let changed =
                    (self.cached.as_ref()).is_none_or(|cached| cached.detail != page.detail);
                if changed {
                    self.published.upstream_page_changed_elsewhere(&self.name);
                }
                Ok(Some(page))
            }
            stored => {
                self.cached = stored.or(self.cached.take());
                Ok(None)
            }
        }
    }

    /// An upstream error stops the search: falling through to the next upstream could
    /// serve a different project under the same name.
    async fn fetch(self) -> PageResult {
        for upstream in &self.upstreams {
            let cached = self
                .cached
                .as_ref()
                .filter(|page| page.upstream == upstream.to_string());
            let validators = cached.map(|page| Validators {
                etag: page.etag.clone(),
                last_modified: page.last_modified.clone(),
            });
            match self
                .client
                .project_page(upstream, &self.name, validators.as_ref())
                .await?
            {
                PageFetch::NotFound => continue,
                PageFetch::NotModified { validators: sent } => {
                    let Some(page) = cached.cloned() else {
                        return Err(UpstreamError::Status {
                            upstream: upstream.to_string(),
                            status: 304,
                            url: self.name.to_string(),
                        });
                    };
                    return self.confirmed(upstream, page, sent).await.map(Some);
                }
                PageFetch::Page { detail, validators } => {
                    let page = CachedPage {
                        upstream: upstream.to_string(),
                        fetched_at: now(),
                        etag: validators.etag,
                        last_modified: validators.last_modified,
                        detail: self.vet(upstream, detail),
                    };
                    self.records
                        .put_page(&self.name, &page)
                        .await
                        .map_err(|error| Self::store_error(upstream, error))?;
                    let changed = self
                        .cached
                        .as_ref()
                        .is_none_or(|cached| cached.detail != page.detail);
                    if changed {
                        self.published.upstream_page_changed(&self.name).await;
                    }
                    return Ok(Some(page));
                }
            }
        }
        Ok(None)
    }
}
