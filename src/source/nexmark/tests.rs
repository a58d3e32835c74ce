//! Tests of the nexmark source: polling, options, declared schemas and the
//! combined (Flink) form.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, TimeUnit, TimestampMillisecondType,
};

use super::*;
use crate::source::{PollContext, Source};

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

fn opts(pairs: &[(&str, &str)]) -> Options {
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

// ---- Combined (Flink) form.

/// The columns of nexmark-flink's `ddl_gen.sql` as the DDL parser declares
/// them: everything nullable, names as written.
fn flink_ddl_schema() -> SchemaRef {
    let row = |kind: NexmarkKind| {
        let fields: Vec<Field> = schema(kind)
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        Field::new(kind.name(), DataType::Struct(fields.into()), true)
    };
    Arc::new(Schema::new(vec![
        Field::new("event_type", DataType::Int32, true),
        row(NexmarkKind::Person),
        row(NexmarkKind::Auction),
        row(NexmarkKind::Bid),
    ]))
}

fn flink_opts(events: u64, rate: u64) -> Options {
    let (events, rate) = (events.to_string(), rate.to_string());
    opts(&[
        ("first-event.rate", rate.as_str()),
        ("next-event.rate", rate.as_str()),
        ("events.num", events.as_str()),
        ("person.proportion", "1"),
        ("auction.proportion", "3"),
        ("bid.proportion", "46"),
        ("max-emit-speed", "true"),
        ("stop-at", "-1"),
        ("seed", "5"),
    ])
}

/// Polls `source` with 1 s batches from t = 0 until it is drained.
fn drain(source: &mut NexmarkSource) -> Vec<RecordBatch> {
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

fn combined(events: u64, rate: u64, batch_rows: Option<&str>) -> RecordBatch {
    let mut options = flink_opts(events, rate);
    if let Some(rows) = batch_rows {
        options = options.merged(opts(&[("batch_rows", rows)]));
    }
    let declared = flink_ddl_schema();
    let schema = resolve_schema(Some(declared.clone()), &options).expect("schema");
    assert_eq!(schema, declared, "the declared schema is generated as is");
    let mut source = NexmarkSource::open(schema.clone(), &options).expect("open");
    let batches = drain(&mut source);
    if let Some(rows) = batch_rows {
        let rows: usize = rows.parse().expect("rows");
        assert!(batches.iter().all(|b| b.num_rows() <= rows));
    }
    assert!(batches.iter().all(|b| b.schema() == schema));
    concat_batches(&schema, &batches).expect("concat")
}

fn event_types(batch: &RecordBatch) -> Vec<i32> {
    batch
        .column_by_name("event_type")
        .expect("event_type")
        .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
        .values()
        .to_vec()
}

#[test]
fn combined_rows_follow_the_1_3_46_mix_in_generation_order() {
    let all = combined(5000, 1000, None);
    assert_eq!(all.num_rows(), 5000);
    let types = event_types(&all);
    let count = |t: i32| types.iter().filter(|x| **x == t).count();
    assert_eq!((count(0), count(1), count(2)), (100, 300, 4600));
    for (n, t) in types.iter().enumerate() {
        let expected = match n % 50 {
            0 => 0,
            1..=3 => 1,
            _ => 2,
        };
        assert_eq!(*t, expected, "event {n}");
    }
    // Exactly the struct of the event's kind is set; its time is event n's (rate 1000/s: n ms).
    for (column, kind) in [("person", 0), ("auction", 1), ("bid", 2)] {
        let structs = all.column_by_name(column).expect(column).as_struct();
        let times = structs
            .column_by_name("dateTime")
            .expect("dateTime")
            .as_primitive::<TimestampMillisecondType>();
        for (n, t) in types.iter().enumerate() {
            assert_eq!(structs.is_valid(n), *t == kind, "{column} at event {n}");
            if *t == kind {
                assert_eq!(times.value(n), n as i64);
            }
        }
    }
}

#[test]
fn combined_values_equal_the_per_kind_streams() {
    let all = combined(3000, 1000, Some("128"));
    assert_eq!(
        all,
        combined(3000, 1000, None),
        "batch_rows changes no value"
    );
    let types = event_types(&all);
    for kind in [NexmarkKind::Person, NexmarkKind::Auction, NexmarkKind::Bid] {
        let options = opts(&[
            ("kind", kind.name()),
            ("events", "3000"),
            ("rate", "1000"),
            ("seed", "5"),
        ]);
        let mut source = NexmarkSource::open(schema(kind), &options).expect("open");
        let flat = one(kind, &drain(&mut source));
        let keep: datafusion::arrow::array::BooleanArray = types
            .iter()
            .map(|t| Some(*t == kind.event_type()))
            .collect();
        let structs = all.column_by_name(kind.name()).expect("struct");
        let picked = datafusion::arrow::compute::filter(structs.as_ref(), &keep).expect("filter");
        let picked = picked.as_struct();
        assert_eq!(picked.len(), flat.num_rows(), "{kind:?}");
        for (i, field) in schema(kind).fields().iter().enumerate() {
            assert_eq!(
                picked.column(i).to_data(),
                flat.column(i).to_data(),
                "{kind:?}.{}",
                field.name()
            );
        }
    }
}

#[test]
fn combined_mode_is_picked_by_kind_all_or_flink_columns() {
    let full = resolve_schema(None, &opts(&[("kind", "all")])).expect("kind = all");
    assert_eq!(full, combined_schema());
    assert_eq!(
        resolve_schema(Some(flink_ddl_schema()), &opts(&[])).expect("ddl"),
        flink_ddl_schema()
    );
    // Without columns and without kind, the stream stays bids (as before).
    assert_eq!(
        resolve_schema(None, &opts(&[])).expect("bids"),
        schema(NexmarkKind::Bid)
    );
}

#[test]
fn combined_declared_subset_and_order_are_generated_as_declared() {
    let declared = Arc::new(Schema::new(vec![
        Field::new(
            "bid",
            DataType::Struct(
                vec![
                    Field::new("price", DataType::Int64, true),
                    Field::new("AUCTION", DataType::Int64, true),
                ]
                .into(),
            ),
            true,
        ),
        Field::new("event_type", DataType::Int32, false),
    ]));
    let options = opts(&[("events", "100"), ("rate", "1000")]);
    let schema = resolve_schema(Some(declared.clone()), &options).expect("subset");
    assert_eq!(schema, declared);
    let mut source = NexmarkSource::open(schema, &options).expect("open");
    let batch = concat_batches(&declared, &drain(&mut source)).expect("concat");
    assert_eq!(batch.schema(), declared);
    assert_eq!(batch.num_rows(), 100);
    let bids = batch.column(0).as_struct();
    assert_eq!(
        bids.null_count(),
        8,
        "events 0..=3 and 50..=53 are not bids"
    );
    let prices = bids.column(0).as_primitive::<Int64Type>();
    assert!((4..50).all(|n| prices.is_valid(n) && prices.value(n) > 0));
}

#[test]
fn combined_schema_mismatches_name_the_column() {
    let with_bid = |fields: Vec<Field>| {
        Arc::new(Schema::new(vec![
            Field::new("event_type", DataType::Int32, true),
            Field::new("bid", DataType::Struct(fields.into()), true),
        ]))
    };
    let err = |declared: SchemaRef| {
        resolve_schema(Some(declared), &opts(&[]))
            .expect_err("mismatch")
            .to_string()
    };
    let e = err(with_bid(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("price", DataType::Utf8, true),
    ]));
    assert!(e.contains("'bid.price'") && e.contains("Int64"), "{e}");
    let e = err(with_bid(vec![Field::new("seller", DataType::Int64, true)]));
    assert!(e.contains("'bid.seller'") && e.contains("bidder"), "{e}");
    let e = err(Arc::new(Schema::new(vec![Field::new(
        "event_type",
        DataType::Int64,
        true,
    )])));
    assert!(e.contains("'event_type'") && e.contains("Int32"), "{e}");
    let e = err(Arc::new(Schema::new(vec![
        Field::new("event_type", DataType::Int32, true),
        Field::new("person", DataType::Utf8, true),
    ])));
    assert!(e.contains("'person'") && e.contains("ROW<"), "{e}");
    let e = resolve_schema(
        Some(Arc::new(Schema::new(vec![Field::new(
            "dateTime",
            DataType::Int64,
            true,
        )]))),
        &opts(&[("kind", "all")]),
    )
    .expect_err("not a combined column")
    .to_string();
    assert!(e.contains("'dateTime'") && e.contains("event_type"), "{e}");
}

#[test]
fn flink_option_errors_are_clear() {
    let err = |pairs: &[(&str, &str)]| {
        resolve_schema(Some(flink_ddl_schema()), &opts(pairs))
            .expect_err("refused")
            .to_string()
    };
    let e = err(&[("events.nums", "5")]);
    assert!(
        e.contains("'events.nums'") && e.contains("events.num"),
        "{e}"
    );
    let e = err(&[("auction.proportion", "0")]);
    assert!(
        e.contains("'auction.proportion'") && e.contains("between 1 and"),
        "{e}"
    );
    let e = err(&[("person.proportion", "one")]);
    assert!(e.contains("'person.proportion'"), "{e}");
    let e = err(&[("first-event.rate", "100"), ("next-event.rate", "200")]);
    assert!(e.contains("next-event.rate") && e.contains("100"), "{e}");
    let e = err(&[("rate", "100"), ("first-event.rate", "200")]);
    assert!(
        e.contains("first-event.rate") && e.contains("'rate'"),
        "{e}"
    );
    let e = err(&[("events", "1"), ("events.num", "2")]);
    assert!(e.contains("events.num") && e.contains("only one"), "{e}");
    let e = err(&[("first-event.rate", "0")]);
    assert!(e.contains("first-event.rate") && e.contains("> 0"), "{e}");
    let e = err(&[("keep-alive", "yes")]);
    assert!(e.contains("keep-alive") && e.contains("'true'"), "{e}");
    let e = err(&[("stop-at", "soon")]);
    assert!(e.contains("stop-at"), "{e}");
    let e = err(&[("kind", "everything")]);
    assert!(e.contains("all"), "{e}");
    // Equal aliases are fine.
    assert!(
        resolve_schema(
            Some(flink_ddl_schema()),
            &opts(&[
                ("events", "7"),
                ("events.num", "7"),
                ("keep-alive", "FALSE")
            ])
        )
        .is_ok()
    );
}

#[test]
fn keep_alive_never_drains() {
    let options = flink_opts(100, 1000).merged(opts(&[("keep-alive", "true")]));
    let mut source = NexmarkSource::open(flink_ddl_schema(), &options).expect("open");
    for i in 1..=3 {
        let data = source
            .poll_batch(&PollContext {
                batch_time_ms: i * 1000,
                interval_ms: 1000,
            })
            .expect("poll");
        let rows: usize = data.data.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, if i == 1 { 100 } else { 0 });
        assert!(!source.is_drained());
    }
}

/// `ty` with every `Utf8` (also inside structs) turned into `Utf8View`, as
/// DataFusion's SQL planner maps `VARCHAR`.
fn as_view(ty: &DataType) -> DataType {
    match ty {
        DataType::Utf8 => DataType::Utf8View,
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| f.as_ref().clone().with_data_type(as_view(f.data_type())))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn view_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_data_type(as_view(f.data_type())))
            .collect::<Vec<_>>(),
    ))
}

#[test]
fn varchar_declared_as_utf8view_is_cast() {
    // Combined form.
    let declared = view_schema(&flink_ddl_schema());
    let options = flink_opts(200, 1000);
    let schema = resolve_schema(Some(declared.clone()), &options).expect("utf8view fits");
    assert_eq!(schema, declared);
    let mut source = NexmarkSource::open(schema, &options).expect("open");
    let views = concat_batches(&declared, &drain(&mut source)).expect("concat");
    let plain = combined(200, 1000, None);
    let bids = views.column_by_name("bid").expect("bid").as_struct();
    let url = bids.column_by_name("url").expect("url");
    assert_eq!(url.data_type(), &DataType::Utf8View);
    let url = datafusion::arrow::compute::cast(url, &DataType::Utf8).expect("cast");
    let plain_url = plain
        .column_by_name("bid")
        .expect("bid")
        .as_struct()
        .column_by_name("url")
        .expect("url")
        .clone();
    assert_eq!(url.to_data(), plain_url.to_data());
    // Per kind, in a declared order.
    let declared = view_schema(&Schema::new(vec![
        Field::new("url", DataType::Utf8, true),
        Field::new("price", DataType::Int64, true),
    ]));
    let options = opts(&[("kind", "bid"), ("events", "100"), ("rate", "1000")]);
    let mut source = NexmarkSource::open(
        resolve_schema(Some(declared.clone()), &options).expect("per kind"),
        &options,
    )
    .expect("open");
    let batch = concat_batches(&declared, &drain(&mut source)).expect("concat");
    assert_eq!(batch.schema(), declared);
    assert_eq!(batch.num_rows(), 92);
    // A string is still not a number.
    let wrong = Arc::new(Schema::new(vec![Field::new(
        "price",
        DataType::Utf8View,
        true,
    )]));
    assert!(resolve_schema(Some(wrong), &options).is_err());
}

/// `cargo test --release --lib -- --ignored --nocapture combined_generation_speed`
#[test]
#[ignore]
fn combined_generation_speed() {
    let generator = NexmarkGenerator::new(7, 1_000_000, 0).with_batch_rows(DEFAULT_BATCH_ROWS);
    let layout = CombinedLayout::new(None).expect("layout");
    let events: u64 = 2_000_000;
    let time = |f: &dyn Fn(u64, u64) -> usize| {
        let start = std::time::Instant::now();
        let mut rows = 0;
        for from in (0..events).step_by(100_000) {
            rows += f(from, from + 100_000);
        }
        (rows, start.elapsed().as_secs_f64())
    };
    let (bids, per_kind) = time(&|a, b| {
        generator
            .generate(NexmarkKind::Bid, a, b)
            .iter()
            .map(RecordBatch::num_rows)
            .sum()
    });
    let (kinds, three) = time(&|a, b| {
        [NexmarkKind::Person, NexmarkKind::Auction, NexmarkKind::Bid]
            .iter()
            .flat_map(|k| generator.generate(*k, a, b))
            .map(|b| b.num_rows())
            .sum()
    });
    println!("three kinds: {kinds} rows in {three:.3} s");
    let (all, combined) = time(&|a, b| {
        layout
            .generate(&generator, a, b, DEFAULT_BATCH_ROWS)
            .expect("generate")
            .iter()
            .map(RecordBatch::num_rows)
            .sum()
    });
    println!(
        "per kind: {bids} bids in {per_kind:.3} s ({:.1} M events/s); combined: {all} events in {combined:.3} s ({:.1} M events/s)",
        events as f64 / per_kind / 1e6,
        events as f64 / combined / 1e6
    );
}

#[test]
fn other_proportions_change_the_mix_in_both_forms() {
    let mix = [
        ("person.proportion", "2"),
        ("auction.proportion", "1"),
        ("bid.proportion", "7"),
        ("events", "1000"),
        ("rate", "1000"),
        ("seed", "11"),
    ];
    let options = opts(&mix);
    let mut source = NexmarkSource::open(flink_ddl_schema(), &options).expect("open");
    let all = concat_batches(&flink_ddl_schema(), &drain(&mut source)).expect("concat");
    let types = event_types(&all);
    assert_eq!(&types[..10], &[0, 0, 1, 2, 2, 2, 2, 2, 2, 2]);
    let count = |t: i32| types.iter().filter(|x| **x == t).count();
    assert_eq!((count(0), count(1), count(2)), (200, 100, 700));
    let persons = all.column_by_name("person").expect("person").as_struct();
    let keep: datafusion::arrow::array::BooleanArray =
        types.iter().map(|t| Some(*t == 0)).collect();
    let persons = datafusion::arrow::compute::filter(persons, &keep).expect("filter");
    let ids = persons.as_struct().column(0).as_primitive::<Int64Type>();
    assert_eq!(ids.values().to_vec(), (1000..1200).collect::<Vec<_>>());
    for kind in [NexmarkKind::Person, NexmarkKind::Auction, NexmarkKind::Bid] {
        let options = opts(&mix).merged(opts(&[("kind", kind.name())]));
        let mut source = NexmarkSource::open(schema(kind), &options).expect("open");
        let flat = one(kind, &drain(&mut source));
        let keep: datafusion::arrow::array::BooleanArray = types
            .iter()
            .map(|t| Some(*t == kind.event_type()))
            .collect();
        let structs = all.column_by_name(kind.name()).expect("struct");
        let picked = datafusion::arrow::compute::filter(structs.as_ref(), &keep).expect("filter");
        for i in 0..flat.num_columns() {
            assert_eq!(
                picked.as_struct().column(i).to_data(),
                flat.column(i).to_data(),
                "{kind:?} column {i}"
            );
        }
    }
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
