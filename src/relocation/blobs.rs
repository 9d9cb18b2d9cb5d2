//! Every blob of the old store copied to the new one. A blob is written by the store's
//! verified write (`BlobStore::put_stream` hashes the bytes as they stream and completes
//! the write only if they hash to the key), then read back from the destination and hashed
//! again, so what the new store holds is known to be right, not only what was sent. A blob
//! the destination holds already is read back and hashed the same way, never written again.

use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use super::MoveError;
use crate::pypi::Sha256Digest;
use crate::storage::{BlobStore, PutOutcome, StorageError};

pub struct Stores<'a> {
    pub source: &'a BlobStore,
    pub source_url: &'a str,
    pub destination: &'a BlobStore,
    pub destination_url: &'a str,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlobCounts {
    /// Written to the destination, then read back and verified.
    pub copied: u64,
    /// Already at the destination, read back and verified.
    pub present: u64,
}

/// Copies every blob of `stores.source` in digest order; the first mismatch ends the move,
/// naming the blob (what was copied before it stays: blobs are write-once, and a blob no
/// record names is harmless).
pub async fn copy_all(stores: &Stores<'_>) -> Result<BlobCounts, MoveError> {
    let mut counts = BlobCounts::default();
    let digests = stores.source.digests().await?;
    tracing::info!(
        blobs = digests.len(),
        from = stores.source_url,
        "copying blobs"
    );
    for digest in digests {
        match copy_one(stores, digest).await? {
            PutOutcome::Stored => counts.copied += 1,
            PutOutcome::AlreadyPresent => counts.present += 1,
        }
        let actual = hash_of(stores.destination, digest).await?;
        if actual != digest {
            return Err(MoveError::CorruptDestination {
                digest,
                actual,
                store: stores.destination_url.to_string(),
            });
        }
    }
    Ok(counts)
}

async fn copy_one(stores: &Stores<'_>, digest: Sha256Digest) -> Result<PutOutcome, MoveError> {
    if stores.destination.contains(digest).await? {
        return Ok(PutOutcome::AlreadyPresent);
    }
    let read = stores.source.get(digest, None).await?;
    match stores.destination.put_stream(digest, read.body).await {
        Err(StorageError::DigestMismatch { expected, actual }) => Err(MoveError::CorruptSource {
            digest: expected,
            actual,
            store: stores.source_url.to_string(),
        }),
        outcome => Ok(outcome?),
    }
}

/// The sha256 of the blob's bytes as the store returns them.
async fn hash_of(store: &BlobStore, digest: Sha256Digest) -> Result<Sha256Digest, MoveError> {
    let mut body = store.get(digest, None).await?.body;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|source| MoveError::ReadBack { digest, source })?;
        hasher.update(&chunk);
    }
    Ok(Sha256Digest::from_hasher(hasher))
}
