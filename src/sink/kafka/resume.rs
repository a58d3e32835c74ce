//! Where an exactly-once kafka sink resumes after a crash under
//! `--checkpoint`: the last batch its transactions committed to the topic.
//!
//! The window this closes: the batch's transaction is committed, then the
//! process dies before the checkpoint's commit log records the batch. The
//! restart re-runs the batch from the checkpoint; sent again, its rows
//! would be in the topic twice. Every message carries its batch id
//! (`quiver.batch`) and the checkpoint's identity (`quiver.checkpoint`), so
//! the sink reads the tail of each partition with a `read_committed`
//! consumer (after `init_transactions` aborted whatever the dead process
//! left open) and skips the batches up to the highest id of its own
//! checkpoint found there: those are committed, exactly once. A batch
//! whose transaction was aborted is invisible to that reader, so it is
//! sent again, in a new transaction.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::options::KafkaSinkOptions;
use super::{BATCH_HEADER, CHECKPOINT_HEADER};

/// Messages read back from a partition's end at first; the window grows
/// (×8) until a message of the checkpoint is found or the start reached.
const FIRST_WINDOW: i64 = 1024;

/// The highest batch id of checkpoint `checkpoint` committed to `topic`,
/// or `None` if it has none there. Errors are messages for the sink's
/// error (redacted).
pub(super) fn last_committed_batch(
    opts: &KafkaSinkOptions,
    topic: &str,
    checkpoint: &str,
) -> Result<Option<u64>, String> {
    let mut config = ClientConfig::new();
    for (name, value) in opts.properties.iter() {
        config.set(name, value);
    }
    config
        .set("bootstrap.servers", &opts.bootstrap)
        .set("group.id", format!("quiver-sink-resume-{checkpoint}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let failed = |what: &str, e: KafkaError| format!("{what}: {}", opts.redact(&e.to_string()));
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| failed("cannot create the reader", e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), opts.timeout)
        .map_err(|e| failed("cannot read the topic's metadata", e))?;
    let partitions: Vec<i32> = (metadata.topics().iter())
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut last = None;
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, opts.timeout)
            .map_err(|e| failed("cannot read the partition's offsets", e))?;
        let mut window = FIRST_WINDOW;
        loop {
            let start = high.saturating_sub(window).max(low);
            let found = read_from(&consumer, opts, topic, partition, start, checkpoint)?;
            if found.is_some() || start <= low {
                last = last.max(found);
                break;
            }
            window = window.saturating_mul(8);
        }
    }
    Ok(last)
}

/// The highest batch id of `checkpoint` in `partition` from `start` to the
/// end a `read_committed` reader sees.
fn read_from(
    consumer: &BaseConsumer,
    opts: &KafkaSinkOptions,
    topic: &str,
    partition: i32,
    start: i64,
    checkpoint: &str,
) -> Result<Option<u64>, String> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(|e| opts.redact(&e.to_string()))?;
    consumer
        .assign(&tpl)
        .map_err(|e| opts.redact(&e.to_string()))?;
    let deadline = Instant::now() + opts.timeout;
    let mut last = None;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(last),
            Some(Err(e)) => {
                return Err(format!(
                    "cannot read partition {partition} of topic '{topic}': {}",
                    opts.redact(&e.to_string())
                ));
            }
            Some(Ok(message)) => {
                let Some(headers) = message.headers() else {
                    continue;
                };
                let value = |key: &str| {
                    (headers.iter())
                        .find(|h| h.key == key)
                        .and_then(|h| h.value)
                        .and_then(|v| std::str::from_utf8(v).ok())
                };
                if value(CHECKPOINT_HEADER) == Some(checkpoint)
                    && let Some(batch) = value(BATCH_HEADER).and_then(|b| b.parse::<u64>().ok())
                {
                    last = last.max(Some(batch));
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "reading partition {partition} of topic '{topic}' back took longer than {} \
                 (option 'timeout')",
                humantime::format_duration(opts.timeout)
            ));
        }
    }
}
