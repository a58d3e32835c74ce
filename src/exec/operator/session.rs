//! The operator of a session query (`GROUP BY ..., SESSION(...)` and the
//! SESSION table function): adds each batch's on-time rows to the open
//! sessions of their keys, and runs the query over the rows of every session
//! whose end the watermark reached, each row stamped with its session's bounds.

use datafusion::arrow::array::RecordBatch;

use super::{
    Cx, Emitted, Operator, OperatorSnapshot, SnapshotMismatch, Watermark, fill, fill_streams,
};
use crate::batch::Batch;
use crate::exec::ExecError;
use crate::exec::event_time::{event_times, on_time_rows};
use crate::sql::SessionPlan;
use crate::window::OpenSessions;

/// Open sessions by key.
pub(in crate::exec) struct Session {
    sessions: OpenSessions,
}

impl Session {
    /// An operator with no open session, for `plan`.
    pub(in crate::exec) fn new(plan: &SessionPlan) -> Self {
        Self {
            sessions: OpenSessions::new(plan.gap_ms),
        }
    }
}

/// The session part of the plan (always there for a session operator).
fn session_plan<'a>(cx: &Cx<'a>) -> Option<&'a SessionPlan> {
    cx.plan.session()
}

impl Operator for Session {
    async fn process_batch(
        &mut self,
        cx: &Cx<'_>,
        batches: &[Batch],
        watermark: Watermark,
    ) -> Result<(Vec<Emitted>, u64), ExecError> {
        let Some(session) = session_plan(cx) else {
            return Ok((Vec::new(), 0));
        };
        let cutoff = watermark.cutoff();
        let batches = {
            let _streams = fill_streams(cx.plan, batches);
            cx.run(&session.input.feeder).await?
        };
        let mut late = 0;
        let mut on_time = Vec::new();
        for batch in batches {
            let (rows, _, dropped) =
                on_time_rows(&batch, session.input.time_index, cutoff).map_err(|e| cx.arrow(e))?;
            late += dropped;
            if rows.num_rows() > 0 {
                on_time.push(rows);
            }
        }
        if on_time.is_empty() {
            return Ok((Vec::new(), late));
        }
        // With keys, each batch comes back with the key columns appended.
        let keyed = match &session.keys {
            Some(keys) => cx.run_over(&session.buffer, on_time, keys).await?,
            None => on_time,
        };
        let schema = &session.input.feeder.schema;
        let columns = schema.fields().len();
        for batch in keyed {
            let (row_columns, keys) = batch.columns().split_at(columns.min(batch.num_columns()));
            let rows = RecordBatch::try_new(schema.clone(), row_columns.to_vec())
                .map_err(|e| cx.arrow(e))?;
            let times = event_times(&rows, session.input.time_index).map_err(|e| cx.arrow(e))?;
            self.sessions
                .insert(rows, times.values(), keys)
                .map_err(|e| cx.arrow(e))?;
        }
        Ok((Vec::new(), late))
    }

    async fn handle_watermark(
        &mut self,
        cx: &Cx<'_>,
        watermark: Watermark,
    ) -> Result<Vec<Emitted>, ExecError> {
        let (Some(session), Some(watermark)) = (session_plan(cx), watermark.at) else {
            return Ok(Vec::new());
        };
        if self.sessions.next_end().is_none_or(|end| watermark < end) {
            return Ok(Vec::new());
        }
        let closed = self
            .sessions
            .close(watermark, session.input.table.schema_ref())
            .map_err(|e| cx.arrow(e))?;
        let Some(closed) = closed else {
            return Ok(Vec::new());
        };
        let _filled = fill(&session.input.table, vec![closed]);
        let rows = cx.execute().await?;
        Ok(vec![Emitted { window: None, rows }])
    }

    fn state_rows(&self) -> usize {
        self.sessions.rows()
    }

    fn state_bytes(&self) -> usize {
        self.sessions.bytes()
    }

    fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Not yet: open sessions hold rows behind references into kept batches
    /// and row-encoded keys, which are not exported yet.
    fn snapshot(&self) -> Option<OperatorSnapshot> {
        None
    }

    /// Only an empty operator's state fits (there is no session snapshot yet).
    fn restore(&mut self, snapshot: OperatorSnapshot) -> Result<(), SnapshotMismatch> {
        snapshot.check("session", 0)
    }
}
