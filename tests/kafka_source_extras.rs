//! The kafka source's extras against librdkafka's mock cluster: dead
//! letters (`on_error = 'dead_letter'` to a topic or a file), the `_headers`
//! column, `properties.*` checked at CREATE STREAM, `topic-pattern`, and
//! partitions that appear while a query runs.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use quiver::{Context, Output, RunLimits};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

mod common;

use common::kafka::{
    Msg, PARTITIONS, SIMULATED, TIMEOUT, UNTIL_IDLE, cluster, committed_and_ends, context_with,
    counts, create_stream, msg, produce, run_in,
};

/// A context on the simulated clock with 200 ms batches, until idle or not.
fn context(until_idle: bool) -> Context {
    let limits = if until_idle {
        UNTIL_IDLE
    } else {
        RunLimits::default()
    };
    context_with(SIMULATED, Duration::from_millis(200), limits)
}

/// Runs `script` (ending in a continuous query) until idle; all result rows.
async fn run(script: &str) -> Result<Vec<RecordBatch>, String> {
    run_in(&context(true), script).await
}

/// The `(user, amount)` rows of `rows`, sorted.
fn users_and_amounts(rows: &[RecordBatch]) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for batch in rows {
        let users = batch.column(0).as_string::<i32>();
        let amounts = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            out.push((users.value(i).to_string(), amounts.value(i)));
        }
    }
    out.sort();
    out
}

/// A dead letter as read back: key, value, and the headers by name.
type Letter = (Option<String>, Option<String>, BTreeMap<String, String>);

/// Every message of `topic`, read from the start.
fn read_topic(bootstrap: &str, topic: &str) -> Vec<Letter> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut left = 0;
    for p in 0..PARTITIONS {
        let (low, high) = consumer.fetch_watermarks(topic, p, TIMEOUT).unwrap();
        left += high - low;
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while left > 0 && std::time::Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let mut headers = BTreeMap::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                headers.insert(header.key.to_string(), text(header.value).unwrap());
            }
        }
        out.push((text(m.key()), text(m.payload()), headers));
        left -= 1;
    }
    out.sort();
    out
}

/// Good bids on every partition and two malformed messages, on partitions
/// 1 (offset 1) and 2 (offset 0).
fn good_and_bad(bootstrap: &str, topic: &str) {
    produce(
        bootstrap,
        topic,
        &[
            msg(0, "a", r#"{"user": "a", "amount": 1}"#),
            msg(1, "b", r#"{"user": "b", "amount": 2}"#),
            msg(1, "x", "{not json"),
            msg(2, "y", r#"{"user": "y", "amount": "many"}"#),
            msg(2, "c", r#"{"user": "c", "amount": 3}"#),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_go_to_a_topic_with_their_origin_before_the_offsets_are_committed() {
    let cluster = cluster(&["in", "dlq"]);
    let bootstrap = cluster.bootstrap_servers();
    good_and_bad(&bootstrap, "in");
    let script = format!(
        "{}SELECT user, amount FROM bids;",
        create_stream(
            &bootstrap,
            "in",
            "g",
            ", on_error = 'dead_letter', 'dead_letter.topic' = 'dlq'"
        )
    );
    let rows = run(&script).await.unwrap();
    assert_eq!(
        users_and_amounts(&rows),
        [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]
    );
    let letters = read_topic(&bootstrap, "dlq");
    assert_eq!(letters.len(), 2, "{letters:?}");
    let origin: Vec<_> = (letters.iter())
        .map(|(key, value, h)| {
            (
                key.clone().unwrap(),
                value.clone().unwrap(),
                h["quiver.topic"].clone(),
                h["quiver.partition"].clone(),
                h["quiver.offset"].clone(),
            )
        })
        .collect();
    assert_eq!(
        origin,
        [
            (
                "x".into(),
                "{not json".into(),
                "in".into(),
                "1".into(),
                "1".into()
            ),
            (
                "y".into(),
                r#"{"user": "y", "amount": "many"}"#.into(),
                "in".into(),
                "2".into(),
                "0".into()
            ),
        ]
    );
    for (_, _, headers) in &letters {
        assert!(
            headers["quiver.error"].contains("malformed json in kafka topic 'in'"),
            "{headers:?}"
        );
    }
    // The dead-lettered messages are behind the committed offsets too.
    assert_eq!(
        committed_and_ends(&bootstrap, "in", "g"),
        [(1, 1), (2, 2), (2, 2)]
    );
}

/// Dead letters that cannot be written stop the batch's offsets from
/// being committed: the malformed messages are neither lost nor skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_not_committed_when_dead_letters_cannot_be_written() {
    let cluster = cluster(&["in", "dlq"]);
    let bootstrap = cluster.bootstrap_servers();
    good_and_bad(&bootstrap, "in");
    // Every produce request from now on is refused.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
    );
    let script = format!(
        "{}SELECT user, amount FROM bids;",
        create_stream(
            &bootstrap,
            "in",
            "g",
            ", on_error = 'dead_letter', 'dead_letter.topic' = 'dlq'"
        )
        .replace("timeout = '5s'", "timeout = '2s'")
    );
    let err = run(&script).await.unwrap_err();
    assert!(
        err.contains("cannot write dead letters to topic 'dlq'"),
        "{err}"
    );
    // A batch of good messages only (partition 0's, partition 1's first)
    // may have been committed before the bad ones came; no committed
    // offset reaches past a bad message (partition 1 offset 1, partition 2
    // offset 0), whose dead letter was never written.
    let committed = committed_and_ends(&bootstrap, "in", "g");
    assert!(
        committed[1].0 <= 1 && committed[2].0 <= 0,
        "committed past an unwritten dead letter: {committed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_append_to_a_file_as_json_lines_with_base64_bytes() {
    let cluster = cluster(&["in"]);
    let bootstrap = cluster.bootstrap_servers();
    good_and_bad(&bootstrap, "in");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.ndjson");
    let script = format!(
        "{}SELECT user, amount FROM bids;",
        create_stream(
            &bootstrap,
            "in",
            "g",
            &format!(
                ", on_error = 'dead_letter', 'dead_letter.path' = '{}'",
                path.display()
            )
        )
    );
    let ctx = context(true);
    let outputs = ctx.sql(&script).await.unwrap();
    let Some(Output::Query(mut query)) = outputs.into_iter().last() else {
        panic!("a continuous query");
    };
    let (mut rows, mut skipped) = (Vec::new(), 0);
    while let Some(event) = query.next_event().await {
        match event {
            quiver::QueryEvent::BatchEnd(end) => skipped += end.progress.map_or(0, |p| p.skipped),
            quiver::QueryEvent::Result(result) => rows.extend(result.rows),
        }
    }
    query.finish().await.unwrap();
    assert_eq!(users_and_amounts(&rows).len(), 3);
    assert_eq!(skipped, 2, "dead letters count as skipped");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<serde_json::Value> = (text.lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines.sort_by_key(|l| l["partition"].as_i64());
    let fields: Vec<_> = (lines.iter())
        .map(|l| {
            (
                l["topic"].as_str().unwrap().to_string(),
                l["partition"].as_i64().unwrap(),
                l["offset"].as_i64().unwrap(),
                l["key_base64"].as_str().unwrap().to_string(),
                l["value_base64"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("in".into(), 1, 1, "eA==".into(), "e25vdCBqc29u".into()),
            (
                "in".into(),
                2,
                0,
                "eQ==".into(),
                "eyJ1c2VyIjogInkiLCAiYW1vdW50IjogIm1hbnkifQ==".into()
            ),
        ]
    );
    assert!(lines[0]["error"].as_str().unwrap().contains("offset 1"));
    assert_eq!(
        committed_and_ends(&bootstrap, "in", "g"),
        [(1, 1), (2, 2), (2, 2)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_options_are_checked() {
    let cluster = cluster(&["in"]);
    let bootstrap = cluster.bootstrap_servers();
    let select = "SELECT user FROM bids;";
    let err = run(&format!(
        "{}{select}",
        create_stream(&bootstrap, "in", "g", ", on_error = 'dead_letter'")
    ))
    .await
    .unwrap_err();
    assert!(err.contains("dead_letter.topic"), "{err}");
    let err = run(&format!(
        "{}{select}",
        create_stream(
            &bootstrap,
            "in",
            "g",
            ", on_error = 'dead_letter', 'dead_letter.topic' = 'nope'"
        )
    ))
    .await
    .unwrap_err();
    assert!(
        err.contains("dead_letter.topic 'nope' does not exist"),
        "{err}"
    );
}

/// The README's `_headers` example: one row per header, filtered by name.
const TRACES: &str = "SELECT CAST(h['value'] AS VARCHAR) AS trace, count(*) AS n \
     FROM (SELECT unnest(_headers) AS h FROM bids) WHERE h['key'] = 'trace' GROUP BY trace;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_a_list_of_key_value_structs_queryable_with_unnest() {
    let cluster = cluster(&["h"]);
    let bootstrap = cluster.bootstrap_servers();
    let bid = |user: &str| format!(r#"{{"user": "{user}", "amount": 1}}"#);
    let with = |partition, key, headers| Msg {
        headers,
        ..msg(partition, key, bid(key))
    };
    produce(
        &bootstrap,
        "h",
        &[
            with(0, "a", vec![("trace", "t1"), ("origin", "web")]),
            with(1, "b", vec![("trace", "t1")]),
            with(2, "c", vec![("origin", "app"), ("trace", "t2")]),
            msg(2, "d", bid("d")),
        ],
    );
    let script = format!("{}{TRACES}", create_stream(&bootstrap, "h", "g", ""));
    let rows = run(&script).await.unwrap();
    let mut traces = BTreeMap::new();
    for batch in &rows {
        let names = batch.column(0).as_string::<i32>();
        let n = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            *traces.entry(names.value(i).to_string()).or_insert(0) += n.value(i);
        }
    }
    assert_eq!(traces, BTreeMap::from([("t1".into(), 2), ("t2".into(), 1)]));
    // A message without headers has an empty list; `*` leaves `_headers` out.
    let script = format!(
        "{}SELECT user, array_length(_headers) AS n FROM bids WHERE user = 'd';",
        create_stream(&bootstrap, "h", "g2", "")
    );
    let rows = run(&script).await.unwrap();
    let lengths: Vec<_> = (rows.iter())
        .flat_map(|b| {
            b.column(1)
                .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                .iter()
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(lengths, [Some(0)]);
    let script = format!(
        "{}SELECT * FROM bids;",
        create_stream(&bootstrap, "h", "g3", "")
    );
    let rows = run(&script).await.unwrap();
    let names: Vec<String> = (rows[0].schema().fields().iter())
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["user", "amount"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_properties_fail_at_create_stream_naming_them_without_secrets() {
    // No broker at all: CREATE STREAM checks the configuration locally.
    let ctx = context(true);
    let create = |extra: &str| create_stream("127.0.0.1:1", "t", "g", extra);
    let err = ctx
        .sql(&create(", 'properties.fetch.max.bytez' = '1'"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("option 'properties.fetch.max.bytez'"), "{err}");
    let err = ctx
        .sql(&create(
            ", 'properties.sasl.password' = 'SeCrEt1', 'properties.session.timeout.ms' = 'SeCrEt1'",
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("'properties.session.timeout.ms'"), "{err}");
    assert!(!err.contains("SeCrEt1"), "{err}");
    ctx.sql(&create(", 'properties.fetch.max.bytes' = '1000000'"))
        .await
        .expect("a known property passes");
}

fn bid(partition: i32, user: &'static str) -> Msg {
    msg(
        partition,
        user,
        format!(r#"{{"user": "{user}", "amount": 1}}"#),
    )
}

/// A stream over `topic-pattern` instead of `topic`.
fn pattern_stream(bootstrap: &str, pattern: &str, group: &str, extra: &str) -> String {
    create_stream(bootstrap, "x", group, extra)
        .replace("topic = 'x'", &format!("'topic-pattern' = '{pattern}'"))
}

const PER_USER: &str = "SELECT user, count(*) AS n FROM bids GROUP BY user;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_pattern_reads_every_matching_topic_assigned_or_in_a_group() {
    let cluster = cluster(&["bids-eu", "bids-us", "asks"]);
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "bids-eu", &[bid(0, "eu"), bid(1, "eu")]);
    produce(&bootstrap, "bids-us", &[bid(2, "us")]);
    produce(&bootstrap, "asks", &[bid(0, "ask")]);
    let expected = BTreeMap::from([("eu".to_string(), 2), ("us".to_string(), 1)]);
    for (group, extra) in [("all", ""), ("grp", ", assignment = 'group'")] {
        let script = format!(
            "{}{PER_USER}",
            pattern_stream(&bootstrap, "^bids-.*", group, extra)
        );
        assert_eq!(counts(&run(&script).await.unwrap()), expected, "{group}");
        assert_eq!(
            committed_and_ends(&bootstrap, "bids-eu", group),
            [(1, 1), (1, 1), (0, 0)],
            "{group}"
        );
        assert_eq!(
            committed_and_ends(&bootstrap, "bids-us", group)[2],
            (1, 1),
            "{group}"
        );
    }
    let err = run(&format!(
        "{}{PER_USER}",
        create_stream(&bootstrap, "asks", "g", ", 'topic-pattern' = 'a.*'")
    ))
    .await
    .unwrap_err();
    assert!(err.contains("not both"), "{err}");
}

/// Runs `script` (not until idle), calls `mid_run` once the first rows
/// are out, and stops once the per-user counts reach `until`; the counts.
async fn run_until(
    script: &str,
    mid_run: impl FnOnce(),
    until: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    let ctx = context(false);
    let outputs = ctx.sql(script).await.unwrap();
    let Some(Output::Query(mut query)) = outputs.into_iter().last() else {
        panic!("a continuous query");
    };
    let mut seen = BTreeMap::new();
    let mut mid_run = Some(mid_run);
    // A hang guard only: the new topic is found within a second or so.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while &seen != until && std::time::Instant::now() < deadline {
        let Some(result) = query.next().await else {
            break;
        };
        for (user, n) in counts(&result.rows) {
            *seen.entry(user).or_default() += n;
        }
        if !seen.is_empty()
            && let Some(f) = mid_run.take()
        {
            f();
        }
    }
    query.stop();
    while query.next().await.is_some() {}
    query.finish().await.unwrap();
    seen
}

/// A topic created while the query runs, matching its pattern, is read
/// from its first message: also what was written to it before it was found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_while_running_is_read_from_the_earliest_offset() {
    let until = BTreeMap::from([("old".to_string(), 1), ("new".to_string(), 3)]);
    // A new topic rejoins the group: the mock cluster's coordinator then
    // waits up to a session timeout (45 s by default) for the member.
    let group_mode = ", assignment = 'group', 'properties.session.timeout.ms' = '6000'";
    for (group, extra) in [("all", ""), ("grp", group_mode)] {
        let cluster = cluster(&["grow-1"]);
        let bootstrap = cluster.bootstrap_servers();
        produce(&bootstrap, "grow-1", &[bid(0, "old")]);
        let new_topic = "grow-2";
        let script = format!(
            "{}{PER_USER}",
            pattern_stream(
                &bootstrap,
                "grow-.*",
                group,
                &format!(", 'scan.topic-partition-discovery.interval' = '300ms'{extra}")
            )
        );
        let create = || {
            cluster.create_topic(new_topic, PARTITIONS, 1).unwrap();
            produce(
                &bootstrap,
                new_topic,
                &[bid(0, "new"), bid(1, "new"), bid(2, "new")],
            );
        };
        assert_eq!(run_until(&script, create, &until).await, until, "{group}");
        assert_eq!(
            committed_and_ends(&bootstrap, new_topic, group),
            [(1, 1); 3],
            "{group}"
        );
    }
}

/// A broker that does not answer at start fails the query within `timeout`
/// naming option `startup.retry`; with that option the query starts, runs
/// empty batches while retrying, and reads everything once the broker is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_at_start_is_retried_under_startup_retry() {
    let cluster = cluster(&["in"]);
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "in", &[bid(0, "a"), bid(1, "b"), bid(2, "c")]);
    cluster.broker_down(1).expect("down");
    let script = |extra: &str| {
        format!(
            "{}{PER_USER}",
            create_stream(&bootstrap, "in", "g", extra).replace("timeout = '5s'", "timeout = '1s'")
        )
    };
    let err = run(&script("")).await.unwrap_err();
    assert!(
        err.contains("no answer from bootstrap.servers") && err.contains("'startup.retry'"),
        "{err}"
    );
    let ctx = context(true);
    let outputs = ctx.sql(&script(", 'startup.retry' = '5m'")).await.unwrap();
    let Some(Output::Query(mut query)) = outputs.into_iter().last() else {
        panic!("a continuous query");
    };
    let (mut rows, mut batches) = (Vec::new(), 0);
    while let Some(event) = query.next_event().await {
        match event {
            quiver::QueryEvent::BatchEnd(_) => {
                batches += 1;
                if batches == 3 {
                    cluster.broker_up(1).expect("up");
                }
            }
            quiver::QueryEvent::Result(result) => {
                let n: usize = result.rows.iter().map(RecordBatch::num_rows).sum();
                assert!(n == 0 || batches >= 3, "rows before the broker was up");
                rows.extend(result.rows);
            }
        }
    }
    query.finish().await.unwrap();
    assert!(batches > 3, "{batches}");
    let expected = BTreeMap::from([("a".into(), 1), ("b".into(), 1), ("c".into(), 1)]);
    assert_eq!(counts(&rows), expected);
    assert_eq!(committed_and_ends(&bootstrap, "in", "g"), [(1, 1); 3]);
}
