//! Event-time progress. A stream declares `WATERMARK FOR ts AS ts - INTERVAL
//! '4' SECOND`. Watermarks are tracked per source partition (a Kafka
//! partition, a subdirectory of a `files` source, a split of the nexmark
//! generator; unpartitioned sources have one, partition 0), like Flink's
//! per-split watermarks:
//!
//! - a partition's watermark is the largest value of that expression seen in
//!   the partition so far (max event time minus the delay): it never goes back;
//! - a stream's watermark is the minimum over its partitions, skipping those
//!   that sent nothing for `idle_timeout`; a partition that has not sent a
//!   row yet (but is known, e.g. an empty Kafka partition) holds it back
//!   until then;
//! - a query's watermark is the minimum over its streams that are not idle
//!   ([`combine`]); the executor never moves it back.
//!
//! Rows older than the watermark when they arrive are late.

use std::time::Duration;

use datafusion::arrow::array::RecordBatch;

/// What happens to late rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatePolicy {
    /// Count them (`late_rows` in progress) and drop them.
    #[default]
    Drop,
    /// Count them and write them to the stream `<name>_late`, which queries
    /// can read or sink; window results are the same as with `Drop`.
    Side,
}

impl LatePolicy {
    /// The names `late_policy = '...'` accepts.
    pub const NAMES: &[&str] = &["drop", "side"];

    /// Parses a `late_policy` option value (case-insensitive); the error
    /// lists the valid policies.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.to_ascii_lowercase().as_str() {
            "drop" => Ok(Self::Drop),
            "side" => Ok(Self::Side),
            other => Err(format!(
                "late_policy = '{other}' is invalid; valid policies are: {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// A stream's `WATERMARK` clause and its event-time options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkDef {
    /// The event-time column (`ts` in `WATERMARK FOR ts AS ...`).
    pub column: String,
    /// The watermark expression as SQL (`ts - INTERVAL '4' SECOND`).
    pub expr: String,
    /// After this long without rows the stream no longer holds back the
    /// watermark (`idle_timeout` option).
    pub idle_timeout: Option<Duration>,
    /// Windows stay open this much longer than the watermark says, so rows up
    /// to this late still count (`allowed_lateness` option).
    pub allowed_lateness: Duration,
    /// What to do with late rows (`late_policy` option).
    pub late_policy: LatePolicy,
}

/// One source partition's watermark as batches go by.
#[derive(Debug, Clone, Default)]
pub struct WatermarkTracker {
    watermark: Option<i64>,
    last_data_ms: Option<i64>,
    idle_timeout_ms: Option<i64>,
}

impl WatermarkTracker {
    /// A tracker for a stream with `def`.
    pub fn new(def: &WatermarkDef) -> Self {
        Self {
            watermark: None,
            last_data_ms: None,
            idle_timeout_ms: def.idle_timeout.map(|d| d.as_millis() as i64),
        }
    }

    /// Records a batch at `batch_time_ms` whose largest watermark-expression
    /// value is `candidate` (`None` when the batch had no rows).
    pub fn observe(&mut self, batch_time_ms: i64, candidate: Option<i64>) {
        if let Some(candidate) = candidate {
            self.watermark = Some(self.watermark.map_or(candidate, |w| w.max(candidate)));
            self.last_data_ms = Some(batch_time_ms);
        }
    }

    /// The partition's watermark, once it has seen a row.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// True when the partition has had no rows for its idle timeout (one
    /// that never sent a row is idle once the timeout has passed since
    /// `started_ms`).
    pub fn is_idle(&self, batch_time_ms: i64, started_ms: i64) -> bool {
        match self.idle_timeout_ms {
            None => false,
            Some(timeout) => batch_time_ms - self.last_data_ms.unwrap_or(started_ms) >= timeout,
        }
    }
}

/// One stream's watermark: a [`WatermarkTracker`] per source partition,
/// combined by minimum over the partitions that are not idle.
#[derive(Debug, Clone)]
pub struct StreamWatermark {
    def: WatermarkDef,
    partitions: Vec<PartitionWatermark>,
}

/// A partition's tracker and when the stream learnt of it.
#[derive(Debug, Clone)]
struct PartitionWatermark {
    tracker: WatermarkTracker,
    /// False while the source does not read the partition (a Kafka
    /// partition the consumer group gave another query): it holds nothing
    /// back.
    owned: bool,
    /// Batch time the partition appeared at; `None` for partitions known
    /// from the start (their idle timeout runs from the query's start).
    since_ms: Option<i64>,
}

/// One source partition's watermark state, as a checkpoint keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PartitionWatermarkState {
    /// The partition's watermark, once it has seen a row.
    pub watermark: Option<i64>,
    /// Batch time of the partition's last row.
    pub last_data_ms: Option<i64>,
    /// Batch time the partition appeared at (`None`: known from the start).
    pub since_ms: Option<i64>,
}

/// Where one stream's watermark stands after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Every partition is idle: the stream does not hold back the query.
    Idle,
    /// `partition` is active but has not sent a row yet: the query's
    /// watermark cannot move until it does or goes idle.
    Waiting {
        /// The partition holding the stream back.
        partition: u32,
    },
    /// The minimum over the active partitions, and the (first) partition at
    /// that minimum.
    At {
        /// The stream's watermark, ms.
        watermark: i64,
        /// The partition holding it there.
        partition: u32,
    },
}

impl StreamWatermark {
    /// A stream with `def` and one partition (0) so far.
    pub fn new(def: &WatermarkDef) -> Self {
        Self {
            def: def.clone(),
            partitions: vec![PartitionWatermark {
                tracker: WatermarkTracker::new(def),
                owned: true,
                since_ms: None,
            }],
        }
    }

    /// Number of partitions known so far.
    pub fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// Makes partitions `0..count` known at `batch_time_ms` (partitions are
    /// never forgotten: a source with fewer now keeps the old ones, which go
    /// idle). A new partition holds the watermark back until it sends a row
    /// or its idle timeout passes.
    pub fn set_partitions(&mut self, count: u32, batch_time_ms: i64) {
        while self.partitions.len() < count as usize {
            self.partitions.push(PartitionWatermark {
                tracker: WatermarkTracker::new(&self.def),
                owned: true,
                since_ms: Some(batch_time_ms),
            });
        }
    }

    /// Makes the partitions in `unowned` disappear (the source no longer
    /// reads them: they hold nothing back) and those not in it that had
    /// disappeared appear again at `batch_time_ms`, with a fresh tracker: a
    /// partition coming back holds the watermark back until it sends a row
    /// or its idle timeout passes, like a new one.
    pub fn set_unowned(&mut self, unowned: &[u32], batch_time_ms: i64) {
        for (i, p) in self.partitions.iter_mut().enumerate() {
            let owned = !unowned.contains(&(i as u32));
            if owned && !p.owned {
                p.tracker = WatermarkTracker::new(&self.def);
                p.since_ms = Some(batch_time_ms);
            }
            p.owned = owned;
        }
    }

    /// Records that `partition`'s rows in the batch at `batch_time_ms` had
    /// `candidate` as largest watermark-expression value (`None`: no rows).
    pub fn observe(&mut self, partition: u32, batch_time_ms: i64, candidate: Option<i64>) {
        self.set_partitions(partition.saturating_add(1), batch_time_ms);
        self.partitions[partition as usize]
            .tracker
            .observe(batch_time_ms, candidate);
    }

    /// Every partition's state, in partition order, for a checkpoint.
    pub fn snapshot(&self) -> Vec<PartitionWatermarkState> {
        self.partitions
            .iter()
            .map(|p| PartitionWatermarkState {
                watermark: p.tracker.watermark,
                last_data_ms: p.tracker.last_data_ms,
                since_ms: p.since_ms,
            })
            .collect()
    }

    /// Replaces the partitions' state with `partitions` (from
    /// [`StreamWatermark::snapshot`] of a stream with the same definition;
    /// the idle timeout stays this stream's).
    pub fn restore(&mut self, partitions: &[PartitionWatermarkState]) {
        let idle_timeout_ms = self.def.idle_timeout.map(|d| d.as_millis() as i64);
        self.partitions = partitions
            .iter()
            .map(|p| PartitionWatermark {
                tracker: WatermarkTracker {
                    watermark: p.watermark,
                    last_data_ms: p.last_data_ms,
                    idle_timeout_ms,
                },
                owned: true,
                since_ms: p.since_ms,
            })
            .collect();
        if self.partitions.is_empty() {
            *self = Self::new(&self.def);
        }
    }

    /// The watermark of `partition`, once it has seen a row.
    #[cfg(test)]
    pub fn partition_watermark(&self, partition: u32) -> Option<i64> {
        self.partitions
            .get(partition as usize)
            .and_then(|p| p.tracker.watermark())
    }

    /// The stream's state after the batch at `batch_time_ms` of a query
    /// started at `started_ms`.
    pub fn state(&self, batch_time_ms: i64, started_ms: i64) -> StreamState {
        let mut state = StreamState::Idle;
        for (i, p) in self.partitions.iter().enumerate() {
            let since = p.since_ms.map_or(started_ms, |s| s.max(started_ms));
            if !p.owned || p.tracker.is_idle(batch_time_ms, since) {
                continue;
            }
            let partition = i as u32;
            match (p.tracker.watermark(), state) {
                (None, _) => return StreamState::Waiting { partition },
                (Some(w), StreamState::At { watermark, .. }) if w >= watermark => {}
                (Some(watermark), _) => {
                    state = StreamState::At {
                        watermark,
                        partition,
                    }
                }
            }
        }
        state
    }
}

/// The query's watermark after a batch, from its streams' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Combined {
    /// The minimum over the streams that are not idle; `None` when a stream
    /// is waiting for its first row (or every stream is idle): the query's
    /// watermark stays where it is.
    pub watermark: Option<i64>,
    /// `(stream index, partition)` holding the watermark back, if any.
    pub held_by: Option<(usize, u32)>,
}

/// Combines the streams of a query by minimum over those not idle, like
/// each stream combines its partitions.
pub fn combine(streams: &[StreamWatermark], batch_time_ms: i64, started_ms: i64) -> Combined {
    let mut combined = Combined::default();
    for (i, stream) in streams.iter().enumerate() {
        match stream.state(batch_time_ms, started_ms) {
            StreamState::Idle => {}
            StreamState::Waiting { partition } => {
                return Combined {
                    watermark: None,
                    held_by: Some((i, partition)),
                };
            }
            StreamState::At {
                watermark,
                partition,
            } => {
                if combined.watermark.is_none_or(|w| watermark < w) {
                    combined = Combined {
                        watermark: Some(watermark),
                        held_by: Some((i, partition)),
                    };
                }
            }
        }
    }
    combined
}

/// One stream's rows of a batch with the source partition of each batch,
/// for per-partition watermarks.
#[derive(Debug, Clone, Default)]
pub struct PartitionedRows {
    /// Partitions the source reported (at least one more than any partition
    /// in `batches`).
    pub partitions: u32,
    /// The batches, in delivery order, each with its partition.
    pub batches: Vec<(u32, RecordBatch)>,
    /// Partitions the source does not read now (see
    /// [`crate::source::Source::owns_partition`]).
    pub unowned: Vec<u32>,
}

impl PartitionedRows {
    /// The batches of each partition `0..partitions`, in delivery order.
    pub fn by_partition(&self) -> Vec<Vec<RecordBatch>> {
        let count = self
            .batches
            .iter()
            .map(|(p, _)| p + 1)
            .max()
            .unwrap_or(0)
            .max(self.partitions);
        let mut out = vec![Vec::new(); count as usize];
        for (p, batch) in &self.batches {
            out[*p as usize].push(batch.clone());
        }
        out
    }

    /// Every batch, in delivery order.
    pub fn all(&self) -> Vec<RecordBatch> {
        self.batches.iter().map(|(_, b)| b.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_policy_parses_drop_and_side_and_lists_them_otherwise() {
        assert_eq!(LatePolicy::parse("drop"), Ok(LatePolicy::Drop));
        assert_eq!(LatePolicy::parse("SIDE"), Ok(LatePolicy::Side));
        let error = LatePolicy::parse("keep").unwrap_err();
        assert!(
            error.contains("'keep'") && error.ends_with("drop, side"),
            "{error}"
        );
    }

    #[test]
    fn watermark_never_goes_back_and_idleness_is_timed() {
        let def = WatermarkDef {
            column: "ts".into(),
            expr: "ts".into(),
            idle_timeout: Some(Duration::from_secs(3)),
            allowed_lateness: Duration::ZERO,
            late_policy: LatePolicy::Drop,
        };
        let mut w = WatermarkTracker::new(&def);
        assert_eq!(w.watermark(), None);
        w.observe(0, Some(10));
        w.observe(1_000, Some(5));
        assert_eq!(w.watermark(), Some(10));
        w.observe(2_000, None);
        assert!(!w.is_idle(2_000, 0));
        assert!(!w.is_idle(3_999, 0));
        assert!(w.is_idle(4_000, 0));
    }

    fn def(idle: Option<u64>) -> WatermarkDef {
        WatermarkDef {
            column: "ts".into(),
            expr: "ts".into(),
            idle_timeout: idle.map(Duration::from_secs),
            allowed_lateness: Duration::ZERO,
            late_policy: LatePolicy::Drop,
        }
    }

    #[test]
    fn partitions_the_source_stops_reading_disappear_and_come_back_fresh() {
        let mut s = StreamWatermark::new(&def(Some(10)));
        s.set_partitions(2, 0);
        s.observe(0, 0, Some(10_000));
        assert_eq!(s.state(0, 0), StreamState::Waiting { partition: 1 });
        // Partition 1 went to another query: it holds nothing back.
        s.set_unowned(&[1], 1_000);
        s.observe(0, 1_000, Some(12_000));
        assert_eq!(
            s.state(1_000, 0),
            StreamState::At {
                watermark: 12_000,
                partition: 0
            }
        );
        // Back again: a fresh tracker that waits for its first row.
        s.observe(1, 500, Some(99_000));
        s.set_unowned(&[], 2_000);
        assert_eq!(s.state(2_000, 0), StreamState::Waiting { partition: 1 });
        s.observe(1, 3_000, Some(11_000));
        assert_eq!(
            s.state(3_000, 0),
            StreamState::At {
                watermark: 11_000,
                partition: 1
            }
        );
    }

    #[test]
    fn stream_watermark_is_the_min_over_partitions_held_by_the_slower() {
        let mut s = StreamWatermark::new(&def(None));
        s.set_partitions(2, 0);
        s.observe(0, 0, Some(10_000));
        // Partition 1 has sent nothing: it holds the stream back.
        assert_eq!(s.state(0, 0), StreamState::Waiting { partition: 1 });
        s.observe(1, 1_000, Some(4_000));
        assert_eq!(
            s.state(1_000, 0),
            StreamState::At {
                watermark: 4_000,
                partition: 1
            }
        );
        // Each partition's watermark never goes back.
        s.observe(1, 2_000, Some(3_000));
        s.observe(0, 2_000, Some(5_000));
        assert_eq!(s.partition_watermark(0), Some(10_000));
        assert_eq!(
            s.state(2_000, 0),
            StreamState::At {
                watermark: 4_000,
                partition: 1
            }
        );
        s.observe(1, 3_000, Some(12_000));
        assert_eq!(
            s.state(3_000, 0),
            StreamState::At {
                watermark: 10_000,
                partition: 0
            }
        );
    }

    #[test]
    fn idle_partitions_stop_holding_the_stream_back() {
        let mut s = StreamWatermark::new(&def(Some(2)));
        s.set_partitions(3, 0);
        s.observe(0, 0, Some(1_000));
        s.observe(1, 0, Some(9_000));
        // Partition 2 never sends: waiting until 2 s after the start.
        assert_eq!(s.state(1_000, 0), StreamState::Waiting { partition: 2 });
        s.observe(1, 2_000, Some(9_500));
        // Partition 0's last row was at 0, partition 2 never sent: both idle at 2 s.
        assert_eq!(
            s.state(2_000, 0),
            StreamState::At {
                watermark: 9_500,
                partition: 1
            }
        );
        // Partition 0 comes back: it holds the stream again.
        s.observe(0, 3_000, Some(5_000));
        assert_eq!(
            s.state(3_000, 0),
            StreamState::At {
                watermark: 5_000,
                partition: 0
            }
        );
        // All idle: the stream no longer holds back the query.
        assert_eq!(s.state(10_000, 0), StreamState::Idle);
        // A partition appearing later has its idle timeout from then on.
        s.set_partitions(4, 10_000);
        assert_eq!(s.state(11_000, 0), StreamState::Waiting { partition: 3 });
        assert_eq!(s.state(12_000, 0), StreamState::Idle);
    }

    #[test]
    fn a_restored_stream_watermark_goes_on_like_the_snapshotted_one() {
        let mut s = StreamWatermark::new(&def(Some(2)));
        s.set_partitions(2, 0);
        s.observe(0, 0, Some(1_000));
        s.set_partitions(3, 1_000);
        s.observe(2, 1_000, Some(4_000));
        let mut restored = StreamWatermark::new(&def(Some(2)));
        restored.restore(&s.snapshot());
        assert_eq!(restored.snapshot(), s.snapshot());
        assert_eq!(restored.snapshot()[2].since_ms, Some(1_000));
        for (t, p, w) in [
            (2_000, 1, Some(3_000)),
            (3_000, 0, None),
            (5_000, 2, Some(6_000)),
        ] {
            s.observe(p, t, w);
            restored.observe(p, t, w);
            assert_eq!(restored.state(t, 0), s.state(t, 0), "at {t}");
        }
        // By 6 s partitions 0 and 1 are idle: the stream is at partition 2.
        assert_eq!(
            restored.state(6_000, 0),
            StreamState::At {
                watermark: 6_000,
                partition: 2
            }
        );
        restored.restore(&[]);
        assert_eq!(restored.partitions(), 1);
    }

    #[test]
    fn query_watermark_is_the_min_over_active_streams() {
        let mut a = StreamWatermark::new(&def(None));
        let mut b = StreamWatermark::new(&def(Some(1)));
        a.observe(0, 0, Some(7_000));
        assert_eq!(
            combine(&[a.clone(), b.clone()], 0, 0),
            Combined {
                watermark: None,
                held_by: Some((1, 0))
            }
        );
        b.observe(0, 0, Some(3_000));
        assert_eq!(
            combine(&[a.clone(), b.clone()], 0, 0),
            Combined {
                watermark: Some(3_000),
                held_by: Some((1, 0))
            }
        );
        // b idle after 1 s: a alone.
        assert_eq!(combine(&[a, b], 1_000, 0).watermark, Some(7_000));
        assert_eq!(combine(&[], 0, 0), Combined::default());
    }

    #[test]
    fn partitioned_rows_group_batches_by_partition() {
        use datafusion::arrow::array::Int64Array;
        use std::sync::Arc;
        let batch = |v: i64| {
            RecordBatch::try_from_iter([(
                "x",
                Arc::new(Int64Array::from(vec![v])) as datafusion::arrow::array::ArrayRef,
            )])
            .unwrap()
        };
        let rows = PartitionedRows {
            partitions: 3,
            batches: vec![(1, batch(1)), (0, batch(2)), (1, batch(3))],
            unowned: Vec::new(),
        };
        let grouped = rows.by_partition();
        assert_eq!(grouped.iter().map(Vec::len).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(grouped[1][1], batch(3));
        assert_eq!(rows.all().len(), 3);
    }
}
