//! The status pages for people: plain server-rendered HTML that works without JavaScript.

use std::fmt::Write as _;

use crate::farm::{BuildRecord, BuildState};
use crate::index::escape;

pub struct Overview<'a> {
    pub builds: &'a [BuildRecord],
    pub files_stored: u64,
    /// (hits, lookups) of the upstream page cache and file cache.
    pub page_cache: (u64, u64),
    pub file_cache: (u64, u64),
    /// (upstream, outcome, count).
    pub upstreams: &'a [(String, String, u64)],
    pub configured_upstreams: &'a [String],
    pub targets: &'a [String],
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}.succeeded{color:#176a2c}.failed{color:#a11}.running{color:#a60}.queued{color:#555}pre{background:#f4f4f4;padding:1em;overflow:auto}";

fn page(title: &str, refresh: bool, body: &str) -> String {
    let refresh = if refresh {
        "<meta http-equiv=\"refresh\" content=\"3\">"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">{refresh}<title>{}</title><style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        escape(title)
    )
}

fn rate((hits, lookups): (u64, u64)) -> String {
    if lookups == 0 {
        "no lookups yet".into()
    } else {
        format!("{:.0}% of {lookups}", 100.0 * hits as f64 / lookups as f64)
    }
}

/// Seconds from start to finish (or to now for a running build).
fn duration(record: &BuildRecord) -> String {
    let parse = |text: &Option<String>| {
        text.as_deref()
            .and_then(|text| text.parse::<jiff::Timestamp>().ok())
    };
    let Some(started) = parse(&record.started_at) else {
        return "-".into();
    };
    let finished = parse(&record.finished_at).unwrap_or_else(jiff::Timestamp::now);
    format!("{:.1} s", (finished - started).as_secs_f64())
}

fn state(record: &BuildRecord) -> &'static str {
    state_name(record.state)
}

/// A build state as the API and the pages spell it.
pub fn state_name(state: BuildState) -> &'static str {
    match state {
        BuildState::Waiting => "waiting",
        BuildState::Queued => "queued",
        BuildState::Running => "running",
        BuildState::Succeeded => "succeeded",
        BuildState::Failed => "failed",
    }
}

pub fn overview(view: &Overview) -> String {
    let mut body = String::from("<h1>edelweiss</h1>\n");
    let queued = view
        .builds
        .iter()
        .filter(|build| build.state == BuildState::Queued)
        .count();
    let running = view
        .builds
        .iter()
        .filter(|build| build.state == BuildState::Running)
        .count();
    let waiting = view
        .builds
        .iter()
        .filter(|build| build.state == BuildState::Waiting)
        .count();
    let _ = writeln!(
        body,
        "<h2>Queue</h2>\n<p id=\"queue\">{queued} queued, {running} running, {waiting} waiting for the builds of their requirements; targets: {}</p>",
        escape(&view.targets.join(", "))
    );
    let _ = writeln!(
        body,
        "<h2>Recent builds</h2>\n<table id=\"builds\"><tr><th>build</th><th>project</th><th>version</th><th>target</th><th>status</th><th>duration</th><th>log</th></tr>"
    );
    for build in view.builds.iter().take(50) {
        let id = escape(&build.id);
        let _ = writeln!(
            body,
            "<tr><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td><a href=\"/builds/{id}\">log</a></td></tr>",
            escape(build.project.as_ref()),
            escape(&build.version.to_string()),
            escape(&build.target.to_string()),
            state(build),
            state(build),
            duration(build)
        );
    }
    body.push_str("</table>\n");
    let _ = writeln!(
        body,
        "<h2>Cache</h2>\n<p id=\"cache\">Upstream pages from cache: {}. Upstream files from store: {}.</p>",
        rate(view.page_cache),
        rate(view.file_cache)
    );
    let _ = writeln!(
        body,
        "<h2>Storage</h2>\n<p id=\"storage\">{} files stored.</p>",
        view.files_stored
    );
    body.push_str("<h2>Upstreams</h2>\n<table id=\"upstreams\"><tr><th>upstream</th><th>requests by outcome</th></tr>\n");
    if view.configured_upstreams.is_empty() {
        body.push_str("<tr><td>none</td><td>local files only</td></tr>\n");
    }
    for upstream in view.configured_upstreams {
        let outcomes: Vec<String> = view
            .upstreams
            .iter()
            .filter(|(name, _, _)| name == upstream)
            .map(|(_, outcome, count)| format!("{outcome}: {count}"))
            .collect();
        let outcomes = if outcomes.is_empty() {
            "no requests yet".to_string()
        } else {
            outcomes.join(", ")
        };
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(upstream),
            escape(&outcomes)
        );
    }
    body.push_str("</table>\n");
    page("edelweiss", false, &body)
}

pub fn build(record: &BuildRecord, log: Option<&str>) -> String {
    let mut body = format!(
        "<p><a href=\"/\">edelweiss</a></p>\n<h1>Build {}</h1>\n<table id=\"build\">\n",
        escape(&record.id)
    );
    let failure = record
        .failure
        .as_ref()
        .map(|failure| format!("{:?}: {}", failure.kind, failure.message));
    let wheel = record.wheel.as_ref().map(|wheel| wheel.filename.clone());
    let rows = [
        ("project", Some(record.project.to_string())),
        ("version", Some(record.version.to_string())),
        ("target", Some(record.target.to_string())),
        ("status", Some(state(record).to_string())),
        ("duration", Some(duration(record))),
        ("attempts", Some(record.attempts.to_string())),
        ("key", Some(record.key.to_string())),
        ("sdist", Some(record.sdist_filename.clone())),
        ("wheel", wheel),
        ("failure", failure),
        (
            "waits for",
            (!record.needs.is_empty()).then(|| record.needs.join(", ")),
        ),
        ("queued", Some(record.queued_at.clone())),
        ("started", record.started_at.clone()),
        ("finished", record.finished_at.clone()),
    ];
    for (name, value) in rows {
        if let Some(value) = value {
            let _ = writeln!(body, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
        }
    }
    body.push_str("</table>\n<h2>Log</h2>\n");
    let log = log.unwrap_or(if record.is_finished() {
        "(no log)"
    } else {
        "(the log appears when the build finishes; this page refreshes itself)"
    });
    let _ = writeln!(body, "<pre id=\"log\">{}</pre>", escape(log));
    page(
        &format!("edelweiss build {}", record.id),
        !record.is_finished(),
        &body,
    )
}
