//! Lag without a broker round trip: librdkafka keeps each assigned
//! partition's high watermark as the last fetch response reported it, and
//! `rd_kafka_get_watermark_offsets` reads that cached value (a lock and a
//! lookup, no request; `fetch_watermarks` would ask the broker). rdkafka has
//! no safe wrapper for it, hence the one FFI call here. The kafka source
//! asks once per partition per poll, not per message.

use std::ffi::CString;

use rdkafka::bindings::{rd_kafka_get_watermark_offsets, rd_kafka_resp_err_t};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

/// The high watermark (end offset) librdkafka last saw for `topic`
/// `partition`; `None` before any fetch response for it arrived.
pub fn cached_high_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client pointer is valid while `consumer` is borrowed;
    // `topic` is a NUL-terminated string that outlives the call; `low` and
    // `high` are valid for writes. librdkafka only reads its cache under its
    // own lock, so calling it from the thread that polls is fine.
    let err = unsafe {
        rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{Offset, TopicPartitionList};

    use super::cached_high_watermark;

    /// The cached watermark is the partition's end once a fetch answered,
    /// and asking costs microseconds, not a broker round trip (the cost is
    /// printed with `--nocapture`).
    #[test]
    fn the_cached_watermark_is_the_end_and_cheap_to_ask() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 2, 1).expect("topic");
        let bootstrap = cluster.bootstrap_servers();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("producer");
        for _ in 0..7 {
            let record = BaseRecord::<(), _>::to("t").partition(0).payload("x");
            producer.send(record).expect("enqueue");
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "lag")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("t", 0, Offset::Beginning).unwrap();
        tpl.add_partition_offset("t", 1, Offset::Beginning).unwrap();
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut taken = 0;
        while taken < 7 && Instant::now() < deadline {
            if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                taken += 1;
            }
        }
        assert_eq!(taken, 7);
        assert_eq!(cached_high_watermark(&consumer, "t", 0), Some(7));
        assert_eq!(cached_high_watermark(&consumer, "nope", 0), None);

        let calls = 100_000;
        let started = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(cached_high_watermark(&consumer, "t", 0));
        }
        let per_call = started.elapsed() / calls;
        let started = Instant::now();
        consumer
            .fetch_watermarks("t", 0, Duration::from_secs(10))
            .expect("watermarks");
        let round_trip = started.elapsed();
        eprintln!("cached watermark: {per_call:?} per call; fetch_watermarks: {round_trip:?}");
        assert!(per_call < Duration::from_millis(1), "{per_call:?}");
    }
}
