//! Snapshot/restore round trips on real plans, one per kind of operator:
//! a query is planned by a [`Context`], run batch by batch over in-memory
//! rows (out of order, some late) the way the driver runs it; after `split`
//! batches its operator's state is snapshotted and restored into a fresh
//! operator of a freshly planned copy of the query, which runs the rest.
//! Everything emitted must equal an uninterrupted run's, in order.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::{Cx, Operator, OperatorSnapshot, PerBatch, Session, Watermark, Windowed, fill_streams};
use crate::batch::{Batch, stamp_batch_time, with_batch_time};
use crate::context::Context;
use crate::exec::event_time::max_time;
use crate::sql::{PlanKind, StreamingPlan, TimeDomain};
use crate::window::{StreamWatermark, combine};

const INTERVAL_MS: i64 = 1_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// A row of `bids`/`buys`: event time (s after T0), user, price.
type Row = (i64, &'static str, i64);

const STREAMS: &str = "
CREATE STREAM bids (ts TIMESTAMP(3), user VARCHAR, price BIGINT,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
  WITH (connector = 'files', path = '.', format = 'csv');
CREATE STREAM buys (ts TIMESTAMP(3), user VARCHAR, price BIGINT,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
  WITH (connector = 'files', path = '.', format = 'csv');";

/// Batches of `(bids rows, buys rows)`: out of order within and across
/// batches, and (batch 3's 00:01, batch 5's 00:04) behind the watermark.
const BATCHES: &[(&[Row], &[Row])] = &[
    (&[(1, "a", 10), (3, "b", 5), (2, "a", 7)], &[(2, "a", 1)]),
    (&[(4, "a", 3), (2, "c", 8)], &[(4, "b", 2), (3, "a", 4)]),
    (&[(7, "b", 1), (5, "a", 2), (6, "a", 9)], &[(6, "a", 3)]),
    (&[(1, "a", 100), (9, "c", 4), (8, "a", 6)], &[(1, "a", 50)]),
    (&[], &[(9, "c", 7)]),
    (
        &[(13, "a", 5), (4, "b", 100), (12, "b", 2)],
        &[(12, "b", 1)],
    ),
    (&[(14, "a", 1), (20, "c", 3)], &[(20, "c", 2)]),
];

/// Plans `query` over [`STREAMS`] in a fresh context.
async fn plan(query: &str) -> StreamingPlan {
    let ctx = Context::default();
    ctx.sql(STREAMS).await.expect("streams are declared");
    ctx.plan_query(query)
        .await
        .expect("the query plans")
        .expect("the query reads streams")
}

/// The rows of `stream` (as the plan's stream table holds them) for `rows`,
/// stamped with the batch time.
fn rows_of(plan: &StreamingPlan, stream: &str, rows: &[Row], time: i64) -> Vec<RecordBatch> {
    let Some((def, _)) = plan.streams.iter().find(|(d, _)| d.name == stream) else {
        return Vec::new();
    };
    if rows.is_empty() {
        return Vec::new();
    }
    let times = TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| T0 + r.0 * 1_000));
    let users = StringArray::from_iter_values(rows.iter().map(|r| r.1));
    let prices = Int64Array::from_iter_values(rows.iter().map(|r| r.2));
    let batch = RecordBatch::try_new(
        def.schema.clone(),
        vec![Arc::new(times), Arc::new(users), Arc::new(prices)],
    )
    .expect("rows fit the stream");
    vec![stamp_batch_time(&batch, &with_batch_time(&def.schema), time).expect("stamped")]
}

/// A query run batch by batch as the driver runs it (one partition per
/// stream): what the driver keeps, and the operator.
struct Run<O> {
    plan: StreamingPlan,
    operator: O,
    trackers: Vec<StreamWatermark>,
    watermark: Watermark,
    started_ms: Option<i64>,
    batch_id: u64,
    /// Everything emitted, one line per window (or batch) result.
    emitted: Vec<String>,
    late_rows: u64,
}

impl<O: Operator> Run<O> {
    fn new(plan: StreamingPlan, operator: O) -> Self {
        let trackers = plan
            .watermarks
            .iter()
            .map(|w| StreamWatermark::new(&w.def))
            .collect();
        Self {
            plan,
            operator,
            trackers,
            watermark: Watermark {
                at: None,
                allowed_lateness_ms: 0,
            },
            started_ms: None,
            batch_id: 0,
            emitted: Vec::new(),
            late_rows: 0,
        }
    }

    fn time(&self) -> i64 {
        T0 + self.batch_id as i64 * INTERVAL_MS
    }

    /// Runs one batch: the one place that feeds the operator (adapt it
    /// when the driver's `Batch` changes).
    async fn step(&mut self, bids: &[Row], buys: &[Row], end_of_input: bool) {
        let time = self.time();
        self.plan.proctime.set(time);
        let batch_id = self.batch_id;
        let batches: Vec<Batch> = self
            .plan
            .streams
            .iter()
            .map(|(def, _)| {
                let rows = if def.name == "bids" { bids } else { buys };
                let data = rows_of(&self.plan, &def.name, rows, time);
                Batch {
                    id: batch_id,
                    time_ms: time,
                    schema: with_batch_time(&def.schema),
                    partitions: vec![0; data.len()],
                    data,
                    offsets: Vec::new(),
                    skipped: 0,
                    lag: None,
                }
            })
            .collect();
        let (mut emitted, late) = self
            .operator
            .process_batch(&cx(&self.plan, batch_id), &batches, self.watermark)
            .await
            .expect("batch is processed");
        if self.operator.watermarked() {
            self.late_rows += late;
            self.advance_watermark(&batches, time, end_of_input).await;
        }
        let closed = self
            .operator
            .handle_watermark(&cx(&self.plan, batch_id), self.watermark)
            .await
            .expect("watermark is handled");
        emitted.extend(closed);
        for e in emitted {
            let rows = pretty_format_batches(&e.rows).expect("rows print");
            let line = format!("batch {} window {:?}\n{rows}", self.batch_id, e.window);
            self.emitted.push(line);
        }
        self.batch_id += 1;
    }

    /// The driver's watermark for one partition per stream.
    async fn advance_watermark(&mut self, batches: &[Batch], time: i64, end_of_input: bool) {
        let _streams = fill_streams(&self.plan, batches);
        let started = *self.started_ms.get_or_insert(time);
        let next = match self.plan.time {
            Some(TimeDomain::Event) if end_of_input => Some(i64::MAX),
            Some(TimeDomain::Event) => {
                for (w, tracker) in self.plan.watermarks.iter().zip(&mut self.trackers) {
                    let max = self.plan.run(&w.max).await.expect("max runs");
                    tracker.observe(0, time, max_time(&max).expect("a time"));
                }
                combine(&self.trackers, time, started).watermark
            }
            _ => Some(time + INTERVAL_MS),
        };
        if let Some(next) = next {
            let at = &mut self.watermark.at;
            *at = Some(at.map_or(next, |w| w.max(next)));
        }
    }

    async fn feed(&mut self, batches: &[(&[Row], &[Row])]) {
        for (bids, buys) in batches {
            self.step(bids, buys, false).await;
        }
    }

    /// The end of input: the event-time watermark moves past everything.
    async fn finish(&mut self) {
        self.step(&[], &[], true).await;
    }

    /// A fresh run of `plan`'s operator `make` restored from this run's
    /// snapshot, carrying on with this run's driver state.
    fn restored(self, plan: StreamingPlan, make: fn(&StreamingPlan) -> O) -> (Self, usize) {
        let snapshot = self.operator.snapshot().expect("snapshot is taken");
        let rows = snapshot_rows(&snapshot);
        let operator = make(&plan);
        let mut fresh = Run::new(plan, operator);
        fresh.operator.restore(snapshot).expect("snapshot restores");
        fresh.trackers = self.trackers;
        fresh.watermark = self.watermark;
        fresh.started_ms = self.started_ms;
        fresh.batch_id = self.batch_id;
        fresh.emitted = self.emitted;
        fresh.late_rows = self.late_rows;
        (fresh, rows)
    }
}

fn cx(plan: &StreamingPlan, batch_id: u64) -> Cx<'_> {
    Cx {
        plan,
        query: "test",
        batch_id,
    }
}

/// Rows held in a snapshot (panes and open sessions).
fn snapshot_rows(snapshot: &OperatorSnapshot) -> usize {
    let panes: usize = snapshot
        .buffers
        .iter()
        .flat_map(|b| &b.panes)
        .flat_map(|(_, batches)| batches)
        .map(RecordBatch::num_rows)
        .sum();
    let sessions: usize = snapshot.sessions.iter().map(|s| s.rows.num_rows()).sum();
    panes + sessions
}

fn windowed(plan: &StreamingPlan) -> Windowed {
    match &plan.kind {
        PlanKind::Windowed(w) => Windowed::new(w),
        other => panic!("not a windowed plan: {other:?}"),
    }
}

fn session(plan: &StreamingPlan) -> Session {
    match &plan.kind {
        PlanKind::Session { session, kept } => Session::new(session, kept.len()),
        other => panic!("not a session plan: {other:?}"),
    }
}

fn per_batch(plan: &StreamingPlan) -> PerBatch {
    assert!(matches!(plan.kind, PlanKind::PerBatch), "{:?}", plan.kind);
    PerBatch
}

/// Runs `query` uninterrupted, then with a snapshot and restore after
/// `split` batches; returns what both emitted (equal) and the snapshot's rows.
async fn round_trip<O: Operator>(
    query: &str,
    make: fn(&StreamingPlan) -> O,
    split: usize,
) -> (Vec<String>, usize) {
    let whole_plan = plan(query).await;
    let operator = make(&whole_plan);
    let mut whole = Run::new(whole_plan, operator);
    whole.feed(BATCHES).await;
    whole.finish().await;

    let first_plan = plan(query).await;
    let operator = make(&first_plan);
    let mut first = Run::new(first_plan, operator);
    first.feed(&BATCHES[..split]).await;
    let (mut restored, rows) = first.restored(plan(query).await, make);
    restored.feed(&BATCHES[split..]).await;
    restored.finish().await;

    assert_eq!(restored.emitted, whole.emitted, "{query}");
    assert_eq!(restored.late_rows, whole.late_rows, "{query}");
    assert!(restored.operator.is_empty());
    (whole.emitted, rows)
}

#[tokio::test]
async fn hop_with_partials_round_trips() {
    let query = "SELECT user, count(*) AS n, sum(price) AS total, min(ts) AS first, \
                 window_start, window_end \
                 FROM HOP(bids, ts, INTERVAL '2' SECOND, INTERVAL '6' SECOND) \
                 GROUP BY user, window_start, window_end";
    let planned = plan(query).await;
    let PlanKind::Windowed(w) = &planned.kind else {
        panic!("{:?}", planned.kind);
    };
    assert!(!w.partials.is_empty(), "the HOP aggregates use partials");
    assert!(
        w.windows.iter().all(|i| !i.keeps_rows),
        "only partials kept"
    );
    for split in [2, 4] {
        let (emitted, rows) = round_trip(query, windowed, split).await;
        assert!(
            rows > 0,
            "the snapshot after {split} batches holds partials"
        );
        assert!(emitted.len() > 4, "{emitted:#?}");
    }
}

#[tokio::test]
async fn hop_over_raw_rows_with_a_stream_joined_outside_round_trips() {
    // `buys`, read outside the windows, is kept as raw rows.
    let query = "SELECT w.user, w.n, count(b.price) AS buys, w.window_start, w.window_end \
                 FROM (SELECT user, count(*) AS n, window_start, window_end \
                       FROM HOP(bids, ts, INTERVAL '2' SECOND, INTERVAL '4' SECOND) \
                       GROUP BY user, window_start, window_end) w \
                 JOIN buys b ON b.user = w.user AND b.ts >= w.window_start \
                   AND b.ts < w.window_end \
                 GROUP BY w.user, w.n, w.window_start, w.window_end";
    let planned = plan(query).await;
    assert!(!planned.kept().is_empty(), "buys is kept");
    let (emitted, rows) = round_trip(query, windowed, 3).await;
    assert!(rows > 0);
    assert!(emitted.iter().any(|e| e.contains("| a ")), "{emitted:#?}");
}

#[tokio::test]
async fn session_round_trips() {
    let query = "SELECT user, count(*) AS n, sum(price) AS total, \
                 SESSION_START(ts, INTERVAL '3' SECOND) AS s, \
                 SESSION_END(ts, INTERVAL '3' SECOND) AS e \
                 FROM bids GROUP BY user, SESSION(ts, INTERVAL '3' SECOND)";
    for split in [1, 3, 5] {
        let (emitted, rows) = round_trip(query, session, split).await;
        assert!(rows > 0, "open sessions after {split} batches");
        assert!(emitted.len() > 2, "{emitted:#?}");
    }
}

#[tokio::test]
async fn session_joined_with_a_stream_round_trips() {
    let query = "SELECT w.user, w.n, b.price, w.s, w.e \
                 FROM (SELECT user, count(*) AS n, \
                         SESSION_START(ts, INTERVAL '3' SECOND) AS s, \
                         SESSION_END(ts, INTERVAL '3' SECOND) AS e \
                       FROM bids GROUP BY user, SESSION(ts, INTERVAL '3' SECOND)) w \
                 JOIN buys b ON b.user = w.user AND b.ts >= w.s AND b.ts < w.e";
    let planned = plan(query).await;
    let PlanKind::Session { kept, .. } = &planned.kind else {
        panic!("{:?}", planned.kind);
    };
    assert_eq!(kept.len(), 1, "buys is read outside the session");
    let (emitted, _) = round_trip(query, session, 2).await;
    let joined: usize = emitted.iter().map(|e| e.matches("| a ").count()).sum();
    assert!(joined >= 2, "a's sessions join their buys: {emitted:#?}");
    // The snapshot holds the buys rows as well as the open sessions.
    let first_plan = plan(query).await;
    let operator = session(&first_plan);
    let mut first = Run::new(first_plan, operator);
    first.feed(&BATCHES[..2]).await;
    let snapshot = first.operator.snapshot().unwrap();
    assert!(snapshot.buffers[0].panes.iter().any(|(_, b)| !b.is_empty()));
}

#[tokio::test]
async fn per_batch_round_trips() {
    let query = "SELECT user, price * 2 AS doubled FROM bids WHERE price > 2";
    let (emitted, rows) = round_trip(query, per_batch, 3).await;
    assert_eq!(rows, 0, "a per-batch query keeps nothing");
    assert_eq!(emitted.len(), BATCHES.len() + 1, "one result per batch");
}

#[tokio::test]
async fn a_snapshot_does_not_restore_into_another_kind_of_operator() {
    let hop = "SELECT count(*) AS n, window_start, window_end \
               FROM HOP(bids, ts, INTERVAL '2' SECOND, INTERVAL '6' SECOND) \
               GROUP BY window_start, window_end";
    let sessions = "SELECT count(*) AS n FROM bids GROUP BY user, SESSION(ts, INTERVAL '3' SECOND)";
    let (hop, sessions) = (plan(hop).await, plan(sessions).await);
    let windowed_snapshot = windowed(&hop).snapshot().unwrap();
    let session_snapshot = session(&sessions).snapshot().unwrap();
    assert!(session(&sessions).restore(windowed_snapshot).is_err());
    assert!(windowed(&hop).restore(session_snapshot.clone()).is_err());
    assert!(PerBatch.restore(session_snapshot).is_err());
}
