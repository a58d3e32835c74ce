//! `SHOW STREAMS`, `SHOW QUERIES`, `SHOW PROGRESS` and `DESCRIBE`: the
//! catalog, the running queries and their progress records as rows.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast;

use super::{Context, Output};
use crate::batch::{SYSTEM_COLUMNS, with_batch_time};
use crate::error::Error;
use crate::source::StreamDef;

impl Context {
    pub(super) fn show_streams(&self) -> Result<RecordBatch, Error> {
        let streams = self.streams();
        let column = |f: &dyn Fn(&StreamDef) -> String| -> ArrayRef {
            Arc::new(StringArray::from(streams.iter().map(f).collect::<Vec<_>>()))
        };
        let columns = vec![
            column(&|s| s.name.clone()),
            column(&|s| s.connector.clone()),
            column(&|s| s.options.get("format").unwrap_or("text").to_string()),
            column(&|s| {
                s.schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        ];
        RecordBatch::try_new(
            string_schema(&["name", "connector", "format", "columns"]),
            columns,
        )
        .map_err(|e| Error::Catalog(e.to_string()))
    }

    pub(super) async fn describe(&self, name: &str) -> Result<Output, Error> {
        let def = self.catalog.read(|c| c.streams.get(name).cloned());
        let Some(def) = def else {
            return self
                .rows_on_datafusion(ast::Statement::ExplainTable {
                    describe_alias: ast::DescribeAlias::Describe,
                    hive_format: None,
                    has_table_keyword: false,
                    table_name: super::object_name(name),
                })
                .await;
        };
        let schema = with_batch_time(&def.schema);
        let fields = schema.fields();
        let names: StringArray = fields.iter().map(|f| Some(f.name().clone())).collect();
        let types: StringArray = fields
            .iter()
            .map(|f| Some(f.data_type().to_string()))
            .collect();
        let nullable: StringArray = fields
            .iter()
            .map(|f| Some(if f.is_nullable() { "YES" } else { "NO" }))
            .collect();
        // System columns are selectable by name but left out of `SELECT *`.
        let system: StringArray = fields
            .iter()
            .map(|f| {
                Some(if SYSTEM_COLUMNS.contains(&f.name().as_str()) {
                    "YES"
                } else {
                    "NO"
                })
            })
            .collect();
        let mut headers = vec!["column_name", "data_type", "is_nullable", "is_system"];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(names),
            Arc::new(types),
            Arc::new(nullable),
            Arc::new(system),
        ];
        // A `key` column (PRI, as MySQL's DESCRIBE) only on streams with a
        // declared primary key.
        if !def.primary_key.is_empty() {
            headers.push("key");
            columns.push(Arc::new(
                fields
                    .iter()
                    .map(|f| {
                        Some(if def.primary_key.contains(f.name()) {
                            "PRI"
                        } else {
                            ""
                        })
                    })
                    .collect::<StringArray>(),
            ));
        }
        let batch = RecordBatch::try_new(string_schema(&headers), columns)
            .map_err(|e| Error::Catalog(e.to_string()))?;
        Ok(Output::Rows(vec![batch]))
    }

    pub(super) fn show_queries(&self) -> Result<RecordBatch, Error> {
        use datafusion::arrow::array::{Int64Array, UInt64Array};
        let queries = self.background.list();
        let text = |f: &dyn Fn(&crate::exec::QueryStatus) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(queries.iter().map(f).collect::<Vec<_>>()))
        };
        let count = |f: &dyn Fn(&crate::exec::QueryStatus) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from(queries.iter().map(f).collect::<Vec<_>>()))
        };
        let columns = vec![
            text(&|q| Some(q.name.clone())),
            text(&|q| Some(q.state.to_string())),
            count(&|q| q.batches),
            count(&|q| q.input_rows),
            count(&|q| q.output_rows),
            Arc::new(Int64Array::from(
                queries
                    .iter()
                    .map(|q| q.last_batch.as_millis() as i64)
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
            text(&|q| {
                let watermark = q.watermark_ms.map(crate::report::format_time);
                match (watermark, &q.watermark_held_by) {
                    (Some(w), Some(held)) => Some(format!("{w} (held by {held})")),
                    (None, Some(held)) => Some(format!("none yet (held by {held})")),
                    (watermark, None) => watermark,
                }
            }),
            count(&|q| q.late_rows),
            text(&|q| crate::report::format_lag(&q.lag)),
            text(&|q| Some(q.sink.clone())),
            text(&|q| q.error.clone()),
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("batches", DataType::UInt64, false),
            Field::new("rows_in", DataType::UInt64, false),
            Field::new("rows_out", DataType::UInt64, false),
            Field::new("last_batch_ms", DataType::Int64, false),
            Field::new("watermark", DataType::Utf8, true),
            Field::new("late_rows", DataType::UInt64, false),
            Field::new("lag", DataType::Utf8, true),
            Field::new("sink", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Catalog(e.to_string()))
    }
}

/// Records `SHOW PROGRESS` shows without a `LIMIT`.
const SHOW_PROGRESS_DEFAULT: u64 = 10;

impl Context {
    /// `SHOW PROGRESS name [LIMIT n]`: the query's newest progress records,
    /// oldest first, one row each (the same records `--progress-json`
    /// writes and `SHOW QUERIES` totals).
    pub(super) fn show_progress(
        &self,
        name: &str,
        limit: Option<u64>,
    ) -> Result<RecordBatch, Error> {
        use datafusion::arrow::array::{Float64Array, Int64Array, UInt64Array};
        let limit = limit.unwrap_or(SHOW_PROGRESS_DEFAULT);
        let records = self
            .background
            .progress(name, usize::try_from(limit).unwrap_or(usize::MAX))?;
        type Record = crate::report::ProgressRecord;
        let count = |f: &dyn Fn(&Record) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from(records.iter().map(f).collect::<Vec<_>>()))
        };
        let millis = |f: &dyn Fn(&Record) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from(
                records
                    .iter()
                    .map(|r| (f(r) * 1e3).round() / 1e3)
                    .collect::<Vec<_>>(),
            ))
        };
        let rate = |f: &dyn Fn(&Record) -> Option<f64>| -> ArrayRef {
            Arc::new(Float64Array::from(
                records
                    .iter()
                    .map(|r| f(r).map(f64::round))
                    .collect::<Vec<_>>(),
            ))
        };
        let text = |f: &dyn Fn(&Record) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(records.iter().map(f).collect::<Vec<_>>()))
        };
        let columns = vec![
            count(&|r| r.batch_id),
            text(&|r| Some(r.batch_time.clone())),
            count(&|r| r.input_rows),
            count(&|r| r.output_rows),
            rate(&|r| r.input_rows_per_second),
            rate(&|r| r.processed_rows_per_second),
            millis(&|r| r.durations.poll_ms),
            millis(&|r| r.durations.checkpoint_ms),
            millis(&|r| r.durations.query_ms),
            millis(&|r| r.durations.sink_ms),
            millis(&|r| r.durations.commit_ms),
            millis(&|r| r.durations.source_commit_ms),
            millis(&|r| r.durations.total_ms),
            Arc::new(Int64Array::from(
                records.iter().map(|r| r.delay_ms).collect::<Vec<_>>(),
            )) as ArrayRef,
            text(&|r| r.watermark.clone()),
            count(&|r| r.late_rows),
            count(&|r| r.state_rows),
            count(&|r| r.state_bytes),
            text(&|r| {
                let ranges: Vec<String> = (r.sources.iter())
                    .flat_map(|s| {
                        s.partitions.iter().map(move |p| {
                            let lag = p.lag.map_or_else(String::new, |n| format!(" (lag {n})"));
                            format!("{} {}: {}..{}{lag}", s.stream, p.partition, p.start, p.end)
                        })
                    })
                    .collect();
                (!ranges.is_empty()).then(|| ranges.join(", "))
            }),
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new("batch_id", DataType::UInt64, false),
            Field::new("batch_time", DataType::Utf8, false),
            Field::new("rows_in", DataType::UInt64, false),
            Field::new("rows_out", DataType::UInt64, false),
            Field::new("input_rows_per_s", DataType::Float64, true),
            Field::new("processed_rows_per_s", DataType::Float64, true),
            Field::new("poll_ms", DataType::Float64, false),
            Field::new("checkpoint_ms", DataType::Float64, false),
            Field::new("query_ms", DataType::Float64, false),
            Field::new("sink_ms", DataType::Float64, false),
            Field::new("commit_ms", DataType::Float64, false),
            Field::new("source_commit_ms", DataType::Float64, false),
            Field::new("total_ms", DataType::Float64, false),
            Field::new("delay_ms", DataType::Int64, false),
            Field::new("watermark", DataType::Utf8, true),
            Field::new("late_rows", DataType::UInt64, false),
            Field::new("state_rows", DataType::UInt64, false),
            Field::new("state_bytes", DataType::UInt64, false),
            Field::new("offsets", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Catalog(e.to_string()))
    }
}

pub(super) fn string_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ))
}
