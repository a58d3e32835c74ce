//! The console sink: prints each result of a continuous query as DStream's
//! `print()` does — a banner naming the batch (and window), then the rows as a
//! table — or as CSV / NDJSON for scripts, with nothing but data on the writer.

use std::collections::HashSet;
use std::io::{self, Write};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json;
use datafusion::arrow::util::pretty::{pretty_format_batches, pretty_format_batches_with_schema};

use crate::report::{QueryResult, format_time};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// A banner and a pretty table per result (for people).
    #[default]
    Table,
    /// CSV: a header once per query, then rows (for scripts).
    Csv,
    /// One JSON object per row (for scripts).
    Ndjson,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "ndjson" | "json" => Ok(Self::Ndjson),
            other => Err(format!(
                "unknown output format '{other}'; valid formats are: table, csv, ndjson"
            )),
        }
    }
}

/// Writes query results to `out` in one format.
pub struct ConsoleSink<W: Write> {
    out: W,
    format: OutputFormat,
    show_empty: bool,
    name_queries: bool,
    headers_written: HashSet<String>,
}

fn to_io(e: ArrowError) -> io::Error {
    match e {
        ArrowError::IoError(_, e) => e,
        other => io::Error::other(other),
    }
}

impl<W: Write> ConsoleSink<W> {
    /// A sink writing `format` to `out`; empty results are skipped unless `show_empty`.
    pub fn new(out: W, format: OutputFormat, show_empty: bool) -> Self {
        Self {
            out,
            format,
            show_empty,
            name_queries: false,
            headers_written: HashSet::new(),
        }
    }

    /// Puts the query name in table banners (when several queries print).
    pub fn name_queries(&mut self, yes: bool) {
        self.name_queries = yes;
    }

    /// Writes one result of a continuous query.
    pub fn write_result(&mut self, result: &QueryResult) -> io::Result<()> {
        if result.num_rows() == 0 && !self.show_empty {
            return Ok(());
        }
        if self.format == OutputFormat::Table {
            let mut banner = format!(
                "Batch {} · {}",
                result.batch_id,
                format_time(result.batch_time_ms)
            );
            if let Some((start, end)) = result.window {
                banner += &format!(" · window [{}, {})", format_time(start), format_time(end));
            }
            if self.name_queries {
                banner += &format!(" · {}", result.query);
            }
            writeln!(self.out, "{banner}")?;
        }
        if self.format == OutputFormat::Table && result.rows.is_empty() {
            let table =
                pretty_format_batches_with_schema(result.schema.clone(), &[]).map_err(to_io)?;
            writeln!(self.out, "{table}")?;
            return self.out.flush();
        }
        let first = self.headers_written.insert(result.query.to_string());
        self.write_batches(&result.rows, first)
    }

    /// Writes the rows of a one-off statement (`SHOW STREAMS`, `SELECT 1`).
    pub fn write_rows(&mut self, rows: &[RecordBatch]) -> io::Result<()> {
        self.write_batches(rows, true)
    }

    fn write_batches(&mut self, rows: &[RecordBatch], header: bool) -> io::Result<()> {
        match self.format {
            OutputFormat::Table => {
                let table = pretty_format_batches(rows).map_err(to_io)?;
                writeln!(self.out, "{table}")?;
            }
            OutputFormat::Csv => {
                let mut writer = csv::WriterBuilder::new()
                    .with_header(header)
                    .build(&mut self.out);
                for batch in rows {
                    writer.write(batch).map_err(to_io)?;
                }
            }
            OutputFormat::Ndjson => {
                let mut writer = json::LineDelimitedWriter::new(&mut self.out);
                for batch in rows {
                    writer.write(batch).map_err(to_io)?;
                }
                writer.finish().map_err(to_io)?;
            }
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::report::Progress;

    fn result(batch_id: u64, values: Vec<i64>) -> QueryResult {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let rows = vec![
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))]).unwrap(),
        ];
        QueryResult {
            query: Arc::from("query_1"),
            batch_id,
            batch_time_ms: 1_767_225_603_000,
            window: None,
            schema,
            rows,
            progress: Progress::default(),
            input: Default::default(),
            offsets: Vec::new(),
        }
    }

    #[test]
    fn table_format_prints_a_banner_and_skips_empty_results() {
        let mut out = Vec::new();
        let mut sink = ConsoleSink::new(&mut out, OutputFormat::Table, false);
        sink.write_result(&result(3, vec![7])).unwrap();
        sink.write_result(&result(4, vec![])).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("Batch 3 · 2026-01-01 00:00:03\n+---+"),
            "{text}"
        );
        assert!(!text.contains("Batch 4"));
    }

    #[test]
    fn csv_has_one_header_per_query() {
        let mut out = Vec::new();
        let mut sink = ConsoleSink::new(&mut out, OutputFormat::Csv, false);
        sink.write_result(&result(0, vec![1])).unwrap();
        sink.write_result(&result(1, vec![2, 3])).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "n\n1\n2\n3\n");
    }
}
