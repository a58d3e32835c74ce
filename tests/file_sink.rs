//! The file sink through its public API: results written as a background
//! query would write them, then read back with DataFusion's own Parquet, CSV
//! and JSON readers (no quiver code on the read side). Rolling, Hive
//! partitions, schema fidelity, sink tables. Replays, refused restarts and
//! failures: tests/file_sink_faults.rs.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use quiver::open_sink;
use quiver::{Progress, QueryResult};

mod common;

use common::file_sink::{T0, def, query, result, url, visible_files};

#[tokio::test]
async fn consecutive_batches_roll_into_few_files_that_datafusion_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open_sink(&def(dir.path(), "parquet", &[("rollover_rows", "6")])).unwrap();
    for id in 0..10 {
        sink.write(&result(id, &["a", "b"])).unwrap();
        // Never a half-written file in sight while the query runs.
        for f in visible_files(dir.path()) {
            assert!(f.ends_with(".parquet"), "{f}");
        }
    }
    // 2 rows per batch, roll at >= 6 rows: batches 0-2, 3-5, 6-8, then 9 at close.
    assert_eq!(visible_files(dir.path()).len(), 3);
    assert!(
        sink.status().contains("1 open (2 rows"),
        "{}",
        sink.status()
    );
    sink.close().unwrap();
    assert_eq!(
        visible_files(dir.path()),
        vec![
            "out-00000000-00000002.parquet",
            "out-00000003-00000005.parquet",
            "out-00000006-00000008.parquet",
            "out-00000009-00000009.parquet",
        ]
    );
    assert!(
        sink.status().starts_with("4 files, 20 rows"),
        "{}",
        sink.status()
    );
    let ctx = SessionContext::new();
    ctx.register_parquet("t", url(dir.path()), ParquetReadOptions::default())
        .await
        .unwrap();
    let out = query(
        &ctx,
        "SELECT k, count(*) AS c, sum(n) AS s, min(n) AS lo, max(n) AS hi FROM t GROUP BY k ORDER BY k",
    )
    .await;
    assert_eq!(
        out,
        "+---+----+------+----+-----+\n\
         | k | c  | s    | lo | hi  |\n\
         +---+----+------+----+-----+\n\
         | a | 10 | 4500 | 0  | 900 |\n\
         | b | 10 | 4510 | 1  | 901 |\n\
         +---+----+------+----+-----+"
    );
}

#[tokio::test]
async fn rollover_interval_uses_batch_time_and_bytes_limit_rolls_big_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open_sink(&def(dir.path(), "parquet", &[("rollover_interval", "10s")])).unwrap();
    for id in 0..35 {
        sink.write(&result(id, &["a"])).unwrap();
    }
    sink.close().unwrap();
    assert_eq!(
        visible_files(dir.path()),
        vec![
            "out-00000000-00000009.parquet",
            "out-00000010-00000019.parquet",
            "out-00000020-00000029.parquet",
            "out-00000030-00000034.parquet",
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open_sink(&def(
        dir.path(),
        "filesystem",
        &[("format", "csv"), ("sink.rolling-policy.file-size", "10B")],
    ))
    .unwrap();
    for id in 0..3 {
        sink.write(&result(id, &["a", "b"])).unwrap();
    }
    sink.close().unwrap();
    // Header + two rows exceed 10 bytes: one file per batch.
    assert_eq!(visible_files(dir.path()).len(), 3);
}

#[tokio::test]
async fn hive_partitions_are_read_back_as_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open_sink(&def(dir.path(), "parquet", &[("partition_by", "k")])).unwrap();
    for id in 0..4 {
        sink.write(&result(id, &["a", "b", "a", "c d"])).unwrap();
    }
    sink.close().unwrap();
    assert_eq!(
        visible_files(dir.path()),
        vec![
            "k=a/out-00000000-00000003.parquet",
            "k=b/out-00000000-00000003.parquet",
            "k=c%20d/out-00000000-00000003.parquet",
        ]
    );
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "t",
        url(dir.path()),
        ParquetReadOptions::default().table_partition_cols(vec![("k".into(), DataType::Utf8)]),
    )
    .await
    .unwrap();
    let out = query(&ctx, "SELECT k, count(*) AS c FROM t GROUP BY k ORDER BY k").await;
    assert_eq!(
        out,
        "+-----+---+\n\
         | k   | c |\n\
         +-----+---+\n\
         | a   | 8 |\n\
         | b   | 4 |\n\
         | c d | 4 |\n\
         +-----+---+"
    );
    // The partition column is not inside the files.
    let file = dir.path().join("k=a/out-00000000-00000003.parquet");
    let direct = SessionContext::new();
    direct
        .register_parquet(
            "f",
            file.display().to_string(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        query(&direct, "SELECT count(*) AS c FROM f WHERE n >= 0")
            .await
            .lines()
            .nth(3),
        Some("| 8 |")
    );
}

#[tokio::test]
async fn timestamps_with_time_zone_and_nested_types_survive() {
    let dir = tempfile::tempdir().unwrap();
    let item = Arc::new(Field::new("item", DataType::Int64, true));
    let point = vec![
        Field::new("x", DataType::Int64, false),
        Field::new("tag", DataType::Utf8, true),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
            false,
        ),
        Field::new("tags", DataType::List(item.clone()), true),
        Field::new("p", DataType::Struct(point.clone().into()), true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(vec![T0, T0 + 1]).with_timezone("+02:00")),
        Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
        ])),
        Arc::new(StructArray::new(
            point.into(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("x"), None])),
            ],
            None,
        )),
    ];
    let rows = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut d = def(
        dir.path(),
        "parquet",
        &[("compression", "snappy"), ("row_group_rows", "1")],
    );
    d.schema = schema.clone();
    let mut sink = open_sink(&d).unwrap();
    sink.write(&QueryResult {
        query: Arc::from("q"),
        batch_id: 0,
        batch_time_ms: T0,
        window: None,
        schema: schema.clone(),
        rows: vec![rows.clone()],
        progress: Progress::default(),
        input: Default::default(),
        offsets: Vec::new(),
    })
    .unwrap();
    sink.close().unwrap();
    let ctx = SessionContext::new();
    ctx.register_parquet("t", url(dir.path()), ParquetReadOptions::default())
        .await
        .unwrap();
    let back = ctx
        .sql("SELECT * FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(back[0].schema().fields(), schema.fields());
    let merged = datafusion::arrow::compute::concat_batches(&back[0].schema(), &back).unwrap();
    assert_eq!(merged.columns(), rows.columns());
}

#[tokio::test]
async fn csv_and_ndjson_use_the_same_rolling_machinery() {
    for (connector, ext) in [("csv", "csv"), ("ndjson", "ndjson")] {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = open_sink(&def(
            dir.path(),
            connector,
            &[("rollover_rows", "4"), ("partition_by", "k")],
        ))
        .unwrap();
        for id in 0..6 {
            sink.write(&result(id, &["a", "b"])).unwrap();
        }
        sink.close().unwrap();
        let files = visible_files(dir.path());
        // One row per partition per batch, roll at 4 rows: batches 0-3 and 4-5.
        assert_eq!(files.len(), 4, "{files:?}");
        assert!(files.iter().all(|f| f.ends_with(ext)), "{files:?}");
        let ctx = SessionContext::new();
        let partition = vec![("k".to_string(), DataType::Utf8)];
        if ext == "csv" {
            let options = CsvReadOptions::new().table_partition_cols(partition);
            ctx.register_csv("t", url(dir.path()), options)
                .await
                .unwrap();
        } else {
            let options = JsonReadOptions::default()
                .file_extension(".ndjson")
                .table_partition_cols(partition);
            ctx.register_json("t", url(dir.path()), options)
                .await
                .unwrap();
        }
        let out = query(
            &ctx,
            "SELECT k, count(*) AS c, sum(n) AS s FROM t GROUP BY k ORDER BY k",
        )
        .await;
        assert!(
            out.contains("| a | 6 | 1500 |") && out.contains("| b | 6 | 1506 |"),
            "{out}"
        );
    }
}

#[tokio::test]
async fn timestamp_partitions_are_escaped_in_paths_and_decoded_by_readers() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "window_start",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("n", DataType::Int64, false),
    ]));
    let mut d = def(dir.path(), "parquet", &[("partition_by", "window_start")]);
    d.schema = schema.clone();
    let mut sink = open_sink(&d).unwrap();
    let rows = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![T0, T0 + 10_000, T0])),
            Arc::new(Int64Array::from(vec![1, 2, 3])),
        ],
    )
    .unwrap();
    sink.write(&QueryResult {
        query: Arc::from("q"),
        batch_id: 0,
        batch_time_ms: T0,
        window: None,
        schema,
        rows: vec![rows],
        progress: Progress::default(),
        input: Default::default(),
        offsets: Vec::new(),
    })
    .unwrap();
    sink.close().unwrap();
    assert_eq!(
        visible_files(dir.path()),
        vec![
            "window_start=2026-01-01T00%3A00%3A00/out-00000000-00000000.parquet",
            "window_start=2026-01-01T00%3A00%3A10/out-00000000-00000000.parquet",
        ]
    );
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "t",
        url(dir.path()),
        ParquetReadOptions::default()
            .table_partition_cols(vec![("window_start".into(), DataType::Utf8)]),
    )
    .await
    .unwrap();
    let out = query(
        &ctx,
        "SELECT window_start, sum(n) AS s FROM t GROUP BY window_start ORDER BY window_start",
    )
    .await;
    assert_eq!(
        out,
        "+---------------------+---+\n\
         | window_start        | s |\n\
         +---------------------+---+\n\
         | 2026-01-01T00:00:00 | 4 |\n\
         | 2026-01-01T00:00:10 | 2 |\n\
         +---------------------+---+"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sink_table_is_readable_once_its_files_are_finished() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = quiver::Context::new(quiver::Config::bounded(std::time::Duration::from_secs(1)));
    ctx.sql(&format!(
        "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', rate = 1000, events = 3000);
         CREATE SINK hot AS SELECT auction, price FROM bids WITH (connector = 'parquet', path = '{}')",
        dir.path().join("hot").display()
    ))
    .await
    .unwrap();
    ctx.background().wait_all().await;
    let Some(quiver::Output::Rows(rows)) = ctx.sql("SELECT count(*) FROM hot").await.unwrap().pop()
    else {
        panic!("expected rows");
    };
    let text = pretty_format_batches(&rows).unwrap().to_string();
    assert!(text.contains("| 2760     |"), "{text}");
}
