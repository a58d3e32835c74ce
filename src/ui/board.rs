//! What the live page shows: per query, its state, SQL, plan and the
//! measurements of its recent batches, kept as columns (one array per
//! metric, one entry per batch) because that is what the charts draw.
//! The front end feeds it each batch end it sees (foreground queries'
//! events, background queries' broadcast) and the page reads a JSON copy.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use quiver::{BatchEnd, QueryResult, QueryStatus, total_lag};
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
    /// Rows of results seen for the batch not ended yet (foreground).
    #[serde(skip)]
    pending_rows: u64,
    /// Batch time of the last point, for the input rate of the next one.
    #[serde(skip)]
    last_time_ms: Option<i64>,
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
    /// Input rows per second of batch time since the previous batch.
    input_rate: VecDeque<f64>,
    output_rows: VecDeque<u64>,
    /// Time the batch took, from its first poll to its results, in ms.
    duration_ms: VecDeque<f64>,
    /// How late the batch started compared to its schedule, in ms.
    delay_ms: VecDeque<i64>,
    /// Batch time − watermark, in seconds (event-time queries).
    watermark_delay_s: VecDeque<Option<f64>>,
    late_rows: VecDeque<u64>,
    state_rows: VecDeque<usize>,
    state_bytes: VecDeque<usize>,
    /// Records the sources hold beyond what was read (Kafka).
    lag: VecDeque<Option<u64>>,
}

impl Points {
    fn trim(&mut self) {
        if self.batch.len() <= HISTORY {
            return;
        }
        self.batch.pop_front();
        self.time.pop_front();
        self.input_rows.pop_front();
        self.input_rate.pop_front();
        self.output_rows.pop_front();
        self.duration_ms.pop_front();
        self.delay_ms.pop_front();
        self.watermark_delay_s.pop_front();
        self.late_rows.pop_front();
        self.state_rows.pop_front();
        self.state_bytes.pop_front();
        self.lag.pop_front();
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
                    pending_rows: 0,
                    last_time_ms: None,
                });
        });
    }

    /// Whether the board knows query `name`.
    pub fn knows(&self, name: &str) -> bool {
        self.with(|queries| queries.contains_key(name))
    }

    /// A result of a foreground query (its rows count toward its batch).
    pub fn result(&self, result: &QueryResult) {
        self.with(|queries| {
            if let Some(q) = queries.get_mut(result.query.as_ref()) {
                q.pending_rows += result.num_rows() as u64;
            }
        });
    }

    /// A batch of a query ended; `output_rows` overrides the rows counted
    /// from its results (background queries: what the sink wrote).
    pub fn batch_end(&self, end: &BatchEnd, output_rows: Option<u64>) {
        let Some(progress) = &end.progress else {
            return; // the batches that close windows at the end of input read nothing
        };
        self.with(|queries| {
            let Some(q) = queries.get_mut(end.query.as_ref()) else {
                return;
            };
            let rows = output_rows.unwrap_or(std::mem::take(&mut q.pending_rows));
            let since_ms = match q.last_time_ms.replace(end.batch_time_ms) {
                Some(last) if end.batch_time_ms > last => end.batch_time_ms - last,
                _ => self.interval_ms,
            }
            .max(1);
            q.batches += 1;
            q.input_rows += progress.input_rows;
            q.output_rows += rows;
            q.late_rows += progress.late_rows;
            q.lag = (progress.lag.iter())
                .flat_map(|s| {
                    (s.partitions.iter()).map(|(partition, lag)| PartitionLag {
                        stream: s.stream.clone(),
                        partition: partition.clone(),
                        lag: *lag,
                    })
                })
                .collect();
            let p = &mut q.points;
            p.batch.push_back(end.batch_id);
            p.time.push_back(end.batch_time_ms as f64 / 1000.0);
            p.input_rows.push_back(progress.input_rows);
            p.input_rate
                .push_back(progress.input_rows as f64 * 1000.0 / since_ms as f64);
            p.output_rows.push_back(rows);
            p.duration_ms
                .push_back(progress.duration.as_secs_f64() * 1000.0);
            p.delay_ms.push_back(progress.delay_ms);
            p.watermark_delay_s.push_back(
                progress
                    .watermark_ms
                    // The end of bounded input moves the watermark to the end of time.
                    .filter(|w| *w != i64::MAX && *w != i64::MIN)
                    .map(|w| (end.batch_time_ms - w) as f64 / 1000.0),
            );
            p.late_rows.push_back(progress.late_rows);
            p.state_rows.push_back(progress.state_rows);
            p.state_bytes.push_back(progress.state_bytes);
            p.lag.push_back(total_lag(&progress.lag));
            p.trim();
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
    use quiver::Progress;
    use std::sync::Arc;
    use std::time::Duration;

    fn end(batch_id: u64, batch_time_ms: i64, input_rows: u64, watermark: Option<i64>) -> BatchEnd {
        BatchEnd {
            query: Arc::from("q"),
            batch_id,
            batch_time_ms,
            results: 1,
            offsets: Vec::new(),
            input: Default::default(),
            progress: Some(Progress {
                input_rows,
                duration: Duration::from_millis(5),
                watermark_ms: watermark,
                ..Progress::default()
            }),
        }
    }

    #[test]
    fn points_are_columns_with_rates_from_batch_times() {
        let board = Board::new(1000);
        board.started("q", Kind::Foreground, "SELECT 1", None);
        board.batch_end(&end(0, 10_000, 500, None), Some(3));
        board.batch_end(&end(1, 10_500, 500, Some(8_000)), Some(4));
        let json: serde_json::Value = serde_json::from_str(&board.to_json()).unwrap();
        let q = &json["queries"][0];
        assert_eq!(q["name"], "q");
        assert_eq!(q["batches"], 2);
        assert_eq!(q["input_rows"], 1000);
        assert_eq!(q["output_rows"], 7);
        // The first batch's rate is over one interval; the next over the time since.
        assert_eq!(
            q["points"]["input_rate"],
            serde_json::json!([500.0, 1000.0])
        );
        assert_eq!(q["points"]["time"], serde_json::json!([10.0, 10.5]));
        assert_eq!(
            q["points"]["watermark_delay_s"],
            serde_json::json!([null, 2.5])
        );
        assert_eq!(q["points"]["lag"], serde_json::json!([null, null]));
    }

    #[test]
    fn history_is_bounded_and_end_of_input_batches_are_not_points() {
        let board = Board::new(1000);
        board.started("q", Kind::Foreground, "SELECT 1", None);
        for b in 0..(HISTORY as u64 + 5) {
            board.batch_end(&end(b, b as i64 * 1000, 1, None), None);
        }
        let mut closing = end(9999, 0, 0, None);
        closing.progress = None;
        board.batch_end(&closing, None);
        let json: serde_json::Value = serde_json::from_str(&board.to_json()).unwrap();
        let points = json["queries"][0]["points"]["batch"].as_array().unwrap();
        assert_eq!(points.len(), HISTORY);
        assert_eq!(points[0], 5);
        assert_eq!(json["queries"][0]["batches"], HISTORY as u64 + 5);
    }

    #[test]
    fn unknown_queries_are_ignored_and_ends_set_the_state() {
        let board = Board::new(1000);
        board.batch_end(&end(0, 0, 1, None), None);
        assert_eq!(board.to_json(), r#"{"interval_ms":1000,"queries":[]}"#);
        board.started("q", Kind::Foreground, "SELECT 1", None);
        board.ended("q", Some("boom".into()));
        let json: serde_json::Value = serde_json::from_str(&board.to_json()).unwrap();
        assert_eq!(json["queries"][0]["state"], "failed");
        assert_eq!(json["queries"][0]["error"], "boom");
    }
}
