//! Tests of the combined (Flink) form of the nexmark source: one row per
//! event with `event_type` and a struct per kind, as nexmark-flink's DDL
//! declares it; its mix, values, declared subsets, options and casts.

use super::*;
use crate::source::nexmark::flink::combined_schema;
use crate::source::nexmark::generator::DEFAULT_BATCH_ROWS;

/// The columns of nexmark-flink's `ddl_gen.sql` as the DDL parser declares
/// them: everything nullable, names as written.
pub(super) fn flink_ddl_schema() -> SchemaRef {
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
