//! Sources: where rows come from. A `Source` is pulled once per batch interval
//! by the scheduler and hands back the Arrow data that arrived since the last
//! pull — never pushed into an unbounded queue. One file per connector.
//!
//! Data flow: **source** → decode (`format`) → `Batch` → window state → query → sink.

mod files;
pub mod kafka;
mod late;
mod lines;
pub mod nexmark;
mod socket;
mod stdin;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

pub use crate::options::{OptionError, Options};

use crate::batch::SourceOffset;
use crate::format::{Format, FormatError, FormatKind};

/// Connectors a `CREATE STREAM ... WITH (connector = ...)` may name.
pub const CONNECTORS: &[&str] = &["files", "socket", "stdin", "nexmark", "kafka"];

/// Everything that can go wrong while opening or reading a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `connector = '...'` names no known connector.
    #[error("unknown connector '{name}'; valid connectors are: {valid}")]
    UnknownConnector { name: String, valid: String },
    /// A `WITH` option that is unknown, missing or malformed.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// Reading from the file system or network failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
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

/// What a source delivered for one batch.
#[derive(Debug, Default)]
pub struct SourceData {
    /// Decoded rows, in the source's schema (without `_batch_time`).
    pub data: Vec<RecordBatch>,
    /// The source partition each batch of `data` came from, parallel to it;
    /// empty when everything came from partition 0 (unpartitioned sources).
    /// Watermarks are tracked per partition.
    pub partitions: Vec<u32>,
    /// Positions reached, one per source partition.
    pub offsets: Vec<SourceOffset>,
    /// Malformed records skipped under `on_error = 'skip'`.
    pub skipped: u64,
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
}

/// A connector instance owned by one running query.
pub trait Source: Send {
    /// Schema of the rows this source produces (without `_batch_time`).
    fn schema(&self) -> SchemaRef;

    /// Takes everything that has arrived for the batch described by `ctx`.
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

    /// A partition's name for progress messages (a subdirectory's name, a
    /// number).
    fn partition_name(&self, partition: u32) -> String {
        partition.to_string()
    }
}

/// A stream as declared by `CREATE STREAM`: enough to open a fresh `Source`
/// for every query that reads it.
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
    pub watermark: Option<crate::window::WatermarkDef>,
    /// `PRIMARY KEY (...) NOT ENFORCED` columns, as declared: recorded and
    /// shown by DESCRIBE, not used by queries yet.
    pub primary_key: Vec<String>,
    /// The side output of late rows: on a stream with `late_policy = 'side'`
    /// the hub its queries publish late rows to; on its `<name>_late` stream
    /// (connector [`LATE_CONNECTOR`]) the hub that stream's sources read.
    pub late: Option<std::sync::Arc<crate::exec::LateHub>>,
}

/// The internal connector of `<name>_late` streams, which `late_policy =
/// 'side'` declares; not one `CREATE STREAM` accepts.
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

/// Opens a new source instance for `def`; each query gets its own.
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
        "kafka" => Ok(Box::new(kafka::KafkaSource::open(schema, &def.options)?)),
        LATE_CONNECTOR => Ok(Box::new(late::LateSource::open(def)?)),
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
