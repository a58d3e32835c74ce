//! `quiver bench kafka`: Nexmark bids as JSON Kafka messages through the
//! kafka source's decoding and a per-batch `GROUP BY auction`, each figure
//! next to a baseline of the same run:
//!
//! - **in memory** (always): the messages, held in memory, are cut into
//!   batches, copied into one chunk per partition as the consumer does, and
//!   decoded by the kafka source's own code (`quiver::kafka_decode`); each
//!   batch then runs the GROUP BY in DataFusion. Baseline: arrow-json
//!   decoding all the same bytes as one batch, then the GROUP BY once.
//! - **mock cluster** (always): the messages (at most their first 12 MB: the
//!   mock broker keeps 5 MB a partition) produced into a 3-partition
//!   topic of librdkafka's in-process mock cluster, then read by quiver's
//!   real kafka source under the GROUP BY (`--until-idle`), against a bare
//!   librdkafka `BaseConsumer` reading the same topic (before and after
//!   quiver; the faster read counts).
//! - **broker** (`--broker HOST:PORT`): the same on a real broker, on a fresh
//!   3-partition topic.
//!
//! On the mock cluster and the broker it also times an async
//! `StreamConsumer` reading the same messages against the `BaseConsumer`:
//! the kafka source polls a `BaseConsumer` on the blocking pool, and this
//! line is what that choice is measured by.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::{LineDelimitedWriter, ReaderBuilder};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use quiver::kafka_decode::{KafkaOptions, decode_partition, system_fields};
use quiver::nexmark::{NexmarkGenerator, NexmarkKind, schema as nexmark_schema};
use quiver::{Config, Context, DEFAULT_SIMULATED_START_MS, Options, Output};

use super::{Measurement, THROUGHPUT_QUERY};

/// Partitions of the benchmark topic; message `i` goes to partition `i % 3`.
pub const PARTITIONS: i32 = 3;
/// Most message bytes the mock cluster part produces: librdkafka's mock
/// broker keeps at most 5 MB per partition and drops older messages
/// (`rdkafka_mock.c`), so larger runs use their first 12 MB (4 MB a partition).
const MOCK_MAX_BYTES: usize = 12_000_000;
/// Longest a consumer may go without a message before the run fails.
const STALL: Duration = Duration::from_secs(30);

/// Bid messages as JSON objects, back to back in one buffer.
pub struct Messages {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Messages {
    /// `events` Nexmark bids (the `bids` stream's events, seed 7) as JSON.
    pub fn bids(events: u64) -> anyhow::Result<Self> {
        let generator = NexmarkGenerator::new(7, 1, DEFAULT_SIMULATED_START_MS);
        let mut out = Self {
            bytes: Vec::new(),
            ends: Vec::with_capacity(events as usize),
        };
        let mut lines = Vec::new();
        for from in (0..events).step_by(100_000) {
            let to = (from + 100_000).min(events);
            lines.clear();
            let mut writer = LineDelimitedWriter::new(&mut lines);
            for batch in generator.generate(NexmarkKind::Bid, from, to) {
                writer.write(&batch)?;
            }
            writer.finish()?;
            for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                out.bytes.extend_from_slice(line);
                out.ends.push(out.bytes.len());
            }
        }
        Ok(out)
    }

    /// The first messages, as many as fit in `max_bytes`.
    pub fn first_bytes(&self, max_bytes: usize) -> Self {
        let count = self.ends.partition_point(|&end| end <= max_bytes);
        let end = if count == 0 { 0 } else { self.ends[count - 1] };
        Self {
            bytes: self.bytes[..end].to_vec(),
            ends: self.ends[..count].to_vec(),
        }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Message `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// The bid columns as a kafka stream declares them (nullable, as declared
/// columns are).
fn value_schema() -> SchemaRef {
    let fields: Vec<Field> = nexmark_schema(NexmarkKind::Bid)
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new(fields))
}

fn sql_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int64 => "BIGINT",
        DataType::Timestamp(_, _) => "TIMESTAMP(3)",
        _ => "VARCHAR",
    }
}

/// Runs every part `bootstrap` allows and prints one line per measurement.
pub async fn run(events: u64, events_per_batch: u64, broker: Option<&str>) -> anyhow::Result<()> {
    let messages = Messages::bids(events)?;
    let bytes = messages.bytes.len();
    println!(
        "kafka: {} JSON bid messages ({:.1} MB, {:.0} bytes each), {events_per_batch} per batch, {PARTITIONS} partitions",
        messages.len(),
        bytes as f64 / 1e6,
        bytes as f64 / messages.len().max(1) as f64
    );
    let memory = in_memory(&messages, events_per_batch as usize).await?;
    println!("{memory}");
    let cluster = MockCluster::new(1)?;
    cluster.create_topic("bids", PARTITIONS, 1)?;
    let bootstrap = cluster.bootstrap_servers();
    let some = messages.first_bytes(MOCK_MAX_BYTES);
    let mock = over_kafka("mock cluster", &bootstrap, "bids", &some, events_per_batch).await?;
    println!("{mock}");
    let met = |yes: bool| if yes { "met" } else { "NOT met" };
    let mut goals = format!(
        "goals (release build): in memory >= 1M events/s: {} ({:.2}M)",
        met(memory.quiver >= 1e6),
        memory.quiver / 1e6
    );
    if let Some(broker) = broker {
        let topic = fresh_topic(broker).await?;
        let real = over_kafka("broker", broker, &topic, &messages, events_per_batch).await?;
        println!("{real}");
        let ratio = real.quiver / real.baseline;
        goals += &format!(
            "; against the broker's raw consume, ratio >= 0.5: {} ({ratio:.2})",
            met(ratio >= 0.5)
        );
    }
    println!("{goals}");
    Ok(())
}

/// Decode + batch + per-batch GROUP BY from memory, against arrow-json
/// decoding the same bytes as one batch and one GROUP BY.
pub async fn in_memory(messages: &Messages, per_batch: usize) -> anyhow::Result<Measurement> {
    let values = value_schema();
    let fields: Vec<Field> = values
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .chain(system_fields())
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let options = Options::new([
        ("topic", "bids"),
        ("bootstrap.servers", "in-memory"),
        ("group.id", "in-memory"),
        ("format", "json"),
    ]);
    let format = KafkaOptions::parse(&options)?.format;
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let n = messages.len();
    let per_batch = per_batch.max(1);
    let started = Instant::now();
    let (mut groups, mut rows) = (0, 0);
    for from in (0..n).step_by(per_batch) {
        let to = (from + per_batch).min(n);
        let mut batches = Vec::with_capacity(PARTITIONS as usize);
        for partition in 0..PARTITIONS {
            let (values, ends, offsets) = partition_of(messages, from, to, partition);
            if ends.is_empty() {
                continue;
            }
            let decoded =
                decode_partition("bids", partition, offsets, values, ends, &schema, &format)?;
            rows += decoded.batch.as_ref().map_or(0, RecordBatch::num_rows);
            batches.extend(decoded.batch);
        }
        groups += group_by(&ctx, schema.clone(), batches).await?;
    }
    let quiver_eps = n as f64 / started.elapsed().as_secs_f64();

    let (baseline_eps, baseline_groups) = arrow_json_one_batch(&ctx, messages, values).await?;
    if rows != n {
        anyhow::bail!("the kafka decoder gave {rows} rows for {n} messages");
    }
    if n > 0 && groups < baseline_groups {
        anyhow::bail!(
            "in-memory path produced {groups} groups, fewer than the baseline's {baseline_groups}"
        );
    }
    Ok(Measurement {
        name: format!("in memory: decode+batch+GROUP BY ({per_batch}/batch)"),
        quiver: quiver_eps,
        baseline: baseline_eps,
        unit: "events/s",
    })
}

/// The baseline: arrow-json decoding all messages as one batch, then the
/// GROUP BY once; returns events/s and the group count.
async fn arrow_json_one_batch(
    ctx: &SessionContext,
    messages: &Messages,
    values: SchemaRef,
) -> anyhow::Result<(f64, usize)> {
    let n = messages.len();
    let mut lines = Vec::with_capacity(messages.bytes.len() + n);
    for i in 0..n {
        lines.extend_from_slice(messages.get(i));
        lines.push(b'\n');
    }
    let started = Instant::now();
    let mut decoder = ReaderBuilder::new(values.clone())
        .with_batch_size(n.max(1))
        .build_decoder()?;
    let mut rest = &lines[..];
    while !rest.is_empty() {
        let used = decoder.decode(rest)?;
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
    let all: Vec<RecordBatch> = decoder.flush()?.into_iter().collect();
    let groups = group_by(ctx, values, all).await?;
    Ok((n as f64 / started.elapsed().as_secs_f64(), groups))
}

/// Messages `from..to` of `partition` (values back to back, their ends,
/// their offsets), copied out as the consumer copies what it polls.
fn partition_of(
    messages: &Messages,
    from: usize,
    to: usize,
    partition: i32,
) -> (Vec<u8>, Vec<usize>, Vec<i64>) {
    let parts = PARTITIONS as usize;
    let first = from + (partition as usize + parts - from % parts) % parts;
    let (mut values, mut ends, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
    for i in (first..to).step_by(parts) {
        values.extend_from_slice(messages.get(i));
        ends.push(values.len());
        offsets.push((i / parts) as i64);
    }
    (values, ends, offsets)
}

/// Runs the benchmark's GROUP BY over `batches`; returns the group count.
async fn group_by(
    ctx: &SessionContext,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> anyhow::Result<usize> {
    ctx.deregister_table("bids")?;
    ctx.register_table("bids", Arc::new(MemTable::try_new(schema, vec![batches])?))?;
    let out = ctx.sql(THROUGHPUT_QUERY).await?.collect().await?;
    Ok(out.iter().map(|b| b.num_rows()).sum())
}

/// A new 3-partition topic on `broker`, named uniquely for this run.
async fn fresh_topic(broker: &str) -> anyhow::Result<String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let topic = format!("quiver-bench-{}-{nanos}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new()
                .request_timeout(Some(Duration::from_secs(10)))
                .operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "creating topic {topic} on --broker {broker}: {e}; check the address and that the broker runs"
            )
        })?;
    for result in results {
        if let Err((name, code)) = result {
            anyhow::bail!("creating topic {name} on {broker}: {code}");
        }
    }
    Ok(topic)
}

/// Produces the messages into `topic`, then times a bare `BaseConsumer`
/// and quiver's kafka source under the GROUP BY reading all of them.
async fn over_kafka(
    what: &str,
    bootstrap: &str,
    topic: &str,
    messages: &Messages,
    per_batch: u64,
) -> anyhow::Result<Measurement> {
    let started = Instant::now();
    produce(bootstrap, topic, messages)?;
    let produce_eps = messages.len() as f64 / started.elapsed().as_secs_f64();
    let n = messages.len() as u64;
    let raw = || {
        let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
        tokio::task::spawn_blocking(move || raw_consume(&bootstrap, &topic, n))
    };
    // The raw consumer reads before and after quiver (the first read of a
    // topic may be colder); the faster one counts.
    let before = raw().await??;
    let quiver = quiver_consume(bootstrap, topic, n, per_batch).await?;
    let base = before.min(raw().await??);
    let raw_eps = n as f64 / base.as_secs_f64();
    let quiver_eps = n as f64 / quiver.as_secs_f64();
    let stream = stream_consume(bootstrap, topic, n).await?;
    println!(
        "{what}: produced {n} messages in {:.2} s ({:.0} events/s)",
        n as f64 / produce_eps,
        produce_eps
    );
    println!(
        "{}",
        Measurement {
            name: format!("{what}: raw StreamConsumer (async) vs raw BaseConsumer"),
            quiver: n as f64 / stream.as_secs_f64(),
            baseline: raw_eps,
            unit: "events/s",
        }
    );
    Ok(Measurement {
        name: format!("{what}: consume+decode+GROUP BY vs raw consume"),
        quiver: quiver_eps,
        baseline: raw_eps,
        unit: "events/s",
    })
}

fn produce(bootstrap: &str, topic: &str, messages: &Messages) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("queue.buffering.max.messages", "1000000")
        .set("linger.ms", "20")
        .create()?;
    for i in 0..messages.len() {
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .partition(i as i32 % PARTITIONS)
            .payload(messages.get(i));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => anyhow::bail!("producing to {topic} on {bootstrap}: {e}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("producing to {topic} on {bootstrap}: {e}"))?;
    Ok(())
}

/// Reads `n` messages of every partition of `topic` from the start with a
/// bare consumer (configured as quiver's); returns the time it took.
fn raw_consume(bootstrap: &str, topic: &str, n: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("quiver-bench-raw-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let mut partitions = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        partitions.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&partitions)?;
    let (mut read, mut bytes) = (0u64, 0usize);
    let mut last = Instant::now();
    while read < n {
        match consumer.poll(Duration::from_millis(100)) {
            Some(message) => {
                bytes += message?.payload().map_or(0, <[u8]>::len);
                read += 1;
                last = Instant::now();
            }
            None if last.elapsed() > STALL => {
                anyhow::bail!("raw consumer: {read} of {n} messages, then nothing for {STALL:?}")
            }
            None => {}
        }
    }
    std::hint::black_box(bytes);
    Ok(started.elapsed())
}

/// [`raw_consume`] with an async `StreamConsumer` on this runtime.
async fn stream_consume(bootstrap: &str, topic: &str, n: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("quiver-bench-stream-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let mut partitions = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        partitions.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&partitions)?;
    let (mut read, mut bytes) = (0u64, 0usize);
    while read < n {
        match tokio::time::timeout(STALL, consumer.recv()).await {
            Ok(message) => {
                bytes += message?.payload().map_or(0, <[u8]>::len);
                read += 1;
            }
            Err(_) => {
                anyhow::bail!("stream consumer: {read} of {n} messages, then nothing for {STALL:?}")
            }
        }
    }
    std::hint::black_box(bytes);
    Ok(started.elapsed())
}

/// quiver reading the topic from the start under the GROUP BY until idle.
async fn quiver_consume(
    bootstrap: &str,
    topic: &str,
    n: u64,
    per_batch: u64,
) -> anyhow::Result<Duration> {
    let columns: Vec<String> = value_schema()
        .fields()
        .iter()
        .map(|f| format!("`{}` {}", f.name(), sql_type(f.data_type())))
        .collect();
    let ctx = Context::new(Config::bounded(Duration::from_secs(1)));
    ctx.sql(&format!(
        "CREATE STREAM bids ({}) WITH (connector = 'kafka', topic = '{topic}', \
         'bootstrap.servers' = '{bootstrap}', 'group.id' = 'quiver-bench-{}', format = 'json', \
         'scan.startup.mode' = 'earliest', max_records_per_batch = '{per_batch}')",
        columns.join(", "),
        std::process::id()
    ))
    .await?;
    let started = Instant::now();
    let Some(Output::Query(mut handle)) = ctx.sql(THROUGHPUT_QUERY).await?.pop() else {
        anyhow::bail!("benchmark query did not start a continuous query");
    };
    while handle.next().await.is_some() {}
    let summary = handle.finish().await?;
    if summary.input_rows != n {
        anyhow::bail!(
            "quiver read {} of the {n} messages (skipped {})",
            summary.input_rows,
            summary.skipped
        );
    }
    Ok(started.elapsed())
}
