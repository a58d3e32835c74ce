//! quiver: a streaming SQL engine on Apache Arrow.
//!
//! Records arriving in each batch interval become one immutable [`Batch`]
//! of Arrow `RecordBatch`es; a window is the union of the batches it covers;
//! every continuous SQL query is planned once with DataFusion and run over that
//! union each batch. Data flows one way:
//!
//! ```text
//! source ─► decode ─► Batch ─► window state ─► query (DataFusion) ─► sink
//! ```
//!
//! [`Context`] is the entry point for embedding; the `quiver` binary is a thin
//! front end over it. The public API is what this page lists, all at the
//! crate root: running SQL ([`Context`], [`Config`], [`Output`], [`Error`],
//! [`parse_script`]); queries ([`QueryHandle`] and its [`QueryStopper`],
//! [`QueryResult`], [`Progress`], [`QueryProgress`], [`QuerySummary`], the
//! background queries' [`Registry`] and [`QueryStatus`], [`Clock`],
//! [`RunLimits`]); connectors ([`Source`], [`Sink`] and the types they use);
//! console output for front ends ([`ConsoleSink`], [`OutputFormat`],
//! [`format_time`]); and the Nexmark generator ([`nexmark`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), quiver::Error> {
//! use quiver::{Clock, RunLimits};
//! let ctx = quiver::Context::new(quiver::Config {
//!     clock: Clock::Simulated { start_ms: 0 },
//!     limits: RunLimits { until_idle: true, ..RunLimits::default() },
//!     ..Default::default()
//! });
//! ctx.sql("CREATE STREAM bids WITH (connector = 'nexmark', events = 5000, rate = 1000)").await?;
//! let mut rows = 0;
//! if let Some(quiver::Output::Query(mut query)) = ctx.sql("SELECT count(*) FROM bids").await?.pop() {
//!     while let Some(result) = query.next().await {
//!         rows += result.num_rows(); // result.rows: Vec<RecordBatch>, one result per batch
//!     }
//!     query.finish().await?;
//! }
//! assert_eq!(rows, 5); // 5000 events at 1000/s: five one-second batches
//! # Ok(())
//! # }
//! ```
//!
//! The modules behind these items are private, so an embedder depends on
//! nothing else (and the benchmark code of `quiver bench` lives in the
//! binary):
//!
//! ```compile_fail
//! use quiver::exec::Clock; // a private module: `quiver::Clock` is the path
//! ```
//!
//! ```compile_fail
//! let _ = quiver::bench::run; // not in the library
//! ```

// Error enums carry DataFusion and source errors by value; they are built only
// on failure paths, so their size does not matter.
#![allow(clippy::result_large_err)]
#![warn(missing_docs)]

// Every module is private: the public API is the re-exports below, so the
// inside can be reshaped without breaking embedders.
mod batch;
mod catalog;
mod checkpoint;
mod context;
mod error;
mod exec;
mod format;
mod options;
mod report;
mod sink;
mod source;
mod sql;
mod window;

// Running SQL.
pub use context::{Config, Context, Output};
pub use error::Error;
pub use sql::depth::MAX_DEPTH;
pub use sql::{ParsedStatement, parse_script};

// Queries: foreground handles, background queries, their results and progress.
pub use exec::{
    Clock, DEFAULT_SIMULATED_START_MS, QueryHandle, QueryState, QueryStatus, QueryStopper, Registry,
};
pub use report::metrics::{DURATION_BUCKETS as METRIC_DURATION_BUCKETS, METRICS, describe_metrics};
pub use report::{
    BatchEnd, BatchRecorder, DriverPhases, LatencyHistogram, PartitionProgress, PhaseDurations,
    Progress, ProgressHistory, ProgressRecord, QueryEvent, QueryProgress, QueryResult,
    QuerySummary, RecordTotals, RunLimits, SinkProgress, SourceProgress, StreamLag, format_lag,
    format_time, total_lag,
};

// Connectors: the traits a source and a sink implement and the types they use.
pub use batch::{Batch, InputMark, SourceOffset, StreamOffsets};
pub use checkpoint::{
    CRASH_VAR as CHECKPOINT_CRASH_VAR, CheckpointError, CheckpointInfo, CheckpointSettings,
    CommitEntry, OffsetsEntry, QueryCheckpoint, QueryCheckpointInfo, StreamEntry,
    inspect as inspect_checkpoint,
};
pub use options::{OptionError, Options};
pub use sink::{ConsoleSink, OutputFormat, Sink, SinkDef, SinkError, open as open_sink};
pub use source::{PollContext, Source, SourceData, SourceError, StreamDef};

// Catalog entries, as `Context::streams` and friends list them.
pub use sql::ViewDef;

// Errors of each layer, which [`Error`] wraps.
pub use exec::ExecError;
pub use format::FormatError;
pub use sql::SqlError;
pub use window::WindowError;

/// The Nexmark event generator behind the `nexmark` connector, for
/// benchmarks and tests that need the same events a stream would produce
/// (generated up front, e.g. to give DataFusion a baseline over them).
pub mod nexmark {
    pub use crate::source::nexmark::{NexmarkGenerator, NexmarkKind, Proportions, schema};
}

/// The Kafka source's message decoding (one partition's messages → one
/// Arrow batch in the stream's schema), for `quiver bench kafka`, which
/// measures it on in-memory messages without a broker: the same code the
/// `kafka` connector runs on what it polled. Not a stable API.
#[doc(hidden)]
pub mod kafka_decode {
    use datafusion::arrow::array::{BinaryBuilder, StringBuilder};
    use datafusion::arrow::datatypes::SchemaRef;

    use crate::source::kafka::chunk::Chunk;
    use crate::source::kafka::decode::{decode_chunk, value_schema};

    pub use crate::source::kafka::decode::{DecodedChunk, KAFKA_COLUMNS, system_fields};
    pub use crate::source::kafka::options::{KafkaOptions, ValueFormat};

    /// Decodes the messages of `topic`'s `partition` at `offsets` (values
    /// back to back in `values`, message `i` ending at `ends[i]`; no keys,
    /// no timestamps, no headers) into `schema` (the stream's columns, then
    /// [`system_fields`]) as the kafka source does.
    pub fn decode_partition(
        topic: &str,
        partition: i32,
        offsets: Vec<i64>,
        values: Vec<u8>,
        ends: Vec<usize>,
        schema: &SchemaRef,
        format: &ValueFormat,
    ) -> Result<DecodedChunk, crate::FormatError> {
        let mut keys = BinaryBuilder::new();
        offsets.iter().for_each(|_| keys.append_null());
        let mut chunk = Chunk {
            partition: partition as u32,
            topic: topic.to_string(),
            kafka_partition: partition,
            has_value: vec![true; ends.len()],
            timestamps: vec![None; ends.len()],
            values,
            ends,
            keys,
            header_keys: StringBuilder::new(),
            header_values: BinaryBuilder::new(),
            header_ends: vec![0; offsets.len()],
            offsets,
        };
        decode_chunk(&mut chunk, schema, &value_schema(schema), format)
    }
}
