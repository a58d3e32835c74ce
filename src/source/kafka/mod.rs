//! The `kafka` connector: every partition of one or more topics, each Kafka
//! partition one source partition with its own watermark. Options in
//! [`options`], librdkafka in [`consumer`], messages → rows in [`decode`];
//! this file is the thin glue to the [`Source`] trait.
//!
//! Offsets: a batch takes what librdkafka has fetched since the last one (at
//! most `max_records_per_batch`, and `max_rate` per second of the batch
//! interval), and records per partition the range it
//! consumed. Once the batch's sinks have committed it (`Source::commit`,
//! called by the driver; never for a batch whose sink failed) its ranges are
//! committed to the group with [`KafkaConsumer::commit_batch`]: the committed
//! offset is the next one to read. Each poll also reports every partition's
//! lag (end offset − position) from librdkafka's cached watermarks ([`lag`]).
//!
//! The partitions are those the topics (`topic`, or those matching
//! `topic-pattern`) have at open, and those that appear later, found every
//! `scan.topic-partition-discovery.interval` and read from their earliest
//! offset (`consumer::discovery`). By default the query reads all of
//! them; under `assignment = 'group'` the group's coordinator splits them
//! between the queries of one `group.id` ([`group`]).
//!
//! Malformed messages are failed on, skipped, or written to a dead-letter
//! topic or file ([`dead_letter`]), made durable before the batch's offsets
//! are committed.
//!
//! Checkpoints (`--checkpoint`): the position is every partition's next
//! offset; a restart assigns each partition there (the checkpoint, not the
//! group's offsets, is the source of truth; a partition it does not know
//! starts at the earliest offset) and re-reads a logged batch's exact
//! ranges ([`KafkaConsumer::poll_until`]).
//!
//! TLS and SASL (`properties.security.protocol` and friends) are
//! librdkafka's, built with OpenSSL; [`security`] adds the system-CA
//! default, the file checks and the errors that say what to fix, for the
//! kafka sink too.

pub mod avro;
pub mod chunk;
mod connect;
pub mod consumer;
pub mod dead_letter;
pub mod decode;
pub mod group;
mod lag;
pub mod options;
pub mod outage;
pub mod security;

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{PollContext, Source, SourceData, SourceError};
use crate::batch::SourceOffset;
use crate::options::Options;
pub use connect::open;
use consumer::{KafkaConsumer, OffsetRange, Polled};
use dead_letter::DeadLetters;
use decode::{KAFKA_COLUMNS, decode_chunk, system_fields, value_schema};
use options::{Assignment, CONNECTOR, KafkaOptions, ValueFormat};

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
    consumer::check_config(&opts)?;
    let values = match (&opts.format, declared) {
        (ValueFormat::Avro(avro), Some(schema)) => {
            avro.check_columns(&schema)?;
            schema
        }
        (_, Some(schema)) => schema,
        (ValueFormat::Avro(avro), None) => avro.columns(),
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
    /// Per source partition, the offset last committed to the group.
    committed: Vec<Option<i64>>,
    /// `on_error = 'dead_letter'`: where malformed messages go.
    dead_letters: Option<DeadLetters>,
}

impl KafkaSource {
    /// Connects and assigns every partition of the topics (see
    /// [`KafkaConsumer::open`]); fails within option `timeout` when the
    /// broker does not answer or a topic does not exist.
    pub fn open(schema: SchemaRef, options: &Options) -> Result<Self, SourceError> {
        let opts = KafkaOptions::parse(options)?;
        let consumer = KafkaConsumer::open(&opts)?;
        let dead_letters = DeadLetters::open(&opts)?;
        Ok(Self {
            dead_letters,
            values: value_schema(&schema),
            schema,
            opts,
            committed: vec![None; consumer.partition_count() as usize],
            consumer,
        })
    }

    /// The source partition named `name` (`topic/partition`); `hint` is
    /// where it usually is (ranges come in partition order).
    fn partition_named(&self, name: &str, hint: usize) -> Option<u32> {
        let count = self.consumer.partition_count();
        let hint = hint as u32;
        if hint < count && self.partition_name(hint) == name {
            return Some(hint);
        }
        (0..count).find(|p| self.partition_name(*p) == name)
    }
    /// Decodes `polled` into rows, with a range for each of `partitions`
    /// (an empty one, start == end, where the poll took nothing: a
    /// checkpoint needs them all) and each one's lag.
    fn source_data(
        &mut self,
        mut polled: Polled,
        partitions: &[u32],
    ) -> Result<SourceData, SourceError> {
        let mut out = SourceData::default();
        for chunk in &mut polled.chunks {
            let decoded = decode_chunk(chunk, &self.schema, &self.values, &self.opts.format)?;
            out.skipped += decoded.skipped;
            if let Some(dead_letters) = &mut self.dead_letters {
                dead_letters.write(&chunk.topic, chunk.kafka_partition, &decoded.rejected)?;
            }
            out.extend_partition(chunk.partition, decoded.batch.into_iter().collect());
        }
        let mut lag = Vec::with_capacity(partitions.len());
        for &p in partitions {
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
            lag.push(self.consumer.end_offset(p).saturating_sub(end).max(0) as u64);
        }
        out.lag = Some(lag);
        Ok(out)
    }

    /// A checkpoint's offsets and a group's assignment cannot both decide
    /// what a query reads.
    fn refuse_group_checkpoint(&self) -> Result<(), SourceError> {
        if self.opts.assignment == Assignment::Group {
            return Err(SourceError::Runtime(format!(
                "{CONNECTOR} source: assignment = 'group' cannot resume from a checkpoint (the \
                 group's coordinator, not the checkpoint, decides which partitions a query \
                 reads); use assignment = 'all' with --checkpoint, or run without it"
            )));
        }
        Ok(())
    }

    /// Per source partition, the next offset `position` (as
    /// [`Source::position`] wrote it) names for it; `None` for partitions
    /// it does not name (new since). Partitions it names that the topics
    /// no longer have are ignored.
    fn parse_position(&self, position: &str) -> Result<Vec<Option<i64>>, SourceError> {
        let mut next = vec![None; self.consumer.partition_count() as usize];
        for item in position.split(',').filter(|i| !i.is_empty()) {
            let parsed = item.rsplit_once('=').and_then(|(name, offset)| {
                let (topic, partition) = name.rsplit_once('/')?;
                Some((
                    topic,
                    partition.parse::<i32>().ok()?,
                    offset.parse::<i64>().ok()?,
                ))
            });
            let Some((topic, partition, offset)) = parsed else {
                return Err(SourceError::Runtime(format!(
                    "{CONNECTOR} source: the checkpoint's position '{position}' is not \
                     topic/partition=offset,...; start over with --checkpoint-reset"
                )));
            };
            if let Some(p) = self.consumer.partition_of(topic, partition) {
                next[p as usize] = Some(offset);
            }
        }
        Ok(next)
    }
}

impl Source for KafkaSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll_batch(&mut self, ctx: &PollContext) -> Result<SourceData, SourceError> {
        if let Some(dead_letters) = &self.dead_letters {
            dead_letters.check()?;
        }
        let wait = if self.consumer.reached_start_ends() {
            Duration::ZERO
        } else {
            CATCH_UP_WAIT
        };
        let polled = (self.consumer).poll(self.opts.batch_bound(ctx.interval_ms), wait)?;
        // Partitions found while running (see `consumer::discovery`).
        (self.committed).resize(self.consumer.partition_count() as usize, None);
        let assigned = self.consumer.assigned_partitions();
        self.source_data(polled, &assigned)
    }

    /// Drained once every partition reached the end it had at open (an
    /// empty partition from the start), and no commit is held back by a
    /// broker outage, and every dead letter is durable. Under
    /// `assignment = 'group'`: once this query's
    /// partitions did, and the group as a whole committed every partition
    /// up to those ends (a query whose share is done waits for the others,
    /// and takes over the partitions of one that stops).
    fn is_drained(&self) -> bool {
        self.dead_letters
            .as_ref()
            .is_none_or(DeadLetters::is_flushed)
            && self.consumer.reached_start_ends()
            && self.consumer.all_committed()
            && self.consumer.group_reached_start_ends()
    }

    /// Commits each partition's `end` (the next offset to read) to the
    /// group, where it moved since the last commit (also a partition never
    /// read, so the group records where it stands). A failed commit is
    /// retried with the next batch's. Dead letters written so far are made
    /// durable first; if that fails nothing is committed.
    fn commit(&mut self, ranges: &[SourceOffset]) -> Result<(), SourceError> {
        if let Some(dead_letters) = &mut self.dead_letters {
            dead_letters.flush()?;
        }
        (self.committed).resize(self.consumer.partition_count() as usize, None);
        let mut moved = Vec::new();
        for (i, range) in ranges.iter().enumerate() {
            let Some(p) = self.partition_named(&range.partition, i) else {
                continue;
            };
            let offset = |text: &str| {
                text.parse::<i64>().map_err(|_| {
                    SourceError::Runtime(format!(
                        "{CONNECTOR} source: offset '{text}' of partition {} is not a number",
                        range.partition
                    ))
                })
            };
            let next = self.consumer.commit_offset(p, offset(&range.end)?);
            if self.committed[p as usize] != Some(next) {
                moved.push(OffsetRange {
                    partition: p,
                    first: offset(&range.start)?,
                    next,
                });
            }
        }
        self.consumer.commit_batch(&moved)?;
        for range in moved {
            self.committed[range.partition as usize] = Some(range.next);
        }
        Ok(())
    }

    /// Every partition's next offset to read: `topic/partition=offset`,
    /// comma-separated.
    fn position(&self) -> Result<String, SourceError> {
        self.refuse_group_checkpoint()?;
        let items: Vec<String> = (0..self.consumer.partition_count())
            .map(|p| format!("{}={}", self.partition_name(p), self.consumer.position(p)))
            .collect();
        Ok(items.join(","))
    }

    /// Assigns every partition at the checkpoint's offset; a partition
    /// new since the checkpoint starts at its earliest offset. The
    /// checkpoint, not the group's committed offsets, is the source of
    /// truth. The group gets the checkpoint's offsets too: the process may
    /// have died between a batch's commit log and its offset commit (which
    /// runs before the next batch), and a restart with nothing left to
    /// read would otherwise leave the group's offsets behind for good.
    fn seek(&mut self, position: &str) -> Result<(), SourceError> {
        self.refuse_group_checkpoint()?;
        let next = self.parse_position(position)?;
        self.consumer.seek_to(&next)?;
        let at: Vec<OffsetRange> = (next.iter().enumerate())
            .filter_map(|(p, next)| {
                next.map(|next| OffsetRange {
                    partition: p as u32,
                    first: next,
                    next,
                })
            })
            .collect();
        self.consumer.commit_batch(&at)?;
        for range in at {
            self.committed[range.partition as usize] = Some(range.next);
        }
        Ok(())
    }

    /// Re-reads exactly the partitions and offsets up to `position`, with
    /// a range for each partition it names (as the logged batch had).
    fn poll_to(&mut self, _ctx: &PollContext, position: &str) -> Result<SourceData, SourceError> {
        let targets = self.parse_position(position)?;
        let polled = self.consumer.poll_until(&targets)?;
        let named: Vec<u32> = (targets.iter().enumerate())
            .filter(|(_, t)| t.is_some())
            .map(|(p, _)| p as u32)
            .collect();
        self.source_data(polled, &named)
    }

    fn partition_count(&self) -> u32 {
        self.consumer.partition_count().max(1)
    }

    fn owns_partition(&self, partition: u32) -> bool {
        self.consumer.is_assigned(partition)
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
