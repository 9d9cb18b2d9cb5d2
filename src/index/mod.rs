//! The index: builds each page model once from the records, renders it as PEP 691 JSON or
//! PEP 503 HTML, and keeps the rendered bytes until the project changes.

mod cache;
mod html;
mod merge;
mod negotiate;
mod page;
pub mod pypi_json;

pub use cache::{PageCache, RenderedPage};
pub use html::escape;
pub use merge::merged_detail;
pub use negotiate::{Format, negotiate};
pub use page::{project_detail, project_list};

use std::sync::Arc;

use bytes::Bytes;

use crate::metadata::{FileRecord, IndexError, IndexStore};
use crate::pypi::PackageName;
use crate::pypi::simple::ProjectDetail;

pub struct Index {
    store: Arc<dyn IndexStore>,
    /// Shared with the `Ingestor`, which drops pages when it stores a file.
    cache: Arc<PageCache>,
}

impl Index {
    pub fn new(store: Arc<dyn IndexStore>, cache: Arc<PageCache>) -> Self {
        Self { store, cache }
    }

    pub fn store(&self) -> &Arc<dyn IndexStore> {
        &self.store
    }

    /// The rendered project page, or `None` for a project the index does not hold.
    pub fn project_page(
        &self,
        name: &PackageName,
        format: Format,
    ) -> Result<Option<RenderedPage>, IndexError> {
        let key = cache::PageKey::Project(name.clone(), format);
        if let Some(page) = self.cache.get(&key) {
            return Ok(Some(page));
        }
        let generation = self.cache.generation();
        let Some(project) = self.store.project(name)? else {
            return Ok(None);
        };
        let detail = project_detail(&project, &self.store.files(name)?);
        Ok(Some(self.cache.insert(
            key,
            render_detail(&detail, format),
            generation,
        )))
    }

    pub fn project_list_page(&self, format: Format) -> Result<RenderedPage, IndexError> {
        let key = cache::PageKey::List(format);
        if let Some(page) = self.cache.get(&key) {
            return Ok(page);
        }
        let generation = self.cache.generation();
        let list = project_list(&self.store.projects()?);
        let body = match format {
            // The list model holds only strings: serializing cannot fail.
            Format::Json => serde_json::to_vec(&list)
                .map(Bytes::from)
                .expect("page model serializes"),
            Format::HtmlV1 | Format::Html => Bytes::from(html::project_list(&list)),
        };
        Ok(self.cache.insert(key, body, generation))
    }

    /// Renders a page that is not cached here (a merged mirror page).
    pub fn render_uncached(&self, detail: &ProjectDetail, format: Format) -> RenderedPage {
        RenderedPage::new(render_detail(detail, format))
    }

    /// Yanks (`Some(reason)`) or restores (`None`) a file (PEP 592); its pages change with it.
    pub fn set_yanked(
        &self,
        name: &PackageName,
        filename: &str,
        reason: Option<String>,
    ) -> Result<FileRecord, IndexError> {
        let record = self.store.set_yanked(name, filename, reason)?;
        self.cache.clear();
        Ok(record)
    }
}

fn render_detail(detail: &ProjectDetail, format: Format) -> Bytes {
    match format {
        // Serializing the page model (strings, numbers, maps with string keys) cannot fail.
        Format::Json => serde_json::to_vec(detail)
            .map(Bytes::from)
            .expect("page model serializes"),
        Format::HtmlV1 | Format::Html => Bytes::from(html::project_page(detail)),
    }
}
