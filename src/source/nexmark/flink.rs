//! Flink's form of the `nexmark` connector: one table of all events, as
//! declared by nexmark-flink's `ddl_gen.sql`:
//!
//! ```sql
//! CREATE TABLE datagen (
//!     event_type int,                  -- 0 person, 1 auction, 2 bid
//!     person  ROW<id BIGINT, name VARCHAR, ...>,
//!     auction ROW<id BIGINT, itemName VARCHAR, ...>,
//!     bid     ROW<auction BIGINT, bidder BIGINT, ...>
//! ) WITH ('connector' = 'nexmark', 'events.num' = '...', ...)
//! ```
//!
//! Each row is one event, **in generation order** (event `n`, `n + 1`, ...),
//! so `dateTime` never decreases within or across batches. The struct of the
//! event's kind is set and the other two are NULL. Struct values are taken
//! from the per-kind generator ([`NexmarkGenerator::generate`]) for the same
//! events, so `bid.*` here equals a `kind = 'bid'` stream row for row; they
//! are spread over the rows of their kind without copying string bytes.
//!
//! A declared schema may list the top-level columns, and the fields of each
//! `ROW`, in any order and may leave some out; names match exactly or
//! case-insensitively, types must be equal (nullability is not checked;
//! `VARCHAR` may be any of `Utf8`, `LargeUtf8`, `Utf8View`), and batches
//! carry exactly the declared schema.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, Int32Array, PrimitiveArray, RecordBatch,
    StringArray, StructArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
use datafusion::arrow::error::ArrowError;

use super::generator::{NexmarkGenerator, NexmarkKind, schema};
use super::{SourceError, fits};

/// Name of the column holding the event kind (0 person, 1 auction, 2 bid).
pub const EVENT_TYPE: &str = "event_type";

/// The kinds in `event_type` order.
const KINDS: [NexmarkKind; 3] = [NexmarkKind::Person, NexmarkKind::Auction, NexmarkKind::Bid];

/// Full schema of a combined stream: `event_type Int32` then one nullable
/// struct per kind (`person`, `auction`, `bid`) with the per-kind columns.
pub fn combined_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields = vec![Field::new(EVENT_TYPE, DataType::Int32, false)];
            for kind in KINDS {
                fields.push(Field::new(kind.name(), struct_type(kind), true));
            }
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// The `ROW<...>` type of `kind`: its per-kind columns, nullable (they are
/// NULL whenever the event is of another kind).
fn struct_type(kind: NexmarkKind) -> DataType {
    let fields: Fields = schema(kind)
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    DataType::Struct(fields)
}

/// True when a declared schema is in Flink's combined form (has
/// `event_type` or a `ROW` column), so that no `kind` option is needed.
pub fn looks_combined(declared: &Schema) -> bool {
    declared.fields().iter().any(|f| {
        f.name().eq_ignore_ascii_case(EVENT_TYPE) || matches!(f.data_type(), DataType::Struct(_))
    })
}

/// How to build one declared top-level column.
#[derive(Debug, Clone)]
enum Column {
    /// `event_type`.
    EventType,
    /// The struct of `kind`, with the declared `fields` taken from the
    /// per-kind columns at `indices`.
    Kind {
        kind: NexmarkKind,
        fields: Fields,
        indices: Vec<usize>,
    },
}

/// A checked declared schema and how to fill each of its columns.
#[derive(Debug, Clone)]
pub struct CombinedLayout {
    schema: SchemaRef,
    columns: Vec<Column>,
}

/// Index of `name` among `fields`: exact match first, then case-insensitive.
fn find(fields: &Fields, name: &str) -> Option<usize> {
    fields.iter().position(|f| f.name() == name).or_else(|| {
        fields
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(name))
    })
}

/// `name TYPE, ...` of `fields`, for error messages.
fn describe(fields: &Fields) -> String {
    fields
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mismatch(column: &str, reason: String) -> SourceError {
    SourceError::Schema(format!(
        "column '{column}' does not fit a combined nexmark stream: {reason}; declare (a subset of) \
         event_type INT, person ROW<...>, auction ROW<...>, bid ROW<...> as in nexmark-flink's ddl_gen.sql"
    ))
}

impl CombinedLayout {
    /// Checks `declared` (or takes the full [`combined_schema`] when it has no
    /// columns) against what the generator produces; the error names the
    /// first column (`bid.price` for a nested one) that does not fit.
    pub fn new(declared: Option<SchemaRef>) -> Result<Self, SourceError> {
        let schema = match declared {
            Some(d) if !d.fields().is_empty() => d,
            _ => combined_schema(),
        };
        let full = combined_schema();
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let Some(i) = find(full.fields(), field.name()) else {
                return Err(mismatch(
                    field.name(),
                    format!(
                        "there is no such column; valid columns are: {}",
                        describe(full.fields())
                    ),
                ));
            };
            if i == 0 {
                if field.data_type() != &DataType::Int32 {
                    return Err(mismatch(
                        field.name(),
                        format!("it has type Int32 (INT), not {}", field.data_type()),
                    ));
                }
                columns.push(Column::EventType);
                continue;
            }
            let kind = KINDS[i - 1];
            let DataType::Struct(declared_fields) = field.data_type() else {
                return Err(mismatch(
                    field.name(),
                    format!(
                        "it is a ROW<{}>, not {}",
                        describe(schema_fields(kind)),
                        field.data_type()
                    ),
                ));
            };
            let available = schema_fields(kind);
            let mut indices = Vec::with_capacity(declared_fields.len());
            for child in declared_fields {
                let path = format!("{}.{}", field.name(), child.name());
                let Some(j) = find(available, child.name()) else {
                    return Err(mismatch(
                        &path,
                        format!(
                            "{} events have no field '{}'; valid fields are: {}",
                            kind.name(),
                            child.name(),
                            describe(available)
                        ),
                    ));
                };
                let expected = available[j].data_type();
                if !fits(child.data_type(), expected) {
                    return Err(mismatch(
                        &path,
                        format!("it has type {expected}, not {}", child.data_type()),
                    ));
                }
                indices.push(j);
            }
            columns.push(Column::Kind {
                kind,
                fields: declared_fields.clone(),
                indices,
            });
        }
        Ok(CombinedLayout { schema, columns })
    }

    /// The schema of the batches this layout builds (the declared one).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// All events `[from, to)` in generation order, one batch per
    /// `batch_rows` events.
    pub fn generate(
        &self,
        generator: &NexmarkGenerator,
        from: u64,
        to: u64,
        batch_rows: usize,
    ) -> Result<Vec<RecordBatch>, SourceError> {
        let step = batch_rows.max(1) as u64;
        let mut out = Vec::new();
        let mut start = from;
        while start < to {
            let end = to.min(start.saturating_add(step));
            out.push(self.chunk(generator, start, end)?);
            start = end;
        }
        Ok(out)
    }

    /// One batch of the events `[from, to)`.
    fn chunk(
        &self,
        generator: &NexmarkGenerator,
        from: u64,
        to: u64,
    ) -> Result<RecordBatch, SourceError> {
        let failed = |e: datafusion::arrow::error::ArrowError| {
            SourceError::Schema(format!("building combined nexmark rows failed: {e}"))
        };
        let rows = (to - from) as usize;
        let mix = generator.proportions();
        let kinds: Vec<NexmarkKind> = (from..to).map(|n| mix.of_event(n)).collect();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            match column {
                Column::EventType => arrays.push(Arc::new(Int32Array::from_iter_values(
                    kinds.iter().map(|k| k.event_type()),
                ))),
                Column::Kind {
                    kind,
                    fields,
                    indices,
                } => {
                    // Row i of the struct holds the next event of `kind`, or is NULL.
                    let valid =
                        NullBuffer::from(kinds.iter().map(|k| k == kind).collect::<Vec<_>>());
                    if valid.null_count() == rows {
                        arrays.push(Arc::new(StructArray::new_null(fields.clone(), rows)));
                        continue;
                    }
                    let mut generated = generator.generate(*kind, from, to);
                    let events = if generated.len() == 1 {
                        generated.remove(0)
                    } else {
                        concat_batches(&schema(*kind), &generated).map_err(failed)?
                    };
                    let children = indices
                        .iter()
                        .zip(fields.iter())
                        .map(|(&j, field)| {
                            let column = spread(events.column(j), &valid)?;
                            if column.data_type() == field.data_type() {
                                Ok(column)
                            } else {
                                cast(&column, field.data_type())
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(failed)?;
                    let array = StructArray::try_new(fields.clone(), children, Some(valid))
                        .map_err(failed)?;
                    arrays.push(Arc::new(array));
                }
            }
        }
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(failed)
    }
}

/// Spreads `values` (the events of one kind, in order) over the rows set in
/// `valid`, NULL elsewhere, without copying string bytes.
fn spread(values: &ArrayRef, valid: &NullBuffer) -> Result<ArrayRef, ArrowError> {
    if values.len() != valid.len() - valid.null_count() || values.null_count() > 0 {
        return Err(ArrowError::InvalidArgumentError(format!(
            "{} generated values for {} rows",
            values.len(),
            valid.len() - valid.null_count()
        )));
    }
    match values.data_type() {
        DataType::Int64 => Ok(Arc::new(spread_primitive(
            values.as_primitive::<Int64Type>(),
            valid,
        ))),
        DataType::Timestamp(_, None) => Ok(Arc::new(spread_primitive(
            values.as_primitive::<TimestampMillisecondType>(),
            valid,
        ))),
        DataType::Utf8 => {
            let strings = values.as_string::<i32>();
            let source = strings.value_offsets();
            let mut offsets = Vec::with_capacity(valid.len() + 1);
            let mut k = 0;
            offsets.push(source[0]);
            for set in valid.iter() {
                k += usize::from(set);
                offsets.push(source[k]);
            }
            let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
            Ok(Arc::new(StringArray::try_new(
                offsets,
                strings.values().clone(),
                Some(valid.clone()),
            )?))
        }
        other => Err(ArrowError::NotYetImplemented(format!(
            "spreading nexmark values of type {other}"
        ))),
    }
}

fn spread_primitive<T: ArrowPrimitiveType>(
    values: &PrimitiveArray<T>,
    valid: &NullBuffer,
) -> PrimitiveArray<T> {
    let mut out = vec![T::Native::default(); valid.len()];
    for (row, value) in valid.valid_indices().zip(values.values().iter()) {
        out[row] = *value;
    }
    PrimitiveArray::new(ScalarBuffer::from(out), Some(valid.clone()))
}

/// The per-kind fields of `kind` as they appear inside its `ROW`.
fn schema_fields(kind: NexmarkKind) -> &'static Fields {
    static FIELDS: OnceLock<[Fields; 3]> = OnceLock::new();
    let all = FIELDS.get_or_init(|| {
        KINDS.map(|k| match struct_type(k) {
            DataType::Struct(fields) => fields,
            _ => Fields::empty(),
        })
    });
    &all[kind.event_type() as usize]
}
