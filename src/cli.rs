//! Command-line definitions.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;
use crate::mirror::UpstreamUrl;
use crate::pypi::Target;

#[derive(Debug, Parser)]
#[command(
    name = "edelweiss",
    version,
    about = "A Python package index that serves musllinux wheels"
)]
pub struct Cli {
    /// Configuration file (TOML); see config/edelweiss.toml for every key.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the index server.
    Serve(ServeArgs),
    /// Ingest local wheels and sdists into a data directory (no server needed).
    Add(AddArgs),
    /// Build a musllinux wheel from an sdist through the build cache (a second call with the
    /// same inputs starts no container).
    Build(BuildArgs),
    /// Make sure every wheel a requirements file needs exists for each target (CI).
    Prewarm(PrewarmArgs),
    /// Take builds from a server and run them here (a remote build worker).
    Worker(WorkerArgs),
    /// Create or bring up to date the PostgreSQL schema `metadata_url` names, then exit
    /// (a server also does this at start; run it first to migrate before a rolling update).
    /// With `--from-data-dir`, then move an installation's data there.
    Migrate(MigrateArgs),
    /// Probe a server's /healthz and exit 0 if it answers 200 (the image's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Move the installation in DIR: the records of its sled database into PostgreSQL
    /// (`metadata_url`) and its blobs into `storage_url`, every digest verified. DIR is
    /// read from a copy and left as it was; running it again copies only what is missing.
    #[arg(long, value_name = "DIR")]
    pub from_data_dir: Option<PathBuf>,
    /// Where that installation kept its blobs, when not in DIR/blobs (its `storage_url`).
    #[arg(long, value_name = "URL", requires = "from_data_dir")]
    pub from_storage_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// An sdist file, or `name==version` to take the sdist from the index or its upstreams.
    #[arg(value_name = "SDIST|NAME==VERSION")]
    pub source: String,
    /// e.g. cp313-musllinux_1_2_x86_64.
    #[arg(long)]
    pub target: Target,
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorChoice>,
    /// Root filesystem the runc executor builds in (and smoke-tests in, unless --runtime).
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub rootfs: Option<PathBuf>,
    /// Builder image for docker or podman.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Runtime root or image for the smoke test (default: the builder).
    #[arg(long, value_name = "ROOT|IMAGE")]
    pub runtime: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where the wheel and the build log are written.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExecutorChoice {
    Runc,
    Docker,
    Podman,
}

#[derive(Debug, Clone, Args)]
pub struct PrewarmArgs {
    /// A pip requirements file (repeatable); `-r` includes are followed.
    #[arg(
        short = 'r',
        long = "requirement",
        value_name = "FILE",
        required = true
    )]
    pub requirements: Vec<PathBuf>,
    /// e.g. cp313-musllinux_1_2_x86_64 (repeatable).
    #[arg(long = "target", required = true)]
    pub targets: Vec<Target>,
    /// The edelweiss server, e.g. http://edelweiss:8080/.
    #[arg(long, value_name = "URL")]
    pub server: url::Url,
    /// An upload token, needed to request builds.
    #[arg(long, env = "EDELWEISS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Longest wait for one build, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub build_timeout: u64,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The edelweiss server, e.g. http://edelweiss:8080/.
    #[arg(long, value_name = "URL")]
    pub server: url::Url,
    /// A worker token (`auth.worker_tokens` on the server).
    #[arg(long, env = "EDELWEISS_WORKER_TOKEN", hide_env_values = true)]
    pub token: String,
    #[arg(long, value_enum, default_value = "docker")]
    pub executor: ExecutorChoice,
    /// A target to build, optionally with this machine's builder and runtime when they are
    /// named differently from the server's: NAME[=BUILDER[,RUNTIME]]. Repeatable.
    #[arg(long = "target", value_name = "TARGET", required = true)]
    pub targets: Vec<String>,
    /// Work directory (build directories, runc state).
    #[arg(long, value_name = "DIR", default_value = "./edelweiss-worker")]
    pub work: PathBuf,
    /// The name leases are held under; default: host name and process id.
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds between asks when the queue is empty.
    #[arg(long, default_value_t = 2)]
    pub poll_seconds: u64,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The health URL; plain http only.
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data directory: sled database, spool and (by default) blobs.
    #[arg(long = "data", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on, e.g. 0.0.0.0:8080; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Mirror this simple-API base URL (repeatable, in order); replaces `upstreams`.
    #[arg(long = "upstream", value_name = "URL")]
    pub upstreams: Vec<UpstreamUrl>,
    /// Serve local files only, with no upstream index.
    #[arg(long, conflicts_with = "upstreams")]
    pub no_upstream: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Wheels (.whl) and sdists (.tar.gz, .zip) to ingest.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

impl Command {
    pub fn overrides(&self) -> Overrides {
        match self {
            Self::Serve(args) => Overrides {
                listen: args.listen,
                data_dir: args.data.data_dir.clone(),
                upstreams: args.upstreams.clone(),
                no_upstream: args.no_upstream,
            },
            Self::Add(args) => Overrides {
                data_dir: args.data.data_dir.clone(),
                ..Overrides::default()
            },
            Self::Build(args) => Overrides {
                data_dir: args.data.data_dir.clone(),
                ..Overrides::default()
            },
            Self::Prewarm(_) | Self::Worker(_) | Self::Migrate(_) | Self::Healthcheck(_) => {
                Overrides::default()
            }
        }
    }
}
