//! What follows a write to the records: the cached pages it changes and the gauges. Every
//! write comes through here: a stored file (uploaded, added or built, in this process or
//! by a remote worker: `Ingestor::ingest`), a yank or restore (`Index::set_yanked`) and an
//! upstream page that changed (`Mirror`). Each drops only the pages of its project, here
//! and, once the write has committed, in every process sharing the records (`PageChanges`).

use std::sync::Arc;

use super::cache::{PageCache, Scope};
use super::page_changes::PageChanges;
use crate::metadata::Extraction;
use crate::metrics::Metrics;
use crate::pypi::PackageName;

#[derive(Clone)]
pub struct Published {
    pages: Arc<PageCache>,
    metrics: Arc<Metrics>,
    elsewhere: Arc<dyn PageChanges>,
}

impl Published {
    pub fn new(
        pages: Arc<PageCache>,
        metrics: Arc<Metrics>,
        elsewhere: Arc<dyn PageChanges>,
    ) -> Self {
        Self {
            pages,
            metrics,
            elsewhere,
        }
    }

    pub fn pages(&self) -> &Arc<PageCache> {
        &self.pages
    }

    /// A new file of `project`: its pages, the project list (it may be a new project) and
    /// the files gauge.
    pub async fn file_stored(&self, project: &PackageName) {
        self.metrics.file_stored();
        self.changed(&[Scope::Project(project.clone()), Scope::List])
            .await;
    }

    /// A file of `project` changed (yanked or restored).
    pub async fn file_changed(&self, project: &PackageName) {
        self.changed(&[Scope::Project(project.clone())]).await;
    }

    /// A mirrored wheel's METADATA was read (or refused): `project`'s merged pages now
    /// advertise (or keep not advertising) its `.metadata` file.
    pub async fn metadata_extracted(&self, project: &PackageName, outcome: &Extraction) {
        self.metrics.metadata_extracted(match outcome {
            Extraction::Stored { .. } => "stored",
            Extraction::Refused { .. } => "refused",
        });
        self.changed(&[Scope::Project(project.clone())]).await;
    }

    /// The upstream's page of `project` changed.
    pub async fn upstream_page_changed(&self, project: &PackageName) {
        self.changed(&[Scope::Project(project.clone())]).await;
    }

    /// Another process stored a new copy of `project`'s upstream page and announced it
    /// itself: only this process's pages of it go.
    pub fn upstream_page_changed_elsewhere(&self, project: &PackageName) {
        self.pages.heard(&Scope::Project(project.clone()));
    }

    async fn changed(&self, scopes: &[Scope]) {
        for scope in scopes {
            self.pages.changed(scope);
        }
        self.elsewhere.announce(scopes).await;
    }
}
