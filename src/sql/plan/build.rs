//! How a query becomes a [`StreamingPlan`]: rewriting its stream references
//! and window calls, registering the tables that replace them, and splitting
//! window aggregates into partials.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::TableReference;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast;

use crate::batch::BATCH_TIME_COLUMN;
use crate::sql::SqlError;
use crate::sql::catalog::Catalog;
use crate::sql::file_table::FileTable;
use crate::sql::proctime::ProcTime;
use crate::sql::provider::BatchTable;
use crate::sql::rewrite::rewrite;
use crate::sql::session::session_keys_sql;
use crate::sql::window_args::WindowTime;

use super::inputs::*;
use super::time::*;
use super::*;

impl StreamingPlan {
    /// Plans `query`. Returns `None` when it reads no stream (a one-off query
    /// the caller runs directly). `tables` resolves static tables.
    pub async fn try_new(
        query: &ast::Query,
        catalog: Catalog<'_>,
        tables: &SessionContext,
        config: SessionConfig,
        interval_ms: i64,
    ) -> Result<Option<Self>, SqlError> {
        let Some(plan) = Self::plan_with(
            query,
            catalog,
            tables,
            config.clone(),
            interval_ms,
            &BTreeMap::new(),
        )
        .await?
        else {
            return Ok(None);
        };
        // Window state keeps only the columns the query reads: plan again
        // with each kept table narrowed to what the optimized plan scans.
        let needed = plan.scanned_columns()?;
        if needed.is_empty() {
            return Ok(Some(plan));
        }
        Self::plan_with(query, catalog, tables, config, interval_ms, &needed).await
    }

    /// Columns the optimized main plan reads from each kept table (window,
    /// kept and session tables), for tables where that is fewer than all.
    fn scanned_columns(&self) -> Result<BTreeMap<String, Vec<String>>, SqlError> {
        use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
        let kept: BTreeSet<String> = self
            .windows()
            .iter()
            .chain(self.kept())
            .chain(self.session().map(|s| &s.input))
            .map(|k| k.table_name.clone())
            .collect();
        let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut everything: BTreeSet<String> = BTreeSet::new();
        let plans = std::iter::once(&self.main).chain(self.partials().iter().map(|p| &p.partial));
        for plan in plans {
            plan.logical.apply(|node| {
                if let LogicalPlan::TableScan(scan) = node {
                    let name = scan.table_name.table().to_string();
                    if kept.contains(&name) {
                        let schema = scan.source.schema();
                        match &scan.projection {
                            Some(indices) => needed
                                .entry(name)
                                .or_default()
                                .extend(indices.iter().map(|i| schema.field(*i).name().clone())),
                            None => {
                                everything.insert(name);
                            }
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(needed
            .into_iter()
            .filter(|(name, _)| !everything.contains(name))
            .map(|(name, columns)| (name, columns.into_iter().collect()))
            .collect())
    }

    async fn plan_with(
        query: &ast::Query,
        catalog: Catalog<'_>,
        tables: &SessionContext,
        config: SessionConfig,
        interval_ms: i64,
        narrow: &BTreeMap<String, Vec<String>>,
    ) -> Result<Option<Self>, SqlError> {
        let mut query = query.clone();
        let found = rewrite(&mut query, &|name| catalog.is_streaming(name))?;
        if !found.is_streaming() {
            return Ok(None);
        }
        let settings = config
            .get_extension::<PlanSettings>()
            .map_or_else(PlanSettings::default, |s| *s);
        let ctx = crate::sql::functions::session_context(config);
        let proctime = ProcTime::default();
        ctx.register_udf(proctime.udf());
        // The static tables the query reads, directly or through its views.
        let mut others = found.others.clone();
        for view in catalog.views_needed(&found.relations()) {
            if let Ok(mut parsed) = crate::sql::parse_script(&view.sql)
                && let Some(crate::sql::ParsedStatement {
                    statement: crate::sql::Statement::Query(view_query),
                    ..
                }) = parsed.first_mut()
                && let Ok(read) = rewrite(view_query, &|name| catalog.is_streaming(name))
            {
                others.extend(read.others);
            }
        }
        for name in &others {
            if let Ok(provider) = tables
                .table_provider(TableReference::bare(name.as_str()))
                .await
            {
                // A file table is read once per continuous query, not per batch.
                let provider = match provider.downcast_ref::<FileTable>() {
                    Some(file) => file.snapshot(proctime.clone()),
                    None => provider,
                };
                ctx.register_table(TableReference::bare(name.as_str()), provider)?;
            }
        }
        let relations = found.relations();
        let streams = register_streams(&ctx, catalog, &relations).await?;
        let state = ctx.state();

        let (window, mut time) = window_spec(&found.windows, catalog, tables, interval_ms).await?;
        let session = match found.sessions.as_slice() {
            [] => None,
            [call] if found.windows.is_empty() => {
                let column = WindowTime::Column(call.time_column.clone());
                if time_domain(&call.relation, &column, catalog)? != TimeDomain::Event {
                    return Err(SqlError::Unsupported(
                        "SESSION windows need event time (a WATERMARK column), not processing time"
                            .into(),
                    ));
                }
                time = Some(TimeDomain::Event);
                let gap_ms = interval_ms_of(tables, &call.gap).await?;
                if gap_ms <= 0 {
                    return Err(SqlError::Window(format!(
                        "SESSION gap must be positive, got {gap_ms} ms"
                    )));
                }
                // The PARTITION BY keys are kept even when the query does not read them.
                let columns = narrow.get(&call.table).map(|columns| {
                    let mut columns = columns.clone();
                    for key in &call.key_columns {
                        if !columns.contains(key) {
                            columns.push(key.clone());
                        }
                    }
                    columns
                });
                let input = kept_input(
                    &state,
                    &call.relation,
                    &call.time_column,
                    Some(&call.table),
                    columns.as_ref(),
                )
                .await?;
                for key in &call.key_columns {
                    if input.feeder.schema.index_of(key).is_err() {
                        return Err(SqlError::Window(format!(
                            "'{}' has no column '{key}' to partition sessions by; its columns are: {}",
                            call.relation,
                            column_names(&input.feeder.schema)
                        )));
                    }
                }
                ctx.register_table(
                    TableReference::bare(call.table.as_str()),
                    input.table.clone(),
                )?;
                let buffer = Arc::new(BatchTable::new(input.feeder.schema.clone()));
                ctx.register_table(
                    TableReference::bare(call.buffer_table.as_str()),
                    buffer.clone(),
                )?;
                let keys = match session_keys_sql(call) {
                    Some(sql) => Some(CompiledQuery::plan_sql(&state, &sql).await?),
                    None => None,
                };
                Some(SessionPlan {
                    input,
                    buffer,
                    keys,
                    gap_ms,
                })
            }
            _ => {
                return Err(SqlError::Unsupported(
                    "a query can have one SESSION window and no other windows".into(),
                ));
            }
        };
        if window.is_none() && session.is_none() {
            refuse_unbounded_join(found.inputs.len(), catalog, &relations)?;
        }
        let mut windows = Vec::new();
        for call in &found.windows {
            let time_column = match &call.time {
                WindowTime::Batch => BATCH_TIME_COLUMN.to_string(),
                WindowTime::Column(c) => c.clone(),
            };
            let input = kept_input(
                &state,
                &call.relation,
                &time_column,
                Some(&call.table),
                narrow.get(&call.table),
            )
            .await?;
            ctx.register_table(
                TableReference::bare(call.table.as_str()),
                input.table.clone(),
            )?;
            windows.push(input);
        }
        let mut kept = Vec::new();
        for input in &found.inputs {
            let provider = if time == Some(TimeDomain::Event) {
                let column = event_time_column(catalog, &input.relation)?;
                let mut k = kept_input(
                    &state,
                    &input.relation,
                    &column,
                    None,
                    narrow.get(&input.table),
                )
                .await?;
                k.table_name = input.table.clone();
                let table = k.table.clone();
                kept.push(k);
                table as Arc<dyn datafusion::catalog::TableProvider>
            } else {
                ctx.table_provider(TableReference::bare(input.relation.as_str()))
                    .await?
            };
            ctx.register_table(TableReference::bare(input.table.as_str()), provider)?;
        }
        let mut watermarks = Vec::new();
        if time == Some(TimeDomain::Event) {
            let under: BTreeSet<String> = found
                .windows
                .iter()
                .map(|w| &w.relation)
                .chain(found.sessions.iter().map(|s| &s.relation))
                .flat_map(|r| catalog.base_streams(r))
                .collect();
            for stream in under {
                let def = catalog.streams[&stream].watermark.clone().ok_or_else(|| {
                    SqlError::Window(format!(
                        "stream '{stream}' has no WATERMARK; event-time windows need one on every stream they read"
                    ))
                })?;
                let max =
                    CompiledQuery::plan_sql(&state, &watermark_max_sql(&def.expr, &quote(&stream)))
                        .await?;
                if !matches!(max.schema.field(0).data_type(), DataType::Timestamp(_, _)) {
                    return Err(SqlError::Window(format!(
                        "WATERMARK FOR {} AS {} on stream '{stream}' must be a TIMESTAMP, got {}",
                        def.column,
                        def.expr,
                        max.schema.field(0).data_type()
                    )));
                }
                watermarks.push(WatermarkPlan { stream, def, max });
            }
        }
        let late_checks = late_checks(&ctx, &streams, time).await?;
        let system = crate::sql::wildcard::system_columns(&ctx, &found).await;
        crate::sql::wildcard::hide_system_columns(&mut query, &system);
        let mut main = CompiledQuery::plan(&state, ast::Statement::Query(Box::new(query))).await?;
        if window.is_none() && session.is_none() {
            refuse_unbounded_aggregates(&main, catalog, &relations)?;
        }
        let mut partials = Vec::new();
        if window.is_some() && settings.incremental_aggregates {
            (main, partials) = split_partials(&state, main, &mut windows).await;
        }
        Ok(Some(Self {
            schema: main.schema.clone(),
            state,
            main,
            streams,
            kind: match (window, session) {
                (Some(spec), _) => PlanKind::Windowed(WindowedPlan {
                    spec,
                    windows,
                    kept,
                    partials,
                }),
                (None, Some(session)) => PlanKind::Session {
                    session: Box::new(session),
                    kept,
                },
                (None, None) => PlanKind::PerBatch,
            },
            time,
            watermarks,
            late_checks,
            proctime,
            interval_ms,
        }))
    }
}

/// Splits the main plan's window aggregates into partials and merges where
/// the result is the same (see `partial`); on any doubt keeps `main` as is.
async fn split_partials(
    state: &SessionState,
    main: CompiledQuery,
    windows: &mut [KeptInput],
) -> (CompiledQuery, Vec<PartialAggregate>) {
    use datafusion::common::tree_node::TreeNode;
    let names: BTreeSet<String> = windows.iter().map(|w| w.table_name.clone()).collect();
    let (logical, splits) =
        match crate::sql::partial::split_window_aggregates(main.logical.clone(), &names) {
            Ok((logical, splits)) if !splits.is_empty() => (logical, splits),
            Ok(_) => return (main, Vec::new()),
            Err(e) => {
                tracing::debug!("window aggregates kept as raw rows: {e}");
                return (main, Vec::new());
            }
        };
    let Ok(merged) = CompiledQuery::from_logical(state, logical).await else {
        return (main, Vec::new());
    };
    if merged.schema != main.schema {
        tracing::debug!(
            "window aggregates kept as raw rows: the merged plan's schema {:?} differs from {:?}",
            merged.schema,
            main.schema
        );
        return (main, Vec::new());
    }
    let mut partials = Vec::new();
    for split in splits {
        let Some(window) = windows
            .iter()
            .position(|w| w.table_name == split.window_table)
        else {
            return (main, Vec::new());
        };
        let Ok(partial) = CompiledQuery::from_logical(state, split.partial).await else {
            return (main, Vec::new());
        };
        let Ok(compact) = CompiledQuery::from_logical(state, split.compact).await else {
            return (main, Vec::new());
        };
        let names_and_types = |schema: &SchemaRef| -> Vec<(String, DataType)> {
            let fields = schema.fields().iter();
            fields
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect()
        };
        // Nullability may differ (a sum of counts is nullable); the
        // partials are stamped into the partial table's schema anyway.
        if names_and_types(&compact.schema) != names_and_types(&partial.schema) {
            tracing::debug!("window aggregates kept as raw rows: partials do not compact");
            return (main, Vec::new());
        }
        partials.push(PartialAggregate {
            window,
            partial,
            table: split.table,
            compact,
        });
    }
    let mut scanned = BTreeSet::new();
    let _ = merged.logical.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scanned.insert(scan.table_name.table().to_string());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    for window in windows.iter_mut() {
        window.keeps_rows = scanned.contains(&window.table_name);
    }
    (merged, partials)
}
