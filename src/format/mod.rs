//! Decoding: bytes → Arrow. A `Format` turns complete records (lines of JSON,
//! CSV rows, text lines) into `RecordBatch`es with arrow-json / arrow-csv, and
//! applies the malformed-record policy (`on_error = 'fail' | 'skip'`).
//!
//! Data flow: source → **decode** → `Batch` → window state → query → sink.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json;

use crate::options::{OptionError, Options};

/// Formats a stream may declare with `format = '...'`.
pub const FORMATS: &[&str] = &["json", "csv", "text"];

/// How many records schema inference looks at.
const INFER_RECORDS: usize = 1000;

/// Rows per decoded record batch.
const BATCH_ROWS: usize = 64 * 1024;

/// A record that cannot be decoded, or a format that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// `format = '...'` names no known format.
    #[error("unknown format '{name}'; valid formats are: {valid}")]
    UnknownFormat {
        /// The format as written.
        name: String,
        /// The formats, comma-separated.
        valid: String,
    },
    /// A format option is unknown, missing or malformed.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// Records that do not parse under the stream's schema.
    #[error(
        "malformed {format} in {origin}: {message}. Fix the input, declare matching columns, \
         or set on_error = 'skip' to skip and count bad records"
    )]
    Malformed {
        /// The format (`csv`, `json`).
        format: &'static str,
        /// Where the records came from (a file and line, a socket).
        origin: String,
        /// The decoder's message.
        message: String,
    },
    /// No schema was declared and none could be inferred.
    #[error("cannot infer a schema from {origin}: {message}; declare the columns in CREATE STREAM")]
    Inference {
        /// What was read to infer it (a file).
        origin: String,
        /// Why inference failed.
        message: String,
    },
}

/// What to do with a record that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop the query with an error naming the input (default).
    Fail,
    /// Skip the record and count it in progress metrics.
    Skip,
}

/// The kind of encoding of a stream's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    /// Newline-delimited JSON objects (arrow-json).
    Json,
    /// Comma- (or `delimiter`-) separated values (arrow-csv).
    Csv,
    /// One `line` column per line of text.
    Text,
}

/// A stream's decoding settings, parsed once from its `WITH` options.
#[derive(Debug, Clone)]
pub struct Format {
    /// Encoding of the records.
    pub kind: FormatKind,
    /// CSV: whether files start with a header row (default true).
    pub header: bool,
    /// CSV field delimiter (default `,`).
    pub delimiter: u8,
    /// Malformed-record policy.
    pub on_error: OnError,
}

/// Rows decoded from one chunk of input.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The decoded rows (none when the chunk held none).
    pub batches: Vec<RecordBatch>,
    /// Records skipped as malformed (only with `on_error = 'skip'`).
    pub skipped: u64,
}

/// The schema of the `text` format: a single non-null `line` column.
pub fn text_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]))
}

impl Format {
    /// Reads `format`, `header`, `delimiter` and `on_error` from `options`;
    /// `default` is the format when none is given.
    pub fn from_options(options: &Options, default: FormatKind) -> Result<Self, FormatError> {
        let kind = match options
            .get("format")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => default,
            Some("json") | Some("ndjson") => FormatKind::Json,
            Some("csv") => FormatKind::Csv,
            Some("text") => FormatKind::Text,
            Some(other) => {
                return Err(FormatError::UnknownFormat {
                    name: other.to_string(),
                    valid: FORMATS.join(", "),
                });
            }
        };
        let delimiter = match options.get("delimiter") {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(_) => {
                return Err(options
                    .invalid("delimiter", "expected a single ASCII character")
                    .into());
            }
        };
        let on_error = match options
            .get("on_error")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("fail") => OnError::Fail,
            Some("skip") => OnError::Skip,
            Some(_) => {
                return Err(options
                    .invalid("on_error", "expected 'fail' or 'skip'")
                    .into());
            }
        };
        Ok(Self {
            kind,
            header: options.parse_or("header", true)?,
            delimiter,
            on_error,
        })
    }

    /// Short lower-case name used in messages.
    pub fn name(&self) -> &'static str {
        match self.kind {
            FormatKind::Json => "json",
            FormatKind::Csv => "csv",
            FormatKind::Text => "text",
        }
    }

    /// The schema to use when the user declared `declared` (or nothing):
    /// text has a fixed schema; json and csv need declared columns unless the
    /// connector can infer them from data (see [`Format::infer_schema`]).
    pub fn fixed_schema(&self, declared: Option<SchemaRef>) -> Option<SchemaRef> {
        match (self.kind, declared) {
            (_, Some(schema)) => Some(schema),
            (FormatKind::Text, None) => Some(text_schema()),
            _ => None,
        }
    }

    /// Infers a schema from a sample of the input (json and csv).
    pub fn infer_schema(&self, sample: &[u8], origin: &str) -> Result<SchemaRef, FormatError> {
        let inference = |message: String| FormatError::Inference {
            origin: origin.to_string(),
            message,
        };
        match self.kind {
            FormatKind::Text => Ok(text_schema()),
            FormatKind::Json => {
                let sample = self.json_inference_sample(sample, origin)?;
                let (schema, _) =
                    json::reader::infer_json_schema(Cursor::new(sample), Some(INFER_RECORDS))
                        .map_err(|e| inference(e.to_string()))?;
                Ok(Arc::new(schema))
            }
            FormatKind::Csv => {
                let (schema, _) = csv::reader::Format::default()
                    .with_header(self.header)
                    .with_delimiter(self.delimiter)
                    .infer_schema(Cursor::new(sample), Some(INFER_RECORDS))
                    .map_err(|e| inference(e.to_string()))?;
                Ok(Arc::new(schema))
            }
        }
    }

    /// The JSON records of `sample` schema inference reads: its first
    /// [`INFER_RECORDS`] lines that are valid JSON. A malformed line fails
    /// with its line number in the file (arrow would say "line 1", the line
    /// within the record), or is left out with `on_error = 'skip'`.
    fn json_inference_sample(&self, sample: &[u8], origin: &str) -> Result<Vec<u8>, FormatError> {
        let mut good = Vec::with_capacity(sample.len().min(1 << 20));
        let mut records = 0;
        for (n, line) in sample.split(|b| *b == b'\n').enumerate() {
            if records == INFER_RECORDS {
                break;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match json::reader::infer_json_schema(Cursor::new(line), None) {
                Ok(_) => {
                    good.extend_from_slice(line);
                    good.push(b'\n');
                    records += 1;
                }
                Err(_) if self.on_error == OnError::Skip => {}
                Err(e) => {
                    return Err(FormatError::Inference {
                        origin: format!("{origin} line {}", n + 1),
                        message: format!(
                            "{} (set on_error = 'skip' to skip malformed records)",
                            e.to_string().replace(" at line 1 column ", " at column ")
                        ),
                    });
                }
            }
        }
        Ok(good)
    }

    /// Decodes complete records in `data` under `schema`. `with_header` tells
    /// whether `data` starts with a CSV header row to skip (whole files), and
    /// `origin` names the input in error messages.
    pub fn decode(
        &self,
        schema: &SchemaRef,
        data: &[u8],
        with_header: bool,
        origin: &str,
    ) -> Result<Decoded, FormatError> {
        match self.decode_all(schema, data, with_header) {
            Ok(batches) => Ok(Decoded {
                batches,
                skipped: 0,
            }),
            Err(message) if self.on_error == OnError::Fail => Err(FormatError::Malformed {
                format: self.name(),
                origin: origin.to_string(),
                message,
            }),
            Err(_) => Ok(self.decode_line_by_line(schema, data, with_header)),
        }
    }

    fn decode_all(
        &self,
        schema: &SchemaRef,
        data: &[u8],
        with_header: bool,
    ) -> Result<Vec<RecordBatch>, String> {
        match self.kind {
            FormatKind::Text => {
                let text = std::str::from_utf8(data).map_err(|e| {
                    let before = &data[..e.valid_up_to()];
                    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                    format!("invalid UTF-8 on line {line}")
                })?;
                let lines: StringArray = text
                    .lines()
                    .map(|l| Some(l.trim_end_matches('\r')))
                    .collect();
                if datafusion::arrow::array::Array::is_empty(&lines) {
                    return Ok(Vec::new());
                }
                RecordBatch::try_new(schema.clone(), vec![Arc::new(lines)])
                    .map(|b| vec![b])
                    .map_err(|e| e.to_string())
            }
            FormatKind::Json => {
                let mut decoder = json::ReaderBuilder::new(schema.clone())
                    .with_batch_size(BATCH_ROWS)
                    .build_decoder()
                    .map_err(|e| e.to_string())?;
                let (mut batches, mut rest) = (Vec::new(), data);
                loop {
                    let consumed = decoder.decode(rest).map_err(|e| e.to_string())?;
                    rest = &rest[consumed..];
                    batches.extend(decoder.flush().map_err(|e| e.to_string())?);
                    if rest.is_empty() || consumed == 0 {
                        return Ok(batches);
                    }
                }
            }
            FormatKind::Csv => csv::ReaderBuilder::new(schema.clone())
                .with_header(with_header)
                .with_delimiter(self.delimiter)
                .with_batch_size(BATCH_ROWS)
                .build(Cursor::new(data))
                .map_err(|e| e.to_string())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string()),
        }
    }

    /// The `on_error = 'skip'` path: decode each line alone, keep the good ones.
    fn decode_line_by_line(&self, schema: &SchemaRef, data: &[u8], with_header: bool) -> Decoded {
        if self.kind == FormatKind::Text {
            return Self::decode_text_lines(schema, data);
        }
        let mut lines = data
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
        if with_header && self.kind == FormatKind::Csv {
            lines.next();
        }
        let mut good = Vec::new();
        let mut skipped = 0;
        for line in lines {
            match self.decode_all(schema, line, false) {
                Ok(batches) => good.extend(batches),
                Err(_) => skipped += 1,
            }
        }
        // One batch rather than one per line.
        let batches = match datafusion::arrow::compute::concat_batches(schema, &good) {
            Ok(batch) if batch.num_rows() > 0 => vec![batch],
            Ok(_) => Vec::new(),
            Err(_) => good,
        };
        Decoded { batches, skipped }
    }

    /// Text with `on_error = 'skip'`: a row per line that is valid UTF-8
    /// (blank lines included, as in `decode_all`), the others counted.
    fn decode_text_lines(schema: &SchemaRef, data: &[u8]) -> Decoded {
        let data = data.strip_suffix(b"\n").unwrap_or(data);
        let mut skipped = 0;
        let lines: StringArray = data
            .split(|b| *b == b'\n')
            .filter_map(|line| match std::str::from_utf8(line) {
                Ok(line) => Some(Some(line.trim_end_matches('\r'))),
                Err(_) => {
                    skipped += 1;
                    None
                }
            })
            .collect();
        let batches = match RecordBatch::try_new(schema.clone(), vec![Arc::new(lines)]) {
            Ok(batch) if batch.num_rows() > 0 => vec![batch],
            _ => Vec::new(),
        };
        Decoded { batches, skipped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;

    fn format(pairs: &[(&str, &str)]) -> Format {
        Format::from_options(&Options::new(pairs.iter().copied()), FormatKind::Text).unwrap()
    }

    fn show(d: &Decoded) -> String {
        pretty_format_batches(&d.batches).unwrap().to_string()
    }

    #[test]
    fn infers_and_decodes_csv_with_header() {
        let f = format(&[("format", "csv")]);
        let data = b"word,n\nhello,1\nworld,2\n";
        let schema = f.infer_schema(data, "t.csv").unwrap();
        assert_eq!(schema.field(1).data_type(), &DataType::Int64);
        let d = f.decode(&schema, data, true, "t.csv").unwrap();
        assert_eq!(d.batches[0].num_rows(), 2);
        assert!(show(&d).contains("| world | 2 |"));
    }

    #[test]
    fn malformed_json_fails_with_the_origin_unless_skipped() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let data = b"{\"a\": 1}\n{\"a\": oops}\n{\"a\": 3}\n";
        let err = format(&[("format", "json")])
            .decode(&schema, data, false, "in.json")
            .unwrap_err();
        assert!(
            err.to_string().contains("malformed json in in.json"),
            "{err}"
        );
        let d = format(&[("format", "json"), ("on_error", "skip")])
            .decode(&schema, data, false, "in.json")
            .unwrap();
        assert_eq!((d.batches[0].num_rows(), d.skipped), (2, 1));
    }

    #[test]
    fn text_lines_become_one_column() {
        let d = format(&[])
            .decode(&text_schema(), b"a b\r\nc\n", false, "x")
            .unwrap();
        assert_eq!(show(&d).lines().filter(|l| l.starts_with("| ")).count(), 3);
    }

    #[test]
    fn invalid_utf8_text_is_malformed_not_replaced() {
        let data = b"a\nb\xff\n\nc\n";
        let err = format(&[])
            .decode(&text_schema(), data, false, "in.txt")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("malformed text in in.txt: invalid UTF-8 on line 2"),
            "{err}"
        );
        let d = format(&[("on_error", "skip")])
            .decode(&text_schema(), data, false, "in.txt")
            .unwrap();
        assert_eq!(d.skipped, 1);
        let lines = d.batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>();
        let lines: Vec<_> = lines.unwrap().iter().flatten().collect();
        assert_eq!(lines, ["a", "", "c"]);
    }

    #[test]
    fn json_inference_names_the_malformed_line_or_skips_it() {
        let data = b"{\"a\": 1}\n\n{\"a\": oops}\n{\"b\": \"x\"}\n";
        let err = format(&[("format", "json")])
            .infer_schema(data, "in.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("from in.json line 3: "), "{err}");
        assert!(!err.contains("line 1"), "{err}");
        let schema = format(&[("format", "json"), ("on_error", "skip")])
            .infer_schema(data, "in.json")
            .unwrap();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn unknown_format_lists_valid_ones() {
        let err =
            Format::from_options(&Options::new([("format", "xml")]), FormatKind::Text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown format 'xml'; valid formats are: json, csv, text"
        );
    }
}
