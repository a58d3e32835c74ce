//! The `print` sink: writes a background query's rows to stdout, as Flink's
//! `print` connector does, in `format` = table (default), csv or ndjson.
//!
//! Under `--checkpoint` it is at least once, as the console is: stdout is
//! flushed in [`Sink::commit`], before the checkpoint's commit log records
//! the batch, so a crash never loses printed rows, but a batch printed and
//! not yet recorded when the process died is printed again on restart.

use std::io::Write;

use super::{ConsoleSink, OutputFormat, Sink, SinkDef, SinkError};
use crate::report::{BatchEnd, QueryResult};

/// Prints results to stdout.
pub struct PrintSink {
    name: String,
    console: ConsoleSink<std::io::Stdout>,
}

impl PrintSink {
    /// A print sink; option `format` picks table, csv or ndjson.
    pub fn open(def: &SinkDef) -> Result<Self, SinkError> {
        let option = |source| SinkError::Option {
            sink: def.name.clone(),
            source,
        };
        def.options
            .check_keys("print", &["format"])
            .map_err(option)?;
        let format: OutputFormat = def
            .options
            .parse_or("format", OutputFormat::Table)
            .map_err(option)?;
        let mut console = ConsoleSink::new(std::io::stdout(), format, false);
        console.name_queries(true);
        Ok(Self {
            name: def.name.clone(),
            console,
        })
    }

    fn io(&self, e: std::io::Error) -> SinkError {
        SinkError::Write {
            sink: self.name.clone(),
            message: format!("writing to stdout: {e}"),
        }
    }
}

impl Sink for PrintSink {
    fn write(&mut self, result: &QueryResult) -> Result<(), SinkError> {
        self.console.write_result(result).map_err(|e| self.io(e))
    }

    /// The batch's rows are out (flushed) before its commit is logged.
    fn commit(&mut self, _end: &BatchEnd) -> Result<(), SinkError> {
        std::io::stdout().flush().map_err(|e| self.io(e))
    }

    fn close(&mut self) -> Result<(), SinkError> {
        std::io::stdout().flush().map_err(|e| self.io(e))
    }
}
