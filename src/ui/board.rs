//! What the live page shows: per query, its state, SQL, plan and the
//! measurements of its recent batches, kept as columns (one array per
//! metric, one entry per batch) because that is what the charts draw.
//! The front end feeds it each batch's progress record (the same records
//! `--progress-json`, `SHOW PROGRESS` and the metrics read, so every view
//! agrees) and the page reads a JSON copy.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use quiver::{ProgressRecord, QueryStatus};
use serde::Serialize;

/// Batches kept per query (10 minutes of 1 s batches).
pub const HISTORY: usize = 600;

/// Where a query's results go.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Results printed on stdout.
    Foreground,
    /// Results written to a sink table (`INSERT INTO`, `CREATE SINK`).
    Background,
}

/// One query as the page shows it.
#[derive(Debug, Serialize)]
struct QueryView {
    name: String,
    kind: Kind,
    /// `running`, `stopping`, `finished` or `failed`.
    state: String,
    sql: String,
    /// `EXPLAIN` of the query, when it could be produced.
    plan: Option<String>,
    /// The sink and its own status line (background queries).
    sink: Option<String>,
    error: Option<String>,
    batches: u64,
    input_rows: u64,
    output_rows: u64,
    late_rows: u64,
    /// Per stream and partition, the lag after the last batch (Kafka).
    lag: Vec<PartitionLag>,
    points: Points,
}

/// A partition's lag, as the page's lag table shows it.
#[derive(Debug, Clone, Serialize)]
struct PartitionLag {
    stream: String,
    partition: String,
    lag: u64,
}

/// The recent batches of a query, one array per measurement (uPlot's data
/// layout: `time` is the x axis of every chart). `null` where a batch has
/// no value (no watermark yet, a source without lag).
#[derive(Debug, Default, Serialize)]
struct Points {
    batch: VecDeque<u64>,
    /// Batch time, seconds since the epoch.
    time: VecDeque<f64>,
    input_rows: VecDeque<u64>,
    /// Input rows per second of wall time since the previous batch
    /// started (Spark's `inputRowsPerSecond`).
    input_rate: VecDeque<Option<f64>>,
    /// Input rows per second of the batch's own duration.
    processed_rate: VecDeque<Option<f64>>,
    output_rows: VecDeque<u64>,
    /// Time the batch took, from its first poll to its commit, in ms.
    duration_ms: VecDeque<f64>,
    /// Of `duration_ms`, writing the checkpoint (offsets log and state).
    checkpoint_ms: VecDeque<f64>,
    /// How late the batch started compared to its schedule, in ms.
    delay_ms: VecDeque<i64>,
    /// Batch time − watermark, in seconds (event-time queries).
    watermark_delay_s: VecDeque<Option<f64>>,
    late_rows: VecDeque<u64>,
    state_rows: VecDeque<u64>,
    state_bytes: VecDeque<u64>,
    /// Per source partition (`stream partition`), the records it holds
    /// beyond what was read (Kafka): one series each; `null` before the
    /// partition appeared or when the batch had no lag for it.
    lag: BTreeMap<String, VecDeque<Option<u64>>>,
}

impl Points {
    fn push(&mut self, r: &ProgressRecord) {
        self.batch.push_back(r.batch_id);
        self.time.push_back(r.batch_time_ms as f64 / 1000.0);
        self.input_rows.push_back(r.input_rows);
        self.input_rate.push_back(r.input_rows_per_second);
        self.processed_rate.push_back(r.processed_rows_per_second);
        self.output_rows.push_back(r.output_rows);
        self.duration_ms.push_back(r.durations.total_ms);
        self.checkpoint_ms.push_back(r.durations.checkpoint_ms);
        self.delay_ms.push_back(r.delay_ms);
        self.watermark_delay_s.push_back(
            r.watermark_ms
                // The end of bounded input moves the watermark to the end of time.
                .filter(|w| *w != i64::MAX && *w != i64::MIN)
                .map(|w| (r.batch_time_ms - w) as f64 / 1000.0),
        );
        self.late_rows.push_back(r.late_rows);
        self.state_rows.push_back(r.state_rows);
        self.state_bytes.push_back(r.state_bytes);
        self.push_lags(r);
        if self.batch.len() > HISTORY {
            self.batch.pop_front();
            self.time.pop_front();
            self.input_rows.pop_front();
            self.input_rate.pop_front();
            self.processed_rate.pop_front();
            self.output_rows.pop_front();
            self.duration_ms.pop_front();
            self.checkpoint_ms.pop_front();
            self.delay_ms.pop_front();
            self.watermark_delay_s.pop_front();
            self.late_rows.pop_front();
            self.state_rows.pop_front();
            self.state_bytes.pop_front();
            for series in self.lag.values_mut() {
                series.pop_front();
            }
            // A partition that had no lag in any kept batch is gone.
            self.lag
                .retain(|_, series| series.iter().any(Option::is_some));
        }
    }

    /// Appends record `r`'s lag per partition to each partition's series
    /// (after `batch` got `r`'s point): a partition seen for the first
    /// time gets `null` for the batches before.
    fn push_lags(&mut self, r: &ProgressRecord) {
        let lags: BTreeMap<String, u64> = (r.sources.iter())
            .flat_map(|s| {
                (s.partitions.iter())
                    .filter_map(move |p| Some((format!("{} {}", s.stream, p.partition), p.lag?)))
            })
            .collect();
        let before = self.batch.len() - 1;
        for key in lags.keys() {
            if !self.lag.contains_key(key) {
                self.lag
                    .insert(key.clone(), std::iter::repeat_n(None, before).collect());
            }
        }
        for (key, series) in &mut self.lag {
            series.push_back(lags.get(key).copied());
        }
    }
}

/// Every query of the process and its recent batches.
#[derive(Debug)]
pub struct Board {
    interval_ms: i64,
    queries: Mutex<BTreeMap<String, QueryView>>,
}

/// The JSON the page reads (`/api/queries`).
#[derive(Serialize)]
struct Snapshot<'a> {
    interval_ms: i64,
    queries: Vec<&'a QueryView>,
}

impl Board {
    /// An empty board for queries that run a batch every `interval_ms`.
    pub fn new(interval_ms: i64) -> Self {
        Self {
            interval_ms,
            queries: Mutex::new(BTreeMap::new()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, QueryView>) -> R) -> R {
        // A panic while holding the lock leaves plain data behind: keep going.
        let mut queries = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut queries)
    }

    /// A query started: `sql` is its statement, `plan` its `EXPLAIN`.
    pub fn started(&self, name: &str, kind: Kind, sql: &str, plan: Option<String>) {
        self.with(|queries| {
            queries
                .entry(name.to_string())
                .or_insert_with(|| QueryView {
                    name: name.to_string(),
                    kind,
                    state: "running".into(),
                    sql: sql.to_string(),
                    plan,
                    sink: None,
                    error: None,
                    batches: 0,
                    input_rows: 0,
                    output_rows: 0,
                    late_rows: 0,
                    lag: Vec::new(),
                    points: Points::default(),
                });
        });
    }

    /// Whether the board knows query `name`.
    pub fn knows(&self, name: &str) -> bool {
        self.with(|queries| queries.contains_key(name))
    }

    /// A batch of a query ended with progress `record`. The batches that
    /// close windows at the end of input count toward the totals but are
    /// not points (they read nothing and have no phases).
    pub fn record(&self, record: &ProgressRecord) {
        self.with(|queries| {
            let Some(q) = queries.get_mut(&record.query) else {
                return;
            };
            q.output_rows += record.output_rows;
            if let Some(sink) = &record.sink {
                q.sink = Some(sink.description.clone());
            }
            if record.closing {
                return;
            }
            q.batches += 1;
            q.input_rows += record.input_rows;
            q.late_rows += record.late_rows;
            q.lag = (record.sources.iter())
                .flat_map(|s| {
                    (s.partitions.iter()).filter_map(|p| {
                        Some(PartitionLag {
                            stream: s.stream.clone(),
                            partition: p.partition.clone(),
                            lag: p.lag?,
                        })
                    })
                })
                .collect();
            q.points.push(record);
        });
    }

    /// A foreground query ended, with `error` if it failed.
    pub fn ended(&self, name: &str, error: Option<String>) {
        self.with(|queries| {
            if let Some(q) = queries.get_mut(name) {
                q.state = if error.is_some() {
                    "failed"
                } else {
                    "finished"
                }
                .into();
                q.error = error;
            }
        });
    }

    /// The background queries' statuses, as the registry reports them.
    pub fn background(&self, statuses: &[QueryStatus]) {
        self.with(|queries| {
            for status in statuses {
                if let Some(q) = queries.get_mut(&status.name) {
                    q.state = status.state.to_string();
                    q.sink = Some(status.sink.clone());
                    q.error.clone_from(&status.error);
                }
            }
        });
    }

    /// The page's data as JSON.
    pub fn to_json(&self) -> String {
        self.with(|queries| {
            let snapshot = Snapshot {
                interval_ms: self.interval_ms,
                queries: queries.values().collect(),
            };
            // Plain strings and numbers (non-finite rates cannot occur: the
            // divisor is at least 1 ms): serialization cannot fail.
            serde_json::to_string(&snapshot).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver::{PartitionProgress, SourceProgress};

    fn record(
        batch_id: u64,
        batch_time_ms: i64,
        input_rows: u64,
        watermark: Option<i64>,
    ) -> ProgressRecord {
        ProgressRecord {
            query: "q".into(),
            batch_id,
            batch_time_ms,
            input_rows,
            output_rows: 2,
            input_rows_per_second: (batch_id > 0).then_some(500.0),
            watermark_ms: watermark,
            ..ProgressRecord::default()
        }
    }

    #[test]
    fn points_are_columns_of_the_records() {
        let board = Board::new(1000);
        board.started("q", Kind::Foreground, "SELECT 1", None);
        board.record(&record(0, 10_000, 500, None));
        let mut second = record(1, 10_500, 500, Some(8_000));
        second.sources = vec![SourceProgress {
            stream: "bids".into(),
            input_rows: 500,
            partitions: vec![PartitionProgress {
                partition: "0".into(),
                start: "0".into(),
                end: "500".into(),
                lag: Some(7),
            }],
        }];
        board.record(&second);
        let json: serde_json::Value = serde_json::from_str(&board.to_json()).unwrap();
        let q = &json["queries"][0];
        assert_eq!(q["name"], "q");
        assert_eq!(q["batches"], 2);
        assert_eq!(q["input_rows"], 1000);
        assert_eq!(q["output_rows"], 4);
        assert_eq!(q["points"]["input_rate"], serde_json::json!([null, 500.0]));
        assert_eq!(q["points"]["time"], serde_json::json!([10.0, 10.5]));
        assert_eq!(
            q["points"]["watermark_delay_s"],
            serde_json::json!([null, 2.5])
        );
        assert_eq!(q["points"]["lag"], serde_json::json!({"bids 0": [null, 7]}));
        assert_eq!(q["lag"][0]["lag"], 7);
    }

    #[test]
    fn lag_is_one_series_per_partition_aligned_with_the_batches() {
        let board = Board::new(1000);
        board.started("q", Kind::Foreground, "SELECT 1", None);
        let with_lags = |batch_id: u64, lags: &[(&str, u64)]| {
            let mut r = record(batch_id, batch_id as i64 * 1000, 1, None);
            r.sources = vec![SourceProgress {
                stream: "bids".into(),
                input_rows: 1,
                partitions: (lags.iter())
                    .map(|(partition, lag)| PartitionProgress {
                        partition: partition.to_string(),
                        start: "0".into(),
                        end: "1".into(),
                        lag: Some(*lag),
                    })
                    .collect(),
            }];
            r
        };
        board.record(&with_lags(0, &[("0", 5)]));
        // Partition 1 appears at the second batch.
        board.record(&with_lags(1, &[("0", 4), ("1", 9)]));
        board.record(&with_lags(2, &[("1", 8)]));
        let json: serde_json::Value = serde_json::from_str(&board.to_json()).unwrap();
        assert_eq!(
            json["queries"][0]["points"]["lag"],
            serde_json::json!({"bids 0": [5, 4, null], "bids 1": [null, 9, 8]})
        );
        // Once no kept batch has a lag for partition 0, its series goes.
        for b in 3..(HISTORY as u64 + 3) {
            board.record(&with_lags(b, &[("1", 1)]));
        }
        let json: serde_json::Value = serde_json::from_str(&board.to_json()).unwrap();
        let lag = json["queries"][0]["points"]["lag"].as_object().unwrap();
        assert_eq!(lag.keys().collect::<Vec<_>>(), ["bids 1"]);
        assert_eq!(lag["bids 1"].as_array().unwrap().len(), HISTORY);
    }

    #[test]
    fn history_is_bounded_and_closing_batches_are_not_points() {
        let board = Board::new(1000);
        board.started("q", Kind::Foreground, "SELECT 1", None);
        for b in 0..(HISTORY as u64 + 5) {
            board.record(&record(b, b as i64 * 1000, 1, None));
        }
        let mut closing = record(9999, 0, 0, None);
        closing.closing = true;
        board.record(&closing);
        let json: serde_json::Value = serde_json::from_str(&board.to_json()).unwrap();
        let points = json["queries"][0]["points"]["batch"].as_array().unwrap();
        assert_eq!(points.len(), HISTORY);
        assert_eq!(points[0], 5);
        assert_eq!(json["queries"][0]["batches"], HISTORY as u64 + 5);
        // The closing batch's output rows count.
        assert_eq!(json["queries"][0]["output_rows"], 2 * (HISTORY as u64 + 6));
    }

    #[test]
    fn unknown_queries_are_ignored_and_ends_set_the_state() {
        let board = Board::new(1000);
        board.record(&record(0, 0, 1, None));
        assert_eq!(board.to_json(), r#"{"interval_ms":1000,"queries":[]}"#);
        board.started("q", Kind::Foreground, "SELECT 1", None);
        board.ended("q", Some("boom".into()));
        let json: serde_json::Value = serde_json::from_str(&board.to_json()).unwrap();
        assert_eq!(json["queries"][0]["state"], "failed");
        assert_eq!(json["queries"][0]["error"], "boom");
    }
}
