//! The operator of a session query (`GROUP BY ..., SESSION(...)` and the
//! SESSION table function): adds each batch's on-time rows to the open
//! sessions of their keys, and runs the query over the rows of every session
//! whose end the watermark reached, each row stamped with its session's bounds.
//!
//! A stream the query reads outside the session (joined to the sessions'
//! output) keeps its on-time rows from the earliest open session's start on
//! (by panes of one gap), like a stream joined outside event-time windows
//! (Nexmark q7), and its table holds them while closed sessions run.

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;

use super::{
    Cx, Emitted, Filled, Operator, OperatorSnapshot, PaneSnapshot, SnapshotError, Watermark, fill,
    fill_streams,
};
use crate::batch::Batch;
use crate::exec::ExecError;
use crate::exec::event_time::{event_times, on_time_rows};
use crate::sql::SessionPlan;
use crate::window::{OpenSessions, PaneBuffer};

/// Open sessions by key, and the rows of the streams read beside them.
pub(in crate::exec) struct Session {
    sessions: OpenSessions,
    /// Rows of each stream read outside the session (in `plan.kept()`
    /// order), by pane of one gap.
    kept: Vec<PaneBuffer>,
}

impl Session {
    /// An operator with no open session, for `plan` with `kept` streams
    /// read outside the session.
    pub(in crate::exec) fn new(plan: &SessionPlan, kept: usize) -> Self {
        Self {
            sessions: OpenSessions::new(plan.gap_ms),
            kept: (0..kept).map(|_| PaneBuffer::new(plan.gap_ms)).collect(),
        }
    }

    /// Adds the batch's on-time rows of every stream read outside the
    /// session to its panes; returns the late rows per relation.
    async fn keep_rows<'a>(
        &mut self,
        cx: &Cx<'a>,
        cutoff: Option<i64>,
        late: &mut BTreeMap<&'a str, u64>,
    ) -> Result<(), ExecError> {
        for (input, panes) in cx.plan.kept().iter().zip(&mut self.kept) {
            let mut dropped = 0;
            for batch in cx.run(&input.feeder).await? {
                let (rows, times, n) =
                    on_time_rows(&batch, input.time_index, cutoff).map_err(|e| cx.arrow(e))?;
                dropped += n;
                panes.insert(&rows, &times).map_err(|e| cx.arrow(e))?;
            }
            let counted = late.entry(&input.relation).or_default();
            *counted = (*counted).max(dropped);
        }
        Ok(())
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
        let mut late_by_relation = BTreeMap::new();
        let batches = {
            let _streams = fill_streams(cx.plan, batches);
            self.keep_rows(cx, cutoff, &mut late_by_relation).await?;
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
        let counted = late_by_relation
            .entry(session.input.relation.as_str())
            .or_default();
        *counted = (*counted).max(late);
        let late = late_by_relation.values().sum();
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
        let (Some(session), Some(at)) = (session_plan(cx), watermark.at) else {
            return Ok(Vec::new());
        };
        let mut results = Vec::new();
        if self.sessions.next_end().is_some_and(|end| end <= at) {
            let closed = self
                .sessions
                .close(at, session.input.table.schema_ref())
                .map_err(|e| cx.arrow(e))?;
            if let Some(closed) = closed {
                let mut filled: Vec<Filled<'_>> = vec![fill(&session.input.table, vec![closed])];
                for (input, panes) in cx.plan.kept().iter().zip(&self.kept) {
                    filled.push(fill(&input.table, panes.all_rows()));
                }
                let rows = cx.execute().await?;
                drop(filled);
                results.push(Emitted { window: None, rows });
            }
        }
        // Sessions still to close start at or after the earliest open one
        // or, when none is open, at an on-time row.
        if let Some(cutoff) = watermark.cutoff().filter(|_| !self.kept.is_empty()) {
            let keep_from = self
                .sessions
                .earliest_start()
                .map_or(cutoff, |start| start.min(cutoff));
            for panes in &mut self.kept {
                panes.evict_before(keep_from);
            }
        }
        Ok(results)
    }

    fn state_rows(&self) -> usize {
        self.sessions.rows() + self.kept.iter().map(PaneBuffer::rows).sum::<usize>()
    }

    fn state_bytes(&self) -> usize {
        self.sessions.bytes() + self.kept.iter().map(PaneBuffer::bytes).sum::<usize>()
    }

    fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The open sessions (their rows and keys as Arrow data) and the rows
    /// kept of the streams read outside the session.
    fn snapshot(&self) -> Result<OperatorSnapshot, SnapshotError> {
        Ok(OperatorSnapshot {
            kind: "session",
            closed_until: None,
            buffers: self.kept.iter().map(PaneSnapshot::of).collect(),
            sessions: Some(self.sessions.snapshot()?),
        })
    }

    fn restore(&mut self, snapshot: OperatorSnapshot) -> Result<(), SnapshotError> {
        snapshot.check("session", self.kept.len())?;
        let gap_ms = self.sessions.gap_ms();
        self.sessions = match snapshot.sessions {
            Some(sessions) => OpenSessions::restore(gap_ms, sessions)?,
            None => OpenSessions::new(gap_ms),
        };
        self.kept = snapshot
            .buffers
            .into_iter()
            .map(PaneSnapshot::into_buffer)
            .collect();
        Ok(())
    }
}
