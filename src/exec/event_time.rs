//! The Arrow kernels the operators and the driver use on window input:
//! reading event times, telling on-time rows from late ones, reading a
//! watermark.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::{cast, filter_record_batch, is_not_null};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::error::ArrowError;

use crate::batch::time_type;

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
