//! One upstream file download, run once however many clients asked: streamed to the first
//! client while it is hashed and spooled, kept only if its sha256 is the one the upstream's
//! index published. The last chunk is held back until the blob is stored, so a client never
//! receives a complete body that failed verification. A stored wheel then has its METADATA
//! read (PEP 658), after its first client has the whole body.

use std::path::PathBuf;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use url::Url;

use super::UpstreamUrl;
use super::client::{UpstreamClient, UpstreamError, stream_error};
use super::fetch_locks::FetchLocks;
use crate::ingest::{Ingestor, Spool, SpooledFile};
use crate::metadata::mirror_store::{FetchGuard, FetchKey};
use crate::metrics::Metrics;
use crate::pypi::{Sha256Digest, WheelFilename, excerpt};
use crate::storage::BlobStore;

pub type Chunk = std::io::Result<Bytes>;

pub struct DownloadJob {
    pub client: UpstreamClient,
    pub locks: FetchLocks,
    pub upstream: UpstreamUrl,
    pub url: Url,
    /// The filename the upstream lists the file under.
    pub filename: String,
    pub ingestor: Ingestor,
    pub expected: Sha256Digest,
    pub store: BlobStore,
    pub spool_dir: PathBuf,
    pub metrics: std::sync::Arc<Metrics>,
    /// The first client's body; sends fail harmlessly once that client is gone.
    pub body: mpsc::Sender<Chunk>,
}

impl DownloadJob {
    /// `started` is told the size (if the upstream sent one) once the response starts, or
    /// why it did not; it is dropped unanswered when another process stored the file while
    /// this one waited for the fetch lock.
    pub async fn run(
        self,
        started: oneshot::Sender<Result<Option<u64>, UpstreamError>>,
    ) -> Result<(), UpstreamError> {
        let guard = match self.lock_unless_stored().await {
            Ok(Some(guard)) => guard,
            Ok(None) => return Ok(()),
            Err(error) => {
                let _ = started.send(Err(error.clone()));
                return Err(error);
            }
        };
        let response = match self.client.open_file(&self.upstream, &self.url).await {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(%error, url = %self.url, "upstream download failed to start");
                let _ = started.send(Err(error.clone()));
                return Err(error);
            }
        };
        let size = response.content_length();
        let _ = started.send(Ok(size));
        let stored = self.stream_and_store(response, size).await;
        drop(guard);
        let spooled = match stored {
            Ok(spooled) => spooled,
            Err(error) => {
                tracing::warn!(%error, url = %self.url, "upstream download failed; nothing stored");
                let _ = self
                    .body
                    .send(Err(std::io::Error::other(error.to_string())))
                    .await;
                return Err(error);
            }
        };
        // The first client's body ends here, before the metadata is read.
        let Self {
            body,
            ingestor,
            filename,
            expected,
            ..
        } = self;
        drop(body);
        if let Ok(wheel) = filename.parse::<WheelFilename>() {
            let read = ingestor.mirrored_wheel(&wheel, &filename, expected, &spooled.path);
            if let Err(error) = read.await {
                tracing::warn!(
                    filename = %excerpt(&filename),
                    %error,
                    "could not read the metadata of a stored upstream wheel"
                );
            }
        }
        Ok(())
    }

    /// The fetch lock on this file, or None when the file is stored once it is held.
    async fn lock_unless_stored(&self) -> Result<Option<FetchGuard>, UpstreamError> {
        let guard = (self.locks.take(FetchKey::File(self.expected)).await)
            .map_err(|error| self.store_error(error.to_string()))?;
        let stored = (self.store.contains(self.expected).await)
            .map_err(|error| self.store_error(error.to_string()))?;
        Ok((!stored).then_some(guard))
    }

    fn store_error(&self, detail: String) -> UpstreamError {
        UpstreamError::Store {
            upstream: self.upstream.to_string(),
            detail,
        }
    }

    async fn stream_and_store(
        &self,
        response: reqwest::Response,
        size: Option<u64>,
    ) -> Result<SpooledFile, UpstreamError> {
        let mut spool = Spool::create(&self.spool_dir, u64::MAX)
            .map_err(|error| self.store_error(error.to_string()))?;
        let mut held: Option<Bytes> = None;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| stream_error(&self.upstream, error))?;
            self.metrics.add_upstream_bytes(chunk.len() as u64);
            spool
                .write(&chunk)
                .await
                .map_err(|error| self.store_error(error.to_string()))?;
            if let Some(previous) = held.replace(chunk) {
                let _ = self.body.send(Ok(previous)).await;
            }
        }
        let spooled = spool
            .finish()
            .await
            .map_err(|error| self.store_error(error.to_string()))?;
        let (upstream, url) = (self.upstream.to_string(), self.url.to_string());
        if size.is_some_and(|size| size != spooled.size) {
            let detail = format!(
                "the body ended after {} of {} bytes",
                spooled.size,
                size.unwrap_or_default()
            );
            return Err(UpstreamError::Body {
                upstream,
                url,
                detail,
            });
        }
        if spooled.sha256 != self.expected {
            let (expected, actual) = (self.expected.to_hex(), spooled.sha256.to_hex());
            return Err(UpstreamError::DigestMismatch {
                upstream,
                url,
                expected,
                actual,
            });
        }
        self.store
            .put_file(self.expected, &spooled.path)
            .await
            .map_err(|error| self.store_error(error.to_string()))?;
        if let Some(last) = held {
            let _ = self.body.send(Ok(last)).await;
        }
        Ok(spooled)
    }
}
