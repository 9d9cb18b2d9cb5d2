//! Typed settings, layered: defaults < config file < `EDELWEISS_*` environment < flags.
//! Every key is documented here and in `config/edelweiss.toml`; `validate` runs before a
//! socket is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::TokenSetting;
use crate::ingest::ArchiveLimits;
use crate::mirror::{FileHost, UpstreamUrl};
use crate::pypi::Target;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration from {path} and EDELWEISS_* variables: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("environment variable {name}={value:?}: {reason}")]
    Environment {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid setting `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server binds; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory for the sled database, spool files and (by default) blobs.
    pub data_dir: PathBuf,
    /// Blob storage URL: `file:///abs/dir` or `s3://bucket/prefix`. Empty means
    /// `file://<data_dir>/blobs`.
    pub storage_url: String,
    /// Where the records (projects, files, the mirror's pages) and the build queue live:
    /// `postgres://user:password@host:port/database` for a database several replicas
    /// share. Empty means the embedded sled database under `data_dir`.
    pub metadata_url: String,
    /// Simple-API base URLs mirrored, in order: a project is taken from the first upstream
    /// that has it. Credentials go in the URL (`https://user:password@host/simple/`) and
    /// are never logged.
    pub upstreams: Vec<UpstreamUrl>,
    /// Ignore `upstreams` and serve local files only.
    pub no_upstream: bool,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub mirror: MirrorSettings,
    pub build: BuildSettings,
    pub on_demand: OnDemandSettings,
}

/// The database behind the records and the build queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataBackend {
    /// sled under `data_dir`, owned by one process.
    Embedded,
    /// A PostgreSQL server (the URL, password included), shared by every replica.
    Postgres(String),
    /// A URL of another scheme (`validate` refuses it).
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMiss {
    /// The page waits for the build (up to `wait_seconds`) and then lists the new wheel.
    Wait,
    /// The build is queued and the page answers at once.
    Background,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnDemandSettings {
    /// What a `/t/<target>/simple/<project>/` request does when a release lacks the
    /// target's wheel but has an sdist.
    pub on_miss: OnMiss,
    /// Longest a page waits for builds with `on_miss = "wait"`; the connection is kept
    /// alive meanwhile with whitespace before the document.
    pub wait_seconds: u64,
    /// How many of the newest releases are checked.
    pub releases: usize,
    /// Hide sdists on target pages, so a builder stage without compilers fails fast.
    pub wheels_only: bool,
    /// On plain `/simple/` pages, infer the target from pip's and uv's User-Agent and
    /// queue builds in the background.
    pub infer_from_user_agent: bool,
}

impl Default for OnDemandSettings {
    fn default() -> Self {
        Self {
            on_miss: OnMiss::Background,
            wait_seconds: 900,
            releases: 1,
            wheels_only: false,
            infer_from_user_agent: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    Runc,
    Docker,
    Podman,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSettings {
    /// `cp<major><minor>-<platform>`, e.g. `cp313-musllinux_1_2_x86_64`.
    pub name: Target,
    /// The builder: an image (docker, podman) or a root filesystem directory (runc).
    pub builder: String,
    /// The plain runtime image or root for the smoke test; empty means the builder.
    #[serde(default)]
    pub runtime: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildSettings {
    /// In-process build workers; 0 leaves builds to remote workers.
    pub workers: usize,
    pub executor: ExecutorKind,
    /// Recipe file; empty means the recipes shipped with edelweiss (config/recipes.toml).
    pub recipes: PathBuf,
    /// Per container run.
    pub time_limit_seconds: u64,
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids: u64,
    /// Size of the writable /scratch and /tmp of each run.
    pub scratch_mb: u64,
    /// Largest file a build may write.
    pub max_file_mb: u64,
    /// A worker's lease on a build; renewed while it runs, and the build is handed to
    /// another worker when it lapses.
    pub lease_seconds: u64,
    /// Attempts before an infrastructure failure is recorded instead of retried.
    pub max_attempts: u32,
    /// Resolve each sdist's PEP 517/518 build requirements through this index and build
    /// with isolation from them alone; false builds on the builder's own packages plus the
    /// recipe's pins.
    pub resolve_build_requirements: bool,
    /// Where the crates of an sdist's Cargo.lock are downloaded from, before its build:
    /// `<crate_registry>/<name>/<name>-<version>.crate` (static.crates.io's layout).
    pub crate_registry: String,
    pub targets: Vec<TargetSettings>,
}

/// crates.io's download host.
pub const CRATES_IO_DOWNLOADS: &str = "https://static.crates.io/crates";

impl BuildSettings {
    /// `crate_registry` as a URL: http or https, with no credentials (they would be logged
    /// with every download's failure), query or fragment.
    pub fn crate_registry_url(&self) -> Result<url::Url, String> {
        let url = url::Url::parse(&self.crate_registry).map_err(|error| {
            format!(
                "`{}` is not a URL: {error}",
                crate::pypi::excerpt(&self.crate_registry)
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        if !matches!(url.scheme(), "http" | "https")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(format!(
                "`{url}` must be an http or https URL without query or fragment"
            ));
        }
        Ok(url)
    }
}

impl Default for BuildSettings {
    fn default() -> Self {
        Self {
            workers: 1,
            executor: ExecutorKind::Docker,
            recipes: PathBuf::new(),
            time_limit_seconds: 1800,
            memory_mb: 4096,
            cpus: 2.0,
            pids: 1024,
            scratch_mb: 4096,
            max_file_mb: 2048,
            lease_seconds: 120,
            max_attempts: 3,
            resolve_build_requirements: true,
            crate_registry: CRATES_IO_DOWNLOADS.to_string(),
            targets: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorSettings {
    /// How long an upstream project page is served from cache before it is revalidated.
    pub page_ttl_seconds: u64,
    /// Time to establish a connection to an upstream.
    pub connect_timeout_seconds: u64,
    /// Longest silence while reading an upstream response; a hung upstream fails after it.
    pub read_timeout_seconds: u64,
    /// Whole-request limit for a project page; also the longest wait for another replica's
    /// fetch of a page or file (the fetch lock), after which this one fetches it too.
    pub page_timeout_seconds: u64,
    /// Extra attempts after a failed upstream request (connect error, timeout, 5xx).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff_ms: u64,
    /// Idle connections kept open per upstream host.
    pub pool_max_idle_per_host: usize,
    /// Projects uploaded here that may still be merged with an upstream project of the
    /// same name. Every other local project hides its upstream namesake (dependency
    /// confusion guard).
    pub merge_projects: Vec<String>,
    /// Hosts (`host` or `host:port`) upstream files may be fetched from and redirects may
    /// lead to, besides each upstream's own host and port. A file listed elsewhere is
    /// dropped from the page, never fetched.
    pub file_hosts: Vec<FileHost>,
}

impl Default for MirrorSettings {
    fn default() -> Self {
        Self {
            page_ttl_seconds: 600,
            connect_timeout_seconds: 10,
            read_timeout_seconds: 30,
            page_timeout_seconds: 60,
            retries: 2,
            retry_backoff_ms: 250,
            pool_max_idle_per_host: 16,
            merge_projects: Vec::new(),
            file_hosts: vec![FileHost::pypi_files()],
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Tokens accepted by `POST /legacy/` and the write API (twine: user `__token__`). Each
    /// is a string (named `upload-1`, `upload-2`, … in the audit log) or
    /// `{ name = "ci", token = "…" }`.
    pub upload_tokens: Vec<TokenSetting>,
    /// When true, every read (pages, files and `/metrics`) needs one of `upload_tokens` or
    /// `read_tokens`, and those responses are marked `private` for caches.
    pub read_requires_token: bool,
    /// Tokens that may only read, used when `read_requires_token` is set (`read-1`, …).
    pub read_tokens: Vec<TokenSetting>,
    /// Tokens for remote `edelweiss worker`s: they may lease builds and report results only
    /// (`worker-1`, …).
    pub worker_tokens: Vec<TokenSetting>,
}

impl AuthSettings {
    /// Every token with its audit name, in the order `Tokens` knows them.
    pub fn named_tokens(&self) -> impl Iterator<Item = (String, &TokenSetting)> {
        let lists = [
            ("upload", &self.upload_tokens),
            ("read", &self.read_tokens),
            ("worker", &self.worker_tokens),
        ];
        lists.into_iter().flat_map(|(list, settings)| {
            settings
                .iter()
                .enumerate()
                .map(move |(index, setting)| (setting.name(list, index), setting))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Largest file an upload may carry, in bytes.
    pub max_upload_bytes: u64,
    /// Most entries an archive may have.
    pub max_archive_entries: u64,
    /// Largest total an archive may unpack to, in bytes (zip bomb guard).
    pub max_unpacked_bytes: u64,
    /// Largest METADATA / PKG-INFO / WHEEL file, in bytes.
    pub max_metadata_bytes: u64,
    /// Longest a client may take to send a request's head, and then a JSON body.
    pub request_timeout_seconds: u64,
    /// Longest a multipart form (an upload, a worker's result) may take to arrive.
    pub upload_timeout_seconds: u64,
    /// Most bytes of rendered and compressed pages kept in memory.
    pub page_cache_bytes: u64,
    /// Most bytes the database keeps in its own cache (sled's `cache_capacity`).
    pub database_cache_bytes: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 1 << 30,
            max_archive_entries: 100_000,
            max_unpacked_bytes: 4 << 30,
            max_metadata_bytes: 4 << 20,
            request_timeout_seconds: 10,
            upload_timeout_seconds: 3600,
            page_cache_bytes: 64 << 20,
            database_cache_bytes: 16 << 20,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./edelweiss-data"),
            storage_url: String::new(),
            metadata_url: String::new(),
            upstreams: vec![UpstreamUrl::pypi()],
            no_upstream: false,
            auth: AuthSettings::default(),
            limits: LimitSettings::default(),
            mirror: MirrorSettings::default(),
            build: BuildSettings::default(),
            on_demand: OnDemandSettings::default(),
        }
    }
}

/// Flags that override every other layer; `None` leaves the setting alone.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// `--upstream URL`, repeatable: replaces the configured list.
    pub upstreams: Vec<UpstreamUrl>,
    pub no_upstream: bool,
}

#[derive(Debug, Clone, Copy)]
enum EnvKind {
    Text,
    Address,
    Flag,
    Number,
    /// Comma-separated strings.
    List,
}

/// The environment layer: one variable per key.
#[rustfmt::skip]
const ENVIRONMENT: &[(&str, &[&str], EnvKind)] = &[
    ("EDELWEISS_LISTEN", &["listen"], EnvKind::Address),
    ("EDELWEISS_DATA_DIR", &["data_dir"], EnvKind::Text),
    ("EDELWEISS_STORAGE_URL", &["storage_url"], EnvKind::Text),
    ("EDELWEISS_METADATA_URL", &["metadata_url"], EnvKind::Text),
    ("EDELWEISS_UPSTREAMS", &["upstreams"], EnvKind::List),
    ("EDELWEISS_NO_UPSTREAM", &["no_upstream"], EnvKind::Flag),
    ("EDELWEISS_UPLOAD_TOKENS", &["auth", "upload_tokens"], EnvKind::List),
    ("EDELWEISS_READ_TOKENS", &["auth", "read_tokens"], EnvKind::List),
    ("EDELWEISS_WORKER_TOKENS", &["auth", "worker_tokens"], EnvKind::List),
    ("EDELWEISS_READ_REQUIRES_TOKEN", &["auth", "read_requires_token"], EnvKind::Flag),
    ("EDELWEISS_MAX_UPLOAD_BYTES", &["limits", "max_upload_bytes"], EnvKind::Number),
    ("EDELWEISS_MAX_ARCHIVE_ENTRIES", &["limits", "max_archive_entries"], EnvKind::Number),
    ("EDELWEISS_MAX_UNPACKED_BYTES", &["limits", "max_unpacked_bytes"], EnvKind::Number),
    ("EDELWEISS_MAX_METADATA_BYTES", &["limits", "max_metadata_bytes"], EnvKind::Number),
    ("EDELWEISS_REQUEST_TIMEOUT_SECONDS", &["limits", "request_timeout_seconds"], EnvKind::Number),
    ("EDELWEISS_UPLOAD_TIMEOUT_SECONDS", &["limits", "upload_timeout_seconds"], EnvKind::Number),
    ("EDELWEISS_PAGE_CACHE_BYTES", &["limits", "page_cache_bytes"], EnvKind::Number),
    ("EDELWEISS_DATABASE_CACHE_BYTES", &["limits", "database_cache_bytes"], EnvKind::Number),
    ("EDELWEISS_PAGE_TTL_SECONDS", &["mirror", "page_ttl_seconds"], EnvKind::Number),
    ("EDELWEISS_CONNECT_TIMEOUT_SECONDS", &["mirror", "connect_timeout_seconds"], EnvKind::Number),
    ("EDELWEISS_READ_TIMEOUT_SECONDS", &["mirror", "read_timeout_seconds"], EnvKind::Number),
    ("EDELWEISS_PAGE_TIMEOUT_SECONDS", &["mirror", "page_timeout_seconds"], EnvKind::Number),
    ("EDELWEISS_UPSTREAM_RETRIES", &["mirror", "retries"], EnvKind::Number),
    ("EDELWEISS_MERGE_PROJECTS", &["mirror", "merge_projects"], EnvKind::List),
    ("EDELWEISS_FILE_HOSTS", &["mirror", "file_hosts"], EnvKind::List),
    ("EDELWEISS_BUILD_WORKERS", &["build", "workers"], EnvKind::Number),
    ("EDELWEISS_BUILD_EXECUTOR", &["build", "executor"], EnvKind::Text),
    ("EDELWEISS_RECIPES", &["build", "recipes"], EnvKind::Text),
    ("EDELWEISS_RESOLVE_BUILD_REQUIREMENTS", &["build", "resolve_build_requirements"], EnvKind::Flag),
    ("EDELWEISS_CRATE_REGISTRY", &["build", "crate_registry"], EnvKind::Text),
    ("EDELWEISS_ON_MISS", &["on_demand", "on_miss"], EnvKind::Text),
    ("EDELWEISS_WHEELS_ONLY", &["on_demand", "wheels_only"], EnvKind::Flag),
];

fn env_value(kind: EnvKind, value: &str) -> Result<toml::Value, String> {
    Ok(match kind {
        EnvKind::Text => toml::Value::String(value.to_string()),
        EnvKind::Address => {
            let address: SocketAddr = value
                .trim()
                .parse()
                .map_err(|_| "expected HOST:PORT, e.g. 0.0.0.0:8080".to_string())?;
            toml::Value::String(address.to_string())
        }
        EnvKind::Flag => toml::Value::Boolean(
            value
                .trim()
                .parse()
                .map_err(|_| "expected true or false".to_string())?,
        ),
        EnvKind::Number => toml::Value::Integer(
            value
                .trim()
                .parse()
                .map_err(|_| "expected a whole number".to_string())?,
        ),
        EnvKind::List => toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.into()))
                .collect(),
        ),
    })
}

fn insert_at(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    let (last, parents) = path.split_last().expect("environment keys have a path");
    let mut current = table;
    for parent in parents {
        let entry = current
            .entry(parent.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        current = entry.as_table_mut().expect("made a table above");
    }
    current.insert(last.to_string(), value);
}

impl Settings {
    /// Loads every layer. `lookup` reads the environment (a parameter so tests need not
    /// mutate the process environment).
    pub fn load(
        config_file: Option<&Path>,
        lookup: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let (mut table, source) = match config_file {
            Some(path) => (Self::read_table(path)?, path.to_path_buf()),
            None => (toml::Table::new(), PathBuf::from("(defaults)")),
        };
        for (name, path, kind) in ENVIRONMENT {
            if let Some(value) = lookup(name) {
                let parsed =
                    env_value(*kind, &value).map_err(|reason| ConfigError::Environment {
                        name,
                        value: value.clone(),
                        reason,
                    })?;
                insert_at(&mut table, path, parsed);
            }
        }
        let mut settings: Settings = table.try_into().map_err(|error| ConfigError::Parse {
            path: source,
            source: error,
        })?;
        if let Some(listen) = overrides.listen {
            settings.listen = listen;
        }
        if let Some(data_dir) = &overrides.data_dir {
            settings.data_dir = data_dir.clone();
        }
        if !overrides.upstreams.is_empty() {
            settings.upstreams = overrides.upstreams.clone();
        }
        settings.no_upstream |= overrides.no_upstream;
        settings.validate()?;
        Ok(settings)
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let table = Self::read_table(path)?;
        table.try_into().map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        text.parse().map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if !self.storage_url.is_empty()
            && !self.storage_url.starts_with("file://")
            && !self.storage_url.starts_with("s3://")
        {
            return invalid("storage_url", "must start with file:// or s3://");
        }
        if let MetadataBackend::Invalid = self.metadata_backend() {
            return invalid(
                "metadata_url",
                "must be empty (the embedded database) or start with postgres:// or postgresql://",
            );
        }
        if self.auth.read_requires_token
            && self.auth.upload_tokens.is_empty()
            && self.auth.read_tokens.is_empty()
        {
            return invalid(
                "auth.read_requires_token",
                "is set but no token is configured, so nobody could read",
            );
        }
        self.validate_tokens()?;
        let mirror = &self.mirror;
        if mirror.connect_timeout_seconds == 0
            || mirror.read_timeout_seconds == 0
            || mirror.page_timeout_seconds == 0
        {
            return invalid("mirror", "timeouts must be greater than zero");
        }
        if let Some(bad) = mirror
            .merge_projects
            .iter()
            .find(|name| crate::pypi::parse_package_name(name).is_err())
        {
            return Err(ConfigError::Invalid {
                key: "mirror.merge_projects",
                reason: format!("`{bad}` is not a project name"),
            });
        }
        let build = &self.build;
        if build.time_limit_seconds == 0
            || build.memory_mb == 0
            || build.pids == 0
            || build.scratch_mb == 0
            || build.cpus <= 0.0
            || build.lease_seconds < 3
        {
            return invalid(
                "build",
                "limits must be positive and lease_seconds at least 3",
            );
        }
        build
            .crate_registry_url()
            .map_err(|reason| ConfigError::Invalid {
                key: "build.crate_registry",
                reason,
            })?;
        if let Some(target) = build
            .targets
            .iter()
            .find(|target| target.builder.is_empty())
        {
            return Err(ConfigError::Invalid {
                key: "build.targets",
                reason: format!("target {} has no builder", target.name),
            });
        }
        let limits = &self.limits;
        if limits.max_upload_bytes == 0
            || limits.max_archive_entries == 0
            || limits.max_unpacked_bytes == 0
            || limits.max_metadata_bytes == 0
            || limits.request_timeout_seconds == 0
            || limits.upload_timeout_seconds == 0
            || limits.page_cache_bytes == 0
            || limits.database_cache_bytes == 0
        {
            return invalid("limits", "every limit must be greater than zero");
        }
        Ok(())
    }

    /// Tokens are long enough to resist guessing, and their names tell them apart in the
    /// audit log. The error names the token, never its value.
    fn validate_tokens(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for (name, setting) in self.auth.named_tokens() {
            let reason = if setting.secret().expose().len() < 16 {
                "is shorter than 16 characters"
            } else if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                "needs a name of 1 to 64 letters, digits, `-`, `_` or `.`"
            } else if !seen.insert(name.clone()) {
                "has the name of another token"
            } else {
                continue;
            };
            return Err(ConfigError::Invalid {
                key: "auth",
                reason: format!("token `{name}` {reason}"),
            });
        }
        Ok(())
    }

    /// The blob store URL, resolving the default under `data_dir`.
    pub fn resolved_storage_url(&self) -> Result<String, ConfigError> {
        if !self.storage_url.is_empty() {
            return Ok(self.storage_url.clone());
        }
        let dir = std::path::absolute(self.data_dir.join("blobs")).map_err(|error| {
            ConfigError::Invalid {
                key: "data_dir",
                reason: error.to_string(),
            }
        })?;
        url::Url::from_directory_path(&dir)
            .map(String::from)
            .map_err(|()| ConfigError::Invalid {
                key: "data_dir",
                reason: format!("{} is not a usable path", dir.display()),
            })
    }

    /// Which database `metadata_url` names.
    pub fn metadata_backend(&self) -> MetadataBackend {
        let url = self.metadata_url.as_str();
        if url.is_empty() {
            MetadataBackend::Embedded
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            MetadataBackend::Postgres(url.to_string())
        } else {
            MetadataBackend::Invalid
        }
    }

    /// The upstreams in use: none with `no_upstream`.
    pub fn active_upstreams(&self) -> &[UpstreamUrl] {
        if self.no_upstream {
            &[]
        } else {
            &self.upstreams
        }
    }

    pub fn archive_limits(&self) -> ArchiveLimits {
        ArchiveLimits {
            max_entries: self.limits.max_archive_entries,
            max_uncompressed_bytes: self.limits.max_unpacked_bytes,
            max_metadata_bytes: self.limits.max_metadata_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edelweiss.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/a\"\n[limits]\nmax_upload_bytes = 10\n",
        )
        .unwrap();
        let env = |name: &str| (name == "EDELWEISS_DATA_DIR").then(|| "/srv/b".to_string());
        let overrides = Overrides {
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            ..Default::default()
        };
        let settings = Settings::load(Some(&file), env, &overrides).unwrap();
        assert_eq!(settings.listen.port(), 9001);
        assert_eq!(settings.data_dir, PathBuf::from("/srv/b"));
        assert_eq!(settings.limits.max_upload_bytes, 10);
    }

    /// Every `Env: EDELWEISS_*` the shipped config file documents is read.
    #[test]
    fn every_documented_environment_variable_is_read() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/edelweiss.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let documented: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("EDELWEISS_") && word.len() > "EDELWEISS_".len())
            .collect();
        assert!(documented.len() > 10);
        for name in documented {
            assert!(
                ENVIRONMENT.iter().any(|(known, _, _)| *known == name),
                "{name} is documented but not read"
            );
        }
        let env = |name: &str| (name == "EDELWEISS_PAGE_TTL_SECONDS").then(|| "0".to_string());
        assert_eq!(
            Settings::load(None, env, &Overrides::default())
                .unwrap()
                .mirror
                .page_ttl_seconds,
            0
        );
    }

    #[test]
    fn metadata_url_chooses_the_database() {
        let with = |url: &str| {
            let env = |name: &str| (name == "EDELWEISS_METADATA_URL").then(|| url.to_string());
            Settings::load(None, env, &Overrides::default())
        };
        assert_eq!(
            Settings::default().metadata_backend(),
            MetadataBackend::Embedded
        );
        let url = "postgres://edelweiss:secret@db:5432/edelweiss";
        assert_eq!(
            with(url).unwrap().metadata_backend(),
            MetadataBackend::Postgres(url.to_string())
        );
        let refused = with("mysql://db/edelweiss").unwrap_err().to_string();
        assert!(refused.contains("metadata_url"), "{refused}");
    }

    #[test]
    fn upstreams_come_from_file_env_and_flags_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edelweiss.toml");
        std::fs::write(&file, "upstreams = [\"https://a.example/simple/\"]\n").unwrap();
        let shown = |settings: &Settings| {
            settings
                .active_upstreams()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        let from_file = Settings::load(Some(&file), |_| None, &Overrides::default()).unwrap();
        assert_eq!(shown(&from_file), ["https://a.example/simple/"]);
        let env = |name: &str| {
            (name == "EDELWEISS_UPSTREAMS")
                .then(|| "https://b.example/simple,https://c.example/pypi/".to_string())
        };
        let from_env = Settings::load(Some(&file), env, &Overrides::default()).unwrap();
        assert_eq!(
            shown(&from_env),
            ["https://b.example/simple/", "https://c.example/pypi/"]
        );
        let flags = Overrides {
            upstreams: vec!["https://d.example/simple/".parse().unwrap()],
            ..Default::default()
        };
        assert_eq!(
            shown(&Settings::load(Some(&file), env, &flags).unwrap()),
            ["https://d.example/simple/"]
        );
        let none = Overrides {
            no_upstream: true,
            ..Default::default()
        };
        assert!(
            Settings::load(Some(&file), env, &none)
                .unwrap()
                .active_upstreams()
                .is_empty()
        );
        let bad = |name: &str| (name == "EDELWEISS_UPSTREAMS").then(|| "ftp://x/".to_string());
        assert!(Settings::load(None, bad, &Overrides::default()).is_err());
    }

    #[test]
    fn file_hosts_come_from_the_environment_and_bad_ones_are_refused() {
        let env = |name: &str| {
            (name == "EDELWEISS_FILE_HOSTS").then(|| "Files.Example, 127.0.0.1:9000".to_string())
        };
        let settings = Settings::load(None, env, &Overrides::default()).unwrap();
        let shown: Vec<String> = settings
            .mirror
            .file_hosts
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["files.example", "127.0.0.1:9000"]);
        let bad = |name: &str| {
            (name == "EDELWEISS_FILE_HOSTS").then(|| "https://files.example/".to_string())
        };
        let error = Settings::load(None, bad, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not a file host"), "{error}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edelweiss.toml");
        std::fs::write(&file, "listne = \"127.0.0.1:9000\"\n").unwrap();
        let error = Settings::load(Some(&file), |_| None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `listne`"), "{error}");
        let env = |name: &str| (name == "EDELWEISS_LISTEN").then(|| "nowhere".to_string());
        let error = Settings::load(None, env, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("EDELWEISS_LISTEN"), "{error}");
        let env = |name: &str| (name == "EDELWEISS_UPLOAD_TOKENS").then(|| "short".to_string());
        assert!(Settings::load(None, env, &Overrides::default()).is_err());
        for registry in [
            "static.crates.io/crates",
            "ftp://mirror.example/crates",
            "https://user:secret@mirror.example/crates",
        ] {
            let env =
                |name: &str| (name == "EDELWEISS_CRATE_REGISTRY").then(|| registry.to_string());
            let error = Settings::load(None, env, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(error.contains("build.crate_registry"), "{error}");
            assert!(!error.contains("secret"), "{error}");
        }
        let env = |name: &str| {
            (name == "EDELWEISS_CRATE_REGISTRY").then(|| "http://127.0.0.1:9/crates".to_string())
        };
        let settings = Settings::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(settings.build.crate_registry, "http://127.0.0.1:9/crates");
    }

    #[test]
    fn tokens_may_be_named_and_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edelweiss.toml");
        let load = |auth: &str| {
            std::fs::write(&file, format!("[auth]\n{auth}\n")).unwrap();
            Settings::load(Some(&file), |_| None, &Overrides::default())
        };
        let settings = load(
            "upload_tokens = [\"plain-token-0123456789\", { name = \"ci\", token = \"named-token-0123456789\" }]\nworker_tokens = [\"worker-token-0123456789\"]",
        )
        .unwrap();
        let names: Vec<String> = settings.auth.named_tokens().map(|(name, _)| name).collect();
        assert_eq!(names, ["upload-1", "ci", "worker-1"]);
        let error = load("upload_tokens = [{ name = \"upload-2\", token = \"first-token-0123456789\" }, \"second-token-0123456789\"]")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`upload-2` has the name of another token"),
            "{error}"
        );
        let error = load("read_tokens = [{ name = \"a b\", token = \"spaced-token-0123456789\" }]")
            .unwrap_err()
            .to_string();
        assert!(error.contains("needs a name"), "{error}");
        let error = load("read_tokens = [{ name = \"tiny\", token = \"short\" }]")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`tiny` is shorter than 16 characters") && !error.contains("short`"),
            "{error}"
        );
        let env = |name: &str| {
            (name == "EDELWEISS_UPLOAD_TOKENS")
                .then(|| "env-token-a-0123456789,env-token-b-0123456789".to_string())
        };
        let from_env = Settings::load(None, env, &Overrides::default()).unwrap();
        let names: Vec<String> = from_env.auth.named_tokens().map(|(name, _)| name).collect();
        assert_eq!(names, ["upload-1", "upload-2"]);
    }

    #[test]
    fn the_example_configs_parse_and_name_a_build_target() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
        let dir = tempfile::tempdir().unwrap();
        for name in ["docker.toml", "runc-test-root.toml"] {
            // The runc example's paths are filled in by its reader; any directory will do.
            let text = std::fs::read_to_string(examples.join(name))
                .unwrap()
                .replace("@BUILDER@", "/srv/root")
                .replace("@RUNTIME@", "/srv/runtime");
            let file = dir.path().join(name);
            std::fs::write(&file, text).unwrap();
            let settings =
                Settings::from_file(&file).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(settings.build.targets.len(), 1, "{name}");
            assert_eq!(
                settings.build.targets[0].name.to_string(),
                "cp313-musllinux_1_2_x86_64",
                "{name}"
            );
        }
    }

    #[test]
    fn the_shipped_config_file_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/edelweiss.toml");
        let shipped = Settings::from_file(&path).unwrap();
        let defaults = Settings::default();
        assert_eq!(shipped.listen, defaults.listen);
        assert_eq!(shipped.data_dir, defaults.data_dir);
        assert_eq!(
            shipped.limits.max_upload_bytes,
            defaults.limits.max_upload_bytes
        );
        assert_eq!(
            shipped.limits.max_unpacked_bytes,
            defaults.limits.max_unpacked_bytes
        );
        let shown = |upstreams: &[UpstreamUrl]| {
            upstreams
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(&shipped.upstreams), shown(&defaults.upstreams));
        assert_eq!(shipped.build.crate_registry, defaults.build.crate_registry);
        assert_eq!(
            shipped.mirror.page_ttl_seconds,
            defaults.mirror.page_ttl_seconds
        );
        assert_eq!(shipped.mirror.retries, defaults.mirror.retries);
        assert_eq!(shipped.mirror.file_hosts, defaults.mirror.file_hosts);
        assert_eq!(
            shipped.limits.request_timeout_seconds,
            defaults.limits.request_timeout_seconds
        );
        assert_eq!(
            shipped.limits.upload_timeout_seconds,
            defaults.limits.upload_timeout_seconds
        );
        assert_eq!(
            shipped.limits.page_cache_bytes,
            defaults.limits.page_cache_bytes
        );
        assert_eq!(
            shipped.limits.database_cache_bytes,
            defaults.limits.database_cache_bytes
        );
    }
}
