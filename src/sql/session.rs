//! Flink's group-window form of session windows (Nexmark q11):
//!
//! ```sql
//! SELECT B.bidder, count(*), SESSION_START(B.ts, INTERVAL '10' SECOND), SESSION_END(B.ts, INTERVAL '10' SECOND)
//! FROM bid B GROUP BY B.bidder, SESSION(B.ts, INTERVAL '10' SECOND)
//! ```
//!
//! A session of a key is a run of its rows where each follows the previous
//! one by less than the gap; it ends `gap` after its last row, and closes
//! when the watermark passes that end. The query is rewritten to read a
//! table of the rows of closed sessions, each with its session's
//! `window_start`/`window_end`, and to group by those instead of `SESSION(...)`.
//!
//! The same machinery serves the SESSION window table function, in quiver's
//! `SESSION(bid, ts, gap)` and Flink's `TABLE(SESSION(TABLE bid PARTITION BY
//! bidder, DESCRIPTOR(ts), gap))` spellings: the call is replaced by the
//! table of closed sessions' rows, and the query groups by `window_start`,
//! `window_end` itself. Without `PARTITION BY`, all rows of the relation form
//! one sequence of sessions.

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, ObjectName, Select,
    TableAlias, TableFactor, visit_expressions_mut,
};
use std::ops::ControlFlow;

use super::SqlError;
use super::parser::{SESSION_PARTITION_ARGUMENT, normalize_name};
use super::window_args::{WindowTime, table_factor, time_argument};
use crate::window::{WINDOW_END, WINDOW_START};

/// A `GROUP BY ..., SESSION(time, gap)` found in a query.
#[derive(Debug, Clone)]
pub struct SessionCall {
    /// Table of closed sessions' rows that replaces the relation.
    pub table: String,
    /// Table holding a batch's new rows, over which the session keys are evaluated.
    pub buffer_table: String,
    /// The grouped relation (a stream or a view over streams).
    pub relation: String,
    /// Name the query refers to the relation by.
    pub alias: String,
    /// The time column.
    pub time_column: String,
    /// The gap (an INTERVAL).
    pub gap: Expr,
    /// The other GROUP BY expressions (or the table function's `PARTITION
    /// BY` columns): a session is per value of these.
    pub keys: Vec<Expr>,
    /// Columns the session computation reads that the query itself may not
    /// (the table function's `PARTITION BY` columns): kept in the session
    /// state even when the query does not read them.
    pub key_columns: Vec<String>,
}

fn function_args(expr: &Expr, name: &str) -> Option<Vec<Expr>> {
    let Expr::Function(f) = expr else {
        return None;
    };
    if !f.name.to_string().eq_ignore_ascii_case(name) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return Some(Vec::new());
    };
    Some(
        list.args
            .iter()
            .filter_map(|a| match a {
                datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
                    datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(e),
                ) => Some(e.clone()),
                _ => None,
            })
            .collect(),
    )
}

fn column(qualifier: &str, name: &str) -> Expr {
    Expr::CompoundIdentifier(vec![Ident::new(qualifier), Ident::new(name)])
}

/// Rewrites `select` if it groups by `SESSION(...)`; `index` numbers the tables.
pub fn rewrite_session_select(
    select: &mut Select,
    is_streaming: &dyn Fn(&str) -> bool,
    index: usize,
) -> Result<Option<SessionCall>, SqlError> {
    let GroupByExpr::Expressions(exprs, _) = &mut select.group_by else {
        return Ok(None);
    };
    let Some(position) = exprs
        .iter()
        .position(|e| function_args(e, "session").is_some())
    else {
        return Ok(None);
    };
    let usage = "GROUP BY key, SESSION(time, INTERVAL '10' SECOND)";
    let args = function_args(&exprs[position], "session").unwrap_or_default();
    let [time_expr, gap] = args.as_slice() else {
        return Err(SqlError::Window(format!(
            "SESSION takes a time column and a gap: {usage}"
        )));
    };
    let time_column = match time_expr {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map(|i| i.value.clone()).unwrap_or_default()
        }
        other => {
            return Err(SqlError::Window(format!(
                "the time argument of SESSION must be a column, got {other}"
            )));
        }
    };
    let single = select.from.len() == 1 && select.from[0].joins.is_empty();
    let relation = match select.from.first().map(|t| &t.relation) {
        Some(TableFactor::Table {
            name,
            args: None,
            alias,
            ..
        }) if single && is_streaming(&normalize_name(name)) => {
            let relation = normalize_name(name);
            let alias = alias
                .as_ref()
                .map(|a| a.name.value.clone())
                .unwrap_or_else(|| relation.clone());
            (relation, alias)
        }
        _ => {
            return Err(SqlError::Unsupported(format!(
                "SESSION windows group the rows of one stream or view, without joins: \
                 SELECT ... FROM stream {usage}"
            )));
        }
    };
    let (relation, alias) = relation;
    let table = format!("__quiver_session_{index}");
    let call = SessionCall {
        buffer_table: format!("__quiver_session_buffer_{index}"),
        table: table.clone(),
        relation,
        alias: alias.clone(),
        time_column,
        gap: gap.clone(),
        keys: exprs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != position)
            .map(|(_, e)| e.clone())
            .collect(),
        key_columns: Vec::new(),
    };
    exprs.splice(
        position..=position,
        [column(&alias, WINDOW_START), column(&alias, WINDOW_END)],
    );
    select.from[0].relation = table_factor(
        &table,
        Some(TableAlias {
            explicit: true,
            name: Ident::new(alias.clone()),
            columns: vec![],
            at: None,
        }),
    );
    let mut replace = |expr: &mut Expr| {
        if function_args(expr, "session_start").is_some() {
            *expr = column(&alias, WINDOW_START);
        } else if function_args(expr, "session_end").is_some() {
            *expr = column(&alias, WINDOW_END);
        }
        ControlFlow::<()>::Continue(())
    };
    let _ = visit_expressions_mut(&mut select.projection, &mut replace);
    let _ = visit_expressions_mut(&mut select.having, &mut replace);
    Ok(Some(call))
}

const TABLE_FUNCTION_USAGE: &str = "SESSION(stream, time, INTERVAL '10' SECOND), \
    SESSION(stream PARTITION BY key, time, gap) or \
    TABLE(SESSION(TABLE stream PARTITION BY (key1, key2), DESCRIPTOR(time), gap))";

/// Reads a SESSION window table function's arguments — the relation, the
/// time column, the gap, and the keys its `PARTITION BY` became (see
/// [`super::parser`]) — into the call to replace it by `__quiver_session_{index}`.
pub fn session_table_function(
    args: &[FunctionArg],
    is_streaming: &dyn Fn(&str) -> bool,
    index: usize,
) -> Result<SessionCall, SqlError> {
    let usage = TABLE_FUNCTION_USAGE;
    let mut positional = Vec::new();
    let mut keys = Vec::new();
    for arg in args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => positional.push(e.clone()),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } if name.value.eq_ignore_ascii_case(SESSION_PARTITION_ARGUMENT) && keys.is_empty() => {
                keys = partition_columns(e)?;
            }
            other => {
                return Err(SqlError::Window(format!(
                    "unexpected argument {other} of SESSION; expected {usage}"
                )));
            }
        }
    }
    let [relation, time, gap] = positional.as_slice() else {
        return Err(SqlError::Window(format!(
            "expected {usage}, got {} arguments",
            positional.len()
        )));
    };
    let relation = match relation {
        Expr::Identifier(ident) => normalize_name(&ObjectName::from(vec![ident.clone()])),
        Expr::CompoundIdentifier(idents) => normalize_name(&ObjectName::from(idents.clone())),
        other => {
            return Err(SqlError::Window(format!(
                "the first argument of {usage} must be a stream or view name, got {other}"
            )));
        }
    };
    if !is_streaming(&relation) {
        return Err(SqlError::Window(format!(
            "window functions apply to streams; '{relation}' is not a stream or a view over streams"
        )));
    }
    let time_column = match time_argument(time) {
        Some(WindowTime::Column(column)) => column,
        Some(WindowTime::Batch) => {
            return Err(SqlError::Unsupported(
                "SESSION windows need event time (a WATERMARK column), not processing time".into(),
            ));
        }
        None => {
            return Err(SqlError::Window(format!(
                "the time argument of {usage} must be a column or DESCRIPTOR(column), got {time}"
            )));
        }
    };
    Ok(SessionCall {
        table: format!("__quiver_session_{index}"),
        buffer_table: format!("__quiver_session_buffer_{index}"),
        alias: relation.clone(),
        relation,
        time_column,
        gap: gap.clone(),
        keys: keys
            .iter()
            .map(|k| Expr::Identifier(Ident::with_quote('"', k.clone())))
            .collect(),
        key_columns: keys,
    })
}

/// The columns of `PARTITION BY key` or `PARTITION BY (key1, key2)`.
fn partition_columns(expr: &Expr) -> Result<Vec<String>, SqlError> {
    let items: Vec<&Expr> = match expr {
        Expr::Tuple(items) => items.iter().collect(),
        Expr::Nested(inner) => vec![inner.as_ref()],
        other => vec![other],
    };
    items
        .into_iter()
        .map(|item| match item {
            Expr::Identifier(ident) => Ok(ident.value.clone()),
            // A column named like a niladic function (`user`).
            Expr::Function(f)
                if matches!(f.args, FunctionArguments::None) && f.name.0.len() == 1 =>
            {
                Ok(normalize_name(&f.name))
            }
            other => Err(SqlError::Window(format!(
                "SESSION ... PARTITION BY takes columns, got {other}: {TABLE_FUNCTION_USAGE}"
            ))),
        })
        .collect()
}

/// SQL that evaluates the session keys over the buffer of new rows: all
/// buffer columns, then key `i` as `__quiver_session_key_{i}`. `None` without
/// keys (one sequence of sessions over all rows).
pub fn session_keys_sql(call: &SessionCall) -> Option<String> {
    if call.keys.is_empty() {
        return None;
    }
    let alias = format!("\"{}\"", call.alias.replace('"', "\"\""));
    let keys: Vec<String> = call
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} AS __quiver_session_key_{i}"))
        .collect();
    Some(format!(
        "SELECT *, {} FROM \"{}\" AS {alias}",
        keys.join(", "),
        call.buffer_table.replace('"', "\"\"")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parser::{Statement, parse_script};
    use datafusion::sql::sqlparser::ast::SetExpr;

    #[test]
    fn session_group_windows_become_window_columns() {
        let sql = "SELECT B.bidder, count(*) AS n, SESSION_START(B.`dateTime`, INTERVAL '10' SECOND) AS s, \
                   SESSION_END(B.`dateTime`, INTERVAL '10' SECOND) AS e \
                   FROM bid B GROUP BY B.bidder, SESSION(B.`dateTime`, INTERVAL '10' SECOND)";
        let Statement::Query(mut q) = parse_script(sql).unwrap().remove(0).statement else {
            panic!()
        };
        let SetExpr::Select(select) = q.body.as_mut() else {
            panic!()
        };
        let call = rewrite_session_select(select, &|n| n == "bid", 0)
            .unwrap()
            .unwrap();
        assert_eq!(call.relation, "bid");
        assert_eq!(call.alias, "B");
        assert_eq!(call.time_column, "dateTime");
        assert_eq!(call.keys[0].to_string(), "B.bidder");
        let text = q.to_string();
        assert!(
            text.contains(
                "FROM __quiver_session_0 AS B GROUP BY B.bidder, B.window_start, B.window_end"
            ),
            "{text}"
        );
        assert!(
            text.contains("B.window_start AS s, B.window_end AS e"),
            "{text}"
        );
    }

    fn rewritten(sql: &str) -> (Result<super::super::rewrite::Rewritten, SqlError>, String) {
        let Statement::Query(mut q) = parse_script(sql).unwrap().remove(0).statement else {
            panic!()
        };
        let out = super::super::rewrite::rewrite(&mut q, &|n| n == "bid");
        (out, q.to_string())
    }

    #[test]
    fn flink_session_table_function_with_partition_by() {
        let (out, text) = rewritten(
            "SELECT bidder, count(*), window_start, window_end \
             FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND)) \
             GROUP BY bidder, window_start, window_end",
        );
        let out = out.unwrap();
        assert!(out.windows.is_empty() && out.inputs.is_empty());
        let call = &out.sessions[0];
        assert_eq!(call.relation, "bid");
        assert_eq!(call.time_column, "dateTime");
        assert_eq!(call.gap.to_string(), "INTERVAL '10' SECOND");
        assert_eq!(call.key_columns, vec!["bidder"]);
        assert!(
            text.contains("FROM __quiver_session_0 GROUP BY bidder, window_start"),
            "{text}"
        );
        let sql = session_keys_sql(call).unwrap();
        assert!(
            sql.contains("SELECT *, \"bidder\" AS __quiver_session_key_0 FROM"),
            "{sql}"
        );
    }

    #[test]
    fn short_session_table_function_with_and_without_keys() {
        let (out, text) = rewritten(
            "SELECT count(*) FROM SESSION(bid, ts, INTERVAL '3' SECOND) AS s GROUP BY s.window_start",
        );
        let out = out.unwrap();
        assert!(out.sessions[0].keys.is_empty());
        assert!(text.contains("FROM __quiver_session_0 AS s"), "{text}");
        assert!(session_keys_sql(&out.sessions[0]).is_none());
        let (out, _) = rewritten(
            "SELECT 1 FROM SESSION(bid PARTITION BY (bidder, user), ts, INTERVAL '3' SECOND)",
        );
        assert_eq!(out.unwrap().sessions[0].key_columns, vec!["bidder", "user"]);
    }

    #[test]
    fn bad_session_table_functions_are_explained() {
        let cases = [
            ("SESSION(bid, ts)", "expected SESSION(stream, time"),
            (
                "SESSION(bid PARTITION BY a, b, ts, INTERVAL '1' SECOND)",
                "got 4 arguments",
            ),
            (
                "SESSION(bid PARTITION BY a + 1, ts, INTERVAL '1' SECOND)",
                "PARTITION BY takes columns",
            ),
            (
                "SESSION(other, ts, INTERVAL '1' SECOND)",
                "'other' is not a stream",
            ),
            (
                "SESSION(bid, PROCTIME(), INTERVAL '1' SECOND)",
                "need event time",
            ),
            (
                "SESSION(bid, ts + 1, INTERVAL '1' SECOND)",
                "must be a column or DESCRIPTOR",
            ),
        ];
        for (call, message) in cases {
            let (out, _) = rewritten(&format!("SELECT * FROM {call}"));
            let err = out.unwrap_err().to_string();
            assert!(err.contains(message), "{call}: {err}");
        }
    }
}
