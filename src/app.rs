//! `Application::build` wires settings into a running server. It binds the listener itself
//! so tests can start the real application on port 0 and ask which port it got.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::{Server, Service as _};
use actix_web::{App, HttpServer, web};

use crate::auth::Tokens;
use crate::config::{ConfigError, Settings};
use crate::index::Index;
use crate::ingest::Ingestor;
use crate::metadata::{IndexError, IndexStore, SledIndex};
use crate::metrics::Metrics;
use crate::mirror::{Mirror, MirrorParts, UpstreamError};
use crate::routes;
use crate::storage::{BlobStore, StorageError};

/// Everything a request handler may use.
pub struct AppState {
    pub index: Index,
    pub ingestor: Ingestor,
    pub store: BlobStore,
    pub mirror: Mirror,
    pub tokens: Tokens,
    pub metrics: Arc<Metrics>,
    pub max_upload_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("cannot prepare {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the upstream client: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The parts shared by the server and the offline `add` command.
pub struct DataDir {
    pub index: Arc<SledIndex>,
    pub store: BlobStore,
    pub ingestor: Ingestor,
}

impl DataDir {
    pub fn open(settings: &Settings) -> Result<Self, StartupError> {
        let data_dir = &settings.data_dir;
        let io_error = |path: PathBuf| move |source| StartupError::DataDir { path, source };
        std::fs::create_dir_all(data_dir).map_err(io_error(data_dir.clone()))?;
        let spool_dir = data_dir.join("spool");
        // Spool files only live during one request; anything left is from a crash.
        if spool_dir.exists() {
            std::fs::remove_dir_all(&spool_dir).map_err(io_error(spool_dir.clone()))?;
        }
        std::fs::create_dir_all(&spool_dir).map_err(io_error(spool_dir.clone()))?;
        let store = BlobStore::open(&settings.resolved_storage_url()?)?;
        let index = Arc::new(SledIndex::open(&data_dir.join("index.sled"))?);
        let ingestor = Ingestor::new(
            store.clone(),
            index.clone(),
            settings.archive_limits(),
            spool_dir,
        );
        Ok(Self {
            index,
            store,
            ingestor,
        })
    }
}

pub struct Application {
    address: SocketAddr,
    server: Server,
}

impl Application {
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        let data = DataDir::open(settings)?;
        let metrics = Arc::new(Metrics::default());
        metrics.set_files_stored(data.index.file_count()?);
        let mirror = Mirror::new(MirrorParts {
            upstreams: settings.active_upstreams().to_vec(),
            settings: settings.mirror.clone(),
            records: data.index.mirror_records()?,
            store: data.store.clone(),
            spool_dir: data.ingestor.spool_dir().to_path_buf(),
            metrics: metrics.clone(),
        })?;
        let state = web::Data::new(AppState {
            index: Index::new(data.index),
            ingestor: data.ingestor,
            store: data.store,
            mirror,
            tokens: Tokens::new(
                &settings.auth.upload_tokens,
                &settings.auth.read_tokens,
                settings.auth.read_requires_token,
            ),
            metrics,
            max_upload_bytes: settings.limits.max_upload_bytes,
        });
        let listener = TcpListener::bind(settings.listen).map_err(|source| StartupError::Bind {
            address: settings.listen,
            source,
        })?;
        let address = listener.local_addr().map_err(|source| StartupError::Bind {
            address: settings.listen,
            source,
        })?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap_fn(|request, service| {
                    let response = service.call(request);
                    async move {
                        let response = response.await?;
                        routes::record_request(&response);
                        Ok(response)
                    }
                })
                .configure(routes::configure)
        })
        .listen(listener)
        .map_err(|source| StartupError::Bind { address, source })?
        .run();
        Ok(Self { address, server })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
