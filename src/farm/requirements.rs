//! A build's requirements on the server: an sdist's `[build-system]` resolved through this
//! index when the build is requested (part of its key), and the wheelhouse its containers
//! get when it runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::build_system::BuildSystem;
use super::index_wheels::IndexWheels;
use super::recipe::Recipe;
use super::records::{BuildRecord, BuildRequirements, Failure, MissingRequirement};
use super::resolve::{ResolveError, Resolver};
use super::service::BuildError;
use super::wire::WheelhouseFile;
use crate::metadata::IndexStore;
use crate::mirror::Mirror;
use crate::pypi::{Sha256Digest, Target, Version};
use crate::storage::BlobStore;

/// How long a resolution of an sdist's build requirements answers later requests: on-demand
/// page views request the same builds again and again.
const RESOLUTION_TTL: Duration = Duration::from_secs(300);

pub struct Requirements {
    index: Arc<dyn IndexStore>,
    mirror: Arc<Mirror>,
    store: BlobStore,
    /// Recent resolutions by sdist digest, target and recipe.
    resolutions: Mutex<HashMap<String, (tokio::time::Instant, BuildRequirements)>>,
}

impl Requirements {
    pub fn new(index: Arc<dyn IndexStore>, mirror: Arc<Mirror>, store: BlobStore) -> Self {
        Self {
            index,
            mirror,
            store,
            resolutions: Mutex::default(),
        }
    }

    pub fn index_wheels(&self, target: &Target) -> IndexWheels {
        IndexWheels {
            index: self.index.clone(),
            mirror: self.mirror.clone(),
            store: self.store.clone(),
            target: target.clone(),
        }
    }

    /// The sdist's `[build-system] requires` (or the default) and the recipe's pins,
    /// resolved for `target` through this index. A package's fault (an unreadable
    /// pyproject.toml, a requirement no wheel satisfies) is kept as `refused`, so the build
    /// fails with it; a failing index is an error for the caller.
    pub async fn for_sdist(
        &self,
        sdist: &(String, Sha256Digest),
        target: &Target,
        recipe: &Recipe,
    ) -> Result<BuildRequirements, BuildError> {
        let cache_key = format!("{}\0{target}\0{}", sdist.1, recipe.canonical_json());
        if let Some((at, resolved)) = self.resolutions.lock().await.get(&cache_key) {
            if at.elapsed() < RESOLUTION_TTL {
                return Ok(resolved.clone());
            }
        }
        let bytes = self.store.get_bytes(sdist.1).await?;
        let refused = |requested: Vec<String>, reason: String| BuildRequirements {
            requested,
            pinned: Vec::new(),
            refused: Some(reason),
            missing: None,
        };
        let system = match BuildSystem::of_sdist(&sdist.0, &bytes) {
            Ok(system) => system,
            Err(error) => return Ok(refused(Vec::new(), error.to_string())),
        };
        let origin = if system.declared {
            "pyproject.toml"
        } else {
            "the default build system"
        };
        let mut asked: Vec<(String, String)> = system
            .requires
            .iter()
            .map(|requirement| (requirement.clone(), origin.to_string()))
            .collect();
        asked.extend(
            recipe
                .build_requires
                .iter()
                .map(|pin| (pin.clone(), "the recipe".to_string())),
        );
        let requested = asked
            .iter()
            .map(|(requirement, _)| requirement.clone())
            .collect();
        let wheels = self.index_wheels(target);
        let resolved = match Resolver::new(&wheels, target, &recipe.build_requires) {
            Ok(resolver) => resolver.resolve(&asked, &[]).await,
            Err(error) => Err(error),
        };
        let requirements = match resolved {
            Ok(pinned) => BuildRequirements {
                requested,
                pinned,
                refused: None,
                missing: None,
            },
            Err(ResolveError::Source(reason)) => {
                return Err(BuildError::Resolve {
                    sdist: sdist.0.clone(),
                    reason,
                });
            }
            // Not cached: the farm builds the missing wheel, and the next resolution finds it.
            Err(ResolveError::NoWheel {
                requirement, from, ..
            }) => {
                return Ok(BuildRequirements {
                    requested,
                    pinned: Vec::new(),
                    refused: None,
                    missing: Some(MissingRequirement { requirement, from }),
                });
            }
            Err(error) => refused(requested, error.to_string()),
        };
        let mut resolutions = self.resolutions.lock().await;
        resolutions.retain(|_, (at, _)| at.elapsed() < RESOLUTION_TTL);
        resolutions.insert(
            cache_key,
            (tokio::time::Instant::now(), requirements.clone()),
        );
        Ok(requirements)
    }

    /// The wheels a leased build's container gets: its resolved build requirements, or
    /// (resolution off) the recipe's pins.
    pub async fn wheelhouse(
        &self,
        record: &BuildRecord,
        recipe: &Recipe,
        target: &Target,
    ) -> Result<Vec<WheelhouseFile>, Failure> {
        let Some(requirements) = &record.build_requirements else {
            return self.recipe_wheelhouse(recipe, target).await;
        };
        if let Some(reason) = &requirements.refused {
            return Err(Failure::package(format!("build requirements: {reason}")));
        }
        let wheels = self.index_wheels(target);
        let mut files = Vec::new();
        for pin in &requirements.pinned {
            super::fetcher::load(&wheels, pin).await?;
            files.push(pin.file());
        }
        Ok(files)
    }

    /// The recipe's pinned build requirements (`name==version`) as wheels that install on
    /// `target`, from this index (held here, or mirrored and so cached).
    async fn recipe_wheelhouse(
        &self,
        recipe: &Recipe,
        target: &Target,
    ) -> Result<Vec<WheelhouseFile>, Failure> {
        let mut files = Vec::new();
        for requirement in &recipe.build_requires {
            let missing =
                |why: &str| Failure::package(format!("build requirement `{requirement}`: {why}"));
            let (name, version) = requirement
                .split_once("==")
                .ok_or_else(|| missing("pin it as name==version"))?;
            let project = crate::pypi::parse_package_name(name.trim())
                .map_err(|_| missing("not a project name"))?;
            let version: Version = version
                .trim()
                .parse()
                .map_err(|_| missing("not a PEP 440 version"))?;
            let wheels = self.index_wheels(target);
            let candidates = wheels
                .list(&project)
                .await
                .map_err(|error| Failure::infrastructure(error.to_string()))?;
            let pin = candidates
                .into_iter()
                .find(|candidate| candidate.version == version)
                .map(|candidate| super::resolve::Pinned {
                    project: project.to_string(),
                    version: version.to_string(),
                    filename: candidate.filename,
                    sha256: candidate.sha256,
                })
                .ok_or_else(|| missing(&format!("no wheel for {target} on this index")))?;
            super::fetcher::load(&wheels, &pin).await?;
            files.push(pin.file());
        }
        Ok(files)
    }
}
