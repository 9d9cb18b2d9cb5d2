//! One upstream PEP 658 metadata file fetched into the blob store, once however many
//! clients and replicas asked: small enough to be read whole and checked before it is kept.

use url::Url;

use super::UpstreamUrl;
use super::client::{UpstreamClient, UpstreamError};
use super::fetch_locks::FetchLocks;
use crate::metadata::UpstreamFile;
use crate::metadata::mirror_store::FetchKey;
use crate::pypi::Sha256Digest;
use crate::storage::BlobStore;

const MAX_METADATA_FILE: usize = 16 << 20;

pub struct MetadataFileJob {
    pub client: UpstreamClient,
    pub locks: FetchLocks,
    pub store: BlobStore,
    pub upstream: UpstreamUrl,
    /// The wheel's origin; its metadata file is at its URL with `.metadata` appended.
    pub origin: UpstreamFile,
    pub digest: Sha256Digest,
}

impl MetadataFileJob {
    fn store_error(&self, error: impl ToString) -> UpstreamError {
        UpstreamError::Store {
            upstream: self.upstream.to_string(),
            detail: error.to_string(),
        }
    }

    pub async fn run(self) -> Result<(), UpstreamError> {
        let _guard = (self.locks.take(FetchKey::File(self.digest)).await)
            .map_err(|error| self.store_error(error))?;
        let stored_meanwhile =
            (self.store.contains(self.digest).await).map_err(|error| self.store_error(error))?;
        if stored_meanwhile {
            return Ok(());
        }
        let url = Url::parse(&format!("{}.metadata", self.origin.url)).map_err(|error| {
            UpstreamError::Body {
                upstream: self.origin.upstream.clone(),
                url: self.origin.url.clone(),
                detail: error.to_string(),
            }
        })?;
        let bytes = (self.client)
            .fetch_small(&self.upstream, &url, MAX_METADATA_FILE)
            .await?;
        let actual = Sha256Digest::of(&bytes);
        if actual != self.digest {
            return Err(UpstreamError::DigestMismatch {
                upstream: self.upstream.to_string(),
                url: url.to_string(),
                expected: self.digest.to_hex(),
                actual: actual.to_hex(),
            });
        }
        (self.store.put_bytes(self.digest, bytes).await)
            .map(drop)
            .map_err(|error| self.store_error(error))
    }
}
