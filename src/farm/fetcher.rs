//! Requirements that show up during a build (what the backend adds, what the built wheel
//! needs at run time) resolved through this index and handed to the build's containers.

use super::index_wheels::{IndexWheels, store_through_mirror};
use super::records::Failure;
use super::resolve::{BoxFuture, Pinned, Resolver, WheelSource};
use crate::pypi::Target;

/// What a resolution during a build is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The build environment: the recipe's pins override.
    Build,
    /// The smoke test's installation of the wheel with its dependencies.
    Runtime,
}

/// Resolves requirements for a build's target and fetches their wheels.
pub trait RequirementFetcher: Send + Sync {
    /// `requirements` (each with who asked for it) on top of `fixed`; returns the wheels
    /// of the pins that are not in `fixed`, with their bytes (verified by the store).
    fn fetch<'a>(
        &'a self,
        purpose: Purpose,
        requirements: Vec<(String, String)>,
        fixed: Vec<Pinned>,
    ) -> BoxFuture<'a, Result<Vec<(Pinned, bytes::Bytes)>, Failure>>;
}

/// A wheel source that can also hand over a pinned wheel's bytes, verified.
pub trait WheelLoader: WheelSource {
    fn target(&self) -> &Target;
    fn load<'a>(&'a self, pin: &'a Pinned) -> BoxFuture<'a, Result<bytes::Bytes, Failure>>;
}

/// Resolves through `wheels` (the server's own index, or a remote worker's view of it).
pub struct Fetcher<S> {
    pub wheels: S,
    /// The recipe's pinned build requirements.
    pub recipe_pins: Vec<String>,
}

impl<S: WheelLoader> Fetcher<S> {
    async fn resolve_and_load(
        &self,
        purpose: Purpose,
        requirements: Vec<(String, String)>,
        fixed: Vec<Pinned>,
    ) -> Result<Vec<(Pinned, bytes::Bytes)>, Failure> {
        let (what, overrides) = match purpose {
            Purpose::Build => (
                "the backend's build requirements",
                self.recipe_pins.as_slice(),
            ),
            Purpose::Runtime => ("the wheel's runtime dependencies", &[][..]),
        };
        let resolver = Resolver::new(&self.wheels, self.wheels.target(), overrides)
            .map_err(|error| error.into_failure(what))?;
        let pinned = resolver
            .resolve(&requirements, &fixed)
            .await
            .map_err(|error| error.into_failure(what))?;
        let mut loaded = Vec::new();
        for pin in pinned.into_iter().filter(|pin| !fixed.contains(pin)) {
            loaded.push(self.wheels.load(&pin).await.map(|bytes| (pin, bytes))?);
        }
        Ok(loaded)
    }
}

/// A pinned wheel's bytes, stored through the mirror first when needed.
pub async fn load(wheels: &IndexWheels, pin: &Pinned) -> Result<bytes::Bytes, Failure> {
    let infrastructure = Failure::infrastructure;
    let stored = store_through_mirror(&wheels.mirror, &wheels.store, &pin.filename, pin.sha256)
        .await
        .map_err(infrastructure)?;
    if !stored {
        return Err(infrastructure(format!(
            "{} cannot be fetched",
            pin.filename
        )));
    }
    wheels
        .store
        .get_bytes(pin.sha256)
        .await
        .map_err(|error| infrastructure(error.to_string()))
}

impl WheelLoader for IndexWheels {
    fn target(&self) -> &Target {
        &self.target
    }

    fn load<'a>(&'a self, pin: &'a Pinned) -> BoxFuture<'a, Result<bytes::Bytes, Failure>> {
        Box::pin(load(self, pin))
    }
}

impl<S: WheelLoader> RequirementFetcher for Fetcher<S> {
    fn fetch<'a>(
        &'a self,
        purpose: Purpose,
        requirements: Vec<(String, String)>,
        fixed: Vec<Pinned>,
    ) -> BoxFuture<'a, Result<Vec<(Pinned, bytes::Bytes)>, Failure>> {
        Box::pin(self.resolve_and_load(purpose, requirements, fixed))
    }
}
