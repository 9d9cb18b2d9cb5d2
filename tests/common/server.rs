//! A running `edelweiss serve` for one test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::UPLOAD_TOKEN;

/// The binary under test: `EDELWEISS_TEST_BIN` (the static musl build) or cargo's build.
pub fn binary() -> PathBuf {
    std::env::var_os("EDELWEISS_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_edelweiss")))
}

/// Where the server runs: a child process of the test, a container of the runtime image, or
/// somewhere the test reaches but does not own (a replica of a compose project).
enum Process {
    Child(Child),
    Container(String),
    Remote,
}

pub struct TestServer {
    pub url: String,
    pub data_dir: PathBuf,
    config: PathBuf,
    process: Process,
    mirror: bool,
    /// Environment the process gets beyond the test's own (`AWS_*` for an S3 store).
    env: Vec<(String, String)>,
    _temp: Option<tempfile::TempDir>,
}

/// The config every test server gets unless a test passes its own extra TOML.
pub fn base_config(extra_top: &str, extra_limits: &str) -> String {
    format!("{extra_top}\n[auth]\nupload_tokens = [\"{UPLOAD_TOKEN}\"]\n[limits]\n{extra_limits}\n")
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(&base_config("", ""))
    }

    pub fn start_with(config: &str) -> Self {
        Self::start_binary(&binary(), config)
    }

    /// A server with `env` in its environment, e.g. the `AWS_*` settings of an S3 store.
    pub fn start_with_env(config: &str, env: Vec<(String, String)>) -> Self {
        Self::start_with_args_env(&binary(), config, &["--no-upstream"], env)
    }

    /// A server mirroring `upstreams`, named with `--upstream` flags (the config may set
    /// `[mirror]` keys).
    pub fn mirroring(upstreams: &[&str], config: &str) -> Self {
        Self::mirroring_with_env(upstreams, config, Vec::new())
    }

    /// Like [`Self::mirroring`], with `env` in the server's environment (the `AWS_*`
    /// settings of an S3 store).
    pub fn mirroring_with_env(
        upstreams: &[&str],
        config: &str,
        env: Vec<(String, String)>,
    ) -> Self {
        let args: Vec<&str> = upstreams
            .iter()
            .flat_map(|url| ["--upstream", url])
            .collect();
        Self::start_with_args_env(&binary(), config, &args, env)
    }

    pub fn start_binary(binary: &Path, config: &str) -> Self {
        Self::start_with_args(binary, config, &["--no-upstream"])
    }

    fn start_with_args(binary: &Path, config: &str, args: &[&str]) -> Self {
        Self::start_with_args_env(binary, config, args, Vec::new())
    }

    fn start_with_args_env(
        binary: &Path,
        config: &str,
        args: &[&str],
        env: Vec<(String, String)>,
    ) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let config_path = temp.path().join("edelweiss.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut server = Self::spawn_binary(binary, &data_dir, &config_path, args, env);
        server._temp = Some(temp);
        server
    }

    /// Starts a server on an existing data dir, e.g. after a crash.
    pub fn spawn(data_dir: &Path, config: &Path) -> Self {
        Self::spawn_binary(&binary(), data_dir, config, &["--no-upstream"], Vec::new())
    }

    fn spawn_binary(
        binary: &Path,
        data_dir: &Path,
        config: &Path,
        args: &[&str],
        env: Vec<(String, String)>,
    ) -> Self {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let log = std::fs::File::create(data_dir.with_extension("log")).expect("log file");
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .arg("--data")
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            // Anything a container engine drops in the working directory stays out of the checkout.
            .current_dir(data_dir.parent().unwrap_or(data_dir))
            .env("EDELWEISS_LOG", "info")
            // The prewarm API resolves with uv, as the CLI does.
            .env("EDELWEISS_UV", super::client_tools().join("uv"))
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start edelweiss");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let Some(url) = line.trim().strip_prefix("edelweiss listening on ") else {
            let _ = child.kill();
            let log = std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
            panic!("edelweiss did not start: {line:?}\n{log}");
        };
        Self {
            url: url.to_string(),
            data_dir: data_dir.to_path_buf(),
            config: config.to_path_buf(),
            process: Process::Child(child),
            mirror: !args.contains(&"--no-upstream"),
            env,
            _temp: None,
        }
    }

    /// A server already running in container `name`, answering at `url`, over `data_dir`
    /// (bind-mounted from this host).
    pub fn in_container(name: &str, url: &str, data_dir: &Path) -> Self {
        Self {
            url: url.to_string(),
            data_dir: data_dir.to_path_buf(),
            config: PathBuf::new(),
            process: Process::Container(name.to_string()),
            mirror: false,
            env: Vec::new(),
            _temp: None,
        }
    }

    /// A server at `url` that this handle neither logs nor kills: dropping it leaves the
    /// server running.
    pub fn remote(url: &str) -> Self {
        Self {
            url: url.to_string(),
            data_dir: PathBuf::new(),
            config: PathBuf::new(),
            process: Process::Remote,
            mirror: false,
            env: Vec::new(),
            _temp: None,
        }
    }

    /// The server's process id, when it runs as a child of the test.
    pub fn pid(&self) -> Option<u32> {
        match &self.process {
            Process::Child(child) => Some(child.id()),
            Process::Container(_) | Process::Remote => None,
        }
    }

    pub fn log(&self) -> String {
        match &self.process {
            Process::Child(_) => {
                std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
            }
            Process::Container(name) => Command::new("docker")
                .args(["logs", name])
                .output()
                .map(|output| super::text(&output))
                .unwrap_or_default(),
            Process::Remote => String::new(),
        }
    }

    /// A `/proc/<pid>/status` memory figure of the server (`VmHWM`: peak, `VmRSS`: now),
    /// in bytes; the server must run as a child of the test.
    pub fn memory_bytes(&self, field: &str) -> u64 {
        let pid = self.pid().expect("the server runs as a child process");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kilobytes: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
        kilobytes * 1024
    }

    /// The audit trail so far: the log lines of target `audit`, without terminal colours.
    pub fn audit_lines(&self) -> Vec<String> {
        strip_colours(&self.log())
            .lines()
            .filter(|line| line.contains(" audit: "))
            .map(str::to_string)
            .collect()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        match &mut self.process {
            Process::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::Container(name) => {
                let _ = Command::new("docker").args(["kill", name]).output();
            }
            Process::Remote => {}
        }
    }

    /// Kills this process and starts a new one on the same data dir and config.
    pub fn restart(mut self) -> Self {
        self.kill();
        let temp = self._temp.take();
        let args: &[&str] = if self.mirror { &[] } else { &["--no-upstream"] };
        let env = std::mem::take(&mut self.env);
        let mut restarted = Self::spawn_binary(&binary(), &self.data_dir, &self.config, args, env);
        restarted._temp = temp;
        restarted
    }

    pub fn index_url(&self) -> String {
        format!("{}/simple/", self.url)
    }

    pub fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client")
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.client()
            .get(format!("{}{path}", self.url))
            .send()
            .expect("GET")
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self
            .client()
            .get(format!("{}{path}", self.url))
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .send()
            .expect("GET");
        assert_eq!(response.status(), 200, "{path}");
        response.json().expect("JSON page")
    }

    /// A JSON document (the build API) by plain GET.
    pub fn get_json_plain(&self, path: &str) -> serde_json::Value {
        let response = self.get(path);
        assert_eq!(response.status(), 200, "{path}");
        response.json().expect("JSON")
    }

    /// The filenames a JSON project page (e.g. `/simple/<project>/`) lists, in order.
    pub fn listed_filenames(&self, page: &str) -> Vec<String> {
        self.get_json(page)["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|file| file["filename"].as_str().expect("filename").to_string())
            .collect()
    }

    /// The wheels `/simple/<project>/` lists.
    pub fn listed_wheels(&self, project: &str) -> Vec<String> {
        self.listed_filenames(&format!("/simple/{project}/"))
            .into_iter()
            .filter(|name| name.ends_with(".whl"))
            .collect()
    }

    /// The bytes of `filename` as `/simple/<project>/` links it.
    pub fn listed_file(&self, project: &str, filename: &str) -> Vec<u8> {
        let page = self.get_json(&format!("/simple/{project}/"));
        let url = page["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|file| file["filename"] == filename)
            .and_then(|file| file["url"].as_str())
            .unwrap_or_else(|| panic!("{filename} is not listed for {project}"))
            .to_string();
        let response = self.get(&url);
        assert_eq!(response.status(), 200, "{url}");
        response.bytes().expect("body").to_vec()
    }

    /// The value of one `/metrics` sample, 0 when absent.
    pub fn metric(&self, sample: &str) -> u64 {
        let body = self.get("/metrics").text().expect("metrics");
        body.lines()
            .find_map(|line| {
                line.strip_prefix(sample)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Every blob in the file store, as relative paths: to prove nothing was stored.
    pub fn blobs(&self) -> Vec<String> {
        let root = self.data_dir.join("blobs");
        let mut found = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(
                        path.strip_prefix(&root)
                            .unwrap_or(&path)
                            .display()
                            .to_string(),
                    );
                }
            }
        }
        found.sort();
        found
    }

    /// What the index shows: the project list plus every file of every project.
    pub fn snapshot(&self) -> (Vec<String>, Vec<String>) {
        let list = self.get_json("/simple/");
        let mut files = Vec::new();
        for project in list["projects"].as_array().expect("projects") {
            let name = project["name"].as_str().expect("name");
            let page = self.get_json(&format!("/simple/{name}/"));
            for file in page["files"].as_array().expect("files") {
                files.push(format!("{} {}", file["filename"], file["hashes"]["sha256"]));
            }
        }
        (self.blobs(), files)
    }

    pub fn twine_upload(&self, files: &[&Path]) -> std::process::Output {
        self.twine_upload_with_token(files, UPLOAD_TOKEN)
    }

    pub fn twine_upload_with_token(&self, files: &[&Path], token: &str) -> std::process::Output {
        let mut command = super::tool("twine");
        command
            .args([
                "upload",
                "--disable-progress-bar",
                "--non-interactive",
                "--repository-url",
            ])
            .arg(format!("{}/legacy/", self.url))
            .args(["-u", "__token__", "-p", token])
            .args(files);
        super::run(&mut command)
    }
}

/// The log with its ANSI escape sequences (`ESC [ … letter`) removed.
fn strip_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}
