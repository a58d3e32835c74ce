//! The `memory` sink: appends a background query's rows to a table of the
//! session with the sink's name, which any later query can read — Spark's
//! memory sink. For small results: tests, notebooks, the REPL.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use super::{Sink, SinkDef, SinkError};
use crate::report::QueryResult;

/// The session table a memory sink appends to, which later queries read.
/// A trait, so that sinks need not know the SQL layer's table type (the
/// session implements it for its tables).
pub trait MemoryTable: Send + Sync + std::fmt::Debug {
    /// The table's columns.
    fn schema(&self) -> SchemaRef;
    /// Adds `rows`, which have the table's columns.
    fn append(&self, rows: Vec<RecordBatch>);
    /// Rows in the table.
    fn num_rows(&self) -> usize;
}

/// Appends rows to a session table.
#[derive(Debug)]
pub struct MemorySink {
    name: String,
    table: Arc<dyn MemoryTable>,
}

impl MemorySink {
    /// A memory sink for `def` over `table`, the table the session
    /// registered for it.
    pub fn open(def: &SinkDef, table: Arc<dyn MemoryTable>) -> Result<Self, SinkError> {
        def.options
            .check_keys("memory", &[])
            .map_err(|source| SinkError::Option {
                sink: def.name.clone(),
                source,
            })?;
        Ok(Self {
            name: def.name.clone(),
            table,
        })
    }
}

impl Sink for MemorySink {
    fn write(&mut self, result: &QueryResult) -> Result<(), SinkError> {
        let schema = self.table.schema();
        let rows = result
            .rows
            .iter()
            .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SinkError::Write {
                sink: self.name.clone(),
                message: e.to_string(),
            })?;
        self.table.append(rows);
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn status(&self) -> String {
        format!("{} rows in table {}", self.table.num_rows(), self.name)
    }
}
