//! Everything behind the HTTP layer, opened from settings: shared by `serve`, `add` and
//! `build`, so the CLI goes through the same store, index, mirror and build cache.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::config::{ConfigError, ExecutorKind, MetadataBackend, Settings};
use crate::executor::{ContainerCli, Engine, Executor, Limits, Runc};
use crate::farm::{
    BuildQueue, BuildService, ContainerSteps, CrateRegistry, Pipeline, PostgresBuildQueue,
    RecipeBook, RecipeError, SHIPPED, ServiceParts, SledBuildQueue, TargetBuilders,
};
use crate::index::{PageCache, PageChanges, Published, Unshared};
use crate::ingest::Ingestor;
use crate::metadata::{
    IndexError, IndexStore, MirrorStore, MirrorStoreError, PostgresIndexStore, PostgresMirrorStore,
    SledIndex, SledMirrorStore, SledOpenError,
};
use crate::metrics::Metrics;
use crate::mirror::{Mirror, MirrorParts, UpstreamError};
use crate::postgres::PostgresPageChanges;
use crate::storage::{BlobStore, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    MirrorRecords(#[from] MirrorStoreError),
    #[error(transparent)]
    IndexOpen(#[from] SledOpenError),
    #[error("cannot prepare {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the upstream client: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("cannot start the crate registry client: {0}")]
    CrateRegistry(reqwest::Error),
    #[error(transparent)]
    Recipes(#[from] RecipeError),
    #[error(transparent)]
    Queue(#[from] crate::farm::QueueError),
    #[error(transparent)]
    Postgres(#[from] crate::postgres::OpenError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub struct Services {
    pub index: Arc<dyn IndexStore>,
    /// The rendered pages and the gauges every write updates (ingestor, index, mirror).
    pub published: Published,
    pub store: BlobStore,
    pub ingestor: Ingestor,
    pub mirror: Arc<Mirror>,
    pub builds: Arc<BuildService>,
    pub executor: Arc<dyn Executor>,
    pub metrics: Arc<Metrics>,
    /// Stable per data directory: names this instance's containers.
    pub instance: String,
}

fn fresh_dir(path: PathBuf) -> Result<PathBuf, StartupError> {
    let error = |source| StartupError::DataDir {
        path: path.clone(),
        source,
    };
    if path.exists() {
        std::fs::remove_dir_all(&path).map_err(error)?;
    }
    std::fs::create_dir_all(&path).map_err(error)?;
    Ok(path)
}

pub fn executor(settings: &Settings) -> Arc<dyn Executor> {
    match settings.build.executor {
        ExecutorKind::Runc => Arc::new(Runc::new(
            settings.data_dir.join("runc"),
            settings.data_dir.join("bundles"),
        )),
        ExecutorKind::Docker => Arc::new(ContainerCli::new(Engine::Docker, &instance_id(settings))),
        ExecutorKind::Podman => Arc::new(ContainerCli::new(Engine::Podman, &instance_id(settings))),
    }
}

/// The limits of each container run.
pub fn build_limits(settings: &Settings) -> Limits {
    let build = &settings.build;
    Limits {
        time: Duration::from_secs(build.time_limit_seconds),
        memory_mb: build.memory_mb,
        cpus: build.cpus,
        pids: build.pids,
        scratch_mb: build.scratch_mb,
        max_file_mb: build.max_file_mb,
    }
}

pub fn instance_id(settings: &Settings) -> String {
    let path =
        std::path::absolute(&settings.data_dir).unwrap_or_else(|_| settings.data_dir.clone());
    hex::encode(&Sha256::digest(path.as_os_str().as_encoded_bytes())[..6])
}

impl Services {
    pub async fn open(settings: &Settings) -> Result<Self, StartupError> {
        let started = std::time::SystemTime::now();
        let data_dir = &settings.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| StartupError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        // Spool files, build work directories and blob staging files only live during one
        // request, build or write; anything left is from a crash.
        // The database first: its lock says whether another process uses this data dir,
        // and only then are that process's spool files and work directories safe to clear.
        let sled = SledIndex::open(
            &data_dir.join("index.sled"),
            settings.limits.database_cache_bytes,
        )?;
        let spool_dir = fresh_dir(data_dir.join("spool"))?;
        let work_root = fresh_dir(data_dir.join("work"))?;
        let store = open_store(settings, started)?;
        let metrics = Arc::new(Metrics::default());
        let pages = Arc::new(PageCache::new(
            settings.limits.page_cache_bytes,
            metrics.clone(),
        ));
        let records = open_records(settings, &sled, &pages).await?;
        let index = records.index;
        let mirror_records = records.mirror;
        metrics.set_files_stored(index.file_count().await?);
        let published = Published::new(pages, metrics.clone(), records.page_changes);
        let ingestor = Ingestor::new(
            store.clone(),
            index.clone(),
            mirror_records.clone(),
            settings.archive_limits(),
            spool_dir.clone(),
            published.clone(),
        );
        let mirror = Arc::new(Mirror::new(MirrorParts {
            upstreams: settings.active_upstreams().to_vec(),
            settings: settings.mirror.clone(),
            records: mirror_records,
            store: store.clone(),
            spool_dir,
            metrics: metrics.clone(),
            ingestor: ingestor.clone(),
            published: published.clone(),
        })?);
        let executor = executor(settings);
        let instance = instance_id(settings);
        let build = &settings.build;
        let pipeline = Pipeline {
            steps: ContainerSteps {
                executor: executor.clone(),
                limits: build_limits(settings),
                instance: instance.clone(),
                metrics: metrics.clone(),
                runtime_exports: Default::default(),
            },
            store: store.clone(),
            ingestor: ingestor.clone(),
            work_root,
        };
        let builds = Arc::new(BuildService::new(ServiceParts {
            queue: records.queue,
            pipeline,
            recipes: recipe_book(settings)?,
            targets: target_builders(settings),
            index: index.clone(),
            mirror: mirror.clone(),
            lease_seconds: build.lease_seconds,
            max_attempts: build.max_attempts,
            resolve_build_requirements: build.resolve_build_requirements,
            crate_registry: crate_registry(settings, &store)?,
        }));
        Ok(Self {
            index,
            published,
            store,
            ingestor,
            mirror,
            builds,
            executor,
            metrics,
            instance,
        })
    }
}

/// The stores `metadata_url` places: in the embedded database, or in PostgreSQL on one
/// pool with every schema brought up to date first, where the replicas sharing it also
/// tell each other which of their kept `pages` a write changed.
struct Records {
    index: Arc<dyn IndexStore>,
    mirror: Arc<dyn MirrorStore>,
    queue: Arc<dyn BuildQueue>,
    page_changes: Arc<dyn PageChanges>,
}

async fn open_records(
    settings: &Settings,
    sled: &SledIndex,
    pages: &Arc<PageCache>,
) -> Result<Records, StartupError> {
    Ok(match settings.metadata_backend() {
        MetadataBackend::Embedded => Records {
            index: Arc::new(sled.clone()),
            mirror: Arc::new(SledMirrorStore::open(sled.database())?),
            queue: Arc::new(SledBuildQueue::open(sled.database())?),
            page_changes: Arc::new(Unshared),
        },
        MetadataBackend::Postgres(url) => {
            let pool = crate::postgres::open_shared(&url).await?;
            let page_changes =
                PostgresPageChanges::start(&url, pool.clone(), pages.clone()).await?;
            Records {
                index: Arc::new(PostgresIndexStore::on(pool.clone())),
                mirror: Arc::new(PostgresMirrorStore::on(pool.clone())),
                queue: Arc::new(PostgresBuildQueue::on(pool)),
                page_changes: Arc::new(page_changes),
            }
        }
        MetadataBackend::Invalid => Err(ConfigError::Invalid {
            key: "metadata_url",
            reason: "not a postgres:// URL".into(),
        })?,
    })
}

/// The blob store, with what a crash left half-written removed.
fn open_store(
    settings: &Settings,
    started: std::time::SystemTime,
) -> Result<BlobStore, StartupError> {
    let store = BlobStore::open(&settings.resolved_storage_url()?)?;
    let swept = store.sweep_partial_writes(started)?;
    if swept.files > 0 {
        tracing::info!(
            files = swept.files,
            bytes = swept.bytes,
            "removed partial blob writes left by a crash"
        );
    }
    Ok(store)
}

fn recipe_book(settings: &Settings) -> Result<RecipeBook, StartupError> {
    Ok(match settings.build.recipes.as_os_str().is_empty() {
        true => RecipeBook::parse(SHIPPED, "config/recipes.toml (shipped)")?,
        false => RecipeBook::load(&settings.build.recipes)?,
    })
}

/// Each configured target's builder and runtime (the builder's own when none is named).
fn target_builders(settings: &Settings) -> Vec<TargetBuilders> {
    settings
        .build
        .targets
        .iter()
        .map(|target| TargetBuilders {
            target: target.name.clone(),
            builder: target.builder.clone(),
            runtime: if target.runtime.is_empty() {
                target.builder.clone()
            } else {
                target.runtime.clone()
            },
        })
        .collect()
}

fn crate_registry(settings: &Settings, store: &BlobStore) -> Result<CrateRegistry, StartupError> {
    CrateRegistry::new(
        settings
            .build
            .crate_registry_url()
            .map_err(|reason| ConfigError::Invalid {
                key: "build.crate_registry",
                reason,
            })?,
        Duration::from_secs(settings.mirror.connect_timeout_seconds),
        Duration::from_secs(settings.mirror.read_timeout_seconds),
        store.clone(),
    )
    .map_err(StartupError::CrateRegistry)
}
