//! The build farm: build keys, recipes, the queue with its leases, the pipeline that runs
//! a build in containers, and the service that ties them to the index and the mirror.

mod assignment_check;
mod build_system;
mod crates;
mod diagnose;
mod fetcher;
mod id;
mod index_wheels;
mod key;
mod on_demand;
mod on_demand_pages;
mod pipeline;
pub(crate) mod queue;
mod recipe;
mod records;
mod release;
mod remote_wheels;
mod remote_worker;
mod requirements;
mod resolve;
mod runtime_exports;
mod service;
mod steps;
mod symbols;
pub mod wire;

pub use build_system::{BuildSystem, BuildSystemError};
pub use crates::{
    CrateLoader, CrateName, CrateRegistry, CrateVersion, LockError, LockedCrate, LockedCrates,
    locked_crates, parse_lock,
};
pub use diagnose::{Diagnosis, first_error};
pub use id::{BuildId, BuildIdError};
pub use key::{BuildKey, CACHE_VERSION, KeyInputs};
pub use on_demand::{KnownMissing, MissingWheel, missing_wheels, release_has_wheel};
pub use on_demand_pages::{OnDemandPages, PageStream, TargetPage};
pub use pipeline::{Pipeline, PipelineResult};
pub use queue::{BuildQueue, PostgresBuildQueue, QueueError, Released, Requested, SledBuildQueue};
pub use recipe::{Recipe, RecipeBook, RecipeError, SHIPPED};
pub use records::{
    BuildRecord, BuildRequirements, BuildState, BuiltWheel, Failure, FailureKind, Holding, Lease,
    LeaseHolder, MissingRequirement,
};
pub use release::release_to_build;
pub use remote_worker::{RemoteWorker, WorkerError};
pub use resolve::{Pinned, ResolveError};
pub use runtime_exports::RuntimeExports;
pub use service::{BuildError, BuildService, RemoteReport, ServiceParts, index_requirement};
pub use steps::{
    ContainerSteps, StepsResult, TargetBuilders, TestedWheel, check_wheel, default_import_check,
};
pub use wire::{Assignment, Recorded, WheelhouseFile};
