//! What each subcommand does, given loaded settings.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::app::{Application, DataDir};
use crate::config::Settings;
use crate::ingest::Spool;
use crate::metadata::InsertOutcome;

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
        let spooled = Spool::copy_from(data.ingestor.spool_dir(), settings.limits.max_upload_bytes, &path)
            .await
            .with_context(|| format!("reading {}", path.display()));
        let result = match spooled {
            Ok(spooled) => data.ingestor.ingest(spooled, &filename, None).await.map_err(anyhow::Error::from),
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
