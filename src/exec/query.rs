//! The life of one continuous query: a tokio task that ticks once per batch
//! interval, pulls every source of the query, fills the plan's tables, runs
//! the plan and sends the results to whoever consumes the query. A query
//! without windows runs once per batch. A windowed query feeds each batch's
//! rows into window state (panes), advances its watermark — the batch's end
//! for processing time, the streams' `WATERMARK` for event time — and runs
//! once per window the watermark closed. Stopping is explicit: `stop()` lets
//! the current batch finish and its results be delivered, then the task ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::late::{LatePublisher, LateRouter};
use super::window_state::{WindowState, event_times, max_time, on_time_rows};
use super::{Clock, ExecError};
use crate::batch::{InputMark, stamp_batch_time, with_batch_time};
use crate::source::{self, PollContext, Source};
use crate::sql::{KeptInput, StreamingPlan, TimeDomain};
use crate::window::{PaneBuffer, PartitionedRows, combine, stamp_window};

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
    let state = WindowState::new(&plan);
    let (late, publishers) =
        LateRouter::new(&plan, clock.first_batch_time(interval_ms), interval_ms);
    let late_inputs = LateRouter::read_hubs(&plan);
    let (tx, results) = mpsc::channel(1);
    let (stop, stop_rx) = watch::channel(false);
    let (progress_tx, progress) = watch::channel(QueryProgress::default());
    let schema = plan.schema.clone();
    let runner = Runner {
        name: Arc::from(name.as_str()),
        plan,
        sources,
        partitioned: Vec::new(),
        held_by: None,
        state,
        late,
        late_inputs,
        interval_ms,
        clock,
        limits,
        progress: progress_tx,
        input: InputMark::default(),
    };
    let task = tokio::spawn(runner.run(tx, stop_rx));
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

/// A complete pane's partials are merged into one batch when they came in
/// more batches than this; below it a merge costs more than it saves (a
/// plan run, against merging a few small batches at window close).
const COMPACT_ABOVE_BATCHES: usize = 3;

/// Each source with its stream name and stamped schema, in `plan.streams` order.
type Sources = Vec<(String, SchemaRef, Box<dyn Source>)>;
/// One batch's rows per stream, in `plan.streams` order.
type Polled = Vec<Vec<RecordBatch>>;

struct Runner {
    name: Arc<str>,
    plan: StreamingPlan,
    sources: Sources,
    /// Per stream, the last polled rows by source partition, when the
    /// stream has several (for per-partition watermarks); taken by
    /// `advance_watermark`.
    partitioned: Vec<Option<PartitionedRows>>,
    /// The stream partition holding the watermark back after the last batch.
    held_by: Option<String>,
    state: WindowState,
    late: LateRouter,
    /// Hubs of the `<stream>_late` streams this query reads.
    late_inputs: Vec<Arc<super::LateHub>>,
    interval_ms: i64,
    clock: Clock,
    limits: RunLimits,
    progress: watch::Sender<QueryProgress>,
    /// Batch times and source positions so far (see [`InputMark`]).
    input: InputMark,
}

/// What one batch produced.
struct Step {
    results: Vec<QueryResult>,
    late_rows: u64,
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
        'batches: while !*stop.borrow() {
            tokio::select! {
                _ = self.clock.wait_for(time) => {}
                _ = stop.changed() => break,
            }
            // A late stream's batch holds what its publishers found before it.
            for hub in &self.late_inputs {
                tokio::select! {
                    _ = hub.wait_published_before(time) => {}
                    _ = stop.changed() => break 'batches,
                }
            }
            let started = Instant::now();
            let delay_ms = self.clock.delay_ms(time);
            let (polled, input_rows, skipped) = self.poll(time)?;
            let step = self.step(batch_id, time, polled, false).await?;
            summary.batches += 1;
            summary.input_rows += input_rows;
            summary.skipped += skipped;
            if skipped > 0 {
                tracing::warn!(
                    "{}: batch {batch_id}: skipped {skipped} malformed records (on_error = 'skip')",
                    self.name
                );
            }
            summary.late_rows += step.late_rows;
            summary.latency.record(started.elapsed());
            let late_routed = self.late.routed();
            summary.late_routed += late_routed.iter().map(|(_, n)| n).sum::<u64>();
            if step.late_rows > 0 {
                tracing::warn!(
                    "{}: batch {batch_id}: {} (behind the watermark)",
                    self.name,
                    late_outcome(step.late_rows, &late_routed, true)
                );
            }
            let progress = Progress {
                input_rows,
                skipped,
                duration: started.elapsed(),
                delay_ms,
                state_rows: self.state.rows(),
                state_bytes: self.state.bytes(),
                watermark_ms: self.state.watermark,
                watermark_held_by: self.held_by.clone(),
                late_rows: step.late_rows,
                late_routed,
            };
            summary.peak_state_rows = summary.peak_state_rows.max(progress.state_rows);
            summary.peak_state_bytes = summary.peak_state_bytes.max(progress.state_bytes);
            tracing::debug!(target: "quiver::progress", query = %self.name, batch = batch_id, input_rows, results = step.results.len(), duration_ms = started.elapsed().as_secs_f64() * 1e3, delay_ms, watermark = ?self.state.watermark, late_rows = step.late_rows, state_rows = progress.state_rows);
            summary.output_rows += step
                .results
                .iter()
                .map(|r| r.num_rows() as u64)
                .sum::<u64>();
            if self.limits.report_progress {
                eprintln!(
                    "{}",
                    progress_line(&self.name, batch_id, &progress, step.results.len())
                );
            }
            self.progress.send_replace(QueryProgress {
                summary: summary.clone(),
                batch_id: Some(batch_id),
                last: progress.clone(),
            });
            // Progress is attached to the batch's first result; the others
            // carry none so that totals add up.
            for (i, mut result) in step.results.into_iter().enumerate() {
                if i == 0 {
                    result.progress = progress.clone();
                } else {
                    result.progress.watermark_ms = progress.watermark_ms;
                }
                if tx.send(result).await.is_err() {
                    break 'batches;
                }
            }
            batch_id += 1;
            time += self.interval_ms;
            if self.limits.max_batches.is_some_and(|max| batch_id >= max) {
                break;
            }
            if self.limits.until_idle && self.sources.iter().all(|(_, _, s)| s.is_drained()) {
                self.close_open_windows(batch_id, time, &tx, &stop, &mut summary)
                    .await?;
                break;
            }
        }
        Ok(summary)
    }

    /// Pulls every source for the batch at `time`; stamps `_batch_time`.
    fn poll(&mut self, time: i64) -> Result<(Polled, u64, u64), ExecError> {
        let ctx = PollContext {
            batch_time_ms: time,
            interval_ms: self.interval_ms,
        };
        let (mut polled, mut rows, mut skipped) = (Vec::new(), 0, 0);
        let mut offsets = Vec::new();
        let event_time = self.plan.time == Some(TimeDomain::Event);
        self.partitioned.clear();
        for (stream, schema, source) in &mut self.sources {
            let data = source
                .poll_batch(&ctx)
                .map_err(|source| ExecError::Source {
                    query: self.name.to_string(),
                    stream: stream.clone(),
                    source,
                })?;
            skipped += data.skipped;
            offsets.extend(data.offsets.iter().map(|o| (stream.clone(), o.clone())));
            let mut stamped = Vec::with_capacity(data.data.len());
            let mut partitions = Vec::new();
            for (i, batch) in data
                .data
                .iter()
                .enumerate()
                .filter(|(_, b)| b.num_rows() > 0)
            {
                rows += batch.num_rows() as u64;
                stamped.push(stamp_batch_time(batch, schema, time).map_err(|source| {
                    ExecError::Arrow {
                        query: self.name.to_string(),
                        source,
                    }
                })?);
                partitions.push(data.partition_of(i));
            }
            let count = source.partition_count();
            self.partitioned.push(
                (event_time && (count > 1 || partitions.iter().any(|p| *p != 0))).then(|| {
                    PartitionedRows {
                        partitions: count,
                        batches: partitions
                            .into_iter()
                            .zip(stamped.iter().cloned())
                            .collect(),
                    }
                }),
            );
            polled.push(stamped);
        }
        let offsets: Vec<(&str, &_)> = offsets.iter().map(|(s, o)| (s.as_str(), o)).collect();
        self.input = self.input.next(time, &offsets);
        Ok((polled, rows, skipped))
    }

    fn arrow(&self, source: ArrowError) -> ExecError {
        ExecError::Arrow {
            query: self.name.to_string(),
            source,
        }
    }

    fn execute_error(&self, batch_id: u64, source: DataFusionError) -> ExecError {
        ExecError::Execute {
            query: self.name.to_string(),
            batch_id,
            source,
        }
    }

    /// Runs batch `time`: fills the per-batch tables, then either runs the
    /// query once, or feeds window state and runs the query once per window
    /// that closes. `end_of_input` closes every event-time window.
    async fn step(
        &mut self,
        batch_id: u64,
        time: i64,
        polled: Polled,
        end_of_input: bool,
    ) -> Result<Step, ExecError> {
        self.plan.proctime.set(time);
        for ((_, table), data) in self.plan.streams.iter().zip(polled) {
            table.set(data);
        }
        let routed = self.route_late(batch_id, time).await?;
        let name = self.name.clone();
        let output = self.plan.schema.clone();
        let input = self.input.clone();
        let result = move |window, rows| QueryResult {
            query: name.clone(),
            batch_id,
            batch_time_ms: time,
            window,
            schema: output.clone(),
            rows,
            progress: Progress::default(),
            input: input.clone(),
        };
        if self.plan.session.is_some() {
            let late_rows = self.feed_session(batch_id).await?;
            self.advance_watermark(batch_id, time, end_of_input).await?;
            self.clear_batch_tables();
            let results = match self.close_sessions(batch_id).await? {
                Some(rows) => vec![result(None, rows)],
                None => Vec::new(),
            };
            return Ok(Step {
                results,
                late_rows: routed.unwrap_or(late_rows),
            });
        }
        let Some(spec) = self.plan.window else {
            let rows = self
                .plan
                .execute()
                .await
                .map_err(|e| self.execute_error(batch_id, e))?;
            self.clear_batch_tables();
            return Ok(Step {
                results: vec![result(None, rows)],
                late_rows: 0,
            });
        };
        let late_rows = self.feed_windows(batch_id).await?;
        self.advance_watermark(batch_id, time, end_of_input).await?;
        self.clear_batch_tables();
        let watermark = self.state.watermark;
        let lateness = self.state.allowed_lateness_ms;
        // Windows that hold rows and whose end (plus lateness) the watermark passed.
        let mut closing = BTreeSet::new();
        let closed_until = self.state.closed_until;
        if let Some(watermark) = watermark {
            for panes in self.state.windows.iter().chain(&self.state.partials) {
                // Only the windows due now, not every window holding the
                // pane (a 30-day window sliding by 1 s has 2.6M).
                let after = closed_until.map_or(i64::MIN, |c| c.saturating_sub(lateness));
                for pane in panes.pane_starts() {
                    let mut next = spec.next_end_after(pane, after);
                    while let Some(end) = next.filter(|e| e.saturating_add(lateness) <= watermark) {
                        closing.insert((end, end - spec.size_ms));
                        next = spec.next_end_after(pane, end);
                    }
                }
            }
        }
        let mut results = Vec::new();
        for (end, start) in closing {
            for (input, panes) in self.plan.windows.iter().zip(&self.state.windows) {
                if !input.keeps_rows {
                    continue;
                }
                let rows = stamp_window(
                    &panes.rows_between(start, end),
                    input.table.schema_ref(),
                    (start, end),
                )
                .map_err(|e| self.arrow(e))?;
                input.table.set(rows);
            }
            for (input, panes) in self.plan.kept.iter().zip(&self.state.kept) {
                input.table.set(panes.all_rows());
            }
            for (partial, panes) in self.plan.partials.iter().zip(&self.state.partials) {
                let rows = stamp_window(
                    &panes.rows_between(start, end),
                    partial.table.schema_ref(),
                    (start, end),
                )
                .map_err(|e| self.arrow(e))?;
                partial.table.set(rows);
            }
            let rows = self
                .plan
                .execute()
                .await
                .map_err(|e| self.execute_error(batch_id, e))?;
            results.push(result(Some((start, end)), rows));
        }
        for input in self.plan.windows.iter().chain(&self.plan.kept) {
            input.table.set(Vec::new());
        }
        for partial in &self.plan.partials {
            partial.table.set(Vec::new());
        }
        if let Some(watermark) = watermark {
            self.state.closed_until = Some(watermark);
            let keep_from = if watermark == i64::MAX {
                i64::MAX
            } else {
                spec.first_open_start(watermark - lateness)
            };
            let state = &mut self.state;
            let buffers = state.windows.iter_mut().chain(&mut state.kept);
            for panes in buffers.chain(&mut state.partials) {
                panes.evict_before(keep_from);
            }
        }
        // After eviction: only panes open windows still need are merged.
        self.compact_partials(batch_id).await?;
        Ok(Step {
            results,
            late_rows: routed.unwrap_or(late_rows),
        })
    }

    /// Under `late_policy = 'side'`: finds the batch's late rows once per
    /// stream row and routes them. `None` otherwise (then `feed_windows`
    /// counts late rows once per relation).
    async fn route_late(&mut self, batch_id: u64, time: i64) -> Result<Option<u64>, ExecError> {
        let watermark = self
            .state
            .watermark
            .map(|w| w.saturating_sub(self.state.allowed_lateness_ms));
        self.late
            .route(&self.plan, &self.name, batch_id, time, watermark)
            .await
    }

    fn clear_batch_tables(&self) {
        for (_, table) in &self.plan.streams {
            table.set(Vec::new());
        }
    }

    /// Runs each window input's (and kept input's) feeder over the batch and
    /// adds its rows to the panes; rows behind the watermark, or without a
    /// time, are late: counted and dropped. Returns the late count: inputs
    /// over the same relation see the same rows, so each relation counts once.
    async fn feed_windows(&mut self, batch_id: u64) -> Result<u64, ExecError> {
        let watermark = match self.plan.time {
            Some(TimeDomain::Event) => self
                .state
                .watermark
                .map(|w| w.saturating_sub(self.state.allowed_lateness_ms)),
            _ => None,
        };
        let mut late_by_relation: BTreeMap<String, u64> = BTreeMap::new();
        let inputs: Vec<(bool, usize)> = (0..self.plan.windows.len())
            .map(|i| (true, i))
            .chain((0..self.plan.kept.len()).map(|i| (false, i)))
            .collect();
        for (windowed, i) in inputs {
            let input: &KeptInput = if windowed {
                &self.plan.windows[i]
            } else {
                &self.plan.kept[i]
            };
            let batches = self
                .plan
                .run(&input.feeder)
                .await
                .map_err(|e| self.execute_error(batch_id, e))?;
            let keeps_rows = input.keeps_rows;
            let incremental = windowed && self.plan.partials.iter().any(|p| p.window == i);
            let mut new_rows = PaneBuffer::new(self.plan.window.map_or(1, |w| w.pane_ms()));
            let mut late = 0;
            let relation = input.relation.clone();
            for batch in batches {
                let (rows, times, dropped) =
                    on_time_rows(&batch, input.time_index, watermark).map_err(|e| self.arrow(e))?;
                late += dropped;
                let panes = if !keeps_rows {
                    &mut new_rows
                } else if windowed {
                    &mut self.state.windows[i]
                } else {
                    &mut self.state.kept[i]
                };
                panes.insert(&rows, &times).map_err(|e| self.arrow(e))?;
                if keeps_rows && incremental {
                    new_rows.insert(&rows, &times).map_err(|e| self.arrow(e))?;
                }
            }
            if incremental {
                self.feed_partials(batch_id, i, &new_rows).await?;
            }
            let counted = late_by_relation.entry(relation).or_default();
            *counted = (*counted).max(late);
        }
        Ok(late_by_relation.values().sum())
    }

    /// Merges the partials of each pane no more rows can arrive for (it ends
    /// at or before the watermark minus the allowed lateness) into one batch,
    /// when they came in more than [`COMPACT_ABOVE_BATCHES`] batches: a long
    /// window's panes then hold one partial row per group, not one per group
    /// and batch.
    async fn compact_partials(&mut self, batch_id: u64) -> Result<(), ExecError> {
        let Some(watermark) = self.state.watermark else {
            return Ok(());
        };
        let complete_until = watermark.saturating_sub(self.state.allowed_lateness_ms);
        for (j, partial) in self.plan.partials.iter().enumerate() {
            let pane_ms = self.state.partials[j].pane_ms();
            let fragmented =
                self.state.partials[j].fragmented_before(complete_until, COMPACT_ABOVE_BATCHES);
            for pane in fragmented {
                let end = pane + pane_ms;
                let rows = stamp_window(
                    self.state.partials[j].pane_batches(pane),
                    partial.table.schema_ref(),
                    (pane, end),
                )
                .map_err(|e| self.arrow(e))?;
                partial.table.set(rows);
                let merged = self.plan.run(&partial.compact).await;
                partial.table.set(Vec::new());
                let merged = merged.map_err(|e| self.execute_error(batch_id, e))?;
                self.state.partials[j].replace_pane(pane, merged);
            }
        }
        Ok(())
    }

    /// Runs the partial aggregates over window input `window` once per pane
    /// of the batch's new rows (each run sees one pane's rows, stamped with
    /// the pane's bounds) and adds the partials to their panes.
    async fn feed_partials(
        &mut self,
        batch_id: u64,
        window: usize,
        new_rows: &PaneBuffer,
    ) -> Result<(), ExecError> {
        let input = &self.plan.windows[window];
        let pane_ms = new_rows.pane_ms();
        for pane in new_rows.pane_starts() {
            let end = pane + pane_ms;
            let rows = stamp_window(
                &new_rows.rows_between(pane, end),
                input.table.schema_ref(),
                (pane, end),
            )
            .map_err(|e| self.arrow(e))?;
            input.table.set(rows);
            for (j, partial) in self.plan.partials.iter().enumerate() {
                if partial.window != window {
                    continue;
                }
                let partials = self.plan.run(&partial.partial).await;
                let partials = partials.map_err(|e| self.execute_error(batch_id, e))?;
                self.state.partials[j].insert_pane(pane, partials);
            }
        }
        input.table.set(Vec::new());
        Ok(())
    }

    /// Adds the batch's on-time rows of the session relation to the open
    /// sessions of their keys; returns the late count.
    async fn feed_session(&mut self, batch_id: u64) -> Result<u64, ExecError> {
        let Some(session) = &self.plan.session else {
            return Ok(0);
        };
        let watermark = self
            .state
            .watermark
            .map(|w| w.saturating_sub(self.state.allowed_lateness_ms));
        let batches = self
            .plan
            .run(&session.input.feeder)
            .await
            .map_err(|e| self.execute_error(batch_id, e))?;
        let mut late = 0;
        let mut on_time = Vec::new();
        for batch in batches {
            let (rows, _, dropped) = on_time_rows(&batch, session.input.time_index, watermark)
                .map_err(|e| self.arrow(e))?;
            late += dropped;
            if rows.num_rows() > 0 {
                on_time.push(rows);
            }
        }
        if on_time.is_empty() {
            return Ok(late);
        }
        // With keys, each batch comes back with the key columns appended.
        let keyed = match &session.keys {
            Some(keys) => {
                session.buffer.set(on_time);
                let keyed = self.plan.run(keys).await;
                session.buffer.set(Vec::new());
                keyed.map_err(|e| self.execute_error(batch_id, e))?
            }
            None => on_time,
        };
        let schema = &session.input.feeder.schema;
        let columns = schema.fields().len();
        for batch in keyed {
            let (row_columns, keys) = batch.columns().split_at(columns.min(batch.num_columns()));
            let rows = RecordBatch::try_new(schema.clone(), row_columns.to_vec())
                .map_err(|e| self.arrow(e))?;
            let times = event_times(&rows, session.input.time_index).map_err(|e| self.arrow(e))?;
            self.state
                .sessions
                .insert(rows, times.values(), keys)
                .map_err(|e| self.arrow(e))?;
        }
        Ok(late)
    }

    /// Runs the query once over the rows of every session whose end the
    /// watermark reached, each row stamped with its session's bounds.
    async fn close_sessions(
        &mut self,
        batch_id: u64,
    ) -> Result<Option<Vec<RecordBatch>>, ExecError> {
        let (Some(session), Some(watermark)) = (&self.plan.session, self.state.watermark) else {
            return Ok(None);
        };
        if self
            .state
            .sessions
            .next_end()
            .is_none_or(|end| watermark < end)
        {
            return Ok(None);
        }
        let closed = self
            .state
            .sessions
            .close(watermark, session.input.table.schema_ref())
            .map_err(|e| self.arrow(e))?;
        let Some(closed) = closed else {
            return Ok(None);
        };
        session.input.table.set(vec![closed]);
        let rows = self.plan.execute().await;
        session.input.table.set(Vec::new());
        rows.map(Some).map_err(|e| self.execute_error(batch_id, e))
    }

    /// Moves the query's watermark: to the batch's end for processing time;
    /// for event time to the minimum over its active streams' watermarks
    /// (each the minimum over its active partitions; never backwards), or
    /// past every window at the end of the input.
    async fn advance_watermark(
        &mut self,
        batch_id: u64,
        time: i64,
        end_of_input: bool,
    ) -> Result<(), ExecError> {
        let started = *self.state.started_ms.get_or_insert(time);
        let partitioned = std::mem::take(&mut self.partitioned);
        self.held_by = None;
        let next = match self.plan.time {
            Some(TimeDomain::Processing) | None => Some(time + self.interval_ms),
            Some(TimeDomain::Event) if end_of_input => Some(i64::MAX),
            Some(TimeDomain::Event) => {
                for (plan, tracker) in self.plan.watermarks.iter().zip(&mut self.state.trackers) {
                    let stream = self
                        .plan
                        .streams
                        .iter()
                        .position(|(def, _)| def.name == plan.stream);
                    let split = stream.and_then(|i| Some((i, partitioned.get(i)?.as_ref()?)));
                    let Some((i, split)) = split else {
                        let max = max_of(&self.plan, &plan.max, &self.name, batch_id).await?;
                        tracker.observe(0, time, max);
                        continue;
                    };
                    // Run the stream's max once per partition, over its rows.
                    tracker.set_partitions(split.partitions, time);
                    let table = &self.plan.streams[i].1;
                    for (p, rows) in split.by_partition().into_iter().enumerate() {
                        if rows.is_empty() {
                            continue;
                        }
                        table.set(rows);
                        let max = max_of(&self.plan, &plan.max, &self.name, batch_id).await;
                        tracker.observe(p as u32, time, max?);
                    }
                    table.set(split.all());
                }
                let combined = combine(&self.state.trackers, time, started);
                self.held_by = combined.held_by.and_then(|(s, p)| {
                    let stream = &self.plan.watermarks.get(s)?.stream;
                    if self.state.trackers[s].partitions() < 2 {
                        return None;
                    }
                    let (_, _, source) = self.sources.iter().find(|(n, _, _)| n == stream)?;
                    Some(format!("{stream} partition {}", source.partition_name(p)))
                });
                combined.watermark
            }
        };
        if let Some(next) = next {
            self.state.watermark = Some(self.state.watermark.map_or(next, |w| w.max(next)));
        }
        Ok(())
    }

    /// At the end of bounded input, closes the windows that still hold rows:
    /// for processing time by running empty batches as if time went on
    /// (Spark's availableNow), for event time by moving the watermark past
    /// every window (Flink's end of input). Only batches at which something
    /// happens run (a window closes, a pane completes): the batch time jumps
    /// over empty intervals, so a 30-day window closes in a few batches. A
    /// stop request is honoured between batches.
    async fn close_open_windows(
        &mut self,
        mut batch_id: u64,
        mut time: i64,
        tx: &mpsc::Sender<QueryResult>,
        stop: &watch::Receiver<bool>,
        summary: &mut QuerySummary,
    ) -> Result<(), ExecError> {
        let event_time = self.plan.time == Some(TimeDomain::Event);
        let max_batches = match self.plan.window {
            _ if event_time => 1,
            Some(spec) => spec.size_ms / self.interval_ms + 1,
            None => return Ok(()),
        };
        for _ in 0..max_batches {
            if *stop.borrow() {
                break;
            }
            let state = &self.state;
            let mut buffers = state.windows.iter().chain(&state.partials);
            if buffers.all(PaneBuffer::is_empty) && state.sessions.is_empty() {
                break;
            }
            let empty = self.sources.iter().map(|_| Vec::new()).collect();
            self.input = self.input.next(time, &[]);
            summary.batches += 1;
            let step = self.step(batch_id, time, empty, event_time).await?;
            summary.output_rows += step
                .results
                .iter()
                .map(|r| r.num_rows() as u64)
                .sum::<u64>();
            self.progress.send_modify(|p| {
                p.summary = summary.clone();
                p.last.watermark_ms = self.state.watermark;
            });
            for mut result in step.results {
                result.progress.watermark_ms = self.state.watermark;
                if tx.send(result).await.is_err() {
                    return Ok(());
                }
            }
            // Skipped intervals keep their ids, as if they had run empty:
            // ids and times stay those of a run stepping through every one.
            let next = self.next_event_time(time);
            batch_id += ((next - time) / self.interval_ms) as u64;
            time = next;
            // Let a stop request (or anything else on this worker) in.
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    /// After the empty batch at `time` at the end of input, the next batch
    /// time at which a processing-time window closes or a pane completes (its
    /// partials can be compacted): the batches between would change nothing.
    fn next_event_time(&self, time: i64) -> i64 {
        let next = time + self.interval_ms;
        let (Some(spec), Some(watermark)) = (self.plan.window, self.state.watermark) else {
            return next;
        };
        if self.plan.time == Some(TimeDomain::Event) {
            return next;
        }
        let lateness = self.state.allowed_lateness_ms;
        let after = watermark.saturating_sub(lateness);
        let state = &self.state;
        let event = state
            .windows
            .iter()
            .chain(&state.partials)
            .flat_map(|panes| {
                let pane_ms = panes.pane_ms();
                panes.pane_starts().flat_map(move |pane| {
                    let pane_end = Some(pane + pane_ms).filter(|end| *end > after);
                    pane_end.into_iter().chain(spec.next_end_after(pane, after))
                })
            })
            .min();
        let Some(event) = event else {
            return next;
        };
        // The batch at `t` moves the watermark to `t + interval`.
        let due = event.saturating_add(lateness) - self.interval_ms;
        let aligned = due.div_euclid(self.interval_ms) * self.interval_ms;
        let aligned = if aligned < due {
            aligned + self.interval_ms
        } else {
            aligned
        };
        next.max(aligned)
    }
}

/// Runs a stream's `SELECT max(<watermark expr>)` over what its table holds.
async fn max_of(
    plan: &StreamingPlan,
    max: &crate::sql::CompiledQuery,
    query: &str,
    batch_id: u64,
) -> Result<Option<i64>, ExecError> {
    let batches = plan.run(max).await.map_err(|source| ExecError::Execute {
        query: query.to_string(),
        batch_id,
        source,
    })?;
    max_time(&batches).map_err(|source| ExecError::Arrow {
        query: query.to_string(),
        source,
    })
}

/// One line of `--progress` output.
fn progress_line(query: &str, batch_id: u64, progress: &Progress, results: usize) -> String {
    let mut line = format!(
        "progress: {query} batch {batch_id}: {} rows in",
        progress.input_rows
    );
    match (progress.watermark_ms, &progress.watermark_held_by) {
        (Some(watermark), held) => {
            line += &format!(", watermark {}", crate::sink::format_time(watermark));
            if let Some(held) = held {
                line += &format!(" (held by {held})");
            }
        }
        (None, Some(held)) => line += &format!(", no watermark yet (held by {held})"),
        (None, None) => {}
    }
    if progress.late_rows > 0 {
        line += ", ";
        line += &late_outcome(progress.late_rows, &progress.late_routed, false);
    }
    line += &format!(", {results} results, state {} rows", progress.state_rows);
    line
}

/// What became of a batch's `late` rows, `routed` of them to late streams:
/// `dropped N late rows, routed N late rows to stream s_late` (warnings) or,
/// not `verb_first`, `N late rows dropped, N late rows routed to stream
/// s_late` (progress lines).
fn late_outcome(late: u64, routed: &[(String, u64)], verb_first: bool) -> String {
    let say = |n: u64, verb: &str, to: &str| {
        if verb_first {
            format!("{verb} {n} late rows{to}")
        } else {
            format!("{n} late rows {verb}{to}")
        }
    };
    let sent: u64 = routed.iter().map(|(_, n)| n).sum();
    let mut parts = Vec::new();
    if late > sent {
        parts.push(say(late - sent, "dropped", ""));
    }
    for (stream, n) in routed.iter().filter(|(_, n)| *n > 0) {
        parts.push(say(*n, "routed", &format!(" to stream {stream}")));
    }
    parts.join(", ")
}
