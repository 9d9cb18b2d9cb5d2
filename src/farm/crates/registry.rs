//! Crates from the registry into the blob store: each `.crate` a build's Cargo.lock pins is
//! downloaded once (bounded in bytes and time), kept only if it hashes to the lock's
//! checksum, and stored under that digest like any other file; a crate already stored is
//! never fetched again. Nothing is run: cargo sees the crates only inside the build.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use url::Url;

use super::lock::LockedCrate;
use super::vendor::CrateLoader;
use crate::farm::records::Failure;
use crate::farm::resolve::BoxFuture;
use crate::pypi::Sha256Digest;
use crate::storage::BlobStore;

/// The largest `.crate` taken (crates.io accepts 10 MB unless a crate has an exception).
const MAX_CRATE_BYTES: usize = 64 << 20;
/// The most one build's missing crates may add up to.
const MAX_FETCHED_BYTES: u64 = 2 << 30;
/// How long one crate's download may take, from request to last byte.
const CRATE_DEADLINE: Duration = Duration::from_secs(300);
/// Downloads at once.
const CONCURRENT_DOWNLOADS: usize = 4;

/// What `store_all` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredCrates {
    /// Crates downloaded now; the others were stored already.
    pub fetched: usize,
    pub fetched_bytes: u64,
}

#[derive(Clone)]
pub struct CrateRegistry {
    http: reqwest::Client,
    /// Files are at `<base>/<name>/<name>-<version>.crate` (static.crates.io's layout).
    base: Url,
    store: BlobStore,
}

fn package(message: String) -> Failure {
    Failure::package(message)
}

fn infrastructure(message: String) -> Failure {
    Failure::infrastructure(message)
}

impl CrateRegistry {
    /// A registry at `base` (`build.crate_registry`); redirects are not followed, so files
    /// come from that host alone.
    pub fn new(
        base: Url,
        connect_timeout: Duration,
        read_timeout: Duration,
        store: BlobStore,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .user_agent(concat!("edelweiss/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, base, store })
    }

    /// Where the registry serves `locked`. Names and versions are parsed, so they need no
    /// escaping in a path.
    pub fn url_of(&self, locked: &LockedCrate) -> String {
        format!(
            "{}/{}/{}",
            self.base.as_str().trim_end_matches('/'),
            locked.name,
            locked.file_name()
        )
    }

    /// Makes sure every crate of `crates` is in the blob store, downloading the missing ones.
    /// A crate whose bytes are not the lock's is a package failure; a registry that cannot
    /// be reached, or answers with anything but the file, an infrastructure failure.
    pub async fn store_all(&self, crates: &[LockedCrate]) -> Result<StoredCrates, Failure> {
        let mut stored = StoredCrates::default();
        let mut waiting = crates.iter();
        let mut downloads = futures::stream::FuturesUnordered::new();
        loop {
            while downloads.len() < CONCURRENT_DOWNLOADS {
                let Some(locked) = waiting.next() else { break };
                downloads.push(self.store_one(locked));
            }
            let Some(result) = downloads.next().await else {
                break;
            };
            if let Some(size) = result? {
                stored.fetched += 1;
                stored.fetched_bytes += size;
                if stored.fetched_bytes > MAX_FETCHED_BYTES {
                    return Err(package(format!(
                        "the crates of the sdist's Cargo.lock add up to more than {MAX_FETCHED_BYTES} bytes"
                    )));
                }
            }
        }
        Ok(stored)
    }

    /// `None` when the crate was stored already, else the size downloaded.
    async fn store_one(&self, locked: &LockedCrate) -> Result<Option<u64>, Failure> {
        let stored = self.store.contains(locked.sha256).await.map_err(|error| {
            infrastructure(format!("crate {} {}: {error}", locked.name, locked.version))
        })?;
        if stored {
            return Ok(None);
        }
        let url = self.url_of(locked);
        let bytes = tokio::time::timeout(CRATE_DEADLINE, self.download(locked, &url))
            .await
            .map_err(|_| {
                infrastructure(format!(
                    "crate {} {}: {url} took longer than {}s",
                    locked.name,
                    locked.version,
                    CRATE_DEADLINE.as_secs()
                ))
            })??;
        let actual = Sha256Digest::of(&bytes);
        if actual != locked.sha256 {
            return Err(package(format!(
                "crate {} {} from {url}: its sha256 is {actual}, but Cargo.lock says {}; nothing was stored",
                locked.name, locked.version, locked.sha256
            )));
        }
        let size = bytes.len() as u64;
        self.store.put_bytes(actual, bytes).await.map_err(|error| {
            infrastructure(format!("crate {} {}: {error}", locked.name, locked.version))
        })?;
        tracing::info!(name = %locked.name, version = %locked.version, size, "crate stored");
        Ok(Some(size))
    }

    async fn download(&self, locked: &LockedCrate, url: &str) -> Result<Bytes, Failure> {
        let failed = |detail: String| {
            infrastructure(format!(
                "crate {} {}: {url}: {detail}",
                locked.name, locked.version
            ))
        };
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|error| failed(request_error(&error)))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| failed(request_error(&error)))?
        {
            if body.len() + chunk.len() > MAX_CRATE_BYTES {
                return Err(package(format!(
                    "crate {} {}: {url} sent more than {MAX_CRATE_BYTES} bytes; nothing was stored",
                    locked.name, locked.version
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.into())
    }
}

/// reqwest's error without the URL it repeats.
fn request_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(error) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_string(),
    }
}

/// A build in this process reads its crates from the blob store, after `store_all`.
impl CrateLoader for CrateRegistry {
    fn load<'a>(&'a self, locked: &'a LockedCrate) -> BoxFuture<'a, Result<Bytes, Failure>> {
        Box::pin(async move {
            self.store.get_bytes(locked.sha256).await.map_err(|error| {
                infrastructure(format!("crate {} {}: {error}", locked.name, locked.version))
            })
        })
    }
}
