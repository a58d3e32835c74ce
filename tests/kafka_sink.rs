//! The kafka sink against librdkafka's mock cluster (no external broker):
//! real quiver queries read a kafka topic and write another with `CREATE
//! SINK`; the produced messages (values, keys, `quiver.batch` headers) are
//! read back with a plain consumer. Transactions: a committed batch is
//! visible to a `read_committed` consumer, an aborted one is not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use quiver::{BatchEnd, Options, Progress, QueryResult, SinkDef};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

mod common;

use common::kafka::{Cluster, Msg, TIMEOUT, cluster, context, produce};

/// A mock cluster with a 3-partition input topic `bids` and the given
/// 1-partition output topics.
fn cluster_with(outputs: &[&str]) -> Cluster {
    let cluster = cluster(&["bids"]);
    for topic in outputs {
        cluster.create_topic(topic, 1, 1).expect("topic");
    }
    cluster
}

/// Produces `n` bids to `bids`: user `u{i % 3}`, amount `i`.
fn produce_bids(bootstrap: &str, n: usize) {
    let bids: Vec<Msg> = (0..n)
        .map(|i| {
            let value = format!(r#"{{"user": "u{}", "amount": {i}}}"#, i % 3);
            Msg::value(i as i32 % 3, value)
        })
        .collect();
    produce(bootstrap, "bids", &bids);
}

/// One message read back: key, value, `quiver.batch` header.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Read {
    key: Option<String>,
    value: Option<String>,
    batch: Option<u64>,
}

/// Every message of partition 0 of `topic`, read with `isolation`.
fn read_all(bootstrap: &str, topic: &str, isolation: &str) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("consume: {e}"),
            Some(Ok(m)) => {
                let batch = m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "quiver.batch")
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).parse().expect("batch id"))
                });
                out.push(Read {
                    key: text(m.key()),
                    value: text(m.payload()),
                    batch,
                });
            }
        }
    }
    out
}

/// The `bids` stream, at most 4 messages per batch so a run has several.
fn bids_stream(bootstrap: &str) -> String {
    format!(
        "CREATE STREAM bids (user VARCHAR, amount BIGINT) WITH (connector = 'kafka', topic = 'bids', \
         'bootstrap.servers' = '{bootstrap}', 'group.id' = 'g', format = 'json', \
         scan.startup.mode = 'earliest', max_records_per_batch = '4', timeout = '5s');"
    )
}

/// Runs `script` (its background queries) until idle; their sink status lines.
async fn run(script: &str) -> Result<Vec<String>, String> {
    let ctx = context();
    ctx.sql(script).await.map_err(|e| e.to_string())?;
    let mut sinks = Vec::new();
    for status in ctx.background().wait_all().await {
        if let Some(e) = status.error {
            return Err(e);
        }
        sinks.push(status.sink);
    }
    Ok(sinks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_csv_values_keys_and_batch_headers_are_read_back() {
    let cluster = cluster_with(&["out_json", "out_csv"]);
    let bootstrap = cluster.bootstrap_servers();
    produce_bids(&bootstrap, 12);
    let sink = |name: &str, format: &str| {
        format!(
            "CREATE SINK {name} AS SELECT user, amount FROM bids WITH (connector = 'kafka', \
             topic = '{name}', 'bootstrap.servers' = '{bootstrap}', format = '{format}', key = 'user');"
        )
    };
    let script = format!(
        "{}{}{}",
        bids_stream(&bootstrap),
        sink("out_json", "json"),
        sink("out_csv", "csv")
    );
    let sinks = run(&script).await.unwrap();
    assert!(
        sinks.iter().all(|s| s.contains("12 messages")
            && s.contains("at-least-once (idempotent, 'quiver.batch' header per message)")),
        "{sinks:?}"
    );
    let json: fn(usize, usize) -> (String, String) = |u, a| {
        (
            format!(r#"{{"user":"u{u}"}}"#),
            format!(r#"{{"user":"u{u}","amount":{a}}}"#),
        )
    };
    let csv: fn(usize, usize) -> (String, String) = |u, a| (format!("u{u}"), format!("u{u},{a}"));
    for (topic, expected) in [("out_json", json), ("out_csv", csv)] {
        let messages = read_all(&bootstrap, topic, "read_uncommitted");
        let mut got: Vec<(String, String)> = messages
            .iter()
            .map(|m| (m.key.clone().unwrap(), m.value.clone().unwrap()))
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> = (0..12).map(|i| expected(i % 3, i)).collect();
        want.sort();
        assert_eq!(got, want, "{topic}");
        // Every message names its batch; 12 messages at 4 per batch take several.
        let mut batches: Vec<u64> = messages.iter().map(|m| m.batch.expect("header")).collect();
        batches.dedup();
        assert!(batches.len() >= 3, "{topic}: {batches:?}");
        assert!(batches.windows(2).all(|w| w[0] < w[1]), "{batches:?}");
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
    ]))
}

fn result(batch_id: u64, users: &[&str]) -> QueryResult {
    let rows = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(users.to_vec())),
            Arc::new(Int64Array::from(vec![batch_id as i64; users.len()])),
        ],
    )
    .unwrap();
    QueryResult {
        query: Arc::from("tx"),
        batch_id,
        batch_time_ms: 1000 * batch_id as i64,
        window: None,
        schema: schema(),
        rows: vec![rows],
        progress: Progress::default(),
        input: Default::default(),
        offsets: Vec::new(),
    }
}

fn end(batch_id: u64) -> BatchEnd {
    BatchEnd {
        query: Arc::from("tx"),
        batch_id,
        batch_time_ms: 1000 * batch_id as i64,
        results: 1,
        offsets: Vec::new(),
        input: Default::default(),
        progress: None,
    }
}

#[test]
fn a_committed_batch_is_visible_to_read_committed_readers_and_an_aborted_one_is_not() {
    let cluster = cluster_with(&["tx"]);
    let bootstrap = cluster.bootstrap_servers();
    // Messages wait in librdkafka's queue until a flush (the batch's commit).
    let def = tx_def(
        &bootstrap,
        "tx",
        &[("format", "csv"), ("properties.linger.ms", "2000")],
    );
    let mut sink = quiver::open_sink(&def).unwrap();
    assert!(
        sink.status()
            .contains("exactly-once (one transaction per batch, transactional.id 'quiver-tx')")
    );
    sink.write(&result(1, &["a", "b"])).unwrap();
    sink.commit(&end(1)).unwrap();
    // Batch 2 fails mid-batch: the query stops before its commit.
    sink.write(&result(2, &["c"])).unwrap();
    sink.close().unwrap();
    // A restarted query (same transactional.id) writes batch 3.
    let mut sink = quiver::open_sink(&def).unwrap();
    sink.write(&result(3, &["d"])).unwrap();
    sink.commit(&end(3)).unwrap();
    sink.close().unwrap();
    let want = [("a,1".to_string(), 1), ("b,1".into(), 1), ("d,3".into(), 3)];
    // librdkafka's mock broker keeps no aborted-transaction list (a real
    // broker would hide an aborted batch from read_committed readers only):
    // here the abort drops batch 2 before it is sent, so no reader sees it.
    for isolation in ["read_committed", "read_uncommitted"] {
        let values: Vec<(String, u64)> = read_all(&bootstrap, "tx", isolation)
            .into_iter()
            .map(|m| (m.value.unwrap(), m.batch.unwrap()))
            .collect();
        assert_eq!(values, want, "{isolation}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_sink_commits_every_batch_of_a_query() {
    let cluster = cluster_with(&["eo"]);
    let bootstrap = cluster.bootstrap_servers();
    produce_bids(&bootstrap, 9);
    let script = format!(
        "{}CREATE SINK eo AS SELECT amount FROM bids WITH (connector = 'kafka', topic = 'eo', \
         'bootstrap.servers' = '{bootstrap}', sink.semantic = 'exactly-once');",
        bids_stream(&bootstrap)
    );
    let sinks = run(&script).await.unwrap();
    assert!(
        sinks[0].contains("9 messages") && sinks[0].contains("exactly-once"),
        "{sinks:?}"
    );
    let mut amounts: Vec<String> = read_all(&bootstrap, "eo", "read_committed")
        .into_iter()
        .map(|m| m.value.unwrap())
        .collect();
    amounts.sort();
    let mut want: Vec<String> = (0..9).map(|i| format!(r#"{{"amount":{i}}}"#)).collect();
    want.sort();
    assert_eq!(amounts, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_unknown_topics_and_unreachable_brokers_are_clear_errors() {
    let cluster = cluster_with(&["out"]);
    let bootstrap = cluster.bootstrap_servers();
    let create = |bootstrap: &str, extra: &str| {
        format!(
            "{}CREATE SINK s AS SELECT user FROM bids WITH (connector = 'kafka', \
             'bootstrap.servers' = '{bootstrap}', timeout = '2s'{extra});",
            bids_stream(&cluster.bootstrap_servers())
        )
    };
    let err = run(&create(&bootstrap, ", topic = 'out', topik = 'x'"))
        .await
        .unwrap_err();
    assert!(
        err.contains("unknown option 'topik' for connector 'kafka'")
            && err.contains("valid options are: topic, topic.column"),
        "{err}"
    );
    let err = run(&create(&bootstrap, ", topic = 'nope'"))
        .await
        .unwrap_err();
    assert!(err.contains("kafka topic 'nope' does not exist"), "{err}");
    let err = run(&create(
        &bootstrap,
        ", topic = 'out', 'properties.linger.ms' = 'SeCrEt'",
    ))
    .await
    .unwrap_err();
    // Redacted in the error and in the statement quoted after it.
    assert!(
        err.contains("in statement") && !err.contains("SeCrEt") && err.contains("***"),
        "{err}"
    );
    let started = Instant::now();
    let err = run(&create("127.0.0.1:1", ", topic = 'out'"))
        .await
        .unwrap_err();
    assert!(
        err.contains("kafka broker '127.0.0.1:1' unreachable within 2s"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A transactional sink on `topic` of `cluster`, with `extra` options.
fn tx_def(bootstrap: &str, topic: &str, extra: &[(&'static str, &'static str)]) -> SinkDef {
    let mut options = vec![
        ("topic".to_string(), topic.to_string()),
        ("bootstrap.servers".into(), bootstrap.to_string()),
        ("sink.semantic".into(), "exactly-once".into()),
        ("timeout".into(), "3s".into()),
    ];
    options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    SinkDef::new(topic, "kafka", schema(), Options::new(options))
}

#[test]
fn a_broker_without_transactions_gets_a_clear_error_naming_the_fallback() {
    let cluster = cluster_with(&["nt"]);
    cluster
        .apiversion(rdkafka::types::RDKafkaApiKey::InitProducerId, None, None)
        .unwrap();
    let err = quiver::open_sink(&tx_def(&cluster.bootstrap_servers(), "nt", &[]))
        .err()
        .expect("no transactions")
        .to_string();
    assert!(err.contains("does not support transactions"), "{err}");
    assert!(err.contains("'quiver.batch' header"), "{err}");
    // A broker that accepts InitProducerId and refuses EndTxn (as Tansu
    // does): the batch's commit says the same.
    let refusing = cluster_with(&["nt"]);
    let mut sink = quiver::open_sink(&tx_def(&refusing.bootstrap_servers(), "nt", &[])).unwrap();
    refusing.request_errors(
        rdkafka::types::RDKafkaApiKey::EndTxn,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION],
    );
    sink.write(&result(1, &["a"])).unwrap();
    let err = sink.commit(&end(1)).unwrap_err().to_string();
    assert!(
        err.contains("cannot commit the batch's transaction")
            && err.contains("does not support transactions"),
        "{err}"
    );
}

#[test]
fn failed_deliveries_and_failed_commits_fail_the_batch() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let cluster = cluster_with(&["f", "c"]);
    let bootstrap = cluster.bootstrap_servers();
    // Produce requests are refused (not retriable): the commit says so.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
    );
    let def = SinkDef::new(
        "f",
        "kafka",
        schema(),
        Options::new([
            ("topic", "f"),
            ("bootstrap.servers", bootstrap.as_str()),
            ("timeout", "3s"),
        ]),
    );
    let mut sink = quiver::open_sink(&def).unwrap();
    sink.write(&result(1, &["a"])).unwrap();
    let err = sink.commit(&end(1)).unwrap_err().to_string();
    assert!(
        err.contains("1 message(s) not delivered, the first to topic 'f'"),
        "{err}"
    );
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    // The transaction's commit is refused: the batch fails, and is aborted.
    let mut sink = quiver::open_sink(&tx_def(&bootstrap, "c", &[])).unwrap();
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_TXN_STATE],
    );
    sink.write(&result(1, &["a"])).unwrap();
    let err = sink.commit(&end(1)).unwrap_err().to_string();
    assert!(
        err.contains("cannot commit the batch's transaction"),
        "{err}"
    );
}

/// The README's Kafka sink example, on the mock cluster: per-batch totals
/// keyed by user, which add up to what was produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_example_writes_keyed_totals_with_insert_into() {
    let cluster = cluster_with(&["totals"]);
    let bootstrap = cluster.bootstrap_servers();
    produce_bids(&bootstrap, 12);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let example = readme
        .split("### Kafka sink\n")
        .nth(1)
        .and_then(|s| s.split("```sql\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README shows a Kafka sink example");
    let script = example.replace("127.0.0.1:9092", &bootstrap);
    let sinks = run(&script).await.unwrap();
    assert!(
        sinks[0].contains("kafka topic 'totals' (json)"),
        "{sinks:?}"
    );
    let mut totals = std::collections::BTreeMap::<String, i64>::new();
    for m in read_all(&bootstrap, "totals", "read_uncommitted") {
        let value = m.value.unwrap();
        let user = value
            .strip_prefix(r#"{"user":""#)
            .and_then(|v| v.split('"').next())
            .unwrap()
            .to_string();
        assert_eq!(m.key.unwrap(), format!(r#"{{"user":"{user}"}}"#));
        let total: i64 = value
            .rsplit(':')
            .next()
            .and_then(|t| t.strip_suffix('}'))
            .unwrap()
            .parse()
            .unwrap();
        *totals.entry(user).or_default() += total;
    }
    let want = (0..3)
        .map(|u| (format!("u{u}"), (0..12).filter(|i| i % 3 == u).sum::<i64>()))
        .collect();
    assert_eq!(totals, want);
}

/// `format = 'raw'` writes the bytes of the one value column; `topic.column`
/// sends each row to the topic it names (and leaves it out of the value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_values_go_to_the_topic_each_row_names() {
    let cluster = cluster_with(&["even", "odd"]);
    let bootstrap = cluster.bootstrap_servers();
    produce_bids(&bootstrap, 6);
    let script = format!(
        "{}CREATE SINK split AS SELECT CASE WHEN amount % 2 = 0 THEN 'even' ELSE 'odd' END AS dest, \
         CAST(amount AS VARCHAR) AS v FROM bids WITH (connector = 'kafka', topic.column = 'dest', \
         'bootstrap.servers' = '{bootstrap}', format = 'raw', key = 'v');",
        bids_stream(&bootstrap)
    );
    let sinks = run(&script).await.unwrap();
    assert!(
        sinks[0].contains("kafka topics from column 'dest' (raw): 6 messages"),
        "{sinks:?}"
    );
    for (topic, want) in [("even", ["0", "2", "4"]), ("odd", ["1", "3", "5"])] {
        let mut got: Vec<(String, String)> = read_all(&bootstrap, topic, "read_uncommitted")
            .into_iter()
            .map(|m| (m.key.unwrap(), m.value.unwrap()))
            .collect();
        got.sort();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|v| (v.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want, "{topic}");
    }
}

/// A broker that goes away after the sink opened: the batch's commit fails
/// within `timeout`, naming the undelivered messages.
#[test]
fn a_broker_lost_mid_run_fails_the_commit_within_the_timeout() {
    let cluster = cluster_with(&["gone"]);
    let def = SinkDef::new(
        "gone",
        "kafka",
        schema(),
        Options::new([
            ("topic", "gone".to_string()),
            ("bootstrap.servers", cluster.bootstrap_servers()),
            ("timeout", "2s".to_string()),
        ]),
    );
    let mut sink = quiver::open_sink(&def).unwrap();
    cluster.broker_down(1).unwrap();
    let started = Instant::now();
    sink.write(&result(1, &["a", "b"])).unwrap();
    let err = sink.commit(&end(1)).unwrap_err().to_string();
    assert!(err.contains("not delivered"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}
