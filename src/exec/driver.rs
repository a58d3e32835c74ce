//! The batch loop of one continuous query: a tokio task that ticks once per
//! batch interval, pulls every source of the query (on tokio's blocking
//! pool: sources may block) into one [`Batch`] per stream, hands the batches
//! to the query's operator, moves the watermark — the batch's end for
//! processing time, the streams' `WATERMARK` for event time — hands the
//! watermark to the operator, and sends the results, then the batch's end
//! ([`BatchEnd`]: its id and source ranges, where a sink commits), and
//! progress to whoever consumes the query. At the end of bounded input it
//! closes the windows still open. Stopping is explicit: `stop()` lets the
//! current batch (its polls included) finish and its results be delivered.
//! Once the consumer has moved past a batch's end (its sink committed it),
//! the sources commit the batch's ranges (`Source::commit`: a Kafka source
//! commits its group offsets), before the next batch is polled.
//!
//! source → `Batch` → **driver** → operator → DataFusion → results → sink.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::{mpsc, watch};

use super::event_time::max_time;
use super::late::LateRouter;
use super::operator::{Cx, Operator, Watermark, fill_streams};
use super::{Clock, ExecError};
use crate::batch::{Batch, InputMark, StreamOffsets};
use crate::report::{
    BatchEnd, DriverPhases, Progress, QueryEvent, QueryProgress, QueryResult, QuerySummary,
    RunLimits, StreamLag, late_outcome,
};
use crate::source::Source;
use crate::sql::{StreamingPlan, TimeDomain};
use crate::window::{PartitionedRows, StreamWatermark, combine};

mod checkpointing;
mod closing;
mod sources;
mod state;

/// Each source with its stream name and stamped schema, in `plan.streams` order.
pub(super) type Sources = Vec<(String, SchemaRef, Box<dyn Source>)>;
/// One batch per stream, in `plan.streams` order.
type Polled = Vec<Batch>;

/// The query's watermark and what it is computed from.
pub(super) struct Watermarks {
    /// Per watermark stream (in `plan.watermarks` order), its partitions' watermarks.
    trackers: Vec<StreamWatermark>,
    /// The query's watermark and allowed lateness.
    current: Watermark,
    /// Time of the first batch.
    started_ms: Option<i64>,
    /// The stream partition holding the watermark back after the last batch.
    held_by: Option<String>,
}

impl Watermarks {
    /// No watermark yet, for `plan`'s watermark streams.
    pub(super) fn new(plan: &StreamingPlan) -> Self {
        Self {
            trackers: plan
                .watermarks
                .iter()
                .map(|w| StreamWatermark::new(&w.def))
                .collect(),
            current: Watermark {
                at: None,
                allowed_lateness_ms: plan
                    .watermarks
                    .iter()
                    .map(|w| w.def.allowed_lateness.as_millis() as i64)
                    .max()
                    .unwrap_or(0),
            },
            started_ms: None,
            held_by: None,
        }
    }
}

/// The running query: its plan, sources, operator and watermark.
pub(super) struct Driver<O> {
    pub(super) name: Arc<str>,
    pub(super) plan: StreamingPlan,
    pub(super) sources: Sources,
    pub(super) operator: O,
    pub(super) watermarks: Watermarks,
    pub(super) late: LateRouter,
    /// Hubs of the `<stream>_late` streams this query reads.
    pub(super) late_inputs: Vec<Arc<crate::source::late::LateHub>>,
    pub(super) interval_ms: i64,
    pub(super) clock: Clock,
    pub(super) limits: RunLimits,
    pub(super) progress: watch::Sender<QueryProgress>,
    /// Batch times and source positions so far (see [`InputMark`]).
    pub(super) input: InputMark,
    /// The id of the last batch end the consumer has taken and moved past
    /// (see `QueryHandle::next_event`): its sink committed it.
    pub(super) handed_out: watch::Receiver<Option<u64>>,
    /// The last batch sent whose ranges the sources have not committed yet.
    pub(super) uncommitted: Option<(u64, Vec<StreamOffsets>)>,
    /// The state snapshot being written on the blocking pool, if any (see
    /// `Driver::save_state`).
    pub(super) state_write:
        Option<tokio::task::JoinHandle<Result<(), crate::checkpoint::CheckpointError>>>,
    /// How long the sources took to commit the last batch's ranges (see
    /// `DriverPhases::source_commit`).
    pub(super) source_commit: std::time::Duration,
    /// Where the query checkpoints (`--checkpoint`), if it does.
    pub(super) checkpoint: Option<Arc<crate::checkpoint::QueryCheckpoint>>,
    /// The last batch whose end was sent (a checkpointed query waits for
    /// its commit before the next batch).
    pub(super) last_sent: Option<u64>,
}

/// What one batch produced.
struct Step {
    results: Vec<QueryResult>,
    late_rows: u64,
}

impl<O: Operator> Driver<O> {
    /// Runs the query's batches until its input ends, a limit is reached or
    /// it is stopped; the last state snapshot is on disk before it returns.
    pub(super) async fn run(
        mut self,
        tx: mpsc::Sender<QueryEvent>,
        stop: watch::Receiver<bool>,
    ) -> Result<QuerySummary, ExecError> {
        let summary = self.run_batches(tx, stop).await?;
        self.state_written().await?;
        Ok(summary)
    }

    async fn run_batches(
        &mut self,
        tx: mpsc::Sender<QueryEvent>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<QuerySummary, ExecError> {
        let mut summary = QuerySummary::default();
        let mut time = self.clock.first_batch_time(self.interval_ms);
        let mut batch_id = 0;
        let mut previous_start: Option<Instant> = None;
        if let Some(resumed) = self.resume(&tx, &mut summary).await? {
            (batch_id, time) = (resumed.batch_id, resumed.time);
            if resumed.closing {
                self.close_open_windows(batch_id, time, &tx, &stop, &mut summary)
                    .await?;
                self.commit_handed_out().await?;
                return Ok(summary);
            }
        }
        'batches: while !*stop.borrow() {
            if !self.commit_handed_out().await? {
                break;
            }
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
            if let (Some(ck), Some(sent)) = (&self.checkpoint, self.last_sent) {
                tokio::select! {
                    _ = ck.committed(sent) => {}
                    _ = stop.changed() => break,
                    _ = tx.closed() => break,
                }
            }
            let since_previous = previous_start.map(|p| started.duration_since(p));
            previous_start = Some(started);
            let before = self.positions()?;
            let polled = self.poll(batch_id, time).await?;
            let polled_at = Instant::now();
            self.log_offsets(batch_id, time, &polled, before, false)?;
            let logged_at = Instant::now();
            let input_rows: u64 = polled.iter().map(|b| b.num_rows() as u64).sum();
            let skipped: u64 = polled.iter().map(|b| b.skipped).sum();
            let stream_rows = (self.sources.iter().zip(&polled))
                .map(|((stream, _, _), b)| (stream.clone(), b.num_rows() as u64))
                .collect();
            let offsets = self.stream_offsets(&polled);
            let lag = self.stream_lag(&polled);
            self.input = self.input.next(time, &offsets);
            let step = self.step(batch_id, time, polled, &offsets, false).await?;
            let ran_at = Instant::now();
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
            let watermark = self.watermarks.current.at;
            let mut progress = Progress {
                input_rows,
                skipped,
                duration: started.elapsed(),
                delay_ms,
                state_rows: self.operator.state_rows(),
                state_bytes: self.operator.state_bytes(),
                watermark_ms: watermark,
                watermark_held_by: self.watermarks.held_by.clone(),
                late_rows: step.late_rows,
                late_routed,
                offsets: offsets.clone(),
                lag,
                phases: DriverPhases {
                    poll: polled_at - started,
                    checkpoint: logged_at - polled_at,
                    query: ran_at - logged_at,
                    source_commit: std::mem::take(&mut self.source_commit),
                },
                started: Some(started),
                since_previous,
                stream_rows,
            };
            summary.peak_state_rows = summary.peak_state_rows.max(progress.state_rows);
            summary.peak_state_bytes = summary.peak_state_bytes.max(progress.state_bytes);
            tracing::debug!(target: "quiver::progress", query = %self.name, batch = batch_id, input_rows, results = step.results.len(), duration_ms = started.elapsed().as_secs_f64() * 1e3, delay_ms, watermark = ?watermark, late_rows = step.late_rows, state_rows = progress.state_rows);
            summary.output_rows += step
                .results
                .iter()
                .map(|r| r.num_rows() as u64)
                .sum::<u64>();
            let saving = Instant::now();
            self.save_state(batch_id, time + self.interval_ms, false, &summary)
                .await?;
            progress.phases.checkpoint = match self.checkpoint {
                Some(_) => progress.phases.checkpoint + saving.elapsed(),
                // Nothing was written: a phase of 0, not the time of a no-op.
                None => std::time::Duration::ZERO,
            };
            self.progress.send_replace(QueryProgress {
                summary: summary.clone(),
                batch_id: Some(batch_id),
                last: progress.clone(),
            });
            // Progress is attached to the batch's first result; the others
            // carry none so that totals add up.
            let results = step.results.len();
            for (i, mut result) in step.results.into_iter().enumerate() {
                if i == 0 {
                    result.progress = progress.clone();
                } else {
                    result.progress.watermark_ms = progress.watermark_ms;
                }
                if tx.send(QueryEvent::Result(result)).await.is_err() {
                    break 'batches;
                }
            }
            self.uncommitted = Some((batch_id, offsets.clone()));
            let end = self.batch_end(batch_id, time, results, offsets, Some(progress));
            if tx.send(end).await.is_err() {
                break;
            }
            self.last_sent = Some(batch_id);
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
        self.commit_handed_out().await?;
        Ok(summary)
    }

    /// The ranges `batches` (in `plan.streams` order) read, per stream.
    fn stream_offsets(&self, batches: &[Batch]) -> Vec<StreamOffsets> {
        self.sources
            .iter()
            .zip(batches)
            .map(|((stream, _, _), batch)| StreamOffsets {
                stream: stream.clone(),
                ranges: batch.offsets.clone(),
            })
            .collect()
    }

    /// The lag after `batches`, for the streams whose source reports it.
    fn stream_lag(&self, batches: &[Batch]) -> Vec<StreamLag> {
        self.sources
            .iter()
            .zip(batches)
            .filter_map(|((stream, _, _), batch)| {
                let lag = batch.lag.as_ref()?;
                Some(StreamLag {
                    stream: stream.clone(),
                    partitions: (batch.offsets.iter())
                        .zip(lag)
                        .map(|(range, n)| (range.partition.clone(), *n))
                        .collect(),
                })
            })
            .collect()
    }

    /// Per stream, `polled`'s rows by source partition when the query runs
    /// on event time and the stream has several partitions (for
    /// per-partition watermarks).
    fn partitioned(&self, polled: &[Batch]) -> Vec<Option<PartitionedRows>> {
        let event_time = self.plan.time == Some(TimeDomain::Event);
        self.sources
            .iter()
            .zip(polled)
            .map(|((_, _, source), batch)| {
                let count = source.partition_count();
                let split = count > 1 || batch.partitions.iter().any(|p| *p != 0);
                (event_time && split).then(|| PartitionedRows {
                    partitions: count,
                    unowned: (0..count).filter(|p| !source.owns_partition(*p)).collect(),
                    batches: (batch.partitions.iter().copied())
                        .zip(batch.data.iter().cloned())
                        .collect(),
                })
            })
            .collect()
    }

    /// The end of batch `batch_id`, sent after its `results` results.
    fn batch_end(
        &self,
        batch_id: u64,
        time: i64,
        results: usize,
        offsets: Vec<StreamOffsets>,
        progress: Option<Progress>,
    ) -> QueryEvent {
        QueryEvent::BatchEnd(BatchEnd {
            query: self.name.clone(),
            batch_id,
            batch_time_ms: time,
            results,
            offsets,
            input: self.input.clone(),
            progress,
        })
    }

    /// Runs batch `time`: routes late rows (over the stream tables, filled
    /// with `polled` for it), hands the batches to the operator, moves the
    /// watermark and hands it to the operator. `offsets` are what the
    /// batches read, for the results. `end_of_input` closes every
    /// event-time window.
    async fn step(
        &mut self,
        batch_id: u64,
        time: i64,
        polled: Polled,
        offsets: &[StreamOffsets],
        end_of_input: bool,
    ) -> Result<Step, ExecError> {
        self.plan.proctime.set(time);
        let cutoff = self.watermarks.current.cutoff();
        let routed = {
            let _streams = fill_streams(&self.plan, &polled);
            self.late
                .route(&self.plan, &self.name, batch_id, time, cutoff)
                .await?
        };
        let cx = Cx {
            plan: &self.plan,
            query: &self.name,
            batch_id,
        };
        let fed = self
            .operator
            .process_batch(&cx, &polled, self.watermarks.current)
            .await;
        let watermarked = self.operator.watermarked();
        let advanced = match fed {
            Ok(_) if watermarked => {
                self.advance_watermark(batch_id, time, &polled, end_of_input)
                    .await
            }
            _ => Ok(()),
        };
        let (mut emitted, late_rows) = fed?;
        advanced?;
        let cx = Cx {
            plan: &self.plan,
            query: &self.name,
            batch_id,
        };
        let closed = self
            .operator
            .handle_watermark(&cx, self.watermarks.current)
            .await?;
        emitted.extend(closed);
        let results = emitted
            .into_iter()
            .map(|e| QueryResult {
                query: self.name.clone(),
                batch_id,
                batch_time_ms: time,
                window: e.window,
                schema: self.plan.schema.clone(),
                rows: e.rows,
                progress: Progress::default(),
                input: self.input.clone(),
                offsets: offsets.to_vec(),
            })
            .collect();
        Ok(Step {
            results,
            late_rows: if watermarked {
                routed.unwrap_or(late_rows)
            } else {
                0
            },
        })
    }

    /// Moves the query's watermark after `polled`: to the batch's end for
    /// processing time; for event time to the minimum over its active
    /// streams' watermarks (each the minimum over its active partitions;
    /// never backwards; run over the stream tables, filled with `polled`
    /// for it), or past every window at the end of the input.
    async fn advance_watermark(
        &mut self,
        batch_id: u64,
        time: i64,
        polled: &[Batch],
        end_of_input: bool,
    ) -> Result<(), ExecError> {
        let started = *self.watermarks.started_ms.get_or_insert(time);
        let _streams = fill_streams(&self.plan, polled);
        let partitioned = self.partitioned(polled);
        self.watermarks.held_by = None;
        let next = match self.plan.time {
            Some(TimeDomain::Processing) | None => Some(time + self.interval_ms),
            Some(TimeDomain::Event) if end_of_input => Some(i64::MAX),
            Some(TimeDomain::Event) => {
                for (plan, tracker) in self
                    .plan
                    .watermarks
                    .iter()
                    .zip(&mut self.watermarks.trackers)
                {
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
                    tracker.set_unowned(&split.unowned, time);
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
                let combined = combine(&self.watermarks.trackers, time, started);
                let trackers = &self.watermarks.trackers;
                let held_by = combined.held_by.and_then(|(s, p)| {
                    let stream = &self.plan.watermarks.get(s)?.stream;
                    if trackers[s].partitions() < 2 {
                        return None;
                    }
                    let (_, _, source) = self.sources.iter().find(|(n, _, _)| n == stream)?;
                    Some(format!("{stream} partition {}", source.partition_name(p)))
                });
                self.watermarks.held_by = held_by;
                combined.watermark
            }
        };
        if let Some(next) = next {
            let at = &mut self.watermarks.current.at;
            *at = Some(at.map_or(next, |w| w.max(next)));
        }
        Ok(())
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
