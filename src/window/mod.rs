//! Windows: which rows a window covers and when it closes. A window is the
//! union of the rows whose time falls in `[window_start, window_end)`, aligned
//! to the epoch; over processing time (`_batch_time`, `PROCTIME()`) that is the
//! union of whole batches (DStream's `window(length, slide)`), over event time
//! the rows whose timestamp falls inside, emitted once the watermark passes
//! the window's end. Rows are kept in panes (see [`PaneBuffer`]).
//!
//! Data flow: source → decode → `Batch` → **window state** → query → sink.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

use crate::batch::time_type;

mod panes;
mod sessions;
mod watermark;

pub use panes::PaneBuffer;
pub use sessions::{OpenSessions, SessionRows, SessionsSnapshot};
pub use watermark::{
    LatePolicy, PartitionWatermarkState, PartitionedRows, StreamWatermark, WatermarkDef, combine,
};

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
        /// The window function (`TUMBLE`, `HOP`).
        function: &'static str,
        /// Which parameter (`size`, `slide`, `gap`).
        what: &'static str,
        /// Its value in milliseconds.
        ms: i64,
    },
    /// HOP size is not a whole number of slides.
    #[error("HOP size ({size_ms} ms) must be a multiple of its slide ({slide_ms} ms)")]
    SizeNotMultipleOfSlide {
        /// The window size in milliseconds.
        size_ms: i64,
        /// The slide in milliseconds.
        slide_ms: i64,
    },
    /// A processing-time window that does not line up with batches.
    #[error(
        "{function} {what} ({ms} ms) is not a multiple of batch_interval ({interval_ms} ms): a \
         processing-time window is a union of whole batches; pick a multiple or SET batch_interval"
    )]
    NotMultipleOfInterval {
        /// The window function (`TUMBLE`, `HOP`).
        function: &'static str,
        /// Which parameter (`size`, `slide`).
        what: &'static str,
        /// Its value in milliseconds.
        ms: i64,
        /// The batch interval in milliseconds.
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

    /// Validates a window over event time, where batches do not constrain
    /// size and slide.
    pub fn event_time(kind: WindowKind, size_ms: i64, slide_ms: i64) -> Result<Self, WindowError> {
        Self::new(kind, size_ms, slide_ms, 1)
    }

    /// Length of a pane: the largest span that lies wholly inside or wholly
    /// outside every window (gcd of size and slide). State is kept per pane.
    pub fn pane_ms(&self) -> i64 {
        gcd(self.size_ms, self.slide_ms)
    }

    /// The windows `[start, end)` that contain time `t`, earliest first.
    #[cfg(test)]
    pub fn windows_containing(&self, t: i64) -> impl Iterator<Item = (i64, i64)> + use<> {
        let last_start = t.div_euclid(self.slide_ms) * self.slide_ms;
        let (size, slide) = (self.size_ms, self.slide_ms);
        let count = size / slide;
        (0..count)
            .rev()
            .map(move |k| last_start - k * slide)
            .map(move |start| (start, start + size))
    }

    /// The earliest end after `after` of a window that contains time `t`, if
    /// any: when the window state holding `t` next has a window to close
    /// (computed, not iterated: a 30-day window sliding by 1 s has 2.6M).
    pub fn next_end_after(&self, t: i64, after: i64) -> Option<i64> {
        let last_start = t.div_euclid(self.slide_ms) * self.slide_ms;
        let next = (after.div_euclid(self.slide_ms) + 1) * self.slide_ms;
        let end = next.max(last_start + self.slide_ms);
        (end <= last_start + self.size_ms).then_some(end)
    }

    /// The earliest start among windows not closed when every window ending at
    /// or before `closed_until` has been emitted: panes ending at or before it
    /// are no longer needed.
    pub fn first_open_start(&self, closed_until: i64) -> i64 {
        let first_open_end = closed_until.div_euclid(self.slide_ms) * self.slide_ms + self.slide_ms;
        first_open_end - self.size_ms
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
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
    fn windows_containing_a_time_are_epoch_aligned() {
        let hop = WindowSpec::event_time(WindowKind::Hop, 10_000, 2_000).unwrap();
        let windows: Vec<_> = hop.windows_containing(13_500).collect();
        assert_eq!(windows.len(), 5);
        assert_eq!(windows[0], (4_000, 14_000));
        assert_eq!(windows[4], (12_000, 22_000));
        assert_eq!(hop.pane_ms(), 2_000);
        let tumble = WindowSpec::event_time(WindowKind::Tumble, 10_000, 10_000).unwrap();
        assert_eq!(
            tumble.windows_containing(-1).collect::<Vec<_>>(),
            vec![(-10_000, 0)]
        );
        assert_eq!(
            tumble.windows_containing(10_000).collect::<Vec<_>>(),
            vec![(10_000, 20_000)]
        );
        // After the window ending at 14 s closed, the earliest open one is [6 s, 16 s).
        assert_eq!(hop.first_open_start(14_000), 6_000);
        assert_eq!(hop.first_open_start(14_500), 6_000);
    }

    #[test]
    fn next_end_after_agrees_with_the_windows_containing_a_time() {
        let hop = WindowSpec::event_time(WindowKind::Hop, 10_000, 2_000).unwrap();
        let tumble = WindowSpec::event_time(WindowKind::Tumble, 10_000, 10_000).unwrap();
        for spec in [hop, tumble] {
            for t in [-1, 0, 13_500, 14_000] {
                for after in [-20_000, 0, 13_999, 14_000, 15_000, 21_999, 22_000, 40_000] {
                    let expected = spec
                        .windows_containing(t)
                        .map(|(_, end)| end)
                        .find(|end| *end > after);
                    assert_eq!(
                        spec.next_end_after(t, after),
                        expected,
                        "{spec:?} {t} {after}"
                    );
                }
            }
        }
    }
}
