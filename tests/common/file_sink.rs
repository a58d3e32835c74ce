//! The file sink tests' results and readers: one `(k, n)` batch per id,
//! a sink definition under a directory, the files it leaves, and queries
//! of them through DataFusion.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use quiver::{Options, Progress, QueryResult, SinkDef};

/// 2026-01-01T00:00:00Z, the time of batch 0.
pub const T0: i64 = 1_767_225_600_000;

/// The results' columns: `k` (string) and `n` (int64).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]))
}

/// Batch `id` at time T0 + id s: rows (k, id * 100 + i) for each k in `keys`.
pub fn result(id: u64, keys: &[&str]) -> QueryResult {
    let schema = schema();
    let k: Vec<&str> = keys.to_vec();
    let n: Vec<i64> = (0..keys.len() as i64)
        .map(|i| id as i64 * 100 + i)
        .collect();
    let rows = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(k)),
            Arc::new(Int64Array::from(n)),
        ],
    )
    .unwrap();
    QueryResult {
        query: Arc::from("q"),
        batch_id: id,
        batch_time_ms: T0 + id as i64 * 1000,
        window: None,
        schema,
        rows: vec![rows],
        progress: Progress::default(),
        input: Default::default(),
        offsets: Vec::new(),
    }
}

/// Sink `out` of `connector` writing under `dir`, with `options`.
pub fn def(dir: &Path, connector: &str, options: &[(&str, &str)]) -> SinkDef {
    let mut pairs: Vec<(String, String)> = vec![("path".into(), dir.display().to_string())];
    pairs.extend(options.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    SinkDef::new("out", connector, schema(), Options::new(pairs))
}

/// Visible files under `dir` (no `.` / `_` path component), sorted, relative.
pub fn visible_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(['.', '_']) {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir`, hidden ones included.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// The rows of `sql` in `ctx`, as a pretty-printed table.
pub async fn query(ctx: &SessionContext, sql: &str) -> String {
    let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&rows).unwrap().to_string()
}

/// `dir` as a table location DataFusion reads as a directory.
pub fn url(dir: &Path) -> String {
    format!("{}/", dir.display())
}
