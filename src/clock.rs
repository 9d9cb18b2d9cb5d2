//! The two clocks the crate records: RFC 3339 UTC with microseconds (PEP 700 `upload-time`,
//! build timings) and whole Unix seconds (leases, cache ages).

pub fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
