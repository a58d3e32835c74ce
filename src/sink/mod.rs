//! Sinks: where a continuous query's results go. The console prints results
//! of foreground queries; table sinks (`blackhole`, `print`, and file sinks)
//! receive the results of background queries started by `INSERT INTO` or
//! `CREATE SINK`. File sinks (`parquet`, `csv`, `ndjson`, `filesystem`) live
//! in [`files`].
//!
//! Data flow: source → decode → `Batch` → driver → operator → DataFusion →
//! **sink**.
//!
//! **Offsets and the commit point.** A background query's sink task calls,
//! per batch, [`Sink::write`] for each result, then [`Sink::commit`] with
//! the batch's [`BatchEnd`]: its id, time and the source ranges it read, per
//! stream. `commit` is where a sink makes the batch durable and where "batch
//! N, with these source ranges, is written" can be recorded: a checkpoint
//! log appends it, a Kafka source commits its partitions' `end`s. Every
//! batch gets one, also a batch without results. Each [`QueryResult`] also
//! carries its batch's ranges (`offsets`) and the [`InputMark`](crate::batch::InputMark)
//! derived from them, which file sinks journal to tell a replay from a new run.
//!
//! **Blocking I/O.** The traits are synchronous and may block (file
//! writes, renames, fsyncs): the sink task runs every call on tokio's
//! blocking pool (`spawn_blocking`, the sink moved in and back), never on an
//! async worker. Async traits were not chosen for the reasons given in
//! `source`: `Box<dyn Sink>` needs a dyn-compatible trait, the file sinks'
//! I/O is `std::fs` plus CPU-bound encoding, and a sink stays plain code.

mod blackhole;
mod console;
pub mod files;
pub mod kafka;
mod memory;
mod print;

use datafusion::arrow::datatypes::SchemaRef;

pub use blackhole::BlackholeSink;
pub use console::{ConsoleSink, OutputFormat};
pub use files::FileSink;
pub use kafka::KafkaSink;
pub use memory::{MemorySink, MemoryTable};
pub use print::PrintSink;

use crate::options::{OptionError, Options};
use crate::report::{BatchEnd, QueryResult};

/// Connectors a sink table can use.
pub const CONNECTORS: &[&str] = &[
    "blackhole",
    "print",
    "memory",
    "parquet",
    "csv",
    "ndjson",
    "filesystem",
    "kafka",
];

/// Connectors a background query under `--checkpoint` can write to: the
/// file sinks (their commit log ties into the checkpoint's batch ids),
/// `kafka` (a replayed batch keeps its `quiver.batch` id; exactly-once
/// skips the batches its transactions already committed, see [`kafka`]),
/// `print` (at least once, as the console: a batch printed but not yet in
/// the commit log when the process died is printed again) and `blackhole`.
/// `memory` is refused: its table lives in the process and a restart
/// would resume into an empty one.
pub const CHECKPOINT_CONNECTORS: &[&str] = &[
    "parquet",
    "csv",
    "ndjson",
    "filesystem",
    "kafka",
    "print",
    "blackhole",
];

/// The sink option naming a background query's own checkpoint directory
/// (`checkpoint = 'DIR'`, like `--checkpoint DIR` for that query only). It
/// belongs to the query, not the connector: [`without_query_options`]
/// removes it before a connector sees the options.
pub const CHECKPOINT_OPTION: &str = "checkpoint";

/// The directory of `options`' `checkpoint = 'DIR'`, if given.
pub fn own_checkpoint(options: &Options) -> Option<std::path::PathBuf> {
    options.get(CHECKPOINT_OPTION).map(std::path::PathBuf::from)
}

/// `def` without the options that belong to its query (`checkpoint`), as
/// the connector is opened with them.
pub fn without_query_options(def: &SinkDef) -> SinkDef {
    SinkDef {
        options: def.options.without(CHECKPOINT_OPTION),
        ..def.clone()
    }
}

/// A sink table: `CREATE TABLE t (...) WITH (connector = 'print')` or the
/// target of `CREATE SINK name AS SELECT ... WITH (...)`. A definition only:
/// a `memory` sink's table is a runtime object of the session, which opens
/// its sinks with `MemorySink::open`.
#[derive(Debug, Clone)]
pub struct SinkDef {
    /// Table name; also names the files a file sink writes, so it must stay
    /// the same across restarts for exactly-once output.
    pub name: String,
    /// Connector name, lower case.
    pub connector: String,
    /// Schema the rows are written with (declared, or the query's).
    pub schema: SchemaRef,
    /// Connector options, without `connector`.
    pub options: Options,
}

impl SinkDef {
    /// A sink table `name` writing rows of `schema` through `connector`
    /// (`blackhole`, `print`, `parquet`, `csv`, `ndjson` or `filesystem`;
    /// a `memory` sink needs a session table, which only `CREATE SINK` and
    /// `CREATE TABLE` make) with `options`: what
    /// [`open_sink`](crate::open_sink) opens.
    pub fn new(name: &str, connector: &str, schema: SchemaRef, options: Options) -> Self {
        SinkDef {
            name: name.to_string(),
            connector: connector.to_ascii_lowercase(),
            schema,
            options,
        }
    }
}

/// A sink could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Unknown connector.
    #[error("unknown sink connector '{0}'; valid sink connectors are: {list}", list = CONNECTORS.join(", "))]
    UnknownConnector(String),
    /// Invalid or missing option.
    #[error("sink '{sink}': {source}")]
    Option {
        /// The sink's name.
        sink: String,
        /// What is wrong with the option.
        source: OptionError,
    },
    /// Writing failed.
    #[error("sink '{sink}': {message}")]
    Write {
        /// The sink's name.
        sink: String,
        /// What failed.
        message: String,
    },
    /// An I/O operation on a path failed.
    #[error("sink '{sink}': {action} '{path}': {source}")]
    Io {
        /// The sink's name.
        sink: String,
        /// What was being done (`create`, `read`).
        action: &'static str,
        /// The path it was done to.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file sink could not create, write, rename or sync a file; finished
    /// files are intact and nothing partial is visible.
    #[error("sink '{sink}': cannot {action} '{path}': {source}; {hint}", hint = file_hint(source))]
    File {
        /// The sink's name.
        sink: String,
        /// What was being done (`create`, `rename the finished file to`).
        action: &'static str,
        /// The file or directory it was done to.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A restarted run differs from the one whose output the directory
    /// holds (other batch times or input): skipping its committed batches
    /// would leave a gap, writing them would mix two runs.
    #[error(
        "sink '{sink}': {mismatch}: this is a new run, not a replay of the one whose output is in {path}, \
         and writing there would skip or mix rows, so the sink stopped before this batch. Delete {path} (or choose another \
         path or sink name) to start over; resuming a restarted wall-clock query needs --checkpoint"
    )]
    NotAReplay {
        /// The sink's name.
        sink: String,
        /// How this run differs from the recorded one.
        mismatch: String,
        /// The sink's output directory.
        path: String,
    },
}

/// What to do about a failed file operation.
fn file_hint(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        PermissionDenied | ReadOnlyFilesystem => {
            "check that quiver may write there, or choose another path; no partial file is visible"
        }
        StorageFull | QuotaExceeded | FileTooLarge => {
            "free some disk space and run the query again: finished files are intact, no partial file \
             is visible, and committed batches are not written twice"
        }
        NotADirectory | AlreadyExists => {
            "a file is in the way of the output directory; move it or choose another path"
        }
        _ => {
            "finished files are intact and no partial file is visible; fix the cause and run the query again"
        }
    }
}

/// Where results of a background query go. Calls come from one task, in
/// batch-id order, on tokio's blocking pool (so they may block): per batch
/// `write` for each result, then `commit`; `close` once at the end.
pub trait Sink: Send {
    /// Writes the result of one batch or closed window.
    fn write(&mut self, result: &QueryResult) -> Result<(), SinkError>;
    /// The batch `end` describes (its id and the source ranges it read) is
    /// complete: all its results were written. A sink that commits per
    /// batch does so here; an error stops the query. The default does
    /// nothing: file sinks make batches durable when their files roll
    /// (and journal each result's `input`), the others write at once.
    fn commit(&mut self, end: &BatchEnd) -> Result<(), SinkError> {
        let _ = end;
        Ok(())
    }
    /// Flushes and commits everything written; the query has stopped.
    fn close(&mut self) -> Result<(), SinkError>;
    /// The query runs under `--checkpoint` (called once, before the first
    /// write): a restart resumes at the checkpoint's batch rather than
    /// replaying from batch 0. `checkpoint` is the checkpoint's identity
    /// (`QueryCheckpoint::id`), the same across restarts: a kafka sink tags
    /// its messages with it. Only the connectors in
    /// [`CHECKPOINT_CONNECTORS`] are opened so.
    fn resume_from_checkpoint(&mut self, checkpoint: &str) {
        let _ = checkpoint;
    }
    /// After a batch's `commit`: the first batch whose results were written
    /// but are not durable yet (a file sink's rolling file still open), for
    /// the checkpoint to re-run from after a crash. `None`: all durable.
    fn pending_from(&self) -> Option<u64> {
        None
    }
    /// One line for `SHOW QUERIES` (files written, bytes, ...), if any.
    fn status(&self) -> String {
        String::new()
    }
}

/// Opens the sink `def` describes. A `memory` sink needs the session's
/// table: see `MemorySink::open`.
pub fn open(def: &SinkDef) -> Result<Box<dyn Sink>, SinkError> {
    match def.connector.as_str() {
        "blackhole" => Ok(Box::new(BlackholeSink::open(def)?)),
        "print" => Ok(Box::new(PrintSink::open(def)?)),
        "memory" => Err(SinkError::Write {
            sink: def.name.clone(),
            message: "a memory sink needs the session's table; create it with CREATE TABLE or CREATE SINK".into(),
        }),
        "parquet" | "csv" | "ndjson" | "filesystem" => Ok(Box::new(FileSink::open(def)?)),
        "kafka" => Ok(Box::new(KafkaSink::open(def)?)),
        other => Err(SinkError::UnknownConnector(other.to_string())),
    }
}

/// Whether `connector` names a sink (rather than a source).
pub fn is_sink_connector(connector: &str) -> bool {
    CONNECTORS.contains(&connector)
}

/// Whether `CREATE TABLE` (or `CREATE STREAM`) with `connector` and
/// `options` declares a sink table rather than a stream. `kafka` is both a
/// source and a sink: a kafka table with a `group.id` (which reading needs)
/// is a stream, one without is a sink table for `INSERT INTO`.
pub fn is_sink_table(connector: &str, options: &Options) -> bool {
    match connector {
        "kafka" => options.get("group.id").is_none(),
        other => is_sink_connector(other),
    }
}
