//! The file sink through its public API: results written as a background
//! query would write them, then read back with DataFusion's own Parquet, CSV
//! and JSON readers (no quiver code on the read side). Rolling, Hive
//! partitions, schema fidelity, idempotent replays, failure handling.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use quiver::Options;
use quiver::{Progress, QueryResult};
use quiver::{SinkDef, SinkError, open_sink};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]))
}

/// Batch `id` at time T0 + id s: rows (k, id * 100 + i) for each k in `keys`.
fn result(id: u64, keys: &[&str]) -> QueryResult {
    let schema = schema();
    let k: Vec<&str> = keys.to_vec();
    let n: Vec<i64> = (0..keys.len() as i64)
        .map(|i| id as i64 * 100 + i)
        .collect();
    let rows = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(k)),
            Arc::new(Int64Array::from(n)),
        ],
    )
    .unwrap();
    QueryResult {
        query: Arc::from("q"),
        batch_id: id,
        batch_time_ms: T0 + id as i64 * 1000,
        window: None,
        schema,
        rows: vec![rows],
        progress: Progress::default(),
        input: Default::default(),
        offsets: Vec::new(),
    }
}

fn def(dir: &Path, connector: &str, options: &[(&str, &str)]) -> SinkDef {
    let mut pairs: Vec<(String, String)> = vec![("path".into(), dir.display().to_string())];
    pairs.extend(options.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    SinkDef::new("out", connector, schema(), Options::new(pairs))
}

/// Visible files under `dir` (no `.` / `_` path component), sorted, relative.
fn visible_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(['.', '_']) {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir`, hidden ones included.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

async fn query(ctx: &SessionContext, sql: &str) -> String {
    let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&rows).unwrap().to_string()
}

fn url(dir: &Path) -> String {
    format!("{}/", dir.display())
}

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
async fn replaying_committed_batches_writes_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = def(
        dir.path(),
        "parquet",
        &[("partition_by", "k"), ("rollover_rows", "3")],
    );
    let mut sink = open_sink(&d).unwrap();
    for id in 0..5 {
        sink.write(&result(id, &["a", "b"])).unwrap();
    }
    sink.close().unwrap();
    // A restarted query replays batches 0..=4 and goes on to 7.
    let mut sink = open_sink(&d).unwrap();
    for id in 0..8 {
        sink.write(&result(id, &["a", "b"])).unwrap();
    }
    assert!(
        sink.status().contains("replayed rows skipped"),
        "{}",
        sink.status()
    );
    sink.close().unwrap();
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "t",
        url(dir.path()),
        ParquetReadOptions::default().table_partition_cols(vec![("k".into(), DataType::Utf8)]),
    )
    .await
    .unwrap();
    let out = query(
        &ctx,
        "SELECT count(*) AS c, count(DISTINCT n) AS d, sum(n) AS s FROM t",
    )
    .await;
    // 8 batches × 2 rows, each once: n = id*100 + {0,1}.
    assert!(out.contains("| 16 | 16 | 5608 |"), "{out}");
}

#[tokio::test]
async fn every_window_closing_in_one_batch_is_written_once_also_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    // One file per row, were files finished between results of a batch.
    let d = def(
        dir.path(),
        "csv",
        &[("partition_by", "k"), ("rollover_rows", "1")],
    );
    let windows = |id| {
        let mut second = result(id, &["a", "b"]);
        second.rows = result(id + 50, &["a"]).rows;
        [result(id, &["a", "b"]), second]
    };
    for _run in 0..2 {
        let mut sink = open_sink(&d).unwrap();
        for id in 0..3 {
            for r in windows(id) {
                sink.write(&r).unwrap();
            }
        }
        sink.close().unwrap();
    }
    let ctx = SessionContext::new();
    ctx.register_csv(
        "t",
        url(dir.path()),
        CsvReadOptions::new().table_partition_cols(vec![("k".into(), DataType::Utf8)]),
    )
    .await
    .unwrap();
    let out = query(
        &ctx,
        "SELECT k, count(*) AS c, sum(n) AS s FROM t GROUP BY k ORDER BY k",
    )
    .await;
    // Per batch id: a gets id*100 and (id+50)*100, b gets id*100 + 1.
    assert!(
        out.contains("| a | 6 | 15600 |") && out.contains("| b | 3 | 303   |"),
        "{out}"
    );
}

#[tokio::test]
async fn a_new_run_reusing_batch_ids_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = def(dir.path(), "parquet", &[]);
    let mut sink = open_sink(&d).unwrap();
    sink.write(&result(0, &["a"])).unwrap();
    sink.close().unwrap();
    let mut sink = open_sink(&d).unwrap();
    let mut later = result(0, &["a"]);
    later.batch_time_ms += 3_600_000;
    let err = sink.write(&later).unwrap_err().to_string();
    assert!(
        err.contains("batch 0 was committed with batch time 2026-01-01 00:00:00, but this run's batch 0 has time 2026-01-01 01:00:00")
            && err.contains("not a replay")
            && err.contains(&format!("Delete {}", dir.path().display())),
        "{err}"
    );
}

/// Writes batches 0..3 (one result each) and closes the sink.
fn committed_run(d: &SinkDef) {
    let mut sink = open_sink(d).unwrap();
    for id in 0..3 {
        let mut r = result(id, &["a"]);
        r.input.digest = id;
        r.input.offsets = format!("s in={id}.csv");
        sink.write(&r).unwrap();
    }
    sink.close().unwrap();
}

#[tokio::test]
async fn a_restart_with_the_same_batch_times_but_other_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = def(dir.path(), "csv", &[]);
    committed_run(&d);
    let files = visible_files(dir.path());
    // Batch 0 replays; batch 1 read another file.
    let mut sink = open_sink(&d).unwrap();
    let mut r = result(0, &["a"]);
    r.input.offsets = "s in=0.csv".into();
    sink.write(&r).unwrap();
    let mut other = result(1, &["a"]);
    other.input.digest = 7;
    other.input.offsets = "s in=9.csv".into();
    let err = sink.write(&other).unwrap_err().to_string();
    assert!(
        err.contains(
            "batch 1 has the committed batch time 2026-01-01 00:00:01 but this run read other input"
        ) && err.contains("committed [s in=1.csv], now [s in=9.csv]")
            && err.contains("not a replay"),
        "{err}"
    );
    sink.close().unwrap();
    assert_eq!(visible_files(dir.path()), files);
}

#[tokio::test]
async fn a_restart_with_results_in_other_batches_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = def(dir.path(), "csv", &[]);
    committed_run(&d);
    // The committed run had a result in batch 0; this one starts at batch 1.
    let mut sink = open_sink(&d).unwrap();
    let mut r = result(1, &["a"]);
    r.input.digest = 1;
    let err = sink.write(&r).unwrap_err().to_string();
    assert!(
        err.contains("batch 0 (time 2026-01-01 00:00:00) produced results in the committed run but not in this run"),
        "{err}"
    );
}

#[tokio::test]
async fn output_without_a_batch_journal_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = def(dir.path(), "csv", &[]);
    committed_run(&d);
    // What an older quiver left: the commit log, no journal.
    std::fs::remove_file(dir.path().join("_quiver/out/batches")).unwrap();
    let err = open_sink(&d).err().expect("refused").to_string();
    assert!(
        err.contains("did not record each batch's input")
            && err.contains("delete the output directory"),
        "{err}"
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

#[test]
fn an_unwritable_path_is_a_clear_error_and_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the output directory should be: ENOTDIR / EEXIST even as root.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    let err = match open_sink(&def(&blocker.join("out"), "parquet", &[])) {
        Err(e) => e,
        Ok(_) => panic!("opening a sink under a file must fail"),
    };
    assert!(matches!(err, SinkError::File { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("blocker/out") && text.contains("choose another path"),
        "{text}"
    );

    // Permission denied while running: a partition directory that cannot be
    // created. Root ignores permissions, so this part needs a normal user.
    let out = dir.path().join("ro");
    std::fs::create_dir(&out).unwrap();
    let mut sink = open_sink(&def(&out, "parquet", &[("partition_by", "k")])).unwrap();
    sink.write(&result(0, &["a"])).unwrap();
    sink.close().unwrap();
    set_mode(&out, 0o555);
    let probe = out.join("probe");
    if std::fs::create_dir(&probe).is_ok() {
        std::fs::remove_dir(&probe).unwrap();
        set_mode(&out, 0o755);
        eprintln!(
            "skipping the permission-denied half: this user (root?) ignores directory permissions"
        );
        return;
    }
    let mut sink = open_sink(&def(&out, "parquet", &[("partition_by", "k")])).unwrap();
    let err = sink.write(&result(1, &["new"])).unwrap_err().to_string();
    set_mode(&out, 0o755);
    assert!(
        err.contains("k=new")
            && err.contains("Permission denied")
            && err.contains("may write there"),
        "{err}"
    );
    sink.close().unwrap();
    assert_eq!(
        visible_files(&out),
        vec!["k=a/out-00000000-00000000.parquet"]
    );
    assert!(
        all_files(&out)
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".inprogress"))
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Unmounts a small tmpfs when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    /// A 256 KiB tmpfs, when this user may mount one (root in a container
    /// that allows it); `None` otherwise.
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Self(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_stops_the_sink_with_finished_files_intact() {
    let Some(disk) = SmallDisk::mount() else {
        eprintln!(
            "skipping: cannot mount a small tmpfs here (needs root and a permissive container)"
        );
        return;
    };
    let out = disk.0.path().join("out");
    let mut sink = open_sink(&def(
        &out,
        "parquet",
        &[("rollover_rows", "1"), ("compression", "none")],
    ))
    .unwrap();
    // Incompressible-ish rows: ~40 KB per batch, one file per batch.
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("{:032x}", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15_f39c))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let err = (0..100)
        .find_map(|id| sink.write(&result(id, &keys)).err())
        .expect("a 256 KiB disk fills up");
    assert!(matches!(err, SinkError::File { .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("the error: {text}");
    assert!(
        text.contains("free some disk space") && text.contains(&out.display().to_string()),
        "{text}"
    );
    sink.close().unwrap();
    assert!(
        all_files(&out)
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".inprogress"))
    );
    let files = visible_files(&out);
    assert!(!files.is_empty());
    let ctx = SessionContext::new();
    ctx.register_parquet("t", url(&out), ParquetReadOptions::default())
        .await
        .unwrap();
    let rows = query(&ctx, "SELECT count(*) AS c FROM t").await;
    assert!(
        rows.contains(&format!("| {} |", files.len() * 1000)),
        "{rows}"
    );
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

#[test]
fn a_sink_name_that_would_escape_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = def(dir.path(), "parquet", &[]);
    d.name = "../x".into();
    let err = open_sink(&d)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("pick another name"), "{err}");
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
