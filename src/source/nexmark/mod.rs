//! The built-in `nexmark` connector: the Nexmark benchmark's person, auction
//! and bid events from a deterministic generator ([`generator`]), in one of
//! two shapes:
//!
//! - **per kind** (`kind = 'person' | 'auction' | 'bid'`, default `bid`): one
//!   kind's flat columns (`auction, bidder, price, channel, url, dateTime,
//!   extra` for bids), optionally a declared subset in any order;
//! - **combined**, Flink's form (`kind = 'all'`, or no `kind` and declared
//!   columns with `event_type` or a `ROW`): every event in generation order
//!   as `event_type INT, person ROW<...>, auction ROW<...>, bid ROW<...>`
//!   ([`flink`]), so nexmark-flink's `ddl_gen.sql` works as written.
//!
//! Options ([`settings`]): `seed`; `events` or `events.num` (total events,
//! then the stream is drained; 0 or absent = unbounded); `rate` or
//! `first-event.rate` (events per second of simulated time: a batch of
//! interval I covers `rate * I` events; `next-event.rate`, if given, must be
//! equal, since the rate is constant); `person.proportion`,
//! `auction.proportion`, `bid.proportion` (the event mix, default 1 : 3 : 46,
//! each 1..=1000000, see [`mix`]); `keep-alive` (`true`: never drained);
//! `stop-at` (emit events before this id, then stop; -1 = never);
//! `max-emit-speed` (accepted and ignored: batches are never paced by the
//! wall clock); `batch_rows` (rows per `RecordBatch`); `partitions` (source
//! partitions, default 1: event `n` goes to partition `n % partitions`, each
//! partition with its own watermark, like a parallel source whose subtasks
//! each emit their share of the generator's events).
//!
//! Event `n` happens at `start + n * 1000 / rate` ms, where `start` is the
//! start of the first polled batch; a batch emits the events before its time.
//! A batch's range is in global event numbers, `[start, end)`, the same for
//! every partition (partition `p` holds the events `n` in it with
//! `n % partitions == p`).

pub mod flink;
pub mod generator;
mod kind;
pub mod mix;
pub mod settings;
mod values;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};

pub use flink::CombinedLayout;
pub use generator::{NexmarkGenerator, NexmarkKind, schema};
pub use mix::Proportions;
pub use settings::{Mode, Settings};

use super::{Options, PollContext, Source, SourceData, SourceError};
use crate::batch::SourceOffset;

/// Whether a column declared as `declared` can carry generated `generated`
/// values: the same type, or any string type for a string (SQL `VARCHAR`
/// may map to `Utf8View`); values are cast to the declared type.
pub(crate) fn fits(declared: &DataType, generated: &DataType) -> bool {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    declared == generated || (text(declared) && text(generated))
}

/// `columns` cast, where needed, to the types of `schema`'s fields.
pub(crate) fn cast_to(
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column)
            } else {
                cast(&column, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// Index in `full` of the column named `name` (exact match first, then
/// case-insensitive, since unquoted SQL identifiers are lower-cased).
fn find_column(full: &Schema, name: &str) -> Option<usize> {
    full.index_of(name).ok().or_else(|| {
        full.fields()
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(name))
    })
}

/// Indices in the standard schema of `kind` of the columns of `declared`.
fn projection(kind: NexmarkKind, declared: &Schema) -> Result<Vec<usize>, SourceError> {
    let full = schema(kind);
    let valid = || {
        full.fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    declared
        .fields()
        .iter()
        .map(|field| {
            let Some(i) = find_column(&full, field.name()) else {
                return Err(SourceError::Schema(format!(
                    "nexmark {} streams have no column '{}'; valid columns are: {}",
                    kind.name(),
                    field.name(),
                    valid()
                )));
            };
            let expected = full.field(i).data_type();
            if !fits(field.data_type(), expected) {
                return Err(SourceError::Schema(format!(
                    "column '{}' of a nexmark {} stream has type {expected}, not {}; valid columns are: {}",
                    field.name(),
                    kind.name(),
                    field.data_type(),
                    valid()
                )));
            }
            Ok(i)
        })
        .collect()
}

/// The schema a nexmark stream will have. Per kind: declared columns, if
/// any, must each exist in the kind's schema with the same type (the result
/// is that projection, in the declared order, with the declared names),
/// otherwise the kind's full schema. Combined: see [`CombinedLayout::new`].
/// Errors name the first column that does not fit and list the valid ones.
pub fn resolve_schema(
    declared: Option<SchemaRef>,
    options: &Options,
) -> Result<SchemaRef, SourceError> {
    let settings = Settings::parse(options, declared.as_deref())?;
    Ok(Shape::new(&settings, declared)?.schema)
}

/// What a source emits and how it builds it from the generator.
enum Emit {
    /// One kind; `projection` = its columns to emit, `None` for all as is.
    Kind {
        kind: NexmarkKind,
        projection: Option<Vec<usize>>,
    },
    /// All events in Flink's form.
    Combined(CombinedLayout),
}

/// The checked schema of a stream and how to emit it.
struct Shape {
    schema: SchemaRef,
    emit: Emit,
}

impl Shape {
    /// Checks `declared` against the mode of `settings`.
    fn new(settings: &Settings, declared: Option<SchemaRef>) -> Result<Self, SourceError> {
        let declared = declared.filter(|d| !d.fields().is_empty());
        match settings.mode {
            Mode::Combined => {
                let layout = CombinedLayout::new(declared)?;
                Ok(Shape {
                    schema: layout.schema(),
                    emit: Emit::Combined(layout),
                })
            }
            Mode::Kind(kind) => {
                let full = schema(kind);
                match declared {
                    Some(declared) if declared != full => Ok(Shape {
                        emit: Emit::Kind {
                            kind,
                            projection: Some(projection(kind, &declared)?),
                        },
                        schema: declared,
                    }),
                    _ => Ok(Shape {
                        schema: full,
                        emit: Emit::Kind {
                            kind,
                            projection: None,
                        },
                    }),
                }
            }
        }
    }
}

/// A running `nexmark` source: emits, at every batch, the events whose time
/// falls before the batch time, in its shape (one kind or combined).
pub struct NexmarkSource {
    settings: Settings,
    shape: Shape,
    /// Created at the first poll, which fixes the time of event 0.
    generator: Option<NexmarkGenerator>,
    /// Next global event number to emit.
    next: u64,
}

impl NexmarkSource {
    /// Opens a generator for a stream of `schema` (as resolved by [`resolve_schema`]).
    pub fn open(schema: SchemaRef, options: &Options) -> Result<Self, SourceError> {
        let settings = Settings::parse(options, Some(&schema))?;
        let shape = Shape::new(&settings, Some(schema))?;
        Ok(NexmarkSource {
            settings,
            shape,
            generator: None,
            next: 0,
        })
    }

    /// First event number whose time is at or after `batch_time_ms`.
    fn end_of(generator: &NexmarkGenerator, batch_time_ms: i64) -> u64 {
        let elapsed = i128::from(batch_time_ms) - i128::from(generator.base_ms);
        if elapsed <= 0 {
            return 0;
        }
        // event_time(n) < T  <=>  n * 1000 / rate < elapsed  <=>  n < elapsed * rate / 1000.
        let end = (elapsed * i128::from(generator.rate) + 999) / 1000;
        u64::try_from(end).unwrap_or(u64::MAX)
    }
}

impl Source for NexmarkSource {
    fn schema(&self) -> SchemaRef {
        self.shape.schema.clone()
    }

    fn poll_batch(&mut self, ctx: &PollContext) -> Result<SourceData, SourceError> {
        self.poll_range(ctx, None)
    }

    fn partition_count(&self) -> u32 {
        self.settings.partitions
    }

    fn is_drained(&self) -> bool {
        !self.settings.keep_alive
            && self
                .settings
                .events
                .is_some_and(|events| self.next >= events)
    }

    /// `next` (the next event number) and, once the first poll fixed it,
    /// `@` and the time of event 0.
    fn position(&self) -> Result<String, SourceError> {
        Ok(match &self.generator {
            Some(generator) => format!("{}@{}", self.next, generator.base_ms),
            None => self.next.to_string(),
        })
    }

    fn seek(&mut self, position: &str) -> Result<(), SourceError> {
        let (next, base) = parse_position(position)?;
        self.next = next;
        self.generator = base.map(|base| self.new_generator(base));
        Ok(())
    }

    fn poll_to(&mut self, ctx: &PollContext, position: &str) -> Result<SourceData, SourceError> {
        let (to, _) = parse_position(position)?;
        self.poll_range(ctx, Some(to))
    }
}

/// `next[@base_ms]`, as [`Source::position`] writes it.
fn parse_position(position: &str) -> Result<(u64, Option<i64>), SourceError> {
    let bad = || {
        SourceError::Runtime(format!(
            "nexmark: the checkpoint's position '{position}' is not <event>[@<base ms>]"
        ))
    };
    let (next, base) = match position.split_once('@') {
        Some((n, b)) => (n, Some(b.parse().map_err(|_| bad())?)),
        None => (position, None),
    };
    Ok((next.parse().map_err(|_| bad())?, base))
}

impl NexmarkSource {
    /// The generator with event 0 at `base_ms`.
    fn new_generator(&self, base_ms: i64) -> NexmarkGenerator {
        let settings = &self.settings;
        NexmarkGenerator::new(settings.seed, settings.rate, base_ms)
            .with_batch_rows(settings.batch_rows)
            .with_proportions(settings.mix)
            .with_out_of_order_group(settings.out_of_order_group)
    }

    /// The events up to the batch time of `ctx`, or up to event `bound`
    /// when given (a replay).
    fn poll_range(
        &mut self,
        ctx: &PollContext,
        bound: Option<u64>,
    ) -> Result<SourceData, SourceError> {
        let events = self.settings.events;
        let batch_rows = self.settings.batch_rows;
        let from = self.next;
        let settings = &self.settings;
        let shape = &self.shape;
        // Created on the first poll, with event 0 at the start of that batch.
        let generator = self.generator.get_or_insert_with(|| {
            NexmarkGenerator::new(
                settings.seed,
                settings.rate,
                ctx.batch_time_ms.saturating_sub(ctx.interval_ms),
            )
            .with_batch_rows(batch_rows)
            .with_proportions(settings.mix)
            .with_out_of_order_group(settings.out_of_order_group)
        });
        let mut to = Self::end_of(generator, ctx.batch_time_ms).max(from);
        if let Some(events) = events {
            to = to.min(events).max(from);
        }
        if let Some(bound) = bound {
            to = bound.max(from);
        }
        let data = match &shape.emit {
            Emit::Combined(layout) => layout.generate(generator, from, to, batch_rows)?,
            Emit::Kind {
                kind,
                projection: None,
            } => generator.generate(*kind, from, to),
            Emit::Kind {
                kind,
                projection: Some(indices),
            } => generator
                .generate(*kind, from, to)
                .iter()
                .map(|b| {
                    b.project(indices)
                        .and_then(|p| cast_to(&shape.schema, p.columns().to_vec()))
                        .map_err(|e| SourceError::Schema(format!("nexmark projection failed: {e}")))
                })
                .collect::<Result<_, _>>()?,
        };
        self.next = to;
        let partitions = self.settings.partitions;
        let offsets = (0..partitions)
            .map(|p| SourceOffset {
                partition: p.to_string(),
                start: from.to_string(),
                end: to.to_string(),
            })
            .collect();
        let mut out = SourceData {
            offsets,
            ..SourceData::default()
        };
        if partitions == 1 {
            out.data = data;
            return Ok(out);
        }
        let split = match &shape.emit {
            Emit::Combined(_) => split_by_event(data, from..to, partitions),
            Emit::Kind { kind, .. } => {
                let mix = self.settings.mix;
                let events = (from..to).filter(|n| mix.of_event(*n) == *kind);
                split_by_event(data, events, partitions)
            }
        }?;
        for (p, batches) in split.into_iter().enumerate() {
            out.extend_partition(p as u32, batches);
        }
        Ok(out)
    }
}

/// Splits `batches`, whose rows are the events numbered `events` in order,
/// over `partitions` partitions: event `n` goes to partition `n % partitions`.
/// Returns each partition's batches, rows in the same order.
fn split_by_event(
    batches: Vec<RecordBatch>,
    mut events: impl Iterator<Item = u64>,
    partitions: u32,
) -> Result<Vec<Vec<RecordBatch>>, SourceError> {
    use datafusion::arrow::array::UInt32Array;
    let failed = |e: datafusion::arrow::error::ArrowError| {
        SourceError::Schema(format!(
            "splitting nexmark events over partitions failed: {e}"
        ))
    };
    let mut out = vec![Vec::new(); partitions as usize];
    for batch in batches {
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); partitions as usize];
        for row in 0..batch.num_rows() {
            let n = events.next().ok_or_else(|| {
                SourceError::Schema("nexmark generated more rows than events".into())
            })?;
            rows[(n % u64::from(partitions)) as usize].push(row as u32);
        }
        for (p, rows) in rows.into_iter().enumerate() {
            if rows.len() == batch.num_rows() {
                out[p].push(batch.clone());
            } else if !rows.is_empty() {
                let taken =
                    datafusion::arrow::compute::take_record_batch(&batch, &UInt32Array::from(rows))
                        .map_err(failed)?;
                out[p].push(taken);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
