//! Which pages a write changed, told to every replica sharing the database, on PostgreSQL's
//! LISTEN/NOTIFY (channel `CHANNEL`). A payload names one scope of `index::PageCache`: a
//! project by its normalized name, or the project list as `LIST_PAYLOAD`; PostgreSQL's
//! limit on a payload (under 8000 bytes) is far above any name sent.
//!
//! Each process holds one listening connection. Its own announcements go out through that
//! connection, so the notifications it hears back carry its own backend's process id and
//! are skipped; while it has none, through the pool (an echo heard then only makes a page
//! again). When the connection is lost the process's pages are dropped and none is kept
//! until it listens again, when they are dropped once more, since a change announced in
//! between was not heard: rendering every page while the channel is down costs less than
//! serving one that is wrong for as long as the outage lasts. A connection that stops
//! answering counts as lost after one heartbeat goes unanswered (`HEARTBEAT`, twice), which
//! bounds how long a kept page can outlive a change it did not hear.
//!
//! PostgreSQL delivers a notification only to sessions listening when the notifying
//! transaction commits, and only on a session of its own: not through a pooler in
//! transaction mode.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Poll, ready};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::sync::oneshot;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Statement};

use super::OpenError;
use crate::index::{PageCache, PageChanges, Scope};
use crate::pypi::{InvalidProjectName, parse_package_name};

/// The channel every replica listens on.
pub const CHANNEL: &str = "edelweiss_page_changes";
/// LISTEN takes no parameter: the channel, spelled out.
const LISTEN: &str = "LISTEN edelweiss_page_changes";
/// One notification per payload, in one statement: `$1` the channel, `$2` the payloads.
const NOTIFY: &str = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload";
/// The project list (`/simple/`), which no project name spells.
const LIST_PAYLOAD: &str = "/simple/";
/// PostgreSQL refuses a payload of 8000 bytes or more.
const MAX_PAYLOAD_BYTES: usize = 7999;
/// The listening connection's `application_name`, as `pg_stat_activity` shows it.
pub const APPLICATION_NAME: &str = "edelweiss page changes";

/// The listening connection's idle time between heartbeats, and each heartbeat's deadline.
const HEARTBEAT: Duration = Duration::from_secs(10);
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long start-up waits for the first attempt to listen; the connect timeout ends it
/// sooner where the server does not answer.
const FIRST_LISTEN_WAIT: Duration = Duration::from_secs(30);

/// The listening connection, once it listens.
struct Listening {
    client: Client,
    notify: Statement,
}

type Current = Arc<RwLock<Option<Arc<Listening>>>>;

/// The PostgreSQL side of `PageChanges`: announces this process's changes and hears the
/// other replicas', as long as it lives.
pub struct PostgresPageChanges {
    pool: Pool,
    listening: Current,
    listener: tokio::task::JoinHandle<()>,
}

impl PostgresPageChanges {
    /// Listens on `url` for the changes other replicas announce, dropping their pages from
    /// `pages`, once the first attempt to listen has ended (a failure is logged and
    /// retried; no page is kept meanwhile). Announcements go out through the listening
    /// connection, or through `pool` while there is none.
    pub async fn start(url: &str, pool: Pool, pages: Arc<PageCache>) -> Result<Self, OpenError> {
        let mut config = super::config(url)?;
        config.application_name(APPLICATION_NAME);
        pages.stop_keeping();
        let listening = Current::default();
        let (first, first_attempt) = oneshot::channel();
        let listener = tokio::spawn(listen(config, pages, listening.clone(), first));
        // Either answer, the sender's message or its drop, ends the first attempt.
        let _ = tokio::time::timeout(FIRST_LISTEN_WAIT, first_attempt).await;
        Ok(Self {
            pool,
            listening,
            listener,
        })
    }

    async fn send(&self, payloads: &[String]) -> Result<(), AnnounceError> {
        let listening = read(&self.listening).clone();
        if let Some(listening) = listening {
            let sent = listening
                .client
                .execute(&listening.notify, &[&CHANNEL, &payloads])
                .await;
            if sent.is_ok() {
                return Ok(());
            }
        }
        let client = self.pool.get().await.map_err(AnnounceError::Pool)?;
        let notify = client.prepare_cached(NOTIFY).await?;
        client.execute(&notify, &[&CHANNEL, &payloads]).await?;
        Ok(())
    }
}

impl Drop for PostgresPageChanges {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[async_trait]
impl PageChanges for PostgresPageChanges {
    async fn announce(&self, scopes: &[Scope]) {
        let payloads = payloads(scopes);
        if payloads.is_empty() {
            return;
        }
        let error = match tokio::time::timeout(ANNOUNCE_TIMEOUT, self.send(&payloads)).await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(_) => AnnounceError::Timeout(ANNOUNCE_TIMEOUT),
        };
        tracing::warn!(
            %error,
            changed = ?payloads,
            "other replicas were not told of a change: they serve the pages they keep of it \
             until those expire or change again"
        );
    }
}

#[derive(Debug, thiserror::Error)]
enum AnnounceError {
    #[error("no connection: {0}")]
    Pool(deadpool_postgres::PoolError),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

fn payloads(scopes: &[Scope]) -> Vec<String> {
    scopes
        .iter()
        .map(payload)
        .filter(|payload| {
            let fits = payload.len() <= MAX_PAYLOAD_BYTES;
            if !fits {
                tracing::warn!(
                    bytes = payload.len(),
                    "a project name too long for a notification: other replicas are not told"
                );
            }
            fits
        })
        .collect()
}

fn payload(scope: &Scope) -> String {
    match scope {
        Scope::List => LIST_PAYLOAD.to_string(),
        Scope::Project(name) => name.to_string(),
    }
}

fn scope_of(payload: &str) -> Result<Scope, InvalidProjectName> {
    if payload == LIST_PAYLOAD {
        return Ok(Scope::List);
    }
    parse_package_name(payload).map(Scope::Project)
}

fn hear(pages: &PageCache, payload: &str) {
    match scope_of(payload) {
        Ok(scope) => pages.heard(&scope),
        Err(error) => tracing::warn!(
            channel = CHANNEL,
            %error,
            "ignored a page change that names no project"
        ),
    }
}

/// Why the listening connection ended, and whether it had been listening.
struct Lost {
    listened: bool,
    error: ListenError,
}

#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("no answer to a heartbeat within {0:?}")]
    Silent(Duration),
}

/// Listens for as long as the task runs, connecting again after each loss with a growing
/// pause.
async fn listen(
    config: Config,
    pages: Arc<PageCache>,
    current: Current,
    first: oneshot::Sender<()>,
) {
    let mut first = Some(first);
    let mut retry = RETRY_FIRST;
    loop {
        let lost = listen_once(&config, &pages, &current, &mut first).await;
        *write(&current) = None;
        pages.stop_keeping();
        drop(first.take());
        if lost.listened {
            retry = RETRY_FIRST;
        }
        tracing::warn!(
            error = %lost.error,
            retry_in_ms = retry.as_millis() as u64,
            "not hearing other replicas' page changes: pages held are served, no new one is kept until they are heard again"
        );
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// One connection: listen, keep pages again, hear notifications until the connection ends.
async fn listen_once(
    config: &Config,
    pages: &PageCache,
    current: &Current,
    first: &mut Option<oneshot::Sender<()>>,
) -> Lost {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(connected) => connected,
        Err(error) => {
            return Lost {
                listened: false,
                error: error.into(),
            };
        }
    };
    let own_process = AtomicI32::new(0);
    let listened = AtomicBool::new(false);
    let (own, listened_flag) = (&own_process, &listened);
    let messages = std::future::poll_fn(|context| {
        loop {
            match ready!(connection.poll_message(context)) {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if notification.process_id() != own.load(Ordering::Relaxed) {
                        hear(pages, notification.payload());
                    }
                }
                Some(Ok(_notice)) => {}
                Some(Err(error)) => return Poll::Ready(ListenError::from(error)),
                None => return Poll::Ready(ListenError::Closed),
            }
        }
    });
    let subscription = async move {
        let process: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        own.store(process, Ordering::Relaxed);
        client.batch_execute(LISTEN).await?;
        let notify = client.prepare(NOTIFY).await?;
        let listening = Arc::new(Listening { client, notify });
        pages.start_keeping();
        *write(current) = Some(listening.clone());
        listened_flag.store(true, Ordering::Relaxed);
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
        Err::<std::convert::Infallible, _>(heartbeat(&listening.client).await)
    };
    let error = tokio::select! {
        error = messages => error,
        ended = subscription => match ended {
            Err(error) => error,
            Ok(never) => match never {},
        },
    };
    Lost {
        listened: listened.load(Ordering::Relaxed),
        error,
    }
}

/// Ends with the first heartbeat unanswered within `HEARTBEAT`.
async fn heartbeat(client: &Client) -> ListenError {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        match tokio::time::timeout(HEARTBEAT, client.batch_execute("SELECT 1")).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return error.into(),
            Err(_) => return ListenError::Silent(HEARTBEAT),
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Body, PageKey, Published, View};
    use crate::postgres::testing::{TestDatabase, connect};
    use crate::pypi::PackageName;

    fn name(text: &str) -> PackageName {
        parse_package_name(text).unwrap()
    }

    async fn replica(database: &TestDatabase) -> Published {
        let pages = Arc::new(PageCache::new(1 << 20, Arc::default()));
        let pool = crate::postgres::pool(&database.url).unwrap();
        let changes = PostgresPageChanges::start(&database.url, pool, pages.clone())
            .await
            .unwrap();
        Published::new(pages, Arc::default(), Arc::new(changes))
    }

    fn key(scope: &str) -> PageKey {
        match scope {
            "/simple/" => PageKey::list(Body::Json),
            project => PageKey::project(&name(project), View::All, Body::Json),
        }
    }

    /// Keeps a page of `scope` made from records read at `version`.
    fn keep_at(replica: &Published, scope: &str, version: u64) {
        let pages = replica.pages();
        pages.keep(pages.rendered(key(scope), version, "page".into(), None));
    }

    fn keep(replica: &Published, scope: &str) {
        keep_at(replica, scope, replica.pages().version(&key(scope).scope));
    }

    fn held(replica: &Published, scope: &str) -> bool {
        replica.pages().peek(&key(scope)).is_some()
    }

    /// Waits until `ready` holds, failing with `what` after ten seconds.
    async fn eventually(what: &str, mut ready: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if ready() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("waited ten seconds for {what}, in vain");
    }

    #[tokio::test]
    async fn a_change_announced_by_one_replica_drops_that_page_in_the_other() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let (first, second) = (replica(&database).await, replica(&database).await);
        for scope in ["changed", "untouched", "/simple/"] {
            keep(&second, scope);
            assert!(held(&second, scope), "a listening replica keeps pages");
        }
        first.upstream_page_changed(&name("changed")).await;
        eventually("the second replica to drop the changed page", || {
            !held(&second, "changed")
        })
        .await;
        assert!(held(&second, "untouched") && held(&second, "/simple/"));

        // A payload that names no project is ignored; the change sent after it is heard.
        let client = connect(&database.url).await.unwrap();
        for payload in ["../etc", "", LIST_PAYLOAD] {
            client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                .await
                .unwrap();
        }
        eventually("the second replica to drop the project list", || {
            !held(&second, "/simple/")
        })
        .await;
        assert!(
            held(&second, "untouched"),
            "still listening, nothing else dropped"
        );
        drop((first, second));
        database.remove().await;
    }

    /// New connections to the test database are refused (or allowed again): the test role
    /// is no superuser, so the limit binds it.
    async fn limit_connections(client: &Client, limit: i32) {
        let statement = format!(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I CONNECTION LIMIT {limit}', \
             current_database()); END $$"
        );
        client.batch_execute(&statement).await.unwrap();
    }

    #[tokio::test]
    async fn a_replica_that_lost_its_connection_serves_what_it_holds_and_keeps_nothing_new() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let (first, second) = (replica(&database).await, replica(&database).await);
        keep(&second, "kept");
        let read_before = second.pages().version(&key("made").scope);
        let client = connect(&database.url).await.unwrap();
        limit_connections(&client, 0).await;
        let terminated = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = $1",
                &[&APPLICATION_NAME],
            )
            .await
            .unwrap();
        assert_eq!(terminated.get::<_, i64>(0), 2, "each replica listens");
        let mut attempt = 0;
        eventually("the lost connection to stop keeping new pages", || {
            attempt += 1;
            let scope = format!("meanwhile-{attempt}");
            keep(&second, &scope);
            !held(&second, &scope)
        })
        .await;
        assert!(
            held(&second, "kept"),
            "a replica cut off from the database serves the pages it holds"
        );

        limit_connections(&client, -1).await;
        eventually("the second replica to listen and keep pages again", || {
            keep(&second, "again");
            held(&second, "again")
        })
        .await;
        assert!(
            !held(&second, "kept"),
            "once listening again, every page from before goes: a change may have gone unheard"
        );
        keep_at(&second, "made", read_before);
        assert!(
            !held(&second, "made"),
            "a page made from records read before the loss is not kept after it"
        );
        first.file_changed(&name("again")).await;
        eventually("the new connection to hear a change", || {
            !held(&second, "again")
        })
        .await;
        drop((first, second));
        database.remove().await;
    }
}
