//! The DataFusion side of a stream: a `TableProvider` whose contents are
//! swapped before each run of a query — the current batch, or the union of a
//! window's batches. Planning sees a fixed schema; each physical plan built
//! from the query's logical plan scans whatever the table holds at that moment.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

/// A table holding the record batches of the current batch or window.
#[derive(Debug)]
pub struct BatchTable {
    schema: SchemaRef,
    batches: RwLock<Vec<RecordBatch>>,
}

impl BatchTable {
    /// An empty table with `schema`.
    pub fn new(schema: SchemaRef) -> Self {
        Self {
            schema,
            batches: RwLock::new(Vec::new()),
        }
    }

    /// Replaces the contents seen by the next physical plan.
    pub fn set(&self, batches: Vec<RecordBatch>) {
        *self
            .batches
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = batches;
    }

    /// Adds rows after those already held (a `memory` sink's table).
    pub fn append(&self, batches: impl IntoIterator<Item = RecordBatch>) {
        self.batches
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(batches);
    }

    /// Number of rows held.
    pub fn num_rows(&self) -> usize {
        self.batches
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(RecordBatch::num_rows)
            .sum()
    }

    /// Schema of the rows (stream columns, `_batch_time`, window columns).
    pub fn schema_ref(&self) -> &SchemaRef {
        &self.schema
    }
}

#[async_trait]
impl TableProvider for BatchTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = self
            .batches
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
