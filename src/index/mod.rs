//! The index: builds each page model from the records, renders it as PEP 691 JSON or
//! PEP 503 HTML, negotiates between them and between content codings, and keeps the
//! rendered (and compressed) bytes per project until a write changes that project.

mod cache;
mod encoding;
mod html;
mod merge;
mod negotiate;
mod page;
mod page_changes;
mod published;
pub mod pypi_json;

pub use cache::{CachedPage, Encoded, PageCache, PageKey, Scope};
pub use encoding::{Coding, choose as choose_coding};
pub use html::escape;
pub use merge::merged_detail;
pub use negotiate::{Body, Format, negotiate};
pub use page::{View, project_detail, project_list};
pub use page_changes::{PageChanges, Unshared};
pub use published::Published;

use std::sync::Arc;

use bytes::Bytes;

use crate::metadata::{FileRecord, IndexError, IndexStore};
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{PackageName, Sha256Digest};

pub struct Index {
    store: Arc<dyn IndexStore>,
    /// Shared with the `Ingestor` and the `Mirror`, whose writes drop the pages they change.
    published: Published,
}

impl Index {
    pub fn new(store: Arc<dyn IndexStore>, published: Published) -> Self {
        Self { store, published }
    }

    pub fn pages(&self) -> &PageCache {
        self.published.pages()
    }

    pub async fn project_list_page(&self, body: Body) -> Result<Arc<CachedPage>, IndexError> {
        let pages = self.pages();
        let key = PageKey::list(body);
        if let Some(page) = pages.get(&key) {
            return Ok(page);
        }
        let version = pages.version(&key.scope);
        let list = project_list(&self.store.projects().await?);
        let rendered = exact(match body {
            // The list model holds only strings: serializing cannot fail.
            Body::Json => serde_json::to_vec(&list).expect("page model serializes"),
            Body::Html => html::project_list(&list).into_bytes(),
        });
        Ok(pages.keep(pages.rendered(key, version, rendered, None)))
    }

    /// One small read of the records: the database answers.
    pub async fn check_readable(&self) -> Result<(), IndexError> {
        self.store.ping().await
    }

    /// Whether any file of `name` was uploaded here (not built): one record read, not every
    /// file's.
    pub async fn is_uploaded(&self, name: &PackageName) -> Result<bool, IndexError> {
        let project = self.store.project(name).await?;
        Ok(project.is_some_and(|project| project.uploaded))
    }

    /// Every file of `name` held here.
    pub async fn local_files(&self, name: &PackageName) -> Result<Vec<FileRecord>, IndexError> {
        self.store.files(name).await
    }

    /// The page model of `name`'s files held here, `None` when the project is not held.
    pub async fn local_detail(
        &self,
        name: &PackageName,
    ) -> Result<Option<ProjectDetail>, IndexError> {
        let Some(project) = self.store.project(name).await? else {
            return Ok(None);
        };
        Ok(Some(project_detail(
            &project,
            &self.store.files(name).await?,
        )))
    }

    /// The blob a `/files/<digest>/<filename>` URL names among the files held here: the
    /// file itself, or the METADATA extracted from a wheel (`<wheel>.metadata`, PEP 658).
    pub async fn local_blob(
        &self,
        digest: Sha256Digest,
        filename: &str,
    ) -> Result<Option<Sha256Digest>, IndexError> {
        if let Some(record) = self.store.file_by_digest(digest, filename).await? {
            return Ok(Some(record.sha256));
        }
        let Some(wheel) = filename.strip_suffix(".metadata") else {
            return Ok(None);
        };
        Ok(self
            .store
            .file_by_digest(digest, wheel)
            .await?
            .and_then(|record| record.metadata_sha256))
    }

    /// Yanks (`Some(reason)`) or restores (`None`) a file (PEP 592); its pages change with it.
    pub async fn set_yanked(
        &self,
        name: &PackageName,
        filename: &str,
        reason: Option<String>,
    ) -> Result<FileRecord, IndexError> {
        let record = self.store.set_yanked(name, filename, reason).await?;
        self.published.file_changed(name).await;
        Ok(record)
    }
}

/// A project page model as the bytes of `body`.
pub fn render_detail(detail: &ProjectDetail, body: Body) -> Bytes {
    exact(match body {
        // Serializing the page model (strings, numbers, maps with string keys) cannot fail.
        Body::Json => serde_json::to_vec(detail).expect("page model serializes"),
        Body::Html => html::project_page(detail).into_bytes(),
    })
}

/// A kept page holds only its bytes: a buffer grown while writing can be twice as large,
/// and the cache's budget counts lengths.
fn exact(mut bytes: Vec<u8>) -> Bytes {
    bytes.shrink_to_fit();
    Bytes::from(bytes)
}
