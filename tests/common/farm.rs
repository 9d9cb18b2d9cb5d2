//! A build-farm server over the musl test root, and the sdists the farm tests build.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::UPLOAD_TOKEN;
use super::dists::write_project_sdist;
use super::musl_root::musl_root;
use super::server::{TestServer, base_config};

pub const TARGET: &str = "cp313-musllinux_1_2_x86_64";

/// The `[build]` section for `executor` with the musl root (runc) or its image (docker).
/// Builds use the builder's own setuptools (these servers hold no build requirements);
/// `resolving_build_config` is the default, resolving them through the index.
pub fn build_config(executor: &str, builder: &str, runtime: &str, time_limit: u64) -> String {
    format!(
        "[build]\nexecutor = \"{executor}\"\nworkers = 1\ntime_limit_seconds = {time_limit}\nmemory_mb = 1024\npids = 256\nscratch_mb = 256\nmax_file_mb = 256\nlease_seconds = 30\nresolve_build_requirements = false\n[[build.targets]]\nname = \"{TARGET}\"\nbuilder = \"{builder}\"\nruntime = \"{runtime}\"\n"
    )
}

/// `build_config` with build requirements resolved through the index (the default).
pub fn resolving_build_config(
    executor: &str,
    builder: &str,
    runtime: &str,
    time_limit: u64,
) -> String {
    build_config(executor, builder, runtime, time_limit).replace(
        "resolve_build_requirements = false",
        "resolve_build_requirements = true",
    )
}

/// The executors the farm tests run with: runc over the root directories, and docker over
/// the same roots imported as images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    Docker,
    Podman,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Self::Runc => "runc",
            Self::Docker => "docker",
            Self::Podman => "podman",
        }
    }

    /// False, after saying so in one line, where no such engine answers (see
    /// `engine_answers`).
    pub fn available(self) -> bool {
        self == Self::Runc || engine_answers(self.name())
    }

    /// Builder and runtime as this executor names them.
    pub fn builders(self) -> (String, String) {
        let root = musl_root();
        match self {
            Self::Runc => (
                root.builder.display().to_string(),
                root.runtime.display().to_string(),
            ),
            Self::Docker | Self::Podman => (
                engine_image(self.name(), &root.builder, "edelweiss-musl-root"),
                engine_image(self.name(), &root.runtime, "edelweiss-musl-runtime"),
            ),
        }
    }
}

impl Runtime {
    /// The C++ layer's builder (and the plain runtime) as this executor names them.
    pub fn cxx_builders(self) -> (String, String) {
        let builder = super::musl_root::cxx_builder();
        let (_, runtime) = self.builders();
        match self {
            Self::Runc => (builder.display().to_string(), runtime),
            Self::Docker | Self::Podman => (
                engine_image(self.name(), builder, "edelweiss-musl-root-cxx"),
                runtime,
            ),
        }
    }
}

/// Whether the `program` engine (docker, podman) answers `info`. Where none does, its tests
/// say so in one line and pass; under `CI=true` they fail instead, so that a green CI run
/// always means the engine's path ran.
pub fn engine_answers(program: &str) -> bool {
    let output = std::process::Command::new(program).arg("info").output();
    if output.as_ref().is_ok_and(|output| output.status.success()) {
        return true;
    }
    let why = match &output {
        Ok(output) => super::text(output),
        Err(error) => error.to_string(),
    };
    assert!(
        !super::in_ci(),
        "CI=true, but no {program} engine answers here, so its tests cannot run: {why}"
    );
    eprintln!("skipped: no {program} engine answers here; its tests need one");
    false
}

/// `workers/musl-root/import-image`, once per engine, root and process.
fn engine_image(engine: &str, root: &Path, name: &str) -> String {
    type Images = Vec<(String, PathBuf, String)>;
    static IMAGES: std::sync::Mutex<Images> = std::sync::Mutex::new(Vec::new());
    let mut images = IMAGES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, _, image)) = images
        .iter()
        .find(|(known, path, _)| known == engine && path == root)
    {
        return image.clone();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("workers/musl-root/import-image");
    let output = std::process::Command::new(script)
        .arg(root)
        .args(["--name", name, "--engine", engine])
        .output()
        .expect("run import-image");
    assert!(
        output.status.success(),
        "import-image failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let image = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    images.push((engine.to_string(), root.to_path_buf(), image.clone()));
    image
}

/// The token remote workers of the tests present.
pub const WORKER_TOKEN: &str = "test-worker-token-0123456789";

/// A config that builds only through remote workers (`WORKER_TOKEN`), with short leases.
pub fn remote_workers_config(executor: &str, builder: &str, runtime: &str) -> String {
    let build = build_config(executor, builder, runtime, 600)
        .replace("workers = 1", "workers = 0")
        .replace("lease_seconds = 30", "lease_seconds = 6");
    super::server::base_config("", "").replace(
        "[auth]\n",
        &format!("[auth]\nworker_tokens = [\"{WORKER_TOKEN}\"]\n"),
    ) + &build
}

/// A worker's `--target`: a runc worker names its own roots (it never builds in a directory
/// the server names); docker and podman workers take the server's image names.
pub fn worker_target(runtime: Runtime) -> String {
    match runtime {
        Runtime::Runc => {
            let (builder, runtime_root) = runtime.builders();
            format!("{TARGET}={builder},{runtime_root}")
        }
        _ => TARGET.to_string(),
    }
}

pub fn farm_server(runtime: Runtime, time_limit: u64) -> TestServer {
    let (builder, runtime_image) = runtime.builders();
    let config =
        base_config("", "") + &build_config(runtime.name(), &builder, &runtime_image, time_limit);
    TestServer::start_with(&config)
}

/// A C extension with a package around it: `import demo_ext; demo_ext.add(2, 3) == 5`.
/// `prelude` is Python run at the top of setup.py (hostile sdists put their payload there).
pub fn c_extension_sdist(dir: &Path, name: &str, prelude: &str) -> PathBuf {
    let module = name.replace('-', "_");
    let setup = format!(
        "{prelude}\nfrom setuptools import setup, Extension\nsetup(name={name:?}, version='1.0', packages=[{module:?}], package_dir={{'': 'src'}},\n      ext_modules=[Extension('{module}._speed', ['src/speed.c'])])\n"
    );
    let init = "from ._speed import add\n".to_string();
    let source = "#define PY_SSIZE_T_CLEAN\n#include <Python.h>\nstatic PyObject *add(PyObject *self, PyObject *args) {\n    long a, b;\n    if (!PyArg_ParseTuple(args, \"ll\", &a, &b)) return NULL;\n    return PyLong_FromLong(a + b);\n}\nstatic PyMethodDef methods[] = {{\"add\", add, METH_VARARGS, \"Add two integers.\"}, {NULL, NULL, 0, NULL}};\nstatic struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"_speed\", NULL, -1, methods};\nPyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }\n";
    write_project_sdist(
        dir,
        name,
        "1.0",
        &setup,
        &[
            (&format!("src/{module}/__init__.py"), &init),
            ("src/speed.c", source),
        ],
    )
}

pub fn request_build(server: &TestServer, project: &str, version: &str) -> serde_json::Value {
    let response = server
        .client()
        .post(format!("{}/api/v1/builds", server.url))
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({"project": project, "version": version, "target": TARGET}))
        .send()
        .expect("POST /api/v1/builds");
    let status = response.status();
    let text = response.text().expect("build response");
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).expect("build JSON")
}

/// Requests a build and waits for it to finish.
pub fn build_to_end(
    server: &TestServer,
    project: &str,
    version: &str,
    limit: Duration,
) -> serde_json::Value {
    let requested = request_build(server, project, version);
    wait_for_build(server, requested["id"].as_str().expect("build id"), limit)
}

/// Polls `/api/v1/builds/<id>` until the build finishes.
pub fn wait_for_build(server: &TestServer, id: &str, limit: Duration) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let finished = super::polled(limit, Duration::from_millis(500), || {
        last = server.get_json_plain(&format!("/api/v1/builds/{id}"));
        matches!(last["state"].as_str(), Some("succeeded" | "failed")).then(|| last.clone())
    });
    finished.unwrap_or_else(|| {
        panic!(
            "build {id} still {} after {limit:?}:\n{}",
            last["state"],
            server.log()
        )
    })
}

pub fn containers_started(server: &TestServer) -> u64 {
    server.metric("edelweiss_build_containers_started_total{step=\"build step\"}")
}

/// A real sdist from PyPI, downloaded once per machine with the host's pip.
pub fn pypi_sdist(project: &str, version: &str) -> PathBuf {
    let cache = test_downloads();
    let prefix = format!("{}_{version}.", project.replace('-', "_").to_lowercase());
    let find = || {
        std::fs::read_dir(&cache)
            .unwrap()
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .find(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.to_lowercase().replace('-', "_").starts_with(&prefix))
            })
    };
    if let Some(path) = find() {
        return path;
    }
    super::assert_success(
        super::tool("pip")
            .args(["download", "--no-binary", ":all:", "--no-deps", "--dest"])
            .arg(&cache)
            .arg(format!("{project}=={version}")),
    );
    find().expect("the downloaded sdist")
}

fn test_downloads() -> PathBuf {
    let cache = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/edelweiss/test-sdists");
    std::fs::create_dir_all(&cache).unwrap();
    cache
}

/// A file of a PyPI release fetched by name from PyPI's JSON simple page and checked against
/// its sha256, once per machine: for sdists whose metadata pip cannot prepare here (GDAL's
/// setup.py needs `gdal-config` even for that).
pub fn pypi_file(project: &str, filename: &str) -> PathBuf {
    let path = test_downloads().join(filename);
    if path.exists() {
        return path;
    }
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let page: serde_json::Value = client
        .get(format!("https://pypi.org/simple/{project}/"))
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .and_then(|response| response.error_for_status())
        .and_then(|response| response.json())
        .expect("PyPI's page of the project");
    let file = page["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|file| file["filename"] == filename)
        .unwrap_or_else(|| panic!("PyPI has no {filename}"));
    let bytes = client
        .get(file["url"].as_str().unwrap())
        .send()
        .and_then(|response| response.error_for_status())
        .and_then(|response| response.bytes())
        .expect("download from PyPI");
    assert_eq!(
        super::sha256_hex(&bytes),
        file["hashes"]["sha256"].as_str().unwrap(),
        "{filename} from PyPI does not match its hash"
    );
    let partial = path.with_extension("partial");
    std::fs::write(&partial, &bytes).unwrap();
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// A crate from crates.io's download host, checked against the sha256 its Cargo.lock gives,
/// downloaded once per machine.
pub fn crates_io_file(name: &str, version: &str, sha256: &str) -> PathBuf {
    let directory = test_downloads().join("crates");
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join(format!("{name}-{version}.crate"));
    if path.exists() {
        return path;
    }
    let url = format!("https://static.crates.io/crates/{name}/{name}-{version}.crate");
    let bytes = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
        .get(&url)
        .send()
        .and_then(|response| response.error_for_status())
        .and_then(|response| response.bytes())
        .unwrap_or_else(|error| panic!("download {url}: {error}"));
    assert_eq!(
        super::sha256_hex(&bytes),
        sha256,
        "{url} does not match its Cargo.lock"
    );
    let partial = path.with_extension("partial");
    std::fs::write(&partial, &bytes).unwrap();
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// The wheel of `requirement` from PyPI that installs on cp313 musllinux_1_2 (a platform or a
/// pure-Python wheel), downloaded once per machine.
pub fn pypi_musllinux_wheel(requirement: &str) -> PathBuf {
    let (name, version) = requirement.split_once("==").expect("name==version");
    let dir = test_downloads().join("musllinux");
    let prefix = format!("{}-{version}-", name.to_lowercase().replace('-', "_"));
    let find = || {
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .find(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|file| {
                        file.to_lowercase().starts_with(&prefix) && file.ends_with(".whl")
                    })
            })
    };
    if let Some(path) = find() {
        return path;
    }
    super::assert_success(
        super::tool("pip")
            .args(["download", "--no-deps", "--only-binary", ":all:"])
            .args([
                "--platform",
                "musllinux_1_2_x86_64",
                "--python-version",
                "3.13",
            ])
            .args(["--implementation", "cp", "--abi", "cp313", "--dest"])
            .arg(&dir)
            .arg(requirement),
    );
    find().expect("the downloaded wheel")
}

/// Containers of build `id` that still exist (running or not).
pub fn leftover_containers(runtime: Runtime, server: &TestServer, id: &str) -> Vec<String> {
    build_containers(runtime, server, id, true)
}

/// Containers of build `id` that run now.
pub fn running_containers(runtime: Runtime, server: &TestServer, id: &str) -> Vec<String> {
    build_containers(runtime, server, id, false)
}

fn build_containers(runtime: Runtime, server: &TestServer, id: &str, all: bool) -> Vec<String> {
    match runtime {
        Runtime::Docker | Runtime::Podman => {
            let mut command = std::process::Command::new(runtime.name());
            command.arg("ps");
            if all {
                command.arg("--all");
            }
            command.args([
                "--quiet",
                "--filter",
                &format!("label=edelweiss.build={id}"),
            ]);
            super::listed_lines(&mut command)
        }
        Runtime::Runc => {
            let mut command = std::process::Command::new("runc");
            command
                .arg("--root")
                .arg(server.data_dir.join("runc"))
                .args(["list", "--format", "json"]);
            let listing = super::listed_lines(&mut command).concat();
            let containers: Option<Vec<serde_json::Value>> = serde_json::from_str(&listing)
                .unwrap_or_else(|error| panic!("runc list printed {listing:?}: {error}"));
            containers
                .unwrap_or_default()
                .iter()
                .filter(|container| all || container["status"] == "running")
                .filter_map(|container| container["id"].as_str())
                .filter(|name| name.contains(id))
                .map(str::to_string)
                .collect()
        }
    }
}

/// How docker runs a build container, read while it runs: the hardening flags and labels.
pub fn docker_container_settings(id: &str) -> Option<serde_json::Value> {
    let container = running_docker_container(id)?;
    let mut inspect = std::process::Command::new("docker");
    inspect.args(["inspect", &container]);
    let inspected = super::assert_success(&mut inspect);
    let mut all: serde_json::Value =
        serde_json::from_slice(&inspected.stdout).expect("docker inspect JSON");
    Some(all[0].take())
}

fn running_docker_container(id: &str) -> Option<String> {
    let mut command = std::process::Command::new("docker");
    command.args([
        "ps",
        "--quiet",
        "--filter",
        &format!("label=edelweiss.build={id}"),
    ]);
    super::listed_lines(&mut command).into_iter().next()
}

/// Posts `wheel` as `worker`'s successful result for build `id`.
pub fn post_result(
    server: &TestServer,
    id: &str,
    worker: &str,
    wheel: &std::path::Path,
) -> reqwest::blocking::Response {
    let bytes = std::fs::read(wheel).unwrap();
    let form = reqwest::blocking::multipart::Form::new()
        .text("worker", worker.to_string())
        .text("outcome", "succeeded")
        .text("wheel_sha256", super::sha256_hex(&bytes))
        .part(
            "log",
            reqwest::blocking::multipart::Part::bytes(b"built elsewhere\n".to_vec())
                .file_name("build.log"),
        )
        .part(
            "wheel",
            reqwest::blocking::multipart::Part::bytes(bytes)
                .file_name(wheel.file_name().unwrap().to_str().unwrap().to_string()),
        );
    server
        .client()
        .post(format!("{}/api/v1/workers/builds/{id}/result", server.url))
        .bearer_auth(WORKER_TOKEN)
        .multipart(form)
        .send()
        .unwrap()
}
