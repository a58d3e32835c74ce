//! Flink's group-window form of TUMBLE and HOP windows:
//!
//! ```sql
//! SELECT k, TUMBLE_START(ts, INTERVAL '1' HOUR), count(*)
//! FROM s GROUP BY k, TUMBLE(ts, INTERVAL '1' HOUR)
//! ```
//!
//! is rewritten, before anything else looks at the query, into the window
//! table function form quiver runs:
//!
//! ```sql
//! SELECT k, s.window_start AS window_start, count(*)
//! FROM TUMBLE(s, ts, INTERVAL '1' HOUR) AS s GROUP BY k, s.window_start, s.window_end
//! ```
//!
//! so both forms share one implementation (panes, partial aggregates, event
//! and processing time). `HOP(time, slide, size)` takes Flink's group-window
//! argument order, which is also the table function's. The auxiliary
//! functions `*_START`, `*_END`, `*_ROWTIME` (the window end minus 1 ms, as
//! Flink's rowtime attribute) and `*_PROCTIME` (the processing time of the
//! batch the result is computed in) must repeat the GROUP BY window's
//! arguments.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, ObjectName,
    ObjectNamePart, Select, SelectItem, TableAlias, TableFactor, TableFunctionArgs,
    visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::SqlError;
use super::parser::normalize_name;
use super::window_args::table_factor;
use crate::window::{WINDOW_END, WINDOW_START};

/// A group window of a GROUP BY: its function and its arguments after the
/// time attribute (the size, or the slide and the size).
struct GroupWindow {
    /// `TUMBLE` or `HOP`, upper case.
    function: &'static str,
    /// The time attribute as written.
    time: Expr,
    /// The intervals.
    intervals: Vec<Expr>,
}

impl GroupWindow {
    fn usage(function: &str) -> &'static str {
        if function == "HOP" {
            "GROUP BY key, HOP(time, INTERVAL '5' MINUTE, INTERVAL '1' HOUR) (slide, then size)"
        } else {
            "GROUP BY key, TUMBLE(time, INTERVAL '1' HOUR)"
        }
    }

    /// The window's text with the time unqualified, for comparisons and messages.
    fn text(function: &str, time: &Expr, intervals: &[Expr]) -> String {
        let mut args = vec![unqualified(time).to_string()];
        args.extend(intervals.iter().map(ToString::to_string));
        format!("{function}({})", args.join(", "))
    }
}

/// The window function a GROUP BY expression calls, if it is TUMBLE or HOP.
fn window_function(expr: &Expr) -> Option<&'static str> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let name = normalize_name(&f.name);
    ["TUMBLE", "HOP"]
        .into_iter()
        .find(|w| name.eq_ignore_ascii_case(w))
}

/// An auxiliary function call (`TUMBLE_START(...)`): its window function
/// and what it returns (`START`, `END`, `ROWTIME` or `PROCTIME`).
fn auxiliary(expr: &Expr) -> Option<(&'static str, &'static str)> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let name = normalize_name(&f.name).to_ascii_uppercase();
    let (function, part) = name.split_once('_')?;
    let function = ["TUMBLE", "HOP"].into_iter().find(|w| *w == function)?;
    let part = ["START", "END", "ROWTIME", "PROCTIME"]
        .into_iter()
        .find(|p| *p == part)?;
    Some((function, part))
}

fn arguments(expr: &Expr) -> Vec<Expr> {
    let Expr::Function(f) = expr else {
        return Vec::new();
    };
    let FunctionArguments::List(list) = &f.args else {
        return Vec::new();
    };
    list.args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// `B.ts` as `ts`: the window table function reads a column of its relation.
fn unqualified(time: &Expr) -> Expr {
    match time {
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map_or_else(|| time.clone(), |last| Expr::Identifier(last.clone())),
        other => other.clone(),
    }
}

fn column(alias: &Ident, name: &str) -> Expr {
    Expr::CompoundIdentifier(vec![alias.clone(), Ident::new(name)])
}

/// Rewrites `select` if its GROUP BY has a TUMBLE or HOP group window (see
/// the module documentation); refuses auxiliary functions without one.
pub fn rewrite_group_window(
    select: &mut Select,
    is_streaming: &dyn Fn(&str) -> bool,
) -> Result<(), SqlError> {
    let windows: Vec<usize> = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs
            .iter()
            .enumerate()
            .filter(|(_, e)| window_function(e).is_some())
            .map(|(i, _)| i)
            .collect(),
        GroupByExpr::All(_) => Vec::new(),
    };
    let Some(&position) = windows.first() else {
        return refuse_stray_auxiliaries(select);
    };
    if windows.len() > 1 {
        return Err(SqlError::Window(
            "a GROUP BY can have only one TUMBLE or HOP group window".into(),
        ));
    }
    let GroupByExpr::Expressions(exprs, _) = &mut select.group_by else {
        return Ok(());
    };
    let function = window_function(&exprs[position]).unwrap_or("TUMBLE");
    let usage = GroupWindow::usage(function);
    let args = arguments(&exprs[position]);
    let expected = if function == "HOP" { 3 } else { 2 };
    if args.len() != expected {
        return Err(SqlError::Window(format!(
            "{function} in GROUP BY takes the time column and {}: {usage}",
            if function == "HOP" {
                "the slide and the size"
            } else {
                "the size"
            }
        )));
    }
    let window = GroupWindow {
        function,
        time: args[0].clone(),
        intervals: args[1..].to_vec(),
    };
    if !matches!(
        window.time,
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Function(_)
    ) {
        return Err(SqlError::Window(format!(
            "the time argument of {function} must be a column, _batch_time or PROCTIME(), got {}: {usage}",
            window.time
        )));
    }
    let single = select.from.len() == 1 && select.from[0].joins.is_empty();
    let (name, alias) = match select.from.first().map(|t| &t.relation) {
        Some(TableFactor::Table {
            name,
            args: None,
            alias,
            ..
        }) if single && is_streaming(&normalize_name(name)) => {
            let alias = alias.as_ref().map_or_else(
                || {
                    name.0
                        .last()
                        .and_then(ObjectNamePart::as_ident)
                        .cloned()
                        .unwrap_or_else(|| Ident::new(normalize_name(name)))
                },
                |a| a.name.clone(),
            );
            (name.clone(), alias)
        }
        Some(TableFactor::Table { args: Some(_), .. } | TableFactor::TableFunction { .. })
            if single =>
        {
            return Err(SqlError::Window(format!(
                "GROUP BY {function}(...) windows a stream, not a table function's rows: \
                 write either FROM stream {usage}, or the window table function with \
                 GROUP BY window_start, window_end"
            )));
        }
        Some(TableFactor::Table {
            name, args: None, ..
        }) if single => {
            return Err(SqlError::Window(format!(
                "GROUP BY {function}(...) windows a stream; '{}' is not a stream or a view over streams",
                normalize_name(name)
            )));
        }
        _ => {
            return Err(SqlError::Unsupported(format!(
                "GROUP BY {function}(...) windows the rows of one stream or view, not a join or a subquery: \
                 define the join or subquery as a view (CREATE VIEW v AS SELECT ...) and group the view, \
                 SELECT ... FROM v {usage}"
            )));
        }
    };
    exprs.splice(
        position..=position,
        [column(&alias, WINDOW_START), column(&alias, WINDOW_END)],
    );
    let relation = match name.0.as_slice() {
        [one] => Expr::Identifier(one.as_ident().cloned().unwrap_or_else(|| Ident::new(""))),
        parts => {
            Expr::CompoundIdentifier(parts.iter().filter_map(|p| p.as_ident().cloned()).collect())
        }
    };
    let mut table_args = vec![relation, unqualified(&window.time)];
    table_args.extend(window.intervals.iter().cloned());
    let mut factor = table_factor(
        function,
        Some(TableAlias {
            explicit: true,
            name: alias.clone(),
            columns: vec![],
            at: None,
        }),
    );
    if let TableFactor::Table { name, args, .. } = &mut factor {
        *name = ObjectName::from(vec![Ident::new(function)]);
        *args = Some(TableFunctionArgs {
            args: table_args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            settings: None,
        });
    }
    select.from[0].relation = factor;
    name_auxiliaries(select);
    let expected = GroupWindow::text(window.function, &window.time, &window.intervals);
    let rowtime = Parser::new(&GenericDialect {})
        .try_with_sql("INTERVAL '1' MILLISECOND")
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::Parse(e.to_string()))?;
    let mut replace = |expr: &mut Expr| {
        let Some((function, part)) = auxiliary(expr) else {
            return ControlFlow::Continue(());
        };
        let args = arguments(expr);
        let text = match args.split_first() {
            Some((time, intervals)) => GroupWindow::text(function, time, intervals),
            None => format!("{function}()"),
        };
        if text != expected {
            return ControlFlow::Break(SqlError::Window(format!(
                "{function}_{part} must name the GROUP BY window: it reads {text} but the query groups by {expected}; \
                 write {}_{part}({})",
                window.function,
                expected
                    .trim_start_matches(window.function)
                    .trim_start_matches('(')
                    .trim_end_matches(')')
            )));
        }
        *expr = match part {
            "START" => column(&alias, WINDOW_START),
            "END" => column(&alias, WINDOW_END),
            "ROWTIME" => Expr::BinaryOp {
                left: Box::new(column(&alias, WINDOW_END)),
                op: datafusion::sql::sqlparser::ast::BinaryOperator::Minus,
                right: Box::new(rowtime.clone()),
            },
            _ => Expr::Function(datafusion::sql::sqlparser::ast::Function {
                name: ObjectName::from(vec![Ident::new("PROCTIME")]),
                uses_odbc_syntax: false,
                parameters: FunctionArguments::None,
                args: FunctionArguments::List(
                    datafusion::sql::sqlparser::ast::FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![],
                        clauses: vec![],
                    },
                ),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            }),
        };
        ControlFlow::Continue(())
    };
    if let ControlFlow::Break(e) = visit_expressions_mut(&mut select.projection, &mut replace) {
        return Err(e);
    }
    if let ControlFlow::Break(e) = visit_expressions_mut(&mut select.having, &mut replace) {
        return Err(e);
    }
    Ok(())
}

/// Names unaliased auxiliary calls in the projection `window_start`,
/// `window_end`, `window_time` (the rowtime, as Flink's table functions
/// call it) and `window_proctime`.
fn name_auxiliaries(select: &mut Select) {
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(expr) = item
            && let Some((_, part)) = auxiliary(expr)
        {
            let alias = match part {
                "START" => WINDOW_START,
                "END" => WINDOW_END,
                "ROWTIME" => "window_time",
                _ => "window_proctime",
            };
            *item = SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: Ident::new(alias),
            };
        }
    }
}

/// `TUMBLE_START(...)` without `GROUP BY ..., TUMBLE(...)`: explained here
/// rather than as an unknown function.
fn refuse_stray_auxiliaries(select: &mut Select) -> Result<(), SqlError> {
    let mut check = |expr: &mut Expr| match auxiliary(expr) {
        Some((function, part)) => ControlFlow::Break(SqlError::Window(format!(
            "{function}_{part} needs a group window: {}",
            GroupWindow::usage(function)
        ))),
        None => ControlFlow::Continue(()),
    };
    if let ControlFlow::Break(e) = visit_expressions_mut(&mut select.projection, &mut check) {
        return Err(e);
    }
    if let ControlFlow::Break(e) = visit_expressions_mut(&mut select.having, &mut check) {
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::rewrite::rewrite;
    use crate::sql::parser::{Statement, parse_script};

    fn rewritten(sql: &str) -> Result<String, String> {
        let Statement::Query(mut q) = parse_script(sql).unwrap().remove(0).statement else {
            panic!("not a query")
        };
        rewrite(&mut q, &|n| n == "s")
            .map(|_| q.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn tumble_group_window_becomes_the_table_function() {
        let text = rewritten(
            "SELECT k, TUMBLE_START(ts, INTERVAL '1' HOUR), TUMBLE_END(s.ts, INTERVAL '1' HOUR) AS e, \
             TUMBLE_ROWTIME(ts, INTERVAL '1' HOUR) AS r, count(*) FROM s WHERE v > 1 \
             GROUP BY k, TUMBLE(ts, INTERVAL '1' HOUR) HAVING TUMBLE_END(ts, INTERVAL '1' HOUR) > now()",
        )
        .unwrap();
        assert_eq!(
            text,
            "SELECT k, s.window_start AS window_start, s.window_end AS e, \
             s.window_end - INTERVAL '1' MILLISECOND AS r, count(*) FROM __quiver_window_0 AS s \
             WHERE v > 1 GROUP BY k, s.window_start, s.window_end HAVING s.window_end > now()"
        );
    }

    #[test]
    fn hop_group_window_keeps_slide_then_size() {
        let text = rewritten(
            "SELECT HOP_END(B.ts, INTERVAL '1' SECOND, INTERVAL '4' SECOND) FROM s AS B \
             GROUP BY HOP(B.ts, INTERVAL '1' SECOND, INTERVAL '4' SECOND)",
        )
        .unwrap();
        assert!(text.contains("FROM __quiver_window_0 AS B"), "{text}");
    }

    #[test]
    fn mismatched_or_misplaced_group_windows_are_explained() {
        let cases = [
            (
                "SELECT TUMBLE_END(ts, INTERVAL '2' HOUR) FROM s GROUP BY TUMBLE(ts, INTERVAL '1' HOUR)",
                "it reads TUMBLE(ts, INTERVAL '2' HOUR) but the query groups by TUMBLE(ts, INTERVAL '1' HOUR)",
            ),
            (
                "SELECT HOP_START(ts, INTERVAL '1' HOUR, INTERVAL '2' HOUR) FROM s GROUP BY TUMBLE(ts, INTERVAL '1' HOUR)",
                "write TUMBLE_START(ts, INTERVAL '1' HOUR)",
            ),
            (
                "SELECT TUMBLE_START(ts, INTERVAL '1' HOUR) FROM s",
                "TUMBLE_START needs a group window",
            ),
            (
                "SELECT 1 FROM s GROUP BY HOP(ts, INTERVAL '1' HOUR)",
                "HOP in GROUP BY takes the time column and the slide and the size",
            ),
            (
                "SELECT 1 FROM s JOIN s AS t ON true GROUP BY TUMBLE(s.ts, INTERVAL '1' HOUR)",
                "not a join or a subquery",
            ),
            (
                "SELECT 1 FROM (SELECT * FROM s) AS x GROUP BY TUMBLE(x.ts, INTERVAL '1' HOUR)",
                "not a join or a subquery",
            ),
            (
                "SELECT 1 FROM dim GROUP BY TUMBLE(ts, INTERVAL '1' HOUR)",
                "'dim' is not a stream",
            ),
            (
                "SELECT 1 FROM TUMBLE(s, ts, INTERVAL '1' HOUR) GROUP BY TUMBLE(ts, INTERVAL '1' HOUR)",
                "not a table function's rows",
            ),
        ];
        for (sql, expected) in cases {
            let err = rewritten(sql).unwrap_err();
            assert!(err.contains(expected), "{sql}: {err}");
        }
    }
}
