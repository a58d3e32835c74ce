//! Incremental window aggregates. A `GROUP BY` over a window table, such as
//! Nexmark q5's `count(*) ... GROUP BY auction, window_start, window_end`,
//! does not need a window's raw rows: it is split into a *partial* aggregate,
//! run once per batch over each pane's new rows, and a *merge* that combines
//! the partials of a window's panes when the window closes (count → sum of
//! counts, avg → sum of sums / sum of counts). A row is aggregated once
//! however many windows cover it, and state holds one partial row per key
//! and pane instead of every row.
//!
//! The split is made on the optimized logical plan: the aggregate is
//! replaced by a merge over a table of partials stamped with the window's
//! bounds, projected to the aggregate's exact output columns, so the rest of
//! the plan (joins, `HAVING`, ordering) is untouched. An aggregate is split
//! only when every result is the same either way: its input reads one window
//! table through projections and filters that do not use `window_start` or
//! `window_end`; it groups by plain columns, the window bounds only as plain
//! columns; and its aggregates are `count`, `sum`, `min`, `max` or `avg`
//! without `DISTINCT`, `FILTER` or `ORDER BY`. Anything else keeps raw rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Projection, cast, col, lit,
};

use super::provider::BatchTable;
use crate::window::{WINDOW_END, WINDOW_START};

/// One window aggregate computed incrementally.
#[derive(Debug, Clone)]
pub struct PartialSplit {
    /// The window table (see `rewrite`) whose rows the partials aggregate.
    pub window_table: String,
    /// Aggregates the rows the window table holds (one pane's new rows)
    /// into one partial row per group.
    pub partial: LogicalPlan,
    /// Partials of a closing window's panes, stamped with its bounds in the
    /// last two columns; the main plan merges them.
    pub table: Arc<BatchTable>,
    /// Merges the partials `table` holds into one partial row per group,
    /// with the partial's own columns: a pane's partials from many batches
    /// become one batch once no more rows can arrive for it.
    pub compact: LogicalPlan,
}

/// Which bound of the window a column carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Start,
    End,
}

/// A column by qualifier and name (spans ignored).
type Key = (Option<TableReference>, String);

fn key(column: &Column) -> Key {
    (column.relation.clone(), column.name.clone())
}

/// How one aggregate is merged: which partial columns it produced.
enum Merge {
    /// `count`: sum of the partial counts, 0 when there are none.
    Count,
    /// `sum`, `min`, `max`: the same function over the partials.
    Same(fn(Expr) -> Expr),
    /// `avg`: sum of partial sums over sum of partial counts.
    Avg,
}

/// Splits every aggregate of `plan` over one of `window_tables` that can be
/// computed incrementally; returns the rewritten plan and the splits.
pub fn split_window_aggregates(
    plan: LogicalPlan,
    window_tables: &BTreeSet<String>,
) -> Result<(LogicalPlan, Vec<PartialSplit>)> {
    let mut scans: BTreeMap<String, usize> = BTreeMap::new();
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            *scans
                .entry(scan.table_name.table().to_string())
                .or_default() += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let mut splits = Vec::new();
    let rewritten = plan.transform_up(|node| {
        let LogicalPlan::Aggregate(aggregate) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(table) = window_scan(&aggregate.input) else {
            return Ok(Transformed::no(node));
        };
        if !window_tables.contains(&table) || scans.get(&table) != Some(&1) {
            return Ok(Transformed::no(node));
        }
        match split(aggregate, &table, splits.len())? {
            Some((merged, split)) => {
                splits.push(split);
                Ok(Transformed::yes(merged))
            }
            None => Ok(Transformed::no(node)),
        }
    })?;
    Ok((rewritten.data, splits))
}

/// The window table under a chain of projections, filters and aliases.
fn window_scan(plan: &LogicalPlan) -> Option<String> {
    match plan {
        LogicalPlan::TableScan(scan) if scan.filters.is_empty() && scan.fetch.is_none() => {
            Some(scan.table_name.table().to_string())
        }
        LogicalPlan::Projection(p) => window_scan(&p.input),
        LogicalPlan::Filter(f) => window_scan(&f.input),
        LogicalPlan::SubqueryAlias(a) => window_scan(&a.input),
        _ => None,
    }
}

/// The columns of `plan`'s output that carry the window bounds unchanged,
/// or `None` when some expression computes with a bound (then the result
/// depends on the rows being stamped with the window's bounds, not a pane's).
fn window_columns(plan: &LogicalPlan) -> Option<BTreeMap<Key, Bound>> {
    let bounds_in = |expr: &Expr, bounds: &BTreeMap<Key, Bound>| {
        expr.column_refs()
            .iter()
            .any(|c| bounds.contains_key(&key(c)))
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let relation = Some(scan.table_name.clone());
            Some(BTreeMap::from([
                ((relation.clone(), WINDOW_START.to_string()), Bound::Start),
                ((relation, WINDOW_END.to_string()), Bound::End),
            ]))
        }
        LogicalPlan::Filter(filter) => {
            let bounds = window_columns(&filter.input)?;
            (!bounds_in(&filter.predicate, &bounds)).then_some(bounds)
        }
        LogicalPlan::Projection(projection) => {
            let bounds = window_columns(&projection.input)?;
            let mut out = BTreeMap::new();
            for (i, expr) in projection.expr.iter().enumerate() {
                match unaliased(expr) {
                    Expr::Column(c) if bounds.contains_key(&key(c)) => {
                        let (qualifier, field) = projection.schema.qualified_field(i);
                        out.insert((qualifier.cloned(), field.name().clone()), bounds[&key(c)]);
                    }
                    other if bounds_in(other, &bounds) => return None,
                    _ => {}
                }
            }
            Some(out)
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let bounds = window_columns(&alias.input)?;
            let input = alias.input.schema();
            let mut out = BTreeMap::new();
            for i in 0..input.fields().len() {
                let (qualifier, field) = input.qualified_field(i);
                if let Some(bound) = bounds.get(&(qualifier.cloned(), field.name().clone())) {
                    let (qualifier, field) = alias.schema.qualified_field(i);
                    out.insert((qualifier.cloned(), field.name().clone()), *bound);
                }
            }
            Some(out)
        }
        _ => None,
    }
}

fn unaliased(mut expr: &Expr) -> &Expr {
    while let Expr::Alias(alias) = expr {
        expr = &alias.expr;
    }
    expr
}

/// Splits one aggregate over window table `table`, or `None` when it
/// cannot be computed from partials.
fn split(
    aggregate: &Aggregate,
    table: &str,
    index: usize,
) -> Result<Option<(LogicalPlan, PartialSplit)>> {
    let Some(bounds) = window_columns(&aggregate.input) else {
        return Ok(None);
    };
    let uses_bounds = |expr: &Expr| {
        expr.column_refs()
            .iter()
            .any(|c| bounds.contains_key(&key(c)))
    };
    // Group keys: plain window bounds, or expressions without them.
    let mut keys = Vec::new();
    let mut partial_groups = Vec::new();
    for expr in &aggregate.group_expr {
        match unaliased(expr) {
            Expr::Column(c) if bounds.contains_key(&key(c)) => {
                keys.push(Err(bounds[&key(c)]));
            }
            Expr::GroupingSet(_) => return Ok(None),
            other if uses_bounds(other) => return Ok(None),
            other => {
                let name = format!("__k{}", partial_groups.len());
                keys.push(Ok(name.clone()));
                partial_groups.push(other.clone().alias(name));
            }
        }
    }
    // Aggregates: decomposable functions over expressions without bounds.
    let mut merges = Vec::new();
    let mut partial_aggregates = Vec::new();
    for expr in &aggregate.aggr_expr {
        let Expr::AggregateFunction(AggregateFunction { func, params }) = unaliased(expr) else {
            return Ok(None);
        };
        if params.distinct
            || params.filter.is_some()
            || !params.order_by.is_empty()
            || params.args.iter().any(&uses_bounds)
        {
            return Ok(None);
        }
        let name = format!("__a{}", merges.len());
        let function = unaliased(expr).clone();
        let merge = match func.name() {
            "count" => Merge::Count,
            "sum" => Merge::Same(sum),
            "min" => Merge::Same(min),
            "max" => Merge::Same(max),
            "avg" => {
                let [arg] = params.args.as_slice() else {
                    return Ok(None);
                };
                let float_result = aggregate
                    .schema
                    .field(aggregate.group_expr.len() + merges.len())
                    .data_type()
                    == &DataType::Float64;
                if !float_result {
                    return Ok(None);
                }
                let as_float = cast(arg.clone(), DataType::Float64);
                partial_aggregates.push(sum(as_float).alias(format!("{name}s")));
                partial_aggregates.push(
                    datafusion::functions_aggregate::expr_fn::count(arg.clone())
                        .alias(format!("{name}c")),
                );
                merges.push(Merge::Avg);
                continue;
            }
            _ => return Ok(None),
        };
        partial_aggregates.push(function.alias(name));
        merges.push(merge);
    }
    let partial = LogicalPlan::Aggregate(Aggregate::try_new(
        aggregate.input.clone(),
        partial_groups,
        partial_aggregates,
    )?);

    // The table of partials: the partial's columns, then the window bounds.
    let window_type =
        DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None);
    let mut fields: Vec<Field> = partial
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("__window_start", window_type.clone(), false));
    fields.push(Field::new("__window_end", window_type, false));
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let table_name = format!("__quiver_partial_{index}");
    let batch_table = Arc::new(BatchTable::new(schema));
    let scan = LogicalPlanBuilder::scan(
        table_name.as_str(),
        provider_as_source(batch_table.clone()),
        None,
    )?
    .build()?;

    // The merge: group by the same keys, combine the partials, then project
    // to the aggregate's own output columns (names, qualifiers and types).
    let column = |name: &str| col(Column::new(Some(table_name.as_str()), name));
    let merge_groups: Vec<Expr> = keys
        .iter()
        .map(|k| match k {
            Ok(name) => column(name),
            Err(Bound::Start) => column("__window_start"),
            Err(Bound::End) => column("__window_end"),
        })
        .collect();
    let mut merge_aggregates = Vec::new();
    for (i, merge) in merges.iter().enumerate() {
        let name = format!("__a{i}");
        match merge {
            Merge::Count => merge_aggregates.push(sum(column(&name)).alias(format!("__m{i}"))),
            Merge::Same(f) => merge_aggregates.push(f(column(&name)).alias(format!("__m{i}"))),
            Merge::Avg => {
                merge_aggregates.push(sum(column(&format!("{name}s"))).alias(format!("__m{i}s")));
                merge_aggregates.push(sum(column(&format!("{name}c"))).alias(format!("__m{i}c")));
            }
        }
    }
    let compact = compact_plan(&scan, &partial, &keys, &merges, &column)?;
    let merged = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::new(scan),
        merge_groups,
        merge_aggregates,
    )?);
    let mut outputs = Vec::new();
    for i in 0..keys.len() {
        let (qualifier, field) = merged.schema().qualified_field(i);
        outputs.push((
            col(Column::new(qualifier.cloned(), field.name())),
            aggregate.schema.qualified_field(i),
        ));
    }
    for (i, merge) in merges.iter().enumerate() {
        let value = match merge {
            Merge::Count => coalesce(vec![col(format!("__m{i}")), lit(0i64)]),
            Merge::Same(_) => col(format!("__m{i}")),
            Merge::Avg => {
                col(format!("__m{i}s")) / cast(col(format!("__m{i}c")), DataType::Float64)
            }
        };
        outputs.push((value, aggregate.schema.qualified_field(keys.len() + i)));
    }
    let mut exprs = Vec::new();
    for (value, (qualifier, field)) in outputs {
        let value = if value.get_type(merged.schema())? == *field.data_type() {
            value
        } else {
            cast(value, field.data_type().clone())
        };
        exprs.push(value.alias_qualified(qualifier.cloned(), field.name()));
    }
    let projected = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(merged))?);
    Ok(Some((
        projected,
        PartialSplit {
            window_table: table.to_string(),
            partial,
            table: batch_table,
            compact,
        },
    )))
}

/// The plan that merges partials into partials (see [`PartialSplit::compact`]):
/// the same merge functions as at window close, cast back to the partial's
/// column types, without the final touches (count's 0, avg's division).
fn compact_plan(
    scan: &LogicalPlan,
    partial: &LogicalPlan,
    keys: &[std::result::Result<String, Bound>],
    merges: &[Merge],
    column: &dyn Fn(&str) -> Expr,
) -> Result<LogicalPlan> {
    let groups: Vec<Expr> = keys
        .iter()
        .filter_map(|k| k.as_ref().ok())
        .map(|name| column(name))
        .collect();
    let mut aggregates = Vec::new();
    for (i, merge) in merges.iter().enumerate() {
        let name = format!("__a{i}");
        match merge {
            Merge::Count => aggregates.push(sum(column(&name)).alias(&name)),
            Merge::Same(f) => aggregates.push(f(column(&name)).alias(&name)),
            Merge::Avg => {
                for part in [format!("{name}s"), format!("{name}c")] {
                    aggregates.push(sum(column(&part)).alias(&part));
                }
            }
        }
    }
    let merged = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::new(scan.clone()),
        groups,
        aggregates,
    )?);
    let mut exprs = Vec::new();
    for field in partial.schema().fields() {
        let value = col(Column::new_unqualified(field.name()));
        let value = if value.get_type(merged.schema())? == *field.data_type() {
            value
        } else {
            cast(value, field.data_type().clone())
        };
        exprs.push(value.alias(field.name()));
    }
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(merged),
    )?))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// The optimized plan of `sql` over a window table `w` (k, v, window bounds).
    async fn plan(sql: &str) -> LogicalPlan {
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            Field::new(WINDOW_START, ms.clone(), false),
            Field::new(WINDOW_END, ms, false),
        ]));
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema, vec![vec![]]).unwrap();
        ctx.register_table("w", Arc::new(table)).unwrap();
        let df = ctx.sql(sql).await.unwrap();
        ctx.state().optimize(df.logical_plan()).unwrap()
    }

    async fn splits(sql: &str) -> usize {
        let tables = BTreeSet::from(["w".to_string()]);
        let original = plan(sql).await;
        let (merged, splits) = split_window_aggregates(original.clone(), &tables).unwrap();
        if !splits.is_empty() {
            assert_eq!(
                merged.schema().as_arrow(),
                original.schema().as_arrow(),
                "the merge must produce the aggregate's columns"
            );
        }
        splits.len()
    }

    #[tokio::test]
    async fn decomposable_aggregates_are_split() {
        for sql in [
            "SELECT k, count(*), count(v), sum(v), min(v), max(v), avg(v), window_start, window_end \
             FROM w GROUP BY k, window_start, window_end",
            "SELECT count(*) AS n FROM w",
            "SELECT upper(k), sum(v) FROM w WHERE v > 0 GROUP BY upper(k), window_end HAVING sum(v) > 3",
            "SELECT ws, n FROM (SELECT window_start AS ws, count(*) AS n FROM w GROUP BY window_start) t",
        ] {
            assert_eq!(splits(sql).await, 1, "{sql}");
        }
    }

    #[tokio::test]
    async fn aggregates_that_use_window_bounds_or_do_not_decompose_are_kept() {
        for sql in [
            "SELECT k, count(*) FROM w WHERE window_start > TIMESTAMP '2026-01-01 00:00:00' GROUP BY k",
            "SELECT date_part('second', window_start), count(*) FROM w GROUP BY date_part('second', window_start)",
            "SELECT k, max(window_end) FROM w GROUP BY k",
            "SELECT k, array_agg(v) FROM w GROUP BY k",
            "SELECT k, count(*) FROM w GROUP BY ROLLUP (k)",
        ] {
            assert_eq!(splits(sql).await, 0, "{sql}");
        }
    }
}
