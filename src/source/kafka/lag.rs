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
