//! Kafka helpers the mock-cluster tests share.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Partitions of the tests' topics.
pub const PARTITIONS: i32 = 3;
/// Bound on each broker request the helpers make.
pub const TIMEOUT: Duration = Duration::from_secs(10);

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
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, timeout).expect("committed");
    (0..PARTITIONS)
        .map(|p| {
            let offset = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(n)) => n,
                _ => -1,
            };
            let (_, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .expect("watermarks");
            (offset, high)
        })
        .collect()
}
