//! Crash driver (b) of issue 14 against a real Kafka-protocol broker (Tansu,
//! from `../shared/kafka/broker.sh`; `.ci/run` starts it): a topic of known
//! readings → event-time HOP aggregate → a Parquet sink **and** a kafka
//! sink (two queries, each with its own stream and consumer group) (at-least-once: Tansu has no transactions), both under
//! `--checkpoint`. `quiver run` is killed with `SIGKILL` at random moments
//! (seeded: the seed is printed, `QUIVER_CRASH_SEED=<n>` replays it) at
//! least 20 times and restarted each time until it finishes. Then:
//! - the Parquet files hold exactly the rows of an uninterrupted run (same
//!   rows per window, no duplicates, no losses);
//! - the kafka topic holds them too once a reader keeps, per `quiver.batch`,
//!   only the messages of the newest `quiver.run` (replayed batches dropped);
//! - the group's committed offsets end at the partition ends.
//!
//! Skips (with a message) unless `QUIVER_KAFKA_BROKER=host:port` names a
//! running broker and `QUIVER_KAFKA_BROKER_SH` the script that runs it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use common::kafka::{Broker, send_retrying};

const PARTITIONS: i32 = 3;
/// Readings per input partition.
const PER_PARTITION: i64 = 80;
const TIMEOUT: Duration = Duration::from_secs(20);
/// Kills over all sequences.
const KILLS: usize = 20;

impl Broker {
    /// Readings 100 ms apart in every partition (ascending per partition,
    /// so none is late whatever the batches), 3 keys.
    fn produce_readings(&self, topic: &str) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .create()
            .expect("producer");
        for partition in 0..PARTITIONS {
            for i in 0..PER_PARTITION {
                let ms = i * 100 + i64::from(partition) * 7;
                let value = format!(
                    r#"{{"ts": "1970-01-01T00:00:{:02}.{:03}", "k": "k{}", "v": {}}}"#,
                    ms / 1000,
                    ms % 1000,
                    (i + i64::from(partition)) % 3,
                    i * 10 + i64::from(partition)
                );
                let record = BaseRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(&value);
                send_retrying(&producer, record);
            }
        }
        producer.flush(TIMEOUT).expect("flush");
    }

    /// Per input partition, the group's committed offset and the end.
    fn committed_and_ends(&self, topic: &str, group: &str) -> Vec<(i64, i64)> {
        common::kafka::committed_and_ends_within(&self.address, topic, group, TIMEOUT)
    }

    /// Every message of the 1-partition `topic`: value, `quiver.batch`,
    /// `quiver.run`.
    fn read_all(&self, topic: &str) -> Vec<(String, u64, u128)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("group.id", format!("{topic}-reader"))
            .set("enable.partition.eof", "true")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .expect("partition");
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "reading {topic} hung");
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
                Some(Err(e)) => panic!("consume: {e}"),
                Some(Ok(m)) => {
                    let header = |key: &str| {
                        (m.headers().expect("headers").iter())
                            .find(|h| h.key == key)
                            .and_then(|h| h.value)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                            .expect(key)
                    };
                    out.push((
                        String::from_utf8_lossy(m.payload().expect("value")).into_owned(),
                        header("quiver.batch").parse().expect("batch id"),
                        header("quiver.run").parse().expect("run"),
                    ));
                }
            }
        }
    }
}

/// The script: the same HOP aggregate of the topic into Parquet (`out/`,
/// partitioned, rolled every 4 rows so files are finished while batches
/// run) and into topic `out`, each query reading its own stream, with its
/// own consumer group (`<group>-parquet`, `<group>-kafka`).
fn script(broker: &str, input: &str, group: &str, out: &str) -> String {
    let stream = |name: &str, group: &str| {
        format!(
            "CREATE STREAM {name} (ts TIMESTAMP(3), k VARCHAR, v BIGINT, \
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
             WITH (connector = 'kafka', topic = '{input}', 'bootstrap.servers' = '{broker}', \
               'group.id' = '{group}', format = 'json', 'scan.startup.mode' = 'earliest', \
               timeout = '10s', max_records_per_batch = 20);\n"
        )
    };
    let hop = |stream: &str| {
        format!(
            "SELECT k, count(*) AS n, sum(v) AS total, window_start, window_end \
             FROM TABLE(HOP(TABLE {stream}, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '2' SECOND)) \
             GROUP BY k, window_start, window_end"
        )
    };
    format!(
        "{}{}CREATE SINK hops AS {} \
         WITH (connector = 'parquet', path = 'out', partition_by = 'k', rollover_rows = '4');\n\
         CREATE SINK hops_topic AS {} \
         WITH (connector = 'kafka', topic = '{out}', 'bootstrap.servers' = '{broker}', \
           key = 'k', timeout = '10s');\n",
        stream("readings", &format!("{group}-parquet")),
        stream("readings_k", &format!("{group}-kafka")),
        hop("readings"),
        hop("readings_k"),
    )
}

fn quiver(dir: &Path, checkpoint: bool) -> Command {
    let mut cmd = common::quiver_in(dir);
    cmd.args(["run", "crash.sql", "--clock", "simulated", "--until-idle"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if checkpoint {
        cmd.args(["--checkpoint", "ck"]);
    }
    cmd
}

/// The kafka output's values, sorted, after keeping per `quiver.batch` only
/// the messages of the newest `quiver.run`.
fn newest_run_per_batch(messages: &[(String, u64, u128)]) -> Vec<String> {
    let mut newest: BTreeMap<u64, u128> = BTreeMap::new();
    for (_, batch, run) in messages {
        let newest = newest.entry(*batch).or_default();
        *newest = (*newest).max(*run);
    }
    let mut values: Vec<String> = (messages.iter())
        .filter(|(_, batch, run)| newest[batch] == *run)
        .map(|(value, _, _)| value.clone())
        .collect();
    values.sort();
    values
}

fn sorted_values(messages: &[(String, u64, u128)]) -> Vec<String> {
    let mut values: Vec<String> = messages.iter().map(|(v, _, _)| v.clone()).collect();
    values.sort();
    values
}

#[test]
fn random_sigkills_on_a_real_broker_leave_the_uninterrupted_parquet_and_kafka_output() {
    let Some(broker) = Broker::from_env("kafka_broker_crash") else {
        return;
    };
    let input = broker.topic("crash-in", PARTITIONS);
    broker.produce_readings(&input);

    // The uninterrupted run, without a checkpoint.
    let full_dir = tempfile::tempdir().unwrap();
    let full_topic = broker.topic("crash-full", 1);
    let group = format!("{input}-full");
    let sql = script(&broker.address, &input, &group, &full_topic);
    std::fs::write(full_dir.path().join("crash.sql"), sql).unwrap();
    let started = Instant::now();
    let status = common::wait_or_kill(
        quiver(full_dir.path(), false).spawn().unwrap(),
        TIMEOUT * 6,
        "uninterrupted run",
    );
    assert!(status.success(), "the uninterrupted run failed");
    // How long a whole run takes here (debug build, busy machine).
    let span = started.elapsed().as_millis() as u64;
    let parquet = common::parquet_rows(&full_dir.path().join("out"), full_dir.path());
    let messages = broker.read_all(&full_topic);
    let kafka = sorted_values(&messages);
    // 8 s of readings, 3 keys, 2 s windows sliding by 1 s: 27 windows.
    assert!(parquet.len() >= 24, "{parquet:?}");
    assert_eq!(kafka.len(), parquet.len(), "{kafka:?}");

    let seed = common::crash_seed();
    eprintln!("random kills on the broker: QUIVER_CRASH_SEED={seed} (a whole run takes {span} ms)");
    let mut rng = common::Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut kills = 0;
    let mut sequences = 0;
    let mut replayed = 0;
    while kills < KILLS {
        sequences += 1;
        for sub in ["ck", "out"] {
            std::fs::remove_dir_all(dir.path().join(sub)).ok();
        }
        let out = broker.topic("crash-out", 1);
        let group = format!("{out}-group");
        let sql = script(&broker.address, &input, &group, &out);
        std::fs::write(dir.path().join("crash.sql"), sql).unwrap();
        let mut attempts = 0;
        loop {
            attempts += 1;
            // Each run's stderr, for the failure message.
            let log = std::fs::File::create(dir.path().join("run.log")).unwrap();
            let mut child = quiver(dir.path(), true).stderr(log).spawn().unwrap();
            if attempts > 8 {
                // Let the sequence finish.
                let status = common::wait_or_kill(child, TIMEOUT * 6, "last run");
                assert!(status.success(), "seed {seed}: the last run failed");
                break;
            }
            std::thread::sleep(Duration::from_millis(rng.below(span)));
            if child.try_wait().unwrap().is_some() {
                let status = common::wait_or_kill(child, TIMEOUT * 6, "run");
                assert!(status.success(), "seed {seed}: a run failed");
                break;
            }
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
        }
        let log = std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default();
        let what = format!("seed {seed}, sequence {sequences} (the last run's stderr:\n{log})");
        assert_eq!(
            common::parquet_rows(&dir.path().join("out"), dir.path()),
            parquet,
            "{what}: parquet"
        );
        let messages = broker.read_all(&out);
        replayed += messages.len() - kafka.len().min(messages.len());
        assert_eq!(newest_run_per_batch(&messages), kafka, "{what}: kafka");
        for group in [format!("{group}-parquet"), format!("{group}-kafka")] {
            let offsets = broker.committed_and_ends(&input, &group);
            for (p, (committed, end)) in offsets.iter().enumerate() {
                assert_eq!(
                    committed, end,
                    "{what}: group {group} partition {p}: committed offset = end"
                );
            }
        }
    }
    eprintln!(
        "{kills} kills in {sequences} sequences; {replayed} kafka message(s) of replayed batches dropped by the reader"
    );
}
