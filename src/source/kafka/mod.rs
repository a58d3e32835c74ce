//! The `kafka` connector: every partition of one or more topics, each Kafka
//! partition one source partition with its own watermark. Options in
//! [`options`], librdkafka in [`consumer`], messages → rows in [`decode`];
//! this file is the thin glue to the [`Source`] trait.
//!
//! Offsets: a batch takes what librdkafka has fetched since the last one (at
//! most `max_records_per_batch`), and records per partition the range it
//! consumed. Once the batch has been handed over (today: when the next batch
//! is polled, or when `--until-idle` finds the source drained) its ranges are
//! committed to the group with [`KafkaConsumer::commit_batch`]: the committed
//! offset is the next one to read.

pub mod consumer;
pub mod decode;
pub mod options;
pub mod outage;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{PollContext, Source, SourceData, SourceError};
use crate::batch::SourceOffset;
use crate::options::Options;
use consumer::{KafkaConsumer, OffsetRange};
use decode::{KAFKA_COLUMNS, decode_chunk, system_fields, value_schema};
use options::{CONNECTOR, KafkaOptions, ValueFormat};

/// Longest a batch waits for the first message while the partitions are
/// behind the end they had at open (librdkafka is still fetching); once
/// caught up a batch never waits.
const CATCH_UP_WAIT: Duration = Duration::from_millis(50);

/// The stream's columns: declared ones (or `line` for text, `value` for
/// raw) followed by the system columns.
pub(super) fn resolve_schema(
    declared: Option<SchemaRef>,
    options: &Options,
) -> Result<SchemaRef, SourceError> {
    let opts = KafkaOptions::parse(options)?;
    let values = match (&opts.format, declared) {
        (_, Some(schema)) => schema,
        (ValueFormat::Raw, None) => Arc::new(Schema::new(vec![Field::new(
            "value",
            DataType::Binary,
            true,
        )])),
        (ValueFormat::Decoded(format), None) => format.fixed_schema(None).ok_or_else(|| {
            SourceError::Schema(format!(
                "a kafka stream in {} format needs declared columns: CREATE STREAM name (col TYPE, ...) WITH (...)",
                format.name()
            ))
        })?,
    };
    if let Some(clash) = values
        .fields()
        .iter()
        .find(|f| KAFKA_COLUMNS.contains(&f.name().as_str()))
    {
        return Err(SourceError::Schema(format!(
            "column {} is reserved: quiver adds {} to every kafka stream",
            clash.name(),
            KAFKA_COLUMNS.join(", ")
        )));
    }
    let fields: Vec<Field> = values
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .chain(system_fields())
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// A running kafka source.
pub struct KafkaSource {
    schema: SchemaRef,
    values: SchemaRef,
    opts: KafkaOptions,
    consumer: KafkaConsumer,
    /// Ranges of the last batch handed out and not committed yet.
    pending: RefCell<Vec<OffsetRange>>,
}

impl KafkaSource {
    /// Connects and assigns every partition of the topics (see
    /// [`KafkaConsumer::open`]); fails within option `timeout` when the
    /// broker does not answer or a topic does not exist.
    pub fn open(schema: SchemaRef, options: &Options) -> Result<Self, SourceError> {
        let opts = KafkaOptions::parse(options)?;
        let consumer = KafkaConsumer::open(&opts)?;
        Ok(Self {
            values: value_schema(&schema),
            schema,
            opts,
            consumer,
            pending: RefCell::new(Vec::new()),
        })
    }

    /// Commits the ranges of the batch handed out last, if any.
    fn commit_pending(&self) -> Result<(), SourceError> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        self.consumer.commit_batch(&pending)
    }
}

impl Source for KafkaSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll_batch(&mut self, _ctx: &PollContext) -> Result<SourceData, SourceError> {
        // The previous batch has been processed when the next is polled.
        self.commit_pending()?;
        let wait = if self.consumer.reached_start_ends() {
            Duration::ZERO
        } else {
            CATCH_UP_WAIT
        };
        let mut polled = self.consumer.poll(self.opts.max_records, wait)?;
        let mut out = SourceData::default();
        for chunk in &mut polled.chunks {
            let decoded = decode_chunk(chunk, &self.schema, &self.values, &self.opts.format)?;
            out.skipped += decoded.skipped;
            out.extend_partition(chunk.partition, decoded.batch.into_iter().collect());
        }
        // Every partition gets a range, an empty one (start == end) when
        // the batch took nothing from it: a checkpoint needs them all.
        for p in 0..self.consumer.partition_count() {
            let (topic, partition) = self.consumer.kafka_partition(p);
            let (start, end) = match polled.ranges.iter().find(|r| r.partition == p) {
                Some(range) => (range.first, range.next),
                None => (self.consumer.position(p), self.consumer.position(p)),
            };
            out.offsets.push(SourceOffset {
                partition: format!("{topic}/{partition}"),
                start: start.to_string(),
                end: end.to_string(),
            });
        }
        *self.pending.borrow_mut() = polled.ranges;
        Ok(out)
    }

    /// Drained once every partition reached the end it had at open; the
    /// last batch (already processed when this is asked) is committed then.
    fn is_drained(&self) -> bool {
        if !self.consumer.reached_start_ends() {
            return false;
        }
        if let Err(e) = self.commit_pending() {
            tracing::warn!("{CONNECTOR} source: {e}");
        }
        // Not drained while a broker outage holds commits back.
        self.consumer.all_committed()
    }

    fn partition_count(&self) -> u32 {
        self.consumer.partition_count().max(1)
    }

    fn partition_name(&self, partition: u32) -> String {
        if partition < self.consumer.partition_count() {
            let (topic, p) = self.consumer.kafka_partition(partition);
            format!("{topic}/{p}")
        } else {
            partition.to_string()
        }
    }
}
