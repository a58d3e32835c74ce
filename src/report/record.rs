//! One record per batch in the spirit of Spark's `StreamingQueryProgress`
//! ([`ProgressRecord`]): what `--progress-json` writes (one JSON object a
//! line), what `SHOW PROGRESS` shows and what the Prometheus metrics count.
//! The driver measures its phases (poll, checkpoint log, query) into the
//! batch's [`Progress`]; whoever consumes the query (a background query's
//! sink task, a front end printing results) measures the sink's writes and
//! its commit with a [`BatchRecorder`], which completes the record once the
//! batch is committed. Every view reads these records, so they agree.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{BatchEnd, Progress, QueryResult, format_time};

/// How long each phase of a batch took, measured where it ran (not inferred).
/// The phases follow each other within the batch, so their sum is at most
/// `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseDurations {
    /// Pulling every source, on tokio's blocking pool. Includes decoding the
    /// records: sources decode while they read (`Source::poll_batch`
    /// returns decoded rows), so decode is not a phase of its own.
    pub poll_ms: f64,
    /// Writing the checkpoint's offset log and state (`--checkpoint`; 0 without).
    pub checkpoint_ms: f64,
    /// Running the query: late-row routing, the operator (DataFusion), the
    /// watermark and the windows it closes.
    pub query_ms: f64,
    /// The sink's writes of the batch's results (`Sink::write`, or printing).
    pub sink_ms: f64,
    /// The sink's commit of the batch (`Sink::commit`, the checkpoint's commit log).
    pub commit_ms: f64,
    /// The sources' commit of the *previous* batch's ranges (Kafka: the
    /// consumer group's offsets; 0 for sources that commit nothing). It
    /// runs between that batch's sink commit and this batch's poll, so it
    /// is not part of `total_ms` nor of [`PhaseDurations::sum_ms`].
    #[serde(default)]
    pub source_commit_ms: f64,
    /// From the start of the batch (its poll) to the end of its commit.
    pub total_ms: f64,
}

impl PhaseDurations {
    /// The phases of this batch summed: everything but `total_ms` and
    /// `source_commit_ms` (the previous batch's, before this one started).
    pub fn sum_ms(&self) -> f64 {
        self.poll_ms + self.checkpoint_ms + self.query_ms + self.sink_ms + self.commit_ms
    }
}

/// One partition of a source in a batch: the range read and, when the
/// source can tell (Kafka), the records still beyond it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// The source partition (a directory, a topic partition, `0`).
    pub partition: String,
    /// Position before the batch read.
    pub start: String,
    /// Position after the batch read.
    pub end: String,
    /// Records the partition still holds beyond `end` (Kafka), if known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lag: Option<u64>,
}

/// One stream of the query in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceProgress {
    /// The stream's name, as the query reads it.
    pub stream: String,
    /// Rows the batch read from the stream.
    pub input_rows: u64,
    /// Per source partition, the range read and its lag.
    pub partitions: Vec<PartitionProgress>,
}

/// Where the query's sink is after the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkProgress {
    /// The sink (`console`, `files: 3 files, ...`): its connector and status line.
    pub description: String,
    /// The last batch the sink has committed: this one.
    pub committed_batch: u64,
}

/// What one batch did, in the spirit of Spark's `StreamingQueryProgress`:
/// one JSON object per batch in `--progress-json`, the rows of `SHOW
/// PROGRESS`, and what the Prometheus metrics count. Times are ms since
/// the epoch (`*_ms`) with a readable copy; durations are milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressRecord {
    /// Name of the query.
    pub query: String,
    /// Id of the batch, from 0.
    pub batch_id: u64,
    /// Scheduled time of the batch, ms since the epoch.
    pub batch_time_ms: i64,
    /// `batch_time_ms` as `2026-11-24 10:00:03` (UTC).
    pub batch_time: String,
    /// A batch run at the end of bounded input to close the windows still
    /// open: it reads nothing, and the driver measures no phases for it.
    pub closing: bool,
    /// Durations by phase, and of the whole batch.
    pub durations: PhaseDurations,
    /// How late the batch started compared to its scheduled time, in ms.
    pub delay_ms: i64,
    /// Rows read from all sources.
    pub input_rows: u64,
    /// Rows the batch produced (handed to the sink).
    pub output_rows: u64,
    /// Malformed records skipped (`on_error = 'skip'`).
    pub skipped_rows: u64,
    /// `input_rows` over the wall time since the previous batch started
    /// (Spark's `inputRowsPerSecond`); `None` for the first batch.
    pub input_rows_per_second: Option<f64>,
    /// `input_rows` over the batch's `total_ms` (Spark's
    /// `processedRowsPerSecond`); `None` when not measured.
    pub processed_rows_per_second: Option<f64>,
    /// Event-time watermark after the batch, ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// `watermark_ms` readable (`end of input` once moved past every window).
    pub watermark: Option<String>,
    /// The stream partition holding the watermark back, if several.
    pub watermark_held_by: Option<String>,
    /// Rows that arrived behind the watermark.
    pub late_rows: u64,
    /// Of `late_rows`, how many went to each `<stream>_late` stream.
    pub late_routed: BTreeMap<String, u64>,
    /// Rows held in window state after the batch.
    pub state_rows: u64,
    /// Memory held by window state after the batch, in bytes.
    pub state_bytes: u64,
    /// Per stream of the query: rows read, ranges and lag.
    pub sources: Vec<SourceProgress>,
    /// The sink after its commit, when the consumer is a sink.
    pub sink: Option<SinkProgress>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn per_second(rows: u64, d: Duration) -> Option<f64> {
    (!d.is_zero()).then(|| rows as f64 / d.as_secs_f64())
}

impl ProgressRecord {
    /// The record of batch `end` from its driver's measurements, the sink's
    /// `sink` time and `output_rows`, its `commit` time, and `sink` (the
    /// sink's description), measured `finished` at the end of the commit.
    fn new(end: &BatchEnd, measured: Measured, finished: Instant) -> Self {
        let closing = end.progress.is_none();
        let progress = end.progress.clone().unwrap_or_default();
        let Progress {
            input_rows,
            skipped,
            delay_ms,
            state_rows,
            state_bytes,
            watermark_ms,
            watermark_held_by,
            late_rows,
            late_routed,
            lag,
            phases,
            started,
            since_previous,
            stream_rows,
            ..
        } = progress;
        let total = started.map_or(Duration::ZERO, |s| finished.duration_since(s));
        let sources = end
            .offsets
            .iter()
            .map(|offsets| {
                let lags = lag.iter().find(|l| l.stream == offsets.stream);
                SourceProgress {
                    stream: offsets.stream.clone(),
                    input_rows: (stream_rows.iter())
                        .find(|(s, _)| *s == offsets.stream)
                        .map_or(0, |(_, n)| *n),
                    partitions: (offsets.ranges.iter())
                        .map(|r| PartitionProgress {
                            partition: r.partition.clone(),
                            start: r.start.clone(),
                            end: r.end.clone(),
                            lag: lags.and_then(|l| {
                                let (_, n) =
                                    l.partitions.iter().find(|(p, _)| *p == r.partition)?;
                                Some(*n)
                            }),
                        })
                        .collect(),
                }
            })
            .collect();
        Self {
            query: end.query.to_string(),
            batch_id: end.batch_id,
            batch_time_ms: end.batch_time_ms,
            batch_time: format_time(end.batch_time_ms),
            closing,
            durations: PhaseDurations {
                poll_ms: ms(phases.poll),
                checkpoint_ms: ms(phases.checkpoint),
                query_ms: ms(phases.query),
                sink_ms: ms(measured.sink),
                commit_ms: ms(measured.commit),
                source_commit_ms: ms(phases.source_commit),
                total_ms: if started.is_some() {
                    ms(total)
                } else {
                    ms(measured.sink + measured.commit)
                },
            },
            delay_ms,
            input_rows,
            output_rows: measured.output_rows,
            skipped_rows: skipped,
            input_rows_per_second: since_previous.and_then(|d| per_second(input_rows, d)),
            processed_rows_per_second: started.and_then(|_| per_second(input_rows, total)),
            watermark_ms,
            watermark: watermark_ms.map(|w| match w {
                i64::MAX => "end of input".to_string(),
                w => format_time(w),
            }),
            watermark_held_by,
            late_rows,
            late_routed: late_routed.into_iter().collect(),
            state_rows: state_rows as u64,
            state_bytes: state_bytes as u64,
            sources,
            sink: measured.sink_description.map(|description| SinkProgress {
                description,
                committed_batch: end.batch_id,
            }),
        }
    }

    /// The record as one line of JSON (what `--progress-json` writes).
    pub fn to_json(&self) -> String {
        // A struct of numbers, strings and maps with string keys always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the consumer measured of one batch.
#[derive(Debug, Default)]
struct Measured {
    sink: Duration,
    commit: Duration,
    output_rows: u64,
    sink_description: Option<String>,
}

/// The consumer's side of the progress records: times the sink's writes of
/// each result and its commit of each batch, counts the rows written, and
/// at each batch end completes the batch's [`ProgressRecord`]. Cheap: a few
/// `Instant::now()` and one record per batch.
#[derive(Debug, Default)]
pub struct BatchRecorder {
    measured: Measured,
}

impl BatchRecorder {
    /// A recorder for a new query.
    pub fn new() -> Self {
        Self::default()
    }

    /// `result` was written to the sink, which took `took`.
    pub fn wrote(&mut self, result: &QueryResult, took: Duration) {
        self.measured.sink += took;
        self.measured.output_rows += result.num_rows() as u64;
    }

    /// Batch `end` was committed (its commit took `commit`; `sink` describes
    /// the sink, if the consumer is one): its record, complete. The next
    /// batch starts from nothing.
    pub fn committed(
        &mut self,
        end: &BatchEnd,
        commit: Duration,
        sink: Option<String>,
    ) -> ProgressRecord {
        let finished = Instant::now();
        let mut measured = std::mem::take(&mut self.measured);
        measured.commit = commit;
        measured.sink_description = sink;
        let record = ProgressRecord::new(end, measured, finished);
        super::metrics::record(&record);
        record
    }
}

/// A bounded history of a query's records, newest last: what `SHOW
/// PROGRESS` reads.
#[derive(Debug, Clone, Default)]
pub struct ProgressHistory {
    records: std::collections::VecDeque<ProgressRecord>,
    totals: RecordTotals,
}

/// Totals over every record of a query (also those no longer kept): what
/// `SHOW QUERIES` shows, so that it agrees with `SHOW PROGRESS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordTotals {
    /// Batches recorded.
    pub batches: u64,
    /// Rows read from sources.
    pub input_rows: u64,
    /// Rows handed to the sink.
    pub output_rows: u64,
    /// Rows that arrived behind the watermark.
    pub late_rows: u64,
}

impl ProgressHistory {
    /// Records kept per query.
    pub const CAPACITY: usize = 100;

    /// Adds `record`, forgetting the oldest beyond [`Self::CAPACITY`].
    pub fn push(&mut self, record: ProgressRecord) {
        self.totals.batches += 1;
        self.totals.input_rows += record.input_rows;
        self.totals.output_rows += record.output_rows;
        self.totals.late_rows += record.late_rows;
        if self.records.len() == Self::CAPACITY {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// Totals over every record pushed.
    pub fn totals(&self) -> RecordTotals {
        self.totals
    }

    /// The newest record, if any.
    pub fn last(&self) -> Option<&ProgressRecord> {
        self.records.back()
    }

    /// The newest `n` records, oldest first.
    pub fn recent(&self, n: usize) -> Vec<ProgressRecord> {
        let skip = self.records.len().saturating_sub(n);
        self.records.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::batch::{InputMark, SourceOffset, StreamOffsets};
    use crate::report::{DriverPhases, StreamLag};

    fn end(progress: Option<Progress>) -> BatchEnd {
        BatchEnd {
            query: Arc::from("q"),
            batch_id: 4,
            batch_time_ms: 1_767_225_600_000,
            results: 1,
            offsets: vec![StreamOffsets {
                stream: "bids".into(),
                ranges: vec![
                    SourceOffset {
                        partition: "bids/0".into(),
                        start: "10".into(),
                        end: "15".into(),
                    },
                    SourceOffset {
                        partition: "bids/1".into(),
                        start: "0".into(),
                        end: "2".into(),
                    },
                ],
            }],
            input: InputMark::default(),
            progress,
        }
    }

    #[test]
    fn a_record_joins_the_drivers_phases_ranges_lag_and_the_sinks_times() {
        let started = Instant::now() - Duration::from_millis(50);
        let progress = Progress {
            input_rows: 7,
            watermark_ms: Some(i64::MAX),
            lag: vec![StreamLag {
                stream: "bids".into(),
                partitions: vec![("bids/1".into(), 3)],
            }],
            phases: DriverPhases {
                poll: Duration::from_millis(10),
                checkpoint: Duration::ZERO,
                query: Duration::from_millis(20),
                source_commit: Duration::from_millis(4),
            },
            started: Some(started),
            since_previous: Some(Duration::from_millis(500)),
            stream_rows: vec![("bids".into(), 7)],
            ..Progress::default()
        };
        let mut recorder = BatchRecorder::new();
        let result = QueryResult {
            query: Arc::from("q"),
            batch_id: 4,
            batch_time_ms: 0,
            window: None,
            schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            rows: Vec::new(),
            progress: Progress::default(),
            input: InputMark::default(),
            offsets: Vec::new(),
        };
        recorder.wrote(&result, Duration::from_millis(5));
        let record = recorder.committed(&end(Some(progress)), Duration::from_millis(1), None);
        let d = record.durations;
        assert_eq!(
            (
                d.poll_ms,
                d.query_ms,
                d.sink_ms,
                d.commit_ms,
                d.source_commit_ms
            ),
            (10.0, 20.0, 5.0, 1.0, 4.0)
        );
        assert!(d.total_ms >= 50.0 && d.sum_ms() <= d.total_ms, "{d:?}");
        assert_eq!(record.input_rows_per_second, Some(14.0));
        assert_eq!(record.watermark.as_deref(), Some("end of input"));
        assert_eq!(record.batch_time, "2026-01-01 00:00:00");
        let [source] = record.sources.as_slice() else {
            panic!("{record:?}")
        };
        assert_eq!(source.input_rows, 7);
        let lags: Vec<_> = source.partitions.iter().map(|p| p.lag).collect();
        assert_eq!(lags, [None, Some(3)]);
        // The next batch starts from nothing.
        let closing = recorder.committed(&end(None), Duration::ZERO, Some("print".into()));
        assert!(closing.closing);
        assert_eq!(closing.durations.sink_ms, 0.0);
        assert_eq!(closing.sink.map(|s| s.committed_batch), Some(4));
    }

    #[test]
    fn the_history_keeps_the_newest_records_and_totals_all() {
        let mut history = ProgressHistory::default();
        for batch_id in 0..(ProgressHistory::CAPACITY as u64 + 5) {
            history.push(ProgressRecord {
                batch_id,
                input_rows: 2,
                ..ProgressRecord::default()
            });
        }
        let recent = history.recent(3);
        let ids: Vec<u64> = recent.iter().map(|r| r.batch_id).collect();
        assert_eq!(ids, [102, 103, 104]);
        assert_eq!(history.recent(1_000).len(), ProgressHistory::CAPACITY);
        assert_eq!(history.totals().batches, 105);
        assert_eq!(history.totals().input_rows, 210);
    }
}
