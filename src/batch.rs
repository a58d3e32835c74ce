//! The unit of work in quiver: a [`Batch`] is everything one source delivered
//! during one batch interval — Spark Streaming's RDD. It is immutable once built;
//! windows are unions of batches, and every continuous query runs over them.
//!
//! Where offsets live and flow: a source reports, per source partition, the
//! [`SourceOffset`] range it read for the batch (`start` where reading
//! began, `end` where it stopped: file names, generator event numbers, line
//! counts); the driver wraps what the source delivered into a `Batch` (id,
//! time, rows stamped with `_batch_time`, partitions, ranges); the query's
//! operator gets the batches; every result of the batch carries the ranges
//! per stream ([`StreamOffsets`]), and so does the batch's progress record;
//! the sink task hands them to `Sink::commit` once the batch's results are
//! written — the point where a checkpoint log records "batch N, these
//! ranges, is written" and a Kafka source commits its offsets. A file sink
//! folds them into an [`InputMark`] to tell a replay from a new run.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;

/// Name of the system column every stream carries: the scheduled time of the
/// batch a row arrived in (processing time). `PROCTIME()` is an alias.
pub const BATCH_TIME_COLUMN: &str = "_batch_time";

/// Columns quiver adds to streams (`_batch_time`, and the Kafka metadata
/// columns of kafka streams): selectable by name, but `SELECT *` leaves them
/// out, so a stream's `*` is its declared columns (see `sql::wildcard`).
pub const SYSTEM_COLUMNS: &[&str] = &[
    BATCH_TIME_COLUMN,
    "_key",
    "_topic",
    "_partition",
    "_offset",
    "_timestamp",
    "_headers",
];

/// The Arrow type of time columns produced by quiver (`_batch_time`,
/// `window_start`, `window_end`): milliseconds since the epoch, read as UTC.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// What one batch read from one source partition: the position where
/// reading began and where it stopped (a file name, a Kafka offset, a
/// generator's event number, a line count; `start == end` when the
/// partition had nothing new). Batch `k`'s `start` is batch `k - 1`'s `end`,
/// so the ranges of a partition tile its input: what checkpoints log to
/// replay a batch exactly, and what a Kafka source commits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceOffset {
    /// Partition of the source (a directory, a topic partition, `0` for single streams).
    pub partition: String,
    /// Position before this batch read anything (the previous batch's `end`;
    /// the connector's beginning, such as `""` or `0`, for the first batch).
    pub start: String,
    /// Position reached once this batch is consumed.
    pub end: String,
}

/// The ranges one batch read from one stream of a query, in its source's
/// partition order: what results, progress records and sink commits carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOffsets {
    /// The stream's name, as the query reads it.
    pub stream: String,
    /// One range per source partition.
    pub ranges: Vec<SourceOffset>,
}

/// What a query's results up to a batch were computed from: a digest of the
/// batch times and source positions of every batch so far, and the
/// positions reached in the last one. A file sink records it per batch to
/// tell a true replay (same batches, same input) from a new run reusing
/// batch ids. Derived from the batches' [`StreamOffsets`] (their `end`s).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputMark {
    /// FNV-1a digest chained over each batch's time and source positions.
    pub digest: u64,
    /// The positions the last batch reached, as `stream partition=position`
    /// joined by `, ` (empty when it read nothing).
    pub offsets: String,
}

impl InputMark {
    /// The mark after the batch at `time_ms` that read `offsets` (in the
    /// query's stream order): chained over each range's end.
    pub fn next(&self, time_ms: i64, offsets: &[StreamOffsets]) -> Self {
        let mut digest = self.digest ^ FNV_OFFSET;
        let mut feed = |bytes: &[u8]| {
            for b in bytes.iter().chain([&0xff]) {
                digest = (digest ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
            }
        };
        feed(&time_ms.to_le_bytes());
        let mut text = Vec::new();
        for stream in offsets {
            for range in &stream.ranges {
                feed(stream.stream.as_bytes());
                feed(range.partition.as_bytes());
                feed(range.end.as_bytes());
                text.push(format!(
                    "{} {}={}",
                    stream.stream, range.partition, range.end
                ));
            }
        }
        Self {
            digest,
            offsets: text.join(", "),
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One source's data for one batch interval, with the `_batch_time` column
/// added: built by the driver from what the source delivered
/// (`source::SourceData::into_batch`) and handed to the query's operator.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Sequential id of the batch within its query, starting at 0.
    pub id: u64,
    /// Scheduled time of the batch, in milliseconds since the epoch.
    pub time_ms: i64,
    /// Schema of `data` (the stream's columns followed by `_batch_time`).
    pub schema: SchemaRef,
    /// The rows, without empty record batches; may be empty (an empty batch
    /// is still a batch).
    pub data: Vec<RecordBatch>,
    /// The source partition each record batch of `data` came from, parallel to it.
    pub partitions: Vec<u32>,
    /// Per source partition, the range this batch read.
    pub offsets: Vec<SourceOffset>,
    /// Malformed records the source skipped (`on_error = 'skip'`).
    pub skipped: u64,
    /// Per range of `offsets`, the records its partition still holds after
    /// the batch, when the source knows (Kafka lag).
    pub lag: Option<Vec<u64>>,
}

impl Batch {
    /// A batch with no rows and no ranges (the batches run at the end of
    /// input to close windows read nothing).
    pub fn empty(id: u64, time_ms: i64, schema: SchemaRef) -> Self {
        Self {
            id,
            time_ms,
            schema,
            data: Vec::new(),
            partitions: Vec::new(),
            offsets: Vec::new(),
            skipped: 0,
            lag: None,
        }
    }

    /// Total number of rows in the batch.
    pub fn num_rows(&self) -> usize {
        self.data.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Adds `_batch_time` to a stream schema.
pub fn with_batch_time(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(BATCH_TIME_COLUMN, time_type(), false));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Appends a constant `_batch_time` column to a decoded record batch.
pub fn stamp_batch_time(
    batch: &RecordBatch,
    schema: &SchemaRef,
    time_ms: i64,
) -> Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(TimestampMillisecondArray::from(vec![
        time_ms;
        batch
            .num_rows(
            )
    ])));
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    #[test]
    fn stamps_every_row_with_the_batch_time() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let rb = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
            .unwrap();
        let out_schema = with_batch_time(&schema);
        let out = stamp_batch_time(&rb, &out_schema, 5_000).unwrap();
        assert_eq!(out.num_columns(), 2);
        let t = out
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        assert_eq!(t.values().to_vec(), vec![5_000, 5_000]);
    }

    #[test]
    fn input_marks_differ_by_time_offsets_and_history() {
        let read = |end: &str| {
            vec![StreamOffsets {
                stream: "s".into(),
                ranges: vec![SourceOffset {
                    partition: "in".into(),
                    start: String::new(),
                    end: end.into(),
                }],
            }]
        };
        let (a, b) = (read("a.csv"), read("b.csv"));
        let start = InputMark::default();
        let first = start.next(1000, &a);
        assert_eq!(first, start.next(1000, &a));
        assert_eq!(first.offsets, "s in=a.csv");
        assert_ne!(first.digest, start.next(2000, &a).digest);
        assert_ne!(first.digest, start.next(1000, &b).digest);
        assert_ne!(first.digest, start.next(1000, &[]).digest);
        // The same last batch after another history is another mark.
        let other = start.next(0, &[]).next(1000, &a);
        assert_ne!(first.next(2000, &[]).digest, other.next(2000, &[]).digest);
    }
}
