//! Build requirements resolved automatically (PEP 517/518): real sdists from PyPI, each with
//! its own build backend, built in the offline builder from wheels that came through
//! edelweiss's index alone (an upstream serving real PyPI files plays PyPI), and smoke-tested
//! with their runtime dependencies installed the same way.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::farm::{
    Runtime, build_to_end, containers_started, pypi_musllinux_wheel, pypi_sdist,
    resolving_build_config,
};
use common::server::TestServer;
use common::upstream::{UpstreamServer, UpstreamTree};

const LIMIT: Duration = Duration::from_secs(600);

struct Farm {
    server: TestServer,
    upstream: UpstreamServer,
    _work: tempfile::TempDir,
}

/// `farm` with wheel files besides the `name==version` ones, published under their project.
fn farm_with_files(
    runtime: Runtime,
    sdists: &[PathBuf],
    files: &[PathBuf],
    wheels: &[&str],
) -> Farm {
    let mut extra = sdists.to_vec();
    extra.extend_from_slice(files);
    farm(runtime, &[], &extra, wheels)
}

/// A farm mirroring an upstream that holds `sdists` and the wheels `wheels` (`name==version`)
/// and nothing else: a build requirement missing from this list cannot be installed.
fn farm(runtime: Runtime, sdists: &[(&str, &str)], extra: &[PathBuf], wheels: &[&str]) -> Farm {
    farm_with(runtime, sdists, extra, wheels, |builder, runtime_image| {
        common::server::base_config("", "")
            + &resolving_build_config(runtime.name(), builder, runtime_image, 600)
    })
}

/// `farm` with the server's config made by `config` from the builder and the runtime.
fn farm_with(
    runtime: Runtime,
    sdists: &[(&str, &str)],
    extra: &[PathBuf],
    wheels: &[&str],
    config: impl FnOnce(&str, &str) -> String,
) -> Farm {
    let work = tempfile::tempdir().unwrap();
    let tree = UpstreamTree::new(&work.path().join("tree"));
    let mut projects: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for (project, version) in sdists {
        projects
            .entry(project.to_lowercase())
            .or_default()
            .push(pypi_sdist(project, version));
    }
    for sdist in extra {
        let name = sdist.file_name().unwrap().to_str().unwrap();
        let project = name.split('-').next().unwrap().replace('_', "-");
        projects.entry(project).or_default().push(sdist.clone());
    }
    for requirement in wheels {
        let project = requirement.split_once("==").unwrap().0.to_lowercase();
        projects
            .entry(project)
            .or_default()
            .push(pypi_musllinux_wheel(requirement));
    }
    for (project, files) in &projects {
        tree.publish(project, files);
    }
    let upstream = UpstreamServer::start(&tree, "json");
    let (builder, runtime_image) = runtime.builders();
    let server =
        TestServer::mirroring(&[&upstream.simple_url()], &config(&builder, &runtime_image));
    Farm {
        server,
        upstream,
        _work: work,
    }
}

/// Builds `project` `version` to the end and checks it succeeded as `wheel`.
fn builds(farm: &Farm, project: &str, version: &str, wheel: &str) -> serde_json::Value {
    let build = build_to_end(&farm.server, project, version, LIMIT);
    assert_eq!(
        build["state"], "succeeded",
        "{}\nbuild requirements: {}",
        build["log"], build["build_requirements"]
    );
    assert_eq!(build["wheel"]["filename"], wheel, "{build}");
    // What the extra container run costs, for the record (`--nocapture`).
    if let Some(line) = build["log"]
        .as_str()
        .unwrap()
        .lines()
        .find(|line| line.starts_with("requires step: "))
    {
        eprintln!("{project} {version}: {line}");
    }
    assert!(
        build["log"].as_str().unwrap().contains("smoke test passed"),
        "{}",
        build["log"]
    );
    build
}

fn pinned(build: &serde_json::Value) -> Vec<String> {
    build["build_requirements"]["pinned"]
        .as_array()
        .unwrap_or_else(|| panic!("no resolved build requirements: {build}"))
        .iter()
        .map(|pin| pin["filename"].as_str().unwrap().to_string())
        .collect()
}

const HATCHLING: [&str; 5] = [
    "hatchling==1.25.0",
    "packaging==24.1",
    "pathspec==0.12.1",
    "pluggy==1.5.0",
    "trove-classifiers==2024.7.2",
];

fn a_hatchling_sdist_builds_from_requirements_resolved_through_the_index(runtime: Runtime) {
    let farm = farm(runtime, &[("annotated-types", "0.7.0")], &[], &HATCHLING);
    let build = builds(
        &farm,
        "annotated-types",
        "0.7.0",
        "annotated_types-0.7.0-py3-none-any.whl",
    );
    assert_eq!(
        pinned(&build),
        [
            "hatchling-1.25.0-py3-none-any.whl",
            "packaging-24.1-py3-none-any.whl",
            "pathspec-0.12.1-py3-none-any.whl",
            "pluggy-1.5.0-py3-none-any.whl",
            "trove_classifiers-2024.7.2-py3-none-any.whl"
        ],
        "hatchling and its dependencies for cp313, nothing more"
    );
    assert_eq!(
        farm.upstream
            .count("/files/hatchling-1.25.0-py3-none-any.whl"),
        1,
        "the backend came through the mirror, once"
    );
}

fn a_flit_core_sdist_builds(runtime: Runtime) {
    let farm = farm(runtime, &[("tomli", "2.0.1")], &[], &["flit-core==3.9.0"]);
    let build = builds(&farm, "tomli", "2.0.1", "tomli-2.0.1-py3-none-any.whl");
    assert_eq!(pinned(&build), ["flit_core-3.9.0-py3-none-any.whl"]);
}

fn a_poetry_core_sdist_builds(runtime: Runtime) {
    let farm = farm(
        runtime,
        &[("tomlkit", "0.12.5")],
        &[],
        &["poetry-core==1.9.0"],
    );
    let build = builds(
        &farm,
        "tomlkit",
        "0.12.5",
        "tomlkit-0.12.5-py3-none-any.whl",
    );
    assert_eq!(pinned(&build), ["poetry_core-1.9.0-py3-none-any.whl"]);
}

const SETUPTOOLS: [&str; 2] = ["setuptools==75.1.0", "wheel==0.44.0"];

/// six 1.16.0 has no pyproject.toml: setuptools and wheel, as pip assumes.
fn a_setuptools_sdist_without_pyproject_gets_the_default_build_system(runtime: Runtime) {
    let farm = farm(runtime, &[("six", "1.16.0")], &[], &SETUPTOOLS);
    let build = builds(&farm, "six", "1.16.0", "six-1.16.0-py2.py3-none-any.whl");
    assert_eq!(
        build["build_requirements"]["requested"],
        serde_json::json!(["setuptools>=40.8.0", "wheel"])
    );
    assert_eq!(
        pinned(&build),
        [
            "setuptools-75.1.0-py3-none-any.whl",
            "wheel-0.44.0-py3-none-any.whl"
        ]
    );
}

/// pluggy 1.5.0 takes its version from setuptools-scm: without it the wheel would not be
/// 1.5.0 (lz4 4.3.3 built as 0.0.0 that way).
fn a_setuptools_scm_versioned_sdist_gets_its_version(runtime: Runtime) {
    let farm = farm(
        runtime,
        &[("pluggy", "1.5.0")],
        &[],
        &[
            "setuptools==75.1.0",
            "setuptools-scm==8.1.0",
            "packaging==24.1",
        ],
    );
    let build = builds(&farm, "pluggy", "1.5.0", "pluggy-1.5.0-py3-none-any.whl");
    assert_eq!(
        pinned(&build),
        [
            "packaging-24.1-py3-none-any.whl",
            "setuptools-75.1.0-py3-none-any.whl",
            "setuptools_scm-8.1.0-py3-none-any.whl"
        ],
        "setuptools-scm with its own dependencies (its METADATA folds a license text first)"
    );
}

/// aiosignal imports frozenlist when imported: the smoke test installs frozenlist's
/// musllinux wheel from the index (aiohttp 3.9.5 failed on `multidict` that way).
fn a_wheel_whose_import_needs_a_dependency_passes_its_smoke_test(runtime: Runtime) {
    let mut wheels = SETUPTOOLS.to_vec();
    wheels.push("frozenlist==1.5.0");
    let farm = farm(runtime, &[("aiosignal", "1.3.1")], &[], &wheels);
    let build = builds(
        &farm,
        "aiosignal",
        "1.3.1",
        "aiosignal-1.3.1-py3-none-any.whl",
    );
    let log = build["log"].as_str().unwrap();
    assert!(
        log.contains("frozenlist-1.5.0-cp313-cp313-musllinux_1_2_x86_64.whl"),
        "the runtime wheelhouse did not carry frozenlist:\n{log}"
    );
}

/// An sdist with an in-tree backend (backend-path) that asks for flit_core through
/// `get_requires_for_build_wheel` and imports it while building, and a module that imports
/// flit_core at run time.
fn dynamic_backend_sdist(dir: &std::path::Path) -> PathBuf {
    let backend = "from setuptools import build_meta as _setuptools\nfrom setuptools.build_meta import *\n\n\ndef get_requires_for_build_wheel(config_settings=None):\n    return _setuptools.get_requires_for_build_wheel(config_settings) + ['flit_core>=3.2']\n\n\ndef build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n    import flit_core\n    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)\n";
    common::dists::write_project_sdist(
        dir,
        "dyn-backend",
        "1.0",
        "from setuptools import setup\nsetup(name='dyn-backend', version='1.0', py_modules=['dyn_backend'], install_requires=['flit_core>=3.2'])\n",
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = ['setuptools>=61']\nbuild-backend = 'backend'\nbackend-path = ['_build']\n",
            ),
            ("_build/backend.py", backend),
            ("dyn_backend.py", "import flit_core\nVALUE = 1\n"),
        ],
    )
}

/// The requires step's answer was resolved, fetched and given to the isolated build, and
/// the wheel's own dependency to its smoke test.
fn assert_dynamic_backend_built(build: &serde_json::Value) {
    assert_eq!(pinned(build), ["setuptools-75.1.0-py3-none-any.whl"]);
    let log = build["log"].as_str().unwrap();
    assert!(
        log.contains("added flit_core-3.9.0-py3-none-any.whl"),
        "what the backend asked for was not fetched:\n{log}"
    );
    assert!(
        log.contains(
            "runtime dependencies for the smoke test:\n  flit_core-3.9.0-py3-none-any.whl"
        ),
        "the runtime dependency was not fetched:\n{log}"
    );
}

fn what_the_backend_adds_is_fetched_before_the_build(runtime: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let sdist = dynamic_backend_sdist(dir.path());
    let farm = farm(
        runtime,
        &[],
        &[sdist],
        &["setuptools==75.1.0", "flit-core==3.9.0"],
    );
    let build = builds(
        &farm,
        "dyn-backend",
        "1.0",
        "dyn_backend-1.0-py3-none-any.whl",
    );
    assert_dynamic_backend_built(&build);
}

/// A remote worker resolves what the backend adds and the runtime dependencies through the
/// server's index the same way.
fn a_remote_worker_resolves_through_the_servers_index(runtime: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let sdist = dynamic_backend_sdist(dir.path());
    let farm = farm_with(
        runtime,
        &[],
        &[sdist],
        &["setuptools==75.1.0", "flit-core==3.9.0"],
        |builder, runtime_image| {
            common::farm::remote_workers_config(runtime.name(), builder, runtime_image).replace(
                "resolve_build_requirements = false",
                "resolve_build_requirements = true",
            )
        },
    );
    let work = tempfile::tempdir().unwrap();
    let mut worker = std::process::Command::new(common::server::binary())
        .args([
            "worker",
            "--server",
            &farm.server.url,
            "--token",
            common::farm::WORKER_TOKEN,
        ])
        .args([
            "--executor",
            runtime.name(),
            "--target",
            &common::farm::worker_target(runtime),
        ])
        .args(["--name", "remote-1", "--poll-seconds", "1", "--work"])
        .arg(work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.path().join("worker.log")).unwrap())
        .spawn()
        .expect("start edelweiss worker");
    let build = build_to_end(&farm.server, "dyn-backend", "1.0", LIMIT);
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(
        build["state"],
        "succeeded",
        "{}\nworker log:\n{}",
        build["log"],
        std::fs::read_to_string(work.path().join("worker.log")).unwrap_or_default()
    );
    assert_dynamic_backend_built(&build);
}

/// scikit-build-core asks through `get_requires_for_build_wheel` for cmake (and ninja) when
/// the builder has none: their musllinux wheels from the index, a C extension built by
/// cmake in the offline builder.
fn scikit_build_core_gets_cmake_from_the_index(runtime: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let source = "#define PY_SSIZE_T_CLEAN\n#include <Python.h>\nstatic PyObject *add(PyObject *self, PyObject *args) {\n    long a, b;\n    if (!PyArg_ParseTuple(args, \"ll\", &a, &b)) return NULL;\n    return PyLong_FromLong(a + b);\n}\nstatic PyMethodDef methods[] = {{\"add\", add, METH_VARARGS, \"Add.\"}, {NULL, NULL, 0, NULL}};\nstatic struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"skb_ext\", NULL, -1, methods};\nPyMODINIT_FUNC PyInit_skb_ext(void) { return PyModule_Create(&module); }\n";
    let sdist = common::dists::write_project_sdist(
        dir.path(),
        "skb-ext",
        "1.0",
        "raise SystemExit('scikit-build-core builds this project')\n",
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = ['scikit-build-core>=0.10']\nbuild-backend = 'scikit_build_core.build'\n[project]\nname = 'skb-ext'\nversion = '1.0'\nrequires-python = '>=3.9'\n",
            ),
            (
                "CMakeLists.txt",
                "cmake_minimum_required(VERSION 3.15)\nproject(${SKBUILD_PROJECT_NAME} LANGUAGES C)\nfind_package(Python COMPONENTS Interpreter Development.Module REQUIRED)\nPython_add_library(skb_ext MODULE skb_ext.c WITH_SOABI)\ninstall(TARGETS skb_ext DESTINATION .)\n",
            ),
            ("skb_ext.c", source),
        ],
    );
    let farm = farm_with_files(
        runtime,
        &[sdist],
        &[
            common::farm::pypi_file("cmake", "cmake-3.30.5-py3-none-musllinux_1_1_x86_64.whl"),
            common::farm::pypi_file(
                "ninja",
                "ninja-1.11.1.1-py2.py3-none-musllinux_1_1_x86_64.whl",
            ),
        ],
        &[
            "scikit-build-core==0.10.7",
            "packaging==24.1",
            "pathspec==0.12.1",
        ],
    );
    let build = builds(
        &farm,
        "skb-ext",
        "1.0",
        "skb_ext-1.0-cp313-cp313-musllinux_1_2_x86_64.whl",
    );
    let log = build["log"].as_str().unwrap();
    assert!(log.contains("added cmake-3.30.5"), "{log}");
}

/// A build requirement the index cannot satisfy fails the build as the package's, naming
/// it, before any build container starts; nothing is stored for the project.
fn an_unsatisfiable_build_requirement_fails_naming_it(runtime: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let sdist = common::dists::write_project_sdist(
        dir.path(),
        "needs-absent",
        "1.0",
        "from setuptools import setup\nsetup(name='needs-absent', version='1.0')\n",
        &[(
            "pyproject.toml",
            "[build-system]\nrequires = ['setuptools>=61', 'absent-backend>=2']\n",
        )],
    );
    let farm = farm(runtime, &[], &[sdist], &["setuptools==75.1.0"]);
    let build = build_to_end(&farm.server, "needs-absent", "1.0", LIMIT);
    assert_eq!(build["state"], "failed", "{build}");
    assert_eq!(build["failure"]["kind"], "package", "{build}");
    let message = build["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("absent-backend>=2") && message.contains("pyproject.toml"),
        "{message}"
    );
    assert_eq!(containers_started(&farm.server), 0);
    assert!(
        !farm
            .server
            .listed_filenames("/simple/needs-absent/")
            .iter()
            .any(|name| name.ends_with(".whl")),
        "no wheel is served"
    );
}

/// Every build the server knows of, oldest first.
fn all_builds(farm: &Farm) -> Vec<serde_json::Value> {
    let mut builds = farm.server.get_json_plain("/api/v1/builds")["builds"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no build list"));
    builds.sort_by_key(|build| build["queued_at"].as_str().unwrap_or_default().to_string());
    builds
}

fn build_of<'a>(builds: &'a [serde_json::Value], project: &str) -> &'a serde_json::Value {
    builds
        .iter()
        .find(|build| build["project"] == project)
        .unwrap_or_else(|| panic!("no build of {project} among {builds:#?}"))
}

/// Upstream has hatchling only as an sdist (its in-tree backend asks for its own
/// dependencies): annotated-types' build waits while the farm builds hatchling under its own
/// key, then builds with the wheel it made.
fn a_build_requirement_without_a_wheel_is_built_first(runtime: Runtime) {
    let farm = farm_with_files(
        runtime,
        &[
            pypi_sdist("annotated-types", "0.7.0"),
            common::farm::pypi_file("hatchling", "hatchling-1.25.0.tar.gz"),
        ],
        &[],
        &HATCHLING[1..],
    );
    let build = builds(
        &farm,
        "annotated-types",
        "0.7.0",
        "annotated_types-0.7.0-py3-none-any.whl",
    );
    assert!(
        pinned(&build).contains(&"hatchling-1.25.0-py3-none-any.whl".to_string()),
        "{build}"
    );
    let all = all_builds(&farm);
    let hatchling = build_of(&all, "hatchling");
    assert_eq!(hatchling["state"], "succeeded", "{hatchling}");
    assert_ne!(hatchling["key"], build["key"]);
    assert!(
        hatchling["finished_at"].as_str() <= build["started_at"].as_str(),
        "annotated-types started before hatchling was built:\n{hatchling}\n{build}"
    );
    assert_eq!(
        farm.upstream
            .count("/files/hatchling-1.25.0-py3-none-any.whl"),
        0,
        "upstream has no hatchling wheel; the one used is the farm's"
    );
    assert!(
        farm.server
            .listed_filenames("/simple/hatchling/")
            .contains(&"hatchling-1.25.0-py3-none-any.whl".to_string()),
        "the built backend is served like any wheel"
    );
    // The same request again is answered by the finished build: nothing builds twice.
    let again = common::farm::request_build(&farm.server, "annotated-types", "0.7.0");
    assert_eq!(again["id"], build["id"], "{again}");
    assert_eq!(all_builds(&farm).len(), 2);
}

/// Two sdists whose build requirements name each other, with no wheel of either: the
/// request fails at once, naming the cycle, and no container starts.
fn a_cycle_of_build_requirements_fails_naming_it(runtime: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let sdist = |name: &str, needs: &str| {
        common::dists::write_project_sdist(
            dir.path(),
            name,
            "1.0",
            &format!("from setuptools import setup\nsetup(name='{name}', version='1.0')\n"),
            &[(
                "pyproject.toml",
                &format!("[build-system]\nrequires = ['setuptools>=61', '{needs}']\n"),
            )],
        )
    };
    let sdists = [sdist("cyc-a", "cyc-b"), sdist("cyc-b", "cyc-a")];
    let farm = farm_with_files(runtime, &sdists, &[], &["setuptools==75.1.0"]);
    let build = build_to_end(&farm.server, "cyc-a", "1.0", LIMIT);
    assert_eq!(build["state"], "failed", "{build}");
    assert_eq!(build["failure"]["kind"], "package", "{build}");
    let message = build["failure"]["message"].as_str().unwrap();
    assert!(message.contains("cyc-a → cyc-b → cyc-a"), "{message}");
    let all = all_builds(&farm);
    let other = build_of(&all, "cyc-b");
    assert_eq!(other["state"], "failed", "{other}");
    assert!(
        other["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("cycle"),
        "{other}"
    );
    assert_eq!(containers_started(&farm.server), 0);
}

/// The dynamic backend asks, while building, for flit_core, which upstream has only as an
/// sdist (flit_core builds itself): the build stops, waits for the farm to build flit_core,
/// and runs again with it, for the build and for the smoke test.
fn a_requirement_found_while_building_is_built_first(runtime: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let farm = farm_with_files(
        runtime,
        &[
            dynamic_backend_sdist(dir.path()),
            common::farm::pypi_file("flit-core", "flit_core-3.9.0.tar.gz"),
        ],
        &[],
        &["setuptools==75.1.0"],
    );
    let build = builds(
        &farm,
        "dyn-backend",
        "1.0",
        "dyn_backend-1.0-py3-none-any.whl",
    );
    assert_dynamic_backend_built(&build);
    assert_eq!(build["attempts"], 2, "one run stopped, one built: {build}");
    let all = all_builds(&farm);
    let flit = build_of(&all, "flit-core");
    assert_eq!(flit["state"], "succeeded", "{flit}");
    assert_eq!(
        farm.upstream
            .count("/files/flit_core-3.9.0-py3-none-any.whl"),
        0,
        "upstream has no flit_core wheel; the one used is the farm's"
    );
}

mod runc {
    macro_rules! runc_tests {
        ($($test:ident),* $(,)?) => {
            $(#[test] fn $test() { super::$test(super::Runtime::Runc) })*
        };
    }
    runc_tests!(
        a_hatchling_sdist_builds_from_requirements_resolved_through_the_index,
        a_flit_core_sdist_builds,
        a_poetry_core_sdist_builds,
        a_setuptools_sdist_without_pyproject_gets_the_default_build_system,
        a_setuptools_scm_versioned_sdist_gets_its_version,
        a_wheel_whose_import_needs_a_dependency_passes_its_smoke_test,
        what_the_backend_adds_is_fetched_before_the_build,
        a_remote_worker_resolves_through_the_servers_index,
        an_unsatisfiable_build_requirement_fails_naming_it,
        a_build_requirement_without_a_wheel_is_built_first,
        a_cycle_of_build_requirements_fails_naming_it,
        a_requirement_found_while_building_is_built_first,
    );

    /// cmake's wheel is 28 MB: fetched once per machine, and run with `--ignored`.
    #[test]
    #[ignore = "downloads cmake's 28 MB wheel once per machine; run with --ignored"]
    fn scikit_build_core_gets_cmake_from_the_index() {
        super::scikit_build_core_gets_cmake_from_the_index(super::Runtime::Runc)
    }
}
