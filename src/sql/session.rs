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

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, GroupByExpr, Ident, Select, TableAlias, TableFactor,
    visit_expressions_mut,
};
use std::ops::ControlFlow;

use super::SqlError;
use super::parser::normalize_name;
use super::rewrite::table_factor;
use crate::window::{WINDOW_END, WINDOW_START};

/// A `GROUP BY ..., SESSION(time, gap)` found in a query.
#[derive(Debug, Clone)]
pub struct SessionCall {
    /// Table of closed sessions' rows that replaces the relation.
    pub table: String,
    /// Table holding the rows of open sessions, read by the session computation.
    pub buffer_table: String,
    /// The grouped relation (a stream or a view over streams).
    pub relation: String,
    /// Name the query refers to the relation by.
    pub alias: String,
    /// The time column.
    pub time_column: String,
    /// The time expression as written (`B.dateTime`).
    pub time_expr: Expr,
    /// The gap (an INTERVAL).
    pub gap: Expr,
    /// The other GROUP BY expressions: a session is per value of these.
    pub keys: Vec<Expr>,
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
        time_expr: time_expr.clone(),
        gap: gap.clone(),
        keys: exprs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != position)
            .map(|(_, e)| e.clone())
            .collect(),
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

/// SQL that assigns every row of the open-session buffer to its session:
/// all buffer columns, then `window_start` (first row) and `window_end`
/// (last row + gap) of its session.
pub fn sessions_sql(call: &SessionCall, gap_ms: i64) -> String {
    let alias = format!("\"{}\"", call.alias.replace('"', "\"\""));
    let t = format!("CAST({} AS BIGINT)", call.time_expr);
    let keys: Vec<String> = call.keys.iter().map(ToString::to_string).collect();
    let partition = if keys.is_empty() {
        String::new()
    } else {
        format!("PARTITION BY {}", keys.join(", "))
    };
    let session_partition = if keys.is_empty() {
        "PARTITION BY __quiver_sid".to_string()
    } else {
        format!("PARTITION BY {}, __quiver_sid", keys.join(", "))
    };
    format!(
        "SELECT *, to_timestamp_millis(min({t}) OVER ({session_partition})) AS {WINDOW_START}, \
                to_timestamp_millis(max({t}) OVER ({session_partition}) + {gap_ms}) AS {WINDOW_END} \
         FROM (SELECT *, sum(__quiver_new) OVER ({partition} ORDER BY {t} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __quiver_sid \
               FROM (SELECT *, CASE WHEN {t} - lag({t}) OVER ({partition} ORDER BY {t}) < {gap_ms} THEN 0 ELSE 1 END AS __quiver_new \
                     FROM \"{buffer}\" AS {alias}) AS {alias}) AS {alias}",
        buffer = call.buffer_table
    )
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
}
