//! Sources: where rows come from. A `Source` is pulled once per batch interval
//! by the scheduler and hands back the Arrow data that arrived since the last
//! pull — never pushed into an unbounded queue. One file per connector.
//!
//! Data flow: **source** → decode (`format`) → `Batch` → driver → operator →
//! DataFusion → sink.
//!
//! **What a source returns.** `poll_batch` returns [`SourceData`]: the
//! decoded rows, the partition of each record batch, the skipped count and,
//! per source partition, the [`SourceOffset`] range it read (`start` where
//! this poll began, `end` where it stopped). The driver turns it into the
//! [`Batch`] ([`SourceData::into_batch`]) by adding what only it knows: the
//! batch id, the batch time and the `_batch_time` column. A connector thus
//! reports what it read and cannot get the engine's ids, times or system
//! columns wrong, and a new connector needs to know nothing about them.
//! The ranges flow on with the batch to results, progress and
//! `Sink::commit` (see `batch`), and back to the source's own
//! [`Source::commit`] once the batch's sinks have committed it (where a
//! Kafka source commits its group offsets). A source that can tell how much
//! input is still waiting reports it per range too ([`SourceData::lag`]).
//!
//! **Blocking I/O.** `poll_batch` is a plain synchronous call that may block
//! (file reads, decoding, generating events); the driver runs each batch's
//! polls on tokio's blocking pool (`spawn_blocking`, the sources moved in
//! and back), never on an async worker. An async trait was not chosen:
//! `Box<dyn Source>` needs a dyn-compatible trait (async methods would have
//! to box their futures), the connectors' I/O is `std::fs` and CPU-bound
//! decoding that would block an async worker anyway, and a connector stays
//! a few lines of ordinary code. A poll is not cancelled by a stop request:
//! the batch it belongs to finishes (as the driver's stop contract says).
//!
//! **Resuming.** For `--checkpoint` a connector reports its whole position
//! as text (`Source::position`), moves back to one (`Source::seek`) and
//! re-reads a logged batch exactly (`Source::poll_to`); files, nexmark
//! and kafka do ([`RESUMABLE_CONNECTORS`]). Socket and stdin cannot re-read what they
//! received: under `--checkpoint` a write-ahead log wraps them
//! ([`LOGGED_CONNECTORS`], `checkpoint::WalSource`).

mod files;
pub(crate) mod kafka;
pub mod late;
mod lines;
pub mod nexmark;
mod socket;
mod stdin;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;

pub use crate::options::{OptionError, Options};

use crate::batch::{Batch, SourceOffset, stamp_batch_time};
use crate::format::{Format, FormatError, FormatKind};

/// Connectors a `CREATE STREAM ... WITH (connector = ...)` may name.
pub const CONNECTORS: &[&str] = &["files", "socket", "stdin", "nexmark", "kafka"];

/// Everything that can go wrong while opening or reading a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `connector = '...'` names no known connector.
    #[error("unknown connector '{name}'; valid connectors are: {valid}")]
    UnknownConnector {
        /// The connector as written.
        name: String,
        /// The source connectors, comma-separated.
        valid: String,
    },
    /// A `WITH` option that is unknown, missing or malformed.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// Reading from the file system or network failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read (a file, an address).
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A record could not be decoded (and `on_error` is not `skip`).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The declared columns do not fit what the connector produces.
    #[error("{0}")]
    Schema(String),
    /// The source cannot run in this environment.
    #[error("{0}")]
    Runtime(String),
}

/// What the scheduler tells a source when it pulls a batch.
#[derive(Debug, Clone, Copy)]
pub struct PollContext {
    /// Scheduled time of the batch being built, ms since the epoch.
    pub batch_time_ms: i64,
    /// The batch interval in milliseconds.
    pub interval_ms: i64,
}

/// What a source delivered for one batch; the driver makes it a [`Batch`].
#[derive(Debug, Default)]
pub struct SourceData {
    /// Decoded rows, in the source's schema (without `_batch_time`).
    pub data: Vec<RecordBatch>,
    /// The source partition each batch of `data` came from, parallel to it;
    /// empty when everything came from partition 0 (unpartitioned sources).
    /// Watermarks are tracked per partition.
    pub partitions: Vec<u32>,
    /// Per source partition, the range read: `start` where this poll began
    /// (the previous poll's `end`), `end` where it stopped. Every partition
    /// the source knows has one, also when it had nothing new (`start ==
    /// end`), so the last batch's ranges are the source's whole position.
    pub offsets: Vec<SourceOffset>,
    /// Malformed records skipped under `on_error = 'skip'`.
    pub skipped: u64,
    /// Per range of `offsets` (parallel to it), how many records its
    /// partition still holds after this poll (end offset − position), for
    /// sources that know (Kafka); `None` for the others.
    pub lag: Option<Vec<u64>>,
}

impl SourceData {
    /// The partition batch `index` of `data` came from.
    pub fn partition_of(&self, index: usize) -> u32 {
        self.partitions.get(index).copied().unwrap_or(0)
    }

    /// Adds `batches` from `partition`, keeping `partitions` parallel to `data`.
    pub fn extend_partition(&mut self, partition: u32, batches: Vec<RecordBatch>) {
        if partition != 0 && self.partitions.len() < self.data.len() {
            self.partitions.resize(self.data.len(), 0);
        }
        let tagged = partition != 0 || !self.partitions.is_empty();
        if tagged {
            self.partitions
                .extend(std::iter::repeat_n(partition, batches.len()));
        }
        self.data.extend(batches);
    }

    /// The batch `id` at `time_ms`: these rows (empty record batches
    /// dropped) stamped with `_batch_time` in `schema` (the source's schema
    /// followed by `_batch_time`), their partitions and the ranges read.
    pub fn into_batch(self, id: u64, time_ms: i64, schema: SchemaRef) -> Result<Batch, ArrowError> {
        let mut data = Vec::with_capacity(self.data.len());
        let mut partitions = Vec::with_capacity(self.data.len());
        for (i, rows) in self.data.iter().enumerate() {
            if rows.num_rows() == 0 {
                continue;
            }
            data.push(stamp_batch_time(rows, &schema, time_ms)?);
            partitions.push(self.partition_of(i));
        }
        Ok(Batch {
            id,
            time_ms,
            schema,
            data,
            partitions,
            offsets: self.offsets,
            skipped: self.skipped,
            lag: self.lag,
        })
    }
}

/// A connector instance owned by one running query. Its calls come from
/// tokio's blocking pool (one at a time), so they may block.
pub trait Source: Send {
    /// Schema of the rows this source produces (without `_batch_time`).
    fn schema(&self) -> SchemaRef;

    /// Takes everything that has arrived for the batch described by `ctx`,
    /// with the range read per partition (see [`SourceData::offsets`]).
    fn poll_batch(&mut self, ctx: &PollContext) -> Result<SourceData, SourceError>;

    /// True once a bounded source has delivered everything it ever will
    /// (files all read, generator exhausted, stdin/socket closed); used by
    /// `--until-idle`.
    fn is_drained(&self) -> bool;

    /// How many partitions the source has now (Kafka partitions,
    /// subdirectories, generator splits), numbered from 0; 1 when it is not
    /// partitioned. A partition that has sent nothing yet still holds the
    /// watermark back, until its idle timeout.
    fn partition_count(&self) -> u32 {
        1
    }

    /// Whether the source reads `partition` now; a partition it does not
    /// read holds no watermark back. Kafka under `assignment = 'group'`
    /// reads only the group's share, which changes with rebalances; other
    /// sources read all their partitions.
    fn owns_partition(&self, partition: u32) -> bool {
        let _ = partition;
        true
    }

    /// A partition's name for progress messages (a subdirectory's name, a
    /// number).
    fn partition_name(&self, partition: u32) -> String {
        partition.to_string()
    }

    /// Everything up to these ranges' `end`s (one batch's ranges, as
    /// `poll_batch` reported them) has been handed out: the batch's sinks
    /// committed it, or a foreground query's consumer took its results. A
    /// source that keeps its position elsewhere records it here (the Kafka
    /// source commits its group offsets); a batch whose sink commit failed
    /// never gets here. Calls come in batch order but may skip batches (the
    /// later ranges cover the earlier ones). Runs on the blocking pool, like
    /// `poll_batch`. The default keeps nothing.
    fn commit(&mut self, ranges: &[SourceOffset]) -> Result<(), SourceError> {
        let _ = ranges;
        Ok(())
    }

    /// The source's whole position as text, for a checkpoint: what
    /// [`Source::seek`] needs to carry on from here and
    /// [`Source::poll_to`] to re-read a batch exactly. A range's `end`
    /// alone is not always enough (files may arrive out of name order).
    /// Connectors that cannot resume yet refuse.
    fn position(&self) -> Result<String, SourceError> {
        Err(cannot_resume())
    }

    /// Moves the source to `position` (from [`Source::position`]): the
    /// next poll reads what comes after it.
    fn seek(&mut self, _position: &str) -> Result<(), SourceError> {
        Err(cannot_resume())
    }

    /// Re-reads a logged batch exactly: everything from the current
    /// position up to `position` (a later [`Source::position`]), nothing
    /// more, whatever arrived since.
    fn poll_to(&mut self, _ctx: &PollContext, _position: &str) -> Result<SourceData, SourceError> {
        Err(cannot_resume())
    }
}

/// Connectors whose sources implement [`Source::position`], `seek` and
/// `poll_to`, so `--checkpoint` can resume them.
pub const RESUMABLE_CONNECTORS: &[&str] = &["files", "nexmark", "kafka"];

/// Connectors that cannot re-read their input (socket, stdin): under
/// `--checkpoint` each batch they deliver is written to a write-ahead log
/// before it is processed (`checkpoint::WalSource`), which resumes them.
pub const LOGGED_CONNECTORS: &[&str] = &["socket", "stdin"];

fn cannot_resume() -> SourceError {
    SourceError::Runtime(format!(
        "this connector cannot resume from a checkpoint yet (only {} can, and {} through a \
         write-ahead log); run without --checkpoint",
        RESUMABLE_CONNECTORS.join(", "),
        LOGGED_CONNECTORS.join(" and ")
    ))
}

/// A stream as declared by `CREATE STREAM`: enough to open a fresh `Source`
/// for every query that reads it. A definition only: the runtime object of a
/// `<name>_late` stream (its `LateHub`) lives in the session's
/// registry, under the stream's name.
#[derive(Debug, Clone)]
pub struct StreamDef {
    /// Stream name as written.
    pub name: String,
    /// Connector name, lower case.
    pub connector: String,
    /// Declared (or inferred) schema of the rows, without `_batch_time`.
    pub schema: SchemaRef,
    /// All `WITH` options except `connector` and the event-time ones.
    pub options: Options,
    /// Computed columns `(name, SQL expression)`, evaluated over the rows
    /// after decoding (`dateTime AS CASE ... END`).
    pub computed: Vec<(String, String)>,
    /// The `WATERMARK` clause and event-time options, if any.
    pub(crate) watermark: Option<crate::window::WatermarkDef>,
    /// `PRIMARY KEY (...) NOT ENFORCED` columns, as declared: recorded and
    /// shown by DESCRIBE, not used by queries yet.
    pub primary_key: Vec<String>,
}

/// The internal connector of `<name>_late` streams, which `late_policy =
/// 'side'` declares; not one `CREATE STREAM` accepts. Its sources are opened
/// from the stream's hub ([`late::LateSource::open`]), not by [`open`].
pub const LATE_CONNECTOR: &str = "late";

/// Options shared by every connector that decodes bytes.
pub(crate) const FORMAT_KEYS: &[&str] = &["format", "header", "delimiter", "on_error"];

/// Resolves the schema a stream will have, inferring it where the connector
/// can (e.g. from the first file of a directory) when no columns were declared.
pub fn resolve_schema(
    connector: &str,
    declared: Option<SchemaRef>,
    options: &Options,
) -> Result<SchemaRef, SourceError> {
    match connector {
        "files" => files::resolve_schema(declared, options),
        "socket" => line_schema("socket", socket::KEYS, declared, options),
        "stdin" => line_schema("stdin", stdin::KEYS, declared, options),
        "nexmark" => nexmark::resolve_schema(declared, options),
        "kafka" => kafka::resolve_schema(declared, options),
        other => Err(SourceError::UnknownConnector {
            name: other.to_string(),
            valid: CONNECTORS.join(", "),
        }),
    }
}

/// Opens a new source instance for `def`; each query gets its own. A
/// `<name>_late` stream's source needs the session's hub: see
/// [`late::LateSource::open`].
pub fn open(def: &StreamDef) -> Result<Box<dyn Source>, SourceError> {
    let schema = def.schema.clone();
    match def.connector.as_str() {
        "files" => Ok(Box::new(files::FilesSource::open(schema, &def.options)?)),
        "socket" => Ok(Box::new(socket::SocketSource::open(schema, &def.options)?)),
        "stdin" => Ok(Box::new(stdin::StdinSource::open(schema, &def.options)?)),
        "nexmark" => Ok(Box::new(nexmark::NexmarkSource::open(
            schema,
            &def.options,
        )?)),
        "kafka" => kafka::open(schema, &def.options),
        LATE_CONNECTOR => Err(SourceError::Runtime(format!(
            "stream '{}' holds late rows: its source reads the session's hub of that stream",
            def.name
        ))),
        other => Err(SourceError::UnknownConnector {
            name: other.to_string(),
            valid: CONNECTORS.join(", "),
        }),
    }
}

/// Schema of a line-oriented source: `line` for text, declared columns otherwise.
fn line_schema(
    connector: &str,
    keys: &[&str],
    declared: Option<SchemaRef>,
    options: &Options,
) -> Result<SchemaRef, SourceError> {
    let valid: Vec<&str> = keys.iter().chain(FORMAT_KEYS).copied().collect();
    options.check_keys(connector, &valid)?;
    let format = Format::from_options(options, FormatKind::Text)?;
    format.fixed_schema(declared).ok_or_else(|| {
        SourceError::Schema(format!(
            "a {connector} stream in {} format needs declared columns: CREATE STREAM name (col TYPE, ...) WITH (...)",
            format.name()
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::batch::with_batch_time;

    #[test]
    fn into_batch_stamps_rows_keeps_partitions_and_ranges_and_drops_empty_batches() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let rows = |values: Vec<i64>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))])
                .expect("batch")
        };
        let mut data = SourceData {
            offsets: vec![SourceOffset {
                partition: "0".into(),
                start: "3".into(),
                end: "6".into(),
            }],
            skipped: 1,
            ..SourceData::default()
        };
        data.extend_partition(0, vec![rows(vec![1]), rows(vec![])]);
        data.extend_partition(2, vec![rows(vec![2, 3])]);
        let batch = data
            .into_batch(7, 5_000, with_batch_time(&schema))
            .expect("into batch");
        assert_eq!((batch.id, batch.time_ms, batch.skipped), (7, 5_000, 1));
        assert_eq!(batch.partitions, [0, 2]);
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.offsets[0].end, "6");
        let times = batch.data[1]
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("_batch_time");
        assert_eq!(times.values().to_vec(), [5_000, 5_000]);
    }
}
