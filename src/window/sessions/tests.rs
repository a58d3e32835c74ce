//! Unit and property tests of the open sessions.

use super::*;
use datafusion::arrow::array::{Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use std::sync::Arc;

const GAP: i64 = 10;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("t", DataType::Int64, false),
        Field::new("k", DataType::Utf8, true),
    ]))
}

fn closed_schema() -> SchemaRef {
    crate::window::with_window_columns(&schema())
}

fn insert(open: &mut OpenSessions, rows: &[(i64, Option<&str>)]) {
    let times: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let keys: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema(),
        vec![Arc::new(Int64Array::from(times.clone())), keys.clone()],
    )
    .unwrap();
    open.insert(batch, &times, &[keys]).unwrap();
}

/// `(key, time, window_start, window_end)` of the rows closed at `watermark`.
fn close(open: &mut OpenSessions, watermark: i64) -> Vec<(Option<String>, i64, i64, i64)> {
    let Some(batch) = open.close(watermark, &closed_schema()).unwrap() else {
        return Vec::new();
    };
    let column = |i: usize| cast(batch.column(i), &DataType::Int64).unwrap();
    let (t, s, e) = (column(0), column(2), column(3));
    let int = |a: &ArrayRef, i| a.as_any().downcast_ref::<Int64Array>().unwrap().value(i);
    let k = batch
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let mut rows: Vec<_> = (0..batch.num_rows())
        .map(|i| {
            let key = k.is_valid(i).then(|| k.value(i).to_string());
            (key, int(&t, i), int(&s, i), int(&e, i))
        })
        .collect();
    rows.sort();
    rows
}

fn key(k: Option<&str>) -> Option<String> {
    k.map(str::to_string)
}

#[test]
fn an_out_of_order_row_bridges_two_sessions() {
    let mut open = OpenSessions::new(GAP);
    insert(&mut open, &[(0, Some("a")), (15, Some("a"))]);
    assert_eq!(open.next_end(), Some(10));
    insert(&mut open, &[(7, Some("a"))]);
    assert_eq!(open.next_end(), Some(25));
    assert_eq!(close(&mut open, 24), vec![]);
    let a = key(Some("a"));
    assert_eq!(
        close(&mut open, 25),
        vec![
            (a.clone(), 0, 0, 25),
            (a.clone(), 7, 0, 25),
            (a.clone(), 15, 0, 25)
        ]
    );
    assert!(open.is_empty() && open.rows() == 0);
}

#[test]
fn equal_times_share_a_session_and_the_exact_gap_starts_a_new_one() {
    let mut open = OpenSessions::new(GAP);
    insert(
        &mut open,
        &[(5, Some("a")), (5, Some("a")), (15, Some("a"))],
    );
    // A row exactly `gap` before a session's start does not join it either.
    insert(&mut open, &[(-5, Some("a"))]);
    assert_eq!(open.rows(), 4);
    let a = key(Some("a"));
    assert_eq!(
        close(&mut open, 100),
        vec![
            (a.clone(), -5, -5, 5),
            (a.clone(), 5, 5, 15),
            (a.clone(), 5, 5, 15),
            (a.clone(), 15, 15, 25)
        ]
    );
}

#[test]
fn null_is_a_key_of_its_own_and_keys_do_not_mix() {
    let mut open = OpenSessions::new(GAP);
    insert(&mut open, &[(0, None), (3, Some("a")), (6, None)]);
    let (a, none) = (key(Some("a")), key(None));
    assert_eq!(
        close(&mut open, 16),
        vec![(none.clone(), 0, 0, 16), (none, 6, 0, 16), (a, 3, 3, 13)]
    );
}

#[test]
fn the_watermark_closes_only_ended_sessions() {
    let mut open = OpenSessions::new(GAP);
    insert(&mut open, &[(0, Some("a")), (4, Some("b"))]);
    let (a, b) = (key(Some("a")), key(Some("b")));
    assert_eq!(close(&mut open, 9), vec![]);
    assert_eq!(close(&mut open, 10), vec![(a.clone(), 0, 0, 10)]);
    assert_eq!((open.rows(), open.next_end()), (1, Some(14)));
    // A closed session's key starts afresh.
    insert(&mut open, &[(12, Some("a")), (13, Some("b"))]);
    assert_eq!(close(&mut open, 22), vec![(a, 12, 12, 22)]);
    assert_eq!(
        close(&mut open, 23),
        vec![(b.clone(), 4, 4, 23), (b, 13, 4, 23)]
    );
    assert!(open.is_empty() && open.next_end().is_none());
}

#[test]
fn unkeyed_rows_form_one_sequence() {
    let mut open = OpenSessions::new(GAP);
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(vec![0, 9, 30])),
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
        ],
    )
    .unwrap();
    open.insert(batch, &[0, 9, 30], &[]).unwrap();
    let rows = close(&mut open, 40);
    let mut ends: Vec<_> = rows.iter().map(|r| (r.1, r.2, r.3)).collect();
    ends.sort();
    assert_eq!(ends, vec![(0, 0, 19), (9, 0, 19), (30, 30, 40)]);
}

#[test]
fn closed_rows_are_not_retained() {
    let mut open = OpenSessions::new(GAP);
    let mut rows = vec![(0, Some("x")); 70_000];
    rows.push((100, Some("y")));
    insert(&mut open, &rows);
    let before = open.bytes();
    assert_eq!(close(&mut open, 10).len(), 70_000);
    // The one open row was copied out of the mostly closed batch.
    assert_eq!(open.rows(), 1);
    assert_eq!(open.retained_rows, 1);
    assert!(open.bytes() < before / 100, "{} of {before}", open.bytes());
    insert(&mut open, &[(105, Some("y"))]);
    let y = key(Some("y"));
    assert_eq!(
        close(&mut open, i64::MAX),
        vec![(y.clone(), 100, 100, 115), (y, 105, 100, 115)]
    );
    assert!(open.batches.is_empty() && open.by_key.is_empty());
}

/// Every closed row as `(key, time, start, end)`, in the order `close` emits them.
fn close_in_order(open: &mut OpenSessions, watermark: i64) -> Vec<String> {
    let Some(batch) = open.close(watermark, &closed_schema()).unwrap() else {
        return Vec::new();
    };
    let formatted = datafusion::arrow::util::pretty::pretty_format_batches(&[batch]).unwrap();
    formatted.to_string().lines().map(str::to_string).collect()
}

#[test]
fn restored_sessions_close_and_merge_like_the_snapshotted_ones() {
    let batches: [&[(i64, Option<&str>)]; 4] = [
        &[(0, Some("a")), (15, Some("a")), (3, None), (40, Some("b"))],
        &[(30, Some("b")), (7, Some("a")), (2, Some("c"))],
        &[(45, Some("b")), (12, None), (60, Some("a"))],
        &[(50, Some("b")), (65, Some("a")), (20, None)],
    ];
    let watermarks = [0, 12, 18, 100];
    let mut whole = OpenSessions::new(GAP);
    let mut first = OpenSessions::new(GAP);
    let (mut expected, mut got) = (Vec::new(), Vec::new());
    for (rows, watermark) in batches[..2].iter().zip(watermarks) {
        insert(&mut whole, rows);
        insert(&mut first, rows);
        expected.extend(close_in_order(&mut whole, watermark));
        got.extend(close_in_order(&mut first, watermark));
    }
    let snapshot = first.snapshot().unwrap();
    assert_eq!(snapshot.sessions.num_rows(), 4, "{:?}", snapshot.sessions);
    assert_eq!(
        snapshot.sessions.num_columns(),
        4,
        "start, last, rows, key_0"
    );
    drop(first);
    let mut restored = OpenSessions::restore(GAP, snapshot).unwrap();
    assert_eq!(
        (restored.rows(), restored.next_end()),
        (whole.rows(), whole.next_end())
    );
    for (rows, watermark) in batches[2..].iter().zip(&watermarks[2..]) {
        insert(&mut whole, rows);
        insert(&mut restored, rows);
        expected.extend(close_in_order(&mut whole, *watermark));
        got.extend(close_in_order(&mut restored, *watermark));
    }
    assert_eq!(got, expected);
    assert!(restored.is_empty());
}

#[test]
fn a_snapshot_keeps_its_rows_while_the_sessions_go_on() {
    // The snapshot holds references into the retained batches; closing
    // sessions and compacting afterwards must not change what it restores.
    let batches: [&[(i64, Option<&str>)]; 3] = [
        &[(0, Some("a")), (3, Some("b")), (5, None)],
        &[(8, Some("a")), (40, Some("b")), (41, Some("c"))],
        &[(50, Some("a")), (55, Some("c"))],
    ];
    let mut open = OpenSessions::new(GAP);
    open.compact_slack = 0;
    insert(&mut open, batches[0]);
    insert(&mut open, batches[1]);
    let snapshot = open.snapshot().unwrap();
    assert_eq!(snapshot.rows.num_rows(), 6);
    let mut whole = OpenSessions::new(GAP);
    insert(&mut whole, batches[0]);
    insert(&mut whole, batches[1]);
    // The original closes most of its rows and compacts the rest.
    close_in_order(&mut open, 30);
    insert(&mut open, batches[2]);
    close_in_order(&mut open, 100);
    assert!(open.is_empty());
    let mut restored = OpenSessions::restore(GAP, snapshot).unwrap();
    for (rows, watermark) in [(&[][..], 30), (batches[2], 100)] {
        insert(&mut whole, rows);
        insert(&mut restored, rows);
        assert_eq!(
            close_in_order(&mut restored, watermark),
            close_in_order(&mut whole, watermark)
        );
    }
}

#[test]
fn unkeyed_and_empty_sessions_round_trip() {
    let empty = OpenSessions::restore(GAP, OpenSessions::new(GAP).snapshot().unwrap()).unwrap();
    assert!(empty.is_empty() && empty.next_end().is_none());
    let mut open = OpenSessions::new(GAP);
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(vec![0, 5, 30])),
            Arc::new(StringArray::from(vec![Some("a"), None, None])),
        ],
    )
    .unwrap();
    open.insert(batch, &[0, 5, 30], &[]).unwrap();
    let snapshot = open.snapshot().unwrap();
    assert_eq!(snapshot.sessions.num_columns(), 3, "no key columns");
    let mut restored = OpenSessions::restore(GAP, snapshot).unwrap();
    assert_eq!(
        close_in_order(&mut restored, 100),
        close_in_order(&mut open, 100)
    );
}

/// Sessions of each key computed over all rows at once, as the SQL
/// definition does: sorted by time, a new session when `t - prev >= gap`.
fn reference(rows: &[(i64, Option<&str>)]) -> Vec<(Option<String>, i64, i64, i64)> {
    let mut sorted: Vec<_> = rows.iter().map(|(t, k)| (key(*k), *t)).collect();
    sorted.sort();
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 && sorted[j].1 - sorted[j - 1].1 < GAP
        {
            j += 1;
        }
        let (start, end) = (sorted[i].1, sorted[j - 1].1 + GAP);
        out.extend(
            sorted[i..j]
                .iter()
                .map(|(k, t)| (k.clone(), *t, start, end)),
        );
        i = j;
    }
    out.sort();
    out
}

proptest::proptest! {
    /// Batches of out-of-order rows; after each, the watermark follows
    /// the latest time by `lag` and closes sessions (rows behind it are
    /// late and dropped, as the executor does). Everything closed equals
    /// the sessions over all kept rows at once.
    #[test]
    fn matches_sessions_over_all_rows(
        batches in proptest::collection::vec(
            proptest::collection::vec((0i64..200, proptest::option::of(0u8..3)), 0..20),
            1..8,
        ),
        lag in 0i64..60,
        restore_at in 0usize..8,
    ) {
        let names = ["a", "b", "c"];
        let mut open = OpenSessions::new(GAP);
        open.compact_slack = 0;
        let mut all = Vec::new();
        let mut closed = Vec::new();
        let mut watermark = i64::MIN;
        for (i, batch) in batches.iter().enumerate() {
            if i == restore_at {
                // A checkpoint here: the restored sessions carry on.
                open = OpenSessions::restore(GAP, open.snapshot().unwrap()).unwrap();
                open.compact_slack = 0;
            }
            let rows: Vec<_> = batch
                .iter()
                .filter(|(t, _)| *t >= watermark)
                .map(|(t, k)| (*t, k.map(|k| names[k as usize])))
                .collect();
            if !rows.is_empty() {
                insert(&mut open, &rows);
            }
            all.extend(rows.iter().copied());
            if let Some(latest) = rows.iter().map(|r| r.0).max() {
                watermark = watermark.max(latest - lag);
            }
            closed.extend(close(&mut open, watermark));
            proptest::prop_assert!(open.retained_rows <= 2 * open.rows());
        }
        proptest::prop_assert_eq!(open.rows() + closed.len(), all.len());
        closed.extend(close(&mut open, i64::MAX));
        closed.sort();
        proptest::prop_assert_eq!(closed, reference(&all));
        proptest::prop_assert!(open.is_empty());
    }
}
