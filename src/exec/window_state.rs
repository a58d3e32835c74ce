//! A windowed query's state between batches — rows kept per pane, open
//! sessions, watermark trackers — and the Arrow kernels the executor uses on
//! it: reading event times, telling on-time rows from late ones, reading a
//! watermark.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::{cast, filter_record_batch, is_not_null};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::error::ArrowError;

use crate::batch::time_type;
use crate::sql::StreamingPlan;
use crate::window::{OpenSessions, PaneBuffer, StreamWatermark};

/// The window state of a query: kept rows by pane, watermarks, and how far
/// windows have been emitted.
pub(super) struct WindowState {
    /// Panes of each window input, then of each kept input.
    pub(super) windows: Vec<PaneBuffer>,
    pub(super) kept: Vec<PaneBuffer>,
    /// Partial aggregates by pane, one buffer per incremental aggregate.
    pub(super) partials: Vec<PaneBuffer>,
    /// Open sessions by key (`GROUP BY ..., SESSION(...)` and the SESSION
    /// table function).
    pub(super) sessions: OpenSessions,
    /// Per watermark stream (in `plan.watermarks` order), its partitions' watermarks.
    pub(super) trackers: Vec<StreamWatermark>,
    /// The query's watermark: rows before it are late; windows ending at or
    /// before it (plus the allowed lateness) have closed.
    pub(super) watermark: Option<i64>,
    /// The watermark windows were last closed at: windows ending at or
    /// before it (plus lateness) have been emitted.
    pub(super) closed_until: Option<i64>,
    pub(super) allowed_lateness_ms: i64,
    pub(super) started_ms: Option<i64>,
}

impl WindowState {
    pub(super) fn new(plan: &StreamingPlan) -> Self {
        let pane_ms = plan.window.map_or(1, |w| w.pane_ms());
        Self {
            windows: plan
                .windows
                .iter()
                .map(|_| PaneBuffer::new(pane_ms))
                .collect(),
            kept: plan.kept.iter().map(|_| PaneBuffer::new(pane_ms)).collect(),
            partials: plan
                .partials
                .iter()
                .map(|_| PaneBuffer::new(pane_ms))
                .collect(),
            sessions: OpenSessions::new(plan.session.as_ref().map_or(1, |s| s.gap_ms)),
            trackers: plan
                .watermarks
                .iter()
                .map(|w| StreamWatermark::new(&w.def))
                .collect(),
            watermark: None,
            closed_until: None,
            allowed_lateness_ms: plan
                .watermarks
                .iter()
                .map(|w| w.def.allowed_lateness.as_millis() as i64)
                .max()
                .unwrap_or(0),
            started_ms: None,
        }
    }

    pub(super) fn rows(&self) -> usize {
        let panes: usize = self
            .windows
            .iter()
            .chain(&self.kept)
            .chain(&self.partials)
            .map(PaneBuffer::rows)
            .sum();
        panes + self.sessions.rows()
    }

    pub(super) fn bytes(&self) -> usize {
        let panes: usize = self
            .windows
            .iter()
            .chain(&self.kept)
            .chain(&self.partials)
            .map(PaneBuffer::bytes)
            .sum();
        panes + self.sessions.bytes()
    }
}

/// The times (ms) of column `time_index` of `batch`.
pub(super) fn event_times(
    batch: &RecordBatch,
    time_index: usize,
) -> Result<Int64Array, ArrowError> {
    let times = cast(batch.column(time_index), &time_type())?;
    as_int64(&cast(
        &times,
        &datafusion::arrow::datatypes::DataType::Int64,
    )?)
}

/// An Int64 array (what casting times to Int64 gives) as such.
fn as_int64(array: &ArrayRef) -> Result<Int64Array, ArrowError> {
    array
        .as_primitive_opt::<Int64Type>()
        .cloned()
        .ok_or_else(|| ArrowError::CastError("time column is not a timestamp".into()))
}

/// Splits `batch` into rows on time and late rows: a row is late when its
/// time (column `time_index`) is NULL or before `watermark`. Returns the
/// on-time rows, their times in ms, and the late count.
pub(super) fn on_time_rows(
    batch: &RecordBatch,
    time_index: usize,
    watermark: Option<i64>,
) -> Result<(RecordBatch, Int64Array, u64), ArrowError> {
    let times = event_times(batch, time_index)?;
    let keep = match watermark {
        None if times.null_count() == 0 => return Ok((batch.clone(), times, 0)),
        None => is_not_null(&times)?,
        Some(w) => {
            use datafusion::arrow::compute::kernels::cmp::gt_eq;
            let on_time = gt_eq(&times, &Int64Array::new_scalar(w))?;
            // NULL comparisons are NULL; filter() treats them as false.
            on_time
        }
    };
    let late = (batch.num_rows() - keep.true_count()) as u64;
    if late == 0 && keep.null_count() == 0 {
        return Ok((batch.clone(), times, 0));
    }
    let rows = filter_record_batch(batch, &keep)?;
    let times = datafusion::arrow::compute::filter(&times, &keep)?;
    Ok((rows, as_int64(&times)?, late))
}

/// The single timestamp value of a `SELECT max(...)` result, in ms.
pub(super) fn max_time(batches: &[RecordBatch]) -> Result<Option<i64>, ArrowError> {
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let column = event_times(batch, 0)?;
    Ok((!column.is_null(0)).then(|| column.value(0)))
}
