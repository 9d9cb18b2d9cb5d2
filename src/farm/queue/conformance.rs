//! One behaviour, every backend: each test body below runs against the in-memory queue,
//! against sled (a temporary database) and against PostgreSQL (a fresh database on the
//! test server of `.ci/setup`). A new backend joins by adding a module to
//! `backends!`.

use super::memory::MemoryBuildQueue;
use super::{
    BuildQueue, Needs, Outcome, PostgresBuildQueue, QueueError, Released, Requested,
    SledBuildQueue, needs_of, record_result, waits_for_any,
};
use crate::auth::CredentialId;
use crate::farm::BuildKey;
use crate::farm::records::{
    BuildRecord, BuildState, BuiltWheel, Failure, FailureKind, LeaseHolder, timestamp,
};
use crate::pypi::Sha256Digest;

const TARGET: &str = "cp313-musllinux_1_2_x86_64";

pub(super) fn candidate(id: &str, key: &str) -> BuildRecord {
    BuildRecord {
        id: id.to_string(),
        key: BuildKey::labelled(key),
        project: format!("project-{id}").parse().unwrap(),
        version: "1.0".parse().unwrap(),
        target: TARGET.parse().unwrap(),
        sdist_filename: format!("project-{id}-1.0.tar.gz"),
        sdist_sha256: Sha256Digest::of(id.as_bytes()),
        builder: "builder".to_string(),
        state: BuildState::Queued,
        lease: None,
        attempts: 0,
        failure: None,
        wheel: None,
        queued_at: timestamp(),
        started_at: None,
        finished_at: None,
        log_sha256: None,
        build_requirements: None,
        needs: Vec::new(),
        crates: None,
    }
}

fn waiting_on(id: &str, key: &str, needs: &[&str]) -> BuildRecord {
    BuildRecord {
        state: BuildState::Waiting,
        needs: needs.iter().map(ToString::to_string).collect(),
        ..candidate(id, key)
    }
}

fn wheel(id: &str) -> BuiltWheel {
    BuiltWheel {
        filename: format!("project_{id}-1.0-cp313-cp313-musllinux_1_2_x86_64.whl"),
        sha256: Sha256Digest::of(format!("wheel {id}").as_bytes()),
    }
}

fn credential(hex: char) -> CredentialId {
    CredentialId::try_from(hex.to_string().repeat(16)).expect("16 hex digits")
}

/// Leases the next build for `worker`, which must be `id`.
async fn lease_expecting(queue: &dyn BuildQueue, worker: &LeaseHolder, id: &str) -> BuildRecord {
    let leased = queue.lease(worker, &[], 600).await.unwrap();
    let leased = leased.expect("a queued build");
    assert_eq!(leased.id, id);
    assert_eq!(leased.state, BuildState::Running);
    leased
}

async fn state_of(queue: &dyn BuildQueue, id: &str) -> BuildState {
    queue.get(id).await.unwrap().expect("recorded").state
}

async fn waiting_ids(queue: &dyn BuildQueue) -> Vec<String> {
    let mut ids: Vec<String> = (queue.waiting().await.unwrap().into_iter())
        .map(|record| record.id)
        .collect();
    ids.sort();
    ids
}

async fn a_second_request_for_a_key_joins_the_first(queue: &dyn BuildQueue) {
    let (first, requested) = queue.request(candidate("a", "k")).await.unwrap();
    assert_eq!((first.id.as_str(), requested), ("a", Requested::Queued));
    let (joined, requested) = queue.request(candidate("b", "k")).await.unwrap();
    assert_eq!((joined.id.as_str(), requested), ("a", Requested::Joined));
    assert!(queue.get("b").await.unwrap().is_none());

    let worker = LeaseHolder::local("w");
    lease_expecting(queue, &worker, "a").await;
    assert!(queue.lease(&worker, &[], 600).await.unwrap().is_none());
    queue
        .finish("a", &worker, Ok(wheel("a")), None)
        .await
        .unwrap();
    let (cached, requested) = queue.request(candidate("c", "k")).await.unwrap();
    assert_eq!((cached.id.as_str(), requested), ("a", Requested::Cached));
    assert_eq!(cached.wheel, Some(wheel("a")));
}

async fn an_infrastructure_failure_does_not_answer_the_key(queue: &dyn BuildQueue) {
    queue.request(candidate("a", "k")).await.unwrap();
    let worker = LeaseHolder::local("w");
    lease_expecting(queue, &worker, "a").await;
    let failed = queue
        .give_up("a", &worker, "the disk is full".to_string(), None)
        .await
        .unwrap();
    assert_eq!(failed.state, BuildState::Failed);
    assert!(!failed.is_final());
    let (again, requested) = queue.request(candidate("b", "k")).await.unwrap();
    assert_eq!((again.id.as_str(), requested), ("b", Requested::Queued));
}

async fn leases_go_in_request_order_and_by_target(queue: &dyn BuildQueue) {
    let other = BuildRecord {
        target: "cp312-musllinux_1_2_x86_64".parse().unwrap(),
        ..candidate("a", "ka")
    };
    queue.request(other).await.unwrap();
    queue.request(candidate("b", "kb")).await.unwrap();
    queue.request(candidate("c", "kc")).await.unwrap();
    let worker = LeaseHolder::local("w");
    let targets = [TARGET.parse().unwrap()];
    let first = queue.lease(&worker, &targets, 600).await.unwrap();
    assert_eq!(first.map(|record| record.id).as_deref(), Some("b"));
    let second = queue.lease(&worker, &targets, 600).await.unwrap();
    assert_eq!(second.map(|record| record.id).as_deref(), Some("c"));
    assert!(queue.lease(&worker, &targets, 600).await.unwrap().is_none());
    lease_expecting(queue, &worker, "a").await;
}

async fn an_expired_lease_is_requeued_and_counted(queue: &dyn BuildQueue) {
    queue.request(candidate("a", "ka")).await.unwrap();
    queue.request(candidate("b", "kb")).await.unwrap();
    let worker = LeaseHolder::local("w");
    let expired = queue.lease(&worker, &[], 0).await.unwrap().expect("queued");
    assert_eq!((expired.id.as_str(), expired.attempts), ("a", 1));
    lease_expecting(queue, &worker, "b").await;

    assert_eq!(queue.requeue_abandoned(false).await.unwrap(), vec!["a"]);
    assert_eq!(state_of(queue, "a").await, BuildState::Queued);
    assert_eq!(state_of(queue, "b").await, BuildState::Running);
    let late = queue.finish("a", &worker, Ok(wheel("a")), None).await;
    assert!(matches!(late, Err(QueueError::Conflict { .. })), "{late:?}");

    let again = lease_expecting(queue, &LeaseHolder::local("v"), "a").await;
    assert_eq!(again.attempts, 2);
    let mut restarted = queue.requeue_abandoned(true).await.unwrap();
    restarted.sort();
    assert_eq!(restarted, vec!["a", "b"]);
}

async fn a_heartbeat_keeps_a_lease(queue: &dyn BuildQueue) {
    queue.request(candidate("a", "k")).await.unwrap();
    let worker = LeaseHolder::local("w");
    queue.lease(&worker, &[], 0).await.unwrap().expect("queued");
    queue.heartbeat("a", &worker, 600).await.unwrap();
    assert!(queue.requeue_abandoned(false).await.unwrap().is_empty());
    let stranger = queue.heartbeat("a", &LeaseHolder::local("v"), 600).await;
    assert!(matches!(stranger, Err(QueueError::Conflict { .. })));
}

async fn only_the_lease_holder_records(queue: &dyn BuildQueue) {
    queue.request(candidate("a", "k")).await.unwrap();
    let holder = LeaseHolder::remote("w", credential('1'));
    lease_expecting(queue, &holder, "a").await;

    let same_credential = LeaseHolder::remote("v", credential('1'));
    let refused = queue
        .finish("a", &same_credential, Ok(wheel("a")), None)
        .await;
    assert!(
        matches!(refused, Err(QueueError::Conflict { .. })),
        "{refused:?}"
    );
    let other_credential = LeaseHolder::remote("w", credential('2'));
    let refused = queue
        .finish("a", &other_credential, Ok(wheel("a")), None)
        .await;
    assert!(matches!(refused, Err(QueueError::OtherCredential { .. })));
    let missing = queue.finish("nope", &holder, Ok(wheel("a")), None).await;
    assert!(matches!(missing, Err(QueueError::NotFound { .. })));
    assert_eq!(state_of(queue, "a").await, BuildState::Running);

    let finished = queue.finish("a", &holder, Ok(wheel("a")), None).await;
    assert_eq!(finished.unwrap().state, BuildState::Succeeded);
    let twice = queue
        .finish("a", &holder, Err(Failure::package("late")), None)
        .await;
    assert!(matches!(twice, Err(QueueError::Conflict { .. })));
    assert_eq!(
        queue.get("a").await.unwrap().unwrap().wheel,
        Some(wheel("a"))
    );
}

async fn a_remote_worker_fetches_only_its_builds_inputs(queue: &dyn BuildQueue) {
    queue.request(candidate("a", "k")).await.unwrap();
    let holder = LeaseHolder::remote("w", credential('1'));
    let leased = lease_expecting(queue, &holder, "a").await;
    let input = Sha256Digest::of(b"a wheel of a build requirement");
    queue
        .grant_wheelhouse("a", &holder, &[input])
        .await
        .unwrap();
    for digest in [leased.sdist_sha256, input] {
        assert!(queue.lets_fetch(&credential('1'), digest).await.unwrap());
        assert!(!queue.lets_fetch(&credential('2'), digest).await.unwrap());
    }
    let other = Sha256Digest::of(b"anything else");
    assert!(!queue.lets_fetch(&credential('1'), other).await.unwrap());
    queue
        .finish("a", &holder, Ok(wheel("a")), None)
        .await
        .unwrap();
    assert!(!queue.lets_fetch(&credential('1'), input).await.unwrap());
}

async fn infrastructure_failures_are_retried_until_the_budget(queue: &dyn BuildQueue) {
    queue.request(candidate("a", "k")).await.unwrap();
    let worker = LeaseHolder::local("w");
    let broken = || Err(Failure::infrastructure("the runtime crashed"));
    for attempt in 1..=2 {
        let leased = lease_expecting(queue, &worker, "a").await;
        assert_eq!(leased.attempts, attempt);
        let outcome = record_result(queue, &leased, &worker, broken(), None, 3).await;
        assert_eq!(outcome.unwrap(), Outcome::Requeued);
    }
    let last = lease_expecting(queue, &worker, "a").await;
    let outcome = record_result(queue, &last, &worker, broken(), None, 3).await;
    let Ok(Outcome::Finished(record)) = outcome else {
        panic!("the third attempt is the last: {outcome:?}");
    };
    assert_eq!(record.state, BuildState::Failed);
    assert_eq!(
        record.failure.map(|failure| failure.kind),
        Some(FailureKind::Infrastructure)
    );
    assert!(queue.lease(&worker, &[], 600).await.unwrap().is_none());
}

async fn a_package_failure_is_not_retried(queue: &dyn BuildQueue) {
    queue.request(candidate("a", "k")).await.unwrap();
    let worker = LeaseHolder::local("w");
    let leased = lease_expecting(queue, &worker, "a").await;
    let failure = Err(Failure::package("setup.py failed"));
    let outcome = record_result(queue, &leased, &worker, failure, None, 3).await;
    let Ok(Outcome::Finished(record)) = outcome else {
        panic!("a package failure is final: {outcome:?}");
    };
    assert!(record.is_final());
    let stranger = LeaseHolder::local("v");
    let retry = Err(Failure::infrastructure("again"));
    let outcome = record_result(queue, &leased, &stranger, retry, None, 3).await;
    assert!(matches!(outcome, Err(QueueError::Conflict { .. })));
}

async fn a_waiting_build_is_queued_when_what_it_needs_is_built(queue: &dyn BuildQueue) {
    queue.request(candidate("dep", "kd")).await.unwrap();
    let (waiting, _) = queue
        .request(waiting_on("top", "kt", &["dep"]))
        .await
        .unwrap();
    assert_eq!(waiting_ids(queue).await, vec!["top"]);
    assert_eq!(needs_of(queue, &waiting).await.unwrap(), Needs::Pending);

    let worker = LeaseHolder::local("w");
    lease_expecting(queue, &worker, "dep").await;
    assert!(queue.lease(&worker, &[], 600).await.unwrap().is_none());
    assert_eq!(needs_of(queue, &waiting).await.unwrap(), Needs::Pending);
    queue
        .finish("dep", &worker, Ok(wheel("dep")), None)
        .await
        .unwrap();
    assert_eq!(needs_of(queue, &waiting).await.unwrap(), Needs::Built);

    let released = queue
        .release("top", &BuildKey::labelled("kt2"), None)
        .await
        .unwrap();
    let Released::Queued(queued) = released else {
        panic!("the key is free: {released:?}");
    };
    assert_eq!(
        (queued.key, queued.state),
        (BuildKey::labelled("kt2"), BuildState::Queued)
    );
    assert!(waiting_ids(queue).await.is_empty());
    assert_eq!(
        queue
            .release("top", &BuildKey::labelled("kt2"), None)
            .await
            .unwrap(),
        Released::Gone
    );
    lease_expecting(queue, &worker, "top").await;
}

async fn a_waiting_build_fails_when_what_it_needs_fails(queue: &dyn BuildQueue) {
    queue.request(candidate("dep", "kd")).await.unwrap();
    let (waiting, _) = queue
        .request(waiting_on("top", "kt", &["dep"]))
        .await
        .unwrap();
    let worker = LeaseHolder::local("w");
    lease_expecting(queue, &worker, "dep").await;
    let failure = Failure::package("no compiler");
    queue
        .finish("dep", &worker, Err(failure), None)
        .await
        .unwrap();

    let Needs::Failed(failure) = needs_of(queue, &waiting).await.unwrap() else {
        panic!("its requirement failed");
    };
    assert_eq!(failure.kind, FailureKind::Package);
    assert!(
        failure.message.contains("no compiler"),
        "{}",
        failure.message
    );
    let settled = queue.settle("top", Err(failure)).await.unwrap();
    assert_eq!(settled.map(|record| record.state), Some(BuildState::Failed));
    assert!(waiting_ids(queue).await.is_empty());
    assert!(
        queue
            .settle("top", Ok(wheel("top")))
            .await
            .unwrap()
            .is_none()
    );

    let gone = waiting_on("orphan", "ko", &["never-requested"]);
    let (gone, _) = queue.request(gone).await.unwrap();
    let Needs::Failed(failure) = needs_of(queue, &gone).await.unwrap() else {
        panic!("what it needs is gone");
    };
    assert_eq!(failure.kind, FailureKind::Infrastructure);
}

async fn a_released_build_follows_one_that_holds_its_new_key(queue: &dyn BuildQueue) {
    queue.request(candidate("live", "shared")).await.unwrap();
    queue.request(waiting_on("top", "kt", &[])).await.unwrap();
    let released = queue
        .release("top", &BuildKey::labelled("shared"), None)
        .await
        .unwrap();
    assert!(matches!(&released, Released::Existing(existing) if existing.id == "live"));
    assert_eq!(state_of(queue, "top").await, BuildState::Waiting);
    queue
        .set_needs("top", vec!["live".to_string()])
        .await
        .unwrap();
    let top = queue.get("top").await.unwrap().unwrap();
    assert_eq!(top.needs, vec!["live"]);
}

async fn a_running_build_waits_and_a_cycle_is_found(queue: &dyn BuildQueue) {
    queue.request(candidate("a", "ka")).await.unwrap();
    let worker = LeaseHolder::local("w");
    lease_expecting(queue, &worker, "a").await;
    queue.request(waiting_on("b", "kb", &["a"])).await.unwrap();
    let log = Some(Sha256Digest::of(b"log"));
    let stranger = queue
        .wait_on("a", &LeaseHolder::local("v"), vec!["b".into()], log)
        .await;
    assert!(matches!(stranger, Err(QueueError::Conflict { .. })));
    let a = queue
        .wait_on("a", &worker, vec!["b".into()], log)
        .await
        .unwrap();
    assert_eq!((a.state, a.lease.as_ref()), (BuildState::Waiting, None));
    assert_eq!(waiting_ids(queue).await, vec!["a", "b"]);

    let cycle = waits_for_any(queue, &a, |waiting| waiting.id == "a").await;
    let expected = ["project-a", "project-b", "project-a"].map(|name| name.parse().unwrap());
    assert_eq!(cycle.unwrap(), Some(expected.to_vec()));
    let none = waits_for_any(queue, &a, |waiting| waiting.id == "elsewhere").await;
    assert_eq!(none.unwrap(), None);
}

async fn a_failed_candidate_is_recorded_as_it_is(queue: &dyn BuildQueue) {
    let failed = BuildRecord {
        state: BuildState::Failed,
        failure: Some(Failure::package("no release fits")),
        ..candidate("a", "k")
    };
    let (record, requested) = queue.request(failed).await.unwrap();
    assert_eq!(
        (record.state, requested),
        (BuildState::Failed, Requested::Queued)
    );
    assert!(
        queue
            .lease(&LeaseHolder::local("w"), &[], 600)
            .await
            .unwrap()
            .is_none()
    );
    let (cached, requested) = queue.request(candidate("b", "k")).await.unwrap();
    assert_eq!((cached.id.as_str(), requested), ("a", Requested::Cached));
    assert_eq!(queue.list().await.unwrap().len(), 1);
}

macro_rules! backends {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(&super::MemoryBuildQueue::default()).await;
                }
            )*
        }

        mod sled {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = ::sled::Config::new().temporary(true).open().unwrap();
                    super::$test(&super::SledBuildQueue::open(&db).unwrap()).await;
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
                    let queue = super::PostgresBuildQueue::open(&database.url).await.unwrap();
                    super::$test(&queue).await;
                    drop(queue);
                    database.remove().await;
                }
            )*
        }
    };
}

backends!(
    a_second_request_for_a_key_joins_the_first,
    an_infrastructure_failure_does_not_answer_the_key,
    leases_go_in_request_order_and_by_target,
    an_expired_lease_is_requeued_and_counted,
    a_heartbeat_keeps_a_lease,
    only_the_lease_holder_records,
    a_remote_worker_fetches_only_its_builds_inputs,
    infrastructure_failures_are_retried_until_the_budget,
    a_package_failure_is_not_retried,
    a_waiting_build_is_queued_when_what_it_needs_is_built,
    a_waiting_build_fails_when_what_it_needs_fails,
    a_released_build_follows_one_that_holds_its_new_key,
    a_running_build_waits_and_a_cycle_is_found,
    a_failed_candidate_is_recorded_as_it_is,
);
