//! The driver's own state, for a checkpoint: where the batch loop is (next
//! batch id and time, the input mark), the watermark and what it is computed
//! from (each watermark stream's partitions), and the totals so far (late
//! rows counted and routed among them). With the operator's
//! [`OperatorSnapshot`](super::super::operator::OperatorSnapshot) it is
//! everything a restarted query needs to carry on from the next batch.

use crate::batch::InputMark;
use crate::report::QuerySummary;
use crate::window::PartitionWatermarkState;

use super::{Driver, Watermarks};

/// The driver's state between two batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DriverSnapshot {
    /// Id of the next batch to run.
    pub(crate) next_batch_id: u64,
    /// Scheduled time of the next batch, ms.
    pub(crate) next_batch_time_ms: i64,
    /// Batch times and source positions of the batches run so far.
    pub(crate) input: InputMark,
    /// The query's watermark and its inputs.
    pub(crate) watermarks: WatermarksSnapshot,
    /// Totals so far: batches, rows in and out, late rows counted and
    /// routed, peak state, batch durations.
    pub(crate) summary: QuerySummary,
}

/// The query's watermark and what it is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WatermarksSnapshot {
    /// The query's watermark, once it has one.
    pub(crate) at: Option<i64>,
    /// Time of the first batch (idle timeouts of partitions known from the
    /// start run from it).
    pub(crate) started_ms: Option<i64>,
    /// The stream partition holding the watermark back after the last batch.
    pub(crate) held_by: Option<String>,
    /// Per watermark stream (in the plan's order), its name and partitions.
    pub(crate) streams: Vec<(String, Vec<PartitionWatermarkState>)>,
}

/// A driver snapshot taken by another query.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot restore a snapshot of a query watermarked by [{found}] into one watermarked by \
     [{expected}]: restore a snapshot of the same query"
)]
pub(crate) struct DriverSnapshotMismatch {
    expected: String,
    found: String,
}

impl Watermarks {
    /// The watermark state, with `streams` the names of the plan's
    /// watermark streams (in order).
    pub(crate) fn snapshot(&self, streams: &[&str]) -> WatermarksSnapshot {
        WatermarksSnapshot {
            at: self.current.at,
            started_ms: self.started_ms,
            held_by: self.held_by.clone(),
            streams: streams
                .iter()
                .zip(&self.trackers)
                .map(|(name, tracker)| (name.to_string(), tracker.snapshot()))
                .collect(),
        }
    }

    /// Replaces the watermark state with `snapshot`'s, taken by a query
    /// with the same watermark `streams`.
    pub(crate) fn restore(
        &mut self,
        streams: &[&str],
        snapshot: WatermarksSnapshot,
    ) -> Result<(), DriverSnapshotMismatch> {
        let found: Vec<&str> = snapshot.streams.iter().map(|(s, _)| s.as_str()).collect();
        if found != streams || self.trackers.len() != streams.len() {
            return Err(DriverSnapshotMismatch {
                expected: streams.join(", "),
                found: found.join(", "),
            });
        }
        for (tracker, (_, partitions)) in self.trackers.iter_mut().zip(&snapshot.streams) {
            tracker.restore(partitions);
        }
        self.current.at = snapshot.at;
        self.started_ms = snapshot.started_ms;
        self.held_by = snapshot.held_by;
        Ok(())
    }
}

impl<O> Driver<O> {
    fn watermark_streams(&self) -> Vec<&str> {
        self.plan
            .watermarks
            .iter()
            .map(|w| w.stream.as_str())
            .collect()
    }

    /// The driver's state before the batch `next_batch_id` at
    /// `next_batch_time_ms`, with the totals `summary` so far.
    pub(crate) fn snapshot(
        &self,
        next_batch_id: u64,
        next_batch_time_ms: i64,
        summary: &QuerySummary,
    ) -> DriverSnapshot {
        DriverSnapshot {
            next_batch_id,
            next_batch_time_ms,
            input: self.input.clone(),
            watermarks: self.watermarks.snapshot(&self.watermark_streams()),
            summary: summary.clone(),
        }
    }

    /// Takes `snapshot`'s watermark and input mark; returns the next batch's
    /// id and time and the totals to carry on from.
    pub(crate) fn restore(
        &mut self,
        snapshot: DriverSnapshot,
    ) -> Result<(u64, i64, QuerySummary), DriverSnapshotMismatch> {
        let streams: Vec<String> = self
            .watermark_streams()
            .into_iter()
            .map(String::from)
            .collect();
        let streams: Vec<&str> = streams.iter().map(String::as_str).collect();
        self.watermarks.restore(&streams, snapshot.watermarks)?;
        self.input = snapshot.input;
        Ok((
            snapshot.next_batch_id,
            snapshot.next_batch_time_ms,
            snapshot.summary,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::SourceOffset;
    use crate::window::combine;

    async fn plan() -> crate::sql::StreamingPlan {
        let ctx = crate::context::Context::default();
        ctx.sql(
            "CREATE STREAM a (ts TIMESTAMP(3), WATERMARK FOR ts AS ts) \
               WITH (connector = 'files', path = '.', format = 'csv', idle_timeout = '2s');
             CREATE STREAM b (ts TIMESTAMP(3), WATERMARK FOR ts AS ts) \
               WITH (connector = 'files', path = '.', format = 'csv');
             CREATE VIEW ab AS SELECT ts FROM a UNION ALL SELECT ts FROM b;",
        )
        .await
        .unwrap();
        ctx.plan_query(
            "SELECT count(*) AS n, window_start, window_end \
             FROM TUMBLE(ab, ts, INTERVAL '2' SECOND) GROUP BY window_start, window_end",
        )
        .await
        .unwrap()
        .unwrap()
    }

    /// Feeds one batch's per-partition candidates into `w` the way the
    /// driver does, and moves its watermark.
    fn observe(w: &mut Watermarks, time: i64, seen: &[(usize, u32, Option<i64>)]) {
        let started = *w.started_ms.get_or_insert(time);
        for (stream, partition, candidate) in seen {
            w.trackers[*stream].set_partitions(partition + 1, time);
            w.trackers[*stream].observe(*partition, time, *candidate);
        }
        let combined = combine(&w.trackers, time, started);
        w.held_by = combined.held_by.map(|(s, p)| format!("{s}/{p}"));
        if let Some(next) = combined.watermark {
            w.current.at = Some(w.current.at.map_or(next, |at| at.max(next)));
        }
    }

    #[tokio::test]
    async fn a_restored_watermark_moves_like_the_snapshotted_one() {
        let plan = plan().await;
        let streams: Vec<&str> = plan.watermarks.iter().map(|w| w.stream.as_str()).collect();
        assert_eq!(streams.len(), 2, "{streams:?}");
        let batches: [&[(usize, u32, Option<i64>)]; 5] = [
            &[
                (0, 0, Some(1_000)),
                (0, 1, Some(5_000)),
                (1, 0, Some(3_000)),
            ],
            &[(0, 0, Some(2_000)), (1, 0, Some(6_000))],
            &[(1, 0, Some(7_000)), (0, 2, None)],
            &[(0, 1, Some(9_000)), (1, 0, Some(9_500))],
            &[(1, 0, Some(12_000))],
        ];
        let mut whole = Watermarks::new(&plan);
        let mut first = Watermarks::new(&plan);
        for (i, seen) in batches[..2].iter().enumerate() {
            observe(&mut whole, i as i64 * 1_000, seen);
            observe(&mut first, i as i64 * 1_000, seen);
        }
        let snapshot = first.snapshot(&streams);
        assert_eq!(snapshot.at, Some(2_000));
        assert_eq!(snapshot.streams[0].1.len(), 2, "stream a's two partitions");
        let mut restored = Watermarks::new(&plan);
        restored.restore(&streams, snapshot.clone()).unwrap();
        assert_eq!(restored.snapshot(&streams), snapshot);
        for (i, seen) in batches.iter().enumerate().skip(2) {
            let time = i as i64 * 1_000;
            observe(&mut whole, time, seen);
            observe(&mut restored, time, seen);
            assert_eq!(restored.snapshot(&streams), whole.snapshot(&streams));
        }
        // a's partition 2, new at 2 s, held the watermark until idle at 4 s.
        assert_eq!(whole.current.at, Some(9_000));
        assert!(restored.restore(&["a"], snapshot).is_err());
    }

    /// A driver of `plan` with no sources, as `start_query` builds one.
    fn driver(plan: crate::sql::StreamingPlan) -> Driver<crate::exec::operator::PerBatch> {
        let (late, _) =
            crate::exec::late::LateRouter::new(&plan, "q", &Default::default(), 0, 1_000)
                .expect("no late checks");
        Driver {
            name: "q".into(),
            watermarks: Watermarks::new(&plan),
            plan,
            sources: Vec::new(),
            operator: crate::exec::operator::PerBatch,
            late,
            late_inputs: Vec::new(),
            interval_ms: 1_000,
            clock: crate::exec::Clock::Simulated { start_ms: 0 },
            limits: Default::default(),
            progress: tokio::sync::watch::channel(Default::default()).0,
            input: InputMark::default(),
            handed_out: tokio::sync::watch::channel(None).1,
            uncommitted: None,
            state_write: None,
            source_commit: std::time::Duration::ZERO,
            checkpoint: None,
            last_sent: None,
        }
    }

    #[tokio::test]
    async fn a_driver_snapshot_carries_the_batch_input_mark_watermark_and_totals() {
        let mut running = driver(plan().await);
        let offset = SourceOffset {
            partition: "in".into(),
            start: "2.csv".into(),
            end: "3.csv".into(),
        };
        let offsets = crate::batch::StreamOffsets {
            stream: "a".into(),
            ranges: vec![offset],
        };
        running.input = InputMark::default().next(8_000, &[offsets]);
        observe(
            &mut running.watermarks,
            0,
            &[(0, 0, Some(4_000)), (1, 0, Some(3_000))],
        );
        let summary = QuerySummary {
            batches: 4,
            input_rows: 10,
            late_rows: 3,
            late_routed: 2,
            ..QuerySummary::default()
        };
        let snapshot = running.snapshot(4, 9_000, &summary);
        assert_eq!(snapshot.watermarks.at, Some(3_000));
        let mut fresh = driver(plan().await);
        let (batch_id, time, totals) = fresh.restore(snapshot.clone()).unwrap();
        assert_eq!((batch_id, time, &totals), (4, 9_000, &summary));
        assert_eq!(fresh.input.offsets, "a in=3.csv");
        assert_eq!(fresh.snapshot(batch_id, time, &totals), snapshot);
    }
}
