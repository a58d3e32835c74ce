//! Finds the streams a query reads and replaces window table functions
//! (`TUMBLE(stream, time, size)`, `HOP(stream, time, slide, size)`) by the name
//! of a table that will hold one window's rows. The rest of the query is left
//! to DataFusion untouched.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, Query, TableFactor, VisitMut, VisitorMut,
};

use super::SqlError;
use super::parser::normalize_name;
use crate::batch::BATCH_TIME_COLUMN;
use crate::window::WindowKind;

/// A window function call found in a query, before its intervals are evaluated.
#[derive(Debug, Clone)]
pub struct WindowCall {
    /// Name of the table that replaces the call in the rewritten query.
    pub table: String,
    /// The windowed stream.
    pub stream: String,
    /// TUMBLE or HOP.
    pub kind: WindowKind,
    /// Window size expression (an INTERVAL).
    pub size: Expr,
    /// Slide expression (= size for TUMBLE).
    pub slide: Expr,
}

/// What a query reads.
#[derive(Debug, Default)]
pub struct Rewritten {
    /// Streams read batch by batch (outside any window function).
    pub per_batch: BTreeSet<String>,
    /// Window function calls, in order of appearance.
    pub windows: Vec<WindowCall>,
    /// Other table names (static tables, views, CTE names).
    pub others: BTreeSet<String>,
}

/// Rewrites `query` in place; `is_stream` tells stream names from others.
pub fn rewrite(query: &mut Query, is_stream: &dyn Fn(&str) -> bool) -> Result<Rewritten, SqlError> {
    let mut visitor = Visitor {
        is_stream,
        out: Rewritten::default(),
    };
    match query.visit(&mut visitor) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(visitor.out),
    }
}

struct Visitor<'a> {
    is_stream: &'a dyn Fn(&str) -> bool,
    out: Rewritten,
}

impl VisitorMut for Visitor<'_> {
    type Break = SqlError;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<SqlError> {
        let TableFactor::Table { name, args, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let table = normalize_name(name);
        match args.take() {
            None if (self.is_stream)(&table) => {
                self.out.per_batch.insert(table);
            }
            None => {
                self.out.others.insert(table);
            }
            Some(call) => {
                let kind = match table.as_str() {
                    "tumble" => WindowKind::Tumble,
                    "hop" => WindowKind::Hop,
                    "session" => {
                        return ControlFlow::Break(SqlError::Unsupported(
                            "SESSION windows need event time, which is not supported yet; use TUMBLE or HOP \
                             over _batch_time"
                                .into(),
                        ));
                    }
                    _ => {
                        *args = Some(call);
                        return ControlFlow::Continue(());
                    }
                };
                let exprs: Vec<Expr> = call
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                        _ => None,
                    })
                    .collect();
                match self.window_call(kind, &exprs) {
                    Ok(window) => {
                        *name = ObjectName::from(vec![Ident::new(window.table.clone())]);
                        self.out.windows.push(window);
                    }
                    Err(e) => return ControlFlow::Break(e),
                }
            }
        }
        ControlFlow::Continue(())
    }
}

impl Visitor<'_> {
    fn window_call(&self, kind: WindowKind, args: &[Expr]) -> Result<WindowCall, SqlError> {
        let usage = match kind {
            WindowKind::Tumble => "TUMBLE(stream, _batch_time, INTERVAL '10' SECOND)",
            WindowKind::Hop => {
                "HOP(stream, _batch_time, INTERVAL '10' SECOND, INTERVAL '30' SECOND) (slide, then size)"
            }
        };
        let expected = if kind == WindowKind::Tumble { 3 } else { 4 };
        if args.len() != expected {
            return Err(SqlError::Window(format!(
                "expected {usage}, got {} arguments",
                args.len()
            )));
        }
        let stream = match &args[0] {
            Expr::Identifier(ident) => normalize_name(&ObjectName::from(vec![ident.clone()])),
            Expr::CompoundIdentifier(idents) => normalize_name(&ObjectName::from(idents.clone())),
            other => {
                return Err(SqlError::Window(format!(
                    "the first argument of {usage} must be a stream name, got {other}"
                )));
            }
        };
        if !(self.is_stream)(&stream) {
            return Err(SqlError::Window(format!(
                "window functions apply to streams; '{stream}' is not a stream"
            )));
        }
        match &args[1] {
            Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case(BATCH_TIME_COLUMN) => {}
            Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("proctime") => {}
            other => {
                return Err(SqlError::Unsupported(format!(
                    "windows over '{other}' need event time (WATERMARK), which is not supported yet; \
                     window over processing time with {usage}"
                )));
            }
        }
        let size = args[expected - 1].clone();
        let slide = args[2].clone();
        let table = format!("__quiver_window_{}", self.out.windows.len());
        Ok(WindowCall {
            table,
            stream,
            kind,
            size,
            slide,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parser::{Statement, parse_script};

    fn query(sql: &str) -> Box<Query> {
        match parse_script(sql).unwrap().remove(0).statement {
            Statement::Query(q) => q,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replaces_window_calls_and_finds_streams() {
        let mut q = query(
            "SELECT word, count(*) FROM HOP(Lines, _batch_time, INTERVAL '10' SECOND, INTERVAL '30' SECOND) \
             JOIN (SELECT * FROM clicks) c ON true JOIN dim ON true GROUP BY word",
        );
        let out = rewrite(&mut q, &|n| n == "lines" || n == "clicks").unwrap();
        assert_eq!(out.windows.len(), 1);
        assert_eq!(out.windows[0].stream, "lines");
        assert_eq!(out.windows[0].size.to_string(), "INTERVAL '30' SECOND");
        assert_eq!(out.per_batch.iter().collect::<Vec<_>>(), vec!["clicks"]);
        assert_eq!(out.others.iter().collect::<Vec<_>>(), vec!["dim"]);
        assert!(q.to_string().contains("FROM __quiver_window_0 JOIN"), "{q}");
    }

    #[test]
    fn event_time_windows_are_refused_with_the_alternative() {
        let mut q = query("SELECT * FROM TUMBLE(s, ts, INTERVAL '1' SECOND)");
        let err = rewrite(&mut q, &|n| n == "s").unwrap_err().to_string();
        assert!(err.contains("TUMBLE(stream, _batch_time"), "{err}");
    }

    #[test]
    fn wrong_arity_is_explained() {
        let mut q = query("SELECT * FROM HOP(s, _batch_time, INTERVAL '1' SECOND)");
        let err = rewrite(&mut q, &|n| n == "s").unwrap_err().to_string();
        assert!(err.contains("expected HOP(stream"), "{err}");
    }
}
