//! SQL: parsing quiver's statements, turning a continuous query over streams
//! into a DataFusion plan over swappable tables, and the catalog of streams.
//!
//! Data flow: source → decode → `Batch` → window state → **query** → sink.

pub mod parser;
pub mod plan;
pub mod provider;
mod rewrite;

pub use parser::{ParsedStatement, Statement, parse_script};
pub use plan::{PlannedInput, StreamingPlan};

use datafusion::error::DataFusionError;

use crate::source::SourceError;
use crate::window::WindowError;

/// A statement that cannot be parsed or planned.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not valid SQL.
    #[error("syntax error: {0}")]
    Parse(String),
    /// DataFusion rejected the query (unknown column, type mismatch, ...).
    #[error("{0}")]
    Plan(#[from] DataFusionError),
    /// A name that is neither a stream nor a table.
    #[error("unknown stream or table '{name}'; known streams: {known}")]
    UnknownStream { name: String, known: String },
    /// A window function call that quiver cannot run.
    #[error("{0}")]
    Window(String),
    /// Invalid window parameters.
    #[error(transparent)]
    WindowParams(#[from] WindowError),
    /// The stream's connector options are invalid.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A statement or clause quiver does not support (yet), with what to do instead.
    #[error("{0}")]
    Unsupported(String),
}
