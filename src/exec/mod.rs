//! Execution: the micro-batch scheduler that drives one continuous query —
//! tick every batch interval, pull each source, feed windows, run the plan,
//! hand the result on — plus the query's lifecycle (stop, drain, progress).
//!
//! Data flow: source → decode → `Batch` → driver (`driver.rs`: clock,
//! polling, watermarks, progress) → operator (`operator/`: per batch,
//! windowed, session; holds the query's state) → DataFusion → sink.
//!
//! Offsets: the driver polls the sources on tokio's blocking pool into one
//! `Batch` per stream (rows, partitions and the source ranges read), hands
//! the batches to the operator, and sends each [`QueryResult`] with its
//! batch's ranges per stream, then a [`BatchEnd`] (the batch's id and
//! ranges) once all of the batch's results are sent; [`Progress`] carries
//! the ranges too. The background sink task (`background.rs`) writes the
//! results and calls `Sink::commit` with each `BatchEnd`, all on the
//! blocking pool. The file sink's [`InputMark`](crate::batch::InputMark)
//! is derived from the same ranges.
//!
//! Checkpoints (`--checkpoint`, see `crate::checkpoint`): the driver logs
//! each batch's ranges and source positions before running it and its
//! state after (`driver/checkpointing.rs`), waits for the previous batch's
//! commit before the next, and on start resumes from what the checkpoint
//! holds; the results' consumer logs each batch's commit.

mod background;
mod clock;
mod driver;
mod event_time;
mod late;
mod operator;
mod query;

pub use background::{QueryState, QueryStatus, Registry};
pub use clock::{Clock, DEFAULT_SIMULATED_START_MS};
pub use query::{QueryHandle, QueryStopper, start_query};

use datafusion::error::DataFusionError;

use crate::source::SourceError;

/// A running query failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A source could not be opened or read.
    #[error("query {query}, stream '{stream}': {source}")]
    Source {
        /// The query's name.
        query: String,
        /// The stream whose source failed.
        stream: String,
        /// What the source reported.
        source: SourceError,
    },
    /// DataFusion failed while running the plan.
    #[error("query {query}, batch {batch_id}: {source}")]
    Execute {
        /// The query's name.
        query: String,
        /// The batch being computed.
        batch_id: u64,
        /// What DataFusion reported.
        source: DataFusionError,
    },
    /// A background query with this name is still running.
    #[error("query '{0}' is already running; STOP QUERY {0} first or pick another name")]
    AlreadyRunning(String),
    /// `STOP QUERY` or `SHOW PROGRESS` named no query quiver knows.
    #[error("no query named '{name}'; {among} queries: {known}")]
    UnknownQuery {
        /// The name the statement gave.
        name: String,
        /// Which queries the statement looks among: `background` for
        /// `STOP QUERY`, `known` for `SHOW PROGRESS` (it also finds ended
        /// foreground queries).
        among: &'static str,
        /// The queries it could have named, comma-separated (`none`).
        known: String,
    },
    /// The query's checkpoint could not be written, read or resumed from.
    #[error("query {query}: {source}")]
    Checkpoint {
        /// The query's name.
        query: String,
        /// What the checkpoint reported.
        source: crate::checkpoint::CheckpointError,
    },
    /// Arrow failed while assembling a batch.
    #[error("query {query}: {source}")]
    Arrow {
        /// The query's name.
        query: String,
        /// What Arrow reported.
        source: datafusion::arrow::error::ArrowError,
    },
}
