//! One conformance suite for the blob store, run against each backend: a `file://` store and
//! S3 (the test S3 server of `tests/common/s3.rs`). Each property is one function of `suite`
//! over a `Backend`; `mod fs` and `mod s3` run every one of them. The blobs are made here:
//! bytes of a seeded generator, so a wrong byte anywhere changes the digest.

mod common;

use std::time::Duration;

use bytes::Bytes;
use edelweiss::pypi::Sha256Digest;
use edelweiss::storage::{BlobStore, PutOutcome, StorageError, UPLOAD_PART};
use futures::stream::{self, BoxStream, StreamExt};

/// What the suite needs of a backend besides the store.
trait Backend: Sync {
    fn store(&self) -> &BlobStore;
    /// `count` writers of the same store at once: for a `file://` store, tasks of the one
    /// process it belongs to; for S3, stores opened independently, as replicas are.
    fn writers(&self, count: usize) -> Vec<BlobStore>;
    /// What unfinished writes left: staging files, or incomplete multipart uploads.
    async fn leftovers(&self) -> Vec<String>;
    /// Every key a reader of the backend can see.
    async fn visible(&self) -> Vec<String>;
}

/// `length` bytes of a seeded xorshift generator.
fn blob(seed: u64, length: usize) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(length + 8);
    while bytes.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(length);
    Bytes::from(bytes)
}

/// `bytes` as a body arriving in chunks of 64 KiB.
fn body(bytes: Bytes) -> BoxStream<'static, std::io::Result<Bytes>> {
    let chunks: Vec<_> = (0..bytes.len())
        .step_by(64 * 1024)
        .map(|start| Ok(bytes.slice(start..bytes.len().min(start + 64 * 1024))))
        .collect();
    stream::iter(chunks).boxed()
}

async fn read_all(
    store: &BlobStore,
    digest: Sha256Digest,
    range: Option<std::ops::Range<u64>>,
) -> Vec<u8> {
    let read = store.get(digest, range).await.expect("read the blob");
    let mut bytes = Vec::new();
    let mut body = read.body;
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.expect("a chunk of the blob"));
    }
    bytes
}

/// Waits (bounded) for the backend's leftovers to be gone: an upload dropped mid-way is
/// aborted in the background.
async fn leftovers_cleared(backend: &impl Backend, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let leftovers = backend.leftovers().await;
        if leftovers.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} left {leftovers:?} behind"
        );
        tokio::time::sleep(common::POLL_INTERVAL).await;
    }
}

mod suite {
    use super::*;

    /// Tried: six writers putting the same 9 MiB blob at once, half streaming it in parts,
    /// half as one put. Kept: one blob with those bytes; exactly one writer says it stored
    /// it and the others that it was already there, and no writer's upload is left behind.
    pub async fn write_once_under_concurrency(backend: &impl Backend) {
        let bytes = blob(1, UPLOAD_PART + (1 << 20));
        let digest = Sha256Digest::of(&bytes);
        let puts = backend
            .writers(6)
            .into_iter()
            .enumerate()
            .map(|(index, store)| {
                let bytes = bytes.clone();
                tokio::spawn(async move {
                    if index % 2 == 0 {
                        store.put_stream(digest, body(bytes)).await
                    } else {
                        store.put_bytes(digest, bytes).await
                    }
                })
            });
        let mut outcomes = Vec::new();
        for put in futures::future::join_all(puts).await {
            outcomes.push(put.unwrap().expect("every writer succeeds"));
        }
        let stored = outcomes
            .iter()
            .filter(|outcome| **outcome == PutOutcome::Stored)
            .count();
        assert_eq!(stored, 1, "{outcomes:?}");
        assert_eq!(backend.store().get_bytes(digest).await.unwrap(), bytes);
        assert_eq!(backend.visible().await.len(), 1);
        leftovers_cleared(backend, "the writers that lost").await;
        let again = backend
            .store()
            .put_stream(digest, body(bytes))
            .await
            .unwrap();
        assert_eq!(again, PutOutcome::AlreadyPresent);
    }

    /// Tried: bodies whose bytes do not hash to the digest claimed, one small and one of
    /// several parts (so parts were uploaded before the end showed the mismatch), and a
    /// small blob put whole under a wrong digest. Kept: nothing, and each says which digest
    /// the bytes have.
    pub async fn verified_while_streaming(backend: &impl Backend) {
        let claimed = Sha256Digest::of(b"what the client promised");
        for length in [1000, 2 * UPLOAD_PART + 10] {
            let bytes = blob(2, length);
            let error = backend
                .store()
                .put_stream(claimed, body(bytes.clone()))
                .await
                .unwrap_err();
            assert!(
                matches!(error, StorageError::DigestMismatch { expected, actual }
                    if expected == claimed && actual == Sha256Digest::of(&bytes)),
                "{error}"
            );
        }
        let error = backend
            .store()
            .put_bytes(claimed, Bytes::from_static(b"other bytes"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, StorageError::DigestMismatch { .. }),
            "{error}"
        );
        assert!(!backend.store().contains(claimed).await.unwrap());
        assert_eq!(backend.visible().await, Vec::<String>::new());
        leftovers_cleared(backend, "a mismatched body").await;
    }

    /// Tried: a 20 MiB blob, more than two parts. Kept: the blob, read back whole, by its
    /// size, and by ranges at its start, across each part boundary and at its end.
    pub async fn large_blobs_in_parts(backend: &impl Backend) {
        let store = backend.store();
        let bytes = blob(3, 20 << 20);
        let digest = Sha256Digest::of(&bytes);
        assert_eq!(
            store.put_stream(digest, body(bytes.clone())).await.unwrap(),
            PutOutcome::Stored
        );
        assert_eq!(store.size(digest).await.unwrap(), bytes.len() as u64);
        assert_eq!(read_all(store, digest, None).await, bytes);
        let part = UPLOAD_PART as u64;
        let total = bytes.len() as u64;
        for range in [
            0..10,
            part - 5..part + 5,
            2 * part - 1..2 * part + 1,
            total - 7..total,
            0..total,
        ] {
            let read = store.get(digest, Some(range.clone())).await.unwrap();
            assert_eq!(
                (read.total_size, read.range.clone()),
                (total, range.clone())
            );
            assert_eq!(
                read_all(store, digest, Some(range.clone())).await,
                bytes[range.start as usize..range.end as usize],
                "range {range:?}"
            );
        }
        assert_eq!(backend.visible().await.len(), 1);
        leftovers_cleared(backend, "a completed upload").await;
    }

    /// Tried: a body that fails after more than a part was sent (a client that went away,
    /// a disk that failed). Kept: nothing under the key, no upload, and the same blob put
    /// again afterwards is stored whole.
    pub async fn a_failed_body_leaves_nothing(backend: &impl Backend) {
        let bytes = blob(4, UPLOAD_PART + UPLOAD_PART / 2);
        let digest = Sha256Digest::of(&bytes);
        let failing = body(bytes.slice(..UPLOAD_PART + 1024)).chain(stream::iter([Err(
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the client went away"),
        )]));
        let error = backend
            .store()
            .put_stream(digest, failing)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StorageError::Body { source, .. } if source.kind() == std::io::ErrorKind::ConnectionReset),
            "{error}"
        );
        assert!(!backend.store().contains(digest).await.unwrap());
        assert_eq!(backend.visible().await, Vec::<String>::new());
        leftovers_cleared(backend, "a failed body").await;
        let stored = backend
            .store()
            .put_stream(digest, body(bytes.clone()))
            .await
            .unwrap();
        assert_eq!(stored, PutOutcome::Stored);
        assert_eq!(backend.store().get_bytes(digest).await.unwrap(), bytes);
    }

    /// Tried: a put dropped while its body waits, after more than a part was sent (a task
    /// cancelled, a request timed out). Kept: the write was under way (its staging file or
    /// upload existed), and then nothing: no blob under the key, no staging file or upload.
    pub async fn a_dropped_put_leaves_nothing(backend: &impl Backend) {
        let bytes = blob(5, 2 * UPLOAD_PART);
        let digest = Sha256Digest::of(&bytes);
        let (sent, mut all_sent) = tokio::sync::mpsc::channel::<()>(1);
        let stalls = body(bytes.slice(..UPLOAD_PART + 1024)).chain(stream::once(async move {
            let _ = sent.send(()).await;
            futures::future::pending::<std::io::Result<Bytes>>().await
        }));
        let store = backend.store().clone();
        let put = tokio::spawn(async move { store.put_stream(digest, stalls).await });
        all_sent.recv().await.expect("the put reads its body");
        assert!(
            !backend.leftovers().await.is_empty(),
            "a write under way shows as a staging file or an incomplete upload"
        );
        put.abort();
        assert!(put.await.unwrap_err().is_cancelled());
        leftovers_cleared(backend, "a dropped put").await;
        assert!(!backend.store().contains(digest).await.unwrap());
        assert_eq!(backend.visible().await, Vec::<String>::new());
    }

    /// Tried: reading, sizing and probing a blob never stored. Kept: `NotFound` (never a
    /// backend error, never an empty blob) and `contains` false.
    pub async fn a_missing_blob_is_not_found(backend: &impl Backend) {
        let store = backend.store();
        let digest = Sha256Digest::of(b"never stored");
        assert!(!store.contains(digest).await.unwrap());
        for error in [
            store
                .get(digest, None)
                .await
                .err()
                .expect("no blob to read"),
            store.get_bytes(digest).await.unwrap_err(),
            store.size(digest).await.unwrap_err(),
        ] {
            assert!(matches!(error, StorageError::NotFound { .. }), "{error}");
        }
    }

    /// Tried: an empty blob and a one-byte one. Kept: both, read back as they were.
    pub async fn tiny_blobs_round_trip(backend: &impl Backend) {
        let store = backend.store();
        for bytes in [Bytes::new(), Bytes::from_static(b"x")] {
            let digest = Sha256Digest::of(&bytes);
            assert_eq!(
                store.put_stream(digest, body(bytes.clone())).await.unwrap(),
                PutOutcome::Stored
            );
            assert_eq!(store.size(digest).await.unwrap(), bytes.len() as u64);
            assert_eq!(read_all(store, digest, None).await, bytes);
        }
    }

    /// Tried: three blobs stored, one of them twice. Kept: `digests` lists each once, in
    /// order (what `edelweiss migrate --from-data-dir` walks).
    pub async fn digests_list_every_blob(backend: &impl Backend) {
        let store = backend.store();
        let mut expected = Vec::new();
        for seed in [5, 6, 7, 5] {
            let bytes = blob(seed, 1000);
            let digest = Sha256Digest::of(&bytes);
            store.put_stream(digest, body(bytes)).await.unwrap();
            expected.push(digest);
        }
        expected.sort();
        expected.dedup();
        assert_eq!(store.digests().await.unwrap(), expected);
    }
}

/// One `#[tokio::test]` per property of `suite`, over the backend `$backend` opens (None:
/// not available here, which the opener has said).
macro_rules! conformance {
    ($backend:expr) => {
        conformance!(@tests $backend;
            write_once_under_concurrency,
            verified_while_streaming,
            large_blobs_in_parts,
            a_failed_body_leaves_nothing,
            a_dropped_put_leaves_nothing,
            a_missing_blob_is_not_found,
            tiny_blobs_round_trip,
            digests_list_every_blob,
        );
    };
    (@tests $backend:expr; $($property:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $property() {
                if let Some(backend) = $backend {
                    crate::suite::$property(&backend).await;
                }
            }
        )*
    };
}

mod fs {
    use super::*;

    pub struct Filesystem {
        store: BlobStore,
        root: tempfile::TempDir,
    }

    impl Filesystem {
        pub fn open() -> Option<Self> {
            let root = tempfile::tempdir().unwrap();
            let url = url::Url::from_directory_path(root.path()).unwrap();
            let store = BlobStore::open(url.as_str()).unwrap();
            Some(Self { store, root })
        }

        /// Every file under the store, as a path relative to it.
        fn files(&self) -> Vec<String> {
            let mut found = Vec::new();
            let mut stack = vec![self.root.path().to_path_buf()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else {
                        let relative = path.strip_prefix(self.root.path()).unwrap();
                        found.push(relative.display().to_string());
                    }
                }
            }
            found.sort();
            found
        }
    }

    impl Backend for Filesystem {
        fn store(&self) -> &BlobStore {
            &self.store
        }

        fn writers(&self, count: usize) -> Vec<BlobStore> {
            vec![self.store.clone(); count]
        }

        /// object_store's staging files, `<key>#<n>`.
        async fn leftovers(&self) -> Vec<String> {
            self.files()
                .into_iter()
                .filter(|file| file.contains('#'))
                .collect()
        }

        async fn visible(&self) -> Vec<String> {
            self.files()
                .into_iter()
                .filter(|file| !file.contains('#'))
                .collect()
        }
    }

    conformance!(Filesystem::open());

    /// Tried: a staging file a killed write left, then a sweep from a start after it.
    /// Kept: the committed blob; the staging file is gone.
    #[tokio::test]
    async fn a_sweep_removes_what_a_killed_write_left() {
        let backend = Filesystem::open().unwrap();
        let bytes = blob(6, 1000);
        let digest = Sha256Digest::of(&bytes);
        backend.store.put_bytes(digest, bytes).await.unwrap();
        let committed = backend.files().pop().unwrap();
        std::fs::write(backend.root.path().join(format!("{committed}#1")), b"half").unwrap();
        assert_eq!(backend.leftovers().await.len(), 1);
        let swept = backend
            .store
            .sweep_partial_writes(std::time::SystemTime::now() + Duration::from_secs(1))
            .unwrap();
        assert_eq!((swept.files, swept.bytes), (1, 4));
        assert_eq!(backend.files(), [committed]);
    }
}

mod s3 {
    use super::*;
    use common::s3::S3Server;

    pub struct S3 {
        server: &'static S3Server,
        prefix: String,
        store: BlobStore,
    }

    impl S3 {
        /// A store under a prefix of its own in the shared test server's bucket.
        pub fn open() -> Option<Self> {
            let server = S3Server::shared()?;
            let prefix = format!("conformance-{}", uuid::Uuid::new_v4());
            let store = Self::open_store(server, &prefix);
            Some(Self {
                server,
                prefix,
                store,
            })
        }

        fn open_store(server: &S3Server, prefix: &str) -> BlobStore {
            BlobStore::open_with_env(&server.storage_url(prefix), server.env()).unwrap()
        }
    }

    impl Backend for S3 {
        fn store(&self) -> &BlobStore {
            &self.store
        }

        fn writers(&self, count: usize) -> Vec<BlobStore> {
            (0..count)
                .map(|_| Self::open_store(self.server, &self.prefix))
                .collect()
        }

        async fn leftovers(&self) -> Vec<String> {
            self.server.incomplete_uploads(&self.prefix).await
        }

        async fn visible(&self) -> Vec<String> {
            self.server.objects(&self.prefix).await
        }
    }

    conformance!(S3::open());

    /// Tried: a store whose prefix is `a/b` and one at the same bucket's `a`. Kept: a blob of
    /// the first under `a/b/sha256/…`, which the second does not see as its blob.
    #[tokio::test]
    async fn the_url_path_is_the_key_prefix() {
        let Some(backend) = S3::open() else { return };
        let nested = format!("{}/nested", backend.prefix);
        let store = S3::open_store(backend.server, &nested);
        let bytes = Bytes::from_static(b"prefixed");
        let digest = Sha256Digest::of(&bytes);
        store.put_bytes(digest, bytes).await.unwrap();
        let hex = digest.to_hex();
        assert_eq!(
            backend.visible().await,
            [format!(
                "{nested}/sha256/{}/{}/{hex}",
                &hex[..2],
                &hex[2..4]
            )]
        );
        assert!(!backend.store.contains(digest).await.unwrap());
    }

    /// Tried: a store whose endpoint refuses connections. Kept: every read and write fails
    /// as a backend error, never as a missing blob (a miss would start a download or a
    /// build), within seconds.
    #[tokio::test]
    async fn an_unreachable_store_is_a_backend_error_not_a_miss() {
        let Some(server) = S3Server::shared() else {
            return;
        };
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let env = server.env().into_iter().map(|(name, value)| {
            let value = if name == "AWS_ENDPOINT_URL" {
                format!("http://127.0.0.1:{port}")
            } else {
                value
            };
            (name, value)
        });
        let store = BlobStore::open_with_env(&server.storage_url("unreachable"), env).unwrap();
        let bytes = Bytes::from_static(b"unreachable");
        let digest = Sha256Digest::of(&bytes);
        let errors = [
            store.contains(digest).await.unwrap_err(),
            store.get(digest, None).await.err().expect("no read"),
            store.size(digest).await.unwrap_err(),
            store.put_bytes(digest, bytes.clone()).await.unwrap_err(),
            store.put_stream(digest, body(bytes)).await.unwrap_err(),
        ];
        for error in errors {
            assert!(matches!(error, StorageError::Backend { .. }), "{error}");
        }
    }
}

/// The whole service on S3: the real server with `storage_url = "s3://…"`, real twine,
/// pip and uv.
mod service_on_s3 {
    use super::*;
    use common::s3::S3Server;
    use common::server::{TestServer, base_config};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Tried: twine uploads of wheels and an sdist, pip downloading and installing them back
    /// through /simple/, uv resolving from their metadata files, and a restart. Kept: every
    /// file in the bucket under the configured prefix (none in the data dir), served whole
    /// before and after the restart.
    #[test]
    fn uploads_are_stored_in_s3_and_installed_back_with_pip() {
        let Some(s3) = S3Server::shared() else { return };
        let prefix = format!("service-{}", uuid::Uuid::new_v4());
        let config = base_config(
            &format!("storage_url = \"{}\"", s3.storage_url(&prefix)),
            "",
        );
        let mut server = TestServer::start_with_env(&config, s3.env());
        let work = tempfile::tempdir().unwrap();
        common::scenarios::upload_then_install_for_musl(&server, work.path());

        let stored = runtime().block_on(s3.objects(&prefix));
        let wheel = work.path().join("uploads/purelib-2.0-py3-none-any.whl");
        let digest = common::sha256_hex(&std::fs::read(&wheel).unwrap());
        assert!(
            stored.iter().any(|key| key.ends_with(&digest)),
            "the wheel is not in the bucket under {prefix}: {stored:?}"
        );
        assert_eq!(
            server.blobs(),
            Vec::<String>::new(),
            "blobs written locally"
        );

        for round in ["before", "after"] {
            let target = work.path().join(format!("installed-{round}"));
            let mut pip = common::tool("pip");
            pip.args(["install", "--no-deps", "--target"])
                .arg(&target)
                .args(["--index-url", &server.index_url(), "purelib==2.0"]);
            common::assert_success(&mut pip);
            let module = std::fs::read_to_string(target.join("purelib/__init__.py")).unwrap();
            assert_eq!(module, "VERSION = \"2.0\"\n", "{round} the restart");
            if round == "before" {
                server = server.restart();
            }
        }
    }

    /// Tried: SIGKILL while the blob of a 24 MiB upload is being written to S3 (its multipart
    /// upload begun, not completed), then a restart. Kept: nothing visible: no object under
    /// the blob's key, the file not listed; the killed write's incomplete upload stays in
    /// the bucket, invisible, until the bucket's lifecycle rule aborts it. The same upload
    /// afterwards is stored and served whole.
    #[test]
    fn a_crash_mid_write_leaves_nothing_visible_in_s3() {
        let Some(s3) = S3Server::shared() else { return };
        let prefix = format!("crash-{}", uuid::Uuid::new_v4());
        let config = base_config(
            &format!("storage_url = \"{}\"", s3.storage_url(&prefix)),
            "",
        );
        let runtime = runtime();
        let mut server = TestServer::start_with_env(&config, s3.env());
        let work = tempfile::tempdir().unwrap();
        let mut large = common::dists::WheelSpec::new("huge", "1.0", "py3-none-any");
        large
            .files
            .push(("huge/noise.bin".to_string(), common::dists::noise(24 << 20)));
        large.stored = true;
        let wheel = large.write(work.path());
        let digest = common::sha256_hex(&std::fs::read(&wheel).unwrap());

        let mut twine = common::tool("twine");
        twine
            .args(["upload", "--disable-progress-bar", "--non-interactive"])
            .args(["--repository-url", &format!("{}/legacy/", server.url)])
            .args(["-u", "__token__", "-p", common::UPLOAD_TOKEN])
            .arg(&wheel)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut uploading = twine.spawn().unwrap();
        let writing = common::polled(Duration::from_secs(120), Duration::from_millis(10), || {
            let uploads = runtime.block_on(s3.incomplete_uploads(&prefix));
            uploads
                .iter()
                .any(|key| key.ends_with(&digest))
                .then_some(())
        });
        assert!(
            writing.is_some(),
            "the blob write never started:\n{}",
            server.log()
        );
        server.kill();
        let _ = uploading.kill();
        let _ = uploading.wait();

        server = server.restart();
        let objects = runtime.block_on(s3.objects(&prefix));
        assert!(
            !objects.iter().any(|key| key.ends_with(&digest)),
            "the killed write is visible: {objects:?}"
        );
        assert_eq!(
            server.get("/simple/huge/").status(),
            404,
            "the killed upload is listed"
        );
        assert!(
            runtime
                .block_on(s3.incomplete_uploads(&prefix))
                .iter()
                .any(|key| key.ends_with(&digest)),
            "the killed write's incomplete upload is kept by S3 until aborted"
        );

        let output = server.twine_upload(&[wheel.as_path()]);
        assert!(output.status.success(), "{}", common::text(&output));
        assert_eq!(
            common::sha256_hex(&server.listed_file("huge", "huge-1.0-py3-none-any.whl")),
            digest
        );
    }
}
