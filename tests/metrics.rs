//! `/metrics` read back by a strict reader of the Prometheus text format: every family the
//! server exposes keeps its name and type, and label values from outside come out escaped.

mod common;

use common::dists::WheelSpec;
use common::exposition::{Exposition, Sample, parse};
use common::server::{TestServer, base_config};
use common::upstream::{UpstreamServer, UpstreamTree};

/// Every family `/metrics` shows, as dashboards and `bench/` scripts name them, with its type.
const FAMILIES: [(&str, &str); 17] = [
    ("edelweiss_http_requests_total", "counter"),
    ("edelweiss_upstream_requests_total", "counter"),
    ("edelweiss_upstream_page_cache_total", "counter"),
    ("edelweiss_upstream_file_cache_total", "counter"),
    ("edelweiss_build_containers_started_total", "counter"),
    ("edelweiss_metadata_extractions_total", "counter"),
    ("edelweiss_file_bytes_served_total", "counter"),
    ("edelweiss_upstream_bytes_fetched_total", "counter"),
    ("edelweiss_files_stored", "gauge"),
    ("edelweiss_uploads_rejected_total", "counter"),
    ("edelweiss_page_cache_lookups_total", "counter"),
    ("edelweiss_page_renders_total", "counter"),
    ("edelweiss_page_cache_evictions_total", "counter"),
    ("edelweiss_page_cache_bytes", "gauge"),
    ("edelweiss_page_cache_budget_bytes", "gauge"),
    ("edelweiss_page_compressions_total", "counter"),
    ("edelweiss_page_responses_total", "counter"),
];

fn read(text: &str) -> Exposition {
    parse(text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

fn find<'a>(exposition: &'a Exposition, name: &str, labels: &[(&str, &str)]) -> &'a Sample {
    exposition
        .samples
        .iter()
        .find(|sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.label(key) == Some(value))
        })
        .unwrap_or_else(|| panic!("no {name} {labels:?} in {exposition:#?}"))
}

#[test]
fn a_running_servers_metrics_read_back_with_every_family_named_and_typed() {
    let work = tempfile::tempdir().unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    let wheel = WheelSpec::new("purelib", "2.0", "py3-none-any").write(work.path());
    tree.publish("purelib", &[wheel]);
    let upstream = UpstreamServer::start(&tree, "json");
    let server = TestServer::mirroring(&[&upstream.simple_url()], &base_config("", ""));
    assert_eq!(server.get("/simple/purelib/").status(), 200);
    server.listed_file("purelib", "purelib-2.0-py3-none-any.whl");
    assert_eq!(server.get("/no/such/route").status(), 404);

    let response = server.get("/metrics");
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let exposition = read(&response.text().unwrap());
    for (name, kind) in &exposition.types {
        assert!(
            FAMILIES.contains(&(name.as_str(), kind.as_str())),
            "{name} ({kind}) is not a family of ours"
        );
        assert!(exposition.help.contains_key(name), "{name} has no HELP");
    }
    // A family shows once it has a sample: no build ran, and METADATA is read in the
    // background.
    let not_yet = [
        "edelweiss_build_containers_started_total",
        "edelweiss_metadata_extractions_total",
    ];
    for (name, _) in FAMILIES.iter().filter(|(name, _)| !not_yet.contains(name)) {
        assert!(exposition.types.contains_key(*name), "{name} is missing");
    }
    for sample in &exposition.samples {
        assert!(
            exposition.types.contains_key(&sample.name),
            "{} has no TYPE",
            sample.name
        );
    }
    let simple_url = upstream.simple_url();
    let fetched = [("upstream", simple_url.as_str()), ("outcome", "ok")];
    assert!(find(&exposition, "edelweiss_upstream_requests_total", &fetched).value >= 1.0);
    let page = [("route", "project_page"), ("status", "200")];
    assert!(find(&exposition, "edelweiss_http_requests_total", &page).value >= 1.0);
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(
        find(&exposition, "edelweiss_http_requests_total", &unmatched).value,
        1.0
    );
}

#[test]
fn a_label_value_with_a_quote_a_backslash_and_a_newline_is_escaped_and_reads_back() {
    let metrics = edelweiss::metrics::Metrics::default();
    let hostile = "https://up.example/\"quoted\"/back\\slash/new\nline/";
    metrics.upstream_request(hostile, "ok");
    let text = metrics.render();
    assert!(
        text.lines().any(|line| line
            == r#"edelweiss_upstream_requests_total{upstream="https://up.example/\"quoted\"/back\\slash/new\nline/",outcome="ok"} 1"#),
        "{text}"
    );
    let exposition = read(&text);
    let sample = find(
        &exposition,
        "edelweiss_upstream_requests_total",
        &[("outcome", "ok")],
    );
    assert_eq!(sample.label("upstream"), Some(hostile));
    assert_eq!(sample.value, 1.0);
}

#[test]
fn the_reader_refuses_what_the_format_forbids() {
    for broken in [
        "edelweiss_x_total{upstream=\"a\"b\"} 1",
        "edelweiss_x_total{upstream=\"a\\qb\"} 1",
        "edelweiss_x_total{upstream=\"a\nb\"} 1",
        "edelweiss_x_total{upstream=\"a\"outcome=\"ok\"} 1",
        "edelweiss_x_total{upstream=\"a\"} one",
        "# TYPE edelweiss_x_total counter\n# TYPE edelweiss_x_total gauge",
    ] {
        assert!(parse(broken).is_err(), "{broken:?} was read");
    }
}
