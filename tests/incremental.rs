//! Property: window aggregates computed incrementally (partials per pane,
//! merged when a window closes) give exactly the results of aggregating the
//! window's raw rows (`SET incremental_aggregates = false`), for random
//! out-of-order event-time input with late rows and NULL values, over HOP and
//! TUMBLE, with and without group keys, filters and HAVING. And the split is
//! really made: EXPLAIN says so, and the state holds fewer rows.

use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use proptest::prelude::*;
use quiver::{Config, Context, Output};

/// One row: key index, value (None = NULL), event time offset in ms.
type Row = (u8, Option<i64>, i64);

const QUERIES: &[&str] = &[
    "SELECT k, count(*) AS n, count(v) AS nv, sum(v) AS s, min(v) AS lo, max(v) AS hi, avg(v) AS a,
            window_start, window_end
     FROM HOP(s, ts, INTERVAL '2' SECOND, INTERVAL '6' SECOND)
     GROUP BY k, window_start, window_end",
    "SELECT window_start, count(*) AS n, sum(v) AS s
     FROM TUMBLE(s, ts, INTERVAL '3' SECOND)
     GROUP BY window_start",
    "SELECT upper(k) AS key, max(v) AS hi, window_end
     FROM HOP(s, ts, INTERVAL '1' SECOND, INTERVAL '4' SECOND)
     WHERE v > 20
     GROUP BY upper(k), window_end
     HAVING count(*) > 1",
    "SELECT count(*) AS n FROM TUMBLE(s, ts, INTERVAL '2' SECOND)",
    // DataFusion plans a single COUNT(DISTINCT) as a GROUP BY of the
    // distinct keys under a count: the inner GROUP BY is split.
    "SELECT count(DISTINCT k) AS n, window_start FROM HOP(s, ts, INTERVAL '1' SECOND, INTERVAL '3' SECOND)
     GROUP BY window_start",
];

/// Runs `query` over one file per batch; returns its result rows as sorted
/// text, the peak state rows, and the EXPLAIN text.
fn run(batches: &[Vec<Row>], query: &str, incremental: bool) -> (Vec<String>, usize, String) {
    let dir = tempfile::tempdir().unwrap();
    for (i, rows) in batches.iter().enumerate() {
        let mut body = String::from("k,v,ts\n");
        for (k, v, offset) in rows {
            let ms = 1_767_225_600_000 + i as i64 * 1000 + offset;
            let ts = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .naive_utc();
            let v = v.map(|v| v.to_string()).unwrap_or_default();
            body += &format!(
                "{},{v},{}\n",
                ["a", "b", "c"][*k as usize],
                ts.format("%Y-%m-%dT%H:%M:%S%.3f")
            );
        }
        std::fs::write(dir.path().join(format!("{i:04}.csv")), body).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ctx = Context::new(Config::bounded(Duration::from_secs(1)));
        let setup = format!(
            "SET incremental_aggregates = {incremental};
             CREATE STREAM s (k VARCHAR, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
               WITH (connector = 'files', path = '{}', format = 'csv', max_files_per_batch = 1)",
            dir.path().display()
        );
        ctx.sql(&setup).await.unwrap();
        let explain = match ctx.sql(&format!("EXPLAIN {query}")).await.unwrap().pop() {
            Some(Output::Rows(rows)) => datafusion::arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string(),
            other => panic!("EXPLAIN gave {other:?}"),
        };
        let Some(Output::Query(mut handle)) = ctx.sql(query).await.unwrap().pop() else { panic!("no query") };
        let mut lines = Vec::new();
        while let Some(result) = handle.next().await {
            for batch in &result.rows {
                lines.extend(row_texts(batch));
            }
        }
        let summary = handle.finish().await.unwrap();
        lines.sort();
        (lines, summary.peak_state_rows, explain)
    })
}

fn row_texts(batch: &RecordBatch) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
        .collect();
    (0..batch.num_rows())
        .map(|i| {
            formatters
                .iter()
                .map(|f| f.value(i).to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

fn rows() -> impl Strategy<Value = Vec<Vec<Row>>> {
    // Offsets from -3 s to +1 s around the batch's second: out of order,
    // and some rows behind the watermark (late).
    let row = (
        0u8..3,
        prop::option::weighted(0.8, -100i64..100),
        -3000i64..1000,
    );
    prop::collection::vec(prop::collection::vec(row, 0..8), 1..10)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn incremental_aggregates_equal_aggregating_raw_rows(batches in rows(), query in 0..QUERIES.len()) {
        let (incremental, _, explain) = run(&batches, QUERIES[query], true);
        prop_assert!(explain.contains("aggregated from partials per pane"), "not split:\n{explain}");
        let (raw, _, explain) = run(&batches, QUERIES[query], false);
        prop_assert!(!explain.contains("partials"), "split although off:\n{explain}");
        prop_assert_eq!(incremental, raw);
    }
}

#[test]
fn partials_hold_less_state_than_raw_rows() {
    // 40 batches of 30 rows over 3 keys: a pane holds at most 3 partial rows
    // per batch, against up to 30 raw rows.
    let batches: Vec<Vec<Row>> = (0..40)
        .map(|_| {
            (0..30)
                .map(|i| ((i % 3) as u8, Some(i as i64), (i as i64 * 31) % 1000))
                .collect()
        })
        .collect();
    let (incremental, incremental_state, _) = run(&batches, QUERIES[0], true);
    let (raw, raw_state, _) = run(&batches, QUERIES[0], false);
    assert_eq!(incremental, raw);
    assert!(!raw.is_empty());
    assert!(
        incremental_state * 4 < raw_state,
        "incremental state {incremental_state} rows, raw {raw_state} rows"
    );
}

#[test]
fn aggregates_that_do_not_decompose_keep_raw_rows() {
    let batches: Vec<Vec<Row>> = (0..6)
        .map(|b| vec![(0, Some(b), 0), (1, Some(b * 2), 500)])
        .collect();
    for query in [
        "SELECT k, count(*) AS n FROM TUMBLE(s, ts, INTERVAL '2' SECOND) WHERE ts < window_end - INTERVAL '1' SECOND GROUP BY k",
        "SELECT date_part('second', window_start) AS sec, count(*) AS n FROM TUMBLE(s, ts, INTERVAL '2' SECOND) GROUP BY date_part('second', window_start)",
        "SELECT k, array_agg(v) AS vs FROM TUMBLE(s, ts, INTERVAL '2' SECOND) GROUP BY k",
    ] {
        let (rows, _, explain) = run(&batches, query, true);
        assert!(!explain.contains("partials"), "split {query}:\n{explain}");
        assert!(!rows.is_empty(), "{query} produced nothing");
    }
}

#[test]
fn complete_panes_are_compacted_to_one_partial_row_per_group() {
    // HOP(5 s, 30 s) at 1 s batches: six panes per window, five batches per
    // pane. Once the watermark passes a pane its five partial batches are
    // merged: 3 keys × ~7 panes plus the open pane's batches, not 3 keys ×
    // 5 batches × ~7 panes.
    let batches: Vec<Vec<Row>> = (0..60)
        .map(|_| {
            (0..6)
                .map(|i| ((i % 3) as u8, Some(i as i64), i as i64 * 150))
                .collect()
        })
        .collect();
    let query = "SELECT k, count(*) AS n, sum(v) AS s, avg(v) AS a, window_start
                 FROM HOP(s, ts, INTERVAL '5' SECOND, INTERVAL '30' SECOND)
                 GROUP BY k, window_start";
    let (incremental, state, _) = run(&batches, query, true);
    let (raw, _, _) = run(&batches, query, false);
    assert_eq!(incremental, raw);
    assert!(
        state <= 45,
        "{state} partial rows held at most; uncompacted it would be about 93"
    );
}
