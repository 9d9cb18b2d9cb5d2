//! What each subcommand does, given loaded settings.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::app::{Application, Services};
use crate::cli::{BuildArgs, ExecutorChoice, MigrateArgs, PrewarmArgs, WorkerArgs};
use crate::config::Settings;
use crate::config::{ExecutorKind, MetadataBackend, TargetSettings};
use crate::farm::{ContainerSteps, RemoteWorker};
use crate::ingest::Spool;
use crate::ingest::inspect;
use crate::metadata::{FileOrigin, InsertOutcome};
use crate::pypi::{DistFilename, PackageName, Sha256Digest, Target, Version, parse_package_name};
use crate::relocation::{self, Source};

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(&settings).await?;
    // Scripts and tests read this line to learn the port when listening on port 0.
    println!("edelweiss listening on http://{}", application.address());
    std::io::stdout().flush()?;
    tracing::info!(address = %application.address(), data_dir = %settings.data_dir.display(), "serving");
    application.run_until_stopped().await?;
    Ok(())
}

/// Brings the PostgreSQL schemas up to date and says what each was and is; the embedded
/// database needs nothing. With `--from-data-dir`, then moves that installation's data in.
pub async fn migrate(settings: Settings, args: &MigrateArgs) -> anyhow::Result<()> {
    if let Some(old_dir) = &args.from_data_dir {
        let source = Source {
            data_dir: old_dir.clone(),
            storage_url: args.from_storage_url.clone(),
        };
        let summary = relocation::move_installation(&settings, &source).await?;
        print!("{summary}");
        return Ok(());
    }
    let url = match settings.metadata_backend() {
        MetadataBackend::Postgres(url) => url,
        MetadataBackend::Embedded => {
            println!(
                "metadata_url is not set: the embedded database in {} needs no migration",
                settings.data_dir.display()
            );
            return Ok(());
        }
        MetadataBackend::Invalid => anyhow::bail!("metadata_url is not a postgres:// URL"),
    };
    let pool = crate::postgres::pool(&url)?;
    for applied in crate::postgres::migrate(&pool, crate::postgres::SCHEMAS).await? {
        match applied.from == applied.to {
            true => println!("{}: at version {}", applied.component, applied.to),
            false => println!(
                "{}: migrated from version {} to {}",
                applied.component, applied.from, applied.to
            ),
        }
    }
    Ok(())
}

/// Ingests each file; reports every failure and fails if any file was refused.
pub async fn add(settings: Settings, files: Vec<PathBuf>) -> anyhow::Result<()> {
    let data = Services::open(&settings).await?;
    let mut refused = 0;
    for path in files {
        let filename = path
            .file_name()
            .and_then(|name| name.to_str())
            .with_context(|| format!("{} has no usable file name", path.display()))?
            .to_string();
        let spooled = Spool::copy_from(
            data.ingestor.spool_dir(),
            settings.limits.max_upload_bytes,
            &path,
        )
        .await
        .with_context(|| format!("reading {}", path.display()));
        let result = match spooled {
            Ok(spooled) => data
                .ingestor
                .ingest(spooled, &filename, None, FileOrigin::Uploaded)
                .await
                .map_err(anyhow::Error::from),
            Err(error) => Err(error),
        };
        match result {
            Ok(outcome) if outcome.outcome == InsertOutcome::Inserted => {
                println!("added {filename} sha256={}", outcome.record.sha256);
            }
            Ok(_) => println!("unchanged {filename} (already stored with the same content)"),
            Err(error) => {
                refused += 1;
                eprintln!("refused {}: {error:#}", path.display());
            }
        }
    }
    anyhow::ensure!(refused == 0, "{refused} file(s) refused");
    Ok(())
}

/// A dependency-free HTTP/1.0 GET, so the runtime image needs nothing but the binary.
pub fn healthcheck(url: &str) -> anyhow::Result<()> {
    use std::io::Read as _;
    let parsed = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    anyhow::ensure!(
        parsed.scheme() == "http",
        "only http:// health URLs are supported"
    );
    let host = parsed.host_str().context("the URL has no host")?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let timeout = std::time::Duration::from_secs(5);
    let address = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
        .next()
        .context("the host has no address")?;
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {} HTTP/1.0\r\nHost: {host}\r\n\r\n",
        parsed.path()
    )?;
    let mut answer = String::new();
    stream.take(4096).read_to_string(&mut answer)?;
    let status_line = answer.lines().next().unwrap_or_default();
    anyhow::ensure!(
        status_line.split_whitespace().nth(1) == Some("200"),
        "unhealthy: {status_line}"
    );
    println!("healthy");
    Ok(())
}

/// Applies the build command's executor and builder flags to the settings.
fn build_settings(mut settings: Settings, args: &BuildArgs) -> Settings {
    if let Some(choice) = args.executor {
        settings = build_settings_for_executor(settings, choice);
    }
    let builder = args
        .rootfs
        .as_ref()
        .map(|root| root.display().to_string())
        .or_else(|| args.image.clone());
    if let Some(builder) = builder {
        settings
            .build
            .targets
            .retain(|target| target.name != args.target);
        let runtime = args.runtime.clone().unwrap_or_default();
        settings.build.targets.push(TargetSettings {
            name: args.target.clone(),
            builder,
            runtime,
        });
    }
    settings
}

/// A local sdist file, validated and stored (not listed in the index) for the build.
async fn store_sdist(
    services: &Services,
    settings: &Settings,
    path: &std::path::Path,
) -> anyhow::Result<(PackageName, Version, (String, Sha256Digest))> {
    let filename = path
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("{} has no usable file name", path.display()))?
        .to_string();
    let DistFilename::Sdist(sdist) = filename.parse::<DistFilename>()? else {
        anyhow::bail!("{filename} is a wheel; give an sdist (.tar.gz)");
    };
    let spooled = Spool::copy_from(
        services.ingestor.spool_dir(),
        settings.limits.max_upload_bytes,
        path,
    )
    .await?;
    let parsed = DistFilename::Sdist(sdist.clone());
    let limits = settings.archive_limits();
    let spooled_path = spooled.path.to_path_buf();
    tokio::task::spawn_blocking(move || inspect(&spooled_path, &parsed, &limits)).await??;
    services
        .store
        .put_file(spooled.sha256, &spooled.path)
        .await?;
    Ok((sdist.name, sdist.version, (filename, spooled.sha256)))
}

pub async fn build(settings: Settings, args: &BuildArgs) -> anyhow::Result<()> {
    let settings = build_settings(settings, args);
    let services = Services::open(&settings).await?;
    let source = std::path::Path::new(&args.source);
    let (project, version, sdist) = if source.is_file() {
        store_sdist(&services, &settings, source).await?
    } else {
        let (name, version) = args
            .source
            .split_once("==")
            .context("give an sdist file or NAME==VERSION")?;
        let (project, version): (PackageName, Version) =
            (parse_package_name(name)?, version.parse()?);
        let sdist = services.builds.find_sdist(&project, &version).await?;
        (project, version, sdist)
    };
    let (record, requested) = services
        .builds
        .request(&project, &version, sdist, &args.target)
        .await?;
    println!(
        "build {}: {project} {version} for {} ({requested:?}, key {})",
        record.id, args.target, record.key
    );
    let started = std::time::Instant::now();
    let mut record = record;
    while !record.is_finished() {
        services.builds.work_once("cli").await?;
        record = services
            .builds
            .record(&record.id)
            .await?
            .context("the build record vanished")?;
        println!(
            "build {}: {:?} after {:.0?}",
            record.id,
            record.state,
            started.elapsed()
        );
    }
    std::fs::create_dir_all(&args.out)?;
    if let Some(log) = services.builds.log_text(&record).await {
        let log_path = args.out.join(format!("{}.log", record.id));
        std::fs::write(&log_path, log)?;
        println!("log: {}", log_path.display());
    }
    match (&record.wheel, &record.failure) {
        (Some(wheel), _) => {
            let path = args.out.join(&wheel.filename);
            std::fs::write(&path, services.store.get_bytes(wheel.sha256).await?)?;
            println!("wheel: {} (sha256 {})", path.display(), wheel.sha256);
            Ok(())
        }
        (None, Some(failure)) => anyhow::bail!(
            "build {} failed ({:?}): {}",
            record.id,
            failure.kind,
            failure.message
        ),
        (None, None) => anyhow::bail!("build {} ended without a wheel", record.id),
    }
}

/// `NAME[=BUILDER[,RUNTIME]]`.
fn parse_worker_target(text: &str) -> anyhow::Result<(Target, Option<(String, String)>)> {
    let (name, builders) = match text.split_once('=') {
        Some((name, builders)) => (name, Some(builders)),
        None => (text, None),
    };
    let target: Target = name.parse()?;
    let builders = builders.map(|builders| match builders.split_once(',') {
        Some((builder, runtime)) => (builder.to_string(), runtime.to_string()),
        None => (builders.to_string(), builders.to_string()),
    });
    Ok((target, builders))
}

pub async fn worker(settings: Settings, args: &WorkerArgs) -> anyhow::Result<()> {
    let mut settings = build_settings_for_executor(settings, args.executor);
    std::fs::create_dir_all(&args.work)?;
    settings.data_dir = std::path::absolute(&args.work)?;
    let mut targets = Vec::new();
    let mut builders = std::collections::HashMap::new();
    for text in &args.targets {
        let (target, own) = parse_worker_target(text)?;
        if let Some(own) = own {
            builders.insert(target.to_string(), own);
        }
        targets.push(target);
    }
    let executor = crate::services::executor(&settings);
    let instance = crate::services::instance_id(&settings);
    match executor.remove_orphans(&instance).await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(count, "removed build containers left by a crash"),
        Err(error) => tracing::warn!(%error, "could not look for orphaned build containers"),
    }
    let name = args.name.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
            std::process::id()
        )
    });
    let work_root = args.work.join("builds");
    std::fs::create_dir_all(&work_root)?;
    let worker = RemoteWorker {
        client: reqwest::Client::builder()
            .user_agent(concat!("edelweiss-worker/", env!("CARGO_PKG_VERSION")))
            // A server behind a partition must fail a request, not hang it: the lease and the
            // held result are retried by the worker's own loop.
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(60))
            .build()?,
        server: args.server.clone(),
        token: crate::auth::Secret::new(args.token.clone()),
        name: name.clone(),
        targets,
        builders,
        steps: ContainerSteps {
            executor,
            limits: crate::services::build_limits(&settings),
            instance,
            metrics: std::sync::Arc::new(crate::metrics::Metrics::default()),
            runtime_exports: Default::default(),
        },
        work_root,
    };
    println!("edelweiss worker {name} taking builds from {}", args.server);
    std::io::stdout().flush()?;
    worker
        .run_forever(std::time::Duration::from_secs(args.poll_seconds))
        .await?;
    Ok(())
}

fn build_settings_for_executor(mut settings: Settings, choice: ExecutorChoice) -> Settings {
    settings.build.executor = match choice {
        ExecutorChoice::Runc => ExecutorKind::Runc,
        ExecutorChoice::Docker => ExecutorKind::Docker,
        ExecutorChoice::Podman => ExecutorKind::Podman,
    };
    settings
}

/// Resolves each target, then builds what lacks a wheel; fails if anything still does.
pub async fn prewarm(args: &PrewarmArgs) -> anyhow::Result<()> {
    use crate::prewarm::{HttpFarm, print_table, read_requirements};
    let (mut seen, mut notes, mut requirements) = (Default::default(), Vec::new(), Vec::new());
    for path in &args.requirements {
        requirements.extend(read_requirements(path, &mut seen, &mut notes)?);
    }
    for note in &notes {
        println!("note: {note}");
    }
    let farm = HttpFarm {
        http: reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()?,
        server: args.server.clone(),
        token: args.token.clone(),
    };
    let timeout = std::time::Duration::from_secs(args.build_timeout);
    let rows = crate::prewarm::run(&farm, &requirements, &args.targets, timeout, &mut |line| {
        println!("{line}")
    })
    .await?;
    print_table(&rows);
    let failed: Vec<_> = rows.iter().filter(|row| row.source == "failed").collect();
    for row in &failed {
        eprintln!(
            "failed: {} {} [{}]: log {}",
            row.project,
            row.version,
            row.target,
            row.log_url.as_deref().unwrap_or("-")
        );
    }
    anyhow::ensure!(
        failed.is_empty(),
        "{} distribution(s) have no wheel",
        failed.len()
    );
    Ok(())
}
