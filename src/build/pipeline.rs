//! One build, start to finish: the sdist into a work directory, the build step in the
//! builder, checks on what came out, the smoke test in a fresh runtime container, and the
//! wheel into the index. Each failure is classified: the package's (final) or ours (retried).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::key::{BUILD_STEP, SMOKE_STEP};
use super::recipe::Recipe;
use super::records::{BuildRecord, BuiltWheel, Failure, FailureKind};
use crate::executor::{Executor, Limits, Mount, RunOutcome, RunSpec};
use crate::ingest::{Ingestor, Spool};
use crate::metadata::FileOrigin;
use crate::metrics::Metrics;
use crate::pypi::{Target, WheelFilename};
use crate::storage::BlobStore;

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

pub struct Pipeline {
    pub executor: Arc<dyn Executor>,
    pub store: BlobStore,
    pub ingestor: Ingestor,
    pub work_root: PathBuf,
    pub limits: Limits,
    /// Names this server's containers, so a restart can remove what a crash left.
    pub instance: String,
    pub metrics: Arc<Metrics>,
}

/// One container run of a build: `name` is also the step script, `/edelweiss/<name>.sh`.
struct Step<'a> {
    name: &'static str,
    image: &'a str,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
}

pub struct PipelineResult {
    pub outcome: Result<BuiltWheel, Failure>,
    pub log: Vec<u8>,
}

fn package(message: impl Into<String>) -> Failure {
    Failure {
        kind: FailureKind::Package,
        message: message.into(),
    }
}

fn infrastructure(message: impl Into<String>) -> Failure {
    Failure {
        kind: FailureKind::Infrastructure,
        message: message.into(),
    }
}

/// `import a; import b` for the wheel's top-level packages and modules.
pub fn default_import_check(wheel: &Path) -> Result<String, String> {
    let file = std::fs::File::open(wheel).map_err(|error| error.to_string())?;
    let mut archive = zip::ZipArchive::new(file).map_err(|error| error.to_string())?;
    let mut modules = std::collections::BTreeSet::new();
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|error| error.to_string())?;
        let name = entry.name().map_err(|error| error.to_string())?.to_string();
        let mut parts = name.split('/');
        let (Some(top), rest) = (parts.next(), parts.next()) else {
            continue;
        };
        if top.ends_with(".dist-info") || top.ends_with(".data") || top.ends_with(".libs") {
            continue;
        }
        let module = match rest {
            Some("__init__.py") => Some(top.to_string()),
            None => top
                .strip_suffix(".py")
                .or_else(|| {
                    top.split_once('.')
                        .filter(|(_, ext)| ext.ends_with("so"))
                        .map(|(stem, _)| stem)
                })
                .map(str::to_string),
            Some(_) => None,
        };
        modules.extend(module.filter(|module| {
            !module.is_empty()
                && module
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
        }));
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

impl Pipeline {
    fn spec(&self, record: &BuildRecord, step: Step, work: &Path) -> RunSpec {
        let Step {
            name: step,
            image,
            env,
            mounts,
        } = step;
        let command = ["/bin/sh".to_string(), format!("/edelweiss/{step}.sh")];
        RunSpec {
            name: format!("edelweiss-{}-{}-{step}", self.instance, record.id),
            labels: vec![
                (
                    crate::executor::INSTANCE_LABEL.into(),
                    self.instance.clone(),
                ),
                (crate::executor::BUILD_LABEL.into(), record.id.clone()),
            ],
            image: image.to_string(),
            command: command.to_vec(),
            env,
            mounts,
            workdir: "/scratch".into(),
            limits: self.limits,
            log: work.join(format!("{step}.log")),
        }
    }

    fn prepare(&self, work: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        if work.exists() {
            std::fs::remove_dir_all(work)?;
        }
        for dir in ["input", "output", "wheelhouse", "steps"] {
            std::fs::create_dir_all(work.join(dir))?;
        }
        // The build runs as an unprivileged user: it may write its output and nothing else.
        std::fs::set_permissions(work.join("output"), std::fs::Permissions::from_mode(0o777))?;
        std::fs::write(work.join("steps/build.sh"), BUILD_STEP)?;
        std::fs::write(work.join("steps/smoke.sh"), SMOKE_STEP)?;
        Ok(())
    }

    async fn run_step(&self, spec: RunSpec, what: &'static str) -> Result<(), Failure> {
        let time = spec.limits.time;
        self.metrics.build_container_started(what);
        match self.executor.run(spec).await {
            Ok(RunOutcome::Exited(0)) => Ok(()),
            Ok(RunOutcome::Exited(code)) => {
                Err(package(format!("the {what} exited with status {code}")))
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

    fn single_wheel(
        output: &Path,
        record: &BuildRecord,
        target: &Target,
    ) -> Result<(PathBuf, WheelFilename), Failure> {
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
        let filename = wheel
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        let parsed: WheelFilename = filename.parse().map_err(|error| {
            package(format!("the build produced an invalid wheel name: {error}"))
        })?;
        if parsed.name.as_ref() != record.project || parsed.version.to_string() != record.version {
            return Err(package(format!(
                "the build produced {filename}, not {} {}",
                record.project, record.version
            )));
        }
        if !target.accepts(&parsed) {
            return Err(package(format!(
                "the repaired wheel {filename} does not install on {target}"
            )));
        }
        Ok((wheel.clone(), parsed))
    }

    async fn build_and_test(
        &self,
        record: &BuildRecord,
        builders: &TargetBuilders,
        recipe: &Recipe,
        work: &Path,
    ) -> Result<BuiltWheel, Failure> {
        self.prepare(work).map_err(|error| {
            infrastructure(format!("cannot prepare {}: {error}", work.display()))
        })?;
        let sdist = self
            .store
            .get_bytes(record.sdist_sha256)
            .await
            .map_err(|error| infrastructure(error.to_string()))?;
        std::fs::write(work.join("input").join(&record.sdist_filename), sdist)
            .map_err(|error| infrastructure(error.to_string()))?;
        let mut env = vec![
            (
                "PATH".to_string(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ),
            (
                "EDELWEISS_SDIST".into(),
                format!("/input/{}", record.sdist_filename),
            ),
            ("EDELWEISS_PROJECT".into(), record.project.clone()),
            ("EDELWEISS_VERSION".into(), record.version.clone()),
            (
                "EDELWEISS_PLATFORM".into(),
                builders.target.platform.to_string(),
            ),
            (
                "EDELWEISS_VERSION_MUST_MATCH".into(),
                recipe.version_must_match.clone(),
            ),
        ];
        env.extend(
            recipe
                .env
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        let mounts = vec![
            Mount {
                host: work.join("steps"),
                container: "/edelweiss".into(),
                read_only: true,
            },
            Mount {
                host: work.join("input"),
                container: "/input".into(),
                read_only: true,
            },
            Mount {
                host: work.join("wheelhouse"),
                container: "/wheelhouse".into(),
                read_only: true,
            },
            Mount {
                host: work.join("output"),
                container: "/output".into(),
                read_only: false,
            },
        ];
        let build = self.spec(
            record,
            Step {
                name: "build",
                image: &builders.builder,
                env,
                mounts,
            },
            work,
        );
        self.run_step(build, "build step").await?;
        let (wheel, parsed) = Self::single_wheel(&work.join("output"), record, &builders.target)?;
        let import_check = match recipe.import_check.trim() {
            "" => default_import_check(&wheel).map_err(package)?,
            check => check.to_string(),
        };
        let wheel_name = parsed.to_string();
        let smoke_env = vec![
            (
                "PATH".to_string(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ),
            ("EDELWEISS_WHEEL".into(), format!("/output/{wheel_name}")),
            ("EDELWEISS_IMPORT_CHECK".into(), import_check),
        ];
        let smoke_mounts = vec![
            Mount {
                host: work.join("steps"),
                container: "/edelweiss".into(),
                read_only: true,
            },
            Mount {
                host: work.join("output"),
                container: "/output".into(),
                read_only: true,
            },
        ];
        let smoke = self.spec(
            record,
            Step {
                name: "smoke",
                image: &builders.runtime,
                env: smoke_env,
                mounts: smoke_mounts,
            },
            work,
        );
        self.run_step(smoke, "smoke test").await?;
        let spooled = Spool::copy_from(self.ingestor.spool_dir(), u64::MAX, &wheel)
            .await
            .map_err(|error| infrastructure(error.to_string()))?;
        let ingested = self
            .ingestor
            .ingest(spooled, &wheel_name, None, FileOrigin::Built)
            .await
            .map_err(|error| {
                package(format!("the built wheel was refused by the index: {error}"))
            })?;
        Ok(BuiltWheel {
            filename: wheel_name,
            sha256: ingested.record.sha256,
        })
    }

    /// Runs the build; the work directory is removed afterwards, whatever happened.
    pub async fn run(
        &self,
        record: &BuildRecord,
        builders: &TargetBuilders,
        recipe: &Recipe,
    ) -> PipelineResult {
        let work = self.work_root.join(&record.id);
        let outcome = self.build_and_test(record, builders, recipe, &work).await;
        let mut log = Vec::new();
        for (step, title) in [("build", "build step"), ("smoke", "smoke test")] {
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
        let _ = std::fs::remove_dir_all(&work);
        PipelineResult { outcome, log }
    }
}
