//! Counters and gauges for `/metrics`, in the Prometheus text exposition format (0.0.4).
//!
//! The text is written by `prometheus-client`, the Prometheus project's own Rust client,
//! chosen over the `prometheus` crate because it is kept in step with the exposition format
//! by its authors, escapes label values (`\`, `"`, newline) as that format requires, and
//! needs neither protobuf nor a process-wide registry.
//!
//! Every label value is bounded: route names from the route table, status codes, the
//! configured upstreams and a fixed set of outcomes, and fixed result, step and coding names.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

/// The format's content type, for the `/metrics` response.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

type Level = Gauge<u64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EncodingLabel {
    encoding: &'static str,
}

/// Every handle shares its value with the registry that renders it.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    /// The label sets of `upstream_requests`, for the status page: a family cannot be listed.
    upstreams_seen: Mutex<BTreeSet<UpstreamLabels>>,
    page_cache: Family<ResultLabel, Counter>,
    file_cache: Family<ResultLabel, Counter>,
    build_containers: Family<StepLabel, Counter>,
    metadata_extractions: Family<ResultLabel, Counter>,
    file_bytes_served: Counter,
    upstream_bytes: Counter,
    files_stored: Level,
    uploads_rejected: Counter,
    pages: PageCounters,
}

/// The rendered-page cache's counters: their series exist from the start, and each is held
/// as its own handle, a plain atomic, as they move on every page request.
struct PageCounters {
    hits: Counter,
    misses: Counter,
    renders: Counter,
    evictions: Counter,
    bytes: Level,
    budget: Level,
    /// Compressions made, by coding: gzip, zstd.
    compressions: [Counter; 2],
    /// Page bodies sent, by coding: identity, gzip, zstd.
    sent: [Counter; 3],
}

const COMPRESSED_CODINGS: [&str; 2] = ["gzip", "zstd"];
const SENT_CODINGS: [&str; 3] = ["identity", "gzip", "zstd"];

/// A family's name and help as registered: the encoder adds `_total` to a counter's name
/// and a full stop to its help.
type Descriptor = (&'static str, &'static str);

/// Every family, in the order `/metrics` shows them.
mod family {
    use super::Descriptor;

    pub const HTTP_REQUESTS: Descriptor = (
        "edelweiss_http_requests",
        "HTTP requests by route and status",
    );
    pub const UPSTREAM_REQUESTS: Descriptor = (
        "edelweiss_upstream_requests",
        "Requests to upstream indexes by outcome",
    );
    pub const UPSTREAM_PAGE_CACHE: Descriptor = (
        "edelweiss_upstream_page_cache",
        "Upstream project page lookups: hit, miss, stale",
    );
    pub const UPSTREAM_FILE_CACHE: Descriptor = (
        "edelweiss_upstream_file_cache",
        "Upstream file lookups: hit or miss",
    );
    pub const BUILD_CONTAINERS: Descriptor = (
        "edelweiss_build_containers_started",
        "Build step containers started",
    );
    pub const METADATA_EXTRACTIONS: Descriptor = (
        "edelweiss_metadata_extractions",
        "METADATA read from mirrored wheels once stored: stored or refused",
    );
    pub const FILE_BYTES_SERVED: Descriptor = (
        "edelweiss_file_bytes_served",
        "Bytes of files and metadata files sent",
    );
    pub const UPSTREAM_BYTES: Descriptor = (
        "edelweiss_upstream_bytes_fetched",
        "Bytes of files fetched from upstreams",
    );
    pub const FILES_STORED: Descriptor = ("edelweiss_files_stored", "Files recorded in the index");
    pub const UPLOADS_REJECTED: Descriptor = (
        "edelweiss_uploads_rejected",
        "Uploads refused by validation or auth",
    );
    pub const PAGE_LOOKUPS: Descriptor = (
        "edelweiss_page_cache_lookups",
        "Rendered page lookups: hit (kept) or miss (made)",
    );
    pub const PAGE_RENDERS: Descriptor = (
        "edelweiss_page_renders",
        "Project and list pages rendered from the records",
    );
    pub const PAGE_EVICTIONS: Descriptor = (
        "edelweiss_page_cache_evictions",
        "Rendered pages dropped to stay within the budget",
    );
    pub const PAGE_BYTES: Descriptor = (
        "edelweiss_page_cache_bytes",
        "Bytes of rendered and compressed pages kept",
    );
    pub const PAGE_BUDGET: Descriptor = (
        "edelweiss_page_cache_budget_bytes",
        "The most bytes of pages kept (limits.page_cache_bytes)",
    );
    pub const PAGE_COMPRESSIONS: Descriptor = (
        "edelweiss_page_compressions",
        "Pages compressed, once per kept page and coding",
    );
    pub const PAGE_RESPONSES: Descriptor = (
        "edelweiss_page_responses",
        "Page bodies sent, by content coding",
    );
}

/// Registers a new metric and gives back the handle that moves it.
fn register<M: Metric + Clone + Default>(registry: &mut Registry, (name, help): Descriptor) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

impl PageCounters {
    fn register(registry: &mut Registry) -> Self {
        let lookups: Family<ResultLabel, Counter> = register(registry, family::PAGE_LOOKUPS);
        let result = |result| lookups.get_or_create_owned(&ResultLabel { result });
        Self {
            hits: result("hit"),
            misses: result("miss"),
            renders: register(registry, family::PAGE_RENDERS),
            evictions: register(registry, family::PAGE_EVICTIONS),
            bytes: register(registry, family::PAGE_BYTES),
            budget: register(registry, family::PAGE_BUDGET),
            compressions: coding_counters(
                &register(registry, family::PAGE_COMPRESSIONS),
                COMPRESSED_CODINGS,
            ),
            sent: coding_counters(&register(registry, family::PAGE_RESPONSES), SENT_CODINGS),
        }
    }
}

/// One series of `family` per coding, in the order of `codings`.
fn coding_counters<const N: usize>(
    family: &Family<EncodingLabel, Counter>,
    codings: [&'static str; N],
) -> [Counter; N] {
    codings.map(|encoding| family.get_or_create_owned(&EncodingLabel { encoding }))
}

fn coding_slot<'a>(counters: &'a [Counter], names: &[&str], coding: &str) -> Option<&'a Counter> {
    names
        .iter()
        .position(|name| *name == coding)
        .map(|index| &counters[index])
}

fn count(family: &Family<ResultLabel, Counter>, result: &'static str) -> u64 {
    family
        .get(&ResultLabel { result })
        .map_or(0, |counter| counter.get())
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let registry = &mut registry;
        Self {
            requests: register(registry, family::HTTP_REQUESTS),
            upstream_requests: register(registry, family::UPSTREAM_REQUESTS),
            upstreams_seen: Mutex::default(),
            page_cache: register(registry, family::UPSTREAM_PAGE_CACHE),
            file_cache: register(registry, family::UPSTREAM_FILE_CACHE),
            build_containers: register(registry, family::BUILD_CONTAINERS),
            metadata_extractions: register(registry, family::METADATA_EXTRACTIONS),
            file_bytes_served: register(registry, family::FILE_BYTES_SERVED),
            upstream_bytes: register(registry, family::UPSTREAM_BYTES),
            files_stored: register(registry, family::FILES_STORED),
            uploads_rejected: register(registry, family::UPLOADS_REJECTED),
            pages: PageCounters::register(registry),
            registry: std::mem::take(registry),
        }
    }
}

impl Metrics {
    /// `route` is the resource name from the route table, so its values are bounded.
    pub fn record_request(&self, route: &str, status: u16) {
        let labels = RequestLabels {
            route: route.to_string(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// One attempt against an upstream; `outcome` is `ok`, `not_modified`, `not_found`,
    /// `status_<code>` or `error`.
    pub fn upstream_request(&self, upstream: &str, outcome: &str) {
        let labels = UpstreamLabels {
            upstream: upstream.to_string(),
            outcome: outcome.to_string(),
        };
        self.upstream_requests.get_or_create(&labels).inc();
        self.upstreams_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(labels);
    }

    /// `hit`, `miss` or `stale`.
    pub fn page_cache(&self, result: &'static str) {
        self.page_cache.get_or_create(&ResultLabel { result }).inc();
    }

    /// `hit` or `miss`.
    pub fn file_cache(&self, result: &'static str) {
        self.file_cache.get_or_create(&ResultLabel { result }).inc();
    }

    /// A build step container started (`build step` or `smoke test`).
    pub fn build_container_started(&self, step: &'static str) {
        self.build_containers
            .get_or_create(&StepLabel { step })
            .inc();
    }

    /// METADATA read from a mirrored wheel once stored: `stored` or `refused`.
    pub fn metadata_extracted(&self, result: &'static str) {
        self.metadata_extractions
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    pub fn add_file_bytes_served(&self, bytes: u64) {
        self.file_bytes_served.inc_by(bytes);
    }

    pub fn add_upstream_bytes(&self, bytes: u64) {
        self.upstream_bytes.inc_by(bytes);
    }

    pub fn set_files_stored(&self, count: u64) {
        self.files_stored.set(count);
    }

    pub fn file_stored(&self) {
        self.files_stored.inc();
    }

    pub fn upload_rejected(&self) {
        self.uploads_rejected.inc();
    }

    /// A rendered page looked up: kept (`hit`) or to be made (`miss`).
    pub fn page_lookup(&self, hit: bool) {
        match hit {
            true => self.pages.hits.inc(),
            false => self.pages.misses.inc(),
        };
    }

    /// A page rendered from the records (or an upstream page): what the cache saves.
    pub fn page_rendered(&self) {
        self.pages.renders.inc();
    }

    pub fn page_evicted(&self) {
        self.pages.evictions.inc();
    }

    pub fn set_page_cache_bytes(&self, bytes: u64) {
        self.pages.bytes.set(bytes);
    }

    pub fn set_page_cache_budget(&self, bytes: u64) {
        self.pages.budget.set(bytes);
    }

    /// A page compressed into `coding` (`gzip` or `zstd`); any other coding is not counted.
    pub fn page_compressed(&self, coding: &str) {
        if let Some(counter) = coding_slot(&self.pages.compressions, &COMPRESSED_CODINGS, coding) {
            counter.inc();
        }
    }

    /// A page body sent in `coding` (`identity`, `gzip` or `zstd`); any other is not counted.
    pub fn page_sent(&self, coding: &str) {
        if let Some(counter) = coding_slot(&self.pages.sent, &SENT_CODINGS, coding) {
            counter.inc();
        }
    }

    /// Page and file cache lookups: (hits, all lookups).
    pub fn cache_lookups(&self) -> ((u64, u64), (u64, u64)) {
        let lookups = |family| {
            let hits = count(family, "hit");
            (hits, hits + count(family, "miss"))
        };
        (lookups(&self.page_cache), lookups(&self.file_cache))
    }

    /// Per upstream: (upstream, outcome, count) of every request made to it, sorted.
    pub fn upstream_outcomes(&self) -> Vec<(String, String, u64)> {
        let seen = self
            .upstreams_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.iter()
            .map(|labels| {
                let count = self
                    .upstream_requests
                    .get(labels)
                    .map_or(0, |counter| counter.get());
                (labels.upstream.clone(), labels.outcome.clone(), count)
            })
            .collect()
    }

    pub fn files_stored(&self) -> u64 {
        self.files_stored.get()
    }

    /// The exposition text of every family, in registration order.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail, nor can encoding labels of strings and numbers.
        prometheus_text::encode(&mut text, &self.registry)
            .expect("the exposition text is written into a String");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_value_is_escaped_as_the_exposition_format_requires() {
        let metrics = Metrics::default();
        metrics.upstream_request("https://up.example/a\"b\\c\nd/", "ok");
        let expected = r#"edelweiss_upstream_requests_total{upstream="https://up.example/a\"b\\c\nd/",outcome="ok"} 1"#;
        let text = metrics.render();
        assert!(text.lines().any(|line| line == expected), "{text}");
    }

    #[test]
    fn counter_names_end_in_total_once_and_help_in_one_full_stop() {
        let metrics = Metrics::default();
        metrics.record_request("project_page", 200);
        let text = metrics.render();
        assert!(text.contains(
            "# HELP edelweiss_http_requests_total HTTP requests by route and status.\n\
             # TYPE edelweiss_http_requests_total counter\n\
             edelweiss_http_requests_total{route=\"project_page\",status=\"200\"} 1\n"
        ));
        assert!(text.contains("# TYPE edelweiss_files_stored gauge\nedelweiss_files_stored 0\n"));
        assert!(
            !text.contains("_total_total") && !text.contains(".."),
            "{text}"
        );
    }

    #[test]
    fn the_page_cache_series_exist_before_anything_moves_them() {
        let text = Metrics::default().render();
        for series in [
            "edelweiss_page_cache_lookups_total{result=\"hit\"} 0",
            "edelweiss_page_cache_lookups_total{result=\"miss\"} 0",
            "edelweiss_page_compressions_total{encoding=\"zstd\"} 0",
            "edelweiss_page_responses_total{encoding=\"identity\"} 0",
        ] {
            assert!(text.lines().any(|line| line == series), "{series}\n{text}");
        }
    }

    #[test]
    fn a_coding_outside_the_fixed_set_is_not_counted() {
        let metrics = Metrics::default();
        metrics.page_sent("gzip");
        metrics.page_sent("br\"");
        metrics.page_compressed("identity");
        let text = metrics.render();
        assert!(text.contains("edelweiss_page_responses_total{encoding=\"gzip\"} 1\n"));
        assert!(!text.contains("br") && !text.contains("compressions_total{encoding=\"identity"));
    }

    #[test]
    fn the_status_page_reads_back_cache_lookups_and_upstream_outcomes() {
        let metrics = Metrics::default();
        for result in ["hit", "hit", "miss", "stale"] {
            metrics.page_cache(result);
        }
        metrics.file_cache("miss");
        for (upstream, outcome) in [
            ("b", "ok"),
            ("a", "status_503"),
            ("b", "ok"),
            ("a", "error"),
        ] {
            metrics.upstream_request(upstream, outcome);
        }
        assert_eq!(metrics.cache_lookups(), ((2, 3), (0, 1)));
        let outcome = |upstream: &str, outcome: &str, count| {
            (upstream.to_string(), outcome.to_string(), count)
        };
        assert_eq!(
            metrics.upstream_outcomes(),
            [
                outcome("a", "error", 1),
                outcome("a", "status_503", 1),
                outcome("b", "ok", 2)
            ]
        );
    }

    #[test]
    fn the_files_stored_gauge_is_set_then_moved() {
        let metrics = Metrics::default();
        metrics.set_files_stored(41);
        metrics.file_stored();
        assert_eq!(metrics.files_stored(), 42);
        assert!(metrics.render().contains("\nedelweiss_files_stored 42\n"));
    }
}
