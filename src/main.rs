//! The `quiver` command: `quiver run FILE.sql`, `quiver -c "SQL"`, `quiver bench`,
//! a script on standard input, and the interactive REPL (`quiver` on a
//! terminal). A thin front end over `quiver::Context`.

mod allocator;
mod bench;
mod cli;
mod http;
mod notices;
mod observe;
mod repl;
mod ui;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use quiver::{Clock, DEFAULT_SIMULATED_START_MS, OutputFormat, RunLimits};

/// quiver: continuous SQL over streams of Arrow record batches.
#[derive(Debug, Parser)]
#[command(name = "quiver", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Run these SQL statements (separated by ';') instead of a file.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SQL",
        allow_hyphen_values = true
    )]
    sql: Option<String>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the statements of a SQL script; continuous queries run until
    /// Ctrl-C, or until their sources are drained with --until-idle.
    Run {
        /// The script, e.g. sql/wordcount.sql; several files run as one
        /// script, in order (e.g. sql/nexmark/ddl.sql sql/nexmark/q5.sql).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Measure per-batch overhead and throughput against plain DataFusion.
    Bench(bench::BenchArgs),
    /// Look into a checkpoint directory (see `--checkpoint`).
    Checkpoint {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CheckpointCommand {
    /// Print each query's last committed batch, offsets, watermark, state size and sinks.
    Inspect {
        /// The directory given to --checkpoint.
        dir: PathBuf,
    },
}

/// Options shared by every way of running SQL.
#[derive(Debug, Args)]
struct RunArgs {
    /// Length of a batch interval, e.g. 200ms, 1s.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "1s")]
    batch_interval: std::time::Duration,
    /// Stop when every source is drained (files read, generator done, input closed).
    #[arg(long, global = true)]
    until_idle: bool,
    /// Stop each query after this many batches.
    #[arg(long, global = true, value_name = "N")]
    max_batches: Option<u64>,
    /// `wall` waits for each batch time; `simulated` runs batches back to back
    /// at start-time + k * interval (deterministic processing time).
    #[arg(long, global = true, default_value = "wall", value_parser = ["wall", "simulated"])]
    clock: String,
    /// First batch time of the simulated clock (RFC 3339).
    #[arg(long, global = true, value_name = "TIME")]
    start_time: Option<String>,
    /// Output format of results on stdout.
    #[arg(long, global = true, default_value = "table")]
    format: OutputFormat,
    /// Also print batches whose result is empty.
    #[arg(long, global = true)]
    show_empty: bool,
    /// Print a progress line per batch on stderr (rows in, watermark, late rows, state).
    #[arg(long, global = true)]
    progress: bool,
    /// Write each batch's progress record (durations by phase, rows, rates,
    /// watermark, state, offsets and lag) to FILE, one JSON object a line.
    #[arg(long, global = true, value_name = "FILE")]
    progress_json: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics while queries run,
    /// e.g. 127.0.0.1:9464 (no authentication).
    #[arg(long, global = true, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Allow --metrics on an address other than loopback: anyone who can
    /// reach it reads the metrics.
    #[arg(long, global = true, requires = "metrics")]
    metrics_public: bool,
    /// Checkpoint continuous queries in this directory and, on a restart
    /// with the same script (or the same statements in the REPL), resume
    /// where they stopped (files, nexmark, kafka, socket and stdin sources;
    /// results on stdout or in file sinks).
    #[arg(long, global = true, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Delete the checkpoint given by --checkpoint and start over.
    #[arg(long, global = true, requires = "checkpoint")]
    checkpoint_reset: bool,
    /// Write the queries' state every N batches (the logs are written every batch).
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 1,
        requires = "checkpoint"
    )]
    checkpoint_interval: u64,
    /// Serve a live page of the queries (state, charts of their batches,
    /// plan) at this address, e.g. 127.0.0.1:4040 (port 0: any free port).
    #[arg(long, global = true, value_name = "ADDR")]
    ui: Option<std::net::SocketAddr>,
    /// Allow --ui on a non-loopback address (the page has no authentication).
    #[arg(long, global = true, requires = "ui")]
    ui_public: bool,
}

impl RunArgs {
    fn config(&self) -> anyhow::Result<quiver::Config> {
        let clock = match self.clock.as_str() {
            "simulated" => {
                let start_ms = match &self.start_time {
                    None => DEFAULT_SIMULATED_START_MS,
                    Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                        .map_err(|e| {
                            anyhow::anyhow!("--start-time '{t}' is not an RFC 3339 time: {e}")
                        })?
                        .timestamp_millis(),
                };
                Clock::Simulated { start_ms }
            }
            _ => Clock::Wall,
        };
        if self.batch_interval.is_zero() {
            anyhow::bail!("--batch-interval must be at least 1ms");
        }
        let limits = RunLimits {
            until_idle: self.until_idle,
            max_batches: self.max_batches,
        };
        if self.checkpoint_interval == 0 {
            anyhow::bail!("--checkpoint-interval must be at least 1");
        }
        let checkpoint = self
            .checkpoint
            .clone()
            .map(|dir| quiver::CheckpointSettings {
                dir,
                reset: self.checkpoint_reset,
                interval: self.checkpoint_interval,
            });
        Ok(quiver::Config {
            batch_interval: self.batch_interval,
            clock,
            limits,
            checkpoint,
            ..quiver::Config::default()
        })
    }
}

/// Stack size of every thread that plans or runs queries: the thread that
/// runs the script or the REPL, and the async runtime's workers and blocking
/// threads. Planning and evaluating an expression recurses once per level of
/// nesting (a chain of 1,000 `+` terms is 1,000 levels); the default 2 MiB
/// (8 MiB for the main thread) overflows after a few hundred levels in a
/// debug build. With 256 MiB a debug build survives about 5,400 levels, far
/// above the nesting statements may have ([`quiver::MAX_DEPTH`]).
/// Only the pages a thread touches take memory.
const STACK_SIZE: usize = 256 * 1024 * 1024;

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    // The main thread's stack cannot be resized: the work runs on a thread
    // of its own.
    let work = std::thread::Builder::new()
        .name("quiver".into())
        .stack_size(STACK_SIZE)
        .spawn(move || run_cli(cli));
    match work.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        // A panic has already printed its message.
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot start a thread: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command `cli` asks for: a script, a benchmark or the REPL.
fn run_cli(cli: Cli) -> ExitCode {
    let interactive = cli.command.is_none() && cli.sql.is_none() && std::io::stdin().is_terminal();
    // The REPL reports each query's end itself; its log shows only warnings.
    let default_filter = if interactive {
        "warn"
    } else {
        "warn,quiver=info"
    };
    // RUST_LOG asks for diagnostics: tracing's own format, with times and
    // levels. Otherwise the library's reports are messages for the user.
    match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .with_env_filter(filter)
            .init(),
        Err(_) => tracing_subscriber::fmt()
            .event_format(notices::Plain)
            .with_writer(notices::ToNotices)
            .with_env_filter(tracing_subscriber::EnvFilter::new(default_filter))
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK_SIZE)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = cli.run.metrics {
        match runtime.block_on(observe::serve_metrics(addr, cli.run.metrics_public)) {
            Ok(bound) => eprintln!("serving metrics at http://{bound}/metrics"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let result = if interactive && cli.run.progress_json.is_some() {
        Err(anyhow::anyhow!(
            "--progress-json works with `quiver run` and -c; in the REPL, SHOW PROGRESS name \
             shows a background query's records"
        ))
    } else if interactive {
        cli.run.config().and_then(|config| {
            let page = match cli.run.ui {
                None => None,
                Some(addr) => {
                    let interval_ms = config.batch_interval.as_millis() as i64;
                    let page = runtime.block_on(ui::start(addr, cli.run.ui_public, interval_ms))?;
                    eprintln!("ui: {}", page.url);
                    Some(page)
                }
            };
            repl::run(
                &runtime,
                quiver::Context::new(config),
                cli.run.format,
                cli.run.show_empty,
                cli.run.progress,
                page,
            )
        })
    } else {
        runtime.block_on(run(cli))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.run.config()?;
    let script = match (&cli.command, &cli.sql) {
        (Some(Command::Bench(args)), _) => return bench::run(args).await,
        (Some(Command::Checkpoint { command }), _) => {
            let CheckpointCommand::Inspect { dir } = command;
            return cli::inspect_checkpoint(dir);
        }
        (Some(Command::Run { files }), _) => {
            let mut script = String::new();
            for file in files {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("cannot read script '{}': {e}", file.display()))?;
                // A file's last statement may lack its `;`.
                script += text.trim_end().trim_end_matches(';');
                script += ";\n";
            }
            script
        }
        (None, Some(sql)) => sql.clone(),
        // Standard input is not a terminal here: main() runs the REPL otherwise.
        (None, None) => std::io::read_to_string(std::io::stdin())?,
    };
    let board = match cli.run.ui {
        None => None,
        Some(addr) => {
            let interval_ms = config.batch_interval.as_millis() as i64;
            let page = ui::start(addr, cli.run.ui_public, interval_ms).await?;
            eprintln!("ui: {}", page.url);
            Some(page.board)
        }
    };
    cli::run_script(
        quiver::Context::new(config),
        &script,
        cli.run.format,
        cli.run.show_empty,
        cli.run.progress,
        cli.run.progress_json.as_deref(),
        board,
    )
    .await
}
