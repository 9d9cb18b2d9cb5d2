//! Real pip, uv and twine against the real server.

mod common;

use common::scenarios;
use common::server::TestServer;

#[test]
fn pip_picks_the_musllinux_wheel_and_uv_resolves_from_metadata_files() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    scenarios::upload_then_install_for_musl(&server, work.path());
}
