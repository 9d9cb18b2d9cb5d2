//! Wheels before anyone waits: a `pip install` through a target-pinned index URL against a
//! cold server gets a freshly built wheel, in a root without a compiler.

mod common;

use std::path::Path;

use common::farm::{Runtime, TARGET, c_extension_sdist};
use common::server::{TestServer, base_config};
use common::text;

fn on_demand_server(on_miss: &str, wheels_only: bool) -> TestServer {
    let (builder, runtime) = Runtime::Runc.builders();
    let config = base_config("", "")
        + &common::farm::build_config("runc", &builder, &runtime, 600)
        + &format!(
            "[on_demand]\non_miss = \"{on_miss}\"\nwheels_only = {wheels_only}\nwait_seconds = 300\n"
        );
    TestServer::start_with(&config)
}

/// pip inside the plain runtime root (no compiler, no -dev files), on the host's network so
/// it reaches the server on loopback.
fn pip_install_in_runtime_root(
    index_url: &str,
    requirement: &str,
    site: &Path,
) -> std::process::Output {
    common::musl_root::in_runtime_root(site, "--bind")
        .args([
            "--setenv",
            "PIP_DISABLE_PIP_VERSION_CHECK",
            "1",
            "--setenv",
            "PIP_NO_CACHE_DIR",
            "1",
        ])
        .args([
            "/usr/local/bin/python3.13",
            "-m",
            "pip",
            "install",
            "--target",
            "/tmp/site",
            "--index-url",
            index_url,
            requirement,
        ])
        .output()
        .expect("bwrap (bubblewrap)")
}

#[test]
fn pip_through_a_target_url_waits_for_the_build_and_compiles_nothing() {
    let server = on_demand_server("wait", false);
    let work = tempfile::tempdir().unwrap();
    let upload = server.twine_upload(&[&c_extension_sdist(work.path(), "fresh-ext", "")]);
    assert!(upload.status.success(), "{}", text(&upload));
    let site = work.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    let index = format!("{}/t/{TARGET}/simple/", server.url);
    let output = pip_install_in_runtime_root(&index, "fresh-ext==1.0", &site);
    assert!(
        output.status.success(),
        "pip install failed:\n{}\n{}",
        text(&output),
        server.log()
    );
    let said = text(&output);
    assert!(
        said.contains("fresh_ext-1.0-cp313-cp313-musllinux_1_2_x86_64.whl"),
        "{said}"
    );
    assert!(!said.contains("Building wheel"), "pip compiled: {said}");
    assert!(
        site.join("fresh_ext")
            .join("_speed.cpython-313-x86_64-linux-musl.so")
            .exists()
    );
    let builds = server.get_json_plain("/api/v1/builds");
    assert_eq!(builds["builds"].as_array().unwrap().len(), 1);
    assert_eq!(builds["builds"][0]["state"], "succeeded");
}

#[test]
fn wheels_only_hides_sdists_and_background_mode_answers_at_once() {
    let server = on_demand_server("background", true);
    let work = tempfile::tempdir().unwrap();
    let upload = server.twine_upload(&[&c_extension_sdist(work.path(), "later-ext", "")]);
    assert!(upload.status.success());
    let listed = server.listed_filenames(&format!("/t/{TARGET}/simple/later-ext/"));
    assert!(
        listed.iter().all(|name| !name.ends_with(".tar.gz")),
        "{listed:?}"
    );
    let id = common::poll_for(
        std::time::Duration::from_secs(30),
        "the page request to queue a build",
        || {
            let builds = server.get_json_plain("/api/v1/builds");
            builds["builds"][0]["id"].as_str().map(str::to_string)
        },
    );
    let build = common::farm::wait_for_build(&server, &id, std::time::Duration::from_secs(300));
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    let page = server.get_json(&format!("/t/{TARGET}/simple/later-ext/"));
    assert_eq!(
        page["files"][0]["filename"],
        "later_ext-1.0-cp313-cp313-musllinux_1_2_x86_64.whl"
    );
    assert_eq!(
        server
            .get(&format!("/t/{TARGET}/simple/Later_Ext/"))
            .status(),
        301
    );
    assert_eq!(
        server.get("/t/cp313-nonsense/simple/later-ext/").status(),
        404
    );
}

#[test]
fn the_plain_index_infers_the_target_from_pips_user_agent() {
    let server = on_demand_server("background", false);
    let work = tempfile::tempdir().unwrap();
    let upload = server.twine_upload(&[&c_extension_sdist(work.path(), "agent-ext", "")]);
    assert!(upload.status.success());
    let debian = r#"pip/26.3 {"cpu":"x86_64","distro":{"id":"debian","libc":{"lib":"glibc","version":"2.36"}},"implementation":{"name":"CPython"},"python":"3.13.5"}"#;
    let alpine = r#"pip/26.3 {"cpu":"x86_64","distro":{"id":"alpine","name":"Alpine Linux"},"implementation":{"name":"CPython","version":"3.13.5"},"python":"3.13.5"}"#;
    for agent in [debian, alpine] {
        let response = server
            .client()
            .get(format!("{}/simple/agent-ext/", server.url))
            .header("User-Agent", agent)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        let queued = || {
            server.get_json_plain("/api/v1/builds")["builds"]
                .as_array()
                .unwrap()
                .len()
        };
        if agent == alpine {
            common::poll_until(
                std::time::Duration::from_secs(30),
                "the build pip on Alpine lacks a wheel for",
                || queued() == 1,
            );
        } else {
            // No state to wait for: nothing may be queued, so give a wrongly queued build
            // (it would be queued in the background) a second to show.
            std::thread::sleep(std::time::Duration::from_secs(1));
            assert_eq!(queued(), 0, "after {agent}");
        }
    }
}
