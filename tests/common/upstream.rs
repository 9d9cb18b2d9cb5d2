//! The upstream index of the mirror tests: `tests/upstream/server.py` over a tree built
//! here from real wheels and sdists.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::sha256_hex;

pub struct UpstreamTree {
    pub root: PathBuf,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// METADATA of a wheel, or None for an sdist (or a wheel without one).
pub fn wheel_metadata(path: &Path) -> Option<Vec<u8>> {
    if path.extension()? != "whl" {
        return None;
    }
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).ok()?).ok()?;
    let name = (0..archive.len())
        .filter_map(|index| {
            archive
                .by_index(index)
                .ok()
                .and_then(|entry| entry.name().ok().map(|name| name.to_string()))
        })
        .find(|name| name.ends_with(".dist-info/METADATA"))?;
    let mut bytes = Vec::new();
    archive.by_name(&name).ok()?.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

fn requires_python(metadata: Option<&[u8]>) -> Option<String> {
    let text = String::from_utf8_lossy(metadata?).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix("Requires-Python: ").map(str::to_string))
}

impl UpstreamTree {
    pub fn new(root: &Path) -> Self {
        std::fs::create_dir_all(root.join("files")).unwrap();
        Self {
            root: root.to_path_buf(),
        }
    }

    /// Publishes `files` as project `name`: copies them under files/ (with each wheel's
    /// `.metadata`) and writes the project's JSON and HTML pages.
    pub fn publish(&self, name: &str, version_files: &[PathBuf]) {
        self.publish_with(name, version_files, true);
    }

    /// Like [`Self::publish`], without PEP 658 metadata files (as the PyPI reachable from
    /// the test machines serves its pages).
    pub fn publish_without_metadata(&self, name: &str, version_files: &[PathBuf]) {
        self.publish_with(name, version_files, false);
    }

    fn publish_with(&self, name: &str, version_files: &[PathBuf], with_metadata: bool) {
        let mut json_files = Vec::new();
        let mut anchors = String::new();
        let mut versions = Vec::new();
        for path in version_files {
            let filename = path.file_name().unwrap().to_str().unwrap().to_string();
            let bytes = std::fs::read(path).unwrap();
            std::fs::write(self.root.join("files").join(&filename), &bytes).unwrap();
            let metadata = wheel_metadata(path);
            let published = metadata.as_ref().filter(|_| with_metadata);
            let metadata_hash = published.map(|metadata| {
                std::fs::write(
                    self.root.join("files").join(format!("{filename}.metadata")),
                    metadata,
                )
                .unwrap();
                sha256_hex(metadata)
            });
            let requires_python = requires_python(metadata.as_deref());
            let version = filename
                .trim_end_matches(".tar.gz")
                .split('-')
                .nth(1)
                .unwrap()
                .to_string();
            if !versions.contains(&version) {
                versions.push(version);
            }
            let sha = sha256_hex(&bytes);
            let url = format!("../../files/{filename}");
            json_files.push(serde_json::json!({
                "filename": filename,
                "url": url,
                "hashes": {"sha256": sha},
                "requires-python": requires_python,
                "core-metadata": metadata_hash.as_ref().map_or(serde_json::json!(false), |hash| serde_json::json!({"sha256": hash})),
                "size": bytes.len(),
                "upload-time": "2025-06-01T12:00:00.000000Z",
                "yanked": false,
            }));
            let mut anchor = format!("<a href=\"{url}#sha256={sha}\"");
            if let Some(requires_python) = &requires_python {
                anchor.push_str(&format!(
                    " data-requires-python=\"{}\"",
                    escape(requires_python)
                ));
            }
            if let Some(hash) = &metadata_hash {
                anchor.push_str(&format!(" data-dist-info-metadata=\"sha256={hash}\""));
            }
            anchors.push_str(&format!("{anchor}>{filename}</a><br/>\n"));
        }
        let directory = self.root.join("simple").join(name);
        std::fs::create_dir_all(&directory).unwrap();
        let page = serde_json::json!({"meta": {"api-version": "1.1"}, "name": name, "versions": versions, "files": json_files});
        std::fs::write(
            directory.join("index.json"),
            serde_json::to_vec(&page).unwrap(),
        )
        .unwrap();
        let html = format!(
            "<!DOCTYPE html>\n<html><head><title>Links for {name}</title></head><body>\n<h1>Links for {name}</h1>\n{anchors}</body></html>\n"
        );
        std::fs::write(directory.join("index.html"), html).unwrap();
    }

    /// Serves `file` as crates.io's download host does: `crates/<name>/<file name>`.
    pub fn publish_crate(&self, name: &str, file: &Path) {
        let directory = self.root.join("crates").join(name);
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::copy(file, directory.join(file.file_name().unwrap())).unwrap();
    }

    /// Adds entries of the upstream's own making to a published project's pages: `files`
    /// to its JSON page, `anchors` (raw HTML) to its HTML page. A hostile upstream does this.
    pub fn append_entries(&self, name: &str, files: &[serde_json::Value], anchors: &str) {
        let directory = self.root.join("simple").join(name);
        let json_path = directory.join("index.json");
        let mut page: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        page["files"]
            .as_array_mut()
            .unwrap()
            .extend(files.iter().cloned());
        std::fs::write(&json_path, serde_json::to_vec(&page).unwrap()).unwrap();
        let html_path = directory.join("index.html");
        let html = std::fs::read_to_string(&html_path)
            .unwrap()
            .replace("</body>", &format!("{anchors}</body>"));
        std::fs::write(html_path, html).unwrap();
    }
}

pub struct UpstreamServer {
    pub url: String,
    child: Child,
}

impl UpstreamServer {
    pub fn start(tree: &UpstreamTree, mode: &str) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream/server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--root")
            .arg(&tree.root)
            .args(["--mode", mode])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the upstream server (python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .expect("upstream's listening line")
            .to_string();
        Self { url, child }
    }

    pub fn simple_url(&self) -> String {
        format!("{}/simple/", self.url)
    }

    /// The base of its crate downloads, for `build.crate_registry`.
    pub fn crates_url(&self) -> String {
        format!("{}/crates", self.url)
    }

    pub fn stats(&self) -> serde_json::Value {
        reqwest::blocking::get(format!("{}/_stats", self.url))
            .unwrap()
            .json()
            .unwrap()
    }

    /// How many requests for `path` (with `status`, when given) the upstream answered.
    pub fn count(&self, key: &str) -> u64 {
        self.stats()[key].as_u64().unwrap_or(0)
    }

    /// Makes a GET of exactly `path` (with its query) answer 302 to `location`.
    pub fn redirect(&self, path: &str, location: &str) {
        self.fault(serde_json::json!({"redirects": {path: location}}));
    }

    pub fn fault(&self, control: serde_json::Value) {
        let client = reqwest::blocking::Client::new();
        let response = client
            .post(format!("{}/_control", self.url))
            .json(&control)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for UpstreamServer {
    fn drop(&mut self) {
        self.stop();
    }
}
