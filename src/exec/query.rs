//! A continuous query as its consumers see it: [`start_query`] opens its
//! sources, picks the operator for its kind (per batch, windowed, session)
//! and starts the driver (`driver.rs`) on tokio; the [`QueryHandle`] yields
//! its [`QueryResult`]s and [`Progress`], and stops it.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::driver::{Driver, Watermarks};
use super::late::{LatePublisher, LateRouter};
use super::operator::{PerBatch, Session, Windowed};
use super::{Clock, ExecError};
use crate::batch::{InputMark, with_batch_time};
use crate::source;
use crate::sql::{PlanKind, StreamingPlan};

/// When a query stops by itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunLimits {
    /// Stop once every source is drained (after closing open windows).
    pub until_idle: bool,
    /// Stop after this many batches.
    pub max_batches: Option<u64>,
    /// Print one progress line per batch on stderr (`--progress`): rows in,
    /// watermark, late rows, state size.
    pub report_progress: bool,
}

/// Per-batch measurements, like Spark's `StreamingQueryProgress`.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Rows read from all sources in this batch.
    pub input_rows: u64,
    /// Malformed records skipped in this batch (`on_error = 'skip'`).
    pub skipped: u64,
    /// Time from the start of polling to the end of the query run.
    pub duration: Duration,
    /// How late the batch started compared to its scheduled time, in ms.
    pub delay_ms: i64,
    /// Rows held in window state after the batch.
    pub state_rows: usize,
    /// Memory held by window state after the batch, in bytes.
    pub state_bytes: usize,
    /// Event-time watermark after the batch (ms since the epoch), for
    /// queries over streams with a `WATERMARK`.
    pub watermark_ms: Option<i64>,
    /// The partition holding the watermark back (`bids partition 1`), when
    /// that stream has more than one partition.
    pub watermark_held_by: Option<String>,
    /// Rows that arrived behind the watermark in this batch.
    pub late_rows: u64,
    /// Of `late_rows`, how many went to each `<stream>_late` stream
    /// (`late_policy = 'side'`); the others were dropped.
    pub late_routed: Vec<(String, u64)>,
}

/// The output of one run of a query: one batch, or one closed window.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Name of the query.
    pub query: Arc<str>,
    /// Id of the batch that produced the result.
    pub batch_id: u64,
    /// Scheduled time of that batch, ms since the epoch.
    pub batch_time_ms: i64,
    /// `[start, end)` of the window that closed, for windowed queries.
    pub window: Option<(i64, i64)>,
    /// Schema of `rows`.
    pub schema: SchemaRef,
    /// The result rows (possibly none).
    pub rows: Vec<RecordBatch>,
    /// Measurements of the batch.
    pub progress: Progress,
    /// What the results up to this batch were computed from (batch times and
    /// source positions), for sinks that must tell a replay from a new run.
    pub input: InputMark,
}

impl QueryResult {
    /// Number of result rows.
    pub fn num_rows(&self) -> usize {
        self.rows.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Totals over a query's life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuerySummary {
    /// Batches run.
    pub batches: u64,
    /// Rows read from sources.
    pub input_rows: u64,
    /// Rows produced.
    pub output_rows: u64,
    /// Malformed records skipped.
    pub skipped: u64,
    /// Rows that arrived behind the watermark (counted once per stream row).
    pub late_rows: u64,
    /// Of `late_rows`, rows written to `<stream>_late` streams.
    pub late_routed: u64,
    /// Largest window state after a batch, in rows.
    pub peak_state_rows: usize,
    /// Largest window state after a batch, in bytes.
    pub peak_state_bytes: usize,
    /// Durations of the batches.
    pub latency: super::LatencyHistogram,
}

/// Where a query is: its totals and the last batch's measurements, updated
/// after every batch (whether or not the batch produced a result).
#[derive(Debug, Clone, Default)]
pub struct QueryProgress {
    /// Totals so far.
    pub summary: QuerySummary,
    /// Id of the last batch run.
    pub batch_id: Option<u64>,
    /// Measurements of the last batch.
    pub last: Progress,
}

/// A running query: its results, and the means to stop it.
#[derive(Debug)]
pub struct QueryHandle {
    /// Name of the query (`query_1`, ...).
    pub name: String,
    /// Schema of its results.
    pub schema: SchemaRef,
    /// Progress after each batch, for status lines and `SHOW QUERIES`.
    pub progress: watch::Receiver<QueryProgress>,
    results: mpsc::Receiver<QueryResult>,
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<Result<QuerySummary, ExecError>>,
    /// Registrations as a publisher of late rows: readers of `<stream>_late`
    /// are not drained until this handle (and so every result) is done.
    _late: Vec<LatePublisher>,
}

/// A cloneable way to stop a query from elsewhere (a Ctrl-C handler).
#[derive(Debug, Clone)]
pub struct QueryStopper(Arc<watch::Sender<bool>>);

impl QueryStopper {
    /// Asks the query to stop after its current batch.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl QueryHandle {
    /// The next result, or `None` once the query has ended.
    pub async fn next(&mut self) -> Option<QueryResult> {
        self.results.recv().await
    }

    /// A handle that can stop this query.
    pub fn stopper(&self) -> QueryStopper {
        QueryStopper(self.stop.clone())
    }

    /// Asks the query to stop after its current batch.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits for the query to end (drop or drain results first) and returns
    /// its totals or the error that ended it.
    pub async fn finish(self) -> Result<QuerySummary, ExecError> {
        drop(self.results);
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(ExecError::Arrow {
                query: self.name,
                source: datafusion::arrow::error::ArrowError::ExternalError(Box::new(join)),
            }),
        }
    }
}

/// Opens the query's sources and starts it on the current tokio runtime.
pub fn start_query(
    name: String,
    plan: StreamingPlan,
    interval_ms: i64,
    clock: Clock,
    limits: RunLimits,
) -> Result<QueryHandle, ExecError> {
    let mut sources = Vec::new();
    for (def, _) in &plan.streams {
        let source = source::open(def).map_err(|source| ExecError::Source {
            query: name.clone(),
            stream: def.name.clone(),
            source,
        })?;
        sources.push((def.name.clone(), with_batch_time(&def.schema), source));
    }
    let (late, publishers) =
        LateRouter::new(&plan, clock.first_batch_time(interval_ms), interval_ms);
    let late_inputs = LateRouter::read_hubs(&plan);
    let (tx, results) = mpsc::channel(1);
    let (stop, stop_rx) = watch::channel(false);
    let (progress_tx, progress) = watch::channel(QueryProgress::default());
    let schema = plan.schema.clone();
    let name_arc: Arc<str> = Arc::from(name.as_str());
    let watermarks = Watermarks::new(&plan);
    macro_rules! driver {
        ($operator:expr) => {
            Driver {
                name: name_arc,
                operator: $operator,
                plan,
                sources,
                partitioned: Vec::new(),
                watermarks,
                late,
                late_inputs,
                interval_ms,
                clock,
                limits,
                progress: progress_tx,
                input: InputMark::default(),
            }
            .run(tx, stop_rx)
        };
    }
    // One operator per kind of query.
    let task = match &plan.kind {
        PlanKind::PerBatch => tokio::spawn(driver!(PerBatch)),
        PlanKind::Windowed(windowed) => {
            let operator = Windowed::new(windowed);
            tokio::spawn(driver!(operator))
        }
        PlanKind::Session { session, .. } => {
            let operator = Session::new(session);
            tokio::spawn(driver!(operator))
        }
    };
    Ok(QueryHandle {
        name,
        schema,
        progress,
        results,
        stop: Arc::new(stop),
        task,
        _late: publishers,
    })
}
