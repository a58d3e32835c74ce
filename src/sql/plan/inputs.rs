//! The tables a plan reads: per-batch tables for the streams (with computed
//! columns on top) and the kept inputs of windows.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::TableReference;
use datafusion::execution::SessionState;
use datafusion::prelude::SessionContext;

use crate::batch::{BATCH_TIME_COLUMN, with_batch_time};
use crate::source::StreamDef;
use crate::sql::SqlError;
use crate::sql::catalog::Catalog;
use crate::sql::provider::BatchTable;
use crate::window::{LatePolicy, WINDOW_END, WINDOW_START, with_window_columns};

use super::*;

/// `name` as a quoted SQL identifier.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `SELECT` of a stream's rows as queries see them — its columns, then its
/// computed columns — from `raw`, a table of its decoded rows.
/// A computed column named like a decoded one (`ts AS to_timestamp(ts)`,
/// what the WATERMARK error suggests for a string `ts`) replaces it in place.
pub(crate) fn with_computed_columns(def: &StreamDef, raw: &str) -> String {
    let computed = |name: &str| def.computed.iter().find(|(column, _)| column == name);
    let mut columns: Vec<String> = with_batch_time(&def.schema)
        .fields()
        .iter()
        .map(|f| match computed(f.name()) {
            Some((column, expr)) => format!("{expr} AS {}", quote(column)),
            None => quote(f.name()),
        })
        .collect();
    for (column, expr) in &def.computed {
        if def.schema.field_with_name(column).is_err() {
            columns.push(format!("{expr} AS {}", quote(column)));
        }
    }
    format!("SELECT {} FROM {}", columns.join(", "), quote(raw))
}

/// Registers a per-batch table for every stream under `relations`, computed
/// columns as a view on top, and the views over streams they need.
pub(super) async fn register_streams(
    ctx: &SessionContext,
    catalog: Catalog<'_>,
    relations: &BTreeSet<String>,
) -> Result<Vec<(StreamDef, Arc<BatchTable>)>, SqlError> {
    let streams: BTreeSet<String> = relations
        .iter()
        .flat_map(|r| catalog.base_streams(r))
        .collect();
    let mut out = Vec::new();
    for name in streams {
        let def = catalog.streams[&name].clone();
        let table = Arc::new(BatchTable::new(with_batch_time(&def.schema)));
        if def.computed.is_empty() {
            ctx.register_table(TableReference::bare(name.as_str()), table.clone())?;
        } else {
            let raw = format!("__quiver_raw_{name}");
            ctx.register_table(TableReference::bare(raw.as_str()), table.clone())?;
            let sql = format!(
                "CREATE VIEW {} AS {}",
                quote(&name),
                with_computed_columns(&def, &raw)
            );
            ctx.sql(&sql).await.map_err(|e| {
                SqlError::Unsupported(format!("computed columns of stream '{name}': {e}"))
            })?;
        }
        out.push((def, table));
    }
    for view in catalog.views_needed(relations) {
        ctx.sql(&format!(
            "CREATE VIEW {} AS {}",
            quote(&view.name),
            view.sql
        ))
        .await
        .map_err(|e| SqlError::Unsupported(format!("view '{}': {e}", view.name)))?;
    }
    Ok(out)
}

/// The feeder and table of a relation whose rows are kept between batches:
/// a window's input when `window_table` names the window's table. Only the
/// `columns` the query reads (plus the time column) are kept, when known.
pub(super) async fn kept_input(
    state: &SessionState,
    relation: &str,
    time_column: &str,
    window_table: Option<&str>,
    columns: Option<&Vec<String>>,
) -> Result<KeptInput, SqlError> {
    let select = match columns {
        Some(columns) => {
            let mut list: Vec<String> = columns
                .iter()
                .filter(|c| *c != WINDOW_START && *c != WINDOW_END && *c != time_column)
                .map(|c| quote(c))
                .collect();
            list.push(quote(time_column));
            list.join(", ")
        }
        None => "*".to_string(),
    };
    let feeder =
        CompiledQuery::plan_sql(state, &format!("SELECT {select} FROM {}", quote(relation)))
            .await?;
    let Ok(time_index) = feeder.schema.index_of(time_column) else {
        return Err(SqlError::Window(format!(
            "'{relation}' has no column '{time_column}' to window by; its columns are: {}",
            column_names(&feeder.schema)
        )));
    };
    let time_type = feeder.schema.field(time_index).data_type();
    if !matches!(time_type, DataType::Timestamp(_, _)) {
        return Err(SqlError::Window(format!(
            "window time column '{time_column}' of '{relation}' must be a TIMESTAMP, got {time_type}"
        )));
    }
    let schema = if window_table.is_some() {
        with_window_columns(&feeder.schema)
    } else {
        feeder.schema.clone()
    };
    Ok(KeptInput {
        relation: relation.to_string(),
        feeder,
        time_index,
        table: Arc::new(BatchTable::new(schema)),
        table_name: window_table.unwrap_or_default().to_string(),
        keeps_rows: true,
    })
}

/// The column names of `schema`, comma-separated, for messages.
pub(crate) fn column_names(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an event-time query selects from each of its streams with a
/// WATERMARK to find its late rows, when one of them has `late_policy =
/// 'side'`; none otherwise (the window inputs' own drop counts serve).
/// Built as DataFusion plans over the registered streams, not as SQL text.
pub(super) async fn late_checks(
    ctx: &SessionContext,
    streams: &[(StreamDef, Arc<BatchTable>)],
    time: Option<TimeDomain>,
) -> Result<Vec<LateCheck>, SqlError> {
    let side = |def: &StreamDef| {
        def.watermark
            .as_ref()
            .is_some_and(|w| w.late_policy == LatePolicy::Side)
    };
    if time != Some(TimeDomain::Event) || !streams.iter().any(|(def, _)| side(def)) {
        return Ok(Vec::new());
    }
    let state = ctx.state();
    let mut checks = Vec::new();
    for (def, _) in streams {
        let Some(watermark) = &def.watermark else {
            continue;
        };
        let rows = ctx.table(TableReference::bare(def.name.as_str())).await?;
        let columns: Vec<String> = if side(def) {
            let names = rows.schema().fields().iter().map(|f| f.name().clone());
            names.filter(|name| name != BATCH_TIME_COLUMN).collect()
        } else {
            vec![watermark.column.clone()]
        };
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        let logical = rows.select_columns(&columns)?.into_unoptimized_plan();
        let select = CompiledQuery::from_logical(&state, logical).await?;
        let time_index = select
            .schema
            .index_of(&watermark.column)
            .map_err(datafusion::error::DataFusionError::from)?;
        checks.push(LateCheck {
            stream: def.name.clone(),
            side: side(def),
            select,
            time_index,
        });
    }
    Ok(checks)
}
