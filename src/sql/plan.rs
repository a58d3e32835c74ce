//! Planning a continuous query. Each query gets a private DataFusion session
//! where every stream it reads is a swappable [`BatchTable`] holding the
//! current batch (with a view on top for computed columns), and every view
//! over streams is registered anew over those tables. The query's window
//! calls and stream references were replaced by tables of their own (see
//! `rewrite`); this module decides what fills them:
//! - no windows, or windows over processing time: stream references read
//!   the current batch;
//! - windows: a *feeder* plan (`SELECT * FROM relation`) runs over each batch
//!   and its rows go to window state; when a window closes its rows fill the
//!   window's table. With event-time windows, a stream referenced outside a
//!   window (Nexmark q7) reads the rows kept for the open windows.
//!
//! Every plan is planned once; each run builds a physical plan from the
//! optimized logical plan (a physical plan cannot run twice).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::collect;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use super::SqlError;
use super::catalog::Catalog;
use super::file_table::FileTable;
use super::proctime::ProcTime;
use super::provider::BatchTable;
use super::rewrite::{WindowCall, rewrite};
use super::session::session_keys_sql;
use super::window_args::WindowTime;
use crate::batch::{BATCH_TIME_COLUMN, with_batch_time};
use crate::source::StreamDef;
use crate::window::{WINDOW_END, WINDOW_START, WatermarkDef, WindowSpec, with_window_columns};

/// A query planned once and run many times.
#[derive(Debug, Clone)]
pub struct CompiledQuery {
    logical: LogicalPlan,
    /// Schema of its results.
    pub schema: SchemaRef,
}

impl CompiledQuery {
    async fn plan(state: &SessionState, statement: ast::Statement) -> Result<Self, SqlError> {
        let plan = state
            .statement_to_plan(DFStatement::Statement(Box::new(statement)))
            .await?;
        Self::from_logical(state, plan).await
    }

    /// Optimizes `logical` and builds one physical plan now, so that what
    /// DataFusion cannot execute is reported when the statement runs, not at
    /// the first batch.
    async fn from_logical(state: &SessionState, logical: LogicalPlan) -> Result<Self, SqlError> {
        let logical = state.optimize(&logical)?;
        state
            .query_planner()
            .create_physical_plan(&logical, state)
            .await?;
        let schema = Arc::new(logical.schema().as_arrow().clone());
        Ok(Self { logical, schema })
    }

    async fn plan_sql(state: &SessionState, sql: &str) -> Result<Self, SqlError> {
        let statement = super::parser::parse_script(sql)?
            .pop()
            .map(|s| s.statement)
            .ok_or_else(|| SqlError::Parse(format!("empty statement: {sql}")))?;
        match statement {
            super::Statement::Query(q) => Self::plan(state, ast::Statement::Query(q)).await,
            other => Err(SqlError::Parse(format!("expected a query, got {other:?}"))),
        }
    }

    /// Runs the plan over what its tables hold now.
    pub async fn execute(&self, state: &SessionState) -> Result<Vec<RecordBatch>, DataFusionError> {
        let physical = state
            .query_planner()
            .create_physical_plan(&self.logical, state)
            .await?;
        collect(physical, state.task_ctx()).await
    }
}

/// Whether a query's windows follow the batches or the rows' own timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDomain {
    /// `_batch_time`/`PROCTIME()`: a window closes after its last batch.
    Processing,
    /// A stream's `WATERMARK` column: a window closes when the watermark passes its end.
    Event,
}

/// A relation whose rows the executor keeps between batches: a window's
/// input, or (with event-time windows) a stream referenced outside windows.
#[derive(Debug, Clone)]
pub struct KeptInput {
    /// The relation (stream or view) the rows come from.
    pub relation: String,
    /// Produces the relation's rows of the current batch.
    pub feeder: CompiledQuery,
    /// Index of the time column in the feeder's schema.
    pub time_index: usize,
    /// The table the main query reads: a window's rows plus `window_start`
    /// and `window_end`, or the kept rows.
    pub table: Arc<BatchTable>,
    /// The name `table` is registered under.
    pub table_name: String,
    /// Whether the main plan reads the raw rows; false when every aggregate
    /// over this window is computed from partials.
    pub keeps_rows: bool,
}

/// An aggregate over a window computed incrementally (see `partial`): the
/// executor runs `partial` over each pane's new rows of window input
/// `window`, keeps the partials per pane, and fills `table` with a closing
/// window's partials, which the main plan merges.
#[derive(Debug, Clone)]
pub struct PartialAggregate {
    /// Index of the window input in [`WindowedPlan::windows`].
    pub window: usize,
    /// Aggregates the rows the window's table holds into partials.
    pub partial: CompiledQuery,
    /// Partials of a closing window (or of a pane being compacted),
    /// stamped with its bounds.
    pub table: Arc<BatchTable>,
    /// Merges the partials `table` holds into one partial per group.
    pub compact: CompiledQuery,
}

/// Planner choices a session can change (`SET incremental_aggregates`),
/// carried to the planner as an extension of DataFusion's session config.
#[derive(Debug, Clone, Copy)]
pub struct PlanSettings {
    /// Compute decomposable window aggregates from per-pane partials.
    pub incremental_aggregates: bool,
}

impl Default for PlanSettings {
    fn default() -> Self {
        Self {
            incremental_aggregates: true,
        }
    }
}

/// How a stream's watermark is computed each batch.
#[derive(Debug, Clone)]
pub struct WatermarkPlan {
    /// The stream.
    pub stream: String,
    /// Its WATERMARK clause.
    pub def: WatermarkDef,
    /// `SELECT max(<watermark expr>) FROM stream` over the current batch.
    pub max: CompiledQuery,
}

/// State of a `GROUP BY ..., SESSION(time, gap)` query, or of one reading
/// the SESSION window table function.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// The grouped relation; its table receives the rows of closed sessions
    /// with `window_start`/`window_end`.
    pub input: KeptInput,
    /// New on-time rows of the relation, which `keys` reads.
    pub buffer: Arc<BatchTable>,
    /// Evaluates the session keys over the buffered rows: every buffer
    /// column, then one column per key. `None` when all rows form one
    /// sequence of sessions.
    pub keys: Option<CompiledQuery>,
    /// The session gap in ms.
    pub gap_ms: i64,
}

/// The state a windowed query (TUMBLE, HOP) keeps between batches.
#[derive(Debug, Clone)]
pub struct WindowedPlan {
    /// The query's window.
    pub spec: WindowSpec,
    /// Window inputs, one per window call.
    pub windows: Vec<KeptInput>,
    /// Streams referenced outside windows in an event-time query.
    pub kept: Vec<KeptInput>,
    /// Window aggregates computed from per-pane partials.
    pub partials: Vec<PartialAggregate>,
}

/// The kinds of continuous query, each run by its own operator.
#[derive(Debug, Clone)]
pub enum PlanKind {
    /// No window: the query runs once per batch over the batch's rows.
    PerBatch,
    /// TUMBLE or HOP windows: rows (or partials) kept by pane.
    Windowed(WindowedPlan),
    /// A SESSION window: rows kept by key until their session closes.
    Session {
        /// The session window (boxed: it is much larger than the others).
        session: Box<SessionPlan>,
        /// Streams referenced outside the session (their tables are
        /// registered but not fed).
        kept: Vec<KeptInput>,
    },
}

/// A continuous query, planned once.
#[derive(Debug)]
pub struct StreamingPlan {
    state: SessionState,
    main: CompiledQuery,
    /// Schema of the query's results.
    pub schema: SchemaRef,
    /// The streams to open a source for, with the table that holds their
    /// current batch.
    pub streams: Vec<(StreamDef, Arc<BatchTable>)>,
    /// What kind of query it is, with what each kind keeps between batches.
    pub kind: PlanKind,
    /// Processing or event time, when it reads windows.
    pub time: Option<TimeDomain>,
    /// Watermarks of the streams under the windows (event time).
    pub watermarks: Vec<WatermarkPlan>,
    /// The batch time `PROCTIME()` returns.
    pub proctime: ProcTime,
}

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
        let ctx = super::functions::session_context(config);
        let proctime = ProcTime::default();
        ctx.register_udf(proctime.udf());
        // The static tables the query reads, directly or through its views.
        let mut others = found.others.clone();
        for view in catalog.views_needed(&found.relations()) {
            if let Ok(mut parsed) = super::parse_script(&view.sql)
                && let Some(super::ParsedStatement {
                    statement: super::Statement::Query(view_query),
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
                let max = CompiledQuery::plan_sql(
                    &state,
                    &format!("SELECT max({}) FROM {}", def.expr, quote(&stream)),
                )
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
        let system = super::wildcard::system_columns(&ctx, &found).await;
        super::wildcard::hide_system_columns(&mut query, &system);
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
            proctime,
        }))
    }

    /// The query's window, for windowed queries.
    pub fn window(&self) -> Option<WindowSpec> {
        match &self.kind {
            PlanKind::Windowed(w) => Some(w.spec),
            _ => None,
        }
    }

    /// Window inputs, one per window call (none unless windowed).
    pub fn windows(&self) -> &[KeptInput] {
        match &self.kind {
            PlanKind::Windowed(w) => &w.windows,
            _ => &[],
        }
    }

    /// Streams referenced outside windows in an event-time query.
    pub fn kept(&self) -> &[KeptInput] {
        match &self.kind {
            PlanKind::Windowed(w) => &w.kept,
            PlanKind::Session { kept, .. } => kept,
            PlanKind::PerBatch => &[],
        }
    }

    /// Window aggregates computed from per-pane partials.
    pub fn partials(&self) -> &[PartialAggregate] {
        match &self.kind {
            PlanKind::Windowed(w) => &w.partials,
            _ => &[],
        }
    }

    /// The session window, for `GROUP BY ..., SESSION(...)` queries.
    pub fn session(&self) -> Option<&SessionPlan> {
        match &self.kind {
            PlanKind::Session { session, .. } => Some(session),
            _ => None,
        }
    }

    /// Runs the query over what the tables hold now.
    pub async fn execute(&self) -> Result<Vec<RecordBatch>, DataFusionError> {
        self.main.execute(&self.state).await
    }

    /// Plans `sql`, a query over this query's tables (e.g. a stream's current
    /// batch), to run with [`Self::run`].
    pub async fn compile(&self, sql: &str) -> Result<CompiledQuery, SqlError> {
        CompiledQuery::plan_sql(&self.state, sql).await
    }

    /// Runs `plan` (a feeder or watermark plan of this query) over the current batch.
    pub async fn run(&self, plan: &CompiledQuery) -> Result<Vec<RecordBatch>, DataFusionError> {
        plan.execute(&self.state).await
    }

    /// Makes the query produce `target`'s columns: same count, each cast by
    /// position to the target type and renamed (what `INSERT INTO` does).
    pub fn cast_to(&mut self, target: &SchemaRef) -> Result<(), SqlError> {
        use datafusion::arrow::compute::can_cast_types;
        use datafusion::logical_expr::{LogicalPlanBuilder, cast, col};
        let source = self.main.logical.schema().clone();
        if source.fields().len() != target.fields().len() {
            return Err(SqlError::Unsupported(format!(
                "the query produces {} columns but the table has {} ({}); select them in the table's order",
                source.fields().len(),
                target.fields().len(),
                target
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut exprs = Vec::new();
        for (i, to) in target.fields().iter().enumerate() {
            let (qualifier, from) = source.qualified_field(i);
            if !can_cast_types(from.data_type(), to.data_type()) {
                return Err(SqlError::Unsupported(format!(
                    "column {} ('{}', {}) cannot be written to column '{}' ({})",
                    i + 1,
                    from.name(),
                    from.data_type(),
                    to.name(),
                    to.data_type()
                )));
            }
            let column = datafusion::common::Column::new(qualifier.cloned(), from.name());
            exprs.push(cast(col(column), to.data_type().clone()).alias(to.name()));
        }
        let plan = LogicalPlanBuilder::from(self.main.logical.clone())
            .project(exprs)?
            .build()?;
        self.main.logical = self.state.optimize(&plan)?;
        self.main.schema = Arc::new(self.main.logical.schema().as_arrow().clone());
        self.schema = self.main.schema.clone();
        Ok(())
    }

    /// DataFusion's logical and physical plans, as `EXPLAIN` prints them.
    pub async fn explain(&self) -> Result<Vec<RecordBatch>, DataFusionError> {
        let df =
            datafusion::dataframe::DataFrame::new(self.state.clone(), self.main.logical.clone());
        df.explain(false, false)?.collect().await
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
        match super::partial::split_window_aggregates(main.logical.clone(), &names) {
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

/// The first relation `relations` names that reads an event-time stream: the
/// relation as written (a stream or a view), the stream, and its event-time
/// column. For hints that show the user's own names.
fn event_time_relation(
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
fn hint_ident(name: &str) -> String {
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
fn refuse_unbounded_join(
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
fn refuse_unbounded_aggregates(
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

/// `name` as a quoted SQL identifier.
fn quote(name: &str) -> String {
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
async fn register_streams(
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
async fn kept_input(
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

/// The event-time column of a relation: its streams' WATERMARK column.
fn event_time_column(catalog: Catalog<'_>, relation: &str) -> Result<String, SqlError> {
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
async fn window_spec(
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
fn time_domain(
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
async fn interval_ms_of(ctx: &SessionContext, expr: &ast::Expr) -> Result<i64, SqlError> {
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
