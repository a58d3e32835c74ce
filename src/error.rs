//! The library's top-level error: what failed in which layer, and in which
//! statement of a script.

use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

use crate::exec::ExecError;
use crate::source::SourceError;
use crate::sql::SqlError;

/// Any error a [`crate::Context`] reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error in one statement of a script, with the statement's text.
    #[error("{source}\n  in statement at line {line}: {text}")]
    Statement {
        /// 1-based line of the script where the statement starts.
        line: u64,
        /// The statement's text.
        text: String,
        /// What went wrong in it.
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

impl Error {
    /// The error as its reader should see it, without DataFusion's internals:
    /// the wrapper naming the optimizer rule that failed is removed (its cause
    /// kept), and a table DataFusion did not find is reported by the name the
    /// statement wrote, not its catalog path, with the closest of `known`
    /// (quiver's streams, views and sink tables) or `tables`' own tables
    /// suggested.
    pub(crate) fn for_user(self, tables: &SessionContext, known: Vec<String>) -> Self {
        let tidy = |e: DataFusionError, rewrap: fn(DataFusionError) -> Error| {
            let e = without_rule_names(e);
            match unknown_table(&e) {
                Some(path) => SqlError::unknown_relation(
                    &user_name(tables, path),
                    relation_names(tables, known),
                )
                .into(),
                None => rewrap(e),
            }
        };
        match self {
            Error::DataFusion(e) => tidy(e, Error::DataFusion),
            Error::Sql(SqlError::Plan(e)) => tidy(e, |e| Error::Sql(SqlError::Plan(e))),
            other => other,
        }
    }
}

/// `e` without `Optimizer rule '...' failed` contexts.
fn without_rule_names(e: DataFusionError) -> DataFusionError {
    match e {
        DataFusionError::Context(context, inner) if context.starts_with("Optimizer rule") => {
            without_rule_names(*inner)
        }
        DataFusionError::Context(context, inner) => {
            DataFusionError::Context(context, Box::new(without_rule_names(*inner)))
        }
        DataFusionError::Diagnostic(diagnostic, inner) => {
            DataFusionError::Diagnostic(diagnostic, Box::new(without_rule_names(*inner)))
        }
        other => other,
    }
}

/// The catalog path in DataFusion's "table 'catalog.schema.name' not found".
fn unknown_table(e: &DataFusionError) -> Option<&str> {
    match e {
        DataFusionError::Plan(message) => {
            message.strip_prefix("table '")?.strip_suffix("' not found")
        }
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            unknown_table(inner)
        }
        DataFusionError::Shared(inner) => unknown_table(inner),
        _ => None,
    }
}

/// `path` without the default catalog and schema DataFusion resolved it in.
fn user_name(tables: &SessionContext, path: &str) -> String {
    let config = tables.copied_config();
    let catalog = &config.options().catalog;
    let prefix = format!("{}.{}.", catalog.default_catalog, catalog.default_schema);
    path.strip_prefix(&prefix).unwrap_or(path).to_string()
}

/// `known` and the tables of `tables`' default schema, but quiver's own
/// (`__quiver_*`, which queries never name).
fn relation_names(tables: &SessionContext, mut known: Vec<String>) -> Vec<String> {
    let config = tables.copied_config();
    let catalog = &config.options().catalog;
    if let Some(schema) = tables
        .catalog(&catalog.default_catalog)
        .and_then(|c| c.schema(&catalog.default_schema))
    {
        known.extend(schema.table_names());
    }
    known.retain(|name| !name.starts_with("__quiver"));
    known
}
