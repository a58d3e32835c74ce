//! Rows → Kafka messages: the value, key and topic of each row of a result
//! batch, encoded with arrow's own JSON and CSV writers (the same encodings
//! as the `ndjson` and `csv` file sinks), or taken as raw bytes.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::LineDelimitedWriter;

use super::options::{KafkaSinkOptions, SinkFormat, TopicChoice};

/// The messages of one result batch, one entry per row.
#[derive(Debug, Default)]
pub struct Encoded {
    /// Message values; `None` for a raw NULL value (a tombstone).
    pub values: Vec<Option<Vec<u8>>>,
    /// Message keys, when the sink has `key` columns.
    pub keys: Option<Vec<Option<Vec<u8>>>>,
    /// Per-row topics, when the sink has `topic.column`.
    pub topics: Option<Vec<String>>,
}

/// Encodes every row of `batch` as the sink's options say.
pub fn encode(batch: &RecordBatch, opts: &KafkaSinkOptions) -> Result<Encoded, ArrowError> {
    let values = encode_columns(batch, &opts.value, opts.format)?;
    let keys = if opts.key.is_empty() {
        None
    } else {
        Some(encode_columns(batch, &opts.key, opts.format)?)
    };
    let topics = match opts.topic {
        TopicChoice::Fixed(_) => None,
        TopicChoice::Column(index) => {
            let column = cast(batch.column(index), &DataType::Utf8)?;
            let column = column.as_string::<i32>();
            let name = batch.schema().field(index).name().clone();
            let topics = (0..column.len())
                .map(|i| {
                    if column.is_null(i) || column.value(i).is_empty() {
                        Err(ArrowError::InvalidArgumentError(format!(
                            "a row has no topic: column '{name}' (topic.column) is NULL or empty"
                        )))
                    } else {
                        Ok(column.value(i).to_string())
                    }
                })
                .collect::<Result<_, _>>()?;
            Some(topics)
        }
    };
    Ok(Encoded {
        values,
        keys,
        topics,
    })
}

/// Encodes columns `columns` of every row of `batch` in `format`.
fn encode_columns(
    batch: &RecordBatch,
    columns: &[usize],
    format: SinkFormat,
) -> Result<Vec<Option<Vec<u8>>>, ArrowError> {
    let projected = batch.project(columns)?;
    match format {
        SinkFormat::Json => {
            // JSON escapes newlines inside strings: one line per row.
            let mut out = Vec::new();
            let mut writer = LineDelimitedWriter::new(&mut out);
            writer.write(&projected)?;
            writer.finish()?;
            drop(writer);
            let rows: Vec<Option<Vec<u8>>> = out
                .split(|b| *b == b'\n')
                .take(projected.num_rows())
                .map(|line| Some(line.to_vec()))
                .collect();
            if rows.len() != projected.num_rows() {
                return Err(ArrowError::JsonError(format!(
                    "{} JSON lines for {} rows",
                    rows.len(),
                    projected.num_rows()
                )));
            }
            Ok(rows)
        }
        SinkFormat::Csv => {
            // A quoted CSV field may hold a newline: encode row by row.
            (0..projected.num_rows())
                .map(|i| {
                    let mut out = Vec::new();
                    let mut writer = csv::WriterBuilder::new().with_header(false).build(&mut out);
                    writer.write(&projected.slice(i, 1))?;
                    drop(writer);
                    while out.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        out.pop();
                    }
                    Ok(Some(out))
                })
                .collect()
        }
        SinkFormat::Raw => {
            let column = cast(projected.column(0), &DataType::Binary)?;
            let column = column.as_binary::<i32>();
            Ok((0..column.len())
                .map(|i| (!column.is_null(i)).then(|| column.value(i).to_vec()))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a,\"b\"\nc"), Some("d")])),
                Arc::new(Int64Array::from(vec![Some(1), None])),
            ],
        )
        .unwrap()
    }

    fn opts(pairs: &[(&'static str, &'static str)]) -> KafkaSinkOptions {
        let mut all = vec![("bootstrap.servers", "x:1"), ("topic", "t")];
        all.extend_from_slice(pairs);
        KafkaSinkOptions::parse("s", &Options::new(all), &batch().schema()).unwrap()
    }

    fn text(rows: &[Option<Vec<u8>>]) -> Vec<String> {
        rows.iter()
            .map(|r| String::from_utf8(r.clone().unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn json_and_csv_one_message_per_row_even_with_newlines() {
        let json = encode(&batch(), &opts(&[("key", "n")])).unwrap();
        assert_eq!(
            text(&json.values),
            [r#"{"user":"a,\"b\"\nc","n":1}"#, r#"{"user":"d"}"#]
        );
        assert_eq!(text(&json.keys.unwrap()), [r#"{"n":1}"#, "{}"]);
        let csv = encode(&batch(), &opts(&[("format", "csv"), ("key", "user")])).unwrap();
        assert_eq!(text(&csv.values), ["\"a,\"\"b\"\"\nc\",1", "d,"]);
        assert_eq!(text(&csv.keys.unwrap())[1], "d");
    }
}
