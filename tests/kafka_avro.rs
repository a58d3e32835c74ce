//! `format = 'avro'` on the kafka source against librdkafka's mock cluster:
//! Avro-encoded bids (hand-encoded datums, behind Confluent's wire header or
//! bare) are read until idle into the declared columns by name, and a
//! malformed datum fails naming its offset, is skipped or goes to a
//! dead-letter file.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;

mod common;

use common::avro::bid;
use common::kafka::{Cluster, Msg, context, produce, run_in};

/// The writer schema of the bids (the README's example).
const SCHEMA: &str = r#"{"type": "record", "name": "bid", "fields": [{"name": "user", "type": "string"}, {"name": "amount", "type": "long"}]}"#;

/// A one-partition `topic` holding `values`, in order.
fn topic_with(topic: &str, values: &[Vec<u8>]) -> Cluster {
    let cluster = Cluster::new(1).expect("mock cluster");
    cluster.create_topic(topic, 1, 1).expect("topic");
    let messages: Vec<Msg> = (values.iter()).map(|v| Msg::value(0, v.clone())).collect();
    produce(&cluster.bootstrap_servers(), topic, &messages);
    cluster
}

/// The README's stream over `topic` read by group `group` with `extra`
/// options, then a query of `user, amount, _offset`.
fn script(bootstrap: &str, topic: &str, group: &str, extra: &str) -> String {
    format!(
        "CREATE STREAM bids (user VARCHAR, amount BIGINT) WITH (connector = 'kafka', \
         topic = '{topic}', 'bootstrap.servers' = '{bootstrap}', 'group.id' = '{group}', format = 'avro', \
         'avro.schema' = '{SCHEMA}', timeout = '5s'{extra});
         SELECT user, amount, _offset FROM bids;"
    )
}

/// Runs `script` until idle: `(user, amount, offset)` of every row, by offset.
async fn run(script: &str) -> Result<Vec<(String, i64, i64)>, String> {
    let batches = run_in(&context(), script).await?;
    let mut rows = Vec::new();
    for b in &batches {
        let (users, amounts) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        let offsets = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            rows.push((
                users.value(i).to_string(),
                amounts.value(i),
                offsets.value(i),
            ));
        }
    }
    rows.sort_by_key(|r| r.2);
    Ok(rows)
}

fn row(user: &str, amount: i64, offset: i64) -> (String, i64, i64) {
    (user.to_string(), amount, offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_framed_and_bare_avro_bids_become_rows() {
    let values: Vec<_> = (0..5)
        .map(|i| bid(&format!("u{i}"), i * 1000 - 2, true))
        .collect();
    let cluster = topic_with("avro", &values);
    let rows = run(&script(&cluster.bootstrap_servers(), "avro", "g1", ""))
        .await
        .unwrap();
    let expected: Vec<_> = (0..5)
        .map(|i| row(&format!("u{i}"), i * 1000 - 2, i))
        .collect();
    assert_eq!(rows, expected);

    let bare = topic_with("bare", &[bid("ann", 7, false), bid("", 0, false)]);
    let extra = ", 'avro.confluent' = 'false'";
    let rows = run(&script(&bare.bootstrap_servers(), "bare", "g2", extra))
        .await
        .unwrap();
    assert_eq!(rows, [row("ann", 7, 0), row("", 0, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_datum_fails_naming_its_offset_is_skipped_or_dead_lettered() {
    let values = [
        bid("a", 1, true),
        b"\x00\x00\x00\x00\x2a\x09".to_vec(),
        bid("c", 3, true),
    ];
    let cluster = topic_with("bad", &values);
    let bootstrap = cluster.bootstrap_servers();
    let err = run(&script(&bootstrap, "bad", "g3", "")).await.unwrap_err();
    assert!(
        err.contains("malformed avro in kafka topic 'bad' partition 0 offset 1"),
        "{err}"
    );
    let rows = run(&script(&bootstrap, "bad", "g4", ", on_error = 'skip'"))
        .await
        .unwrap();
    assert_eq!(rows, [row("a", 1, 0), row("c", 3, 2)]);
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let extra = format!(
        ", on_error = 'dead_letter', 'dead_letter.path' = '{}'",
        dead.display()
    );
    let rows = run(&script(&bootstrap, "bad", "g6", &extra)).await.unwrap();
    assert_eq!(rows, [row("a", 1, 0), row("c", 3, 2)]);
    let lines = std::fs::read_to_string(&dead).unwrap();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(
        lines.contains("malformed avro") && lines.contains("offset 1"),
        "{lines}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_missing_from_the_avro_schema_is_refused_at_create_stream() {
    let cluster = topic_with("cols", &[]);
    let script = script(&cluster.bootstrap_servers(), "cols", "g5", "")
        .replace("amount BIGINT", "price BIGINT")
        .replace(
            "SELECT user, amount, _offset",
            "SELECT user, price, _offset",
        );
    let err = run(&script).await.unwrap_err();
    assert!(
        err.contains("column price is not a field of the Avro schema"),
        "{err}"
    );
}
