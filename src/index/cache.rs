//! Rendered pages kept in memory until the next write. A generation counter stops a page
//! rendered from records read before a write from being cached after it.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::Format;
use crate::pypi::{PackageName, Sha256Digest};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PageKey {
    List(Format),
    Project(PackageName, Format),
}

#[derive(Debug, Clone)]
pub struct RenderedPage {
    pub body: Bytes,
    /// Strong validator: the sha256 of the body.
    pub etag: String,
}

impl RenderedPage {
    pub fn new(body: Bytes) -> Self {
        Self {
            etag: format!("\"{}\"", Sha256Digest::of(&body)),
            body,
        }
    }
}

#[derive(Default)]
pub struct PageCache {
    pages: RwLock<HashMap<PageKey, RenderedPage>>,
    generation: AtomicU64,
}

impl PageCache {
    pub fn get(&self, key: &PageKey) -> Option<RenderedPage> {
        self.pages
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .cloned()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn insert(&self, key: PageKey, body: Bytes, generation: u64) -> RenderedPage {
        let page = RenderedPage::new(body);
        let mut pages = self
            .pages
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.generation() == generation {
            pages.insert(key, page.clone());
        }
        page
    }

    pub fn clear(&self) {
        let mut pages = self
            .pages
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        pages.clear();
    }
}
