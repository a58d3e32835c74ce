//! Kafka helpers the mock-cluster tests share: clusters and producing to
//! them, the `bids` stream and a context to run it in, reading the rows of
//! a query that runs until idle, and the group's committed offsets; and the
//! real broker of the `kafka_broker*` tests ([`Broker`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use quiver::{Clock, Config, Context, Output, RunLimits};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::ToBytes;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Partitions of the tests' topics.
pub const PARTITIONS: i32 = 3;
/// Bound on each broker request the helpers make.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A mock cluster, alive as long as the test holds it.
pub type Cluster = MockCluster<'static, DefaultProducerContext>;

/// A mock cluster with [`PARTITIONS`]-partition `topics`.
pub fn cluster(topics: &[&str]) -> Cluster {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for topic in topics {
        cluster.create_topic(topic, PARTITIONS, 1).expect("topic");
    }
    cluster
}

/// One message to produce: partition, key, value, headers.
pub struct Msg {
    pub partition: i32,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(&'static str, &'static str)>,
}

impl Msg {
    /// A message to `partition` without key or headers.
    pub fn value(partition: i32, value: impl Into<Vec<u8>>) -> Msg {
        Msg {
            partition,
            key: None,
            value: value.into(),
            headers: Vec::new(),
        }
    }
}

/// A keyed message to `partition`, without headers.
pub fn msg(partition: i32, key: &str, value: impl Into<Vec<u8>>) -> Msg {
    Msg {
        key: Some(key.to_string()),
        ..Msg::value(partition, value)
    }
}

/// `n` JSON bids spread over the partitions: user (and key) `u{i % 5}`,
/// amount `i`.
pub fn bids(n: usize) -> Vec<Msg> {
    (0..n)
        .map(|i| {
            let user = format!("u{}", i % 5);
            let value = format!(r#"{{"user": "{user}", "amount": {i}}}"#);
            msg(i as i32 % PARTITIONS, &user, value)
        })
        .collect()
}

/// Produces `messages` to `topic` and waits until all are acknowledged.
pub fn produce(bootstrap: &str, topic: &str, messages: &[Msg]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for m in messages {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(m.partition)
            .payload(&m.value[..]);
        if let Some(key) = &m.key {
            record = record.key(key.as_bytes());
        }
        if !m.headers.is_empty() {
            let mut headers = OwnedHeaders::new();
            for (key, value) in &m.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(*value),
                });
            }
            record = record.headers(headers);
        }
        producer.send(record).expect("enqueue");
    }
    producer.flush(TIMEOUT).expect("flush");
}

/// The simulated clock the tests run on, from 2026-01-01.
pub const SIMULATED: Clock = Clock::Simulated {
    start_ms: 1_767_225_600_000,
};

/// Run until the sources are idle.
pub const UNTIL_IDLE: RunLimits = RunLimits {
    until_idle: true,
    max_batches: None,
};

/// A context on `clock` with batches of `interval`, under `limits`.
pub fn context_with(clock: Clock, interval: Duration, limits: RunLimits) -> Context {
    Context::new(Config {
        batch_interval: interval,
        clock,
        limits,
        ..Config::default()
    })
}

/// A context on the simulated clock with 1 s batches, until idle.
pub fn context() -> Context {
    context_with(SIMULATED, Duration::from_secs(1), UNTIL_IDLE)
}

/// `CREATE STREAM bids (user, amount)` over JSON `topic`, read by `group`,
/// with `extra` options (each starting with a comma).
pub fn create_stream(bootstrap: &str, topic: &str, group: &str, extra: &str) -> String {
    format!(
        "CREATE STREAM bids (user VARCHAR, amount BIGINT) WITH (connector = 'kafka', topic = '{topic}', \
         'bootstrap.servers' = '{bootstrap}', 'group.id' = '{group}', format = 'json', \
         timeout = '5s'{extra});"
    )
}

/// Runs `script` (ending in a continuous query) in [`context`] until idle;
/// all result rows.
pub async fn run(script: &str) -> Result<Vec<RecordBatch>, String> {
    run_in(&context(), script).await
}

/// Runs `script` (ending in a continuous query) in `ctx` until it ends;
/// all result rows.
pub async fn run_in(ctx: &Context, script: &str) -> Result<Vec<RecordBatch>, String> {
    let outputs = ctx.sql(script).await.map_err(|e| e.to_string())?;
    let Some(Output::Query(mut query)) = outputs.into_iter().last() else {
        panic!("the script ends in a continuous query");
    };
    let mut rows = Vec::new();
    while let Some(result) = query.next().await {
        rows.extend(result.rows);
    }
    query.finish().await.map_err(|e| e.to_string())?;
    Ok(rows)
}

/// Sums `(key, count)` rows per key.
pub fn counts(rows: &[RecordBatch]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for batch in rows {
        let keys = batch.column(0).as_string::<i32>();
        let n = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            *out.entry(keys.value(i).to_string()).or_default() += n.value(i);
        }
    }
    out
}

/// The topic of [`readings_cluster`].
pub const READINGS: &str = "readings";
/// Messages per partition of [`READINGS`].
pub const READINGS_PER_PARTITION: i64 = 40;

/// A mock cluster whose topic [`READINGS`] holds, in every partition,
/// JSON readings `(ts, k, v)` 100 ms apart (ascending per partition, so
/// none is late whatever the batches).
pub fn readings_cluster() -> Cluster {
    let cluster = cluster(&[READINGS]);
    let readings: Vec<Msg> = (0..PARTITIONS)
        .flat_map(|partition| {
            (0..READINGS_PER_PARTITION).map(move |i| {
                let ms = i * 100 + i64::from(partition) * 7;
                let value = format!(
                    r#"{{"ts": "1970-01-01T00:00:{:02}.{:03}", "k": "k{}", "v": {i}}}"#,
                    ms / 1000,
                    ms % 1000,
                    i % 3
                );
                Msg::value(partition, value)
            })
        })
        .collect();
    produce(&cluster.bootstrap_servers(), READINGS, &readings);
    cluster
}

/// The group's committed offset per partition of `topic` (-1 where it has
/// none).
pub fn committed(bootstrap: &str, topic: &str, group: &str) -> Vec<i64> {
    committed_offsets(&group_reader(bootstrap, group), topic)
}

/// The group's committed offset (-1: none) and the high watermark of each
/// partition of `topic`: after a run that read everything they are equal.
pub fn committed_and_ends(bootstrap: &str, topic: &str, group: &str) -> Vec<(i64, i64)> {
    committed_and_ends_within(bootstrap, topic, group, TIMEOUT)
}

/// [`committed_and_ends`], each broker request bounded by `timeout` (a real
/// broker on a busy machine answers slower than the mock cluster).
pub fn committed_and_ends_within(
    bootstrap: &str,
    topic: &str,
    group: &str,
    timeout: Duration,
) -> Vec<(i64, i64)> {
    let consumer = group_reader(bootstrap, group);
    let committed = committed_offsets_within(&consumer, topic, timeout);
    (0..PARTITIONS)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .expect("watermarks");
            (committed[p as usize], high)
        })
        .collect()
}

/// A consumer of `group` that only reads the group's committed offsets.
pub fn group_reader(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer")
}

/// The committed offset per partition of `topic` (-1 where it has none)
/// of `consumer`'s group (a [`group_reader`]).
pub fn committed_offsets(consumer: &BaseConsumer, topic: &str) -> Vec<i64> {
    committed_offsets_within(consumer, topic, TIMEOUT)
}

/// [`committed_offsets`], the request bounded by `timeout`.
fn committed_offsets_within(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Vec<i64> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, timeout).expect("committed");
    (0..PARTITIONS)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(n)) => n,
                _ => -1,
            },
        )
        .collect()
}

/// A real Kafka-protocol broker (Tansu, from `../shared/kafka/broker.sh`;
/// `.ci/run` starts it) that the environment names.
pub struct Broker {
    /// `host:port`, from `QUIVER_KAFKA_BROKER`.
    pub address: String,
    /// The script that runs it, from `QUIVER_KAFKA_BROKER_SH`.
    pub script: PathBuf,
}

impl Broker {
    /// The broker from the environment, or `None` after saying why `test`
    /// skips.
    pub fn from_env(test: &str) -> Option<Self> {
        let (Ok(address), Ok(script)) = (
            std::env::var("QUIVER_KAFKA_BROKER"),
            std::env::var("QUIVER_KAFKA_BROKER_SH"),
        ) else {
            eprintln!(
                "skipping {test}: set QUIVER_KAFKA_BROKER=host:port and QUIVER_KAFKA_BROKER_SH=path/to/broker.sh \
                 (.ci/run starts ../shared/kafka/broker.sh and sets both)"
            );
            return None;
        };
        Some(Self {
            address,
            script: script.into(),
        })
    }

    /// The broker's port, as `broker.sh` takes it.
    pub fn port(&self) -> &str {
        self.address.rsplit(':').next().unwrap_or("19092")
    }

    /// Runs `broker.sh` with `args`, which must succeed.
    pub fn script(&self, args: &[&str]) {
        let status = Command::new(&self.script)
            .args(args)
            .status()
            .expect("run broker.sh");
        assert!(status.success(), "broker.sh {args:?} failed");
    }

    /// A new topic of `partitions`, named uniquely (the broker's storage
    /// outlives test runs).
    pub fn topic(&self, stem: &str, partitions: i32) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{stem}-{}-{nanos}", std::process::id());
        self.script(&["topic", &name, &partitions.to_string(), self.port()]);
        name
    }
}

/// Sends `record`, polling while the producer's queue is full.
pub fn send_retrying<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>)
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                producer.poll(Duration::from_millis(10));
                record = back;
            }
        }
    }
}
