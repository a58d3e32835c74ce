//! The small AST pieces every window rewrite shares: the time a window call
//! assigns rows by ([`WindowTime`]) and how it is read from a call's argument
//! ([`time_argument`]), a function call's unnamed arguments, and the table
//! factor that replaces a window call. [`super::rewrite`] (TUMBLE/HOP),
//! [`super::session`] and [`super::group_window`] all import from here, so
//! the imports run one way: rewrite → session / group_window → window_args.

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, TableAlias,
    TableFactor,
};

use crate::batch::BATCH_TIME_COLUMN;

/// The time a window call assigns rows by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowTime {
    /// `_batch_time` or `PROCTIME()`: processing time.
    Batch,
    /// A column of the windowed relation (event time, or a view's
    /// `PROCTIME()` column).
    Column(String),
}

/// A table factor naming `table`, with `alias`.
pub(crate) fn table_factor(table: &str, alias: Option<TableAlias>) -> TableFactor {
    TableFactor::Table {
        name: ObjectName::from(vec![Ident::new(table)]),
        alias,
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    }
}

/// The unnamed expression arguments of a function call, in order (named
/// and wildcard arguments are skipped).
pub(crate) fn unnamed_args(args: &[FunctionArg]) -> Vec<Expr> {
    args.iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// The column name a window's time argument refers to.
pub(crate) fn time_argument(expr: &Expr) -> Option<WindowTime> {
    match expr {
        Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case(BATCH_TIME_COLUMN) => {
            Some(WindowTime::Batch)
        }
        Expr::Identifier(ident) => Some(WindowTime::Column(ident.value.clone())),
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("proctime") => {
            Some(WindowTime::Batch)
        }
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("descriptor") => {
            match &f.args {
                FunctionArguments::List(list) => match unnamed_args(&list.args).as_slice() {
                    [inner] => time_argument(inner),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}
