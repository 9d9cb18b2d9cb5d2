use clap::Parser as _;
use edelweiss::cli::{Cli, Command};
use edelweiss::commands;
use edelweiss::config::Settings;
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// One-shot commands end quietly when their output is closed (`edelweiss build … | head -1`),
/// as Unix tools do. Rust ignores SIGPIPE, which turns that into a panic in `println!`; the
/// long-running commands keep ignoring it and handle write errors themselves.
fn end_quietly_on_closed_output() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler code and has no
    // memory-safety precondition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Worker(_)) {
        end_quietly_on_closed_output();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("EDELWEISS_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only for a terminal: a log file or journal gets plain lines.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let settings = || {
        Settings::load(
            cli.config.as_deref(),
            |name| std::env::var(name).ok(),
            &cli.command.overrides(),
        )
    };
    match &cli.command {
        Command::Serve(_) => commands::serve(settings()?).await,
        Command::Add(args) => commands::add(settings()?, args.files.clone()).await,
        Command::Build(args) => commands::build(settings()?, args).await,
        Command::Worker(args) => commands::worker(settings()?, args).await,
        Command::Prewarm(args) => commands::prewarm(args).await,
        Command::Migrate(args) => commands::migrate(settings()?, args).await,
        Command::Healthcheck(args) => commands::healthcheck(&args.url),
    }
}
