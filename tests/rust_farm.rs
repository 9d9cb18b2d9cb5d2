//! Rust through the build farm on the test root's Rust layer (`workers/musl-root/rust-layer`):
//! real maturin and setuptools-rust sdists from PyPI built offline into musllinux wheels that
//! work in a fresh runtime root. The crates their Cargo.lock files pin are fetched by edelweiss
//! before the build (the upstream test server plays crates.io with the real `.crate` files,
//! fetched once per machine) into a read-only vendor directory; no build container has a
//! network. A lock edelweiss cannot vendor fails its build in one line, before any container.

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::dists::{RawTar, write_project_sdist};
use common::farm::{
    build_to_end, containers_started, crates_io_file, pypi_file, pypi_musllinux_wheel,
};
use common::server::{TestServer, base_config};
use common::upstream::{UpstreamServer, UpstreamTree};
use common::{sha256_hex, text};

const LIMIT: Duration = Duration::from_secs(1800);

struct Farm {
    server: TestServer,
    upstream: UpstreamServer,
    _work: tempfile::TempDir,
}

/// The project an sdist or wheel file belongs to, by its file name.
fn project_of(file: &Path) -> String {
    let name = file.file_name().unwrap().to_str().unwrap();
    name.split('-')
        .next()
        .unwrap()
        .replace('_', "-")
        .to_lowercase()
}

/// A farm over the Rust layer (runc), mirroring an upstream that holds `files` (sdists and
/// wheels, under their projects) and plays crates.io with `crates` (name, file), with build
/// requirements resolved through the index when `resolve`.
fn rust_farm(files: &[PathBuf], crates: &[(String, PathBuf)], resolve: bool) -> Farm {
    rust_farm_with(files, crates, |builder, runtime| {
        let build = common::farm::build_config("runc", builder, runtime, LIMIT.as_secs());
        base_config("", "")
            + &build.replace(
                "resolve_build_requirements = false",
                &format!("resolve_build_requirements = {resolve}"),
            )
    })
}

/// `rust_farm` with the server's config made by `config` from the builder and the runtime
/// (both roots), given room for rustc and pointed at the upstream's crates.
fn rust_farm_with(
    files: &[PathBuf],
    crates: &[(String, PathBuf)],
    config: impl FnOnce(&str, &str) -> String,
) -> Farm {
    let work = tempfile::tempdir().unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    let mut projects: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for file in files {
        projects
            .entry(project_of(file))
            .or_default()
            .push(file.clone());
    }
    for (project, files) in &projects {
        tree.publish(project, files);
    }
    for (name, file) in crates {
        tree.publish_crate(name, file);
    }
    let upstream = UpstreamServer::start(&tree, "json");
    let builder = common::musl_root::rust_builder().display().to_string();
    let runtime = common::musl_root::musl_root().runtime.display().to_string();
    let config = config(&builder, &runtime)
        .replace("memory_mb = 1024", "memory_mb = 4096")
        .replace("scratch_mb = 256", "scratch_mb = 2048")
        .replace("max_file_mb = 256", "max_file_mb = 1024")
        .replace(
            "[build]\n",
            &format!("[build]\ncrate_registry = \"{}\"\n", upstream.crates_url()),
        );
    let server = TestServer::mirroring(&[&upstream.simple_url()], &config);
    Farm {
        server,
        upstream,
        _work: work,
    }
}

/// The crates.io crates `sdist`'s Cargo.lock files pin (read with edelweiss's own parser), each
/// with its file from crates.io.
fn crates_of(sdist: &Path) -> Vec<(edelweiss::farm::LockedCrate, PathBuf)> {
    let filename = sdist.file_name().unwrap().to_str().unwrap();
    let locked = edelweiss::farm::locked_crates(filename, &std::fs::read(sdist).unwrap())
        .unwrap_or_else(|| panic!("{filename} has no Cargo.lock"));
    assert_eq!(locked.refused, None, "{filename}");
    locked
        .crates
        .into_iter()
        .map(|locked| {
            let file = crates_io_file(
                &locked.name.to_string(),
                &locked.version.to_string(),
                &locked.sha256.to_hex(),
            );
            (locked, file)
        })
        .collect()
}

/// Requests for crate files the upstream answered, by path.
fn crate_requests(upstream: &UpstreamServer) -> Vec<(String, u64)> {
    let stats = upstream.stats();
    let mut requests: Vec<(String, u64)> = stats
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.starts_with("/crates/") && !key.contains(' '))
        .map(|(key, count)| (key.clone(), count.as_u64().unwrap()))
        .collect();
    requests.sort();
    requests
}

/// The wheel of a succeeded build, as served, unpacked into `site`; each ELF file in it NEEDs
/// musl alone (no libgcc_s, no glibc: the unwinder is linked in).
fn served_wheel(server: &TestServer, build: &serde_json::Value, site: &Path) -> String {
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    let log = build["log"].as_str().unwrap();
    assert!(log.contains("smoke test passed"), "{log}");
    let filename = build["wheel"]["filename"].as_str().unwrap().to_string();
    let bytes = server.listed_file(build["project"].as_str().unwrap(), &filename);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    let mut elf_files = 0;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        if content.starts_with(b"\x7fELF") {
            elf_files += 1;
            assert_eq!(
                common::elf_needed(&content),
                ["libc.musl-x86_64.so.1"],
                "{name} in {filename}"
            );
        }
    }
    assert!(elf_files > 0, "{filename} has no extension module");
    archive.extract(site).unwrap();
    filename
}

/// Builds to the end, saying how long it took (for the record, with `--nocapture`).
fn timed_build(server: &TestServer, project: &str, version: &str) -> serde_json::Value {
    let started = std::time::Instant::now();
    let build = build_to_end(server, project, version, LIMIT);
    eprintln!(
        "{project} {version}: {} in {:.0}s",
        build["state"].as_str().unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    build
}

fn python_in_fresh_root(site: &Path, code: &str) {
    let output =
        common::musl_root::run_in_runtime_root(site, &["/usr/local/bin/python3.13", "-c", code]);
    assert!(output.status.success(), "{}", text(&output));
}

/// rpds-py 0.20.0 (maturin, pyo3 0.22) and bcrypt 4.2.0 (setuptools-rust, pyo3 0.22, abi3): each
/// builds in the offline builder from its vendored crates into a wheel for the target that
/// imports and works in the plain runtime root. The 16 crates both locks pin alike are fetched
/// once: the second build takes them from the blob store.
#[test]
fn maturin_and_setuptools_rust_sdists_build_offline_into_musllinux_wheels() {
    let rpds = pypi_file("rpds-py", "rpds_py-0.20.0.tar.gz");
    let bcrypt = pypi_file("bcrypt", "bcrypt-4.2.0.tar.gz");
    let mut crates: Vec<(String, PathBuf)> = Vec::new();
    let mut locked = Vec::new();
    for sdist in [&rpds, &bcrypt] {
        for (each, file) in crates_of(sdist) {
            if !locked.contains(&each) {
                crates.push((each.name.to_string(), file));
                locked.push(each);
            }
        }
    }
    let mut files = vec![
        rpds.clone(),
        bcrypt.clone(),
        pypi_file(
            "maturin",
            "maturin-1.7.4-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl",
        ),
    ];
    for wheel in [
        "setuptools==75.1.0",
        "wheel==0.44.0",
        "setuptools-rust==1.10.2",
        "semantic-version==2.10.0",
    ] {
        files.push(pypi_musllinux_wheel(wheel));
    }
    let farm = rust_farm(&files, &crates, true);
    let work = tempfile::tempdir().unwrap();

    let build = timed_build(&farm.server, "rpds-py", "0.20.0");
    assert_eq!(
        build["crates"]["locks"],
        serde_json::json!(["rpds_py-0.20.0/Cargo.lock"])
    );
    assert_eq!(
        build["crates"]["crates"].as_array().unwrap().len(),
        25,
        "{build}"
    );
    let site = work.path().join("rpds");
    let wheel = served_wheel(&farm.server, &build, &site);
    assert_eq!(wheel, "rpds_py-0.20.0-cp313-cp313-musllinux_1_2_x86_64.whl");
    assert!(
        build["log"]
            .as_str()
            .unwrap()
            .contains("crates vendored for an offline cargo from rpds_py-0.20.0/Cargo.lock: 25 ("),
        "{}",
        build["log"]
    );
    python_in_fresh_root(
        &site,
        "import rpds; m = rpds.HashTrieMap({'a': 1}).insert('b', 2); assert m['b'] == 2 and len(m) == 2; assert list(rpds.List([1, 2]).push_front(0)) == [0, 1, 2]",
    );

    let build = timed_build(&farm.server, "bcrypt", "4.2.0");
    assert_eq!(
        build["crates"]["locks"],
        serde_json::json!(["bcrypt-4.2.0/src/_bcrypt/Cargo.lock"])
    );
    let site = work.path().join("bcrypt");
    let wheel = served_wheel(&farm.server, &build, &site);
    assert!(
        wheel.starts_with("bcrypt-4.2.0-") && wheel.ends_with("-musllinux_1_2_x86_64.whl"),
        "{wheel}"
    );
    python_in_fresh_root(
        &site,
        "import bcrypt; h = bcrypt.hashpw(b'secret', bcrypt.gensalt(rounds=4)); assert bcrypt.checkpw(b'secret', h) and not bcrypt.checkpw(b'other', h)",
    );

    let requests = crate_requests(&farm.upstream);
    assert_eq!(requests.len(), locked.len(), "{requests:?}");
    assert!(
        requests.iter().all(|(_, count)| *count == 1),
        "a crate was fetched twice: {requests:?}"
    );
    assert!(
        farm.server
            .listed_wheels("rpds-py")
            .contains(&"rpds_py-0.20.0-cp313-cp313-musllinux_1_2_x86_64.whl".to_string())
    );
}

const CFG_IF: &str = "cfg-if-1.0.0.crate";

fn cargo_sdist(dir: &Path, name: &str, lock: &str) -> PathBuf {
    let module = name.replace('-', "_");
    write_project_sdist(
        dir,
        name,
        "1.0",
        &format!("from setuptools import setup\nsetup(name={name:?}, version='1.0')\n"),
        &[
            (
                "Cargo.toml",
                &format!("[package]\nname = {module:?}\nversion = \"1.0.0\"\nedition = \"2021\"\n"),
            ),
            ("Cargo.lock", lock),
        ],
    )
}

fn lock_entry(name: &str, version: &str, source: &str, checksum: Option<&str>) -> String {
    let checksum = checksum
        .map(|sum| format!("checksum = \"{sum}\"\n"))
        .unwrap_or_default();
    format!(
        "\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\nsource = \"{source}\"\n{checksum}"
    )
}

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// A failed build whose failure is the package's, in one line, after no container ran.
fn failed_in_one_line(server: &TestServer, project: &str) -> String {
    let build = build_to_end(server, project, "1.0", LIMIT);
    assert_eq!(build["state"], "failed", "{build}");
    assert_eq!(build["failure"]["kind"], "package", "{build}");
    let message = build["failure"]["message"].as_str().unwrap().to_string();
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(containers_started(server), 0, "{message}");
    assert!(
        server.listed_wheels(project).is_empty(),
        "no wheel of {project} is served"
    );
    message
}

/// What was tried: a lock naming a git source (refused when the build is requested: no crate
/// is fetched), a lock whose checksum is not the registry's file (the download is dropped, the
/// blob store keeps nothing of it, and asking again answers the same failure without fetching),
/// and a crate whose checksum matches but which unpacks outside its directory (refused by the
/// archive rules; nothing lands outside). Each fails as the package's, in one line, before any
/// container starts; what was kept is the sdists and the one verified crate.
#[test]
fn a_cargo_lock_that_cannot_be_vendored_fails_its_build_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let real_cfg_if = crates_io_file(
        "cfg-if",
        "1.0.0",
        "baf1de4339761588bc0619e3cbc0120ee582ebb74b53b4efbf79117bd2da40fd",
    );
    let wrong = sha256_hex(b"not cfg-if");
    let escaping = RawTar::default()
        .member(
            "escaping-1.0.0/Cargo.toml",
            b'0',
            b"[package]\nname = \"escaping\"\n",
        )
        .member("escaping-1.0.0/../../escaped", b'0', b"outside")
        .gzip();
    let escaping_file = dir.path().join("escaping-1.0.0.crate");
    std::fs::write(&escaping_file, &escaping).unwrap();
    let git_source = "git+https://github.com/example/demo-git?rev=0123abc#0123abcdef";
    let sdists = [
        cargo_sdist(
            dir.path(),
            "git-locked",
            &(String::from("version = 3\n") + &lock_entry("demo-git", "0.3.0", git_source, None)),
        ),
        cargo_sdist(
            dir.path(),
            "wrong-checksum",
            &(String::from("version = 3\n")
                + &lock_entry("cfg-if", "1.0.0", CRATES_IO, Some(&wrong))),
        ),
        cargo_sdist(
            dir.path(),
            "escaping-crate",
            &(String::from("version = 3\n")
                + &lock_entry("escaping", "1.0.0", CRATES_IO, Some(&sha256_hex(&escaping)))),
        ),
    ];
    let farm = rust_farm(
        &sdists,
        &[
            ("cfg-if".to_string(), real_cfg_if.clone()),
            ("escaping".to_string(), escaping_file),
        ],
        false,
    );

    let message = failed_in_one_line(&farm.server, "git-locked");
    assert_eq!(
        message,
        format!(
            "Cargo.lock: git_locked-1.0/Cargo.lock: crate `demo-git` 0.3.0 comes from `{git_source}`; only crates.io crates and the sdist's own path crates can be vendored for an offline build"
        )
    );
    assert_eq!(crate_requests(&farm.upstream), []);

    let message = failed_in_one_line(&farm.server, "wrong-checksum");
    let real = sha256_hex(&std::fs::read(&real_cfg_if).unwrap());
    assert_eq!(
        message,
        format!(
            "crate cfg-if 1.0.0 from {}/cfg-if/{CFG_IF}: its sha256 is {real}, but Cargo.lock says {wrong}; nothing was stored",
            farm.upstream.crates_url()
        )
    );
    assert!(
        !farm.server.blobs().iter().any(|blob| blob.contains(&real)),
        "the refused crate was stored"
    );
    let again = common::farm::request_build(&farm.server, "wrong-checksum", "1.0");
    assert_eq!(
        again["state"], "failed",
        "the failure is final under its key: {again}"
    );
    assert_eq!(
        crate_requests(&farm.upstream),
        [(format!("/crates/cfg-if/{CFG_IF}"), 1)]
    );

    let message = failed_in_one_line(&farm.server, "escaping-crate");
    assert_eq!(
        message,
        "crate escaping 1.0.0: archive entry `escaping-1.0.0/../../escaped` is not a safe relative path (absolute, `..`, backslash or NUL)"
    );
    let mut stack = vec![farm.server.data_dir.clone()];
    while let Some(directory) = stack.pop() {
        for entry in std::fs::read_dir(&directory).unwrap().flatten() {
            assert_ne!(entry.file_name(), "escaped", "in {}", directory.display());
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
}

const CFG_IF_SHA256: &str = "baf1de4339761588bc0619e3cbc0120ee582ebb74b53b4efbf79117bd2da40fd";

/// A maturin project of one Rust program (`bindings = "bin"`) that uses the `cfg-if` crate:
/// it compiles in seconds, and its wheel carries the program in its scripts.
fn tiny_program_sdist(dir: &Path) -> PathBuf {
    let lock = format!(
        "version = 3\n\n[[package]]\nname = \"cfg-if\"\nversion = \"1.0.0\"\nsource = \"{CRATES_IO}\"\nchecksum = \"{CFG_IF_SHA256}\"\n\n[[package]]\nname = \"tiny-hello\"\nversion = \"1.0.0\"\ndependencies = [\n \"cfg-if\",\n]\n"
    );
    write_project_sdist(
        dir,
        "tiny-hello",
        "1.0",
        "raise SystemExit('maturin builds this project')\n",
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = ['maturin>=1.2,<2.0']\nbuild-backend = 'maturin'\n\n[project]\nname = 'tiny-hello'\nversion = '1.0'\nrequires-python = '>=3.8'\n\n[tool.maturin]\nbindings = 'bin'\n",
            ),
            (
                "Cargo.toml",
                "[package]\nname = \"tiny-hello\"\nversion = \"1.0.0\"\nedition = \"2021\"\n\n[dependencies]\ncfg-if = \"1.0\"\n",
            ),
            ("Cargo.lock", &lock),
            (
                "src/main.rs",
                "cfg_if::cfg_if! {\n    if #[cfg(target_env = \"musl\")] {\n        const LIBC: &str = \"musl\";\n    } else {\n        const LIBC: &str = \"another libc\";\n    }\n}\n\nfn main() {\n    println!(\"hello from {LIBC}\");\n}\n",
            ),
        ],
    )
}

/// A remote worker gets the build's crates from the server's worker API, like its wheelhouse
/// (the lease grants their digests; each is checked against the lock), and builds offline.
#[test]
fn a_remote_worker_builds_with_the_crates_the_server_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("recipes.toml");
    std::fs::write(
        &recipes,
        "[default]\n\n[[recipe]]\nproject = \"tiny-hello\"\nimport_check = \"import subprocess; out = subprocess.check_output(['/scratch/site/bin/tiny-hello']); assert out == b'hello from musl\\\\n', out\"\n",
    )
    .unwrap();
    let files = [
        tiny_program_sdist(dir.path()),
        pypi_file(
            "maturin",
            "maturin-1.7.4-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl",
        ),
    ];
    let cfg_if = crates_io_file("cfg-if", "1.0.0", CFG_IF_SHA256);
    let farm = rust_farm_with(
        &files,
        &[("cfg-if".to_string(), cfg_if)],
        |builder, runtime| {
            common::farm::remote_workers_config("runc", builder, runtime).replace(
                "resolve_build_requirements = false",
                &format!(
                    "resolve_build_requirements = true\nrecipes = {:?}",
                    recipes.display().to_string()
                ),
            )
        },
    );
    let builder = common::musl_root::rust_builder().display().to_string();
    let runtime = common::musl_root::musl_root().runtime.display().to_string();
    let work = tempfile::tempdir().unwrap();
    let mut worker = std::process::Command::new(common::server::binary())
        .args(["worker", "--server", &farm.server.url])
        .args(["--token", common::farm::WORKER_TOKEN, "--executor", "runc"])
        .args([
            "--target",
            &format!("{}={builder},{runtime}", common::farm::TARGET),
        ])
        .args(["--name", "remote-rust", "--poll-seconds", "1", "--work"])
        .arg(work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.path().join("worker.log")).unwrap())
        .spawn()
        .expect("start edelweiss worker");
    let build = build_to_end(&farm.server, "tiny-hello", "1.0", LIMIT);
    let _ = worker.kill();
    let _ = worker.wait();
    let worker_log = std::fs::read_to_string(work.path().join("worker.log")).unwrap_or_default();
    assert_eq!(
        build["state"], "succeeded",
        "{}\nworker log:\n{worker_log}",
        build["log"]
    );
    let site = dir.path().join("site");
    let wheel = served_wheel(&farm.server, &build, &site);
    assert_eq!(wheel, "tiny_hello-1.0-py3-none-musllinux_1_2_x86_64.whl");
    assert!(
        build["log"]
            .as_str()
            .unwrap()
            .contains("crates vendored for an offline cargo from tiny_hello-1.0/Cargo.lock: 1 ("),
        "{}",
        build["log"]
    );
    assert_eq!(
        crate_requests(&farm.upstream),
        [(format!("/crates/cfg-if/{CFG_IF}"), 1)],
        "the server fetched the crate once; the worker took it from the server"
    );
}
