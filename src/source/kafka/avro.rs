//! `format = 'avro'`: message values are Avro binary datums of one writer
//! schema (option `avro.schema`, its JSON), decoded with arrow-rs' Avro
//! decoder (`arrow-avro`, the same arrow as DataFusion's) and mapped by
//! name onto the stream's declared columns.
//!
//! With `avro.confluent = 'true'` (the default) each value starts with
//! Confluent's wire header: magic byte 0 and a 4-byte schema id, which is
//! ignored (every message is read with `avro.schema`). With `'false'` a
//! value is the bare datum. The mode is not guessed from the first byte: a
//! bare datum may start with 0 too (a long 0, an empty string).
//!
//! The decoder only reads framed input, so each datum is given a fixed
//! Confluent header of schema id 0 before decoding. A chunk is decoded in
//! one go; if any message fails, each is checked alone (the checking
//! decoder is rebuilt after a failure: it may hold part of a row), the
//! malformed ones follow `on_error` and the rest are decoded together.

use arrow_avro::errors::AvroError;
use arrow_avro::reader::{Decoder, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, SchemaStore};
use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array, new_empty_array};
use datafusion::arrow::compute::{can_cast_types, cast};
use datafusion::arrow::datatypes::{Schema, SchemaRef};

use super::chunk::{Chunk, Columns};
use crate::format::{Format, FormatError, FormatKind, OnError};
use crate::options::{OptionError, Options};
use crate::source::SourceError;

/// The options `format = 'avro'` adds to the connector's.
pub(super) const AVRO_KEYS: &[&str] = &["avro.schema", "avro.confluent"];

/// A writer schema shown when `avro.schema` is missing.
const SCHEMA_EXAMPLE: &str =
    r#"{"type": "record", "name": "bid", "fields": [{"name": "id", "type": "long"}]}"#;

/// Name of the format in messages.
const NAME: &str = "avro";

/// Length of Confluent's wire header: magic byte 0, 4-byte big-endian schema id.
const CONFLUENT_HEADER: usize = 5;

/// Why a message with bytes after its datum is malformed.
const TRAILING: &str = "bytes left after the datum";

/// The header put before every datum for the decoder (schema id 0).
const FRAME_HEADER: [u8; CONFLUENT_HEADER] = [0; CONFLUENT_HEADER];

/// The messages that decode (indices in the chunk) and the malformed ones
/// skipped (index, why).
type Checked = (Vec<usize>, Vec<(usize, String)>);

/// How `format = 'avro'` values are read: the writer schema, the framing
/// and the malformed-message policy.
#[derive(Debug, Clone)]
pub struct AvroFormat {
    /// `avro.schema`: the writer schema as JSON.
    schema_json: String,
    /// `avro.confluent`: whether values carry Confluent's 5-byte header.
    confluent: bool,
    /// `on_error` (`dead_letter` has become `skip` by now).
    pub on_error: OnError,
    /// The Arrow columns the writer schema decodes into.
    columns: SchemaRef,
}

impl AvroFormat {
    /// Reads `avro.schema` (required, must parse as an Avro record schema),
    /// `avro.confluent` (default true) and `on_error`.
    pub fn parse(options: &Options) -> Result<Self, SourceError> {
        for key in ["header", "delimiter"] {
            if options.get(key).is_some() {
                return Err(options.invalid(key, "not used by format 'avro'").into());
            }
        }
        let on_error = Format::from_options(&options.without("format"), FormatKind::Text)?.on_error;
        let schema_json = options
            .get("avro.schema")
            .ok_or_else(|| OptionError::MissingWithExample {
                owner: "format 'avro'".into(),
                key: "avro.schema".into(),
                what: "the writer schema as JSON".into(),
                example: SCHEMA_EXAMPLE.into(),
            })?
            .to_string();
        let confluent = match options.get("avro.confluent").map(str::trim) {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(_) => {
                return Err(options
                    .invalid("avro.confluent", "expected 'true' or 'false'")
                    .into());
            }
        };
        let columns = decoder(&schema_json, 1)
            .map_err(|e| options.invalid("avro.schema", format!("not a usable Avro schema: {e}")))?
            .schema();
        Ok(Self {
            schema_json,
            confluent,
            on_error,
            columns,
        })
    }

    /// The columns the writer schema decodes into (a stream's columns when
    /// none are declared).
    pub fn columns(&self) -> SchemaRef {
        self.columns.clone()
    }

    /// Fails unless every declared column is a field of the writer schema
    /// whose type casts to the declared one.
    pub fn check_columns(&self, declared: &Schema) -> Result<(), SourceError> {
        for field in declared.fields() {
            let Some(index) = find(&self.columns, field.name()) else {
                return Err(SourceError::Schema(format!(
                    "column {} is not a field of the Avro schema in avro.schema (its fields: {})",
                    field.name(),
                    names(&self.columns)
                )));
            };
            let from = self.columns.field(index).data_type();
            if !can_cast_types(from, field.data_type()) {
                return Err(SourceError::Schema(format!(
                    "column {} is {} but Avro field {} decodes to {from}, which does not convert",
                    field.name(),
                    field.data_type(),
                    self.columns.field(index).name()
                )));
            }
        }
        Ok(())
    }

    /// The `values` columns of `chunk`'s messages, the messages kept
    /// (`None`: all) and the malformed ones under `on_error = 'skip'`.
    pub(super) fn decode(&self, chunk: &Chunk, values: &SchemaRef) -> Result<Columns, FormatError> {
        let all: Vec<usize> = (0..chunk.len()).collect();
        if let Some(batch) = self.decode_all(chunk, &all) {
            return Ok((self.project(Some(batch), values)?, None, Vec::new()));
        }
        let (good, rejected) = self.check_each(chunk)?;
        let batch = match good.is_empty() {
            true => None,
            false => self.decode_all(chunk, &good),
        };
        if !good.is_empty() && batch.is_none() {
            // Each decoded alone by `check_each`, so not expected.
            return Err(malformed(
                "messages that decode one by one failed together".into(),
            ));
        }
        let kept = UInt32Array::from_iter_values(good.iter().map(|i| *i as u32));
        Ok((self.project(batch, values)?, Some(kept), rejected))
    }

    /// The messages that decode alone and the malformed ones (index, why)
    /// under `on_error = 'skip'`; the first malformed one under `'fail'`.
    /// One decoder checks them all, rebuilt after a failure (it may hold
    /// part of a row then).
    fn check_each(&self, chunk: &Chunk) -> Result<Checked, FormatError> {
        let mut good = Vec::new();
        let mut rejected = Vec::new();
        let mut checker: Option<Decoder> = None;
        for i in 0..chunk.len() {
            let result = self.frame(chunk, i).and_then(|frame| {
                let decoder = match &mut checker {
                    Some(decoder) => decoder,
                    None => checker.insert(decoder(&self.schema_json, chunk.len())?),
                };
                let room = decoder.capacity();
                let used = decoder.decode(&frame).map_err(|e| match e {
                    // The decoder took what followed the datum for a next frame.
                    AvroError::ParseError(m) if m.starts_with("Missing magic") => {
                        TRAILING.to_string()
                    }
                    e => e.to_string(),
                })?;
                match (used == frame.len(), room - decoder.capacity()) {
                    (true, 1) => Ok(()),
                    (false, _) if used <= CONFLUENT_HEADER => Err(format!(
                        "{} bytes are not a complete datum of the writer schema",
                        frame.len() - CONFLUENT_HEADER
                    )),
                    _ => Err(TRAILING.to_string()),
                }
            });
            match result {
                Ok(()) => good.push(i),
                Err(why) => {
                    checker = None;
                    rejected.push((i, self.reject(chunk, i, why)?));
                }
            }
        }
        Ok((good, rejected))
    }

    /// The error of message `i`, malformed because of `why`: returned under
    /// `on_error = 'fail'`, its text under `'skip'`.
    fn reject(&self, chunk: &Chunk, i: usize, why: String) -> Result<String, FormatError> {
        let error = FormatError::Malformed {
            format: NAME,
            origin: chunk.origin(i),
            message: why,
        };
        match self.on_error {
            OnError::Fail => Err(error),
            OnError::Skip => Ok(error.to_string()),
        }
    }

    /// Messages `which` of `chunk` decoded by one decoder, or `None` if
    /// any of them is malformed.
    fn decode_all(&self, chunk: &Chunk, which: &[usize]) -> Option<RecordBatch> {
        let mut decoder = decoder(&self.schema_json, which.len().max(1)).ok()?;
        for &i in which {
            let frame = self.frame(chunk, i).ok()?;
            if decoder.decode(&frame).ok()? != frame.len() {
                return None;
            }
        }
        let batch = decoder.flush().ok()??;
        (batch.num_rows() == which.len()).then_some(batch)
    }

    /// Message `i`'s datum behind the decoder's header, or why it has none.
    fn frame(&self, chunk: &Chunk, i: usize) -> Result<Vec<u8>, String> {
        if !chunk.has_value[i] {
            return Err("message has no value".into());
        }
        let value = chunk.value(i);
        let datum = match self.confluent {
            false => value,
            true => match value.first() {
                Some(0) if value.len() >= CONFLUENT_HEADER => &value[CONFLUENT_HEADER..],
                _ => {
                    return Err(
                        "no Confluent wire header (magic byte 0 and a 4-byte schema id); \
                         for bare Avro datums set avro.confluent = 'false'"
                            .into(),
                    );
                }
            },
        };
        let mut frame = Vec::with_capacity(CONFLUENT_HEADER + datum.len());
        frame.extend_from_slice(&FRAME_HEADER);
        frame.extend_from_slice(datum);
        Ok(frame)
    }

    /// The `values` columns out of decoded `batch` (by name, cast to the
    /// declared types); empty columns when nothing decoded.
    fn project(
        &self,
        batch: Option<RecordBatch>,
        values: &SchemaRef,
    ) -> Result<Vec<ArrayRef>, FormatError> {
        let Some(batch) = batch else {
            return Ok((values.fields().iter())
                .map(|f| new_empty_array(f.data_type()))
                .collect());
        };
        let mut columns = Vec::with_capacity(values.fields().len());
        for field in values.fields() {
            let index = find(&batch.schema(), field.name()).ok_or_else(|| {
                malformed(format!("column {} is not in the Avro schema", field.name()))
            })?;
            let column = cast(batch.column(index), field.data_type())
                .map_err(|e| malformed(format!("column {}: {e}", field.name())))?;
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(malformed(format!(
                    "column {} is NOT NULL but a message has null there",
                    field.name()
                )));
            }
            columns.push(column);
        }
        Ok(columns)
    }
}

/// A decoder of datums of `schema_json` behind a Confluent header of
/// schema id 0, at most `batch_size` rows per flush.
fn decoder(schema_json: &str, batch_size: usize) -> Result<Decoder, String> {
    let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
    (store.set(Fingerprint::Id(0), AvroSchema::new(schema_json.to_string())))
        .map_err(|e| e.to_string())?;
    ReaderBuilder::new()
        .with_writer_schema_store(store)
        .with_batch_size(batch_size)
        .build_decoder()
        .map_err(|e| e.to_string())
}

/// The index of the field named `name` (exactly, else ignoring case).
fn find(schema: &Schema, name: &str) -> Option<usize> {
    let fields = schema.fields();
    (fields.iter().position(|f| f.name() == name))
        .or_else(|| (fields.iter()).position(|f| f.name().eq_ignore_ascii_case(name)))
}

/// The field names of `schema`, comma-separated.
fn names(schema: &Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names.join(", ")
}

fn malformed(message: String) -> FormatError {
    FormatError::Malformed {
        format: NAME,
        origin: "assembling a batch".into(),
        message,
    }
}

/// The tests' Avro encoder: one copy, shared with the integration tests.
#[cfg(test)]
#[path = "../../../tests/common/avro.rs"]
mod test_encoding;

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type};
    use std::sync::Arc;

    const SCHEMA: &str = r#"{"type": "record", "name": "bid", "fields": [
        {"name": "user", "type": "string"}, {"name": "amount", "type": "long"}]}"#;

    use super::test_encoding::{bid, long};

    fn chunk(values: &[Vec<u8>]) -> Chunk {
        let mut c = Chunk::new(0, "t", 0);
        for (i, v) in values.iter().enumerate() {
            c.values.extend_from_slice(v);
            c.ends.push(c.values.len());
            c.has_value.push(true);
            c.keys.append_null();
            c.offsets.push(i as i64);
            c.timestamps.push(None);
            c.header_ends.push(0);
        }
        c
    }

    fn format(extra: &[(&str, &str)]) -> Result<AvroFormat, SourceError> {
        let mut pairs = vec![("format", "avro"), ("avro.schema", SCHEMA)];
        pairs.extend_from_slice(extra);
        AvroFormat::parse(&Options::new(pairs))
    }

    fn values() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("amount", DataType::Int64, true),
            Field::new("user", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn confluent_and_bare_datums_decode_by_column_name() {
        let confluent = format(&[]).unwrap();
        let c = chunk(&[bid("ann", 5, true), bid("bob", -300, true)]);
        let (columns, kept, rejected) = confluent.decode(&c, &values()).unwrap();
        assert!(kept.is_none() && rejected.is_empty());
        let amounts = columns[0].as_primitive::<Int64Type>().values().to_vec();
        let users: Vec<_> = columns[1].as_string::<i32>().iter().flatten().collect();
        assert_eq!((amounts, users), (vec![5, -300], vec!["ann", "bob"]));
        let bare = format(&[("avro.confluent", "false")]).unwrap();
        let (columns, _, _) = bare
            .decode(&chunk(&[bid("c", 0, false)]), &values())
            .unwrap();
        assert_eq!(columns[0].as_primitive::<Int64Type>().value(0), 0);
        // A bare datum under the default is refused, pointing at the option.
        let err = confluent
            .decode(&chunk(&[bid("c", 1, false)]), &values())
            .unwrap_err();
        assert!(
            err.to_string().contains("avro.confluent = 'false'"),
            "{err}"
        );
    }

    #[test]
    fn malformed_datums_are_skipped_or_fail_naming_the_offset() {
        let mut truncated = bid("long name", 1, true);
        truncated.truncate(8);
        let mut trailing = bid("x", 2, true);
        trailing.push(9);
        let messages = [bid("a", 1, true), truncated, trailing, bid("d", 4, true)];
        let skip = format(&[("on_error", "skip")]).unwrap();
        let (columns, kept, rejected) = skip.decode(&chunk(&messages), &values()).unwrap();
        assert_eq!(kept.unwrap().values().to_vec(), [0, 3]);
        assert_eq!(
            columns[0].as_primitive::<Int64Type>().values().to_vec(),
            [1, 4]
        );
        let offsets: Vec<usize> = rejected.iter().map(|r| r.0).collect();
        assert_eq!(offsets, [1, 2]);
        assert!(
            rejected[0].1.contains("not a complete datum"),
            "{rejected:?}"
        );
        assert!(rejected[1].1.contains(TRAILING), "{rejected:?}");
        let err = format(&[]).unwrap().decode(&chunk(&messages), &values());
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains("kafka topic 't' partition 0 offset 1"),
            "{err}"
        );
    }

    #[test]
    fn nullable_unions_become_nulls_and_types_are_cast() {
        let schema = r#"{"type": "record", "name": "r", "fields": [
            {"name": "note", "type": ["null", "string"]}, {"name": "n", "type": "int"}]}"#;
        let options = [("format", "avro"), ("avro.schema", schema)];
        let avro = AvroFormat::parse(&Options::new(options)).unwrap();
        // note: union branch 0 (null) / branch 1 + "hi"; n: int 3 / -1.
        let messages = [
            vec![0, 0, 0, 0, 1, 0, 6],
            [vec![0, 0, 0, 0, 1, 2], long(2), b"hi".to_vec(), long(-1)].concat(),
        ];
        let values = Arc::new(Schema::new(vec![
            Field::new("note", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        avro.check_columns(&values).unwrap();
        let (columns, _, _) = avro.decode(&chunk(&messages), &values).unwrap();
        let notes: Vec<_> = columns[0].as_string::<i32>().iter().collect();
        assert_eq!(notes, [None, Some("hi")]);
        assert_eq!(
            columns[1].as_primitive::<Int64Type>().values().to_vec(),
            [3, -1]
        );
    }

    #[test]
    fn options_and_columns_are_checked_up_front() {
        let err = AvroFormat::parse(&Options::new([("format", "avro")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "format 'avro' needs option 'avro.schema' (the writer schema as JSON), \
                 e.g. WITH (avro.schema = '{SCHEMA_EXAMPLE}')"
            )
        );
        // The example is a schema the format accepts.
        AvroFormat::parse(&Options::new([
            ("format", "avro"),
            ("avro.schema", SCHEMA_EXAMPLE),
        ]))
        .unwrap();
        let err = AvroFormat::parse(&Options::new([("format", "avro"), ("avro.schema", "{")]));
        assert!(err.unwrap_err().to_string().contains("avro.schema"));
        let err = format(&[("avro.confluent", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("avro.confluent"), "{err}");
        let avro = format(&[]).unwrap();
        avro.check_columns(&values()).unwrap();
        let names: Vec<_> = avro
            .columns()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["user", "amount"]);
        let missing = Schema::new(vec![Field::new("price", DataType::Int64, true)]);
        let err = avro.check_columns(&missing).unwrap_err().to_string();
        assert!(
            err.contains("price") && err.contains("user, amount"),
            "{err}"
        );
    }
}
