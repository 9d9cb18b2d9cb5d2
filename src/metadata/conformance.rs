//! One behaviour, every backend: each test body below runs against sled (a temporary
//! database) and against PostgreSQL (a fresh database on the test server of `.ci/setup`).
//! A new backend joins by adding a module to `backends!`.

use super::{
    FileKind, FileOrigin, FileRecord, IndexError, IndexStore, InsertOutcome, PostgresIndexStore,
    SledIndex,
};
use crate::pypi::{DistFilename, PackageName, Sha256Digest, parse_package_name};

fn record(filename: &str, content: &[u8]) -> FileRecord {
    let parsed: DistFilename = filename.parse().unwrap();
    FileRecord {
        project: parsed.name().to_string(),
        filename: filename.into(),
        version: parsed.version().to_string(),
        kind: match parsed {
            DistFilename::Wheel(_) => FileKind::Wheel,
            DistFilename::Sdist(_) => FileKind::Sdist,
        },
        sha256: Sha256Digest::of(content),
        size: content.len() as u64,
        upload_time: "2026-01-01T00:00:00Z".into(),
        requires_python: Some(">=3.9".into()),
        metadata_sha256: Some(Sha256Digest::of(b"METADATA")),
        yanked: None,
        origin: FileOrigin::Uploaded,
    }
}

fn name(text: &str) -> PackageName {
    parse_package_name(text).unwrap()
}

async fn insert(store: &dyn IndexStore, record: &FileRecord) -> Result<InsertOutcome, IndexError> {
    let filename: DistFilename = record.filename.parse().unwrap();
    store.insert_file(&filename, record, "Demo").await
}

/// The conflict `record` meets, as (the file held, its digest, same content).
async fn conflict_of(store: &dyn IndexStore, record: &FileRecord) -> (String, Sha256Digest, bool) {
    match insert(store, record).await {
        Err(IndexError::Conflict {
            filename,
            held,
            existing,
            same_content,
        }) => {
            assert_eq!(filename, record.filename);
            (held, existing, same_content)
        }
        other => panic!("{}: expected a conflict, got {other:?}", record.filename),
    }
}

async fn a_file_reads_back_as_inserted(store: &dyn IndexStore) {
    let wheel = record("demo-1.0-py3-none-any.whl", b"wheel");
    let sdist = record("demo-1.0.tar.gz", b"sdist");
    assert_eq!(
        insert(store, &wheel).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(
        insert(store, &sdist).await.unwrap(),
        InsertOutcome::Inserted
    );
    let demo = name("demo");
    assert_eq!(
        store.files(&demo).await.unwrap(),
        vec![wheel.clone(), sdist.clone()]
    );
    assert_eq!(
        store.file(&demo, &sdist.filename).await.unwrap(),
        Some(sdist.clone())
    );
    assert_eq!(store.file(&demo, "demo-2.0.tar.gz").await.unwrap(), None);
    assert_eq!(store.files(&name("other")).await.unwrap(), vec![]);
    assert_eq!(store.file_count().await.unwrap(), 2);
    store.ping().await.unwrap();
}

async fn other_bytes_under_a_taken_filename_conflict(store: &dyn IndexStore) {
    let held = record("demo-1.0-py3-none-any.whl", b"one");
    insert(store, &held).await.unwrap();
    let other = record("demo-1.0-py3-none-any.whl", b"two");
    let (held_name, existing, same_content) = conflict_of(store, &other).await;
    assert_eq!(
        (held_name.as_str(), existing, same_content),
        ("demo-1.0-py3-none-any.whl", held.sha256, false)
    );
    let message = insert(store, &other).await.unwrap_err().to_string();
    assert!(message.contains("a filename is never reused"), "{message}");
    assert_eq!(store.files(&name("demo")).await.unwrap(), vec![held]);
}

async fn another_spelling_of_a_held_file_conflicts(store: &dyn IndexStore) {
    let held = record("demo-1.0-py3-none-any.whl", b"one");
    insert(store, &held).await.unwrap();
    for (filename, content) in [
        ("Demo-1.0.0-py3-none-any.whl", &b"two"[..]),
        ("DEMO-1.0-py3-none-any.whl", &b"one"[..]),
    ] {
        let (held_name, existing, same_content) =
            conflict_of(store, &record(filename, content)).await;
        assert_eq!(held_name, "demo-1.0-py3-none-any.whl");
        assert_eq!(existing, held.sha256);
        assert_eq!(same_content, content == b"one");
    }
    let message = insert(store, &record("Demo-1.0.0-py3-none-any.whl", b"two"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("is the same file as demo-1.0-py3-none-any.whl"),
        "{message}"
    );
    let other_tags = record("demo-1.0-py2.py3-none-any.whl", b"three");
    assert_eq!(
        insert(store, &other_tags).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(
        store.files(&name("demo")).await.unwrap(),
        vec![other_tags, held]
    );
}

async fn the_same_bytes_again_are_already_present(store: &dyn IndexStore) {
    let first = record("demo-1.0-py3-none-any.whl", b"one");
    assert_eq!(
        insert(store, &first).await.unwrap(),
        InsertOutcome::Inserted
    );
    let retried = FileRecord {
        upload_time: "2026-02-02T00:00:00Z".into(),
        ..first.clone()
    };
    assert_eq!(
        insert(store, &retried).await.unwrap(),
        InsertOutcome::AlreadyPresent
    );
    assert_eq!(store.files(&name("demo")).await.unwrap(), vec![first]);
    assert_eq!(store.file_count().await.unwrap(), 1);
}

async fn a_file_is_yanked_and_restored(store: &dyn IndexStore) {
    let file = record("demo-1.0-py3-none-any.whl", b"one");
    insert(store, &file).await.unwrap();
    let demo = name("demo");
    for reason in [Some("broken on 3.13"), Some(""), None] {
        let reason = reason.map(str::to_string);
        let changed = store
            .set_yanked(&demo, &file.filename, reason.clone())
            .await
            .unwrap();
        let expected = FileRecord {
            yanked: reason,
            ..file.clone()
        };
        assert_eq!(changed, expected);
        assert_eq!(
            store.file(&demo, &file.filename).await.unwrap(),
            Some(expected)
        );
    }
    let missing = store
        .set_yanked(&demo, "demo-2.0.tar.gz", Some(String::new()))
        .await;
    assert!(
        matches!(missing, Err(IndexError::FileNotFound { ref filename, .. }) if filename == "demo-2.0.tar.gz"),
        "{missing:?}"
    );
}

async fn projects_are_listed_with_their_first_display_name(store: &dyn IndexStore) {
    let zebra = record("zebra-1.0.tar.gz", b"zebra");
    let filename: DistFilename = zebra.filename.parse().unwrap();
    store.insert_file(&filename, &zebra, "Zebra").await.unwrap();
    let built = FileRecord {
        origin: FileOrigin::Built,
        ..record("my_tool-1.0-py3-none-any.whl", b"built")
    };
    let filename: DistFilename = built.filename.parse().unwrap();
    store
        .insert_file(&filename, &built, "My.Tool")
        .await
        .unwrap();
    let my_tool = name("My.Tool");
    let project = store.project(&my_tool).await.unwrap().unwrap();
    assert_eq!(
        (project.display_name.as_str(), project.uploaded),
        ("My.Tool", false)
    );
    let uploaded = record("my_tool-1.0.tar.gz", b"uploaded");
    let filename: DistFilename = uploaded.filename.parse().unwrap();
    store
        .insert_file(&filename, &uploaded, "my-tool")
        .await
        .unwrap();
    let listed: Vec<(String, String, bool)> = (store.projects().await.unwrap().into_iter())
        .map(|project| (project.name, project.display_name, project.uploaded))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("my-tool".into(), "My.Tool".into(), true),
            ("zebra".into(), "Zebra".into(), true),
        ]
    );
    assert_eq!(store.project(&name("absent")).await.unwrap(), None);
}

async fn a_file_is_found_by_digest_and_filename(store: &dyn IndexStore) {
    let wheel = record("demo-1.0-py3-none-any.whl", b"one");
    let sdist = record("demo-1.0.tar.gz", b"one");
    insert(store, &wheel).await.unwrap();
    insert(store, &sdist).await.unwrap();
    let found = store.file_by_digest(wheel.sha256, &wheel.filename).await;
    assert_eq!(found.unwrap(), Some(wheel.clone()));
    let found = store.file_by_digest(sdist.sha256, &sdist.filename).await;
    assert_eq!(found.unwrap(), Some(sdist));
    let other_digest = Sha256Digest::of(b"two");
    let found = store.file_by_digest(other_digest, &wheel.filename).await;
    assert_eq!(found.unwrap(), None);
    let found = store.file_by_digest(wheel.sha256, "demo-2.0.tar.gz").await;
    assert_eq!(found.unwrap(), None);
}

async fn the_same_file_is_found_under_any_spelling(store: &dyn IndexStore) {
    let held = record("demo-1.0-py3-none-any.whl", b"one");
    insert(store, &held).await.unwrap();
    for spelling in [
        "demo-1.0-py3-none-any.whl",
        "Demo-1.0.0-py3-none-any.whl",
        "DEMO-1.0-py3-none-any.whl",
    ] {
        let filename: DistFilename = spelling.parse().unwrap();
        let found = store.same_file(&filename).await.unwrap();
        assert_eq!(found.as_ref(), Some(&held), "{spelling}");
    }
    for other in [
        "demo-1.0-py2.py3-none-any.whl",
        "demo-1.0-1-py3-none-any.whl",
        "demo-1.0.1-py3-none-any.whl",
        "demo-1.0.tar.gz",
        "other-1.0-py3-none-any.whl",
    ] {
        let filename: DistFilename = other.parse().unwrap();
        assert_eq!(store.same_file(&filename).await.unwrap(), None, "{other}");
    }
}

/// Contenders per identity, and identities raced at once.
const CONTENDERS: usize = 4;
const RACES: usize = 6;

/// Races `CONTENDERS` inserts of each of `RACES` identities of `project`: half retry one
/// upload, half spell the same file otherwise, with other bytes. Each insert runs on its
/// own blocking thread (sled) or connection (PostgreSQL). How many of each race were
/// `Inserted`; any other outcome than held (already present or a conflict) fails.
async fn race_inserts(store: &dyn IndexStore, project: &str) -> [usize; RACES] {
    let mut contenders = Vec::new();
    for race in 0..RACES {
        for contender in 0..CONTENDERS {
            let (filename, content) = match contender % 2 {
                0 => (format!("{project}-{race}.0.tar.gz"), b"same".to_vec()),
                _ => (
                    format!("{project}-{race}.0{}.tar.gz", ".0".repeat(contender)),
                    format!("other {contender}").into_bytes(),
                ),
            };
            contenders.push((race, record(&filename, &content)));
        }
    }
    let outcomes = futures::future::join_all(
        (contenders.iter())
            .map(|(race, record)| async move { (*race, insert(store, record).await) }),
    )
    .await;
    let mut inserted = [0; RACES];
    for (race, outcome) in outcomes {
        match outcome {
            Ok(InsertOutcome::Inserted) => inserted[race] += 1,
            Ok(InsertOutcome::AlreadyPresent) | Err(IndexError::Conflict { .. }) => {}
            Err(error) => panic!("{project} race {race}: {error}"),
        }
    }
    inserted
}

/// Of concurrent inserts of one identity, exactly one is `Inserted`; the others see it
/// held. Raced into a new project (whose record the inserts create) and into one held.
async fn concurrent_inserts_of_one_identity_insert_once(store: &dyn IndexStore) {
    assert_eq!(race_inserts(store, "fresh").await, [1; RACES]);
    insert(store, &record("held-99.0.tar.gz", b"held"))
        .await
        .unwrap();
    assert_eq!(race_inserts(store, "held").await, [1; RACES]);
    assert_eq!(store.files(&name("fresh")).await.unwrap().len(), RACES);
    assert_eq!(store.files(&name("held")).await.unwrap().len(), RACES + 1);
    assert_eq!(store.file_count().await.unwrap(), 2 * RACES as u64 + 1);
}

macro_rules! backends {
    ($($test:ident),* $(,)?) => {
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let directory = tempfile::tempdir().unwrap();
                    let store = super::SledIndex::open(directory.path(), 1 << 20).unwrap();
                    super::$test(&store).await;
                }
            )*
        }

        mod postgres {
            use crate::postgres::testing::TestDatabase;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(database) = TestDatabase::create().await else {
                        return;
                    };
                    let store = super::PostgresIndexStore::open(&database.url).await.unwrap();
                    super::$test(&store).await;
                    drop(store);
                    database.remove().await;
                }
            )*
        }
    };
}

backends!(
    a_file_reads_back_as_inserted,
    other_bytes_under_a_taken_filename_conflict,
    another_spelling_of_a_held_file_conflicts,
    the_same_bytes_again_are_already_present,
    a_file_is_yanked_and_restored,
    projects_are_listed_with_their_first_display_name,
    a_file_is_found_by_digest_and_filename,
    the_same_file_is_found_under_any_spelling,
    concurrent_inserts_of_one_identity_insert_once,
);
