//! Kafka messages → Arrow rows: each message is one row of the stream's
//! columns (decoded from its value) followed by the system columns `_key`,
//! `_topic`, `_partition`, `_offset`, `_timestamp` and `_headers` (a list of
//! `{key, value}` structs, empty for a message without headers).
//!
//! json and csv values of a chunk are decoded in one go through
//! [`crate::format`]; if that fails or does not give one row per message,
//! each message is decoded alone, so a malformed one is skipped (or named
//! by topic, partition and offset) without misaligning the system columns.
//! avro values are decoded by [`super::avro`].

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};

use super::chunk::{Chunk, Columns};
use super::options::ValueFormat;
use crate::format::{Format, FormatError, FormatKind, OnError};

/// The system columns every kafka stream has after its own columns.
pub const KAFKA_COLUMNS: &[&str] = &[
    "_key",
    "_topic",
    "_partition",
    "_offset",
    "_timestamp",
    "_headers",
];

/// The fields of [`KAFKA_COLUMNS`].
pub fn system_fields() -> Vec<Field> {
    vec![
        Field::new("_key", DataType::Binary, true),
        Field::new("_topic", DataType::Utf8, false),
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new("_timestamp", crate::batch::time_type(), true),
        Field::new("_headers", DataType::List(header_item()), false),
    ]
}

/// The fields of one header: `key` (a string in Kafka) and `value` (bytes,
/// null when the header has none).
fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

/// The item field of the `_headers` list.
fn header_item() -> FieldRef {
    Arc::new(Field::new("item", DataType::Struct(header_fields()), false))
}

/// The `_headers` column of `chunk`: each message's headers in order.
fn headers_column(chunk: &mut Chunk) -> Result<ArrayRef, FormatError> {
    let keys = chunk.header_keys.finish();
    let values = chunk.header_values.finish();
    let pairs = StructArray::try_new(
        header_fields(),
        vec![Arc::new(keys), Arc::new(values)],
        None,
    )
    .map_err(|e| arrow_error(&e.to_string()))?;
    let mut ends = Vec::with_capacity(chunk.header_ends.len() + 1);
    ends.push(0);
    ends.extend_from_slice(&chunk.header_ends);
    // Ascending from 0 by construction (`KafkaConsumer::take`).
    let offsets = OffsetBuffer::<i32>::new(ends.into());
    let list = ListArray::try_new(header_item(), offsets, Arc::new(pairs), None)
        .map_err(|e| arrow_error(&e.to_string()))?;
    Ok(Arc::new(list))
}

/// The schema of the decoded values alone: `schema` without the system columns.
pub fn value_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| !KAFKA_COLUMNS.contains(&f.name().as_str()))
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
}

/// Rows decoded from one chunk, and the messages left out.
#[derive(Debug)]
pub struct DecodedChunk {
    /// One batch in the stream's full schema (none when nothing decoded).
    pub batch: Option<RecordBatch>,
    /// Malformed messages skipped under `on_error = 'skip'` (or
    /// `'dead_letter'`): `rejected.len()`.
    pub skipped: u64,
    /// The skipped messages, as they came, with why they were rejected
    /// (what `on_error = 'dead_letter'` writes out).
    pub rejected: Vec<Rejected>,
}

/// A malformed message left out of the rows: its bytes and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Its offset in the chunk's partition.
    pub offset: i64,
    /// Its key, if it had one.
    pub key: Option<Vec<u8>>,
    /// Its value, if it had one (a tombstone has none).
    pub value: Option<Vec<u8>>,
    /// The decode error.
    pub error: String,
}

/// Decodes `chunk` into `schema` (values in `values`, then system columns).
pub fn decode_chunk(
    chunk: &mut Chunk,
    schema: &SchemaRef,
    values: &SchemaRef,
    format: &ValueFormat,
) -> Result<DecodedChunk, FormatError> {
    let (columns, kept, reasons) = match format {
        ValueFormat::Raw => {
            let array: BinaryArray = (0..chunk.len())
                .map(|i| chunk.has_value[i].then(|| chunk.value(i)))
                .collect();
            (vec![Arc::new(array) as ArrayRef], None, Vec::new())
        }
        ValueFormat::Decoded(f) if f.kind == FormatKind::Text => decode_text(chunk, f)?,
        ValueFormat::Decoded(f) => decode_records(chunk, values, f)?,
        ValueFormat::Avro(f) => f.decode(chunk, values)?,
    };
    let keys = chunk.keys.finish();
    let rejected: Vec<Rejected> = (reasons.into_iter())
        .map(|(i, error)| Rejected {
            offset: chunk.offsets[i],
            key: keys.is_valid(i).then(|| keys.value(i).to_vec()),
            value: chunk.has_value[i].then(|| chunk.value(i).to_vec()),
            error,
        })
        .collect();
    let skipped = rejected.len() as u64;
    let system = system_columns(chunk, keys, kept.as_ref())?;
    let rows = system[0].len();
    if rows == 0 {
        return Ok(DecodedChunk {
            batch: None,
            skipped,
            rejected,
        });
    }
    let mut all = Vec::with_capacity(schema.fields().len());
    let mut own = columns.into_iter();
    for field in schema.fields() {
        match KAFKA_COLUMNS.iter().position(|c| c == field.name()) {
            Some(i) => all.push(system[i].clone()),
            None => all.push(
                own.next()
                    .ok_or_else(|| arrow_error("missing value column"))?,
            ),
        }
    }
    let batch =
        RecordBatch::try_new(schema.clone(), all).map_err(|e| arrow_error(&e.to_string()))?;
    Ok(DecodedChunk {
        batch: Some(batch),
        skipped,
        rejected,
    })
}

/// text: each message is one `line` (not split at newlines); a value that is
/// not UTF-8 (or absent) is malformed.
fn decode_text(chunk: &Chunk, format: &Format) -> Result<Columns, FormatError> {
    let mut lines = Vec::with_capacity(chunk.len());
    let mut kept = Vec::new();
    let mut rejected = Vec::new();
    for i in 0..chunk.len() {
        let text = match (chunk.has_value[i], std::str::from_utf8(chunk.value(i))) {
            (true, Ok(text)) => text,
            (has_value, _) => {
                let why = if has_value {
                    "invalid UTF-8"
                } else {
                    "message has no value"
                };
                rejected.push((i, malformed(format, chunk, i, why)?));
                continue;
            }
        };
        lines.push(
            text.strip_suffix('\n')
                .unwrap_or(text)
                .trim_end_matches('\r'),
        );
        kept.push(i as u32);
    }
    let array: ArrayRef = Arc::new(StringArray::from(lines));
    let kept = (!rejected.is_empty()).then(|| UInt32Array::from(kept));
    Ok((vec![array], kept, rejected))
}

/// json / csv: the whole chunk at once, message by message if that fails.
fn decode_records(
    chunk: &Chunk,
    values: &SchemaRef,
    format: &Format,
) -> Result<Columns, FormatError> {
    let strict = Format {
        on_error: OnError::Fail,
        ..format.clone()
    };
    if chunk.has_value.iter().all(|v| *v) {
        let mut joined = Vec::with_capacity(chunk.values.len() + chunk.len());
        for i in 0..chunk.len() {
            joined.extend_from_slice(chunk.value(i));
            joined.push(b'\n');
        }
        if let Ok(decoded) = strict.decode(values, &joined, false, "kafka") {
            let rows: usize = decoded.batches.iter().map(RecordBatch::num_rows).sum();
            if rows == chunk.len() {
                return Ok((columns_of(values, &decoded.batches)?, None, Vec::new()));
            }
        }
    }
    let mut good = Vec::new();
    let mut kept = Vec::new();
    let mut rejected = Vec::new();
    for i in 0..chunk.len() {
        let result = if chunk.has_value[i] {
            strict.decode(values, chunk.value(i), false, &chunk.origin(i))
        } else {
            Err(FormatError::Malformed {
                format: strict.name(),
                origin: chunk.origin(i),
                message: "message has no value".into(),
            })
        };
        match result {
            Ok(decoded) => {
                let rows: usize = decoded.batches.iter().map(RecordBatch::num_rows).sum();
                if rows == 1 {
                    good.extend(decoded.batches);
                    kept.push(i as u32);
                } else {
                    let why = format!("{rows} records in one message, expected 1");
                    rejected.push((i, malformed(format, chunk, i, &why)?));
                }
            }
            Err(e) if format.on_error == OnError::Fail => return Err(e),
            Err(e) => rejected.push((i, e.to_string())),
        }
    }
    Ok((
        columns_of(values, &good)?,
        Some(UInt32Array::from(kept)),
        rejected,
    ))
}

/// The columns of `batches` concatenated.
fn columns_of(values: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<ArrayRef>, FormatError> {
    let batch = concat_batches(values, batches).map_err(|e| arrow_error(&e.to_string()))?;
    Ok(batch.columns().to_vec())
}

/// Message `i` is malformed because of `why`: the error under `on_error =
/// 'fail'`, its text (to skip it with) under `skip`.
fn malformed(format: &Format, chunk: &Chunk, i: usize, why: &str) -> Result<String, FormatError> {
    let error = FormatError::Malformed {
        format: format.name(),
        origin: chunk.origin(i),
        message: why.to_string(),
    };
    match format.on_error {
        OnError::Skip => Ok(error.to_string()),
        OnError::Fail => Err(error),
    }
}

/// `_key, _topic, _partition, _offset, _timestamp, _headers` of the `kept` messages.
fn system_columns(
    chunk: &mut Chunk,
    keys: BinaryArray,
    kept: Option<&UInt32Array>,
) -> Result<Vec<ArrayRef>, FormatError> {
    let n = chunk.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(keys),
        Arc::new(StringArray::from(vec![chunk.topic.as_str(); n])),
        Arc::new(Int32Array::from(vec![chunk.kafka_partition; n])),
        Arc::new(Int64Array::from(chunk.offsets.clone())),
        Arc::new(TimestampMillisecondArray::from(chunk.timestamps.clone())),
        headers_column(chunk)?,
    ];
    match kept {
        None => Ok(columns),
        Some(indices) => columns
            .iter()
            .map(|c| take(c, indices, None).map_err(|e| arrow_error(&e.to_string())))
            .collect(),
    }
}

fn arrow_error(message: &str) -> FormatError {
    FormatError::Malformed {
        format: "kafka",
        origin: "assembling a batch".into(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;
    use datafusion::arrow::array::{Array, ArrayBuilder, AsArray};
    use datafusion::arrow::datatypes::Int64Type;

    fn chunk(values: &[Option<&str>]) -> Chunk {
        let mut c = Chunk::new(1, "t", 1);
        for (i, v) in values.iter().enumerate() {
            if i % 2 == 1 {
                c.header_keys.append_value("h");
                c.header_values.append_value(format!("v{i}"));
            }
            c.header_ends.push(c.header_keys.len() as i32);
            c.values.extend_from_slice(v.unwrap_or_default().as_bytes());
            c.ends.push(c.values.len());
            c.has_value.push(v.is_some());
            c.keys.append_value(format!("k{i}"));
            c.offsets.push(10 + i as i64);
            c.timestamps.push(Some(1000 + i as i64));
        }
        c
    }

    fn schema_of(values: Vec<Field>) -> (SchemaRef, SchemaRef) {
        let value = Arc::new(Schema::new(values.clone()));
        let full = Arc::new(Schema::new([values, system_fields()].concat()));
        (full, value)
    }

    fn format(pairs: &[(&str, &str)]) -> ValueFormat {
        let f = Format::from_options(&Options::new(pairs.iter().copied()), FormatKind::Text);
        ValueFormat::Decoded(f.unwrap())
    }

    #[test]
    fn json_rows_carry_their_offsets() {
        let (full, value) = schema_of(vec![Field::new("a", DataType::Int64, true)]);
        let mut c = chunk(&[Some(r#"{"a": 1}"#), Some(r#"{"a": 2}"#)]);
        let d = decode_chunk(&mut c, &full, &value, &format(&[("format", "json")])).unwrap();
        let batch = d.batch.unwrap();
        assert_eq!(batch.num_columns(), 7);
        let offsets = batch.column(4).as_primitive::<Int64Type>();
        assert_eq!(offsets.values().to_vec(), [10, 11]);
    }

    #[test]
    fn malformed_json_is_skipped_keeping_rows_aligned_or_named() {
        let (full, value) = schema_of(vec![Field::new("a", DataType::Int64, true)]);
        let values = [Some(r#"{"a": 1}"#), Some("oops"), None, Some(r#"{"a": 3}"#)];
        let skip = format(&[("format", "json"), ("on_error", "skip")]);
        let d = decode_chunk(&mut chunk(&values), &full, &value, &skip).unwrap();
        assert_eq!(d.skipped, 2);
        let rejected: Vec<_> = (d.rejected.iter())
            .map(|r| (r.offset, r.key.clone(), r.value.clone()))
            .collect();
        assert_eq!(
            rejected,
            [
                (11, Some(b"k1".to_vec()), Some(b"oops".to_vec())),
                (12, Some(b"k2".to_vec()), None)
            ]
        );
        assert!(
            d.rejected[0].error.contains("offset 11"),
            "{:?}",
            d.rejected
        );
        let batch = d.batch.unwrap();
        let a = batch.column(0).as_primitive::<Int64Type>();
        let offsets = batch.column(4).as_primitive::<Int64Type>();
        assert_eq!(
            (a.values().to_vec(), offsets.values().to_vec()),
            (vec![1, 3], vec![10, 13])
        );
        let fail = format(&[("format", "json")]);
        let err = decode_chunk(&mut chunk(&values), &full, &value, &fail).unwrap_err();
        assert!(
            err.to_string()
                .contains("kafka topic 't' partition 1 offset 11"),
            "{err}"
        );
    }

    #[test]
    fn text_is_one_line_per_message_and_raw_keeps_bytes() {
        let (full, value) = schema_of(vec![Field::new("line", DataType::Utf8, false)]);
        let mut c = chunk(&[Some("a b\n"), Some("c\nd")]);
        let d = decode_chunk(&mut c, &full, &value, &format(&[])).unwrap();
        let lines = d.batch.unwrap().column(0).as_string::<i32>().clone();
        assert_eq!(lines.iter().flatten().collect::<Vec<_>>(), ["a b", "c\nd"]);
        let (full, value) = schema_of(vec![Field::new("value", DataType::Binary, true)]);
        let mut c = chunk(&[Some("x"), None]);
        let batch = decode_chunk(&mut c, &full, &value, &ValueFormat::Raw)
            .unwrap()
            .batch
            .unwrap();
        let raw = batch.column(0).as_binary::<i32>();
        assert_eq!((raw.value(0), raw.is_null(1)), (&b"x"[..], true));
    }

    #[test]
    fn csv_messages_are_rows_without_header() {
        let (full, value) = schema_of(vec![
            Field::new("w", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]);
        let mut c = chunk(&[Some("a,1"), Some("b,2")]);
        let d = decode_chunk(&mut c, &full, &value, &format(&[("format", "csv")])).unwrap();
        assert_eq!(d.batch.unwrap().num_rows(), 2);
    }
}
