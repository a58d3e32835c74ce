//! The `stdin` connector: newline-delimited records from standard input,
//! drained at end of input (`quiver run q.sql < data.ndjson`).

use std::sync::atomic::Ordering;

use datafusion::arrow::datatypes::SchemaRef;

use super::lines::{LineChannel, pump_lines, runtime};
use super::{PollContext, Source, SourceData, SourceError};
use crate::format::{Format, FormatKind};
use crate::options::Options;

/// Options of the stdin connector (besides the format options).
pub(super) const KEYS: &[&str] = &[];

/// A running stdin source.
pub struct StdinSource {
    schema: SchemaRef,
    format: Format,
    lines: LineChannel,
}

impl StdinSource {
    /// Starts reading standard input in the background.
    pub fn open(schema: SchemaRef, options: &Options) -> Result<Self, SourceError> {
        let format = Format::from_options(options, FormatKind::Text)?;
        let (lines, tx, ended) = LineChannel::new();
        runtime()?.spawn(async move {
            pump_lines(tokio::io::stdin(), &tx, "stdin source").await;
            ended.store(true, Ordering::Release);
        });
        Ok(Self {
            schema,
            format,
            lines,
        })
    }
}

impl Source for StdinSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll_batch(&mut self, _ctx: &PollContext) -> Result<SourceData, SourceError> {
        self.lines.drain(&self.format, &self.schema, "stdin")
    }

    fn is_drained(&self) -> bool {
        self.lines.is_drained()
    }
}
