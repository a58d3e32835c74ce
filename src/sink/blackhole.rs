//! The `blackhole` sink: counts and drops every row, as Flink's does. It
//! measures a query's cost without any output cost (the Nexmark benchmark).

use super::{Sink, SinkDef, SinkError};
use crate::report::QueryResult;

/// Drops rows, counting them.
#[derive(Debug, Default)]
pub struct BlackholeSink {
    rows: u64,
}

impl BlackholeSink {
    /// A blackhole; it takes no options.
    pub fn open(def: &SinkDef) -> Result<Self, SinkError> {
        def.options
            .check_keys("blackhole", &[])
            .map_err(|source| SinkError::Option {
                sink: def.name.clone(),
                source,
            })?;
        Ok(Self::default())
    }
}

impl Sink for BlackholeSink {
    fn write(&mut self, result: &QueryResult) -> Result<(), SinkError> {
        self.rows += result.num_rows() as u64;
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn status(&self) -> String {
        format!("{} rows dropped", self.rows)
    }
}
