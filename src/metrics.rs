//! Counters for `/metrics`, in the Prometheus text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    file_bytes_served: AtomicU64,
    files_stored: AtomicU64,
    uploads_rejected: AtomicU64,
}

impl Metrics {
    pub fn record_request(&self, route: &'static str, status: u16) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *requests.entry((route, status)).or_default() += 1;
    }

    pub fn add_file_bytes_served(&self, bytes: u64) {
        self.file_bytes_served.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_files_stored(&self, count: u64) {
        self.files_stored.store(count, Ordering::Relaxed);
    }

    pub fn upload_rejected(&self) {
        self.uploads_rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        text.push_str("# HELP edelweiss_http_requests_total HTTP requests by route and status.\n");
        text.push_str("# TYPE edelweiss_http_requests_total counter\n");
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        for ((route, status), count) in requests {
            let _ = writeln!(
                text,
                "edelweiss_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        let gauges = [
            (
                "edelweiss_file_bytes_served_total",
                "counter",
                "Bytes of files and metadata files sent.",
                &self.file_bytes_served,
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
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        text
    }
}
