//! The blob store: write-once puts that verify the digest before they commit, and ranged
//! reads. Backend errors are folded into a few categories; none of them is a cache miss.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload,
};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::digest_locks::DigestLocks;
use super::key::StorageKey;
use super::part_upload::{Completion, PartUpload};
use super::staging::{SweptStaging, sweep_staging};
use crate::pypi::Sha256Digest;

const READ_CHUNK: usize = 256 * 1024;
/// The size of a multipart upload's parts (S3 wants 5 MiB or more for all but the last).
pub const UPLOAD_PART: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage URL `{url}` is not supported: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("blob {key} is not in the store")]
    NotFound { key: String },
    #[error("blob {expected} failed verification: the bytes hash to {actual}; nothing was stored")]
    DigestMismatch {
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("storage backend failed on {key}: {source}")]
    Backend {
        key: String,
        source: object_store::Error,
    },
    #[error("local I/O failed on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bytes for blob {key} failed while they were read: {source}; nothing was stored")]
    Body { key: String, source: std::io::Error },
    #[error("blob {key} is being created by another writer of the store; try again")]
    Contended { key: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    AlreadyPresent,
}

/// A blob's bytes (or a range of them) and its total size.
pub struct BlobRead {
    pub total_size: u64,
    pub range: Range<u64>,
    pub body: BoxStream<'static, std::io::Result<Bytes>>,
}

#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// The directory of a `file://` store, where a crash can leave staging files.
    local_root: Option<PathBuf>,
    writing: DigestLocks,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({})", self.inner)
    }
}

fn backend(key: &StorageKey) -> impl FnOnce(object_store::Error) -> StorageError + '_ {
    move |source| match source {
        object_store::Error::NotFound { .. } => StorageError::NotFound {
            key: key.path().to_string(),
        },
        source => StorageError::Backend {
            key: key.path().to_string(),
            source,
        },
    }
}

impl BlobStore {
    /// Opens `file:///dir` (created if missing) or `s3://bucket/prefix`, the latter
    /// configured by the usual `AWS_*` environment variables.
    pub fn open(url: &str) -> Result<Self, StorageError> {
        Self::open_with_env(url, std::env::vars())
    }

    /// `open` with `env` standing for the process environment: an S3 store reads its
    /// `AWS_*` settings from it.
    pub fn open_with_env(
        url: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, StorageError> {
        let invalid = |reason: String| StorageError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|error| invalid(error.to_string()))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| invalid("not an absolute local path".into()))?;
                std::fs::create_dir_all(&dir).map_err(|source| StorageError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let store = LocalFileSystem::new_with_prefix(&dir)
                    .map(|store| store.with_fsync(true))
                    .map_err(|error| invalid(error.to_string()))?;
                Ok(Self {
                    inner: Arc::new(store),
                    local_root: Some(dir),
                    writing: DigestLocks::default(),
                })
            }
            "s3" => super::s3::open(&parsed, env)
                .map(Self::from_object_store)
                .map_err(|error| invalid(error.to_string())),
            other => Err(invalid(format!("scheme `{other}` (use file:// or s3://)"))),
        }
    }

    pub fn from_object_store(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            local_root: None,
            writing: DigestLocks::default(),
        }
    }

    /// Removes what writes killed mid-way left in a `file://` store: staging files last
    /// modified before `cutoff` (see `staging`). Committed blobs are never touched. An S3
    /// store keeps nothing half-written visible; its unfinished multipart uploads are the
    /// bucket's lifecycle rules' to expire.
    pub fn sweep_partial_writes(&self, cutoff: SystemTime) -> Result<SweptStaging, StorageError> {
        match &self.local_root {
            Some(root) => sweep_staging(root, cutoff),
            None => Ok(SweptStaging::default()),
        }
    }

    pub async fn contains(&self, digest: Sha256Digest) -> Result<bool, StorageError> {
        let key = StorageKey::Blob(digest);
        match self.inner.head(&key.path()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(backend(&key)(source)),
        }
    }

    /// Every blob in the store, by digest: the keys under `sha256/` that name one (a
    /// `file://` store's staging files do not).
    pub async fn digests(&self) -> Result<Vec<Sha256Digest>, StorageError> {
        let prefix = object_store::path::Path::from("sha256");
        let listed: Vec<object_store::ObjectMeta> = self
            .inner
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|source| StorageError::Backend {
                key: prefix.to_string(),
                source,
            })?;
        let mut digests: Vec<Sha256Digest> = listed
            .iter()
            .filter_map(|meta| {
                let digest: Sha256Digest = meta.location.filename()?.parse().ok()?;
                (StorageKey::Blob(digest).path() == meta.location).then_some(digest)
            })
            .collect();
        digests.sort();
        Ok(digests)
    }

    /// Stores small bytes (extracted METADATA) after checking they hash to `digest`.
    pub async fn put_bytes(
        &self,
        digest: Sha256Digest,
        bytes: Bytes,
    ) -> Result<PutOutcome, StorageError> {
        let actual = Sha256Digest::of(&bytes);
        if actual != digest {
            return Err(StorageError::DigestMismatch {
                expected: digest,
                actual,
            });
        }
        let _turn = self.writing.turn(digest).await;
        let key = StorageKey::Blob(digest);
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&key.path(), PutPayload::from_bytes(bytes), options)
            .await
        {
            Ok(_) => Ok(PutOutcome::Stored),
            Err(object_store::Error::AlreadyExists { .. }) => self.taken(digest).await,
            Err(source) => Err(backend(&key)(source)),
        }
    }

    /// Streams a local file into the store under `digest` (see `put_stream`).
    pub async fn put_file(
        &self,
        digest: Sha256Digest,
        path: &FsPath,
    ) -> Result<PutOutcome, StorageError> {
        let io_error = |source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(io_error)?;
        match self
            .put_stream(digest, ReaderStream::with_capacity(file, READ_CHUNK))
            .await
        {
            Err(StorageError::Body { source, .. }) => Err(io_error(source)),
            outcome => outcome,
        }
    }

    /// Stores the bytes of `body` under `digest`, hashing them on the way: the upload is
    /// completed only if they hash to `digest`, so a key always names its content. Nothing
    /// is visible under the key before that; a body that fails, or a put dropped mid-way,
    /// leaves nothing. A key that exists already holds the same bytes, so it is left alone,
    /// whoever wrote it first (another task here, or another process on the same bucket).
    pub async fn put_stream<S>(
        &self,
        digest: Sha256Digest,
        body: S,
    ) -> Result<PutOutcome, StorageError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let _turn = self.writing.turn(digest).await;
        if self.contains(digest).await? {
            return Ok(PutOutcome::AlreadyPresent);
        }
        let key = StorageKey::Blob(digest);
        let upload = self
            .inner
            .put_multipart(&key.path())
            .await
            .map_err(backend(&key))?;
        let mut upload = PartUpload::new(upload, UPLOAD_PART);
        let mut hasher = Sha256::new();
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(source) => {
                    upload.abort().await;
                    return Err(StorageError::Body {
                        key: key.path().to_string(),
                        source,
                    });
                }
            };
            hasher.update(&chunk);
            if let Err(source) = upload.write(chunk).await {
                upload.abort().await;
                return Err(backend(&key)(source));
            }
        }
        let actual = Sha256Digest::from_hasher(hasher);
        if actual != digest {
            upload.abort().await;
            return Err(StorageError::DigestMismatch {
                expected: digest,
                actual,
            });
        }
        match upload.complete().await.map_err(backend(&key))? {
            Completion::Created => Ok(PutOutcome::Stored),
            Completion::KeyTaken => self.taken(digest).await,
        }
    }

    /// A create refused because the key exists reads as `AlreadyPresent`, once the key is
    /// seen to hold a blob: S3 also refuses (409) while another create of the key is under
    /// way, which may yet fail.
    async fn taken(&self, digest: Sha256Digest) -> Result<PutOutcome, StorageError> {
        if self.contains(digest).await? {
            Ok(PutOutcome::AlreadyPresent)
        } else {
            Err(StorageError::Contended {
                key: StorageKey::Blob(digest).path().to_string(),
            })
        }
    }

    /// Reads a blob, or the byte range `range` of it (already checked against its size).
    pub async fn get(
        &self,
        digest: Sha256Digest,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead, StorageError> {
        let key = StorageKey::Blob(digest);
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = self
            .inner
            .get_opts(&key.path(), options)
            .await
            .map_err(backend(&key))?;
        let total_size = result.meta.size;
        let range = result.range.clone();
        let body = match result.payload {
            GetResultPayload::File(file, path) => {
                local_file_stream(file, path, range.clone()).await?
            }
            GetResultPayload::Stream(stream) => stream.map_err(std::io::Error::other).boxed(),
        };
        Ok(BlobRead {
            total_size,
            range,
            body,
        })
    }

    pub async fn get_bytes(&self, digest: Sha256Digest) -> Result<Bytes, StorageError> {
        let key = StorageKey::Blob(digest);
        let result = self.inner.get(&key.path()).await.map_err(backend(&key))?;
        result.bytes().await.map_err(backend(&key))
    }

    pub async fn size(&self, digest: Sha256Digest) -> Result<u64, StorageError> {
        let key = StorageKey::Blob(digest);
        Ok(self
            .inner
            .head(&key.path())
            .await
            .map_err(backend(&key))?
            .size)
    }
}

/// object_store reads local files in small blocking chunks; large async reads keep
/// downloads close to what a static file server does.
async fn local_file_stream(
    file: std::fs::File,
    path: PathBuf,
    range: Range<u64>,
) -> Result<BoxStream<'static, std::io::Result<Bytes>>, StorageError> {
    let mut file = tokio::fs::File::from_std(file);
    file.seek(std::io::SeekFrom::Start(range.start))
        .await
        .map_err(|source| StorageError::Io { path, source })?;
    let limited = file.take(range.end - range.start);
    Ok(ReaderStream::with_capacity(limited, READ_CHUNK).boxed())
}
