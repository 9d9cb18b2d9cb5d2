//! End-to-end scenarios run against more than one build of the server (the cargo build
//! and the static musl binary): one definition, several servers.

use std::path::Path;

use super::dists::{WheelSpec, platform_wheels, write_sdist};
use super::server::TestServer;
use super::{sha256_hex, text};

/// twine uploads musllinux, manylinux and pure wheels and an sdist; pip picks the
/// musllinux wheel for an Alpine target and checks its hash; uv resolves from the PEP 658
/// metadata files without downloading a wheel.
pub fn upload_then_install_for_musl(server: &TestServer, work: &Path) {
    let uploads = work.join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let mut files = platform_wheels(&uploads, "fastthing", "1.0");
    files.push(write_sdist(&uploads, "fastthing", "1.0", &[]));
    let mut pure = WheelSpec::new("purelib", "2.0", "py3-none-any");
    pure.requires_python = Some(">=3.8");
    files.push(pure.write(&uploads));
    let mut app = WheelSpec::new("demo-app", "0.1", "py3-none-any");
    app.requires_dist = &["fastthing>=1.0", "purelib; python_version >= \"3.8\""];
    files.push(app.write(&uploads));
    let paths: Vec<&Path> = files.iter().map(|path| path.as_path()).collect();
    let output = server.twine_upload(&paths);
    assert!(
        output.status.success(),
        "twine upload failed:\n{}",
        text(&output)
    );

    let downloads = work.join("downloads");
    let output = super::pip_download_musl(
        &server.index_url(),
        &downloads,
        &["--no-deps", "fastthing==1.0"],
    );
    assert!(output.status.success(), "{}", text(&output));
    let downloaded: Vec<String> = std::fs::read_dir(&downloads)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        downloaded,
        ["fastthing-1.0-cp313-cp313-musllinux_1_2_x86_64.whl"]
    );
    let uploaded = std::fs::read(uploads.join(&downloaded[0])).unwrap();
    let fetched = std::fs::read(downloads.join(&downloaded[0])).unwrap();
    assert_eq!(
        sha256_hex(&fetched),
        sha256_hex(&uploaded),
        "downloaded bytes differ from the upload"
    );

    let wheels_before =
        server.metric("edelweiss_http_requests_total{route=\"file\",status=\"200\"}");
    let requirements = work.join("requirements.in");
    std::fs::write(&requirements, "demo-app\n").unwrap();
    let resolved = super::uv_compile_musl(&server.index_url(), &requirements);
    for pin in ["demo-app==0.1", "fastthing==1.0", "purelib==2.0"] {
        assert!(
            resolved.contains(pin),
            "uv did not resolve {pin}:\n{resolved}"
        );
    }
    let metadata_fetches =
        server.metric("edelweiss_http_requests_total{route=\"file_metadata\",status=\"200\"}");
    let wheels_after =
        server.metric("edelweiss_http_requests_total{route=\"file\",status=\"200\"}");
    assert!(
        metadata_fetches >= 3,
        "uv fetched {metadata_fetches} metadata files"
    );
    assert_eq!(
        wheels_after, wheels_before,
        "uv downloaded whole wheels instead of their metadata"
    );
}
