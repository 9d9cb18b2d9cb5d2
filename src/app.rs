//! `Application::build` wires settings into a running server. It binds the listener itself
//! so tests can start the real application on port 0 and ask which port it got.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, Service as _};
use actix_web::{App, HttpServer, web};

use crate::auth::Tokens;
use crate::config::Settings;
use crate::farm::{BuildService, OnDemandPages};
use crate::index::Index;
use crate::ingest::Ingestor;
use crate::metrics::Metrics;
use crate::mirror::Mirror;
use crate::routes;
pub use crate::services::{Services, StartupError};
use crate::storage::BlobStore;

/// Everything a request handler may use.
pub struct AppState {
    pub index: Arc<Index>,
    pub ingestor: Ingestor,
    pub store: BlobStore,
    pub mirror: Arc<Mirror>,
    pub builds: Arc<BuildService>,
    pub tokens: Tokens,
    pub metrics: Arc<Metrics>,
    pub max_upload_bytes: u64,
    /// Longest a JSON body may take to arrive (`limits.request_timeout_seconds`).
    pub request_timeout: Duration,
    /// Longest a multipart form may take to arrive (`limits.upload_timeout_seconds`).
    pub upload_timeout: Duration,
    /// Project pages, with the builds they lack queued or waited for.
    pub on_demand: Arc<OnDemandPages>,
    pub prewarms: crate::prewarm::PrewarmJobs,
    /// This server's own base URL, for the prewarm API's calls to itself.
    pub self_url: url::Url,
}

pub struct Application {
    address: SocketAddr,
    server: Server,
}

impl Application {
    /// Opens everything, removes containers a crash of this instance left, starts the
    /// in-process build workers, and binds the listener.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let services = Services::open(settings).await?;
        if !settings.build.targets.is_empty() {
            start_farm(&services, settings.build.workers).await;
        }
        let (listener, address, self_url) = bind(settings.listen)?;
        let index = Arc::new(Index::new(services.index, services.published));
        let on_demand = Arc::new(OnDemandPages::new(
            index.clone(),
            services.mirror.clone(),
            services.builds.clone(),
            settings.on_demand.clone(),
        ));
        let state = web::Data::new(AppState {
            index,
            ingestor: services.ingestor,
            store: services.store,
            mirror: services.mirror,
            builds: services.builds,
            tokens: Tokens::new(
                &settings.auth.upload_tokens,
                &settings.auth.read_tokens,
                settings.auth.read_requires_token,
            )
            .with_workers(&settings.auth.worker_tokens),
            metrics: services.metrics,
            max_upload_bytes: settings.limits.max_upload_bytes,
            request_timeout: Duration::from_secs(settings.limits.request_timeout_seconds),
            upload_timeout: Duration::from_secs(settings.limits.upload_timeout_seconds),
            on_demand,
            prewarms: crate::prewarm::PrewarmJobs::default(),
            self_url,
        });
        let request_timeout = state.request_timeout;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap_fn(|request, service| {
                    let response = service.call(request);
                    async move {
                        let mut response = response.await?;
                        routes::record_request(&response);
                        routes::record_refusal(&response);
                        routes::keep_private(&mut response);
                        Ok(response)
                    }
                })
                .configure(routes::configure)
        })
        // A client that has not sent its request head by then is answered 408 and dropped;
        // bodies have their own deadlines where they are read (routes/body.rs, routes/form.rs).
        .client_request_timeout(request_timeout)
        // Small pages and the tail of each download go out at once, not after a delayed ACK.
        .on_connect(|connection, _| {
            if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = stream.set_nodelay(true);
            }
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

/// Containers a crashed process left are removed before in-process workers take builds.
async fn start_farm(services: &Services, workers: usize) {
    match services.executor.remove_orphans(&services.instance).await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(count, "removed build containers left by a crash"),
        Err(error) => tracing::warn!(%error, "could not look for orphaned build containers"),
    }
    services
        .builds
        .spawn_workers(workers, &services.instance)
        .await;
}

/// The listener, the address it got (port 0 picks one) and the URL this server reaches
/// itself at (loopback when bound to every address).
fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr, url::Url), StartupError> {
    let bind_error = |address, source| StartupError::Bind { address, source };
    let listener = TcpListener::bind(listen).map_err(|source| bind_error(listen, source))?;
    let address = listener
        .local_addr()
        .map_err(|source| bind_error(listen, source))?;
    let loopback = if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    let self_url = url::Url::parse(&format!("http://{loopback}/"))
        .map_err(|error| bind_error(address, std::io::Error::other(error)))?;
    Ok((listener, address, self_url))
}
