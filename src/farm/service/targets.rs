//! What the farm builds for: its targets, the builders of each, and what a build is keyed
//! by (the builder's and runtime's identities among its inputs).

use super::{BuildError, BuildService};
use crate::farm::crates::LockedCrates;
use crate::farm::key::{BuildKey, KeyInputs};
use crate::farm::recipe::Recipe;
use crate::farm::records::{BuildRecord, BuildRequirements};
use crate::farm::steps::TargetBuilders;
use crate::pypi::{Sha256Digest, Target};

impl BuildService {
    pub fn serves(&self, target: &Target) -> bool {
        self.targets
            .iter()
            .any(|builders| &builders.target == target)
    }

    /// The farm's target whose wheels install on a client's target: same interpreter and
    /// arch, the newest musllinux version at most the client's.
    pub fn target_for_client(&self, client: &Target) -> Option<Target> {
        let mut usable: Vec<&Target> = self
            .targets
            .iter()
            .map(|builders| &builders.target)
            .filter(|target| {
                target.major == client.major
                    && target.minor == client.minor
                    && target.platform.runs_on(&client.platform)
            })
            .collect();
        usable.sort_by_key(|target| target.to_string());
        usable.last().map(|target| (*target).clone())
    }

    pub fn targets(&self) -> Vec<Target> {
        self.targets
            .iter()
            .map(|builders| builders.target.clone())
            .collect()
    }

    pub fn target_names(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|builders| builders.target.to_string())
            .collect()
    }

    fn builders(&self, target: &Target) -> Result<&TargetBuilders, BuildError> {
        self.targets
            .iter()
            .find(|builders| &builders.target == target)
            .ok_or_else(|| BuildError::UnknownTarget {
                target: target.to_string(),
                configured: self.target_names().join(", "),
            })
    }

    /// Builder and runtime identities, asked of the executor once per image.
    async fn identities(
        &self,
        builders: &TargetBuilders,
        recipe: &Recipe,
    ) -> Result<(String, String), BuildError> {
        let builder_image = builders.builder_for(recipe);
        let key = format!("{builder_image}\0{}", builders.runtime);
        let mut known = self.identities.lock().await;
        if let Some(identities) = known.get(&key) {
            return Ok(identities.clone());
        }
        let error = |source| BuildError::Builder {
            target: builders.target.to_string(),
            source,
        };
        let executor = &self.pipeline.steps.executor;
        let builder = executor
            .builder_identity(&builder_image)
            .await
            .map_err(error)?;
        let runtime = executor
            .builder_identity(&builders.runtime)
            .await
            .map_err(error)?;
        known.insert(key, (builder.clone(), runtime.clone()));
        Ok((builder, runtime))
    }

    /// A build's key and its builder's identity, from its inputs.
    pub(super) async fn key_of(
        &self,
        sdist: &(String, Sha256Digest),
        target: &Target,
        recipe: &Recipe,
        build_requirements: Option<&BuildRequirements>,
        crates: Option<&LockedCrates>,
    ) -> Result<(BuildKey, String), BuildError> {
        let builders = self.builders(target)?;
        let (builder, runtime) = self.identities(builders, recipe).await?;
        let key = BuildKey::compute(&KeyInputs {
            sdist_sha256: sdist.1,
            target,
            recipe: &recipe.canonical_json(),
            builder: &builder,
            runtime: &runtime,
            build_requirements: &build_requirements
                .map(BuildRequirements::canonical_json)
                .unwrap_or_default(),
            crates: &crates.map(LockedCrates::canonical_json).unwrap_or_default(),
        });
        Ok((key, builder))
    }

    /// The target builders and the recipe a leased build runs with.
    pub(super) fn plan(
        &self,
        record: &BuildRecord,
    ) -> Result<(TargetBuilders, Recipe), BuildError> {
        let builders = self.builders(&record.target)?.clone();
        let recipe = self.recipes.for_release(&record.project, &record.version);
        Ok((builders, recipe.clone()))
    }
}
