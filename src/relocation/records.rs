//! The old database's records written to PostgreSQL: each through the destination's own
//! write (the index's insert with its same-file rule, the mirror's page and extraction
//! writes, the queue's import), after a read of what the destination holds, so a second run
//! writes nothing new. Where the two differ, the old database's record wins: it is the
//! installation being moved.

use super::MoveError;
use crate::farm::{BuildQueue, BuildState, PostgresBuildQueue, SledBuildQueue};
use crate::metadata::{
    IndexStore, InsertOutcome, MirrorStore, PostgresMirrorStore, SledIndex, SledMirrorStore,
};
use crate::pypi::{DistFilename, parse_package_name};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexCounts {
    pub projects: u64,
    pub files_copied: u64,
    pub files_present: u64,
    /// Files present whose yank the old record changed.
    pub yanks_updated: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MirrorCounts {
    pub pages_copied: u64,
    /// The same page, or a newer fetch of it, is there already.
    pub pages_present: u64,
    pub extracted_copied: u64,
    pub extracted_present: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BuildCounts {
    pub builds_copied: u64,
    pub builds_present: u64,
    /// Copied builds that were running and are queued again.
    pub requeued: u64,
    pub keys_copied: u64,
    pub keys_present: u64,
}

/// Every project and its files, yanks included.
pub async fn copy_index(
    source: &SledIndex,
    destination: &dyn IndexStore,
) -> Result<IndexCounts, MoveError> {
    let mut counts = IndexCounts::default();
    for project in source.projects().await? {
        let name = parse_package_name(&project.name).map_err(|error| MoveError::Record {
            key: format!("projects/{}", project.name),
            reason: error.to_string(),
        })?;
        for record in source.files(&name).await? {
            let filename: DistFilename =
                record.filename.parse().map_err(|error| MoveError::Record {
                    key: format!("files/{}/{}", record.project, record.filename),
                    reason: format!("{error}"),
                })?;
            let outcome = destination
                .insert_file(&filename, &record, &project.display_name)
                .await?;
            if outcome == InsertOutcome::Inserted {
                counts.files_copied += 1;
                continue;
            }
            counts.files_present += 1;
            let held = destination.file(&name, &record.filename).await?;
            if held.is_some_and(|held| held.yanked != record.yanked) {
                destination
                    .set_yanked(&name, &record.filename, record.yanked.clone())
                    .await?;
                counts.yanks_updated += 1;
            }
        }
        counts.projects += 1;
    }
    Ok(counts)
}

/// Every cached upstream page (with its files' origins, which the destination derives
/// from the page as it stores it) and every METADATA extraction.
pub async fn copy_mirror(
    source: &SledMirrorStore,
    destination: &PostgresMirrorStore,
) -> Result<MirrorCounts, MoveError> {
    let mut counts = MirrorCounts::default();
    for (project, page) in source.all_pages()? {
        let held = destination.page(&project).await?;
        if held.is_some_and(|held| held == page || held.fetched_at > page.fetched_at) {
            counts.pages_present += 1;
            continue;
        }
        destination.put_page(&project, &page).await?;
        counts.pages_copied += 1;
    }
    for (project, filename, record) in source.all_extracted()? {
        let held = destination
            .extracted(&project, &filename, record.wheel_sha256)
            .await?;
        if held.as_ref() == Some(&record) {
            counts.extracted_present += 1;
            continue;
        }
        destination
            .put_extracted(&project, &filename, &record)
            .await?;
        counts.extracted_copied += 1;
    }
    Ok(counts)
}

/// Every build, oldest first so the queued ones keep their order, and every key's owner.
pub async fn copy_builds(
    source: &SledBuildQueue,
    destination: &PostgresBuildQueue,
) -> Result<BuildCounts, MoveError> {
    let mut counts = BuildCounts::default();
    let mut records = source.list().await?;
    records.reverse();
    for record in records {
        let running = record.state == BuildState::Running;
        match destination.import(record).await? {
            true if running => {
                counts.builds_copied += 1;
                counts.requeued += 1;
            }
            true => counts.builds_copied += 1,
            false => counts.builds_present += 1,
        }
    }
    for (key, id) in source.key_owners()? {
        match destination.import_key_owner(&key, &id).await? {
            true => counts.keys_copied += 1,
            false => counts.keys_present += 1,
        }
    }
    Ok(counts)
}
