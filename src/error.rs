//! The library's top-level error: what failed in which layer, and in which
//! statement of a script.

use datafusion::error::DataFusionError;

use crate::exec::ExecError;
use crate::source::SourceError;
use crate::sql::SqlError;

/// Any error a [`crate::Context`] reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error in one statement of a script, with the statement's text.
    #[error("{source}\n  in statement at line {line}: {text}")]
    Statement {
        line: u64,
        text: String,
        source: Box<Error>,
    },
    /// The statement could not be parsed or planned.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A running query failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// A stream's connector options or data are invalid.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A sink could not be opened.
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    /// A DataFusion statement failed.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// A setting or catalog operation was refused.
    #[error("{0}")]
    Catalog(String),
}
