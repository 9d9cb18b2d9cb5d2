//! The container side of one build, wherever it runs (in the server or on a remote worker):
//! the sdist into a work directory, the build step in the builder, checks on what came out,
//! and the smoke test in a fresh runtime container. Each failure is classified: the
//! package's (final) or ours (retried).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::crates::{CrateLoader, VENDOR_INPUT, write_vendor_directory};
use super::diagnose::first_error;
use super::fetcher::{Purpose, RequirementFetcher};
use super::key::{BUILD_REQUIRES_HOOK, BUILD_STEP, BUNDLE_DATA_STEP, REQUIRES_STEP, SMOKE_STEP};
use super::recipe::Recipe;
use super::records::{BuildRecord, Failure};
use super::runtime_exports::RuntimeExports;
use crate::executor::{BUILD_LABEL, Executor, INSTANCE_LABEL, Limits, Mount, RunOutcome, RunSpec};
use crate::metrics::Metrics;
use crate::pypi::{Target, WheelFilename};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a target is built and smoke-tested.
#[derive(Debug, Clone)]
pub struct TargetBuilders {
    pub target: Target,
    /// Builder image or root filesystem; `{recipe}` stands for `Recipe::image_tag`.
    pub builder: String,
    /// Plain runtime image or root (no compiler): the smoke test's.
    pub runtime: String,
}

impl TargetBuilders {
    /// The builder for one recipe.
    pub fn builder_for(&self, recipe: &Recipe) -> String {
        self.builder.replace("{recipe}", &recipe.image_tag())
    }
}

/// How much of a failed step's log is searched for the reason it failed.
const MAX_DIAGNOSED_LOG_BYTES: u64 = 16 << 20;

fn read_prefix(path: &Path, limit: u64) -> Option<Vec<u8>> {
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit).read_to_end(&mut text))
        .ok()?;
    Some(text)
}

pub fn package(message: impl Into<String>) -> Failure {
    Failure::package(message)
}

pub fn infrastructure(message: impl Into<String>) -> Failure {
    Failure::infrastructure(message)
}

/// One container run of a build: `name` is also the step script, `/edelweiss/<name>.sh`.
struct Step<'a> {
    name: &'static str,
    image: &'a str,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
}

fn mount(host: PathBuf, container: &str, read_only: bool) -> Mount {
    Mount {
        host,
        container: container.to_string(),
        read_only,
    }
}

/// What goes into a build's container besides the steps: the sdist, and the wheels of its
/// build requirements (filename, bytes) for its offline wheelhouse.
pub struct BuildInputs<'a> {
    pub sdist: &'a [u8],
    pub wheelhouse: &'a [(String, bytes::Bytes)],
    /// Resolves what the backend adds and the wheel's runtime dependencies; without one
    /// pip finds only the wheelhouse and the wheel is tested alone.
    pub fetcher: Option<&'a dyn RequirementFetcher>,
    /// The `.crate` files of the record's locked crates, for the vendor directory.
    pub crates: &'a dyn CrateLoader,
}

/// The most a backend may add through `get_requires_for_build_wheel`.
const MAX_BACKEND_REQUIRES: usize = 200;
const MAX_REQUIRES_JSON_BYTES: u64 = 64 * 1024;

/// The requirements the requires step wrote, bounded and parsed.
fn read_backend_requires(path: &Path) -> Result<Vec<String>, Failure> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // The container wrote it: a symlink out of the work directory or a FIFO is refused.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| package(format!("the requires step wrote no requires.json: {error}")))?;
    if !file.metadata().is_ok_and(|metadata| metadata.is_file()) {
        return Err(package("requires.json is not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_REQUIRES_JSON_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| package(format!("requires.json: {error}")))?;
    if text.len() as u64 > MAX_REQUIRES_JSON_BYTES {
        return Err(package("requires.json is larger than 64 KiB"));
    }
    let requires: Vec<String> = serde_json::from_str(&text)
        .map_err(|error| package(format!("requires.json is not a list of strings: {error}")))?;
    if requires.len() > MAX_BACKEND_REQUIRES {
        return Err(package(format!(
            "the backend asked for {} requirements; at most {MAX_BACKEND_REQUIRES}",
            requires.len()
        )));
    }
    for requirement in &requires {
        super::resolve::parse_requirement(requirement)
            .map_err(|error| package(format!("the backend asked for {error}")))?;
    }
    Ok(requires)
}

pub struct ContainerSteps {
    pub executor: Arc<dyn Executor>,
    pub limits: Limits,
    /// Names this process's containers, so a restart can remove what a crash left.
    pub instance: String,
    pub metrics: Arc<Metrics>,
    /// What each runtime exports to a wheel's ELF files, read once per runtime.
    pub runtime_exports: RuntimeExports,
}

/// A wheel that passed its smoke test, still in the work directory.
pub struct TestedWheel {
    pub path: PathBuf,
    pub filename: WheelFilename,
}

pub struct StepsResult {
    pub outcome: Result<TestedWheel, Failure>,
    pub log: Vec<u8>,
}

impl ContainerSteps {
    fn spec(&self, record: &BuildRecord, step: Step, work: &Path) -> RunSpec {
        let Step {
            name: step,
            image,
            env,
            mounts,
        } = step;
        RunSpec {
            name: format!("edelweiss-{}-{}-{step}", self.instance, record.id),
            labels: vec![
                (INSTANCE_LABEL.into(), self.instance.clone()),
                (BUILD_LABEL.into(), record.id.clone()),
            ],
            image: image.to_string(),
            command: vec!["/bin/sh".to_string(), format!("/edelweiss/{step}.sh")],
            env,
            mounts,
            workdir: "/scratch".into(),
            limits: self.limits,
            log: work.join(format!("{step}.log")),
        }
    }

    fn prepare(
        work: &Path,
        record: &BuildRecord,
        sdist: &[u8],
        wheelhouse: &[(String, bytes::Bytes)],
    ) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        if work.exists() {
            std::fs::remove_dir_all(work)?;
        }
        for dir in [
            "input",
            "output",
            "wheelhouse",
            "runtime-wheelhouse",
            "steps",
        ] {
            std::fs::create_dir_all(work.join(dir))?;
        }
        // The build runs as an unprivileged user: it may write its output and nothing else.
        std::fs::set_permissions(work.join("output"), std::fs::Permissions::from_mode(0o777))?;
        std::fs::write(work.join("steps/build.sh"), BUILD_STEP)?;
        std::fs::write(work.join("steps/smoke.sh"), SMOKE_STEP)?;
        std::fs::write(work.join("steps/bundle_data.py"), BUNDLE_DATA_STEP)?;
        std::fs::write(work.join("steps/requires.sh"), REQUIRES_STEP)?;
        std::fs::write(work.join("steps/build_requires.py"), BUILD_REQUIRES_HOOK)?;
        for (filename, bytes) in wheelhouse {
            std::fs::write(work.join("wheelhouse").join(filename), bytes)?;
        }
        std::fs::write(work.join("input").join(&record.sdist_filename), sdist)
    }

    async fn run_step(&self, spec: RunSpec, what: &'static str) -> Result<(), Failure> {
        let time = spec.limits.time;
        let log = spec.log.clone();
        self.metrics.build_container_started(what);
        match self.executor.run(spec).await {
            Ok(RunOutcome::Exited(0)) => Ok(()),
            Ok(RunOutcome::Exited(code)) => {
                let reason = read_prefix(&log, MAX_DIAGNOSED_LOG_BYTES)
                    .and_then(|text| first_error(&String::from_utf8_lossy(&text)))
                    .map(|diagnosis| format!(": {diagnosis}"))
                    .unwrap_or_default();
                Err(package(format!(
                    "the {what} exited with status {code}{reason}"
                )))
            }
            Ok(RunOutcome::TimedOut) => Err(package(format!(
                "the {what} was killed at the time limit ({}s)",
                time.as_secs()
            ))),
            Ok(RunOutcome::OutOfMemory) => Err(package(format!(
                "the {what} was killed at the memory limit ({} MB)",
                self.limits.memory_mb
            ))),
            Err(error) => Err(infrastructure(format!("the {what} could not run: {error}"))),
        }
    }

    fn single_wheel(output: &Path, record: &BuildRecord) -> Result<TestedWheel, Failure> {
        let wheels: Vec<PathBuf> = std::fs::read_dir(output)
            .map_err(|error| infrastructure(error.to_string()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "whl"))
            .collect();
        let [wheel] = wheels.as_slice() else {
            return Err(package(format!(
                "the build step produced {} wheels; expected one",
                wheels.len()
            )));
        };
        let name = wheel
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        check_wheel(name, record).map(|filename| TestedWheel {
            path: wheel.clone(),
            filename,
        })
    }

    async fn build_and_test(
        &self,
        record: &BuildRecord,
        builders: &TargetBuilders,
        recipe: &Recipe,
        work: &Path,
        inputs: &BuildInputs<'_>,
    ) -> Result<TestedWheel, Failure> {
        let wheel = self
            .build_wheel(record, builders, recipe, work, inputs)
            .await?;
        self.runtime_exports
            .check(
                self.executor.as_ref(),
                &builders.runtime,
                &builders.target,
                &wheel.path,
            )
            .await?;
        self.smoke_test(record, builders, recipe, work, &wheel, inputs.fetcher)
            .await?;
        Ok(wheel)
    }

    /// The requires and build steps in the builder: the sdist in, one checked wheel out.
    async fn build_wheel(
        &self,
        record: &BuildRecord,
        builders: &TargetBuilders,
        recipe: &Recipe,
        work: &Path,
        inputs: &BuildInputs<'_>,
    ) -> Result<TestedWheel, Failure> {
        Self::prepare(work, record, inputs.sdist, inputs.wheelhouse).map_err(|error| {
            infrastructure(format!("cannot prepare {}: {error}", work.display()))
        })?;
        Self::vendor_crates(record, work, inputs.crates).await?;
        let mut env = build_env(record, builders, recipe);
        let mounts = vec![
            mount(work.join("steps"), "/edelweiss", true),
            mount(work.join("input"), "/input", true),
            mount(work.join("wheelhouse"), "/wheelhouse", true),
            mount(work.join("output"), "/output", false),
        ];
        let builder = builders.builder_for(recipe);
        if let Some(requirements) = &record.build_requirements {
            env.push(("EDELWEISS_ISOLATED".into(), "1".into()));
            if let Some(fetcher) = inputs.fetcher {
                let step = Step {
                    name: "requires",
                    image: &builder,
                    env: env.clone(),
                    mounts: mounts.clone(),
                };
                self.backend_requirements(record, step, work, fetcher, &requirements.pinned)
                    .await?;
            }
        }
        let build = self.spec(
            record,
            Step {
                name: "build",
                image: &builder,
                env,
                mounts,
            },
            work,
        );
        self.run_step(build, "build step").await?;
        Self::single_wheel(&work.join("output"), record)
    }

    /// The wheel installed alone (or with its runtime dependencies) in a fresh container of
    /// the runtime, and the recipe's import check run.
    async fn smoke_test(
        &self,
        record: &BuildRecord,
        builders: &TargetBuilders,
        recipe: &Recipe,
        work: &Path,
        wheel: &TestedWheel,
        fetcher: Option<&dyn RequirementFetcher>,
    ) -> Result<(), Failure> {
        let import_check = match recipe.import_check.trim() {
            "" => default_import_check(&wheel.path).map_err(package)?,
            check => check.to_string(),
        };
        let mut env = vec![
            ("PATH".to_string(), PATH.to_string()),
            (
                "EDELWEISS_WHEEL".into(),
                format!("/output/{}", wheel.filename),
            ),
            ("EDELWEISS_IMPORT_CHECK".into(), import_check),
        ];
        let mut mounts = vec![
            mount(work.join("steps"), "/edelweiss", true),
            mount(work.join("output"), "/output", true),
        ];
        if let Some(fetcher) = fetcher {
            if self
                .runtime_dependencies(record, wheel, work, fetcher)
                .await?
            {
                env.push(("EDELWEISS_RUNTIME_WHEELHOUSE".into(), "1".into()));
                mounts.push(mount(work.join("runtime-wheelhouse"), "/wheelhouse", true));
            }
        }
        let smoke = self.spec(
            record,
            Step {
                name: "smoke",
                image: &builders.runtime,
                env,
                mounts,
            },
            work,
        );
        self.run_step(smoke, "smoke test").await
    }

    /// The record's crates unpacked into the build's read-only input as cargo's vendor
    /// directory (`/input/cargo-vendor`), which the steps hand to cargo.
    async fn vendor_crates(
        record: &BuildRecord,
        work: &Path,
        loader: &dyn CrateLoader,
    ) -> Result<(), Failure> {
        let Some(locked) = &record.crates else {
            return Ok(());
        };
        if let Some(reason) = &locked.refused {
            return Err(package(format!("Cargo.lock: {reason}")));
        }
        let started = std::time::Instant::now();
        let unpacked = write_vendor_directory(
            &work.join("input").join(VENDOR_INPUT),
            &locked.crates,
            loader,
        )
        .await?;
        append_note(
            work,
            &format!(
                "crates vendored for an offline cargo from {}: {} ({unpacked} bytes unpacked, {:.1}s)\n",
                locked.locks.join(", "),
                locked.crates.len(),
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }

    /// The requires step, then what the backend asked for resolved (the recipe's pins
    /// overriding) and added to the wheelhouse.
    async fn backend_requirements(
        &self,
        record: &BuildRecord,
        step: Step<'_>,
        work: &Path,
        fetcher: &dyn RequirementFetcher,
        pinned: &[super::resolve::Pinned],
    ) -> Result<(), Failure> {
        let started = std::time::Instant::now();
        let spec = self.spec(record, step, work);
        self.run_step(spec, "requires step").await?;
        let requires = read_backend_requires(&work.join("output/requires.json"));
        // The build step starts from an empty output, whatever the requires step left.
        empty_directory(&work.join("output"))
            .map_err(|error| infrastructure(format!("cannot empty the output: {error}")))?;
        let requires = requires?;
        let asked = requires
            .iter()
            .map(|requirement| (requirement.clone(), "the backend".to_string()))
            .collect();
        let added = fetcher
            .fetch(Purpose::Build, asked, pinned.to_vec())
            .await?;
        let mut notes = format!(
            "requires step: {:.1}s; the backend asked for {requires:?}\n",
            started.elapsed().as_secs_f64()
        );
        for (pin, bytes) in &added {
            notes.push_str(&format!("added {} ({})\n", pin.filename, pin.sha256));
            std::fs::write(work.join("wheelhouse").join(&pin.filename), bytes)
                .map_err(|error| infrastructure(format!("cannot write the wheelhouse: {error}")))?;
        }
        append_note(work, &notes);
        Ok(())
    }

    /// The built wheel's `Requires-Dist` resolved for the target into the smoke test's
    /// wheelhouse; false when it has none.
    async fn runtime_dependencies(
        &self,
        record: &BuildRecord,
        wheel: &TestedWheel,
        work: &Path,
        fetcher: &dyn RequirementFetcher,
    ) -> Result<bool, Failure> {
        let bytes = std::fs::read(&wheel.path)
            .map_err(|error| infrastructure(format!("cannot read the wheel: {error}")))?;
        let filename = wheel.filename.to_string();
        let requires = super::index_wheels::wheel_requires_dist(&filename, &bytes)
            .map_err(|error| package(format!("the built wheel's metadata: {error}")))?;
        let itself = super::resolve::Pinned {
            project: record.project.to_string(),
            version: record.version.to_string(),
            filename: filename.clone(),
            sha256: crate::pypi::Sha256Digest::of(&bytes),
        };
        let asked = requires
            .into_iter()
            .map(|requirement| (requirement, filename.clone()))
            .collect();
        let dependencies = fetcher.fetch(Purpose::Runtime, asked, vec![itself]).await?;
        if dependencies.is_empty() {
            return Ok(false);
        }
        let mut notes = String::from("runtime dependencies for the smoke test:\n");
        for (pin, bytes) in &dependencies {
            notes.push_str(&format!("  {}\n", pin.filename));
            std::fs::write(work.join("runtime-wheelhouse").join(&pin.filename), bytes)
                .map_err(|error| infrastructure(format!("cannot write the wheelhouse: {error}")))?;
        }
        append_note(work, &notes);
        Ok(true)
    }

    /// Runs both steps in `work`, which the caller removes once it has taken the wheel.
    pub async fn run(
        &self,
        record: &BuildRecord,
        builders: &TargetBuilders,
        recipe: &Recipe,
        work: &Path,
        inputs: &BuildInputs<'_>,
    ) -> StepsResult {
        let outcome = self
            .build_and_test(record, builders, recipe, work, inputs)
            .await;
        let mut log = Vec::new();
        for (step, title) in [
            ("requires", "requires step"),
            ("edelweiss", "edelweiss: requirements"),
            ("build", "build step"),
            ("smoke", "smoke test"),
        ] {
            if let Ok(mut file) = std::fs::File::open(work.join(format!("{step}.log"))) {
                log.extend_from_slice(format!("===== {title} =====\n").as_bytes());
                let _ = file.read_to_end(&mut log);
            }
        }
        if let Err(failure) = &outcome {
            log.extend_from_slice(
                format!(
                    "===== edelweiss: {:?} failure: {} =====\n",
                    failure.kind, failure.message
                )
                .as_bytes(),
            );
        }
        StepsResult { outcome, log }
    }
}

/// Removes what is inside `dir` without following symlinks.
fn empty_directory(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if std::fs::symlink_metadata(&path)?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Host-side notes on a build (what was resolved), shown in its log after the requires step.
fn append_note(work: &Path, note: &str) {
    use std::io::Write as _;
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(work.join("edelweiss.log"))
        .and_then(|mut file| file.write_all(note.as_bytes()));
    if let Err(error) = appended {
        tracing::warn!(%error, "could not write a build note");
    }
}

/// The build step's environment: the sdist, the release, the platform and the recipe's
/// settings.
fn build_env(
    record: &BuildRecord,
    builders: &TargetBuilders,
    recipe: &Recipe,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), PATH.to_string()),
        (
            "EDELWEISS_SDIST".into(),
            format!("/input/{}", record.sdist_filename),
        ),
        ("EDELWEISS_PROJECT".into(), record.project.to_string()),
        ("EDELWEISS_VERSION".into(), record.version.to_string()),
        (
            "EDELWEISS_PLATFORM".into(),
            builders.target.platform.to_string(),
        ),
        (
            "EDELWEISS_VERSION_MUST_MATCH".into(),
            recipe.version_must_match.clone(),
        ),
    ];
    if !recipe.bundle_data.is_empty() {
        env.push((
            "EDELWEISS_BUNDLE_DATA".into(),
            serde_json::to_string(&recipe.bundle_data).expect("strings serialize"),
        ));
    }
    env.extend(
        recipe
            .env
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    env
}

/// A built wheel's name must be the build's project and version and install on the target.
pub fn check_wheel(name: &str, record: &BuildRecord) -> Result<WheelFilename, Failure> {
    let target = &record.target;
    let parsed: WheelFilename = name
        .parse()
        .map_err(|error| package(format!("the build produced an invalid wheel name: {error}")))?;
    if parsed.name != record.project || parsed.version != record.version {
        return Err(package(format!(
            "the build produced {name}, not {} {}",
            record.project, record.version
        )));
    }
    if !target.accepts(&parsed) {
        return Err(package(format!(
            "the repaired wheel {name} does not install on {target}"
        )));
    }
    Ok(parsed)
}

/// `import a; import b` for the wheel's top-level packages and modules; a PEP 420 namespace
/// (a top-level directory without `__init__.py`, such as `zope/` or `google/`) is imported
/// through the packages and modules one level inside it.
pub fn default_import_check(wheel: &Path) -> Result<String, String> {
    let file = std::fs::File::open(wheel).map_err(|error| error.to_string())?;
    let mut archive = zip::ZipArchive::new(file).map_err(|error| error.to_string())?;
    let mut names = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|error| error.to_string())?;
        names.push(entry.name().map_err(|error| error.to_string())?.to_string());
    }
    let mut modules = std::collections::BTreeSet::new();
    let mut namespaces = std::collections::BTreeMap::<String, Vec<String>>::new();
    for name in &names {
        let parts: Vec<&str> = name.split('/').collect();
        let top = parts[0];
        if top.ends_with(".dist-info") || top.ends_with(".data") || top.ends_with(".libs") {
            continue;
        }
        match parts[1..] {
            [] => modules.extend(module_of_file(top)),
            ["__init__.py"] => modules.extend(identifier(top)),
            [inner] => namespaces
                .entry(top.to_string())
                .or_default()
                .extend(module_of_file(inner)),
            [inner, "__init__.py"] => namespaces
                .entry(top.to_string())
                .or_default()
                .extend(identifier(inner)),
            _ => {}
        }
    }
    for (top, inner) in namespaces {
        if modules.contains(&top) || identifier(&top).is_none() {
            continue;
        }
        modules.extend(inner.into_iter().map(|module| format!("{top}.{module}")));
    }
    if modules.is_empty() {
        return Err("the wheel has no top-level module to import".into());
    }
    Ok(modules
        .iter()
        .map(|module| format!("import {module}"))
        .collect::<Vec<_>>()
        .join("; "))
}

/// The module a file in a package directory is: `a.py` and `a.cpython-313-….so` are `a`.
fn module_of_file(file: &str) -> Option<String> {
    let stem = file.strip_suffix(".py").or_else(|| {
        file.split_once('.')
            .filter(|(_, ext)| ext.ends_with("so"))
            .map(|(stem, _)| stem)
    })?;
    identifier(stem)
}

/// A name the import check may spell: a wheel's paths are a package's, so anything but a
/// plain identifier is left out of the command.
fn identifier(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the requires step leaves is the container's: only a small regular file holding
    /// a list of PEP 508 requirements is taken, anything else fails the build by name.
    #[test]
    fn the_requires_answer_is_read_bounded_and_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requires.json");
        std::fs::write(
            &path,
            r#"["cmake>=3.15", "ninja; sys_platform != 'win32'"]"#,
        )
        .unwrap();
        assert_eq!(
            read_backend_requires(&path).unwrap(),
            ["cmake>=3.15", "ninja; sys_platform != 'win32'"]
        );
        let refused = |content: &[u8]| {
            std::fs::write(&path, content).unwrap();
            read_backend_requires(&path).unwrap_err()
        };
        assert!(
            refused(b"{\"a\": 1}")
                .message
                .contains("not a list of strings")
        );
        assert!(
            refused(br#"["not a requirement ("]"#)
                .message
                .contains("asked for")
        );
        let many = serde_json::to_vec(&vec!["a"; MAX_BACKEND_REQUIRES + 1]).unwrap();
        assert!(refused(&many).message.contains("at most"));
        let huge = vec![b' '; MAX_REQUIRES_JSON_BYTES as usize + 1];
        assert!(refused(&huge).message.contains("larger"));

        std::fs::remove_file(&path).unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, r#"["from-the-host"]"#).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let failure = read_backend_requires(&path).unwrap_err();
        assert_eq!(failure.kind, crate::farm::FailureKind::Package);
        assert!(
            !failure.message.contains("from-the-host"),
            "{}",
            failure.message
        );
    }

    fn wheel_of(dir: &Path, files: &[&str]) -> std::path::PathBuf {
        let path = dir.join("demo-1.0-cp313-cp313-musllinux_1_2_x86_64.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for file in files {
            zip.start_file(*file, zip::write::SimpleFileOptions::default())
                .unwrap();
        }
        zip.finish().unwrap();
        path
    }

    #[test]
    fn the_import_check_imports_packages_modules_and_inside_namespaces() {
        let dir = tempfile::tempdir().unwrap();
        let check = |files: &[&str]| default_import_check(&wheel_of(dir.path(), files));
        assert_eq!(
            check(&[
                "demo/__init__.py",
                "demo/_speedups.cpython-313-x86_64-linux-musl.so",
                "single.py",
                "_ext.cpython-313-x86_64-linux-musl.so",
                "demo-1.0.dist-info/METADATA",
                "demo.libs/libz-1a2b.so.1",
            ])
            .unwrap(),
            "import _ext; import demo; import single"
        );
        assert_eq!(
            check(&[
                "zope/interface/__init__.py",
                "zope/interface/_zope_interface_coptimizations.cpython-313-x86_64-linux-musl.so",
                "zope/other.py",
                "zope.interface-6.2.dist-info/METADATA",
            ])
            .unwrap(),
            "import zope.interface; import zope.other"
        );
        assert_eq!(
            check(&["ok/__init__.py", "bad-name.py", "9lives.py", "ok/x;y.py"]).unwrap(),
            "import ok"
        );
        assert!(check(&["demo-1.0.dist-info/METADATA"]).is_err());
    }

    #[test]
    fn emptying_the_output_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("kept"), b"x").unwrap();
        let output = dir.path().join("output");
        std::fs::create_dir_all(output.join("nested")).unwrap();
        std::fs::write(output.join("stray.whl"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, output.join("link")).unwrap();
        empty_directory(&output).unwrap();
        assert_eq!(std::fs::read_dir(&output).unwrap().count(), 0);
        assert!(outside.join("kept").exists());
    }
}
