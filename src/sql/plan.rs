//! Planning a continuous query: find its streams and windows, register one
//! swappable [`BatchTable`] per input in a private DataFusion session, and
//! plan the SQL once. Each batch (or closed window) then builds a fresh
//! physical plan from the optimized logical plan — a DataFusion physical plan
//! with `RepartitionExec` cannot be executed twice — and runs it.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::collect;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use super::SqlError;
use super::provider::BatchTable;
use super::rewrite::{WindowCall, rewrite};
use crate::batch::with_batch_time;
use crate::source::StreamDef;
use crate::window::{WindowSpec, with_window_columns};

/// One table of a planned query that the executor fills before each run.
#[derive(Debug, Clone)]
pub struct PlannedInput {
    /// The stream whose batches feed the table.
    pub stream: String,
    /// The table DataFusion scans.
    pub table: Arc<BatchTable>,
    /// True for a window's table (filled when a window closes), false for
    /// the current batch's table.
    pub windowed: bool,
}

/// A continuous query, planned once.
#[derive(Debug)]
pub struct StreamingPlan {
    state: SessionState,
    logical: LogicalPlan,
    /// Schema of the query's results.
    pub schema: SchemaRef,
    /// Tables to fill before each run.
    pub inputs: Vec<PlannedInput>,
    /// The streams to open a source for, once each.
    pub streams: Vec<StreamDef>,
    /// The query's window, when it reads windows.
    pub window: Option<WindowSpec>,
}

impl StreamingPlan {
    /// Plans `query`. Returns `None` when it reads no stream (a one-off query
    /// the caller runs directly). `tables` resolves static tables and views.
    pub async fn try_new(
        query: &ast::Query,
        streams: &BTreeMap<String, StreamDef>,
        tables: &SessionContext,
        config: SessionConfig,
        interval_ms: i64,
    ) -> Result<Option<Self>, SqlError> {
        let mut query = query.clone();
        let found = rewrite(&mut query, &|name| streams.contains_key(name))?;
        if found.per_batch.is_empty() && found.windows.is_empty() {
            return Ok(None);
        }
        let window = window_spec(&found.windows, tables, interval_ms).await?;
        let ctx = SessionContext::new_with_config(config);
        for name in &found.others {
            if let Ok(provider) = tables
                .table_provider(TableReference::bare(name.as_str()))
                .await
            {
                ctx.register_table(TableReference::bare(name.as_str()), provider)?;
            }
        }
        let mut inputs = Vec::new();
        let mut used = BTreeMap::new();
        let named_inputs = found
            .per_batch
            .iter()
            .map(|s| (s.clone(), s.clone(), false))
            .chain(
                found
                    .windows
                    .iter()
                    .map(|w| (w.table.clone(), w.stream.clone(), true)),
            );
        for (table_name, stream, windowed) in named_inputs {
            let def = &streams[&stream];
            let schema = with_batch_time(&def.schema);
            let schema = if windowed {
                with_window_columns(&schema)
            } else {
                schema
            };
            let table = Arc::new(BatchTable::new(schema));
            ctx.register_table(TableReference::bare(table_name), table.clone())?;
            used.insert(stream.clone(), def.clone());
            inputs.push(PlannedInput {
                stream,
                table,
                windowed,
            });
        }
        let state = ctx.state();
        let statement = DFStatement::Statement(Box::new(ast::Statement::Query(Box::new(query))));
        let plan = state.statement_to_plan(statement).await?;
        let logical = state.optimize(&plan)?;
        // Build one physical plan now, so that what DataFusion cannot execute
        // is reported when the statement runs, not at the first batch.
        state
            .query_planner()
            .create_physical_plan(&logical, &state)
            .await?;
        let schema = Arc::new(logical.schema().as_arrow().clone());
        Ok(Some(Self {
            state,
            logical,
            schema,
            inputs,
            streams: used.into_values().collect(),
            window,
        }))
    }

    /// Makes the query produce `target`'s columns: same count, each cast by
    /// position to the target type and renamed (what `INSERT INTO` does).
    pub fn cast_to(&mut self, target: &SchemaRef) -> Result<(), SqlError> {
        use datafusion::arrow::compute::can_cast_types;
        use datafusion::logical_expr::{LogicalPlanBuilder, cast, col};
        let source = self.logical.schema().clone();
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
        let plan = LogicalPlanBuilder::from(self.logical.clone())
            .project(exprs)?
            .build()?;
        self.logical = self.state.optimize(&plan)?;
        self.schema = Arc::new(self.logical.schema().as_arrow().clone());
        Ok(())
    }

    /// Runs the query over what the input tables hold now.
    pub async fn execute(&self) -> Result<Vec<RecordBatch>, DataFusionError> {
        let physical = self
            .state
            .query_planner()
            .create_physical_plan(&self.logical, &self.state)
            .await?;
        collect(physical, self.state.task_ctx()).await
    }

    /// DataFusion's logical and physical plans, as `EXPLAIN` prints them.
    pub async fn explain(&self) -> Result<Vec<RecordBatch>, DataFusionError> {
        let df = datafusion::dataframe::DataFrame::new(self.state.clone(), self.logical.clone());
        df.explain(false, false)?.collect().await
    }
}

/// The one window spec of a query's window calls, validated.
async fn window_spec(
    calls: &[WindowCall],
    tables: &SessionContext,
    interval_ms: i64,
) -> Result<Option<WindowSpec>, SqlError> {
    let mut spec: Option<WindowSpec> = None;
    for call in calls {
        let size = interval_ms_of(tables, &call.size).await?;
        let slide = interval_ms_of(tables, &call.slide).await?;
        let this = WindowSpec::new(call.kind, size, slide, interval_ms)?;
        match spec {
            Some(other) if (other.size_ms, other.slide_ms) != (this.size_ms, this.slide_ms) => {
                return Err(SqlError::Unsupported(
                    "all window functions in one query must have the same size and slide".into(),
                ));
            }
            _ => spec = Some(this),
        }
    }
    Ok(spec)
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
        _ => Err(not_interval(format!(
            "{expr} (months have no fixed length)"
        ))),
    }
}
