//! `SHOW STREAMS`, `SHOW QUERIES` and `DESCRIBE`: the catalog and the
//! running queries as rows.

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

pub(super) fn string_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ))
}
