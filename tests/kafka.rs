//! The kafka source against librdkafka's mock cluster (no external broker):
//! known JSON messages in a 3-partition topic, real quiver queries run until
//! idle, results compared with what was produced, and the group's committed
//! offsets compared with the partition ends (Kafka's convention: the next
//! offset to read).

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use quiver::Output;

mod common;

use common::kafka::{
    Msg, PARTITIONS, bids, cluster, committed_and_ends, context, counts, create_stream, msg,
    produce, run,
};

const COUNT_PER_USER: &str = "SELECT user, count(*) AS n FROM bids GROUP BY user;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_what_was_produced_and_the_group_commits_the_next_offsets() {
    let cluster = cluster(&["bids"]);
    let bootstrap = cluster.bootstrap_servers();
    let messages = bids(300);
    produce(&bootstrap, "bids", &messages);
    let script = format!(
        "{}{COUNT_PER_USER}",
        create_stream(&bootstrap, "bids", "g1", ", max_records_per_batch = 70")
    );
    let rows = run(&script).await.unwrap();
    let expected: BTreeMap<String, i64> = (0..5).map(|u| (format!("u{u}"), 60)).collect();
    assert_eq!(counts(&rows), expected);
    // Committed = the next offset to read = the partition's end, on every partition.
    let offsets = committed_and_ends(&bootstrap, "bids", "g1");
    assert_eq!(offsets, vec![(100, 100); 3]);

    // The same group starts from its committed offsets: only new messages.
    produce(
        &bootstrap,
        "bids",
        &[msg(1, "u9", r#"{"user": "u9", "amount": 1}"#)],
    );
    let rows = run(&script).await.unwrap();
    assert_eq!(counts(&rows), BTreeMap::from([("u9".to_string(), 1)]));
    assert_eq!(
        committed_and_ends(&bootstrap, "bids", "g1"),
        [(100, 100), (101, 101), (100, 100)]
    );
    // And once more: nothing new, nothing read.
    assert_eq!(counts(&run(&script).await.unwrap()), BTreeMap::new());
    // Another group, or 'earliest', reads everything again.
    let again = format!(
        "{}{COUNT_PER_USER}",
        create_stream(
            &bootstrap,
            "bids",
            "g1",
            ", 'scan.startup.mode' = 'earliest'"
        )
    );
    assert_eq!(
        counts(&run(&again).await.unwrap()).values().sum::<i64>(),
        301
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_columns_name_partition_offset_and_key_and_star_hides_them() {
    let cluster = cluster(&["sys"]);
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "sys", &bids(6));
    let script = format!(
        "{}SELECT _partition, count(*) AS n, min(_offset) AS lo, max(_offset) AS hi, \
         count(DISTINCT _key) AS keys, count(_timestamp) AS stamped FROM bids GROUP BY _partition;",
        create_stream(&bootstrap, "sys", "g", "")
    );
    let rows = run(&script).await.unwrap();
    let mut seen = BTreeMap::new();
    for batch in &rows {
        let p = batch
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let cols: Vec<_> = (1..6)
            .map(|c| batch.column(c).as_primitive::<Int64Type>().clone())
            .collect();
        for i in 0..batch.num_rows() {
            let entry = seen.entry(p.value(i)).or_insert((0, i64::MAX, 0, 0, 0));
            entry.0 += cols[0].value(i);
            entry.1 = entry.1.min(cols[1].value(i));
            entry.2 = entry.2.max(cols[2].value(i));
            entry.3 = entry.3.max(cols[3].value(i));
            entry.4 += cols[4].value(i);
        }
    }
    // Messages i = p, p + 3: offsets 0 and 1 of each partition, two keys, all stamped.
    let expected: BTreeMap<i32, _> = (0..3).map(|p| (p, (2, 0, 1, 2, 2))).collect();
    assert_eq!(seen, expected);

    let script = format!(
        "{}SELECT * FROM bids;",
        create_stream(&bootstrap, "sys", "g2", "")
    );
    let rows = run(&script).await.unwrap();
    let names: Vec<String> = rows[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["user", "amount"]);
    assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_fail_naming_the_offset_or_are_skipped() {
    let cluster = cluster(&["bad"]);
    let bootstrap = cluster.bootstrap_servers();
    let mut messages = bids(4);
    messages.insert(2, msg(2, "x", "{not json"));
    produce(&bootstrap, "bad", &messages);
    let fail = format!(
        "{}{COUNT_PER_USER}",
        create_stream(&bootstrap, "bad", "f", "")
    );
    let err = run(&fail).await.unwrap_err();
    assert!(
        err.contains("malformed json in kafka topic 'bad' partition 2 offset 0"),
        "{err}"
    );
    // Nothing was committed past the malformed message (partition 2,
    // offset 0). An earlier batch may have taken partitions 0 and 1 before
    // librdkafka had fetched partition 2, and committed them (and partition
    // 2 at 0, where it stood).
    let committed = committed_and_ends(&bootstrap, "bad", "f");
    assert!(committed[2].0 <= 0, "{committed:?}");
    let skip = format!(
        "{}{COUNT_PER_USER}",
        create_stream(&bootstrap, "bad", "s", ", on_error = 'skip'")
    );
    let rows = run(&skip).await.unwrap();
    assert_eq!(counts(&rows).values().sum::<i64>(), 4);
    // The skipped message is behind the committed offset too.
    assert_eq!(
        committed_and_ends(&bootstrap, "bad", "s"),
        [(2, 2), (1, 1), (2, 2)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_and_unreachable_broker_are_clear_errors_within_the_timeout() {
    let cluster = cluster(&["exists"]);
    let bootstrap = cluster.bootstrap_servers();
    let script = |bootstrap: &str, topic: &str| {
        format!(
            "{}{COUNT_PER_USER}",
            create_stream(bootstrap, topic, "g", "").replace("timeout = '5s'", "timeout = '2s'")
        )
    };
    let started = std::time::Instant::now();
    let err = run(&script(&bootstrap, "nope")).await.unwrap_err();
    assert!(err.contains("topic 'nope' does not exist"), "{err}");
    // Nothing listens on port 1.
    let err = run(&script("127.0.0.1:1", "exists")).await.unwrap_err();
    assert!(
        err.contains("no answer from bootstrap.servers '127.0.0.1:1' within 2s"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_values_stay_out_of_errors() {
    let cluster = cluster(&["p"]);
    let bootstrap = cluster.bootstrap_servers();
    let script = format!(
        "{}{COUNT_PER_USER}",
        create_stream(
            &bootstrap,
            "p",
            "g",
            ", 'properties.session.timeout.ms' = 'SeCrEt-VaLuE'"
        )
    );
    let err = run(&script).await.unwrap_err();
    assert!(!err.contains("SeCrEt-VaLuE"), "{err}");
    assert!(err.contains("***"), "{err}");
}

#[test]
fn raw_and_text_streams_have_value_and_line_columns() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = cluster(&["lines"]);
    let bootstrap = cluster.bootstrap_servers();
    produce(
        &bootstrap,
        "lines",
        &[msg(0, "a", "to be or"), msg(1, "b", "not to be")],
    );
    runtime.block_on(async {
        let text = format!(
            "CREATE STREAM lines WITH (connector = 'kafka', topic = 'lines', 'bootstrap.servers' = '{bootstrap}', \
             'group.id' = 't', 'scan.startup.mode' = 'earliest');
             SELECT word, count(*) AS n FROM (SELECT unnest(string_to_array(line, ' ')) AS word FROM lines) GROUP BY word;"
        );
        let words = counts(&run(&text).await.unwrap());
        assert_eq!(
            words,
            BTreeMap::from([("be".into(), 2), ("not".into(), 1), ("or".into(), 1), ("to".into(), 2)])
        );
        let raw = format!(
            "CREATE STREAM blobs WITH (connector = 'kafka', topic = 'lines', 'bootstrap.servers' = '{bootstrap}', \
             'group.id' = 'r', format = 'raw');
             SELECT CAST(value AS VARCHAR) AS v, count(*) AS n FROM blobs GROUP BY v;"
        );
        let values = counts(&run(&raw).await.unwrap());
        assert_eq!(
            values,
            BTreeMap::from([("not to be".into(), 1), ("to be or".into(), 1)])
        );
    });
}

/// Not a check: consume + decode + per-batch GROUP BY of 300k JSON messages
/// from the mock cluster, printed as messages/s
/// (`cargo test --test kafka -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_on_the_mock_cluster() {
    let cluster = cluster(&["many"]);
    let bootstrap = cluster.bootstrap_servers();
    let n = 300_000;
    produce(&bootstrap, "many", &bids(n));
    let script = format!(
        "{}{COUNT_PER_USER}",
        create_stream(&bootstrap, "many", "t", "")
    );
    let started = std::time::Instant::now();
    let rows = run(&script).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(counts(&rows).values().sum::<i64>(), n as i64);
    eprintln!(
        "{n} messages in {elapsed:?}: {:.0} messages/s",
        n as f64 / elapsed.as_secs_f64()
    );
}

/// Every batch reports a range for every partition, contiguous from batch
/// to batch, empty (start == end) where it took nothing: here partition 2
/// gets no message at all, and the last range of each partition ends at the
/// number of messages it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_has_a_contiguous_range_for_every_partition() {
    let cluster = cluster(&["ranges"]);
    let bootstrap = cluster.bootstrap_servers();
    let messages: Vec<_> = bids(90)
        .into_iter()
        .map(|m| Msg {
            partition: m.partition % 2,
            ..m
        })
        .collect();
    produce(&bootstrap, "ranges", &messages);
    let ctx = context();
    let script = create_stream(
        &bootstrap,
        "ranges",
        "g-ranges",
        ", max_records_per_batch = '40'",
    ) + "SELECT count(*) FROM bids;";
    let Some(Output::Query(mut query)) = ctx.sql(&script).await.expect("runs").pop() else {
        panic!("a continuous query");
    };
    let mut ends: BTreeMap<String, String> = BTreeMap::new();
    let mut batches = 0;
    while let Some(event) = query.next_event().await {
        let quiver::QueryEvent::BatchEnd(end) = event else {
            continue;
        };
        let Some(stream) = end.offsets.first() else {
            continue;
        };
        batches += 1;
        assert_eq!(
            stream.ranges.len(),
            PARTITIONS as usize,
            "{:?}",
            stream.ranges
        );
        for range in &stream.ranges {
            let previous = ends.get(&range.partition).cloned().unwrap_or("0".into());
            assert_eq!(range.start, previous, "batch {} {range:?}", end.batch_id);
            ends.insert(range.partition.clone(), range.end.clone());
        }
    }
    query.finish().await.expect("finishes");
    assert!(batches >= 3, "90 messages at 40 per batch");
    let ends: Vec<&str> = ends.values().map(String::as_str).collect();
    assert_eq!(ends, ["60", "30", "0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rate_bounds_every_batch_by_its_interval() {
    let cluster = cluster(&["rate"]);
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "rate", &bids(90));
    // 1 s batches at 20 records per second: at most 20 a batch.
    let script = format!(
        "{}SELECT count(*) AS n FROM bids;",
        create_stream(&bootstrap, "rate", "r", ", max_rate = 20")
    );
    let rows = run(&script).await.unwrap();
    let per_batch: Vec<i64> = (rows.iter())
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert!(per_batch.iter().all(|n| *n <= 20), "{per_batch:?}");
    assert_eq!(per_batch.iter().sum::<i64>(), 90);
    assert!(per_batch.iter().filter(|n| **n > 0).count() >= 5);
}
