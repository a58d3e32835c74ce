//! The life of one continuous query: a tokio task that ticks once per batch
//! interval, pulls every source of the query, fills the plan's tables (the
//! current batch, or a window's union of batches when a window closes), runs
//! the plan and sends the result to whoever consumes the query. Stopping is
//! explicit: `stop()` lets the current batch finish and its result be
//! delivered, then the task ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Clock, ExecError};
use crate::batch::{stamp_batch_time, with_batch_time};
use crate::source::{self, PollContext, Source};
use crate::sql::StreamingPlan;
use crate::window::{WindowBuffer, stamp_window};

/// When a query stops by itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunLimits {
    /// Stop once every source is drained (after closing open windows).
    pub until_idle: bool,
    /// Stop after this many batches.
    pub max_batches: Option<u64>,
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
    /// Event-time watermark after the batch (ms since the epoch), for
    /// queries over streams with a `WATERMARK`.
    pub watermark_ms: Option<i64>,
    /// Rows that arrived behind the watermark in this batch.
    pub late_rows: u64,
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
}

/// A running query: its results, and the means to stop it.
#[derive(Debug)]
pub struct QueryHandle {
    /// Name of the query (`query_1`, ...).
    pub name: String,
    /// Schema of its results.
    pub schema: SchemaRef,
    results: mpsc::Receiver<QueryResult>,
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<Result<QuerySummary, ExecError>>,
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
    let mut sources = BTreeMap::new();
    for def in &plan.streams {
        let source = source::open(def).map_err(|source| ExecError::Source {
            query: name.clone(),
            stream: def.name.clone(),
            source,
        })?;
        sources.insert(def.name.clone(), (with_batch_time(&def.schema), source));
    }
    let buffers = match plan.window {
        Some(spec) => plan
            .inputs
            .iter()
            .filter(|i| i.windowed)
            .map(|_| WindowBuffer::new(spec))
            .collect(),
        None => Vec::new(),
    };
    let (tx, results) = mpsc::channel(1);
    let (stop, stop_rx) = watch::channel(false);
    let schema = plan.schema.clone();
    let runner = Runner {
        name: Arc::from(name.as_str()),
        plan,
        sources,
        buffers,
        interval_ms,
        clock,
        limits,
    };
    let task = tokio::spawn(runner.run(tx, stop_rx));
    Ok(QueryHandle {
        name,
        schema,
        results,
        stop: Arc::new(stop),
        task,
    })
}

type Sources = BTreeMap<String, (SchemaRef, Box<dyn Source>)>;
/// One batch's rows per stream.
type Polled = BTreeMap<String, Vec<RecordBatch>>;

struct Runner {
    name: Arc<str>,
    plan: StreamingPlan,
    sources: Sources,
    buffers: Vec<WindowBuffer>,
    interval_ms: i64,
    clock: Clock,
    limits: RunLimits,
}

impl Runner {
    async fn run(
        mut self,
        tx: mpsc::Sender<QueryResult>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<QuerySummary, ExecError> {
        let mut summary = QuerySummary::default();
        let mut time = self.clock.first_batch_time(self.interval_ms);
        let mut batch_id = 0;
        while !*stop.borrow() {
            tokio::select! {
                _ = self.clock.wait_for(time) => {}
                _ = stop.changed() => break,
            }
            let started = Instant::now();
            let delay_ms = self.clock.delay_ms(time);
            let (polled, input_rows, skipped) = self.poll(time)?;
            let result = self.step(batch_id, time, polled).await?;
            summary.batches += 1;
            summary.input_rows += input_rows;
            summary.skipped += skipped;
            if skipped > 0 {
                tracing::warn!(
                    "{}: batch {batch_id}: skipped {skipped} malformed records (on_error = 'skip')",
                    self.name
                );
            }
            if let Some(mut result) = result {
                summary.output_rows += result.num_rows() as u64;
                result.progress = Progress {
                    input_rows,
                    skipped,
                    duration: started.elapsed(),
                    delay_ms,
                    state_rows: self.state_rows(),
                    ..Progress::default()
                };
                tracing::debug!(target: "quiver::progress", query = %self.name, batch = batch_id, input_rows, output_rows = result.num_rows(), duration_ms = started.elapsed().as_secs_f64() * 1e3, delay_ms);
                if tx.send(result).await.is_err() {
                    break;
                }
            }
            batch_id += 1;
            time += self.interval_ms;
            if self.limits.max_batches.is_some_and(|max| batch_id >= max) {
                break;
            }
            if self.limits.until_idle && self.sources.values().all(|(_, s)| s.is_drained()) {
                self.close_open_windows(batch_id, time, &tx, &mut summary)
                    .await?;
                break;
            }
        }
        tracing::info!(
            "{}: stopped after {} batches; {} rows in, {} rows out, {} malformed records skipped",
            self.name,
            summary.batches,
            summary.input_rows,
            summary.output_rows,
            summary.skipped
        );
        Ok(summary)
    }

    /// Pulls every source for the batch at `time`; stamps `_batch_time`.
    fn poll(&mut self, time: i64) -> Result<(Polled, u64, u64), ExecError> {
        let ctx = PollContext {
            batch_time_ms: time,
            interval_ms: self.interval_ms,
        };
        let (mut polled, mut rows, mut skipped) = (BTreeMap::new(), 0, 0);
        for (stream, (schema, source)) in &mut self.sources {
            let data = source
                .poll_batch(&ctx)
                .map_err(|source| ExecError::Source {
                    query: self.name.to_string(),
                    stream: stream.clone(),
                    source,
                })?;
            skipped += data.skipped;
            let mut stamped = Vec::with_capacity(data.data.len());
            for batch in data.data.iter().filter(|b| b.num_rows() > 0) {
                rows += batch.num_rows() as u64;
                stamped.push(stamp_batch_time(batch, schema, time).map_err(|source| {
                    ExecError::Arrow {
                        query: self.name.to_string(),
                        source,
                    }
                })?);
            }
            polled.insert(stream.clone(), stamped);
        }
        Ok((polled, rows, skipped))
    }

    /// Fills the plan's tables with batch `time` and runs the plan when the
    /// query has a result for this batch (always, or when a window closes).
    async fn step(
        &mut self,
        batch_id: u64,
        time: i64,
        mut polled: BTreeMap<String, Vec<RecordBatch>>,
    ) -> Result<Option<QueryResult>, ExecError> {
        let closed = self
            .plan
            .window
            .and_then(|spec| spec.closed_by(time, self.interval_ms));
        let mut buffers = self.buffers.iter_mut();
        for input in &self.plan.inputs {
            let data = polled
                .get_mut(&input.stream)
                .map(std::mem::take)
                .unwrap_or_default();
            if !input.windowed {
                input.table.set(data);
                continue;
            }
            let Some(buffer) = buffers.next() else {
                continue;
            };
            buffer.push(time, data);
            if let Some(window) = closed {
                let rows = buffer.take_window(window.0, window.1);
                let rows =
                    stamp_window(&rows, input.table.schema_ref(), window).map_err(|source| {
                        ExecError::Arrow {
                            query: self.name.to_string(),
                            source,
                        }
                    })?;
                input.table.set(rows);
            }
        }
        if self.plan.window.is_some() && closed.is_none() {
            return Ok(None);
        }
        let rows = self
            .plan
            .execute()
            .await
            .map_err(|source| ExecError::Execute {
                query: self.name.to_string(),
                batch_id,
                source,
            })?;
        for input in &self.plan.inputs {
            input.table.set(Vec::new());
        }
        Ok(Some(QueryResult {
            query: self.name.clone(),
            batch_id,
            batch_time_ms: time,
            window: closed,
            schema: self.plan.schema.clone(),
            rows,
            progress: Progress::default(),
        }))
    }

    /// At the end of bounded input, runs empty batches until every window
    /// that holds rows has closed, as if time went on (Spark's availableNow,
    /// Flink's end-of-input).
    async fn close_open_windows(
        &mut self,
        mut batch_id: u64,
        mut time: i64,
        tx: &mpsc::Sender<QueryResult>,
        summary: &mut QuerySummary,
    ) -> Result<(), ExecError> {
        let Some(spec) = self.plan.window else {
            return Ok(());
        };
        let max_batches = spec.size_ms / self.interval_ms + 1;
        for _ in 0..max_batches {
            if !self.buffers.iter().any(WindowBuffer::has_rows) {
                break;
            }
            let empty = self
                .sources
                .keys()
                .map(|s| (s.clone(), Vec::new()))
                .collect();
            summary.batches += 1;
            if let Some(result) = self.step(batch_id, time, empty).await? {
                summary.output_rows += result.num_rows() as u64;
                if tx.send(result).await.is_err() {
                    break;
                }
            }
            batch_id += 1;
            time += self.interval_ms;
        }
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.buffers.iter().map(WindowBuffer::rows).sum()
    }
}
