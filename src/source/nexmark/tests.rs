//! Tests of the nexmark source: polling, options, declared schemas, ends and
//! partitions of the per-kind streams; the combined (Flink) form is tested in
//! [`combined`].

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, TimeUnit, TimestampMillisecondType,
};

use super::*;
use crate::source::{PollContext, Source};

mod combined;
use combined::flink_ddl_schema;

/// The batches of one kind as one batch.
pub(super) fn one(kind: NexmarkKind, batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(&schema(kind), batches).expect("concat")
}

/// An Int64 or timestamp column's values.
pub(super) fn ints(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let col = batch.column_by_name(name).expect("column");
    match col.data_type() {
        DataType::Int64 => col.as_primitive::<Int64Type>().values().to_vec(),
        _ => col
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec(),
    }
}

pub(super) fn opts(pairs: &[(&str, &str)]) -> Options {
    Options::new(pairs.iter().copied())
}

#[test]
fn polling_emits_events_before_the_batch_time_and_drains() {
    let options = opts(&[
        ("kind", "bid"),
        ("seed", "42"),
        ("events", "2500"),
        ("rate", "1000"),
    ]);
    let schema = resolve_schema(None, &options).expect("schema");
    assert_eq!(schema, super::schema(NexmarkKind::Bid));
    let mut source = NexmarkSource::open(schema, &options).expect("open");
    let reference = one(
        NexmarkKind::Bid,
        &NexmarkGenerator::new(42, 1000, 10_000).generate(NexmarkKind::Bid, 0, 2500),
    );
    let mut polled = Vec::new();
    let mut counts = Vec::new();
    for i in 1..=4 {
        assert_eq!(source.is_drained(), i == 4);
        let ctx = PollContext {
            batch_time_ms: 10_000 + i * 1000,
            interval_ms: 1000,
        };
        let data = source.poll_batch(&ctx).expect("poll");
        let rows: usize = data.data.iter().map(RecordBatch::num_rows).sum();
        for b in &data.data {
            assert!(ints(b, "dateTime").iter().all(|t| *t < ctx.batch_time_ms));
        }
        counts.push(rows);
        let position = data.offsets[0].end.clone();
        polled.extend(data.data);
        counts.push(position.parse::<usize>().expect("offset"));
    }
    // 1000 global events per second, 920 of them bids; bounded at 2500 events.
    assert_eq!(counts, vec![920, 1000, 920, 2000, 460, 2500, 0, 2500]);
    assert!(source.is_drained());
    assert_eq!(one(NexmarkKind::Bid, &polled), reference);
}

#[test]
fn unbounded_source_keeps_going() {
    let options = opts(&[("kind", "person"), ("rate", "500")]);
    let mut source = NexmarkSource::open(resolve_schema(None, &options).expect("schema"), &options)
        .expect("open");
    let ctx = PollContext {
        batch_time_ms: 2000,
        interval_ms: 2000,
    };
    let data = source.poll_batch(&ctx).expect("poll");
    // 1000 events in 2 s at 500/s: persons 0, 50, ..., 950.
    assert_eq!(
        data.data.iter().map(RecordBatch::num_rows).sum::<usize>(),
        20
    );
    assert!(!source.is_drained());
}

#[test]
fn declared_columns_project_in_declared_order() {
    let options = opts(&[("kind", "bid"), ("rate", "1000")]);
    let declared = Arc::new(Schema::new(vec![
        Field::new("price", DataType::Int64, true),
        Field::new(
            "datetime",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("auction", DataType::Int64, true),
    ]));
    let schema = resolve_schema(Some(declared.clone()), &options).expect("projection");
    assert_eq!(schema, declared);
    let mut source = NexmarkSource::open(schema, &options).expect("open");
    let data = source
        .poll_batch(&PollContext {
            batch_time_ms: 1000,
            interval_ms: 1000,
        })
        .expect("poll");
    let batch = &data.data[0];
    assert_eq!(batch.schema(), declared);
    let full = one(
        NexmarkKind::Bid,
        &NexmarkGenerator::new(0, 1000, 0).generate(NexmarkKind::Bid, 0, 1000),
    );
    assert_eq!(
        ints(batch, "price"),
        ints(&full, "price")[..batch.num_rows()].to_vec()
    );
    assert_eq!(
        ints(batch, "auction"),
        ints(&full, "auction")[..batch.num_rows()].to_vec()
    );
}

#[test]
fn bad_declarations_and_options_are_errors() {
    let options = opts(&[("kind", "auction")]);
    let unknown = Arc::new(Schema::new(vec![Field::new(
        "bidder",
        DataType::Int64,
        true,
    )]));
    let err = resolve_schema(Some(unknown), &options)
        .expect_err("bidder is not an auction column")
        .to_string();
    assert!(
        err.contains("'bidder'") && err.contains("itemName"),
        "{err}"
    );
    let wrong_type = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
    let err = resolve_schema(Some(wrong_type), &options)
        .expect_err("id is BIGINT")
        .to_string();
    assert!(err.contains("'id'"), "{err}");
    let err = resolve_schema(None, &opts(&[("kind", "bids")]))
        .expect_err("bad kind")
        .to_string();
    assert!(
        err.contains("bids") && err.contains("person, auction, bid"),
        "{err}"
    );
    let err = resolve_schema(None, &opts(&[("rows", "5")]))
        .expect_err("unknown option")
        .to_string();
    assert!(
        err.contains("'rows'") && err.contains("batch_rows"),
        "{err}"
    );
    let err = resolve_schema(None, &opts(&[("rate", "0")]))
        .expect_err("rate 0")
        .to_string();
    assert!(err.contains("rate"), "{err}");
    assert!(NexmarkSource::open(schema(NexmarkKind::Bid), &opts(&[("rate", "0")])).is_err());
    assert!(resolve_schema(None, &opts(&[("seed", "x")])).is_err());
    assert!(
        "Person"
            .parse::<NexmarkKind>()
            .is_ok_and(|k| k == NexmarkKind::Person)
    );
}

/// Polls `source` with 1 s batches from t = 0 until it is drained.
pub(super) fn drain(source: &mut NexmarkSource) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for i in 1..=1000 {
        if source.is_drained() {
            return out;
        }
        let ctx = PollContext {
            batch_time_ms: i * 1000,
            interval_ms: 1000,
        };
        out.extend(source.poll_batch(&ctx).expect("poll").data);
    }
    panic!("the source never drained");
}

#[test]
fn stop_at_ends_the_stream_at_an_event_id() {
    let emitted = |pairs: &[(&str, &str)]| {
        let options = opts(pairs);
        let mut source = NexmarkSource::open(flink_ddl_schema(), &options).expect("open");
        drain(&mut source)
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
    };
    assert_eq!(emitted(&[("stop-at", "1234"), ("rate", "1000")]), 1234);
    assert_eq!(emitted(&[("stop-at", "1234"), ("events.num", "100")]), 100);
    assert_eq!(emitted(&[("stop-at", "-1"), ("events.num", "100")]), 100);
    let err = resolve_schema(Some(flink_ddl_schema()), &opts(&[("stop-at", "-5")]))
        .expect_err("negative")
        .to_string();
    assert!(err.contains("stop-at"), "{err}");
}

/// Rows of each partition of a poll, concatenated (`schema` when empty).
fn by_partition(data: &SourceData, partitions: u32, schema: &SchemaRef) -> Vec<RecordBatch> {
    (0..partitions)
        .map(|p| {
            let batches: Vec<RecordBatch> = data
                .data
                .iter()
                .enumerate()
                .filter(|(i, _)| data.partition_of(*i) == p)
                .map(|(_, b)| b.clone())
                .collect();
            concat_batches(schema, &batches).expect("concat")
        })
        .collect()
}

#[test]
fn partitions_split_events_by_number_and_equal_the_unpartitioned_stream() {
    let mut all_partitions = 0;
    for kind in ["bid", "all"] {
        let base = opts(&[
            ("kind", kind),
            ("seed", "7"),
            ("events", "2500"),
            ("rate", "1000"),
            ("batch_rows", "97"),
        ]);
        let split = base.clone().merged(opts(&[("partitions", "3")]));
        let schema = resolve_schema(None, &base).expect("schema");
        let mut one = NexmarkSource::open(schema.clone(), &base).expect("open");
        let mut three = NexmarkSource::open(schema.clone(), &split).expect("open");
        assert_eq!((one.partition_count(), three.partition_count()), (1, 3));
        let mix = Proportions::default();
        let mut from = 0u64;
        for i in 1..=4 {
            let ctx = PollContext {
                batch_time_ms: i * 1000,
                interval_ms: 1000,
            };
            let whole = one.poll_batch(&ctx).expect("poll");
            assert!(whole.partitions.is_empty());
            let whole = concat_batches(&schema, &whole.data).expect("concat");
            let parts = three.poll_batch(&ctx).expect("poll");
            assert_eq!(parts.offsets.len(), 3);
            let to: u64 = parts.offsets[0].end.parse().expect("offset");
            // The event number of each row of the unpartitioned poll.
            let events: Vec<u64> = (from..to)
                .filter(|n| kind == "all" || mix.of_event(*n) == NexmarkKind::Bid)
                .collect();
            assert_eq!(events.len(), whole.num_rows());
            for (p, rows) in by_partition(&parts, 3, &schema).into_iter().enumerate() {
                let mine: Vec<u32> = (0..events.len() as u32)
                    .filter(|r| events[*r as usize] % 3 == p as u64)
                    .collect();
                let expected = datafusion::arrow::compute::take_record_batch(
                    &whole,
                    &datafusion::arrow::array::UInt32Array::from(mine),
                )
                .expect("take");
                assert_eq!(rows, expected, "{kind}: partition {p} of batch {i}");
                all_partitions += rows.num_rows();
            }
            from = to;
        }
        assert!(one.is_drained() && three.is_drained());
    }
    assert_eq!(all_partitions, 2300 + 2500);
}

#[test]
fn partitions_must_be_positive() {
    let err = Settings::parse(&opts(&[("partitions", "0")]), None).unwrap_err();
    assert!(err.to_string().contains("between 1 and"), "{err}");
}

#[test]
fn a_sought_source_carries_on_and_poll_to_rereads_a_batch_exactly() {
    let options = opts(&[("kind", "bid"), ("events", "5000"), ("rate", "1000")]);
    let schema = resolve_schema(None, &options).expect("schema");
    let ctx = |s: i64| PollContext {
        batch_time_ms: s * 1000,
        interval_ms: 1000,
    };
    let mut running = NexmarkSource::open(schema.clone(), &options).expect("open");
    running.poll_batch(&ctx(1)).expect("poll");
    let before = running.position().expect("position");
    let logged = running.poll_batch(&ctx(2)).expect("poll");
    let after = running.position().expect("position");
    let next = running.poll_batch(&ctx(3)).expect("poll");
    let mut restarted = NexmarkSource::open(schema, &options).expect("open");
    restarted.seek(&before).expect("seek");
    // Replayed at a later batch time, still exactly the logged events.
    let replayed = restarted.poll_to(&ctx(9), &after).expect("replay");
    assert_eq!(replayed.offsets, logged.offsets);
    assert_eq!(replayed.data, logged.data);
    assert_eq!(restarted.poll_batch(&ctx(3)).expect("poll").data, next.data);
    assert!(restarted.seek("x@1").is_err());
}
