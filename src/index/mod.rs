//! The index: builds each page model once from the records, renders it as PEP 691 JSON or
//! PEP 503 HTML, and keeps the rendered bytes until the project changes.

mod cache;
mod html;
mod negotiate;
mod page;

pub use cache::RenderedPage;
pub use negotiate::{Format, negotiate};
pub use page::{project_detail, project_list};

use std::sync::Arc;

use bytes::Bytes;

use crate::metadata::{IndexError, IndexStore};
use crate::pypi::PackageName;
use cache::PageCache;

pub struct Index {
    store: Arc<dyn IndexStore>,
    cache: PageCache,
}

impl Index {
    pub fn new(store: Arc<dyn IndexStore>) -> Self {
        Self {
            store,
            cache: PageCache::default(),
        }
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
        let body = match format {
            Format::Json => serde_json::to_vec(&detail)
                .map(Bytes::from)
                .expect("page model serializes"),
            Format::HtmlV1 | Format::Html => Bytes::from(html::project_page(&detail)),
        };
        Ok(Some(self.cache.insert(key, body, generation)))
    }

    pub fn project_list_page(&self, format: Format) -> Result<RenderedPage, IndexError> {
        let key = cache::PageKey::List(format);
        if let Some(page) = self.cache.get(&key) {
            return Ok(page);
        }
        let generation = self.cache.generation();
        let list = project_list(&self.store.projects()?);
        let body = match format {
            Format::Json => serde_json::to_vec(&list)
                .map(Bytes::from)
                .expect("page model serializes"),
            Format::HtmlV1 | Format::Html => Bytes::from(html::project_list(&list)),
        };
        Ok(self.cache.insert(key, body, generation))
    }

    /// Called after every write that changes what a page shows.
    pub fn invalidate(&self) {
        self.cache.clear();
    }
}
