//! The time side of planning: which relation reads event time, whether a
//! window runs on processing or event time, its validated spec, and the
//! queries refused because over event time they would never finish.

use std::collections::BTreeSet;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::sql::SqlError;
use crate::sql::catalog::Catalog;
use crate::sql::rewrite::WindowCall;
use crate::sql::window_args::WindowTime;
use crate::window::WindowSpec;

use super::*;

/// `SELECT max(<expr>) FROM <stream>`, the query of a stream's watermark
/// (`stream` already quoted). The usual expression, a column shifted by a
/// constant interval (`ts - INTERVAL '4' SECOND`), is asked as
/// `max(ts) - INTERVAL '4' SECOND`: the same value, since a constant shift
/// keeps the order of timestamps (of months too), but one subtraction per
/// batch instead of one per row.
pub(super) fn watermark_max_sql(expr: &str, stream: &str) -> String {
    let parsed = Parser::new(&GenericDialect {})
        .try_with_sql(expr)
        .and_then(|mut parser| parser.parse_expr());
    if let Ok(ast::Expr::BinaryOp { left, op, right }) = &parsed
        && matches!(op, ast::BinaryOperator::Minus | ast::BinaryOperator::Plus)
        && matches!(
            **left,
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)
        )
        && matches!(**right, ast::Expr::Interval(_))
    {
        return format!("SELECT max({left}) {op} {right} FROM {stream}");
    }
    format!("SELECT max({expr}) FROM {stream}")
}

/// The first relation `relations` names that reads an event-time stream: the
/// relation as written (a stream or a view), the stream, and its event-time
/// column. For hints that show the user's own names.
pub(super) fn event_time_relation(
    catalog: Catalog<'_>,
    relations: &BTreeSet<String>,
) -> Option<(String, String, String)> {
    relations.iter().find_map(|relation| {
        catalog
            .base_streams(relation)
            .into_iter()
            .find_map(|stream| {
                let column = catalog.streams[&stream].watermark.as_ref()?.column.clone();
                Some((relation.clone(), stream, column))
            })
    })
}

/// `name` as an identifier in a hint: as is when it is a plain lower-case
/// identifier, else quoted with backticks (as Flink SQL and the hints' own
/// examples write `dateTime`).
pub(super) fn hint_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

/// Joining event-time streams without a window would, in Flink, keep state
/// forever; quiver refuses it (checked before planning, so the reason is
/// given even when the join itself would not plan).
pub(super) fn refuse_unbounded_join(
    stream_references: usize,
    catalog: Catalog<'_>,
    relations: &BTreeSet<String>,
) -> Result<(), SqlError> {
    match event_time_relation(catalog, relations) {
        Some((relation, stream, column)) if stream_references > 1 => {
            Err(SqlError::Unsupported(format!(
                "joining streams without a window is not supported over event time (stream '{stream}' has a \
                 WATERMARK): its state would grow forever. Join windows instead: window both sides, e.g. \
                 TABLE(TUMBLE(TABLE {}, DESCRIPTOR({}), INTERVAL '10' SECOND)), and join on window_start \
                 and window_end (Nexmark q8)",
                hint_ident(&relation),
                hint_ident(&column)
            )))
        }
        _ => Ok(()),
    }
}

/// A query over event-time streams that aggregates without a window would,
/// in Flink, update its result forever; quiver emits results per window, so
/// it refuses the query rather than silently computing per-batch results.
pub(super) fn refuse_unbounded_aggregates(
    main: &CompiledQuery,
    catalog: Catalog<'_>,
    relations: &BTreeSet<String>,
) -> Result<(), SqlError> {
    use datafusion::common::tree_node::TreeNode;
    let Some((relation, stream, column)) = event_time_relation(catalog, relations) else {
        return Ok(());
    };
    let aggregates = main.logical.exists(|plan| {
        Ok(matches!(
            plan,
            LogicalPlan::Aggregate(_) | LogicalPlan::Window(_) | LogicalPlan::Distinct(_)
        ))
    })?;
    if aggregates {
        return Err(SqlError::Unsupported(format!(
            "aggregating event-time stream '{stream}' (GROUP BY, DISTINCT or OVER) without a window is not \
             supported: the result would have to be updated forever. Aggregate per window instead, e.g. \
             FROM TABLE(TUMBLE(TABLE {}, DESCRIPTOR({}), INTERVAL '10' SECOND)) ... GROUP BY \
             window_start, window_end, ...; or declare the stream without a WATERMARK to aggregate each batch",
            hint_ident(&relation),
            hint_ident(&column)
        )));
    }
    Ok(())
}

/// The event-time column of a relation: its streams' WATERMARK column.
pub(super) fn event_time_column(catalog: Catalog<'_>, relation: &str) -> Result<String, SqlError> {
    let columns: BTreeSet<String> = catalog
        .base_streams(relation)
        .iter()
        .filter_map(|s| {
            catalog.streams[s]
                .watermark
                .as_ref()
                .map(|w| w.column.clone())
        })
        .collect();
    match columns.into_iter().collect::<Vec<_>>().as_slice() {
        [column] => Ok(column.clone()),
        _ => Err(SqlError::Unsupported(format!(
            "'{relation}' is joined with event-time windows outside a window, so its rows must carry \
             event time: declare a WATERMARK on its stream, or window it too"
        ))),
    }
}

/// The one window spec and time domain of a query's window calls, validated.
pub(super) async fn window_spec(
    calls: &[WindowCall],
    catalog: Catalog<'_>,
    tables: &SessionContext,
    interval_ms: i64,
) -> Result<(Option<WindowSpec>, Option<TimeDomain>), SqlError> {
    let mut spec: Option<WindowSpec> = None;
    let mut domain: Option<TimeDomain> = None;
    for call in calls {
        let this_domain = time_domain(&call.relation, &call.time, catalog)?;
        let size = interval_ms_of(tables, &call.size).await?;
        let slide = interval_ms_of(tables, &call.slide).await?;
        let this = match this_domain {
            TimeDomain::Processing => WindowSpec::new(call.kind, size, slide, interval_ms)?,
            TimeDomain::Event => WindowSpec::event_time(call.kind, size, slide)?,
        };
        if spec.is_some_and(|s| (s.size_ms, s.slide_ms) != (this.size_ms, this.slide_ms)) {
            return Err(SqlError::Unsupported(
                "all window functions in one query must have the same size and slide".into(),
            ));
        }
        if domain.is_some_and(|d| d != this_domain) {
            return Err(SqlError::Unsupported(
                "a query cannot mix processing-time and event-time windows".into(),
            ));
        }
        spec = Some(this);
        domain = Some(this_domain);
    }
    Ok((spec, domain))
}

/// Whether a window call windows by processing or event time.
pub(super) fn time_domain(
    relation: &str,
    time: &WindowTime,
    catalog: Catalog<'_>,
) -> Result<TimeDomain, SqlError> {
    let column = match time {
        WindowTime::Batch => return Ok(TimeDomain::Processing),
        WindowTime::Column(c) => c,
    };
    if catalog
        .view(relation)
        .is_some_and(|v| v.proctime_columns.contains(column))
    {
        return Ok(TimeDomain::Processing);
    }
    let streams = catalog.base_streams(relation);
    let mut missing = Vec::new();
    for stream in &streams {
        match &catalog.streams[stream].watermark {
            Some(w) if &w.column == column => {}
            Some(w) => {
                return Err(SqlError::Window(format!(
                    "windows over '{column}' need it to be the event-time column of stream '{stream}', \
                     whose WATERMARK is on '{}'",
                    w.column
                )));
            }
            None => missing.push(stream.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(SqlError::Window(format!(
            "windows over '{column}' need event time: declare WATERMARK FOR {column} AS {column} - INTERVAL '5' SECOND \
             on stream '{}', or window over processing time with _batch_time or PROCTIME()",
            missing.join("', '")
        )));
    }
    Ok(TimeDomain::Event)
}

/// Evaluates a constant INTERVAL expression to milliseconds with DataFusion.
pub(super) async fn interval_ms_of(
    ctx: &SessionContext,
    expr: &ast::Expr,
) -> Result<i64, SqlError> {
    let not_interval = |got: String| {
        SqlError::Window(format!(
            "expected a fixed INTERVAL such as INTERVAL '10' SECOND, got {got}"
        ))
    };
    let batches = ctx.sql(&format!("SELECT {expr}")).await?.collect().await?;
    let column = batches
        .first()
        .filter(|b| b.num_rows() == 1)
        .map(|b| b.column(0).clone());
    let value = match column {
        Some(column) => ScalarValue::try_from_array(&column, 0)?,
        None => return Err(not_interval(expr.to_string())),
    };
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Ok(i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Ok(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds))
        }
        ScalarValue::IntervalMonthDayNano(Some(_)) | ScalarValue::IntervalYearMonth(Some(_)) => {
            Err(not_interval(format!(
                "{expr} (months have no fixed length)"
            )))
        }
        _ => Err(not_interval(expr.to_string())),
    }
}

#[cfg(test)]
mod watermark_tests {
    use super::watermark_max_sql;

    #[test]
    fn a_column_shifted_by_an_interval_is_shifted_after_max() {
        assert_eq!(
            watermark_max_sql("`dateTime` - INTERVAL '4' SECOND", "bids"),
            "SELECT max(`dateTime`) - INTERVAL '4' SECOND FROM bids"
        );
        assert_eq!(
            watermark_max_sql("ts + INTERVAL '1' MONTH", "\"s\""),
            "SELECT max(ts) + INTERVAL '1' MONTH FROM \"s\""
        );
        // Anything else is evaluated per row, as written.
        for expr in [
            "ts",
            "ts - INTERVAL '1' SECOND * 2",
            "date_trunc('second', ts)",
        ] {
            assert_eq!(
                watermark_max_sql(expr, "s"),
                format!("SELECT max({expr}) FROM s")
            );
        }
    }
}
