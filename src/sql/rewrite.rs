//! Finds the streaming relations a query reads and gives each a table of its
//! own: every bare reference to a stream or a view over streams becomes
//! `__quiver_input_N` (aliased to the name it had, so qualified columns still
//! resolve), and every window table function — `TUMBLE(rel, time, size)`,
//! `HOP(rel, time, slide, size)`, Flink's `TABLE(TUMBLE(TABLE rel,
//! DESCRIPTOR(time), size))` — becomes `__quiver_window_N`, and a SESSION
//! table function becomes `__quiver_session_N` (see [`super::session`]). The
//! executor fills those tables; the rest of the query is left to DataFusion
//! untouched.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArguments, Ident, ObjectName, Query, TableAlias, TableFactor,
    VisitMut, VisitorMut,
};

use super::SqlError;
use super::parser::normalize_name;
use super::window_args::{WindowTime, table_factor, time_argument, unnamed_args};
use crate::window::WindowKind;

/// A window function call found in a query, before its intervals are evaluated.
#[derive(Debug, Clone)]
pub struct WindowCall {
    /// Name of the table that replaces the call in the rewritten query.
    pub table: String,
    /// The windowed relation (a stream or a view over streams).
    pub relation: String,
    /// TUMBLE or HOP.
    pub kind: WindowKind,
    /// The time the rows are windowed by.
    pub time: WindowTime,
    /// Window size expression (an INTERVAL).
    pub size: Expr,
    /// Slide expression (= size for TUMBLE).
    pub slide: Expr,
}

/// A bare reference to a streaming relation, outside any window call.
#[derive(Debug, Clone)]
pub struct InputRef {
    /// Name of the table that replaces the reference.
    pub table: String,
    /// The relation referenced.
    pub relation: String,
}

/// What a query reads.
#[derive(Debug, Default)]
pub struct Rewritten {
    /// Bare references to streaming relations, in order of appearance.
    pub inputs: Vec<InputRef>,
    /// Window function calls, in order of appearance.
    pub windows: Vec<WindowCall>,
    /// `GROUP BY ..., SESSION(...)` windows.
    pub sessions: Vec<super::session::SessionCall>,
    /// Other table names (static tables, views, CTE names).
    pub others: BTreeSet<String>,
}

impl Rewritten {
    /// True when the query reads any stream.
    pub fn is_streaming(&self) -> bool {
        !self.inputs.is_empty() || !self.windows.is_empty() || !self.sessions.is_empty()
    }

    /// Every streaming relation read, bare or windowed.
    pub fn relations(&self) -> BTreeSet<String> {
        self.inputs
            .iter()
            .map(|i| i.relation.clone())
            .chain(self.windows.iter().map(|w| w.relation.clone()))
            .chain(self.sessions.iter().map(|s| s.relation.clone()))
            .collect()
    }
}

/// Rewrites `query` in place; `is_streaming` tells streams and views over
/// streams from other names.
pub fn rewrite(
    query: &mut Query,
    is_streaming: &dyn Fn(&str) -> bool,
) -> Result<Rewritten, SqlError> {
    let mut visitor = Visitor {
        is_streaming,
        out: Rewritten::default(),
    };
    match query.visit(&mut visitor) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(visitor.out),
    }
}

struct Visitor<'a> {
    is_streaming: &'a dyn Fn(&str) -> bool,
    out: Rewritten,
}

/// A window table function.
enum WindowFunction {
    /// TUMBLE or HOP.
    Window(WindowKind),
    /// SESSION.
    Session,
}

fn window_kind(name: &str) -> Result<Option<WindowFunction>, SqlError> {
    match name.to_ascii_lowercase().as_str() {
        "tumble" => Ok(Some(WindowFunction::Window(WindowKind::Tumble))),
        "hop" => Ok(Some(WindowFunction::Window(WindowKind::Hop))),
        "session" => Ok(Some(WindowFunction::Session)),
        "cumulate" => Err(SqlError::Unsupported(format!(
            "{} window table functions are not supported yet; use TUMBLE, HOP or SESSION",
            name.to_ascii_uppercase()
        ))),
        _ => Ok(None),
    }
}

impl VisitorMut for Visitor<'_> {
    type Break = SqlError;

    fn pre_visit_select(
        &mut self,
        select: &mut datafusion::sql::sqlparser::ast::Select,
    ) -> ControlFlow<SqlError> {
        name_compound_columns(select);
        if let Err(e) = super::group_window::rewrite_group_window(select, self.is_streaming) {
            return ControlFlow::Break(e);
        }
        let index = self.out.sessions.len();
        match super::session::rewrite_session_select(select, self.is_streaming, index) {
            Ok(Some(call)) => self.out.sessions.push(call),
            Ok(None) => {}
            Err(e) => return ControlFlow::Break(e),
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<SqlError> {
        let replacement = match factor {
            TableFactor::Table {
                name, args, alias, ..
            } => {
                let table = normalize_name(name);
                match args {
                    None if (self.is_streaming)(&table) => {
                        let input = format!("__quiver_input_{}", self.out.inputs.len());
                        let alias = alias.clone().unwrap_or_else(|| TableAlias {
                            explicit: true,
                            name: Ident::new(table.clone()),
                            columns: vec![],
                            at: None,
                        });
                        self.out.inputs.push(InputRef {
                            table: input.clone(),
                            relation: table,
                        });
                        Some(table_factor(&input, Some(alias)))
                    }
                    None => {
                        if !table.starts_with("__quiver_") {
                            self.out.others.insert(table);
                        }
                        None
                    }
                    Some(call) => match window_kind(&table) {
                        Err(e) => return ControlFlow::Break(e),
                        Ok(None) => None,
                        Ok(Some(function)) => match self.table_function(function, &call.args) {
                            Ok(table) => Some(table_factor(&table, alias.clone())),
                            Err(e) => return ControlFlow::Break(e),
                        },
                    },
                }
            }
            TableFactor::TableFunction {
                expr: Expr::Function(f),
                alias,
            } => {
                let name = f.name.to_string();
                match window_kind(&name) {
                    Err(e) => return ControlFlow::Break(e),
                    Ok(None) => None,
                    Ok(Some(function)) => {
                        let FunctionArguments::List(list) = &f.args else {
                            return ControlFlow::Break(SqlError::Window(format!(
                                "{name} needs arguments"
                            )));
                        };
                        match self.table_function(function, &list.args) {
                            Ok(table) => Some(table_factor(&table, alias.clone())),
                            Err(e) => return ControlFlow::Break(e),
                        }
                    }
                }
            }
            _ => None,
        };
        if let Some(replacement) = replacement {
            *factor = replacement;
        }
        ControlFlow::Continue(())
    }
}

/// Names `SELECT t.a` and `SELECT row.field` columns `a` and `field`, as
/// Flink and the SQL standard do; DataFusion would name a struct field
/// access `t.row[field]`, which Flink's views (`SELECT bid.auction FROM
/// datagen`) cannot be read by.
pub(crate) fn name_compound_columns(select: &mut datafusion::sql::sqlparser::ast::Select) {
    use datafusion::sql::sqlparser::ast::SelectItem;
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) = item
            && let Some(last) = parts.last().cloned()
        {
            *item = SelectItem::ExprWithAlias {
                expr: Expr::CompoundIdentifier(parts.clone()),
                alias: last,
            };
        }
    }
}

/// Applies [`name_compound_columns`] to every SELECT of `query` (a view's
/// definition, which DataFusion plans as written).
pub fn name_view_columns(query: &mut Query) {
    struct Namer;
    impl VisitorMut for Namer {
        type Break = ();
        fn pre_visit_select(
            &mut self,
            select: &mut datafusion::sql::sqlparser::ast::Select,
        ) -> ControlFlow<()> {
            name_compound_columns(select);
            ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut Namer);
}

impl Visitor<'_> {
    /// Records a window table function call; returns the name of the table
    /// replacing it.
    fn table_function(
        &mut self,
        function: WindowFunction,
        args: &[FunctionArg],
    ) -> Result<String, SqlError> {
        match function {
            WindowFunction::Window(kind) => self.window_call(kind, &unnamed_args(args)),
            WindowFunction::Session => {
                let call = super::session::session_table_function(
                    args,
                    self.is_streaming,
                    self.out.sessions.len(),
                )?;
                let table = call.table.clone();
                self.out.sessions.push(call);
                Ok(table)
            }
        }
    }

    /// Records a window call; returns the name of the table replacing it.
    fn window_call(&mut self, kind: WindowKind, args: &[Expr]) -> Result<String, SqlError> {
        let usage = match kind {
            WindowKind::Tumble => {
                "TUMBLE(stream, time, INTERVAL '10' SECOND) or TABLE(TUMBLE(TABLE stream, DESCRIPTOR(time), INTERVAL '10' SECOND))"
            }
            WindowKind::Hop => {
                "HOP(stream, time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) (slide, then size) or TABLE(HOP(TABLE stream, DESCRIPTOR(time), slide, size))"
            }
        };
        let expected = if kind == WindowKind::Tumble { 3 } else { 4 };
        if args.len() != expected {
            return Err(SqlError::Window(format!(
                "expected {usage}, got {} arguments",
                args.len()
            )));
        }
        let relation = match &args[0] {
            Expr::Identifier(ident) => normalize_name(&ObjectName::from(vec![ident.clone()])),
            Expr::CompoundIdentifier(idents) => normalize_name(&ObjectName::from(idents.clone())),
            other => {
                return Err(SqlError::Window(format!(
                    "the first argument of {usage} must be a stream or view name, got {other}"
                )));
            }
        };
        if !(self.is_streaming)(&relation) {
            return Err(SqlError::Window(format!(
                "window functions apply to streams; '{relation}' is not a stream or a view over streams"
            )));
        }
        let Some(time) = time_argument(&args[1]) else {
            return Err(SqlError::Window(format!(
                "the time argument of {usage} must be a column, DESCRIPTOR(column), _batch_time or PROCTIME(), got {}",
                args[1]
            )));
        };
        let table = format!("__quiver_window_{}", self.out.windows.len());
        self.out.windows.push(WindowCall {
            table: table.clone(),
            relation,
            kind,
            time,
            size: args[expected - 1].clone(),
            slide: args[2].clone(),
        });
        Ok(table)
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
    fn replaces_window_calls_and_stream_references() {
        let mut q = query(
            "SELECT word, count(*) FROM HOP(lines, _batch_time, INTERVAL '10' SECOND, INTERVAL '30' SECOND) \
             JOIN (SELECT * FROM clicks) c ON true JOIN dim ON true GROUP BY word",
        );
        let out = rewrite(&mut q, &|n| n == "lines" || n == "clicks").unwrap();
        assert_eq!(out.windows.len(), 1);
        assert_eq!(out.windows[0].relation, "lines");
        assert_eq!(out.windows[0].time, WindowTime::Batch);
        assert_eq!(out.windows[0].size.to_string(), "INTERVAL '30' SECOND");
        assert_eq!(out.inputs[0].relation, "clicks");
        assert_eq!(out.others.iter().collect::<Vec<_>>(), vec!["dim"]);
        assert!(q.to_string().contains("FROM __quiver_window_0 JOIN"), "{q}");
        assert!(
            q.to_string().contains("FROM __quiver_input_0 AS clicks"),
            "{q}"
        );
    }

    #[test]
    fn flink_window_table_functions_are_recognized() {
        let mut q = query(
            "SELECT auction FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) \
             GROUP BY auction, window_start, window_end",
        );
        let out = rewrite(&mut q, &|n| n == "bid").unwrap();
        assert_eq!(out.windows[0].time, WindowTime::Column("dateTime".into()));
        assert_eq!(out.windows[0].slide.to_string(), "INTERVAL '2' SECOND");
        assert!(
            q.to_string().contains("FROM __quiver_window_0 GROUP BY"),
            "{q}"
        );
    }

    #[test]
    fn wrong_arity_and_unsupported_windows_are_explained() {
        let mut q = query("SELECT * FROM HOP(s, _batch_time, INTERVAL '1' SECOND)");
        let err = rewrite(&mut q, &|n| n == "s").unwrap_err().to_string();
        assert!(err.contains("expected HOP(stream"), "{err}");
        let mut q = query(
            "SELECT * FROM TABLE(CUMULATE(TABLE s, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '2' SECOND))",
        );
        let err = rewrite(&mut q, &|n| n == "s").unwrap_err().to_string();
        assert!(
            err.contains("CUMULATE window table functions are not supported yet"),
            "{err}"
        );
    }
}
