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

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::collect;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use super::SqlError;
use super::proctime::ProcTime;
use super::provider::BatchTable;
use crate::source::StreamDef;
use crate::window::{WatermarkDef, WindowSpec};

mod build;
mod display;
mod inputs;
mod time;

pub(crate) use inputs::{column_names, with_computed_columns};

#[cfg(test)]
mod tests;

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

/// A stream an event-time query checks for late rows each batch, planned
/// with the query; there are checks only when one of the query's streams
/// routes its late rows to a `<name>_late` stream (`late_policy = 'side'`).
/// Then every stream with a WATERMARK is checked, so that late rows are
/// counted once per stream row (see `exec::late`).
#[derive(Debug, Clone)]
pub struct LateCheck {
    /// The stream.
    pub stream: String,
    /// Whether its late rows go to `<stream>_late` (else they are counted).
    pub side: bool,
    /// The stream's rows of the current batch: under side policy every
    /// column as queries see them except `_batch_time` (the late stream's
    /// columns but `query`), else just the time column.
    pub select: CompiledQuery,
    /// Index of the WATERMARK column in `select`'s schema.
    pub time_index: usize,
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
        /// Streams referenced outside the session: their rows are kept
        /// from the earliest open session on.
        kept: Vec<KeptInput>,
    },
}

/// A continuous query, planned once. Its `Display` is the streaming part
/// of `EXPLAIN`.
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
    /// The streams checked for late rows each batch (see [`LateCheck`]).
    pub late_checks: Vec<LateCheck>,
    /// The batch time `PROCTIME()` returns.
    pub proctime: ProcTime,
    /// The batch interval the query was planned for, in ms.
    pub interval_ms: i64,
}

impl StreamingPlan {
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

    /// Runs `plan` (a feeder, watermark or late-check plan of this query)
    /// over the current batch. Every such plan is planned with the query.
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
