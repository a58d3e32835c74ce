//! Background queries: continuous queries whose results go to a sink table
//! (`INSERT INTO t SELECT ...`, `CREATE SINK name AS SELECT ...`) instead of
//! the console. The registry keeps each one's status for `SHOW QUERIES` and
//! its last 100 progress records for `SHOW PROGRESS` (both from the records
//! its sink task completes after each commit, so they agree),
//! stops them by name (`STOP QUERY`) or all at once, and keeps failures until
//! a front end reports them, so an error is never lost.
//!
//! A query's sink task writes each result, then commits each batch with its
//! source ranges (`Sink::commit` with the [`BatchEnd`](super::BatchEnd)), and
//! closes the sink at the end. Under `--checkpoint` it logs each batch's
//! commit after the sink's (with the first batch the sink holds only in
//! unfinished files, see `CommitEntry::pending_from`); every sink call runs on tokio's blocking pool
//! (sinks may block on writes and fsyncs), the sink moved there and back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use tokio::sync::{broadcast, watch};

use super::{ExecError, QueryHandle, QueryStopper};
use crate::checkpoint::QueryCheckpoint;
use crate::report::{
    BatchEnd, BatchRecorder, ProgressHistory, ProgressRecord, QueryEvent, QueryProgress,
    QuerySummary, StreamLag,
};
use crate::sink::Sink;

/// Where a background query is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    /// Running batches.
    Running,
    /// Asked to stop; finishing its current batch.
    Stopping,
    /// Ended by itself or by `STOP QUERY`, sink closed.
    Finished,
    /// Ended by an error (see `error`).
    Failed,
}

impl std::fmt::Display for QueryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Finished => "finished",
            Self::Failed => "failed",
        })
    }
}

/// What `SHOW QUERIES` reports for one background query.
#[derive(Debug, Clone)]
pub struct QueryStatus {
    /// Query name (the sink table's name).
    pub name: String,
    /// Running, stopping, finished or failed.
    pub state: QueryState,
    /// Sink connector and its own status line.
    pub sink: String,
    /// Batches run.
    pub batches: u64,
    /// Rows read from sources.
    pub input_rows: u64,
    /// Rows written to the sink.
    pub output_rows: u64,
    /// Duration of the last batch that produced a result.
    pub last_batch: Duration,
    /// Event-time watermark after the last batch, ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// The stream partition holding the watermark back, when its stream
    /// has several (`bids partition 1`).
    pub watermark_held_by: Option<String>,
    /// Rows dropped (or diverted) as late so far.
    pub late_rows: u64,
    /// After the last batch, per stream whose source can tell (Kafka), the
    /// records each partition still holds beyond what was read.
    pub lag: Vec<StreamLag>,
    /// The error that ended the query.
    pub error: Option<String>,
    /// Totals, peak state and batch latencies so far.
    pub summary: QuerySummary,
}

/// One line: `query name: state, N batches, N rows in, N rows out (sink)`.
impl std::fmt::Display for QueryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "query {}: {}, {}, {} in, {} out ({})",
            self.name,
            self.state,
            crate::report::counted(self.batches, "batch", "batches"),
            crate::report::counted(self.input_rows, "row", "rows"),
            crate::report::counted(self.output_rows, "row", "rows"),
            self.sink
        )
    }
}

struct Entry {
    status: Arc<Mutex<QueryStatus>>,
    progress: watch::Receiver<QueryProgress>,
    /// The query's last progress records (`SHOW PROGRESS`) and their totals.
    history: Arc<Mutex<ProgressHistory>>,
    stopper: QueryStopper,
    task: Option<JoinHandle<()>>,
}

/// The background queries of a session.
pub struct Registry {
    queries: Mutex<BTreeMap<String, Entry>>,
    unreported: Arc<Mutex<Vec<String>>>,
    /// Each batch's end once its sink committed it, for front ends that
    /// print progress (`--progress`).
    batch_ends: broadcast::Sender<BatchEnd>,
    /// Each batch's progress record once its sink committed it, for front
    /// ends that write them (`--progress-json`).
    records: broadcast::Sender<ProgressRecord>,
    /// The progress records of the last foreground queries, as their front
    /// end handed them over when they ended (`SHOW PROGRESS` after Ctrl-C),
    /// oldest first, at most [`FOREGROUND_KEPT`].
    ended_foreground: Mutex<std::collections::VecDeque<(String, ProgressHistory)>>,
}

/// Ended foreground queries whose records `SHOW PROGRESS` still finds.
const FOREGROUND_KEPT: usize = 16;

/// Batch ends a slow reader of [`Registry::batch_ends`] may fall behind by
/// before it misses some (and is told how many).
const BATCH_END_BACKLOG: usize = 1024;

impl Default for Registry {
    fn default() -> Self {
        Self {
            queries: Mutex::default(),
            unreported: Arc::default(),
            batch_ends: broadcast::channel(BATCH_END_BACKLOG).0,
            records: broadcast::channel(BATCH_END_BACKLOG).0,
            ended_foreground: Mutex::default(),
        }
    }
}

impl Entry {
    /// The query's status: counts, last batch, watermark and lag from its
    /// progress records (what `SHOW PROGRESS` shows, so the views agree),
    /// peak state and latencies from the driver's summary.
    fn status(&self) -> QueryStatus {
        let mut status = lock(&self.status).clone();
        status.summary = self.progress.borrow().summary.clone();
        let history = lock(&self.history);
        let totals = history.totals();
        status.batches = totals.batches;
        status.input_rows = totals.input_rows;
        status.output_rows = totals.output_rows;
        status.late_rows = totals.late_rows;
        if let Some(last) = history.last() {
            status.last_batch = Duration::from_secs_f64(last.durations.total_ms.max(0.0) / 1e3);
            status.watermark_ms = last.watermark_ms;
            status.watermark_held_by = last.watermark_held_by.clone();
            status.lag = (last.sources.iter())
                .filter(|s| s.partitions.iter().any(|p| p.lag.is_some()))
                .map(|s| StreamLag {
                    stream: s.stream.clone(),
                    partitions: (s.partitions.iter())
                        .map(|p| (p.partition.clone(), p.lag.unwrap_or(0)))
                        .collect(),
                })
                .collect();
        }
        status
    }
}

/// Runs `call` on `sink` on tokio's blocking pool and hands the sink back;
/// a panic in the sink is the caller's panic. Fails only when the runtime
/// shuts down before the call ran (the sink is then dropped).
async fn on_blocking_pool<T: Send + 'static>(
    mut sink: Box<dyn Sink>,
    call: impl FnOnce(&mut dyn Sink) -> T + Send + 'static,
) -> Result<(Box<dyn Sink>, T), String> {
    let task = tokio::task::spawn_blocking(move || {
        let out = call(sink.as_mut());
        (sink, out)
    });
    match task.await {
        Ok(done) => Ok(done),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(format!("sink call cancelled: {join}")),
    }
}

/// Logs batch `end` in the query's checkpoint once its sink committed it,
/// with the first batch the sink still holds in unfinished files.
fn commit_checkpoint(
    checkpoint: Option<&QueryCheckpoint>,
    end: &BatchEnd,
    pending_from: Option<u64>,
) -> Result<(), String> {
    let Some(ck) = checkpoint else {
        return Ok(());
    };
    ck.commit_pending(end.batch_id, end.batch_time_ms, end.results, pending_from)
        .map_err(|e| e.to_string())
}

/// `name` is not a background query; says which are.
fn unknown_query(name: &str, queries: &BTreeMap<String, Entry>) -> ExecError {
    ExecError::UnknownQuery {
        name: name.to_string(),
        among: "background",
        known: list_or_none(queries.keys().cloned()),
    }
}

/// `names` comma-separated, or `none`.
fn list_or_none(names: impl Iterator<Item = String>) -> String {
    let known: Vec<String> = names.collect();
    if known.is_empty() {
        "none".into()
    } else {
        known.join(", ")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// Starts pumping `query`'s results into `sink` on the tokio runtime.
    /// Fails if a query with that name is still running.
    pub fn start(
        &self,
        query: QueryHandle,
        mut sink: Box<dyn Sink>,
        connector: &str,
    ) -> Result<(), ExecError> {
        let name = query.name.clone();
        let mut queries = lock(&self.queries);
        if let Some(entry) = queries.get(&name)
            && matches!(
                lock(&entry.status).state,
                QueryState::Running | QueryState::Stopping
            )
        {
            return Err(ExecError::AlreadyRunning(name));
        }
        let status = Arc::new(Mutex::new(QueryStatus {
            name: name.clone(),
            state: QueryState::Running,
            sink: connector.to_string(),
            batches: 0,
            input_rows: 0,
            output_rows: 0,
            last_batch: Duration::ZERO,
            watermark_ms: None,
            watermark_held_by: None,
            late_rows: 0,
            lag: Vec::new(),
            error: None,
            summary: QuerySummary::default(),
        }));
        let stopper = query.stopper();
        let progress = query.progress.clone();
        let shared = status.clone();
        let unreported = self.unreported.clone();
        let connector = connector.to_string();
        let name_of = name.clone();
        let batch_ends = self.batch_ends.clone();
        let checkpoint = query.checkpoint();
        if let Some(ck) = &checkpoint {
            sink.resume_from_checkpoint(ck.id());
        }
        let records = self.records.clone();
        let history = Arc::new(Mutex::new(ProgressHistory::default()));
        let history_of = history.clone();
        let task = tokio::spawn(async move {
            let mut query = query;
            let mut error = None;
            let mut status = String::new();
            let mut last_end = None;
            let mut recorder = BatchRecorder::new();
            while let Some(event) = query.next_event().await {
                if let QueryEvent::BatchEnd(end) = &event {
                    last_end = Some((end.batch_id, end.batch_time_ms, end.results));
                }
                let checkpoint = checkpoint.clone();
                let written = on_blocking_pool(sink, move |sink| {
                    let started = std::time::Instant::now();
                    let written = match &event {
                        QueryEvent::Result(result) => sink.write(result).map_err(|e| e.to_string()),
                        QueryEvent::BatchEnd(end) => {
                            sink.commit(end).map_err(|e| e.to_string()).and_then(|()| {
                                commit_checkpoint(checkpoint.as_deref(), end, sink.pending_from())
                            })
                        }
                    };
                    let took = started.elapsed();
                    (written, sink.status(), event, took)
                })
                .await;
                let (back, (written, now, event, took)) = match written {
                    Ok(done) => done,
                    Err(e) => {
                        // The runtime is shutting down: the sink is gone.
                        let _ = query.finish().await;
                        lock(&shared).state = QueryState::Failed;
                        lock(&unreported).push(format!("query {name_of}: {e}"));
                        return;
                    }
                };
                sink = back;
                status = now;
                if let Err(e) = written {
                    error = Some(e);
                    query.stop();
                    break;
                }
                let description = format!("{connector}: {status}");
                lock(&shared).sink = description.clone();
                match event {
                    QueryEvent::Result(result) => recorder.wrote(&result, took),
                    QueryEvent::BatchEnd(end) => {
                        let record = recorder.committed(&end, took, Some(description));
                        if records.receiver_count() > 0 {
                            let _ = records.send(record.clone());
                        }
                        lock(&history_of).push(record);
                        if batch_ends.receiver_count() > 0 {
                            let _ = batch_ends.send(end);
                        }
                    }
                }
            }
            // Closing finishes open files: the last commit entry then says
            // every batch is durable.
            let reclose = last_end.filter(|_| error.is_none()).and(checkpoint);
            let closed = match on_blocking_pool(sink, move |sink| {
                let closed = sink.close().map_err(|e| e.to_string());
                let closed = match (closed, reclose, last_end) {
                    (Ok(()), Some(ck), Some((batch, time, results))) => ck
                        .commit_pending(batch, time, results, sink.pending_from())
                        .map_err(|e| e.to_string()),
                    (closed, _, _) => closed,
                };
                (closed, sink.status())
            })
            .await
            {
                Ok((_, (closed, now))) => {
                    status = now;
                    closed
                }
                Err(e) => Err(e),
            };
            let finished = query.finish().await;
            if error.is_none() {
                error = match (finished, closed) {
                    (Err(e), _) => Some(e.to_string()),
                    (Ok(_), Err(e)) => Some(e),
                    (Ok(_), Ok(())) => None,
                };
            }
            let mut s = lock(&shared);
            s.sink = format!("{connector}: {status}");
            match error {
                Some(e) => {
                    s.state = QueryState::Failed;
                    lock(&unreported).push(format!("query {} failed: {e}", s.name));
                    s.error = Some(e);
                }
                None => s.state = QueryState::Finished,
            }
        });
        queries.insert(
            name,
            Entry {
                status,
                progress,
                history,
                stopper,
                task: Some(task),
            },
        );
        Ok(())
    }

    /// The end of every batch of every background query from now on, sent
    /// once its sink has committed the batch: what `--progress` prints.
    /// A reader more than 1,024 ends behind gets `Lagged` with the number
    /// it missed.
    pub fn batch_ends(&self) -> broadcast::Receiver<BatchEnd> {
        self.batch_ends.subscribe()
    }

    /// Each batch's progress record of every background query from now on,
    /// sent once its sink has committed the batch: what `--progress-json`
    /// writes. A reader more than 1,024 records behind gets `Lagged`.
    pub fn records(&self) -> broadcast::Receiver<ProgressRecord> {
        self.records.subscribe()
    }

    /// The newest `limit` progress records of query `name` (at most
    /// [`ProgressHistory::CAPACITY`] are kept), oldest first.
    /// Falls back to the ended foreground queries a front end kept
    /// ([`Registry::keep_foreground`]).
    pub fn progress(&self, name: &str, limit: usize) -> Result<Vec<ProgressRecord>, ExecError> {
        let queries = lock(&self.queries);
        if let Some(entry) = queries.get(name) {
            return Ok(lock(&entry.history).recent(limit));
        }
        let ended = lock(&self.ended_foreground);
        match ended.iter().rev().find(|(query, _)| query == name) {
            Some((_, history)) => Ok(history.recent(limit)),
            None => {
                let known: std::collections::BTreeSet<String> = (queries.keys().cloned())
                    .chain(ended.iter().map(|(k, _)| k.clone()))
                    .collect();
                Err(ExecError::UnknownQuery {
                    name: name.to_string(),
                    among: "known",
                    known: list_or_none(known.into_iter()),
                })
            }
        }
    }

    /// Keeps the progress records of foreground query `name`, which ended
    /// (or was stopped), so that `SHOW PROGRESS name` shows them: the front
    /// end that consumed the query built them (it timed the printing).
    /// The last 16 such queries are kept.
    pub fn keep_foreground(&self, name: &str, history: ProgressHistory) {
        let mut ended = lock(&self.ended_foreground);
        ended.retain(|(query, _)| query != name);
        if ended.len() == FOREGROUND_KEPT {
            ended.pop_front();
        }
        ended.push_back((name.to_string(), history));
    }

    /// Status of every background query, by name.
    pub fn list(&self) -> Vec<QueryStatus> {
        lock(&self.queries).values().map(Entry::status).collect()
    }

    /// Asks query `name` to stop after its current batch and waits until its
    /// sink is closed.
    pub async fn stop(&self, name: &str) -> Result<QueryStatus, ExecError> {
        let (task, status) = {
            let mut queries = lock(&self.queries);
            let Some(entry) = queries.get_mut(name) else {
                return Err(unknown_query(name, &queries));
            };
            entry.stopper.stop();
            {
                let mut s = lock(&entry.status);
                if s.state == QueryState::Running {
                    s.state = QueryState::Stopping;
                }
            }
            (entry.task.take(), entry.status.clone())
        };
        if let Some(task) = task {
            let _ = task.await;
        }
        let entry = lock(&self.queries).get(name).map(Entry::status);
        Ok(entry.unwrap_or_else(|| lock(&status).clone()))
    }

    /// Asks every query to stop after its current batch.
    pub fn stop_all(&self) {
        for entry in lock(&self.queries).values() {
            entry.stopper.stop();
        }
    }

    /// Waits until every query has ended (by itself or stopped) and its sink
    /// is closed; returns their final status.
    pub async fn wait_all(&self) -> Vec<QueryStatus> {
        loop {
            let task = lock(&self.queries).values_mut().find_map(|e| e.task.take());
            match task {
                Some(task) => {
                    let _ = task.await;
                }
                None => return self.list(),
            }
        }
    }

    /// Failures not reported yet; each is returned once.
    pub fn take_failures(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.unreported))
    }
}
