//! Property: for random batch contents and window (size, slide), every HOP
//! window over processing time equals a batch computation over the union of
//! the batches it covers, and every batch lands in size/slide windows.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::array::{Array, Int64Array, TimestampMillisecondArray};
use proptest::prelude::*;
use quiver::{Clock, RunLimits};
use quiver::{Config, Context, Output};

const START_MS: i64 = 1_767_225_600_000;

/// Runs HOP(slide, size) sum/count over one file per batch; returns
/// window_start → (count, sum).
fn run_hop(batches: &[Vec<i64>], slide_s: i64, size_s: i64) -> BTreeMap<i64, (i64, i64)> {
    let dir = tempfile::tempdir().unwrap();
    for (k, values) in batches.iter().enumerate() {
        let body: String = values.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(dir.path().join(format!("{k:04}.csv")), format!("v\n{body}")).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ctx = Context::new(Config {
            batch_interval: Duration::from_secs(1),
            clock: Clock::Simulated { start_ms: START_MS },
            limits: RunLimits { until_idle: true, ..RunLimits::default() },
            ..Config::default()
        });
        let script = format!(
            "CREATE STREAM s (v BIGINT) WITH (connector = 'files', path = '{}', format = 'csv', max_files_per_batch = 1);
             SELECT window_start, count(*) AS n, sum(v) AS total
             FROM HOP(s, _batch_time, INTERVAL '{slide_s}' SECOND, INTERVAL '{size_s}' SECOND)
             GROUP BY window_start",
            dir.path().display()
        );
        let Some(Output::Query(mut query)) = ctx.sql(&script).await.unwrap().pop() else { panic!("no query") };
        let mut windows = BTreeMap::new();
        while let Some(result) = query.next().await {
            let (start, end) = result.window.unwrap();
            assert_eq!(end - start, size_s * 1000);
            for batch in &result.rows {
                let starts = batch.column(0).as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
                let counts = batch.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
                let sums = batch.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
                for i in 0..batch.num_rows() {
                    assert_eq!(starts.value(i), start);
                    let sum = if sums.is_null(i) { 0 } else { sums.value(i) };
                    assert!(windows.insert(start, (counts.value(i), sum)).is_none(), "window emitted twice");
                }
            }
        }
        query.finish().await.unwrap();
        windows
    })
}

/// The same windows computed directly: union of the batches in [start, end).
fn expected(batches: &[Vec<i64>], slide_s: i64, size_s: i64) -> BTreeMap<i64, (i64, i64)> {
    let mut windows = BTreeMap::new();
    for (k, values) in batches.iter().enumerate() {
        let t = START_MS + k as i64 * 1000;
        let last_start = t - t.rem_euclid(slide_s * 1000);
        let mut start = last_start;
        while start > t - size_s * 1000 {
            if !values.is_empty() {
                let entry = windows.entry(start).or_insert((0, 0));
                entry.0 += values.len() as i64;
                entry.1 += values.iter().sum::<i64>();
            }
            start -= slide_s * 1000;
        }
    }
    windows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn hop_windows_equal_the_union_of_their_batches(
        batches in prop::collection::vec(prop::collection::vec(-1000i64..1000, 0..5), 1..12),
        slide_s in 1i64..4,
        slides_per_window in 1i64..4,
    ) {
        let size_s = slide_s * slides_per_window;
        let actual = run_hop(&batches, slide_s, size_s);
        prop_assert_eq!(actual, expected(&batches, slide_s, size_s));
    }
}
