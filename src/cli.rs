//! Running a script from the command line: execute its statements in order,
//! print one-off results, then print every continuous query's results until
//! the queries end (drained, `--max-batches`) or Ctrl-C / SIGTERM asks them to
//! stop after their current batch. Data on stdout; messages on stderr, and
//! with `--progress` one line per batch of every query (foreground queries'
//! from their events, background queries' once their sink committed it).
//! With `--progress-json FILE` every batch's progress record goes to FILE.

use std::io::Write;
use std::time::Instant;

use std::sync::Arc;

use quiver::{BatchEnd, BatchRecorder, ConsoleSink, OutputFormat, QueryEvent};
use quiver::{Context, Output};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::ui::{Board, background_started, feed_background, foreground_started};

/// Runs `script` on `ctx`, printing results to stdout in `format`, a
/// line per batch on stderr when `progress` is set, each batch's
/// progress record to `progress_json` when given, and feeding the live
/// page's `board` (`--ui`) when given.
pub async fn run_script(
    ctx: Context,
    script: &str,
    format: OutputFormat,
    show_empty: bool,
    progress: bool,
    progress_json: Option<&std::path::Path>,
    board: Option<Arc<Board>>,
) -> anyhow::Result<()> {
    let ctx = Arc::new(ctx);
    let background_progress = progress.then(|| print_progress(ctx.background().batch_ends()));
    let progress_json = match progress_json {
        Some(path) => {
            Some(crate::observe::ProgressJson::create(path, ctx.background().records()).await?)
        }
        None => None,
    };
    let records = progress_json
        .as_ref()
        .map(crate::observe::ProgressJson::sender);
    let mut recorders: std::collections::HashMap<String, BatchRecorder> = Default::default();
    if let Some(board) = &board {
        feed_background(ctx.clone(), board.clone());
    }
    let mut sink = ConsoleSink::new(std::io::stdout(), format, show_empty);
    let mut queries = Vec::new();
    let statements = match quiver::parse_script(script) {
        Ok(statements) => statements,
        Err(e) => anyhow::bail!("{e}"),
    };
    for statement in &statements {
        let output = match ctx.execute(statement).await {
            Ok(output) => output,
            Err(e) => {
                queries.iter().for_each(quiver::QueryHandle::stop);
                ctx.background().stop_all();
                ctx.background().wait_all().await;
                return Err(e.into());
            }
        };
        match output {
            Output::Message(message) => {
                eprintln!("{message}");
                if let Some(board) = &board {
                    background_started(&ctx, board, statement).await;
                }
            }
            Output::Rows(rows) => sink.write_rows(&rows)?,
            Output::Query(query) => {
                eprintln!(
                    "started {} (Ctrl-C stops it after the current batch)",
                    query.name
                );
                if let Some(board) = &board {
                    foreground_started(&ctx, board, &query.name, statement).await;
                }
                queries.push(query);
            }
        }
    }
    ctx.no_more_queries();
    sink.name_queries(queries.len() > 1);
    let stoppers: Vec<_> = queries.iter().map(quiver::QueryHandle::stopper).collect();
    let background = ctx.clone();
    let stop_all = move || {
        stoppers.iter().for_each(quiver::QueryStopper::stop);
        background.background().stop_all();
    };
    tokio::spawn(stop_on_signals(stop_all.clone()));

    // Each batch is committed to its query's checkpoint once printed.
    let checkpoints: std::collections::HashMap<String, _> = (queries.iter())
        .filter_map(|q| Some((q.name.clone(), q.checkpoint()?)))
        .collect();
    let (tx, mut results) = mpsc::channel(4);
    let mut tasks = Vec::new();
    for mut query in queries {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(event) = query.next_event().await {
                if tx.send(event).await.is_err() {
                    query.stop();
                }
            }
            let name = query.name.clone();
            (name, query.finish().await)
        }));
    }
    drop(tx);
    while let Some(event) = results.recv().await {
        let result = match event {
            QueryEvent::Result(result) => result,
            QueryEvent::BatchEnd(end) => {
                if let Some(line) = end.progress_line().filter(|_| progress) {
                    eprintln!("{line}");
                }
                let committing = Instant::now();
                if let Some(checkpoint) = checkpoints.get(end.query.as_ref()) {
                    std::io::stdout().flush()?;
                    if let Err(e) = checkpoint.commit(end.batch_id, end.batch_time_ms, end.results)
                    {
                        stop_all();
                        return Err(e.into());
                    }
                }
                let record = (recorders.entry(end.query.to_string()).or_default()).committed(
                    &end,
                    committing.elapsed(),
                    Some("console".into()),
                );
                if let Some(board) = &board {
                    board.record(&record);
                }
                if let Some(records) = &records {
                    let _ = records.send(record);
                }
                continue;
            }
        };
        let writing = Instant::now();
        let written = sink.write_result(&result);
        (recorders.entry(result.query.to_string()).or_default()).wrote(&result, writing.elapsed());
        if let Err(e) = written {
            stop_all();
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(anyhow::anyhow!("writing results to stdout: {e}"));
        }
    }
    drop(results);
    // Every result is printed by now: each query's closing line comes after
    // its last table.
    std::io::stdout().flush()?;
    let mut failed = None;
    for task in tasks {
        let (name, outcome) = task.await?;
        if let Some(board) = &board {
            board.ended(&name, outcome.as_ref().err().map(ToString::to_string));
        }
        match (name, outcome) {
            (name, Ok(summary)) => eprintln!("{name}: stopped after {summary}"),
            (_, Err(e)) => {
                if let Some(earlier) = failed.replace(anyhow::Error::from(e)) {
                    eprintln!("error: {earlier}");
                }
            }
        }
    }
    let statuses = ctx.background().wait_all().await;
    if let Some(board) = &board {
        board.background(&statuses);
    }
    if let Some((done, printer)) = background_progress {
        let _ = done.send(());
        let _ = printer.await;
    }
    drop(records);
    if let Some(progress_json) = progress_json {
        let written = progress_json.finish().await;
        if let Err(e) = written
            && let Some(earlier) = failed.replace(e)
        {
            eprintln!("error: {earlier}");
        }
    }
    for status in statuses {
        eprintln!("{status}");
    }
    for failure in ctx.background().take_failures() {
        if let Some(earlier) = failed.replace(anyhow::anyhow!("{failure}")) {
            eprintln!("error: {earlier}");
        }
    }
    std::io::stdout().flush()?;
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `quiver checkpoint inspect DIR`: one paragraph per query.
pub fn inspect_checkpoint(dir: &std::path::Path) -> anyhow::Result<()> {
    let info = quiver::inspect_checkpoint(dir)?;
    for q in &info.queries {
        println!("query {}", q.query);
        match &q.committed {
            Some(c) => println!(
                "  last committed batch: {} at {} ({} results; sinks: {})",
                c.batch_id,
                quiver::format_time(c.batch_time_ms),
                c.results,
                c.sinks.join(", ")
            ),
            None => println!("  last committed batch: none"),
        }
        if let Some(first) = q.committed.as_ref().and_then(|c| c.pending_from) {
            println!("  sink files open since batch {first}: a restart re-runs from there");
        }
        if let Some(o) = &q.logged {
            let pending = q.committed.as_ref().is_none_or(|c| c.batch_id < o.batch_id);
            let note = if pending {
                " (not committed: re-run on restart)"
            } else {
                ""
            };
            println!("  last logged batch: {}{note}", o.batch_id);
            for s in &o.streams {
                for r in &s.ranges {
                    println!("    {} {}: {}..{}", s.stream, r.partition, r.start, r.end);
                }
            }
        }
        // The end of bounded input moves the watermark to the end of time.
        let watermark = match q.watermark_ms {
            None => "none".to_string(),
            Some(i64::MAX) => "end of input".to_string(),
            Some(ms) => quiver::format_time(ms),
        };
        match q.state_batch {
            Some(b) => println!(
                "  state: after batch {b}, {} bytes, watermark {watermark}",
                q.state_bytes
            ),
            None => println!("  state: none yet"),
        }
        if q.wal_entries > 0 {
            println!(
                "  write-ahead log: {} entries, {} bytes",
                q.wal_entries, q.wal_bytes
            );
        }
    }
    Ok(())
}

/// Prints the progress line of each background batch end until told that
/// every query has ended, then the ends still queued.
fn print_progress(
    mut ends: broadcast::Receiver<BatchEnd>,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (done, mut finished) = oneshot::channel();
    let printer = tokio::spawn(async move {
        let print = |received: Result<BatchEnd, broadcast::error::RecvError>| match received {
            Ok(end) => {
                if let Some(line) = end.progress_line() {
                    eprintln!("{line}");
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                eprintln!("progress: {missed} progress lines skipped (stderr fell behind)")
            }
            Err(broadcast::error::RecvError::Closed) => {}
        };
        loop {
            tokio::select! {
                biased;
                received = ends.recv() => print(received),
                _ = &mut finished => break,
            }
        }
        loop {
            match ends.try_recv() {
                Ok(end) => print(Ok(end)),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    print(Err(broadcast::error::RecvError::Lagged(missed)))
                }
                Err(_) => break,
            }
        }
    });
    (done, printer)
}

/// First Ctrl-C or SIGTERM: stop every query after its current batch.
/// Second Ctrl-C: exit at once.
async fn stop_on_signals(stop_all: impl Fn()) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("stopping after the current batch (Ctrl-C again to abort)");
    stop_all();
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("aborted");
        std::process::exit(130);
    }
}
