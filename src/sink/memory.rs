//! The `memory` sink: appends a background query's rows to a table of the
//! session with the sink's name, which any later query can read — Spark's
//! memory sink. For small results: tests, notebooks, the REPL.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;

use super::{Sink, SinkDef, SinkError};
use crate::exec::QueryResult;
use crate::sql::provider::BatchTable;

/// Appends rows to a session table.
#[derive(Debug)]
pub struct MemorySink {
    name: String,
    table: Arc<BatchTable>,
}

impl MemorySink {
    /// A memory sink over the table the session registered for `def`.
    pub fn open(def: &SinkDef) -> Result<Self, SinkError> {
        def.options
            .check_keys("memory", &[])
            .map_err(|source| SinkError::Option {
                sink: def.name.clone(),
                source,
            })?;
        let table = def.table.clone().ok_or_else(|| SinkError::Write {
            sink: def.name.clone(),
            message: "a memory sink needs the session's table; create it with CREATE TABLE or CREATE SINK".into(),
        })?;
        Ok(Self {
            name: def.name.clone(),
            table,
        })
    }
}

impl Sink for MemorySink {
    fn write(&mut self, result: &QueryResult) -> Result<(), SinkError> {
        let schema = self.table.schema_ref().clone();
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
