//! Counters for `/metrics`, in the Prometheus text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A counter family with labels, rendered as `name{label="value",...} count`.
#[derive(Default)]
struct Family {
    samples: Mutex<BTreeMap<Vec<(&'static str, String)>, u64>>,
}

impl Family {
    fn samples(&self) -> Vec<(Vec<(&'static str, String)>, u64)> {
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        samples
            .iter()
            .map(|(labels, count)| (labels.clone(), *count))
            .collect()
    }

    /// The count of the sample whose labels include `key=value`, summed.
    fn count(&self, key: &str, value: &str) -> u64 {
        self.samples()
            .iter()
            .filter(|(labels, _)| labels.iter().any(|(k, v)| *k == key && v == value))
            .map(|(_, count)| count)
            .sum()
    }

    fn increment(&self, labels: Vec<(&'static str, String)>) {
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *samples.entry(labels).or_default() += 1;
    }

    fn render(&self, text: &mut String, name: &str, help: &str) {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} counter");
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (labels, count) in samples.iter() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", value.replace(['"', '\\', '\n'], "_")))
                .collect();
            let _ = writeln!(text, "{name}{{{}}} {count}", labels.join(","));
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    requests: Family,
    upstream_requests: Family,
    page_cache: Family,
    file_cache: Family,
    build_containers: Family,
    metadata_extractions: Family,
    file_bytes_served: AtomicU64,
    upstream_bytes: AtomicU64,
    files_stored: AtomicU64,
    uploads_rejected: AtomicU64,
    pages: PageCounters,
}

/// The rendered-page cache's counters: plain atomics, as they move on every page request.
#[derive(Default)]
struct PageCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    renders: AtomicU64,
    evictions: AtomicU64,
    bytes: AtomicU64,
    budget: AtomicU64,
    /// Compressions made, by coding: gzip, zstd.
    compressions: [AtomicU64; 2],
    /// Page bodies sent, by coding: identity, gzip, zstd.
    sent: [AtomicU64; 3],
}

const COMPRESSED_CODINGS: [&str; 2] = ["gzip", "zstd"];
const SENT_CODINGS: [&str; 3] = ["identity", "gzip", "zstd"];

fn coding_slot<'a>(
    counters: &'a [AtomicU64],
    names: &[&str],
    coding: &str,
) -> Option<&'a AtomicU64> {
    names
        .iter()
        .position(|name| *name == coding)
        .map(|index| &counters[index])
}

impl Metrics {
    /// `route` is the resource name from the route table, so its values are bounded.
    pub fn record_request(&self, route: &str, status: u16) {
        self.requests.increment(vec![
            ("route", route.to_string()),
            ("status", status.to_string()),
        ]);
    }

    /// One attempt against an upstream; `outcome` is `ok`, `not_modified`, `not_found`,
    /// `status_<code>` or `error`.
    pub fn upstream_request(&self, upstream: &str, outcome: &str) {
        self.upstream_requests.increment(vec![
            ("upstream", upstream.to_string()),
            ("outcome", outcome.to_string()),
        ]);
    }

    /// `hit`, `miss` or `stale`.
    pub fn page_cache(&self, result: &'static str) {
        self.page_cache
            .increment(vec![("result", result.to_string())]);
    }

    /// `hit` or `miss`.
    pub fn file_cache(&self, result: &'static str) {
        self.file_cache
            .increment(vec![("result", result.to_string())]);
    }

    /// A build step container started (`build` or `smoke`).
    pub fn build_container_started(&self, step: &'static str) {
        self.build_containers
            .increment(vec![("step", step.to_string())]);
    }

    /// METADATA read from a mirrored wheel once stored: `stored` or `refused`.
    pub fn metadata_extracted(&self, result: &'static str) {
        self.metadata_extractions
            .increment(vec![("result", result.to_string())]);
    }

    pub fn add_file_bytes_served(&self, bytes: u64) {
        self.file_bytes_served.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_upstream_bytes(&self, bytes: u64) {
        self.upstream_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_files_stored(&self, count: u64) {
        self.files_stored.store(count, Ordering::Relaxed);
    }

    pub fn file_stored(&self) {
        self.files_stored.fetch_add(1, Ordering::Relaxed);
    }

    pub fn upload_rejected(&self) {
        self.uploads_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// A rendered page looked up: kept (`hit`) or to be made (`miss`).
    pub fn page_lookup(&self, hit: bool) {
        let counter = match hit {
            true => &self.pages.hits,
            false => &self.pages.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A page rendered from the records (or an upstream page): what the cache saves.
    pub fn page_rendered(&self) {
        self.pages.renders.fetch_add(1, Ordering::Relaxed);
    }

    pub fn page_evicted(&self) {
        self.pages.evictions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_page_cache_bytes(&self, bytes: u64) {
        self.pages.bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn set_page_cache_budget(&self, bytes: u64) {
        self.pages.budget.store(bytes, Ordering::Relaxed);
    }

    /// A page compressed into `coding` (`gzip` or `zstd`).
    pub fn page_compressed(&self, coding: &str) {
        if let Some(counter) = coding_slot(&self.pages.compressions, &COMPRESSED_CODINGS, coding) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A page body sent in `coding` (`identity`, `gzip` or `zstd`).
    pub fn page_sent(&self, coding: &str) {
        if let Some(counter) = coding_slot(&self.pages.sent, &SENT_CODINGS, coding) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Page and file cache lookups: (hits, all lookups).
    pub fn cache_lookups(&self) -> ((u64, u64), (u64, u64)) {
        let page = (
            self.page_cache.count("result", "hit"),
            ["hit", "miss"]
                .iter()
                .map(|result| self.page_cache.count("result", result))
                .sum(),
        );
        let file = (
            self.file_cache.count("result", "hit"),
            ["hit", "miss"]
                .iter()
                .map(|result| self.file_cache.count("result", result))
                .sum(),
        );
        (page, file)
    }

    /// Per upstream: (outcome, count) of every request made to it.
    pub fn upstream_outcomes(&self) -> Vec<(String, String, u64)> {
        self.upstream_requests
            .samples()
            .into_iter()
            .filter_map(|(labels, count)| {
                let get = |key: &str| {
                    labels
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| v.clone())
                };
                Some((get("upstream")?, get("outcome")?, count))
            })
            .collect()
    }

    pub fn files_stored(&self) -> u64 {
        self.files_stored.load(Ordering::Relaxed)
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        self.requests.render(
            &mut text,
            "edelweiss_http_requests_total",
            "HTTP requests by route and status.",
        );
        self.upstream_requests.render(
            &mut text,
            "edelweiss_upstream_requests_total",
            "Requests to upstream indexes by outcome.",
        );
        self.page_cache.render(
            &mut text,
            "edelweiss_upstream_page_cache_total",
            "Upstream project page lookups: hit, miss, stale.",
        );
        self.file_cache.render(
            &mut text,
            "edelweiss_upstream_file_cache_total",
            "Upstream file lookups: hit or miss.",
        );
        self.build_containers.render(
            &mut text,
            "edelweiss_build_containers_started_total",
            "Build step containers started.",
        );
        self.metadata_extractions.render(
            &mut text,
            "edelweiss_metadata_extractions_total",
            "METADATA read from mirrored wheels once stored: stored or refused.",
        );
        let single = [
            (
                "edelweiss_file_bytes_served_total",
                "counter",
                "Bytes of files and metadata files sent.",
                &self.file_bytes_served,
            ),
            (
                "edelweiss_upstream_bytes_fetched_total",
                "counter",
                "Bytes of files fetched from upstreams.",
                &self.upstream_bytes,
            ),
            (
                "edelweiss_files_stored",
                "gauge",
                "Files recorded in the index.",
                &self.files_stored,
            ),
            (
                "edelweiss_uploads_rejected_total",
                "counter",
                "Uploads refused by validation or auth.",
                &self.uploads_rejected,
            ),
        ];
        for (name, kind, help, value) in single {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        self.render_pages(&mut text);
        text
    }

    fn render_pages(&self, text: &mut String) {
        let pages = &self.pages;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let _ = writeln!(
            text,
            "# HELP edelweiss_page_cache_lookups_total Rendered page lookups: hit (kept) or miss (made).\n\
             # TYPE edelweiss_page_cache_lookups_total counter\n\
             edelweiss_page_cache_lookups_total{{result=\"hit\"}} {}\n\
             edelweiss_page_cache_lookups_total{{result=\"miss\"}} {}",
            load(&pages.hits),
            load(&pages.misses)
        );
        let single = [
            (
                "edelweiss_page_renders_total",
                "counter",
                "Project and list pages rendered from the records.",
                &pages.renders,
            ),
            (
                "edelweiss_page_cache_evictions_total",
                "counter",
                "Rendered pages dropped to stay within the budget.",
                &pages.evictions,
            ),
            (
                "edelweiss_page_cache_bytes",
                "gauge",
                "Bytes of rendered and compressed pages kept.",
                &pages.bytes,
            ),
            (
                "edelweiss_page_cache_budget_bytes",
                "gauge",
                "The most bytes of pages kept (limits.page_cache_bytes).",
                &pages.budget,
            ),
        ];
        for (name, kind, help, value) in single {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                load(value)
            );
        }
        let _ = writeln!(
            text,
            "# HELP edelweiss_page_compressions_total Pages compressed, once per kept page and coding.\n\
             # TYPE edelweiss_page_compressions_total counter"
        );
        for (coding, counter) in COMPRESSED_CODINGS.iter().zip(&pages.compressions) {
            let _ = writeln!(
                text,
                "edelweiss_page_compressions_total{{encoding=\"{coding}\"}} {}",
                load(counter)
            );
        }
        let _ = writeln!(
            text,
            "# HELP edelweiss_page_responses_total Page bodies sent, by content coding.\n\
             # TYPE edelweiss_page_responses_total counter"
        );
        for (coding, counter) in SENT_CODINGS.iter().zip(&pages.sent) {
            let _ = writeln!(
                text,
                "edelweiss_page_responses_total{{encoding=\"{coding}\"}} {}",
                load(counter)
            );
        }
    }
}
