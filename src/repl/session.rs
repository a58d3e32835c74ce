//! Running what the user typed: backslash commands, and SQL statements through
//! `quiver::Context`. A continuous `SELECT` runs in the foreground, printing
//! each batch's or window's result with the live status line under it, until
//! it ends or Ctrl-C stops it after its current batch. Ctrl-C while any other
//! statement runs cancels that statement. Errors are printed and the session
//! goes on; failures of background queries are reported before the next prompt.

use std::io::Stdout;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use quiver::{ConsoleSink, OutputFormat};
use quiver::{Context, Output};
use quiver::{QueryEvent, QueryHandle, QueryState};

use crate::ui::{Page, background_started, feed_background, foreground_started};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::commands::{self, Command};
use super::status::StatusLine;

/// What the REPL does after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Show the next prompt.
    Continue,
    /// Leave the REPL.
    Quit,
}

/// One REPL session: the context, how results print, and the Ctrl-C listener.
pub struct Session {
    ctx: Arc<Context>,
    sink: ConsoleSink<Stdout>,
    show_empty: bool,
    /// Print each foreground batch's progress line (`--progress`).
    progress: bool,
    timing: bool,
    interrupts: Signal,
    status: StatusLine,
    /// The live page (`--ui`), fed with every query's batches.
    page: Option<Page>,
}

impl Session {
    /// A session on `ctx`. Must run inside the tokio runtime: it installs the
    /// SIGINT handler, which from then on keeps Ctrl-C from killing the process.
    pub fn new(ctx: Arc<Context>, format: OutputFormat, show_empty: bool) -> anyhow::Result<Self> {
        let interrupts = signal(SignalKind::interrupt())
            .map_err(|e| anyhow::anyhow!("cannot listen for Ctrl-C: {e}"))?;
        Ok(Self {
            ctx,
            sink: ConsoleSink::new(std::io::stdout(), format, show_empty),
            show_empty,
            progress: false,
            timing: false,
            interrupts,
            status: StatusLine::new(),
            page: None,
        })
    }

    /// The same session, feeding the live page `page` (`--ui`).
    pub fn with_page(mut self, page: Option<Page>) -> Self {
        if let Some(page) = &page {
            feed_background(self.ctx.clone(), page.board.clone());
        }
        self.page = page;
        self
    }

    /// Where the live page is (`\ui`), or how to get one.
    pub fn page_url(&self) -> String {
        match &self.page {
            Some(page) => format!("live page: {}", page.url),
            None => "no live page: start the REPL with --ui 127.0.0.1:4040".to_string(),
        }
    }

    /// Prints failures of background queries not reported yet.
    pub fn report_failures(&self) {
        for failure in self.ctx.background().take_failures() {
            eprintln!("error: {failure}");
        }
    }

    /// Runs one complete input: a backslash command or SQL statements.
    pub async fn handle(&mut self, input: &str) -> Flow {
        if super::editor::is_quit_word(input) {
            return Flow::Quit;
        }
        if !input.trim_start().starts_with('\\') {
            self.run_sql(input).await;
            return Flow::Continue;
        }
        match input.parse::<Command>() {
            Ok(command) => self.command(command).await,
            Err(e) => {
                eprintln!("error: {e}");
                Flow::Continue
            }
        }
    }

    async fn command(&mut self, command: Command) -> Flow {
        match command {
            Command::Help => eprint!("{}", commands::help()),
            Command::Quit => return Flow::Quit,
            Command::Ui => eprintln!("{}", self.page_url()),
            Command::Describe(Some(name)) => {
                match super::catalog::describe_sink(&self.ctx, &name) {
                    Some(Ok(columns)) => {
                        eprintln!("sink table {name}:");
                        if let Err(e) = self.sink.write_rows(&[columns]) {
                            eprintln!("error: writing results: {e}");
                        }
                    }
                    Some(Err(e)) => eprintln!("error: {e}"),
                    None => self.run_sql(&format!("DESCRIBE {name};")).await,
                }
            }
            Command::Describe(None) => match super::catalog::list(&self.ctx).await {
                Ok(kinds) if kinds.is_empty() => {
                    eprintln!("no streams or tables yet; declare one with CREATE STREAM");
                }
                Ok(kinds) => {
                    for (title, rows) in kinds {
                        eprintln!("{title}:");
                        if let Err(e) = self.sink.write_rows(&rows) {
                            eprintln!("error: writing results: {e}");
                        }
                    }
                }
                Err(e) => eprintln!("error: {e}"),
            },
            Command::Include(path) => match std::fs::read_to_string(&path) {
                Ok(script) => self.run_sql(&script).await,
                Err(e) => eprintln!("error: cannot read '{}': {e}", path.display()),
            },
            Command::Timing(on) => {
                self.timing = on.unwrap_or(!self.timing);
                eprintln!("timing is {}", if self.timing { "on" } else { "off" });
            }
            Command::Format(format) => {
                self.sink = ConsoleSink::new(std::io::stdout(), format, self.show_empty);
                eprintln!("output format is {}", commands::format_name(format));
            }
        }
        Flow::Continue
    }

    /// Parses `script` and runs its statements in order, stopping at the
    /// first error or Ctrl-C.
    pub async fn run_sql(&mut self, script: &str) {
        let statements = match quiver::parse_script(script) {
            Ok(statements) => statements,
            Err(e) => {
                eprintln!("error: {e}");
                return;
            }
        };
        for statement in &statements {
            let started = Instant::now();
            self.drain_interrupts();
            let output = tokio::select! {
                output = self.ctx.execute(statement) => output,
                _ = self.interrupts.recv() => {
                    self.status.erase();
                    eprintln!("cancelled: {}", statement.text);
                    return;
                }
            };
            let ok = match output {
                Ok(Output::Message(message)) => {
                    eprintln!("{message}");
                    if let Some(page) = &self.page {
                        background_started(&self.ctx, &page.board, statement).await;
                    }
                    true
                }
                Ok(Output::Rows(rows)) if rows.is_empty() => {
                    eprintln!("(no rows)");
                    true
                }
                Ok(Output::Rows(rows)) => match self.sink.write_rows(&rows) {
                    Ok(()) => true,
                    Err(e) => {
                        eprintln!("error: writing results: {e}");
                        false
                    }
                },
                Ok(Output::Query(query)) => {
                    if let Some(page) = &self.page {
                        foreground_started(&self.ctx, &page.board, &query.name, statement).await;
                    }
                    self.foreground(query).await
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    false
                }
            };
            if self.timing {
                eprintln!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
            }
            if !ok {
                return;
            }
        }
    }

    /// The same session, printing a progress line per foreground batch
    /// when `progress` is set.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// Prints `query`'s results until it ends or Ctrl-C stops it; a second
    /// Ctrl-C returns at once, leaving the query to end after its batch.
    /// Returns true if the query ended by itself, so that the statements
    /// after it run; after Ctrl-C or a failure the prompt comes back.
    async fn foreground(&mut self, mut query: QueryHandle) -> bool {
        let name = query.name.clone();
        let interval = self.ctx.config().batch_interval;
        // With --checkpoint, each batch is committed once printed.
        let checkpoint = query.checkpoint();
        let mut recorder = quiver::BatchRecorder::new();
        let mut history = quiver::ProgressHistory::default();
        let mut stopping = false;
        self.sink.name_queries(false);
        eprintln!("{name} running; Ctrl-C stops it");
        loop {
            tokio::select! {
                event = query.next_event() => {
                    let Some(event) = event else { break };
                    match event {
                        QueryEvent::Result(result) => {
                            self.status.clear();
                            let writing = Instant::now();
                            if let Err(e) = self.sink.write_result(&result) {
                                eprintln!("error: writing results: {e}");
                                query.stop();
                                stopping = true;
                            }
                            recorder.wrote(&result, writing.elapsed());
                        }
                        QueryEvent::BatchEnd(end) => {
                            if let Some(line) = end.progress_line().filter(|_| self.progress) {
                                self.status.clear();
                                eprintln!("{line}");
                            }
                            let committing = Instant::now();
                            if let Some(ck) = &checkpoint {
                                let _ = std::io::Write::flush(&mut std::io::stdout());
                                if let Err(e) = ck.commit(end.batch_id, end.batch_time_ms, end.results) {
                                    self.status.clear();
                                    eprintln!("error: {e}");
                                    query.stop();
                                    stopping = true;
                                }
                            }
                            let record = recorder.committed(&end, committing.elapsed(), Some("console".into()));
                            if let Some(page) = &self.page {
                                page.board.record(&record);
                            }
                            history.push(record);
                            if !stopping {
                                self.status.show(&name, &history, interval);
                            }
                        }
                    }
                }
                _ = self.interrupts.recv() => {
                    self.status.erase();
                    if stopping {
                        eprintln!("{name} left to stop in the background");
                        self.ctx.background().keep_foreground(&name, history);
                        return false;
                    }
                    eprintln!("stopping {name} after the current batch (Ctrl-C again to return at once)");
                    query.stop();
                    stopping = true;
                }
            }
        }
        self.status.clear();
        // `SHOW PROGRESS name` shows what the query did.
        self.ctx.background().keep_foreground(&name, history);
        let outcome = query.finish().await;
        if let Some(page) = &self.page {
            page.board
                .ended(&name, outcome.as_ref().err().map(ToString::to_string));
        }
        match outcome {
            Ok(summary) => {
                eprintln!(
                    "{name} {} after {summary}",
                    if stopping { "stopped" } else { "ended" },
                );
                !stopping
            }
            Err(e) => {
                eprintln!("error: {e}");
                false
            }
        }
    }

    /// Forgets Ctrl-C presses that arrived while nothing listened for them,
    /// so they cannot stop the next statement.
    fn drain_interrupts(&mut self) {
        while let Some(Some(())) = self.interrupts.recv().now_or_never() {}
    }

    /// Stops every background query after its current batch, waits until
    /// their sinks are flushed and closed, and prints their final status.
    /// Ctrl-C while waiting gives up (an error: sinks may not be flushed).
    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        let running = self.ctx.background().list();
        if running.iter().any(|q| q.state == QueryState::Running) {
            eprintln!(
                "stopping background queries after their current batch (Ctrl-C to quit without waiting)"
            );
        }
        self.ctx.background().stop_all();
        self.drain_interrupts();
        let statuses = tokio::select! {
            statuses = self.ctx.background().wait_all() => statuses,
            _ = self.interrupts.recv() => anyhow::bail!(
                "quit without waiting for background queries; their sinks may not be flushed"
            ),
        };
        for status in statuses {
            eprintln!("{status}");
        }
        self.report_failures();
        Ok(())
    }
}
