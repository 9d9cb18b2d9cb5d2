//! One behaviour, every backend: each test body below runs against sled (a temporary
//! database) and against PostgreSQL (a fresh database on the test server of `.ci/setup`).
//! A new backend joins by adding a module to `backends!`.

use std::time::Duration;

use super::{
    CachedPage, ExtractedMetadata, Extraction, FetchKey, MirrorStore, PostgresMirrorStore,
    Revalidation, SledMirrorStore, UpstreamFile,
};
use crate::pypi::simple::{CoreMetadataRef, FileDetail, Meta, ProjectDetail, Yanked};
use crate::pypi::{PackageName, Sha256Digest};

const UPSTREAM: &str = "https://pypi.example/simple/";

pub(super) fn project(name: &str) -> PackageName {
    name.parse().unwrap()
}

/// The upstream URL of `filename`, whose sha256 is that of its name.
fn file(filename: &str) -> FileDetail {
    let mut file = FileDetail::new(filename, format!("https://files.example/{filename}"));
    let digest = Sha256Digest::of(filename.as_bytes()).to_hex();
    file.hashes.insert("sha256".into(), digest);
    file
}

/// A page of `name` fetched at 1 that lists `files`.
pub(super) fn page(name: &str, files: &[&str]) -> CachedPage {
    CachedPage {
        upstream: UPSTREAM.into(),
        fetched_at: 1,
        etag: Some(format!("\"{name}-1\"")),
        last_modified: Some("Tue, 01 Dec 2026 10:00:00 GMT".into()),
        detail: ProjectDetail {
            meta: Meta::default(),
            name: name.into(),
            versions: vec!["1.0".into()],
            files: files.iter().map(|filename| file(filename)).collect(),
        },
    }
}

async fn origin_url(store: &dyn MirrorStore, filename: &str) -> Option<String> {
    let digest = Sha256Digest::of(filename.as_bytes());
    let origin = store.upstream_file(digest, filename).await.unwrap();
    origin.map(|origin| origin.url)
}

fn stored(wheel: &str, metadata: &str) -> ExtractedMetadata {
    ExtractedMetadata {
        wheel_sha256: Sha256Digest::of(wheel.as_bytes()),
        outcome: Extraction::Stored {
            metadata_sha256: Sha256Digest::of(metadata.as_bytes()),
        },
    }
}

async fn a_page_is_read_back_with_its_validators(store: &dyn MirrorStore) {
    let demo = project("demo");
    assert_eq!(store.page(&demo).await.unwrap(), None);
    let mut page = page("demo", &["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]);
    page.detail.files[0].core_metadata =
        CoreMetadataRef::sha256(&Sha256Digest::of(b"METADATA").to_hex());
    page.detail.files[1].yanked = Yanked::Reason("broken".into());
    page.detail.files[1].size = Some(42);
    page.detail.files[1].requires_python = Some(">=3.9".into());
    store.put_page(&demo, &page).await.unwrap();
    assert_eq!(store.page(&demo).await.unwrap(), Some(page.clone()));

    let newer = CachedPage {
        fetched_at: 2,
        etag: None,
        last_modified: None,
        ..page
    };
    store.put_page(&demo, &newer).await.unwrap();
    assert_eq!(store.page(&demo).await.unwrap(), Some(newer));
}

async fn touching_a_page_changes_its_validators_not_its_detail(store: &dyn MirrorStore) {
    let demo = project("demo");
    let wheel = "demo-1.0-py3-none-any.whl";
    let page = page("demo", &[wheel]);
    store.put_page(&demo, &page).await.unwrap();
    let revalidation = Revalidation {
        fetched_at: 1_000,
        etag: Some("\"demo-2\"".into()),
        last_modified: None,
    };
    assert!(store.touch_page(&demo, &revalidation).await.unwrap());

    let touched = store.page(&demo).await.unwrap().expect("still cached");
    assert_eq!(
        (touched.fetched_at, touched.etag, touched.last_modified),
        (1_000, Some("\"demo-2\"".into()), None)
    );
    assert_eq!(
        (touched.upstream, touched.detail),
        (page.upstream, page.detail)
    );
    assert!(origin_url(store, wheel).await.is_some());

    let other = project("other");
    assert!(!store.touch_page(&other, &revalidation).await.unwrap());
    assert_eq!(store.page(&other).await.unwrap(), None);
}

async fn a_page_for_one_project_never_affects_another(store: &dyn MirrorStore) {
    let (demo, other) = (project("demo"), project("demo-other"));
    let other_page = page("demo-other", &["demo_other-1.0.tar.gz"]);
    store.put_page(&other, &other_page).await.unwrap();
    store
        .put_page(&demo, &page("demo", &["demo-1.0.tar.gz"]))
        .await
        .unwrap();
    store
        .put_page(&demo, &page("demo", &["demo-2.0.tar.gz"]))
        .await
        .unwrap();
    let revalidation = Revalidation {
        fetched_at: 9,
        etag: None,
        last_modified: None,
    };
    store.touch_page(&demo, &revalidation).await.unwrap();

    assert_eq!(store.page(&other).await.unwrap(), Some(other_page));
    assert!(origin_url(store, "demo_other-1.0.tar.gz").await.is_some());
    assert_eq!(
        origin_url(store, "demo-1.0.tar.gz").await,
        None,
        "a page replaced drops the origins of the files it no longer lists"
    );
    assert!(origin_url(store, "demo-2.0.tar.gz").await.is_some());
}

async fn origins_are_found_by_digest_and_filename(store: &dyn MirrorStore) {
    let wheel = "demo-1.0-py3-none-any.whl";
    let metadata = Sha256Digest::of(b"METADATA");
    let mut page = page("demo", &[wheel, "demo-1.0.tar.gz", "demo-0.9.tar.gz"]);
    page.detail.files[0].core_metadata = CoreMetadataRef::sha256(&metadata.to_hex());
    page.detail.files[2].hashes.clear();
    store.put_page(&project("demo"), &page).await.unwrap();

    let digest = Sha256Digest::of(wheel.as_bytes());
    assert_eq!(
        store.upstream_file(digest, wheel).await.unwrap(),
        Some(UpstreamFile {
            upstream: UPSTREAM.into(),
            url: format!("https://files.example/{wheel}"),
            metadata_sha256: Some(metadata),
        })
    );
    let sdist = store.upstream_file(Sha256Digest::of(b"demo-1.0.tar.gz"), "demo-1.0.tar.gz");
    assert_eq!(sdist.await.unwrap().unwrap().metadata_sha256, None);
    let other_bytes = Sha256Digest::of(b"other bytes");
    assert_eq!(store.upstream_file(other_bytes, wheel).await.unwrap(), None);
    assert_eq!(
        store
            .upstream_file(digest, "demo-1.0.tar.gz")
            .await
            .unwrap(),
        None
    );
    for unlisted in ["demo-2.0.tar.gz", "demo-0.9.tar.gz", "not a distribution"] {
        assert_eq!(origin_url(store, unlisted).await, None, "{unlisted}");
    }
}

async fn extracted_metadata_is_stored_or_refused(store: &dyn MirrorStore) {
    let demo = project("demo");
    let (wheel, refused_wheel) = ("demo-1.0-py3-none-any.whl", "demo-1.0-cp313-abi3-any.whl");
    let record = stored(wheel, "METADATA");
    store.put_extracted(&demo, wheel, &record).await.unwrap();
    let refused = ExtractedMetadata {
        wheel_sha256: Sha256Digest::of(refused_wheel.as_bytes()),
        outcome: Extraction::Refused {
            reason: "no .dist-info/METADATA".into(),
        },
    };
    store
        .put_extracted(&demo, refused_wheel, &refused)
        .await
        .unwrap();

    let wheel_sha256 = Sha256Digest::of(wheel.as_bytes());
    let found = store.extracted(&demo, wheel, wheel_sha256).await.unwrap();
    assert_eq!(found, Some(record));
    let found = store.extracted(&demo, refused_wheel, refused.wheel_sha256);
    assert_eq!(found.await.unwrap(), Some(refused.clone()));
    let other_bytes = Sha256Digest::of(b"other bytes");
    let found = store.extracted(&demo, wheel, other_bytes).await.unwrap();
    assert_eq!(
        found, None,
        "a record for other bytes says nothing of these"
    );
    let unrecorded = store.extracted(&demo, "demo-2.0-py3-none-any.whl", wheel_sha256);
    assert_eq!(unrecorded.await.unwrap(), None);

    let replaced = stored(wheel, "METADATA, read again");
    store.put_extracted(&demo, wheel, &replaced).await.unwrap();
    let found = store.extracted(&demo, wheel, wheel_sha256).await.unwrap();
    assert_eq!(found, Some(replaced));
}

async fn extracted_for_project_returns_the_projects_few(store: &dyn MirrorStore) {
    let (demo, longer) = (project("demo"), project("demo-tools"));
    let demo_wheels = ["demo-1.0-py3-none-any.whl", "demo-2.0-py3-none-any.whl"];
    for wheel in demo_wheels {
        let record = stored(wheel, wheel);
        store.put_extracted(&demo, wheel, &record).await.unwrap();
    }
    let longer_wheel = "demo_tools-1.0-py3-none-any.whl";
    let record = stored(longer_wheel, "tools");
    store
        .put_extracted(&longer, longer_wheel, &record)
        .await
        .unwrap();

    let found = store.extracted_for_project(&demo).await.unwrap();
    let mut filenames: Vec<&str> = found.keys().map(String::as_str).collect();
    filenames.sort();
    assert_eq!(filenames, demo_wheels);
    assert_eq!(
        found[demo_wheels[1]],
        stored(demo_wheels[1], demo_wheels[1])
    );
    let found = store.extracted_for_project(&longer).await.unwrap();
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        [(longer_wheel.to_string(), record)]
    );
    let none = store.extracted_for_project(&project("nothing")).await;
    assert!(none.unwrap().is_empty());
}

/// Two replicas' turns are the PostgreSQL backend's own tests (`advisory`); every backend
/// gives a lock that is taken again once dropped, and does not hold up other keys.
async fn a_fetch_lock_is_taken_again_once_dropped(store: &dyn MirrorStore) {
    let wait = Duration::from_secs(60);
    let page = FetchKey::Page(project("demo"));
    let file = FetchKey::File(Sha256Digest::of(b"demo-1.0.tar.gz"));
    let held = store.fetch_lock(&page, wait).await.unwrap();
    let other = store.fetch_lock(&file, wait).await.unwrap();
    drop((held, other));
    let again = store.fetch_lock(&page, wait).await.unwrap();
    drop(again);
}

macro_rules! backends {
    ($($test:ident),* $(,)?) => {
        mod sled {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = ::sled::Config::new().temporary(true).open().unwrap();
                    super::$test(&super::SledMirrorStore::open(&db).unwrap()).await;
                }
            )*
        }

        mod postgres {
            use crate::postgres::testing::TestDatabase;
            $(
                #[tokio::test]
                async fn $test() {
                    let Some(database) = TestDatabase::create().await else {
                        return;
                    };
                    let store = super::PostgresMirrorStore::open(&database.url).await.unwrap();
                    super::$test(&store).await;
                    drop(store);
                    database.remove().await;
                }
            )*
        }
    };
}

backends!(
    a_page_is_read_back_with_its_validators,
    touching_a_page_changes_its_validators_not_its_detail,
    a_page_for_one_project_never_affects_another,
    origins_are_found_by_digest_and_filename,
    extracted_metadata_is_stored_or_refused,
    extracted_for_project_returns_the_projects_few,
    a_fetch_lock_is_taken_again_once_dropped,
);
