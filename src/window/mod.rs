//! Window state: which batches a window covers and when it closes. A window
//! is the union of the batches whose `_batch_time` falls in
//! `[window_start, window_end)` (processing time, DStream's
//! `window(length, slide)`); windows are aligned to the epoch.
//!
//! Data flow: source → decode → `Batch` → **window state** → query → sink.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

use crate::batch::time_type;

/// Column with the inclusive start of a row's window.
pub const WINDOW_START: &str = "window_start";
/// Column with the exclusive end of a row's window.
pub const WINDOW_END: &str = "window_end";

/// A window's parameters are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Size or slide is zero or negative.
    #[error("{function} {what} must be positive, got {ms} ms")]
    NotPositive {
        function: &'static str,
        what: &'static str,
        ms: i64,
    },
    /// HOP size is not a whole number of slides.
    #[error("HOP size ({size_ms} ms) must be a multiple of its slide ({slide_ms} ms)")]
    SizeNotMultipleOfSlide { size_ms: i64, slide_ms: i64 },
    /// A processing-time window that does not line up with batches.
    #[error(
        "{function} {what} ({ms} ms) is not a multiple of batch_interval ({interval_ms} ms): a \
         processing-time window is a union of whole batches; pick a multiple or SET batch_interval"
    )]
    NotMultipleOfInterval {
        function: &'static str,
        what: &'static str,
        ms: i64,
        interval_ms: i64,
    },
}

/// Tumbling (size = slide) or hopping (sliding) windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// `TUMBLE(stream, time, size)`.
    Tumble,
    /// `HOP(stream, time, slide, size)`.
    Hop,
}

/// Size and slide of a window function call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Tumbling or hopping.
    pub kind: WindowKind,
    /// Window length in ms.
    pub size_ms: i64,
    /// Distance between window starts in ms (= size for TUMBLE).
    pub slide_ms: i64,
}

impl WindowSpec {
    /// Validates a window over processing time with batches every `interval_ms`.
    pub fn new(
        kind: WindowKind,
        size_ms: i64,
        slide_ms: i64,
        interval_ms: i64,
    ) -> Result<Self, WindowError> {
        let function = match kind {
            WindowKind::Tumble => "TUMBLE",
            WindowKind::Hop => "HOP",
        };
        for (what, ms) in [("size", size_ms), ("slide", slide_ms)] {
            if ms <= 0 {
                return Err(WindowError::NotPositive { function, what, ms });
            }
        }
        if size_ms % slide_ms != 0 {
            return Err(WindowError::SizeNotMultipleOfSlide { size_ms, slide_ms });
        }
        for (what, ms) in [("size", size_ms), ("slide", slide_ms)] {
            if ms % interval_ms != 0 {
                return Err(WindowError::NotMultipleOfInterval {
                    function,
                    what,
                    ms,
                    interval_ms,
                });
            }
        }
        Ok(Self {
            kind,
            size_ms,
            slide_ms,
        })
    }

    /// The window `[start, end)` that the batch at `batch_time_ms` completes,
    /// if any: the one whose last batch it is.
    pub fn closed_by(&self, batch_time_ms: i64, interval_ms: i64) -> Option<(i64, i64)> {
        let end = batch_time_ms + interval_ms;
        (end.rem_euclid(self.slide_ms) == 0).then(|| (end - self.size_ms, end))
    }
}

/// The batches an open window may still need, oldest first.
#[derive(Debug)]
pub struct WindowBuffer {
    spec: WindowSpec,
    batches: VecDeque<(i64, Vec<RecordBatch>)>,
}

impl WindowBuffer {
    /// An empty buffer for windows of `spec`.
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            batches: VecDeque::new(),
        }
    }

    /// Adds the batch with time `time_ms` (times must increase).
    pub fn push(&mut self, time_ms: i64, data: Vec<RecordBatch>) {
        self.batches.push_back((time_ms, data));
    }

    /// The union of the buffered batches in `[start, end)`; then forgets the
    /// batches that no later window needs (those before `end + slide - size`).
    pub fn take_window(&mut self, start: i64, end: i64) -> Vec<RecordBatch> {
        let rows = self
            .batches
            .iter()
            .filter(|(t, _)| (start..end).contains(t))
            .flat_map(|(_, data)| data.iter().cloned())
            .collect();
        let keep_from = end + self.spec.slide_ms - self.spec.size_ms;
        while self.batches.front().is_some_and(|(t, _)| *t < keep_from) {
            self.batches.pop_front();
        }
        rows
    }

    /// True when some buffered batch holds rows (an open window is not empty).
    pub fn has_rows(&self) -> bool {
        self.batches
            .iter()
            .any(|(_, data)| data.iter().any(|b| b.num_rows() > 0))
    }

    /// Number of rows held, for state-size reporting.
    pub fn rows(&self) -> usize {
        self.batches
            .iter()
            .flat_map(|(_, d)| d)
            .map(RecordBatch::num_rows)
            .sum()
    }
}

/// Adds `window_start` and `window_end` to a schema.
pub fn with_window_columns(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(WINDOW_START, time_type(), false));
    fields.push(Field::new(WINDOW_END, time_type(), false));
    Arc::new(Schema::new(fields))
}

/// Appends constant `window_start`/`window_end` columns to every batch.
pub fn stamp_window(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    (start, end): (i64, i64),
) -> Result<Vec<RecordBatch>, ArrowError> {
    batches
        .iter()
        .map(|b| {
            let mut columns: Vec<ArrayRef> = b.columns().to_vec();
            columns.push(Arc::new(TimestampMillisecondArray::from(vec![
                start;
                b.num_rows()
            ])));
            columns.push(Arc::new(TimestampMillisecondArray::from(vec![
                end;
                b.num_rows()
            ])));
            RecordBatch::try_new(schema.clone(), columns)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::DataType;

    fn rows(n: i64) -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        vec![RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![n]))]).unwrap()]
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(matches!(
            WindowSpec::new(WindowKind::Hop, 0, 1000, 1000),
            Err(WindowError::NotPositive { .. })
        ));
        assert!(matches!(
            WindowSpec::new(WindowKind::Hop, 3000, 2000, 1000),
            Err(WindowError::SizeNotMultipleOfSlide { .. })
        ));
        let err = WindowSpec::new(WindowKind::Tumble, 1500, 1500, 1000).unwrap_err();
        assert!(
            err.to_string()
                .contains("not a multiple of batch_interval (1000 ms)"),
            "{err}"
        );
    }

    #[test]
    fn a_hop_window_closes_after_its_last_batch_and_unions_its_batches() {
        let spec = WindowSpec::new(WindowKind::Hop, 4000, 2000, 1000).unwrap();
        let mut buffer = WindowBuffer::new(spec);
        let mut emitted = Vec::new();
        for t in (10_000..16_000).step_by(1000) {
            buffer.push(t, rows(t / 1000));
            if let Some((s, e)) = spec.closed_by(t, 1000) {
                let xs: Vec<i64> = buffer
                    .take_window(s, e)
                    .iter()
                    .map(|b| {
                        b.column(0)
                            .as_any()
                            .downcast_ref::<Int64Array>()
                            .unwrap()
                            .value(0)
                    })
                    .collect();
                emitted.push((s, e, xs));
            }
        }
        assert_eq!(
            emitted,
            vec![
                (8_000, 12_000, vec![10, 11]),
                (10_000, 14_000, vec![10, 11, 12, 13]),
                (12_000, 16_000, vec![12, 13, 14, 15])
            ]
        );
        assert!(buffer.rows() <= 2, "batches no window needs are dropped");
    }
}
