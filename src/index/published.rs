//! What follows a write to the records: the cached pages it changes and the gauges. Every
//! write comes through here: a stored file (uploaded, added or built, in this process or
//! by a remote worker: `Ingestor::ingest`), a yank or restore (`Index::set_yanked`) and an
//! upstream page that changed (`Mirror`). Each drops only the pages of its project.

use std::sync::Arc;

use super::cache::{PageCache, Scope};
use crate::metadata::Extraction;
use crate::metrics::Metrics;
use crate::pypi::PackageName;

#[derive(Clone)]
pub struct Published {
    pages: Arc<PageCache>,
    metrics: Arc<Metrics>,
}

impl Published {
    pub fn new(pages: Arc<PageCache>, metrics: Arc<Metrics>) -> Self {
        Self { pages, metrics }
    }

    pub fn pages(&self) -> &Arc<PageCache> {
        &self.pages
    }

    /// A new file of `project`: its pages, the project list (it may be a new project) and
    /// the files gauge.
    pub fn file_stored(&self, project: &PackageName) {
        self.pages.changed(&Scope::Project(project.clone()));
        self.pages.changed(&Scope::List);
        self.metrics.file_stored();
    }

    /// A file of `project` changed (yanked or restored).
    pub fn file_changed(&self, project: &PackageName) {
        self.pages.changed(&Scope::Project(project.clone()));
    }

    /// A mirrored wheel's METADATA was read (or refused): `project`'s merged pages now
    /// advertise (or keep not advertising) its `.metadata` file.
    pub fn metadata_extracted(&self, project: &PackageName, outcome: &Extraction) {
        self.pages.changed(&Scope::Project(project.clone()));
        self.metrics.metadata_extracted(match outcome {
            Extraction::Stored { .. } => "stored",
            Extraction::Refused { .. } => "refused",
        });
    }

    /// The upstream's page of `project` changed.
    pub fn upstream_page_changed(&self, project: &PackageName) {
        self.pages.changed(&Scope::Project(project.clone()));
    }
}
