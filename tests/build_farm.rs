//! The build farm on the musl test root, with runc and with docker (the root imported as an
//! image): real sdists built into repaired musllinux wheels, smoke-tested in a fresh runtime
//! root, cached by key, and hostile sdists contained.

mod common;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use common::farm::{
    Runtime, TARGET, build_to_end, c_extension_sdist, containers_started, farm_server,
    request_build, wait_for_build,
};
use common::server::TestServer;
use common::text;

fn upload(server: &TestServer, sdist: &Path) {
    let output = server.twine_upload(&[sdist]);
    assert!(output.status.success(), "{}", text(&output));
}

fn wheel_entries(bytes: &[u8]) -> Vec<String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|index| archive.by_index(index).unwrap().name().unwrap().to_string())
        .collect()
}

fn a_c_extension_sdist_becomes_a_served_musllinux_wheel_built_once(runtime: Runtime) {
    let server = farm_server(runtime, 600);
    let work = tempfile::tempdir().unwrap();
    upload(&server, &c_extension_sdist(work.path(), "demo-ext", ""));

    let requested = request_build(&server, "demo-ext", "1.0");
    assert_eq!(requested["requested"], "queued");
    let build = wait_for_build(
        &server,
        requested["id"].as_str().unwrap(),
        Duration::from_secs(600),
    );
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    let wheel = build["wheel"]["filename"].as_str().unwrap();
    assert_eq!(wheel, "demo_ext-1.0-cp313-cp313-musllinux_1_2_x86_64.whl");
    assert!(build["log"].as_str().unwrap().contains("smoke test passed"));
    assert_eq!(containers_started(&server), 1);

    let bytes = server.listed_file("demo-ext", wheel);
    assert!(
        wheel_entries(&bytes)
            .iter()
            .any(|name| name == "demo_ext/_speed.cpython-313-x86_64-linux-musl.so")
    );

    let downloads = work.path().join("downloads");
    let output = common::pip_download_musl(
        &server.index_url(),
        &downloads,
        &["--no-deps", "demo-ext==1.0"],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(downloads.join(wheel).exists());

    let again = request_build(&server, "demo-ext", "1.0");
    assert_eq!(again["requested"], "cached");
    assert_eq!(again["id"], requested["id"]);
    assert_eq!(
        containers_started(&server),
        1,
        "a cache hit starts no container"
    );
}

fn ten_concurrent_requests_start_one_build(runtime: Runtime) {
    let server = farm_server(runtime, 600);
    let work = tempfile::tempdir().unwrap();
    upload(&server, &c_extension_sdist(work.path(), "busy-ext", ""));
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                scope.spawn(|| {
                    request_build(&server, "busy-ext", "1.0")["id"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let build = wait_for_build(&server, &ids[0], Duration::from_secs(600));
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    assert_eq!(containers_started(&server), 1);
    assert_eq!(
        server.get_json_plain("/api/v1/builds")["builds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Each hostile sdist fails as a package failure with its log, and nothing is stored.
fn hostile_sdists_fail_cleanly_and_store_nothing(runtime: Runtime) {
    let server = farm_server(runtime, 20);
    let work = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = &common::musl_root::musl_root().builder;
    let cases = [
        (
            "net-probe",
            format!(
                "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'stolen')"
            ),
            &["Error: [Errno"][..],
        ),
        (
            "root-writer",
            "open('/usr/local/lib/edelweiss-was-here', 'w').write('x')".to_string(),
            &["Read-only file system"][..],
        ),
        (
            "forever",
            "while True:\n    pass".to_string(),
            &["killed at the time limit"][..],
        ),
        (
            "fork-bomb",
            "import os\nwhile True:\n    os.fork()".to_string(),
            // Contained one way or another: the process limit, the memory or the time limit.
            &[
                "Resource temporarily unavailable",
                "memory limit",
                "time limit",
            ][..],
        ),
        (
            "memory-hog",
            "hog = bytearray(3 << 30)\nhog[::4096] = b'x' * len(hog[::4096])".to_string(),
            // The kernel kills the setup.py process (pip reports "exit code: -9") or the
            // whole container at the memory limit.
            &["memory limit", "MemoryError", "exit code: -9"][..],
        ),
        (
            "scratch-filler",
            "f = open('/scratch/fill', 'wb')\nwhile True:\n    f.write(b'0' * (1 << 20))"
                .to_string(),
            &["No space left on device"][..],
        ),
    ];
    for (name, prelude, evidence) in &cases {
        upload(&server, &c_extension_sdist(work.path(), name, prelude));
        let requested = request_build(&server, name, "1.0");
        let build = wait_for_build(
            &server,
            requested["id"].as_str().unwrap(),
            Duration::from_secs(300),
        );
        assert_eq!(build["state"], "failed", "{name}");
        assert_eq!(build["failure"]["kind"], "package", "{name}");
        let log = format!(
            "{}{}",
            build["log"].as_str().unwrap_or_default(),
            build["failure"]["message"]
        );
        assert!(
            evidence.iter().any(|evidence| log.contains(evidence)),
            "{name}: none of {evidence:?} in\n{log}"
        );
        let page = server.get_json(&format!("/simple/{name}/"));
        assert!(
            page["files"]
                .as_array()
                .unwrap()
                .iter()
                .all(|file| !file["filename"].as_str().unwrap().ends_with(".whl")),
            "{name} stored a wheel"
        );
        let again = request_build(&server, name, "1.0");
        assert_eq!(
            again["requested"], "cached",
            "{name}: a package failure is recorded under its key"
        );
    }
    let mut received = Vec::new();
    if let Ok((mut stream, _)) = listener.accept() {
        let _ = stream.read_to_end(&mut received);
    }
    assert!(
        received.is_empty(),
        "the host's loopback server received {received:?}"
    );
    assert!(!root.join("usr/local/lib/edelweiss-was-here").exists());
    assert_eq!(
        server.metric("edelweiss_build_containers_started_total{step=\"smoke test\"}"),
        0
    );
}

/// A C extension that calls glibc's `gnu_get_libc_version`: it compiles and links (a shared
/// object may leave symbols undefined) and auditwheel repairs it (musl has no symbol
/// versions to check). The package's `__init__` does not import it, so the default import
/// check would pass too.
fn glibc_calling_sdist(dir: &Path, name: &str) -> std::path::PathBuf {
    let module = name.replace('-', "_");
    let setup = format!(
        "from setuptools import setup, Extension\nsetup(name={name:?}, version='1.0', packages=[{module:?}], package_dir={{'': 'src'}},\n      ext_modules=[Extension('{module}._libc', ['src/libc.c'])])\n"
    );
    let source = "#define PY_SSIZE_T_CLEAN\n#include <Python.h>\nextern const char *gnu_get_libc_version(void);\nstatic PyObject *version(PyObject *self, PyObject *args) { return PyUnicode_FromString(gnu_get_libc_version()); }\nstatic PyMethodDef methods[] = {{\"version\", version, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};\nstatic struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"_libc\", NULL, -1, methods};\nPyMODINIT_FUNC PyInit__libc(void) { return PyModule_Create(&module); }\n";
    common::dists::write_project_sdist(
        dir,
        name,
        "1.0",
        &setup,
        &[
            (&format!("src/{module}/__init__.py"), "VERSION = '1.0'\n"),
            ("src/libc.c", source),
        ],
    )
}

/// The symbol check after repair: a wheel needing a symbol the target's musl lacks is a
/// package failure naming it, refused before the smoke test, and nothing of it is stored.
fn a_wheel_needing_a_symbol_the_targets_musl_lacks_fails_and_stores_nothing(runtime: Runtime) {
    let server = farm_server(runtime, 600);
    let work = tempfile::tempdir().unwrap();
    upload(&server, &glibc_calling_sdist(work.path(), "glibc-only"));
    let blobs_before = server.blobs();

    let build = build_to_end(&server, "glibc-only", "1.0", Duration::from_secs(600));
    assert_eq!(build["state"], "failed", "{}", build["log"]);
    assert_eq!(build["failure"]["kind"], "package");
    let log = build["log"].as_str().unwrap();
    assert!(
        log.contains("Fixed-up wheel written to"),
        "auditwheel repaired it: {log}"
    );
    assert!(
        log.contains("glibc_only/_libc.cpython-313-x86_64-linux-musl.so: gnu_get_libc_version"),
        "{log}"
    );
    assert_eq!(
        server.metric("edelweiss_build_containers_started_total{step=\"smoke test\"}"),
        0,
        "refused before the smoke test"
    );
    assert!(server.listed_wheels("glibc-only").is_empty());
    let stored: Vec<String> = server
        .blobs()
        .into_iter()
        .filter(|blob| !blobs_before.contains(blob))
        .collect();
    assert!(stored.len() <= 1, "only the log is stored: {stored:?}");
    for blob in &stored {
        let bytes = std::fs::read(server.data_dir.join("blobs").join(blob)).unwrap();
        assert!(
            !bytes.starts_with(b"PK"),
            "{blob} is a zip: a wheel was stored"
        );
    }
    let again = request_build(&server, "glibc-only", "1.0");
    assert_eq!(
        again["requested"], "cached",
        "a package failure is recorded under its key"
    );
}

/// A built wheel goes through the same write path as an upload: the project's page, read
/// (and so cached) before the build, lists the wheel right after it, and the files gauge
/// counts it.
#[test]
fn a_built_wheel_is_on_the_cached_page_at_once() {
    let server = farm_server(Runtime::Runc, 600);
    let work = tempfile::tempdir().unwrap();
    upload(&server, &c_extension_sdist(work.path(), "paged-ext", ""));
    let page = "/simple/paged-ext/";
    assert_eq!(server.listed_filenames(page), ["paged_ext-1.0.tar.gz"]);
    assert_eq!(server.metric("edelweiss_files_stored"), 1);

    let build = build_to_end(&server, "paged-ext", "1.0", Duration::from_secs(600));
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    let wheel = build["wheel"]["filename"].as_str().unwrap();
    let listed = server.listed_filenames(page);
    assert!(
        listed.iter().any(|filename| filename == wheel),
        "{wheel} is not on {page}: {listed:?}"
    );
    assert_eq!(server.metric("edelweiss_files_stored"), 2);
}

/// A build failure carries its reason in one line: the compiler's first error and the
/// Alpine package that would provide the missing header.
#[test]
fn a_failed_build_says_why_in_one_line() {
    let server = farm_server(Runtime::Runc, 600);
    let work = tempfile::tempdir().unwrap();
    let setup = "from setuptools import setup, Extension\nsetup(name='needs-yaml', version='1.0', ext_modules=[Extension('needs_yaml', ['needs_yaml.c'])])\n";
    let source = "#include <Python.h>\n#include <yaml.h>\nPyMODINIT_FUNC PyInit_needs_yaml(void) { return NULL; }\n";
    let sdist = common::dists::write_project_sdist(
        work.path(),
        "needs-yaml",
        "1.0",
        setup,
        &[("needs_yaml.c", source)],
    );
    upload(&server, &sdist);

    let build = build_to_end(&server, "needs-yaml", "1.0", Duration::from_secs(600));
    assert_eq!(build["state"], "failed", "{}", build["log"]);
    let message = build["failure"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the build step exited with status")
            && message.contains("fatal error: yaml.h: No such file or directory")
            && message.contains("`yaml-dev`"),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
}

fn a_build_interrupted_by_a_crash_is_requeued_and_completes_once(runtime: Runtime) {
    let server = farm_server(runtime, 600);
    let work = tempfile::tempdir().unwrap();
    upload(
        &server,
        &c_extension_sdist(work.path(), "slow-ext", "import time\ntime.sleep(6)"),
    );
    let requested = request_build(&server, "slow-ext", "1.0");
    let id = requested["id"].as_str().unwrap().to_string();
    // The crash must come while the build step's container runs (setup.py sleeps 6 s).
    common::poll_until(
        Duration::from_secs(60),
        format!("a running container of build {id}"),
        || !common::farm::running_containers(runtime, &server, &id).is_empty(),
    );
    if runtime == Runtime::Docker {
        let settings = common::poll_for(
            Duration::from_secs(10),
            format!("docker's settings of build {id}'s container"),
            || common::farm::docker_container_settings(&id),
        );
        let config = &settings["HostConfig"];
        assert_eq!(config["ReadonlyRootfs"], true);
        assert_eq!(config["NetworkMode"], "none");
        assert_eq!(config["CapDrop"], serde_json::json!(["ALL"]));
        assert_eq!(
            config["SecurityOpt"],
            serde_json::json!(["no-new-privileges"])
        );
        assert_eq!(settings["Config"]["User"], "65534:65534");
        assert_eq!(settings["Config"]["Labels"]["edelweiss.build"], id.as_str());
        assert!(settings["Name"].as_str().unwrap().contains(&id));
    }
    // SIGKILL: the running build container outlives its server.
    let server = server.restart();
    let build = wait_for_build(&server, &id, Duration::from_secs(600));
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    assert_eq!(build["attempts"], 2);
    assert_eq!(
        common::farm::leftover_containers(runtime, &server, &id),
        Vec::<String>::new(),
        "containers left after the crash and the rebuild"
    );
    assert_eq!(server.listed_wheels("slow-ext").len(), 1);
    assert!(
        server
            .log()
            .contains("re-queued builds interrupted by a restart")
    );
}

fn the_build_command_shares_the_cache_and_writes_the_wheel(runtime: Runtime) {
    let (builder, runtime_image) = runtime.builders();
    let work = tempfile::tempdir().unwrap();
    let sdist = c_extension_sdist(work.path(), "cli-ext", "");
    let data = work.path().join("data");
    let out = work.path().join("out");
    let builder_flag = if runtime == Runtime::Runc {
        "--rootfs"
    } else {
        "--image"
    };
    let run = || {
        let mut command = std::process::Command::new(common::server::binary());
        command
            .args(["build"])
            .arg(&sdist)
            .args([
                "--target",
                TARGET,
                "--executor",
                runtime.name(),
                builder_flag,
                &builder,
                "--runtime",
                &runtime_image,
            ])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .env("EDELWEISS_NO_UPSTREAM", "true")
            // Offline, with no index to resolve setuptools from: the builder's own.
            .env("EDELWEISS_RESOLVE_BUILD_REQUIREMENTS", "false");
        common::assert_success(&mut command)
    };
    let first = text(&run());
    assert!(
        first.contains("Queued") && first.contains("wheel: "),
        "{first}"
    );
    assert!(
        out.join("cli_ext-1.0-cp313-cp313-musllinux_1_2_x86_64.whl")
            .exists()
    );
    let second = text(&run());
    assert!(second.contains("Cached"), "{second}");
    assert!(
        !second.contains("Running"),
        "a cache hit ran a build: {second}"
    );
}

/// NEEDED entries of a shared library, read with the host's binutils.
fn psycopg2_from_its_real_sdist_vendors_libpq_and_imports_without_it(runtime: Runtime) {
    let root = common::musl_root::musl_root();
    assert!(
        !root.runtime.join("usr/local/lib/libpq.so.5").exists(),
        "the runtime root must not have libpq"
    );
    let server = farm_server(runtime, 900);
    upload(&server, &common::farm::pypi_sdist("psycopg2", "2.9.10"));
    let requested = request_build(&server, "psycopg2", "2.9.10");
    let build = wait_for_build(
        &server,
        requested["id"].as_str().unwrap(),
        Duration::from_secs(900),
    );
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    let log = build["log"].as_str().unwrap();
    assert!(
        log.contains("import check: import psycopg2") && log.contains("smoke test passed"),
        "{log}"
    );
    let page = server.get_json("/simple/psycopg2/");
    let wheel = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["filename"] == "psycopg2-2.9.10-cp313-cp313-musllinux_1_2_x86_64.whl")
        .expect("listed");
    let bytes = server.get(wheel["url"].as_str().unwrap()).bytes().unwrap();
    let entries = wheel_entries(&bytes);
    let libpq = entries
        .iter()
        .find(|name| name.starts_with("psycopg2.libs/libpq-"))
        .expect("libpq vendored in psycopg2.libs/");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.as_ref())).unwrap();
    let mut extension = Vec::new();
    archive
        .by_name("psycopg2/_psycopg.cpython-313-x86_64-linux-musl.so")
        .unwrap()
        .read_to_end(&mut extension)
        .unwrap();
    let needed = common::elf_needed(&extension);
    let vendored = libpq.trim_start_matches("psycopg2.libs/");
    assert!(
        needed.iter().any(|name| name == vendored),
        "NEEDED {needed:?} lacks {vendored}"
    );
    assert!(
        !needed.iter().any(|name| name == "libpq.so.5"),
        "NEEDED still names the system libpq: {needed:?}"
    );
}

fn a_real_pypi_sdist_without_a_cp313_musllinux_wheel_builds_through_the_mirror(runtime: Runtime) {
    use common::upstream::{UpstreamServer, UpstreamTree};
    let work = tempfile::tempdir().unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    tree.publish(
        "markupsafe",
        &[common::farm::pypi_sdist("MarkupSafe", "2.1.5")],
    );
    let upstream = UpstreamServer::start(&tree, "json");
    let (builder, runtime_image) = runtime.builders();
    let config = common::server::base_config("", "")
        + &common::farm::build_config(runtime.name(), &builder, &runtime_image, 600);
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config);
    let requested = request_build(&server, "markupsafe", "2.1.5");
    let build = wait_for_build(
        &server,
        requested["id"].as_str().unwrap(),
        Duration::from_secs(600),
    );
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    assert_eq!(
        upstream.count("/files/MarkupSafe-2.1.5.tar.gz"),
        1,
        "the sdist came through the mirror"
    );
    let filenames = server.listed_filenames("/simple/markupsafe/");
    assert_eq!(
        filenames,
        [
            "MarkupSafe-2.1.5.tar.gz",
            "markupsafe-2.1.5-cp313-cp313-musllinux_1_2_x86_64.whl"
        ]
    );
    let output = common::pip_download_musl(
        &server.index_url(),
        work.path().join("out"),
        &["--no-deps", "markupsafe==2.1.5"],
    );
    assert!(output.status.success(), "{}", text(&output));
    let wheel = std::fs::read(
        work.path()
            .join("out/markupsafe-2.1.5-cp313-cp313-musllinux_1_2_x86_64.whl"),
    )
    .unwrap();
    assert!(
        wheel_entries(&wheel)
            .iter()
            .any(|name| name == "markupsafe/_speedups.cpython-313-x86_64-linux-musl.so")
    );
}

fn a_recipes_pinned_build_requirement_comes_through_the_index(runtime: Runtime) {
    let work = tempfile::tempdir().unwrap();
    let server = server_with_recipes(
        runtime,
        work.path(),
        "[default]\n[[recipe]]\nproject = \"needs-helper\"\nbuild_requires = [\"build-helper==1.0\"]\n[[recipe]]\nproject = \"needs-absent\"\nbuild_requires = [\"absent-helper==1.0\"]\n",
    );
    let helper =
        common::dists::WheelSpec::new("build-helper", "1.0", "py3-none-any").write(work.path());
    upload(&server, &helper);
    upload(
        &server,
        &c_extension_sdist(work.path(), "needs-helper", "import build_helper"),
    );
    upload(
        &server,
        &c_extension_sdist(work.path(), "needs-absent", "import absent_helper"),
    );
    let build = build_to_end(&server, "needs-helper", "1.0", Duration::from_secs(300));
    assert_eq!(
        build["state"], "succeeded",
        "the wheelhouse did not carry build-helper:\n{}",
        build["log"]
    );
    let build = build_to_end(&server, "needs-absent", "1.0", Duration::from_secs(300));
    assert_eq!(build["state"], "failed");
    assert!(
        build["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("absent-helper==1.0"),
        "{build}"
    );
}

/// A server whose recipes are `recipes` (TOML).
fn server_with_recipes(runtime: Runtime, work: &Path, recipes: &str) -> TestServer {
    let path = work.join("recipes.toml");
    std::fs::write(&path, recipes).unwrap();
    let (builder, runtime_image) = runtime.builders();
    let build = common::farm::build_config(runtime.name(), &builder, &runtime_image, 600).replace(
        "[build]\n",
        &format!("[build]\nrecipes = {:?}\n", path.display().to_string()),
    );
    TestServer::start_with(&(common::server::base_config("", "") + &build))
}

/// Each RECORD line's sha256 and size match the entry's bytes.
fn assert_record_matches(bytes: &[u8]) {
    use base64::Engine as _;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let record_name = wheel_entries(bytes)
        .into_iter()
        .find(|name| name.ends_with(".dist-info/RECORD"))
        .expect("a RECORD");
    let mut record = String::new();
    archive
        .by_name(&record_name)
        .unwrap()
        .read_to_string(&mut record)
        .unwrap();
    let mut checked = 0;
    for line in record
        .lines()
        .filter(|line| !line.starts_with(&record_name))
    {
        let mut fields = line.rsplitn(3, ',');
        let (size, hash, name) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        let mut content = Vec::new();
        archive
            .by_name(name)
            .unwrap()
            .read_to_end(&mut content)
            .unwrap();
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(<sha2::Sha256 as sha2::Digest>::digest(&content));
        assert_eq!(hash, format!("sha256={digest}"), "{name}");
        assert_eq!(size, content.len().to_string(), "{name}");
        checked += 1;
    }
    assert_eq!(checked + 1, archive.len(), "every entry is in RECORD");
}

/// Bindings that must match a system library (GDAL's rule), and data directories shipped
/// in the wheel (PROJ's and GDAL's), on a C extension: one build whose library version it
/// extends, one whose version it does not.
fn a_recipe_ships_builder_data_in_the_wheel_and_refuses_a_mismatched_library(runtime: Runtime) {
    let work = tempfile::tempdir().unwrap();
    let recipes = r#"[default]
[[recipe]]
project = "bundled-demo"
version_must_match = "echo 1"
bundle_data = [{ path = "bundled_demo/certs", source = "echo /etc/ssl", env = "BUNDLED_DEMO_CERTS" }]
import_check = "import os, bundled_demo; d = os.environ['BUNDLED_DEMO_CERTS']; assert d.startswith(os.path.dirname(bundled_demo.__file__)), d; assert os.path.isfile(os.path.join(d, 'cert.pem')), os.listdir(d); assert bundled_demo.add(2, 3) == 5"
[[recipe]]
project = "mismatched-demo"
version_must_match = "echo 2.0"
"#;
    let server = server_with_recipes(runtime, work.path(), recipes);
    upload(&server, &c_extension_sdist(work.path(), "bundled-demo", ""));
    upload(
        &server,
        &c_extension_sdist(work.path(), "mismatched-demo", ""),
    );

    let build = build_to_end(&server, "bundled-demo", "1.0", Duration::from_secs(600));
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    let wheel = build["wheel"]["filename"].as_str().unwrap();
    let bytes = server.listed_file("bundled-demo", wheel);
    let entries = wheel_entries(&bytes);
    assert!(
        entries
            .iter()
            .any(|name| name == "bundled_demo/certs/cert.pem"),
        "{entries:?}"
    );
    assert_record_matches(&bytes);

    // Tried: a build whose version (1.0) neither equals nor extends the builder's library
    // (2.0). Kept: nothing; the failure names both versions and no wheel is listed.
    let build = build_to_end(&server, "mismatched-demo", "1.0", Duration::from_secs(300));
    assert_eq!(build["state"], "failed");
    let log = build["log"].as_str().unwrap();
    assert!(
        log.contains("mismatched-demo 1.0 must be built against the same library version, but this builder has 2.0"),
        "{log}"
    );
    assert!(server.listed_wheels("mismatched-demo").is_empty());
}

/// Every farm test with each executor: a matrix, not copies.
macro_rules! executor_matrix {
    ($($test:ident),* $(,)?) => {
        mod runc {
            $(#[test] fn $test() { super::$test(super::Runtime::Runc) })*
        }
        mod docker {
            $(#[test] fn $test() { if super::Runtime::Docker.available() { super::$test(super::Runtime::Docker) } })*
        }
        mod podman {
            $(#[test] fn $test() { if super::Runtime::Podman.available() { super::$test(super::Runtime::Podman) } })*
        }
    };
}

executor_matrix!(
    a_recipe_ships_builder_data_in_the_wheel_and_refuses_a_mismatched_library,
    a_recipes_pinned_build_requirement_comes_through_the_index,
    a_c_extension_sdist_becomes_a_served_musllinux_wheel_built_once,
    ten_concurrent_requests_start_one_build,
    hostile_sdists_fail_cleanly_and_store_nothing,
    a_wheel_needing_a_symbol_the_targets_musl_lacks_fails_and_stores_nothing,
    a_build_interrupted_by_a_crash_is_requeued_and_completes_once,
    the_build_command_shares_the_cache_and_writes_the_wheel,
    psycopg2_from_its_real_sdist_vendors_libpq_and_imports_without_it,
    a_real_pypi_sdist_without_a_cp313_musllinux_wheel_builds_through_the_mirror
);
