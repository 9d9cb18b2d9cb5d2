//! What a leased build may fetch: the wheels of its build requirements and the crates its
//! Cargo.lock pins, stored in the blob store before any container runs.

use super::BuildService;
use crate::farm::recipe::Recipe;
use crate::farm::records::{BuildRecord, Failure};
use crate::farm::wire::WheelhouseFile;
use crate::pypi::{Sha256Digest, Target};

impl BuildService {
    /// The wheelhouse of a leased build, with its crates stored: a lock that cannot be
    /// vendored or a wheel that cannot be had fails the build here.
    pub(super) async fn inputs(
        &self,
        record: &BuildRecord,
        recipe: &Recipe,
        target: &Target,
    ) -> Result<Vec<WheelhouseFile>, Failure> {
        let files = self.requirements.wheelhouse(record, recipe, target).await?;
        self.store_crates(record).await?;
        Ok(files)
    }

    /// The wheelhouse's bytes, for an in-process build.
    pub(super) async fn wheelhouse_bytes(
        &self,
        files: &[WheelhouseFile],
    ) -> Result<Vec<(String, bytes::Bytes)>, Failure> {
        let mut loaded = Vec::new();
        for file in files {
            let bytes = self
                .pipeline
                .store
                .get_bytes(file.sha256)
                .await
                .map_err(|error| Failure::infrastructure(error.to_string()))?;
            loaded.push((file.filename.clone(), bytes));
        }
        Ok(loaded)
    }

    /// A leased build's crates in the blob store, fetched from the registry where missing.
    async fn store_crates(&self, record: &BuildRecord) -> Result<(), Failure> {
        let Some(locked) = &record.crates else {
            return Ok(());
        };
        if let Some(reason) = &locked.refused {
            return Err(Failure::package(format!("Cargo.lock: {reason}")));
        }
        let stored = self.crate_registry.store_all(&locked.crates).await?;
        if stored.fetched > 0 {
            tracing::info!(build = %record.id, fetched = stored.fetched, bytes = stored.fetched_bytes, "crates fetched from the registry");
        }
        Ok(())
    }
}

/// The blobs besides its sdist that the holder of `record`'s lease may fetch: its
/// wheelhouse and its crates.
pub(super) fn fetchable(record: &BuildRecord, wheelhouse: &[WheelhouseFile]) -> Vec<Sha256Digest> {
    let crates = record.crates.iter().flat_map(|locked| &locked.crates);
    wheelhouse
        .iter()
        .map(|file| file.sha256)
        .chain(crates.map(|locked| locked.sha256))
        .collect()
}
