//! Late rows under `late_policy = 'side'`, the query's side: every
//! event-time query over a stream with that policy finds, once per batch,
//! the stream's rows that are late for it (behind its watermark minus
//! `allowed_lateness`, or without a time) and publishes them — with the
//! query's name in a `query` column — to the hub of the stream's
//! `<name>_late` stream ([`crate::source::late`]: the hub, and the source
//! that reads it). Window state still drops those rows per window input
//! (that is what keeps windows correct); this module counts them once per
//! stream row and routes them (without a side output, the window inputs' own
//! counts serve, once per relation).
//!
//! What a query selects from each stream to find its late rows is planned
//! with the query ([`crate::sql::plan::LateCheck`]); the hubs come from the
//! session's registry when the query starts.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::array::{StringArray, new_null_array};
use datafusion::arrow::compute::kernels::boolean::or_kleene;
use datafusion::arrow::compute::kernels::cmp::lt;
use datafusion::arrow::compute::{cast, filter_record_batch, is_null};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;

use super::ExecError;
use crate::source::late::{LateHub, LateHubs, LatePublisher, QUERY_COLUMN, late_stream_name};
use crate::source::{LATE_CONNECTOR, SourceError};
use crate::sql::StreamingPlan;

/// The rows of `batch` that are late: time (column `time_index`) NULL, or
/// before `watermark`.
pub fn late_mask(
    batch: &RecordBatch,
    time_index: usize,
    watermark: Option<i64>,
) -> Result<BooleanArray, ArrowError> {
    let times = super::event_time::event_times(batch, time_index)?;
    let missing = is_null(&times)?;
    match watermark {
        None => Ok(missing),
        // NULL < w is NULL, but there `missing` is true: no NULL remains.
        Some(w) => or_kleene(&missing, &lt(&times, &Int64Array::new_scalar(w))?),
    }
}

/// A query's side of late data: finds each stream's late rows once per
/// batch, counts them once per stream row, publishes them where the stream's
/// policy says.
pub(super) struct LateRouter {
    /// Per late check of the plan ([`StreamingPlan::late_checks`], same
    /// order), the hub its late rows go to (`late_policy = 'side'`).
    hubs: Vec<Option<Arc<LateHub>>>,
    /// Rows routed to each late stream in the last batch.
    routed: Vec<(String, u64)>,
    /// The hubs this query publishes to, with its registration id in each.
    publishing: Vec<(Arc<LateHub>, u64)>,
    interval_ms: i64,
}

impl LateRouter {
    /// The router of query `query` whose first batch is at `first_ms`, with
    /// the session's `hubs`, and its publisher registrations (for the
    /// query's handle). Only event-time queries over a stream with a side
    /// output have late checks.
    pub(super) fn new(
        plan: &StreamingPlan,
        query: &str,
        hubs: &LateHubs,
        first_ms: i64,
        interval_ms: i64,
    ) -> Result<(Self, Vec<LatePublisher>), ExecError> {
        let mut publishers: Vec<LatePublisher> = Vec::new();
        let mut routed_to = Vec::new();
        for check in &plan.late_checks {
            let hub = if check.side {
                let late = late_stream_name(&check.stream);
                let hub = hubs.get(&late).ok_or_else(|| missing_hub(query, &late))?;
                publishers.push(hub.publisher(first_ms));
                Some(hub.clone())
            } else {
                None
            };
            routed_to.push(hub);
        }
        let publishing = publishers
            .iter()
            .map(|p| (p.hub().clone(), p.id()))
            .collect();
        let router = Self {
            hubs: routed_to,
            routed: Vec::new(),
            publishing,
            interval_ms,
        };
        Ok((router, publishers))
    }

    /// The hubs of the `<stream>_late` streams `plan` reads, which a reader
    /// query waits for before each batch (see
    /// [`LateHub::wait_published_before`]).
    pub(super) fn read_hubs(
        plan: &StreamingPlan,
        query: &str,
        hubs: &LateHubs,
    ) -> Result<Vec<Arc<LateHub>>, ExecError> {
        plan.streams
            .iter()
            .filter(|(def, _)| def.connector == LATE_CONNECTOR)
            .map(|(def, _)| {
                hubs.get(&def.name)
                    .cloned()
                    .ok_or_else(|| missing_hub(query, &def.name))
            })
            .collect()
    }

    /// Rows routed to each late stream in the last batch.
    pub(super) fn routed(&self) -> Vec<(String, u64)> {
        self.routed.clone()
    }

    /// Finds the late rows of every checked stream in the batch at `time`
    /// (the stream tables hold it) against `watermark` (minus the allowed
    /// lateness), publishes them under side policy and returns their count —
    /// or `None` when the window inputs' own counts are right (no event
    /// time, or no side output).
    pub(super) async fn route(
        &mut self,
        plan: &StreamingPlan,
        query: &str,
        batch_id: u64,
        time: i64,
        watermark: Option<i64>,
    ) -> Result<Option<u64>, ExecError> {
        if plan.late_checks.is_empty() {
            return Ok(None);
        }
        let arrow = |source: ArrowError| ExecError::Arrow {
            query: query.to_string(),
            source,
        };
        self.routed.clear();
        let mut total = 0;
        for (check, hub) in plan.late_checks.iter().zip(&self.hubs) {
            let batches = plan
                .run(&check.select)
                .await
                .map_err(|source| ExecError::Execute {
                    query: query.to_string(),
                    batch_id,
                    source,
                })?;
            let mut count = 0;
            for batch in batches {
                let mask = late_mask(&batch, check.time_index, watermark).map_err(arrow)?;
                let late = mask.true_count();
                if late == 0 {
                    continue;
                }
                count += late as u64;
                if let Some(hub) = hub {
                    let rows = filter_record_batch(&batch, &mask).map_err(arrow)?;
                    hub.publish(
                        time,
                        with_query(&rows, &hub.schema(), query).map_err(arrow)?,
                    );
                }
            }
            if let Some(hub) = hub {
                self.routed.push((hub.stream().to_string(), count));
            }
            total += count;
        }
        for (hub, id) in &self.publishing {
            hub.advance(*id, time.saturating_add(self.interval_ms));
        }
        Ok(Some(total))
    }
}

impl Drop for LateRouter {
    /// The query ran its last batch: readers need not wait for it (they stay
    /// undrained until its handle lets go of the registration).
    fn drop(&mut self) {
        for (hub, id) in &self.publishing {
            hub.advance(*id, i64::MAX);
        }
    }
}

/// The session has no hub for late stream `stream`: the catalog and the
/// session's registry disagree (a bug, not a user error).
fn missing_hub(query: &str, stream: &str) -> ExecError {
    ExecError::Source {
        query: query.to_string(),
        stream: stream.to_string(),
        source: SourceError::Runtime(format!(
            "the session has no hub for late-row stream '{stream}'; drop and declare its stream again"
        )),
    }
}

/// `rows` in the late stream's `schema`: each column cast to its type, then
/// the `query` column.
fn with_query(
    rows: &RecordBatch,
    schema: &SchemaRef,
    query: &str,
) -> Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if field.name() == QUERY_COLUMN {
            let names = std::iter::repeat_n(query, rows.num_rows());
            columns.push(Arc::new(StringArray::from_iter_values(names)));
            continue;
        }
        let column = match rows.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => c.clone(),
            Some(c) => cast(c, field.data_type())?,
            None => new_null_array(field.data_type(), rows.num_rows()),
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::time_type;
    use datafusion::arrow::array::TimestampMillisecondArray;
    use datafusion::arrow::datatypes::{Field, Schema};

    #[test]
    fn late_rows_are_null_times_or_before_the_watermark() {
        let ts = TimestampMillisecondArray::from(vec![Some(5), None, Some(10), Some(9)]);
        let schema = Arc::new(Schema::new(vec![Field::new("ts", time_type(), true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(ts)]).unwrap();
        let mask = late_mask(&batch, 0, Some(10)).unwrap();
        assert_eq!(mask, BooleanArray::from(vec![true, true, false, true]));
        let mask = late_mask(&batch, 0, None).unwrap();
        assert_eq!(mask, BooleanArray::from(vec![false, true, false, false]));
    }
}
