//! The file sink in the real binary: the `sql/parquet_sink.sql` example read
//! back per window with DataFusion, `SHOW QUERIES` progress, and crashes
//! (`QUIVER_SINK_CRASH` aborts the process at a precise point: rows in an open
//! file, a finished file not yet renamed, a renamed file not yet recorded).
//! After each crash no partial file is visible and committed files are
//! readable; a rerun (the deterministic Nexmark source on the simulated clock
//! replays the same batches) removes stale temp files and ends with exactly
//! the files and rows of an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

/// A per-batch query whose hot-channel bids go to Parquet files partitioned
/// by channel, rolled every 700 rows: several files per partition.
const SCRIPT: &str = "
CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', events = 20000, rate = 1000, batch_rows = 300);
CREATE SINK hot AS SELECT auction, bidder, price, channel, \"dateTime\" FROM bids
  WHERE channel IN ('Google', 'Facebook', 'Baidu', 'Apple')
  WITH (connector = 'parquet', path = 'out', partition_by = 'channel', rollover_rows = 700);
";

fn quiver(dir: &Path, crash: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.current_dir(dir)
        .args(["--clock", "simulated", "--until-idle"])
        .args(args);
    match crash {
        Some(point) => cmd.env("QUIVER_SINK_CRASH", point),
        None => cmd.env_remove("QUIVER_SINK_CRASH"),
    };
    cmd.output().unwrap()
}

fn run_script(dir: &Path, crash: Option<&str>) -> Output {
    quiver(dir, crash, &["-c", SCRIPT])
}

/// (visible files relative to `root`, hidden in-progress files) under `root`.
fn listing(root: &Path) -> (Vec<String>, Vec<PathBuf>) {
    let (mut visible, mut temp) = (Vec::new(), Vec::new());
    let mut stack = vec![(root.to_path_buf(), false)];
    while let Some((dir, hidden)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_hidden = hidden || name.starts_with(['.', '_']);
            if entry.file_type().unwrap().is_dir() {
                stack.push((entry.path(), is_hidden));
            } else if name.ends_with(".inprogress") {
                temp.push(entry.path());
            } else if !is_hidden {
                visible.push(
                    entry
                        .path()
                        .strip_prefix(root)
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
    }
    visible.sort();
    (visible, temp)
}

/// Every visible file read by DataFusion as one partitioned table; the rows
/// sorted, as text.
async fn read_rows(root: &Path) -> String {
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "t",
        format!("{}/", root.display()),
        ParquetReadOptions::default()
            .table_partition_cols(vec![("channel".into(), DataType::Utf8)]),
    )
    .await
    .unwrap();
    let rows = ctx
        .sql("SELECT * FROM t ORDER BY auction, bidder, price, \"dateTime\", channel")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    pretty_format_batches(&rows).unwrap().to_string()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "quiver failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Crashes at `point`, checks what a reader sees, reruns, and compares with
/// an uninterrupted run.
async fn crash_and_recover(point: &str) {
    let reference = tempfile::tempdir().unwrap();
    assert_success(&run_script(reference.path(), None));
    let (expected_files, temp) = listing(&reference.path().join("out"));
    assert!(temp.is_empty());
    assert!(expected_files.len() >= 8, "{expected_files:?}");
    let expected_rows = read_rows(&reference.path().join("out")).await;

    let dir = tempfile::tempdir().unwrap();
    let crashed = run_script(dir.path(), Some(point));
    assert!(!crashed.status.success(), "{point}: quiver did not crash");
    let stderr = String::from_utf8_lossy(&crashed.stderr);
    assert!(
        stderr.contains(&format!("crashing at {}", point.split('@').next().unwrap())),
        "{stderr}"
    );
    let out = dir.path().join("out");
    let (visible, temp) = listing(&out);
    assert!(
        visible.iter().all(|f| f.ends_with(".parquet")),
        "{visible:?}"
    );
    if point.starts_with("after_write") || point.starts_with("after_append") {
        assert!(
            !temp.is_empty(),
            "{point}: the crash should leave an in-progress file"
        );
    }
    // Everything a reader can see is complete: DataFusion reads it all.
    assert!(
        !visible.is_empty(),
        "{point}: crash before any file was finished"
    );
    let partial = read_rows(&out).await;
    assert!(partial.lines().count() < expected_rows.lines().count());

    let rerun = run_script(dir.path(), None);
    assert_success(&rerun);
    let (files, temp) = listing(&out);
    assert!(temp.is_empty(), "{point}: stale temp files left: {temp:?}");
    assert_eq!(files, expected_files, "{point}");
    assert_eq!(read_rows(&out).await, expected_rows, "{point}");
}

#[tokio::test]
async fn crash_with_rows_in_an_open_file() {
    crash_and_recover("after_append@50").await;
}

#[tokio::test]
async fn crash_between_write_and_rename() {
    crash_and_recover("after_write@3").await;
}

#[tokio::test]
async fn crash_between_rename_and_commit_record() {
    crash_and_recover("after_rename@2").await;
}

#[tokio::test]
async fn parquet_example_writes_every_window_once() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/parquet_sink.sql");
    let output = quiver(dir.path(), None, &["run", script.to_str().unwrap()]);
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("(parquet: 2 files, ") && stderr.contains("committed through batch 119"),
        "{stderr}"
    );
    let root = dir.path().join("out/channel_counts");
    let (files, _) = listing(&root);
    assert_eq!(
        files,
        vec![
            "dt=2026-01-01/channel_counts-00000009-00000059.parquet",
            "dt=2026-01-01/channel_counts-00000069-00000119.parquet",
        ]
    );
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "t",
        format!("{}/", root.display()),
        ParquetReadOptions::default().table_partition_cols(vec![("dt".into(), DataType::Utf8)]),
    )
    .await
    .unwrap();
    let rows = ctx
        .sql(
            "SELECT dt, count(DISTINCT window_start) AS windows, sum(bids) AS bids, \
             min(window_start) AS first, max(window_end) AS last FROM t GROUP BY dt",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    // 120000 events at 1000/s: 120 one-second batches, 46 of every 50 events
    // are bids, twelve 10-second windows.
    assert_eq!(
        pretty_format_batches(&rows).unwrap().to_string(),
        "+------------+---------+--------+---------------------+---------------------+\n\
         | dt         | windows | bids   | first               | last                |\n\
         +------------+---------+--------+---------------------+---------------------+\n\
         | 2026-01-01 | 12      | 110400 | 2026-01-01T00:00:00 | 2026-01-01T00:02:00 |\n\
         +------------+---------+--------+---------------------+---------------------+"
    );
    let per_window = ctx
        .sql("SELECT window_start, sum(bids) AS bids FROM t GROUP BY window_start HAVING sum(bids) <> 9200")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(per_window.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

#[tokio::test]
async fn show_queries_reports_files_rows_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ctx = quiver::Context::new(quiver::Config {
        clock: quiver::Clock::Simulated { start_ms: 0 },
        limits: quiver::RunLimits {
            until_idle: true,
            ..Default::default()
        },
        ..Default::default()
    });
    ctx.sql(&SCRIPT.replace("path = 'out'", &format!("path = '{}'", out.display())))
        .await
        .unwrap();
    ctx.background().wait_all().await;
    let Some(quiver::Output::Rows(rows)) = ctx.sql("SHOW QUERIES").await.unwrap().pop() else {
        panic!("SHOW QUERIES returns rows");
    };
    let text = pretty_format_batches(&rows).unwrap().to_string();
    let (files, _) = listing(&out);
    assert!(
        text.contains(&format!("parquet: {} files, ", files.len()))
            && text.contains("rows, ")
            && text.contains("KiB written; committed through batch 19"),
        "{text}"
    );
}

#[tokio::test]
async fn flink_style_create_table_and_insert_into_write_ndjson_files() {
    let dir = tempfile::tempdir().unwrap();
    let script = "
        CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', events = 20000, rate = 1000);
        CREATE TABLE hot_bids (auction BIGINT, price BIGINT, channel VARCHAR) WITH (
          'connector' = 'filesystem', 'path' = 'out', 'format' = 'ndjson',
          'partition_by' = 'channel', 'sink.rolling-policy.rollover-interval' = '5s');
        INSERT INTO hot_bids SELECT auction, price, channel FROM bids WHERE channel IN ('Google', 'Apple');
    ";
    let output = quiver(dir.path(), None, &["-c", script]);
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let rows_out: usize = stderr
        .split(" rows out")
        .next()
        .and_then(|s| s.rsplit(", ").next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no rows out in {stderr}"));
    let (files, temp) = listing(&dir.path().join("out"));
    assert!(temp.is_empty());
    // 20 one-second batches, a file per partition every 5 s of batch time.
    assert_eq!(files.len(), 8, "{files:?}");
    assert!(
        files[0].starts_with("channel=Apple/hot_bids-00000000-00000004.ndjson"),
        "{files:?}"
    );
    let ctx = SessionContext::new();
    ctx.register_json(
        "t",
        format!("{}/", dir.path().join("out").display()),
        datafusion::prelude::JsonReadOptions::default()
            .file_extension(".ndjson")
            .table_partition_cols(vec![("channel".into(), DataType::Utf8)]),
    )
    .await
    .unwrap();
    let rows = ctx
        .sql("SELECT channel, count(*) AS n FROM t GROUP BY channel ORDER BY channel")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = pretty_format_batches(&rows).unwrap().to_string();
    let total: usize = text
        .lines()
        .filter_map(|l| l.split('|').nth(2)?.trim().parse::<usize>().ok())
        .sum();
    assert_eq!(total, rows_out, "{text}");
    assert!(
        text.contains("| Apple   |") && text.contains("| Google  |"),
        "{text}"
    );
}

#[tokio::test]
async fn insert_select_star_writes_the_streams_own_columns() {
    // `*` leaves out the system column `_batch_time`: a sink declared with
    // the stream's 4 columns takes `SELECT *` (it used to be refused, "the
    // query produces 5 columns but the table has 4").
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(
        dir.path().join("in/0.csv"),
        "id,name,price,ok\n1,a,1.5,true\n2,b,2.5,false\n3,c,3.5,true\n",
    )
    .unwrap();
    let script = "
        CREATE STREAM s (id BIGINT, name VARCHAR, price DOUBLE, ok BOOLEAN)
          WITH (connector = 'files', path = 'in', format = 'csv');
        CREATE TABLE t (id BIGINT, name VARCHAR, price DOUBLE, ok BOOLEAN)
          WITH (connector = 'parquet', path = 'out');
        INSERT INTO t SELECT * FROM s;
    ";
    let output = quiver(dir.path(), None, &["-c", script]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "t",
        format!("{}/", dir.path().join("out").display()),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let rows = ctx
        .sql("SELECT * FROM t ORDER BY id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = pretty_format_batches(&rows).unwrap().to_string();
    assert_eq!(
        text.lines().nth(1).unwrap(),
        "| id | name | price | ok    |",
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("| ")).count(),
        4,
        "{text}"
    );
}

/// The visible files under `out` after a refused restart: those of the first
/// run, and the error names the mismatch and the fix.
fn assert_refused(dir: &Path, rerun: &Output, files: &[String], mismatch: &str) {
    assert!(!rerun.status.success(), "the restart was not refused");
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(
        stderr.contains(mismatch)
            && stderr.contains("not a replay")
            && stderr.contains("Delete out"),
        "{stderr}"
    );
    let (after, temp) = listing(&dir.join("out"));
    assert_eq!(after, files);
    assert!(temp.is_empty(), "{temp:?}");
}

#[test]
fn a_restart_with_another_start_time_is_refused_and_adds_no_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_success(&run_script(dir.path(), None));
    let (files, _) = listing(&dir.path().join("out"));
    let rerun = quiver(
        dir.path(),
        None,
        &["--start-time", "2026-02-01T00:00:00Z", "-c", SCRIPT],
    );
    assert_refused(
        dir.path(),
        &rerun,
        &files,
        "batch 0 was committed with batch time 2026-01-01 00:00:00, but this run's batch 0 has time 2026-02-01 00:00:00",
    );
}

#[test]
fn a_wall_clock_restart_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert_success(&run_script(dir.path(), None));
    let (files, _) = listing(&dir.path().join("out"));
    let rerun = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(dir.path())
        .env_remove("QUIVER_SINK_CRASH")
        .args([
            "--batch-interval",
            "100ms",
            "--max-batches",
            "3",
            "-c",
            SCRIPT,
        ])
        .output()
        .unwrap();
    assert_refused(
        dir.path(),
        &rerun,
        &files,
        "batch 0 was committed with batch time 2026-01-01 00:00:00, but this run's batch 0 has time",
    );
}

#[test]
fn a_restart_with_the_same_batch_times_but_other_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (name, v) in [("1.csv", 1), ("2.csv", 2)] {
        std::fs::write(input.join(name), format!("v\n{v}\n")).unwrap();
    }
    let script = "CREATE STREAM s WITH (connector = 'files', path = 'in', format = 'csv', max_files_per_batch = 1);
        CREATE SINK vs AS SELECT v FROM s WITH (connector = 'csv', path = 'out');";
    assert_success(&quiver(dir.path(), None, &["-c", script]));
    let (files, _) = listing(&dir.path().join("out"));
    assert_eq!(files, vec!["vs-00000000-00000001.csv"]);
    // A file that sorts first: batch 0 now reads it instead of 1.csv.
    std::fs::write(input.join("0.csv"), "v\n1\n").unwrap();
    let rerun = quiver(dir.path(), None, &["-c", script]);
    assert_refused(
        dir.path(),
        &rerun,
        &files,
        "batch 0 has the committed batch time 2026-01-01 00:00:00 but this run read other input",
    );
}
