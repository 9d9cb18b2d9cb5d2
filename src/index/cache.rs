//! Rendered pages in memory, within a byte budget (least recently used out). A page is kept
//! per project (or the project list), view and body, with its compressed forms, each made
//! on the first request that asks for it and counted against the budget.
//!
//! A write drops only the pages of what it changed (`PageCache::changed`). Each scope (a
//! project, or the list) has a version that every write to it bumps: a page is made from
//! records read after its scope's version was read, and is kept only if that version is
//! still current, so a page made from records read before a write is never kept after it.
//!
//! Where replicas share the records, a write elsewhere arrives as a heard change
//! (`postgres::page_changes`) and drops pages the same way; while changes cannot be heard
//! the cache keeps nothing (`stop_keeping`), and every page goes when they can again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use bytes::Bytes;

use super::encoding::Coding;
use super::negotiate::Body;
use super::page::View;
use crate::metrics::Metrics;
use crate::pypi::{PackageName, Sha256Digest};

/// What a write changes, and what a page shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `/simple/`: the projects held here.
    List,
    Project(PackageName),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub scope: Scope,
    pub view: View,
    pub body: Body,
}

impl PageKey {
    pub fn list(body: Body) -> Self {
        Self {
            scope: Scope::List,
            view: View::All,
            body,
        }
    }

    pub fn project(name: &PackageName, view: View, body: Body) -> Self {
        Self {
            scope: Scope::Project(name.clone()),
            view,
            body,
        }
    }
}

/// One rendered page: its bytes as rendered, and each compressed form once made.
pub struct CachedPage {
    key: PageKey,
    /// The version of its scope the page was made at.
    version: u64,
    identity: Bytes,
    sha256: Sha256Digest,
    /// Unix seconds from which the page is made again (a mirrored page whose upstream copy
    /// is due for revalidation); `None`: kept until a write.
    expires_at: Option<u64>,
    gzip: OnceLock<Option<Bytes>>,
    zstd: OnceLock<Option<Bytes>>,
}

impl CachedPage {
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The page as rendered, before any compression.
    pub fn identity(&self) -> &Bytes {
        &self.identity
    }

    /// A coding's form: `Some(None)` once made and found no smaller than the page.
    fn compressed(&self, coding: Coding) -> Option<&OnceLock<Option<Bytes>>> {
        match coding {
            Coding::Identity => None,
            Coding::Gzip => Some(&self.gzip),
            Coding::Zstd => Some(&self.zstd),
        }
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }
}

/// A page in one coding, ready to send.
pub struct Encoded {
    pub body: Bytes,
    /// Strong validator of this coding: the sha256 of the page as rendered, with a suffix
    /// per coding.
    pub etag: String,
    pub coding: Coding,
}

struct Slot {
    page: Arc<CachedPage>,
    /// What the page holds in memory now: the rendered bytes plus each compressed form.
    bytes: u64,
    last_used: AtomicU64,
}

#[derive(Default)]
struct Pages {
    slots: HashMap<PageKey, Slot>,
    bytes: u64,
}

/// Scopes written since the server started, with the write counter at their last write.
/// Past `MAX_TRACKED` scopes the table starts over from a floor that every scope's version
/// is at least, which only makes pages in the making at that moment unkept.
#[derive(Default)]
struct Versions {
    writes: u64,
    floor: u64,
    last_write: HashMap<Scope, u64>,
    /// The write counter at the last change to each scope heard from another process.
    last_heard: HashMap<Scope, u64>,
    /// No page is kept: a change made elsewhere could go unheard.
    stopped: bool,
}

const MAX_TRACKED: usize = 65_536;

impl Versions {
    fn of(&self, scope: &Scope) -> u64 {
        self.last_write
            .get(scope)
            .copied()
            .unwrap_or(0)
            .max(self.floor)
    }

    fn heard(&self, scope: &Scope) -> u64 {
        self.last_heard
            .get(scope)
            .copied()
            .unwrap_or(0)
            .max(self.floor)
    }

    fn bump(&mut self, scope: &Scope, heard: bool) {
        self.writes += 1;
        if self.last_write.len() >= MAX_TRACKED || self.last_heard.len() >= MAX_TRACKED {
            self.bump_all();
        }
        self.last_write.insert(scope.clone(), self.writes);
        if heard {
            self.last_heard.insert(scope.clone(), self.writes);
        }
    }

    /// Every scope changed at once.
    fn bump_all(&mut self) {
        self.writes += 1;
        self.last_write.clear();
        self.last_heard.clear();
        self.floor = self.writes;
    }
}

pub struct PageCache {
    budget: u64,
    versions: Mutex<Versions>,
    pages: RwLock<Pages>,
    /// Orders uses for the least-recently-used choice.
    ticks: AtomicU64,
    /// One page maker per key at a time; the others wait and take its page.
    making: Mutex<HashMap<PageKey, Weak<tokio::sync::Mutex<()>>>>,
    metrics: Arc<Metrics>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PageCache {
    /// A cache holding at most `budget` bytes of pages.
    pub fn new(budget: u64, metrics: Arc<Metrics>) -> Self {
        metrics.set_page_cache_budget(budget);
        Self {
            budget,
            versions: Mutex::default(),
            pages: RwLock::default(),
            ticks: AtomicU64::new(0),
            making: Mutex::default(),
            metrics,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Pages> {
        self.pages
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Pages> {
        self.pages
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The page under `key` unless it has expired, counted as a hit or a miss.
    pub fn get(&self, key: &PageKey) -> Option<Arc<CachedPage>> {
        let found = self.peek(key);
        self.metrics.page_lookup(found.is_some());
        found
    }

    /// Like `get`, uncounted: for a maker that waited for another one.
    pub fn peek(&self, key: &PageKey) -> Option<Arc<CachedPage>> {
        let now = crate::clock::unix_now();
        let pages = self.read();
        let slot = pages
            .slots
            .get(key)
            .filter(|slot| !slot.page.expired(now))?;
        slot.last_used.store(
            self.ticks.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        Some(slot.page.clone())
    }

    /// The version of `scope` now: read it before reading the records a page is made from.
    pub fn version(&self, scope: &Scope) -> u64 {
        lock(&self.versions).of(scope)
    }

    /// Counts the changes to `scope` heard from other processes (and every `start_keeping`
    /// and `stop_keeping`): a page made from a record read before the scope's version, as a
    /// mirrored page is, is kept only if this did not move since before that read.
    pub fn heard_version(&self, scope: &Scope) -> u64 {
        lock(&self.versions).heard(scope)
    }

    /// Waits until no other request is making the page under `key`; hold the guard while
    /// making it, then look again (`peek`) before making it.
    pub async fn making(&self, key: &PageKey) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = {
            let mut making = lock(&self.making);
            making.retain(|_, maker| maker.strong_count() > 0);
            match making.get(key).and_then(Weak::upgrade) {
                Some(turn) => turn,
                None => {
                    let turn = Arc::new(tokio::sync::Mutex::new(()));
                    making.insert(key.clone(), Arc::downgrade(&turn));
                    turn
                }
            }
        };
        turn.lock_owned().await
    }

    /// A page just rendered from records read at `version` of its scope.
    pub fn rendered(
        &self,
        key: PageKey,
        version: u64,
        body: Bytes,
        expires_at: Option<u64>,
    ) -> CachedPage {
        self.metrics.page_rendered();
        CachedPage {
            key,
            version,
            sha256: Sha256Digest::of(&body),
            identity: body,
            expires_at,
            gzip: OnceLock::new(),
            zstd: OnceLock::new(),
        }
    }

    /// Keeps `page` unless its scope was written since its version, it has expired
    /// already, or it alone is over the budget; the page is returned either way.
    pub fn keep(&self, page: CachedPage) -> Arc<CachedPage> {
        let page = Arc::new(page);
        let bytes = page.identity.len() as u64;
        if page.expired(crate::clock::unix_now()) || bytes > self.budget {
            return page;
        }
        let versions = lock(&self.versions);
        if versions.stopped || versions.of(&page.key.scope) != page.version {
            return page;
        }
        let mut pages = self.write();
        let slot = Slot {
            page: page.clone(),
            bytes,
            last_used: AtomicU64::new(self.ticks.fetch_add(1, Ordering::Relaxed)),
        };
        if let Some(replaced) = pages.slots.insert(page.key.clone(), slot) {
            pages.bytes -= replaced.bytes;
        }
        pages.bytes += bytes;
        drop(versions);
        self.evict(&mut pages);
        page
    }

    /// `page` in `coding`, compressed on the first request for it; as rendered when that
    /// coding does not make it smaller (a tiny page).
    pub fn encoded(&self, page: &Arc<CachedPage>, coding: Coding) -> Encoded {
        let identity = || Encoded {
            body: page.identity.clone(),
            etag: format!("\"{}\"", page.sha256),
            coding: Coding::Identity,
        };
        let Some(cell) = page.compressed(coding) else {
            return identity();
        };
        let mut made = false;
        let form = cell.get_or_init(|| {
            made = true;
            Some(coding.compress(&page.identity)).filter(|form| form.len() < page.identity.len())
        });
        if made {
            self.metrics
                .page_compressed(coding.header_value().unwrap_or("identity"));
            if let Some(form) = form {
                self.account(page, form.len() as u64);
            }
        }
        match form {
            Some(form) => Encoded {
                body: form.clone(),
                etag: format!("\"{}{}\"", page.sha256, coding.etag_suffix()),
                coding,
            },
            None => identity(),
        }
    }

    /// Counts a compressed form against the budget, if its page is still kept.
    fn account(&self, page: &Arc<CachedPage>, bytes: u64) {
        let mut pages = self.write();
        let Some(slot) = pages
            .slots
            .get_mut(&page.key)
            .filter(|slot| Arc::ptr_eq(&slot.page, page))
        else {
            return;
        };
        slot.bytes += bytes;
        pages.bytes += bytes;
        self.evict(&mut pages);
    }

    /// Drops the least recently used pages until the rest fit the budget.
    fn evict(&self, pages: &mut Pages) {
        while pages.bytes > self.budget {
            let Some(oldest) = pages
                .slots
                .iter()
                .min_by_key(|(_, slot)| slot.last_used.load(Ordering::Relaxed))
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some(slot) = pages.slots.remove(&oldest) {
                pages.bytes -= slot.bytes;
                self.metrics.page_evicted();
            }
        }
        self.metrics.set_page_cache_bytes(pages.bytes);
    }

    /// A write changed `scope`: its pages go, and pages in the making from records read
    /// before it will not be kept.
    pub fn changed(&self, scope: &Scope) {
        self.drop_scope(scope, false);
    }

    /// Another process announced a change to `scope`: like `changed`, and counted by
    /// `heard_version`.
    pub fn heard(&self, scope: &Scope) {
        self.drop_scope(scope, true);
    }

    fn drop_scope(&self, scope: &Scope, heard: bool) {
        let mut versions = lock(&self.versions);
        versions.bump(scope, heard);
        let mut pages = self.write();
        let mut dropped = 0;
        pages.slots.retain(|key, slot| {
            let keep = key.scope != *scope;
            if !keep {
                dropped += slot.bytes;
            }
            keep
        });
        pages.bytes -= dropped;
        drop(versions);
        self.metrics.set_page_cache_bytes(pages.bytes);
    }

    /// Changes made elsewhere may go unheard from now on: the pages held are still served
    /// (a replica cut off from its database answers for what it has), but no new page is
    /// kept, and none made from a version read before this, until `start_keeping`.
    pub fn stop_keeping(&self) {
        let mut versions = lock(&self.versions);
        versions.bump_all();
        versions.stopped = true;
    }

    /// Changes made elsewhere are heard again: every page goes (one may have changed while
    /// they were not), and pages are kept again.
    pub fn start_keeping(&self) {
        let mut versions = lock(&self.versions);
        versions.bump_all();
        versions.stopped = false;
        let mut pages = self.write();
        pages.slots.clear();
        pages.bytes = 0;
        drop(versions);
        self.metrics.set_page_cache_bytes(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> PackageName {
        crate::pypi::parse_package_name(text).unwrap()
    }

    fn make(cache: &PageCache, project: &str, size: usize) -> Arc<CachedPage> {
        let key = PageKey::project(&name(project), View::All, Body::Json);
        let version = cache.version(&key.scope);
        cache.keep(cache.rendered(key, version, Bytes::from(vec![b'x'; size]), None))
    }

    fn held(cache: &PageCache, project: &str) -> bool {
        cache
            .peek(&PageKey::project(&name(project), View::All, Body::Json))
            .is_some()
    }

    #[test]
    fn a_write_drops_only_its_project() {
        let cache = PageCache::new(1 << 20, Arc::default());
        make(&cache, "a", 10);
        make(&cache, "b", 10);
        cache.changed(&Scope::Project(name("a")));
        assert!(!held(&cache, "a") && held(&cache, "b"));
    }

    #[test]
    fn a_page_read_before_a_write_is_not_kept() {
        let cache = PageCache::new(1 << 20, Arc::default());
        let key = PageKey::project(&name("a"), View::All, Body::Json);
        let version = cache.version(&key.scope);
        cache.changed(&Scope::Project(name("a")));
        cache.keep(cache.rendered(key, version, Bytes::from_static(b"old"), None));
        assert!(!held(&cache, "a"));
        make(&cache, "a", 3);
        assert!(held(&cache, "a"));
    }

    #[test]
    fn the_least_recently_used_page_goes_first() {
        let cache = PageCache::new(250, Arc::default());
        make(&cache, "a", 100);
        make(&cache, "b", 100);
        assert!(held(&cache, "a"), "a is now more recent than b");
        make(&cache, "c", 100);
        assert!(held(&cache, "a") && !held(&cache, "b") && held(&cache, "c"));
        make(&cache, "huge", 251);
        assert!(
            !held(&cache, "huge"),
            "a page over the whole budget is not kept"
        );
    }

    #[test]
    fn a_heard_change_counts_for_its_scope_alone() {
        let cache = PageCache::new(1 << 20, Arc::default());
        let (a, b) = (Scope::Project(name("a")), Scope::Project(name("b")));
        make(&cache, "a", 10);
        let heard_before = (cache.heard_version(&a), cache.heard_version(&b));
        cache.changed(&a);
        assert_eq!(
            cache.heard_version(&a),
            heard_before.0,
            "a write here is no heard change"
        );
        make(&cache, "a", 10);
        cache.heard(&a);
        assert!(
            !held(&cache, "a"),
            "a heard change drops the project's pages"
        );
        assert!(cache.heard_version(&a) > heard_before.0);
        assert_eq!(cache.heard_version(&b), heard_before.1);
    }

    #[test]
    fn a_stopped_cache_serves_what_it_holds_and_keeps_nothing_new_until_started_again() {
        let cache = PageCache::new(1 << 20, Arc::default());
        make(&cache, "a", 10);
        let key = PageKey::project(&name("b"), View::All, Body::Json);
        let read_before = cache.version(&key.scope);
        cache.stop_keeping();
        assert!(held(&cache, "a"), "a page held is still served");
        make(&cache, "c", 10);
        assert!(!held(&cache, "c"), "nothing new is kept while stopped");
        cache.start_keeping();
        assert!(!held(&cache, "a"), "every page goes on starting again");
        cache.keep(cache.rendered(key, read_before, Bytes::from_static(b"old"), None));
        assert!(
            !held(&cache, "b"),
            "a page made before the start is not kept"
        );
        make(&cache, "c", 10);
        assert!(held(&cache, "c"));
        assert_eq!(cache.read().bytes, 10);
    }

    #[test]
    fn compressed_forms_count_against_the_budget() {
        let cache = PageCache::new(1 << 20, Arc::default());
        let page = make(&cache, "a", 10_000);
        let gzip = cache.encoded(&page, Coding::Gzip);
        assert_eq!(gzip.coding, Coding::Gzip);
        assert!(gzip.etag.ends_with("-gzip\""));
        let again = cache.encoded(&page, Coding::Gzip);
        assert_eq!(again.body.as_ptr(), gzip.body.as_ptr(), "compressed once");
        assert_eq!(cache.read().bytes, 10_000 + gzip.body.len() as u64);
        let tiny = make(&cache, "b", 1);
        let sent = cache.encoded(&tiny, Coding::Zstd);
        assert_eq!(
            sent.coding,
            Coding::Identity,
            "a page compression does not shrink"
        );
        assert_eq!(&sent.body[..], b"x");
    }
}
