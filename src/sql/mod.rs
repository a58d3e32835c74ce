//! SQL: parsing quiver's statements, turning a continuous query over streams
//! into a DataFusion plan over swappable tables, and the catalog of streams.
//!
//! Data flow: source → decode → `Batch` → window state → **query** → sink.

pub mod catalog;
pub mod depth;
pub mod file_table;
pub mod functions;
mod group_window;
pub mod parser;
mod partial;
pub mod plan;
pub mod proctime;
pub mod provider;
mod rewrite;
mod session;
mod wildcard;
mod window_args;

pub use catalog::{Catalog, ViewDef};
pub use parser::{DropKind, ParsedStatement, Statement};
pub use plan::{
    CompiledQuery, KeptInput, PlanKind, PlanSettings, SessionPlan, StreamingPlan, TimeDomain,
    WindowedPlan,
};
pub use rewrite::name_view_columns;

use std::collections::BTreeSet;

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::ast;

use crate::source::SourceError;
use crate::window::WindowError;

/// A statement that cannot be parsed or planned.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not valid SQL.
    #[error("syntax error: {0}")]
    Parse(String),
    /// The statement nests too deeply to be planned (see [`MAX_DEPTH`](crate::MAX_DEPTH)).
    #[error(
        "expression too deep: the statement nests more than {limit} levels (terms of one chain \
         of +, OR, AND or UNION count one level each); write a long OR of equalities as \
         `x IN (1, 2, ...)`, and split a long chain into parenthesized groups, e.g. \
         `(a + b + c) + (d + e + f)`"
    )]
    TooDeep {
        /// The deepest nesting accepted.
        limit: usize,
    },
    /// DataFusion rejected the query (unknown column, type mismatch, ...).
    #[error("{0}")]
    Plan(#[from] DataFusionError),
    /// A name that is neither a stream nor a table.
    #[error("stream or table '{name}' not found; {hint}")]
    UnknownStream {
        /// The name as the statement wrote it.
        name: String,
        /// The closest known name, or what exists (see [`SqlError::unknown_relation`]).
        hint: String,
    },
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

impl SqlError {
    /// `name` is no stream, view or table: suggests the closest of `known`
    /// (by the measure DataFusion suggests column names with), or lists them
    /// all when none is close.
    pub fn unknown_relation(name: &str, mut known: Vec<String>) -> Self {
        use datafusion::common::utils::datafusion_strsim::levenshtein;
        known.sort();
        known.dedup();
        let target = name.to_lowercase();
        let closest = known
            .iter()
            .filter_map(|candidate| {
                let distance = levenshtein(&target, &candidate.to_lowercase());
                let longest = target.chars().count().max(candidate.chars().count());
                // More than half of the longer name to edit is no match.
                (distance * 2 <= longest).then_some((distance, candidate))
            })
            .min_by_key(|(distance, _)| *distance);
        let hint = match closest {
            Some((_, candidate)) => format!("did you mean '{candidate}'?"),
            None if known.is_empty() => format!(
                "none exist yet: declare it with CREATE STREAM {name} WITH (connector = ...)"
            ),
            None => format!("streams and tables: {}", known.join(", ")),
        };
        SqlError::UnknownStream {
            name: name.to_string(),
            hint,
        }
    }
}

/// The streaming relations (streams, views over streams) `query` reads;
/// rewrites `query` as a continuous query would be.
pub fn rewrite_relations(
    query: &mut ast::Query,
    catalog: Catalog<'_>,
) -> Result<BTreeSet<String>, SqlError> {
    let found = rewrite::rewrite(query, &|name| catalog.is_streaming(name))?;
    if !found.windows.is_empty() || !found.sessions.is_empty() {
        return Err(SqlError::Unsupported(
            "views over windows are not supported yet; put the window in the query that reads the view".into(),
        ));
    }
    Ok(found.relations())
}

/// Columns a view defines as `PROCTIME() AS name`.
pub fn proctime_columns(query: &ast::Query) -> BTreeSet<String> {
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return BTreeSet::new();
    };
    select
        .projection
        .iter()
        .filter_map(|item| match item {
            ast::SelectItem::ExprWithAlias {
                expr: ast::Expr::Function(f),
                alias,
            } if f.name.to_string().eq_ignore_ascii_case("proctime") => Some(alias.value.clone()),
            _ => None,
        })
        .collect()
}

/// Splits a script into statements and parses each one, refusing a
/// statement that nests deeper than [`MAX_DEPTH`](crate::MAX_DEPTH) (planning it would
/// exhaust the stack).
pub fn parse_script(sql: &str) -> Result<Vec<ParsedStatement>, SqlError> {
    let statements = parser::parse_script(sql)?;
    for parsed in &statements {
        depth::check_statement(&parsed.statement)?;
    }
    Ok(statements)
}
