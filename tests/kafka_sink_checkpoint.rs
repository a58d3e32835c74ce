//! Crash tests of the kafka sink under `--checkpoint`, on librdkafka's mock
//! cluster (kept alive by this process; `quiver run` connects to it): a
//! 3-partition topic → event-time TUMBLE count → `CREATE SINK ... WITH
//! (connector = 'kafka')` into a 2-partition topic (keyed), aborted at each
//! named point of the sink and checkpoint protocols
//! (`QUIVER_CHECKPOINT_CRASH`) and restarted with the same checkpoint.
//!
//! - Exactly-once: a `read_committed` reader of the output sees every row of
//!   an uninterrupted run exactly once. The crash after the transaction
//!   commit but before the commit log (`before_commit_log`) needs the
//!   sink's read-back of its last committed batch; the crash before the
//!   flush (`after_kafka_send_before_commit`, messages held by `linger.ms`)
//!   needs the batch to be sent again. (The mock broker keeps no list of
//!   aborted transactions, so a flushed-then-aborted batch would show here;
//!   a real broker hides it from `read_committed` readers.)
//! - At-least-once: after keeping, per `quiver.batch`, only the messages of
//!   the newest `quiver.run`, the same rows exactly once; without that,
//!   the replayed batch shows twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

mod common;

use common::kafka::{
    Cluster, PARTITIONS, READINGS, READINGS_PER_PARTITION, TIMEOUT, committed, readings_cluster,
};

const OUT_PARTITIONS: i32 = 2;
const FLAGS: &[&str] = &["--clock", "simulated", "--until-idle"];

/// The script of `group`: a 1 s TUMBLE count per key, read from the
/// earliest offsets, at most 25 messages a batch (so several batches emit
/// windows), into topic `out` with the kafka sink `options`.
fn script(bootstrap: &str, group: &str, out: &str, options: &str) -> String {
    format!(
        "CREATE STREAM readings (ts TIMESTAMP(3), k VARCHAR, v BIGINT, \
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH (connector = 'kafka', topic = '{READINGS}', 'bootstrap.servers' = '{bootstrap}', \
           'group.id' = '{group}', format = 'json', 'scan.startup.mode' = 'earliest', \
           timeout = '5s', max_records_per_batch = 10);\n\
         CREATE SINK totals AS SELECT k, count(*) AS n, sum(v) AS total, window_start \
         FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
         GROUP BY k, window_start \
         WITH (connector = 'kafka', topic = '{out}', 'bootstrap.servers' = '{bootstrap}', \
           key = 'k', timeout = '5s'{options});\n"
    )
}

/// One message of the output: its value and headers.
#[derive(Debug, Clone)]
struct Read {
    value: String,
    batch: u64,
    run: u128,
    checkpoint: Option<String>,
}

/// Every message of `topic`, read with `read_committed`.
fn read_all(bootstrap: &str, topic: &str) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..OUT_PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut ended = 0;
    let deadline = Instant::now() + TIMEOUT;
    while ended < OUT_PARTITIONS {
        assert!(Instant::now() < deadline, "reading {topic} hung");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => ended += 1,
            Some(Err(e)) => panic!("consume: {e}"),
            Some(Ok(m)) => {
                let header = |key: &str| {
                    m.headers().and_then(|h| {
                        h.iter()
                            .find(|h| h.key == key)
                            .and_then(|h| h.value)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    })
                };
                out.push(Read {
                    value: String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
                    batch: header("quiver.batch").unwrap().parse().unwrap(),
                    run: header("quiver.run").unwrap().parse().unwrap(),
                    checkpoint: header("quiver.checkpoint"),
                });
            }
        }
    }
    out
}

fn sorted_values(reads: &[Read]) -> Vec<String> {
    let mut values: Vec<String> = reads.iter().map(|r| r.value.clone()).collect();
    values.sort();
    values
}

/// The values left after dropping, per `quiver.batch`, every message but
/// those of the newest `quiver.run`: what an at-least-once reader keeps.
fn newest_run_per_batch(reads: &[Read]) -> Vec<String> {
    let mut newest: BTreeMap<u64, u128> = BTreeMap::new();
    for r in reads {
        let run = newest.entry(r.batch).or_default();
        *run = (*run).max(r.run);
    }
    let kept: Vec<Read> = (reads.iter())
        .filter(|r| newest[&r.batch] == r.run)
        .cloned()
        .collect();
    sorted_values(&kept)
}

/// Runs quiver in `dir` with `args` and [`FLAGS`], crashing at `crash`.
fn quiver(dir: &Path, args: &[&str], crash: Option<&str>) -> Output {
    common::run_quiver(dir, &[args, FLAGS].concat(), crash)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The uninterrupted run's output values, and how many batches wrote them.
fn full_run(cluster: &Cluster, dir: &Path, options: &str) -> (Vec<String>, usize) {
    let bootstrap = cluster.bootstrap_servers();
    cluster.create_topic("full", OUT_PARTITIONS, 1).unwrap();
    let sql = script(&bootstrap, "full", "full", options);
    std::fs::write(dir.join("full.sql"), sql).unwrap();
    let out = quiver(dir, &["run", "full.sql"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let reads = read_all(&bootstrap, "full");
    // 4 s of readings, 3 keys: 12 windows, each once.
    assert_eq!(reads.len(), 12, "{reads:?}");
    assert!(reads.iter().all(|r| r.checkpoint.is_none()));
    let mut batches: Vec<u64> = reads.iter().map(|r| r.batch).collect();
    batches.sort();
    batches.dedup();
    (sorted_values(&reads), batches.len())
}

/// Runs the script of `name` (group, output topic and checkpoint) crashing
/// at `crash`, then again; the output's messages.
fn crash_and_resume(
    cluster: &Cluster,
    dir: &Path,
    name: &str,
    options: &str,
    crash: &str,
) -> (Vec<Read>, String) {
    let bootstrap = cluster.bootstrap_servers();
    cluster.create_topic(name, OUT_PARTITIONS, 1).unwrap();
    let file = format!("{name}.sql");
    std::fs::write(dir.join(&file), script(&bootstrap, name, name, options)).unwrap();
    let ck = format!("ck-{name}");
    let args = ["run", file.as_str(), "--checkpoint", ck.as_str()];
    let first = quiver(dir, &args, Some(crash));
    assert!(
        !first.status.success(),
        "{crash}: the hook did not fire: {}",
        stderr(&first)
    );
    let second = quiver(dir, &args, None);
    assert!(
        second.status.success(),
        "{crash}: restart failed: {}",
        stderr(&second)
    );
    assert_eq!(
        committed(&bootstrap, READINGS, name),
        vec![READINGS_PER_PARTITION; PARTITIONS as usize],
        "{crash}"
    );
    (read_all(&bootstrap, name), stderr(&second))
}

#[test]
fn exactly_once_sink_recovers_every_crash_point_without_duplicates_or_losses() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = readings_cluster();
    // Messages wait in librdkafka's queue until the batch's flush, so a
    // crash before it loses the open transaction's messages.
    let options = ", sink.semantic = 'exactly-once', 'properties.linger.ms' = '2000'";
    let (full, batches) = full_run(&cluster, dir.path(), options);
    assert!(batches >= 3, "{batches} batches wrote");
    let mut case = 0;
    for point in [
        "after_kafka_send_before_commit",
        "before_commit_log",
        "after_commit_log",
    ] {
        // The first, second and third batch that wrote messages.
        for nth in 0..3 {
            case += 1;
            let crash = format!("{point}@r{nth}");
            let options = format!("{options}, 'transactional.id' = 'tx{case}'");
            let (reads, said) =
                crash_and_resume(&cluster, dir.path(), &format!("eo{case}"), &options, &crash);
            assert_eq!(sorted_values(&reads), full, "{crash}");
            if point == "before_commit_log" {
                // The transaction committed, the commit log missed it: the
                // restart found the batch in the topic and did not resend it.
                assert!(said.contains("were committed before the restart"), "{said}");
            }
            assert!(reads.iter().all(|r| r.checkpoint.is_some()), "{crash}");
        }
    }
}

#[test]
fn at_least_once_sink_replays_a_batch_that_readers_drop_by_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = readings_cluster();
    let (full, batches) = full_run(&cluster, dir.path(), "");
    assert!(batches >= 2, "{batches} batches wrote");
    let mut case = 0;
    for point in [
        "after_kafka_send_before_commit",
        "before_commit_log",
        "after_commit_log",
    ] {
        for nth in 0..2 {
            case += 1;
            let crash = format!("{point}@r{nth}");
            let (reads, _) =
                crash_and_resume(&cluster, dir.path(), &format!("al{case}"), "", &crash);
            assert_eq!(newest_run_per_batch(&reads), full, "{crash}");
            if point == "before_commit_log" {
                // The batch was delivered, then replayed: twice without the rule.
                assert!(sorted_values(&reads).len() > full.len(), "{crash}");
            }
        }
    }
}

/// The query's sink line (`SHOW QUERIES`, and the summary `quiver run`
/// prints) says how a replayed batch shows.
#[test]
fn a_checkpointed_kafka_sink_says_how_replays_show() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = readings_cluster();
    let bootstrap = cluster.bootstrap_servers();
    cluster.create_topic("shown", OUT_PARTITIONS, 1).unwrap();
    let sql = script(&bootstrap, "shown", "shown", "");
    std::fs::write(dir.path().join("shown.sql"), sql).unwrap();
    let out = quiver(
        dir.path(),
        &["run", "shown.sql", "--checkpoint", "ck"],
        None,
    );
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("a batch replayed after a crash comes again with the same 'quiver.batch'"),
        "{text}"
    );
}
