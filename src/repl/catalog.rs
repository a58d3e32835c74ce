//! `\d`: what the session has declared — streams, views over streams, sink
//! tables and DataFusion's static tables — as one small table per kind, read
//! from `quiver::Context` (nothing here decides what exists); and `\d name`
//! for sink tables, which `DESCRIBE` does not know.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use quiver::{Context, Output};

/// The non-empty kinds of relations of the session, each with a title.
pub async fn list(ctx: &Context) -> anyhow::Result<Vec<(&'static str, Vec<RecordBatch>)>> {
    let mut kinds = Vec::new();
    if !ctx.streams().is_empty() {
        kinds.push(("streams", rows(ctx, "SHOW STREAMS").await?));
    }
    let views = ctx.stream_views();
    if !views.is_empty() {
        let reads = views.iter().map(|v| {
            v.reads
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        });
        kinds.push((
            "views over streams",
            vec![strings(&[
                ("name", views.iter().map(|v| v.name.clone()).collect()),
                ("reads", reads.collect()),
            ])?],
        ));
    }
    let sinks = ctx.sink_tables();
    if !sinks.is_empty() {
        let columns = sinks.iter().map(|s| {
            s.schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        });
        kinds.push((
            "sink tables",
            vec![strings(&[
                ("name", sinks.iter().map(|s| s.name.clone()).collect()),
                (
                    "connector",
                    sinks.iter().map(|s| s.connector.clone()).collect(),
                ),
                ("columns", columns.collect()),
            ])?],
        ));
    }
    let tables = rows(
        ctx,
        "SELECT table_name, table_type FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY table_name",
    )
    .await?;
    if tables.iter().any(|b| b.num_rows() > 0) {
        kinds.push(("tables", tables));
    }
    Ok(kinds)
}

/// `\d name` for a sink table: its columns (streams and static tables are
/// described by `DESCRIBE`). `None` if `name` is not a sink table.
pub fn describe_sink(ctx: &Context, name: &str) -> Option<anyhow::Result<RecordBatch>> {
    let sink = ctx.sink_tables().into_iter().find(|s| s.name == name)?;
    let fields = sink.schema.fields();
    Some(strings(&[
        (
            "column_name",
            fields.iter().map(|f| f.name().clone()).collect(),
        ),
        (
            "data_type",
            fields.iter().map(|f| f.data_type().to_string()).collect(),
        ),
        (
            "is_nullable",
            fields
                .iter()
                .map(|f| if f.is_nullable() { "YES" } else { "NO" }.to_string())
                .collect(),
        ),
    ]))
}

/// The rows of a one-off statement.
async fn rows(ctx: &Context, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
    match ctx.sql(sql).await?.pop() {
        Some(Output::Rows(rows)) => Ok(rows),
        _ => Ok(Vec::new()),
    }
}

/// A batch of string columns.
fn strings(columns: &[(&str, Vec<String>)]) -> anyhow::Result<RecordBatch> {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    );
    let arrays = columns
        .iter()
        .map(|(_, values)| Arc::new(StringArray::from(values.clone())) as ArrayRef)
        .collect();
    Ok(RecordBatch::try_new(Arc::new(schema), arrays)?)
}
