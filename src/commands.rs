//! What each subcommand does, given loaded settings.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::app::{Application, DataDir};
use crate::config::Settings;
use crate::ingest::Spool;
use crate::metadata::{FileOrigin, InsertOutcome};

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(&settings)?;
    // Scripts and tests read this line to learn the port when listening on port 0.
    println!("edelweiss listening on http://{}", application.address());
    std::io::stdout().flush()?;
    tracing::info!(address = %application.address(), data_dir = %settings.data_dir.display(), "serving");
    application.run_until_stopped().await?;
    Ok(())
}

/// Ingests each file; reports every failure and fails if any file was refused.
pub async fn add(settings: Settings, files: Vec<PathBuf>) -> anyhow::Result<()> {
    let data = DataDir::open(&settings)?;
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
