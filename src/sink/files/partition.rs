//! Hive-style partitioning: the rows of a result are split by the values of
//! the `partition_by` columns into directories `col1=v1/col2=v2/`, the way
//! Hive, Spark, DuckDB, pyarrow and DataFusion lay out and read partitioned
//! tables. The partition columns are dropped from the file contents (readers
//! rebuild them from the directory names, as strings unless told the type).
//!
//! Values are rendered with Arrow's cast to text (dates `2026-01-01`,
//! timestamps `2026-01-01T00:00:10`) and percent-encoded where a character is
//! unsafe in a path or meaningful to Hive (`/ : = % ? # ...`, space, control
//! characters): `window_start=2026-01-01T00%3A00%3A10`. Readers decode the
//! escapes. A null value is written as `__HIVE_DEFAULT_PARTITION__`, the
//! Hive/Spark convention.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

/// The directory name Hive uses for a null partition value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Splits rows by partition columns.
#[derive(Debug, Clone)]
pub struct Partitioner {
    /// Names of the partition columns.
    columns: Vec<String>,
    /// Indices of the partition columns in the input schema.
    key_indices: Vec<usize>,
    /// Indices of the columns that go into the files.
    data_indices: Vec<usize>,
    /// Schema of the file contents (input minus partition columns).
    file_schema: SchemaRef,
}

impl Partitioner {
    /// A partitioner for rows of `schema`; fails naming a missing column.
    pub fn try_new(schema: &Schema, columns: &[String]) -> Result<Self, String> {
        let mut key_indices = Vec::with_capacity(columns.len());
        for column in columns {
            let index = schema.index_of(column).map_err(|_| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                format!(
                    "partition column '{column}' is not a column of the query; its columns are: {}",
                    names.join(", ")
                )
            })?;
            if key_indices.contains(&index) {
                return Err(format!("partition column '{column}' is listed twice"));
            }
            key_indices.push(index);
        }
        let data_indices: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !key_indices.contains(i))
            .collect();
        if data_indices.is_empty() {
            return Err(
                "every column is a partition column; the files would hold no columns".into(),
            );
        }
        let file_schema = Arc::new(schema.project(&data_indices).map_err(|e| e.to_string())?);
        Ok(Self {
            columns: columns.to_vec(),
            key_indices,
            data_indices,
            file_schema,
        })
    }

    /// Schema of the rows written to files.
    pub fn file_schema(&self) -> &SchemaRef {
        &self.file_schema
    }

    /// The rows of `batch` per partition directory (relative, `""` when the
    /// sink is not partitioned), in directory order, without the partition
    /// columns.
    pub fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
        let data = RecordBatch::try_new(
            self.file_schema.clone(),
            self.data_indices
                .iter()
                .map(|&i| batch.column(i).clone())
                .collect(),
        )?;
        if self.key_indices.is_empty() {
            return Ok(vec![(String::new(), data)]);
        }
        let keys = self
            .key_indices
            .iter()
            .map(|&i| {
                let text = cast(batch.column(i), &DataType::Utf8)?;
                text.as_any()
                    .downcast_ref::<StringArray>()
                    .cloned()
                    .ok_or_else(|| ArrowError::CastError("partition value to text".into()))
            })
            .collect::<Result<Vec<StringArray>, ArrowError>>()?;
        let mut rows: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            let dir = self
                .columns
                .iter()
                .zip(&keys)
                .map(|(name, values)| {
                    let value = if values.is_null(row) {
                        NULL_PARTITION.to_string()
                    } else {
                        escape(values.value(row))
                    };
                    format!("{}={value}", escape(name))
                })
                .collect::<Vec<_>>()
                .join("/");
            rows.entry(dir).or_default().push(row as u32);
        }
        if rows.len() == 1 {
            return Ok(rows.into_keys().map(|dir| (dir, data.clone())).collect());
        }
        rows.into_iter()
            .map(|(dir, indices)| Ok((dir, take_record_batch(&data, &UInt32Array::from(indices))?)))
            .collect()
    }
}

/// Percent-encodes the characters Hive escapes in partition values, plus
/// space; `""` becomes `__HIVE_DEFAULT_PARTITION__` as in Hive.
pub fn escape(value: &str) -> String {
    if value.is_empty() {
        return NULL_PARTITION.to_string();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let unsafe_char = c.is_ascii_control()
            || matches!(
                c,
                ' ' | '"'
                    | '#'
                    | '%'
                    | '\''
                    | '*'
                    | '/'
                    | ':'
                    | '='
                    | '?'
                    | '\\'
                    | '{'
                    | '}'
                    | '['
                    | ']'
                    | '^'
            );
        if unsafe_char {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    // `.` and `..` are not directory names one can use.
    if out == "." || out == ".." {
        return out.replace('.', "%2E");
    }
    out
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, TimeUnit};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("n", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a/b"), None, Some("a/b")])),
                Arc::new(
                    TimestampMillisecondArray::from(vec![10_000, 10_000, 20_000])
                        .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn splits_by_escaped_values_and_drops_partition_columns() {
        let b = batch();
        let p = Partitioner::try_new(&b.schema(), &["k".into(), "ts".into()]).unwrap();
        let parts = p.split(&b).unwrap();
        let dirs: Vec<&str> = parts.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(
            dirs,
            vec![
                "k=__HIVE_DEFAULT_PARTITION__/ts=1970-01-01T00%3A00%3A10Z",
                "k=a%2Fb/ts=1970-01-01T00%3A00%3A10Z",
                "k=a%2Fb/ts=1970-01-01T00%3A00%3A20Z",
            ]
        );
        assert_eq!(parts[0].1.num_columns(), 1);
        assert_eq!(p.file_schema().field(0).name(), "n");
        let n = parts[1]
            .1
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(n.values(), &[1]);
    }

    #[test]
    fn unpartitioned_keeps_every_row_and_column() {
        let b = batch();
        let p = Partitioner::try_new(&b.schema(), &[]).unwrap();
        let parts = p.split(&b).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].0, "");
        assert_eq!(parts[0].1, b);
    }

    #[test]
    fn unknown_partition_column_lists_the_columns() {
        let err = Partitioner::try_new(&batch().schema(), &["x".into()]).unwrap_err();
        assert!(err.contains("'x'") && err.contains("k, ts, n"), "{err}");
    }

    #[test]
    fn escape_keeps_readable_values() {
        assert_eq!(escape("2026-01-01"), "2026-01-01");
        assert_eq!(escape("a b=c:d"), "a%20b%3Dc%3Ad");
        assert_eq!(escape(".."), "%2E%2E");
    }
}
