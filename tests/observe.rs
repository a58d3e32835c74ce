//! Observability end to end: `--progress-json` records checked against the
//! source that produced them (Nexmark with a fixed event count), and the
//! `--metrics` endpoint scraped during a run fed through standard input.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use quiver::ProgressRecord;

mod common;

use common::cli::{TIMEOUT, quiver, wait};

fn read_records(path: &std::path::Path) -> Vec<(serde_json::Value, ProgressRecord)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let record: ProgressRecord = serde_json::from_str(line).unwrap();
            (value, record)
        })
        .collect()
}

fn keys(value: &serde_json::Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn progress_json_has_one_record_per_batch_matching_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("progress.ndjson");
    // 3000 Nexmark events at 1000 a second: three batches of 1000 events,
    // of which 2760 are bids; one count row per batch.
    let output = wait(
        quiver()
            .args(["--clock", "simulated", "--until-idle", "--format", "csv"])
            .arg("--progress-json")
            .arg(&path)
            .args([
                "-c",
                "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', events = 3000, rate = 1000); \
                 CREATE TABLE out (n BIGINT) WITH (connector = 'blackhole'); \
                 INSERT INTO out SELECT count(*) AS n FROM bids; \
                 SELECT count(*) AS n FROM bids;",
            ])
            .spawn()
            .unwrap(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let records = read_records(&path);
    for query in ["out", "query_1"] {
        let of: Vec<_> = records.iter().filter(|(_, r)| r.query == query).collect();
        assert_eq!(of.len(), 3, "{query}: {records:?}");
        let expected_keys: BTreeSet<&str> = [
            "query",
            "batch_id",
            "batch_time_ms",
            "batch_time",
            "closing",
            "durations",
            "delay_ms",
            "input_rows",
            "output_rows",
            "skipped_rows",
            "input_rows_per_second",
            "processed_rows_per_second",
            "watermark_ms",
            "watermark",
            "watermark_held_by",
            "late_rows",
            "late_routed",
            "state_rows",
            "state_bytes",
            "sources",
            "sink",
        ]
        .into();
        let mut next_start = "0".to_string();
        for (i, (value, record)) in of.iter().enumerate() {
            assert_eq!(keys(value), expected_keys, "{value}");
            assert_eq!(
                keys(&value["durations"]),
                [
                    "poll_ms",
                    "checkpoint_ms",
                    "query_ms",
                    "sink_ms",
                    "commit_ms",
                    "source_commit_ms",
                    "total_ms"
                ]
                .into()
            );
            assert_eq!(record.batch_id, i as u64);
            assert!(!record.closing);
            let d = &record.durations;
            assert!(
                d.sum_ms() <= d.total_ms + 1e-6 && d.total_ms > 0.0,
                "phases exceed the batch: {d:?}"
            );
            // Offsets: consecutive ranges of event indices, 1000 events each.
            let [source] = record.sources.as_slice() else {
                panic!("{record:?}")
            };
            assert_eq!(source.stream, "bids");
            assert_eq!(source.input_rows, record.input_rows);
            let [partition] = source.partitions.as_slice() else {
                panic!("{record:?}")
            };
            assert_eq!(partition.start, next_start);
            assert_eq!(partition.end, ((i + 1) * 1000).to_string());
            next_start = partition.end.clone();
            assert_eq!(record.output_rows, 1);
            let sink = record.sink.as_ref().unwrap();
            assert_eq!(sink.committed_batch, record.batch_id);
            if query == "query_1" {
                assert_eq!(sink.description, "console");
            }
            if i > 0 {
                assert!(record.input_rows_per_second.is_some());
                // The sources committed the previous batch before this one.
                assert!(d.source_commit_ms > 0.0, "{d:?}");
            } else {
                assert_eq!(d.source_commit_ms, 0.0, "nothing to commit before batch 0");
            }
        }
        let rows: u64 = of.iter().map(|(_, r)| r.input_rows).sum();
        assert_eq!(rows, 2760, "{query}");
    }
    // The foreground query's counts, as printed.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let counts: u64 = (stdout.lines()).filter_map(|l| l.parse::<u64>().ok()).sum();
    assert_eq!(counts, 2760, "{stdout}");
}

/// `GET path` on `addr`; the body of a 200 answer.
fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    body.to_string()
}

/// The value of the sample `name{labels}` (labels in the exporter's order).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_endpoint_counts_the_rows_and_batches_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("progress.ndjson");
    let mut child = quiver()
        .stdin(Stdio::piped())
        .args([
            "--batch-interval",
            "300ms",
            "--until-idle",
            "--metrics",
            "127.0.0.1:0",
        ])
        .arg("--progress-json")
        .arg(&path)
        .args([
            "-c",
            "CREATE STREAM lines (line VARCHAR) WITH (connector = 'stdin'); \
             CREATE TABLE out (line VARCHAR) WITH (connector = 'blackhole'); \
             INSERT INTO out SELECT line FROM lines;",
        ])
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut seen = String::new();
    while addr.is_none() {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen += &line;
        addr = (line.strip_prefix("serving metrics at http://"))
            .and_then(|rest| rest.trim().strip_suffix("/metrics"))
            .map(str::to_string);
    }
    let addr = addr.unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..50 {
        writeln!(stdin, "line {i}").unwrap();
    }
    stdin.flush().unwrap();
    // Scrape until every row is counted and the batch counters agree.
    let started = Instant::now();
    let (metrics, batches) = loop {
        assert!(started.elapsed() < TIMEOUT, "metrics never counted 50 rows");
        let metrics = get(&addr, "/metrics");
        let input = sample(
            &metrics,
            r#"quiver_input_rows_total{query="out",stream="lines"}"#,
        );
        let output = sample(&metrics, r#"quiver_output_rows_total{query="out"}"#);
        let batches = sample(&metrics, r#"quiver_batches_total{query="out"}"#);
        let durations = sample(
            &metrics,
            r#"quiver_batch_duration_seconds_count{query="out"}"#,
        );
        if let Some(batches) = batches
            && input == Some(50.0)
            && output == Some(50.0)
            && Some(batches) == durations
        {
            break (metrics, batches as usize);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        metrics.contains("# TYPE quiver_batch_duration_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"quiver_batch_duration_seconds_bucket{query="out",le="0.005"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("quiver_state_rows{"), "{metrics}");
    // An unknown path is a 404.
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(stream, "GET /nope HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    drop(stdin);
    let output = wait(child);
    assert!(output.status.success());
    // The records agree with the scrape: the first `batches` hold all 50 rows.
    let records = read_records(&path);
    assert!(records.len() >= batches, "{} < {batches}", records.len());
    let rows: u64 = records[..batches].iter().map(|(_, r)| r.input_rows).sum();
    assert_eq!(rows, 50);
}

#[test]
fn metrics_refuse_a_public_address_without_the_flag() {
    let output = wait(
        quiver()
            .args(["--metrics", "0.0.0.0:0", "-c", "SELECT 1"])
            .spawn()
            .unwrap(),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--metrics-public"),
        "{stderr}"
    );
}

#[tokio::test]
async fn show_progress_and_show_queries_read_the_same_records() {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::UInt64Type;
    let ctx = quiver::Context::new(quiver::Config {
        clock: quiver::Clock::Simulated { start_ms: 0 },
        limits: quiver::RunLimits {
            until_idle: true,
            ..Default::default()
        },
        ..Default::default()
    });
    ctx.sql(
        "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', events = 3000, rate = 1000); \
         CREATE TABLE out (n BIGINT) WITH (connector = 'blackhole'); \
         INSERT INTO out SELECT count(*) AS n FROM bids;",
    )
    .await
    .unwrap();
    ctx.background().wait_all().await;
    let rows = |sql: &'static str| {
        let ctx = &ctx;
        async move {
            let Some(quiver::Output::Rows(mut rows)) = ctx.sql(sql).await.unwrap().pop() else {
                panic!("{sql} returns rows");
            };
            rows.pop().unwrap()
        }
    };
    let column = |batch: &datafusion::arrow::array::RecordBatch, name: &str| -> Vec<u64> {
        let column = batch.column_by_name(name).unwrap();
        assert_eq!(column.null_count(), 0);
        column.as_primitive::<UInt64Type>().values().to_vec()
    };
    let all = rows("SHOW PROGRESS out").await;
    assert_eq!(column(&all, "batch_id"), [0, 1, 2]);
    assert_eq!(column(&all, "rows_in").iter().sum::<u64>(), 2760);
    let last_two = rows("SHOW PROGRESS out LIMIT 2").await;
    assert_eq!(column(&last_two, "batch_id"), [1, 2]);
    let offsets = last_two
        .column_by_name("offsets")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(offsets.value(1), "bids 0: 2000..3000");
    let queries = rows("SHOW QUERIES").await;
    assert_eq!(column(&queries, "batches"), [3]);
    assert_eq!(column(&queries, "rows_in"), [2760]);
    let rows_out: u64 = column(&all, "rows_out").iter().sum();
    assert_eq!(column(&queries, "rows_out"), [rows_out]);
    assert_eq!(rows_out, 3);
    let err = ctx.sql("SHOW PROGRESS nope").await.unwrap_err().to_string();
    assert!(
        err.contains("no query named 'nope'; known queries: out"),
        "{err}"
    );
    // A foreground query's records, kept by its front end once it ended.
    let mut history = quiver::ProgressHistory::default();
    for batch_id in 0..20 {
        history.push(quiver::ProgressRecord {
            query: "query_1".into(),
            batch_id,
            ..Default::default()
        });
    }
    ctx.background().keep_foreground("query_1", history);
    let kept = rows("SHOW PROGRESS query_1 LIMIT 3").await;
    assert_eq!(column(&kept, "batch_id"), [17, 18, 19]);
    let err = ctx.sql("SHOW PROGRESS nope").await.unwrap_err().to_string();
    assert!(err.contains("known queries: out, query_1"), "{err}");
}

#[test]
fn an_unwritable_progress_json_file_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("progress.ndjson");
    let output = wait(
        quiver()
            .arg("--progress-json")
            .arg(&path)
            .args(["-c", "SELECT 1"])
            .spawn()
            .unwrap(),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot create the --progress-json file") && stderr.contains("missing"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "SELECT 1 ran");
}
