//! What a running query reports: its results ([`QueryResult`]), the end of
//! each batch ([`BatchEnd`], what a sink commits), each batch's
//! measurements ([`Progress`]), its totals ([`QuerySummary`],
//! [`QueryProgress`]) and the limits it runs under ([`RunLimits`]). The
//! driver produces them; handles, front ends and `SHOW QUERIES` read them.
//! Each batch's consumer completes them into a [`ProgressRecord`] (`record`:
//! phases, rates, offsets, lag), which `metrics` records for Prometheus.
//! This is the bottom layer every other one may use (the sinks read results,
//! the front ends print [`BatchEnd::progress_line`]), so it imports nothing
//! of the engine above [`crate::batch`].
//! Results, batch ends and progress all carry the source ranges the batch
//! read ([`StreamOffsets`], per stream).

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

mod latency;
pub mod metrics;
mod record;
mod summary;
mod text;

pub use latency::LatencyHistogram;
pub use record::{
    BatchRecorder, PartitionProgress, PhaseDurations, ProgressHistory, ProgressRecord,
    RecordTotals, SinkProgress, SourceProgress,
};
pub(crate) use summary::counted;
pub(crate) use text::late_outcome;
pub use text::{format_lag, format_time};

use crate::batch::{InputMark, StreamOffsets};

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
    /// The source ranges the batch read, per stream of the query (empty for
    /// the batches that close windows at the end of input).
    pub offsets: Vec<StreamOffsets>,
    /// How far behind the end of its input each stream is after the batch,
    /// for the streams whose source can tell (Kafka); empty otherwise.
    pub lag: Vec<StreamLag>,
    /// The driver's phases of the batch, measured as they ran.
    pub phases: DriverPhases,
    /// When the batch started (its poll), for the consumer to measure the
    /// whole batch up to its commit ([`BatchRecorder`]).
    pub started: Option<Instant>,
    /// Wall time since the previous batch started, for the input rate;
    /// `None` for a query's first batch.
    pub since_previous: Option<Duration>,
    /// Rows read per stream of the query, in its streams' order.
    pub stream_rows: Vec<(String, u64)>,
}

/// The phases of a batch the driver runs, each measured with two
/// `Instant::now()`; the sink's phases are measured by its consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverPhases {
    /// Pulling (and decoding) every source.
    pub poll: Duration,
    /// Writing the checkpoint's offset log and state.
    pub checkpoint: Duration,
    /// Late-row routing, the operator, the watermark and closing windows.
    pub query: Duration,
    /// The sources' commit of the previous batch's ranges (Kafka: the
    /// consumer group's offsets), which the driver makes once that batch's
    /// sink has committed and before this batch starts: outside this
    /// batch's duration.
    pub source_commit: Duration,
}

/// One stream's lag after a batch: per source partition, the records it
/// still holds beyond what the query has read (Kafka: the partition's end
/// offset − the position). What `--progress`, `SHOW QUERIES` and the REPL
/// status line show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamLag {
    /// The stream's name, as the query reads it.
    pub stream: String,
    /// `(partition, lag)` per source partition, in partition order.
    pub partitions: Vec<(String, u64)>,
}

impl StreamLag {
    /// The lag summed over the partitions.
    pub fn total(&self) -> u64 {
        self.partitions.iter().map(|(_, n)| n).sum()
    }
}

/// The lag of `lags` summed over streams and partitions; `None` when no
/// stream reports lag.
pub fn total_lag(lags: &[StreamLag]) -> Option<u64> {
    (!lags.is_empty()).then(|| lags.iter().map(StreamLag::total).sum())
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
    /// The source ranges the batch that produced the result read, per
    /// stream of the query (empty for the batches that close windows at the
    /// end of input, which read nothing).
    pub offsets: Vec<StreamOffsets>,
}

impl QueryResult {
    /// Number of result rows.
    pub fn num_rows(&self) -> usize {
        self.rows.iter().map(RecordBatch::num_rows).sum()
    }
}

/// The end of a batch: every result it produced has been handed on. A sink
/// gets it at its commit point (`Sink::commit`), after writing those
/// results: "batch `batch_id`, which read `offsets`, is written" — what a
/// checkpoint log records and a Kafka source commits. Every batch has one,
/// also a batch without results.
#[derive(Debug, Clone)]
pub struct BatchEnd {
    /// Name of the query.
    pub query: Arc<str>,
    /// Id of the batch.
    pub batch_id: u64,
    /// Scheduled time of the batch, ms since the epoch.
    pub batch_time_ms: i64,
    /// Number of results the batch produced (before this end).
    pub results: usize,
    /// The source ranges the batch read, per stream of the query.
    pub offsets: Vec<StreamOffsets>,
    /// What the results up to this batch were computed from.
    pub input: InputMark,
    /// The batch's measurements; `None` for the batches that close the
    /// windows still open at the end of bounded input.
    pub progress: Option<Progress>,
}

/// What a running query delivers, in order: each batch's results, then its end.
#[derive(Debug, Clone)]
pub enum QueryEvent {
    /// One result of the current batch.
    Result(QueryResult),
    /// The current batch is complete.
    BatchEnd(BatchEnd),
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
    pub latency: LatencyHistogram,
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
