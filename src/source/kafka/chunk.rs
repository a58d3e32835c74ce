//! What a poll of the kafka consumer hands on: the messages of each source
//! partition ([`Chunk`]) and the offset range each covers ([`OffsetRange`]).

use datafusion::arrow::array::{ArrayRef, BinaryBuilder, StringBuilder, UInt32Array};

/// A chunk's values as decoded by its format: the value columns, the
/// messages they came from (`None`: all of them), and the messages skipped
/// (index in the chunk, why).
pub(super) type Columns = (Vec<ArrayRef>, Option<UInt32Array>, Vec<(usize, String)>);

/// The offsets one batch consumed from one source partition: `first` up to,
/// not including, `next` (the offset to resume from; what gets committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    /// Source partition number.
    pub partition: u32,
    /// First offset taken in the batch.
    pub first: i64,
    /// Last offset taken + 1: the next one to read.
    pub next: i64,
}

/// Messages of one source partition taken in one poll, column by column.
#[derive(Debug)]
pub struct Chunk {
    /// Source partition number.
    pub partition: u32,
    /// Topic of the partition.
    pub topic: String,
    /// Kafka partition number.
    pub kafka_partition: i32,
    /// The values, back to back; message `i` is `values[ends[i-1]..ends[i]]`.
    pub values: Vec<u8>,
    /// End of each message's value in `values`.
    pub ends: Vec<usize>,
    /// False for a message without a value (a tombstone).
    pub has_value: Vec<bool>,
    /// Message keys (null when absent).
    pub keys: BinaryBuilder,
    /// Message offsets.
    pub offsets: Vec<i64>,
    /// Message timestamps in ms since the epoch, when the message has one.
    pub timestamps: Vec<Option<i64>>,
    /// The headers of all messages back to back: names (a header name is a
    /// string in Kafka) and values; message `i` has those from
    /// `header_ends[i-1]` to `header_ends[i]`.
    pub header_keys: StringBuilder,
    /// Header values (null for a header without one), parallel to `header_keys`.
    pub header_values: BinaryBuilder,
    /// End of each message's headers in `header_keys`.
    pub header_ends: Vec<i32>,
}

impl Chunk {
    pub(super) fn new(partition: u32, topic: &str, kafka_partition: i32) -> Self {
        Self {
            partition,
            topic: topic.to_string(),
            kafka_partition,
            values: Vec::new(),
            ends: Vec::new(),
            has_value: Vec::new(),
            keys: BinaryBuilder::new(),
            offsets: Vec::new(),
            timestamps: Vec::new(),
            header_keys: StringBuilder::new(),
            header_values: BinaryBuilder::new(),
            header_ends: Vec::new(),
        }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// The value of message `i` (empty for a tombstone).
    pub fn value(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.values[start..self.ends[i]]
    }

    /// Where message `i` came from, for error messages.
    pub fn origin(&self, i: usize) -> String {
        format!(
            "kafka topic '{}' partition {} offset {}",
            self.topic, self.kafka_partition, self.offsets[i]
        )
    }
}

/// What one poll took: per source partition with messages, a chunk and its range.
#[derive(Debug, Default)]
pub struct Polled {
    /// Messages by source partition, in partition order.
    pub chunks: Vec<Chunk>,
    /// The offset range each chunk covers, parallel to `chunks`.
    pub ranges: Vec<OffsetRange>,
}
