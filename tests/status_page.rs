//! The status pages in a real browser (headless Chromium): the DOM it renders and a
//! screenshot of the overview.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::farm::{Runtime, c_extension_sdist, farm_server, request_build, wait_for_build};

fn chromium(args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (Debian's chromium, installed by .ci/setup)");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn the_status_pages_show_builds_queue_cache_storage_and_upstreams() {
    let server = farm_server(Runtime::Runc, 60);
    let work = tempfile::tempdir().unwrap();
    assert!(
        server
            .twine_upload(&[&c_extension_sdist(work.path(), "shown-ext", "")])
            .status
            .success()
    );
    assert!(
        server
            .twine_upload(&[&c_extension_sdist(
                work.path(),
                "broken-ext",
                "raise SystemExit('broken on purpose')"
            )])
            .status
            .success()
    );
    let good = request_build(&server, "shown-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = request_build(&server, "broken-ext", "1.0")["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for_build(&server, &good, Duration::from_secs(300));
    wait_for_build(&server, &bad, Duration::from_secs(300));

    let dom = chromium(&["--dump-dom"], &format!("{}/", server.url));
    for expected in [
        "<h1>edelweiss</h1>",
        "id=\"queue\"",
        "0 queued, 0 running",
        "id=\"cache\"",
        "id=\"storage\"",
        "id=\"upstreams\"",
        &good,
        &bad,
        "class=\"succeeded\"",
        "class=\"failed\"",
        &format!("href=\"/builds/{good}\""),
    ] {
        assert!(
            dom.contains(expected),
            "{expected} missing from the overview:\n{dom}"
        );
    }
    let screenshot = work.path().join("status.png");
    chromium(
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,900",
        ],
        &format!("{}/", server.url),
    );
    assert_eq!(png_size(&screenshot), (1280, 900));
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 10_000,
        "the screenshot is nearly empty"
    );
    if let Some(keep) = std::env::var_os("EDELWEISS_KEEP_SCREENSHOT") {
        std::fs::copy(&screenshot, keep).unwrap();
    }

    let detail = chromium(&["--dump-dom"], &format!("{}/builds/{bad}", server.url));
    assert!(
        detail.contains("broken on purpose") && detail.contains("Package"),
        "{detail}"
    );
    let detail = chromium(&["--dump-dom"], &format!("{}/builds/{good}", server.url));
    assert!(
        detail.contains("smoke test passed") && !detail.contains("http-equiv=\"refresh\""),
        "{detail}"
    );
}
