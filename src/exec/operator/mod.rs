//! One operator per kind of continuous query, between the driver (which
//! polls sources into [`Batch`]es and moves the watermark) and DataFusion
//! (which runs the compiled plan):
//!
//! source → `Batch` → driver → **operator** → DataFusion → results → sink.
//!
//! - [`PerBatch`] runs the query once per batch over the batch's rows.
//! - [`Windowed`] keeps window input rows (and partial aggregates) by pane
//!   and runs the query once per window the watermark closes.
//! - [`Session`] keeps open sessions by key and runs the query over the
//!   sessions the watermark closes.
//!
//! Each operator owns its state; the plan's tables are filled only for the
//! length of one run, through [`fill`] (and [`fill_streams`] for the
//! batches the driver hands over). Between batches the state can be
//! taken as an [`OperatorSnapshot`] (Arrow record batches plus a few
//! numbers) and restored into a fresh operator of the same plan; `tests.rs`
//! round-trips each kind on real plans.

mod per_batch;
mod persist;
mod session;
mod windowed;

#[cfg(test)]
mod tests;

use std::future::Future;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use super::ExecError;
use crate::batch::Batch;
use crate::sql::{CompiledQuery, StreamingPlan, provider::BatchTable};
use crate::window::{PaneBuffer, SessionsSnapshot};

pub(super) use per_batch::PerBatch;
pub(super) use persist::{from_parts, to_parts};
pub(super) use session::Session;
pub(super) use windowed::Windowed;

/// What an operator works with during one batch: the query's plan (its
/// tables hold the batch's stream rows while the batch is fed), the query's
/// name and the batch id for errors.
pub(super) struct Cx<'a> {
    pub(super) plan: &'a StreamingPlan,
    pub(super) query: &'a str,
    pub(super) batch_id: u64,
}

impl Cx<'_> {
    /// Runs `compiled` (a plan of this query) over what its tables hold.
    pub(super) async fn run(
        &self,
        compiled: &CompiledQuery,
    ) -> Result<Vec<RecordBatch>, ExecError> {
        self.plan
            .run(compiled)
            .await
            .map_err(|e| self.execute_error(e))
    }

    /// Runs the query's main plan over what its tables hold.
    pub(super) async fn execute(&self) -> Result<Vec<RecordBatch>, ExecError> {
        self.plan.execute().await.map_err(|e| self.execute_error(e))
    }

    /// Runs `compiled` over `rows` put in `table` for the length of the run.
    pub(super) async fn run_over(
        &self,
        table: &BatchTable,
        rows: Vec<RecordBatch>,
        compiled: &CompiledQuery,
    ) -> Result<Vec<RecordBatch>, ExecError> {
        let _filled = fill(table, rows);
        self.run(compiled).await
    }

    pub(super) fn arrow(&self, source: ArrowError) -> ExecError {
        ExecError::Arrow {
            query: self.query.to_string(),
            source,
        }
    }

    pub(super) fn execute_error(&self, source: DataFusionError) -> ExecError {
        ExecError::Execute {
            query: self.query.to_string(),
            batch_id: self.batch_id,
            source,
        }
    }
}

/// A table filled with rows until the guard drops (then it is empty again):
/// window and session rows are in the plan's tables only while a run needs them.
pub(super) struct Filled<'a>(&'a BatchTable);

impl Drop for Filled<'_> {
    fn drop(&mut self) {
        self.0.set(Vec::new());
    }
}

/// Puts `rows` in `table` until the returned guard drops.
pub(super) fn fill(table: &BatchTable, rows: Vec<RecordBatch>) -> Filled<'_> {
    table.set(rows);
    Filled(table)
}

/// Puts each stream's batch in its table (`batches` in the plan's `streams`
/// order, one per stream) until the returned guards drop.
pub(in crate::exec) fn fill_streams<'a>(
    plan: &'a StreamingPlan,
    batches: &[Batch],
) -> Vec<Filled<'a>> {
    plan.streams
        .iter()
        .zip(batches)
        .map(|((_, table), batch)| fill(table, batch.data.clone()))
        .collect()
}

/// Rows an operator produced: one batch's result, or one closed window's.
pub(super) struct Emitted {
    /// `[start, end)` of the window that closed, for windowed queries.
    pub(super) window: Option<(i64, i64)>,
    /// The result rows.
    pub(super) rows: Vec<RecordBatch>,
}

/// The query's event-time position, as the driver computed it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Watermark {
    /// The query's watermark, once it has one.
    pub(super) at: Option<i64>,
    /// How long after the watermark passed them windows still take rows.
    pub(super) allowed_lateness_ms: i64,
}

impl Watermark {
    /// Rows before this time are late: the watermark minus the allowed lateness.
    pub(super) fn cutoff(&self) -> Option<i64> {
        self.at.map(|w| w.saturating_sub(self.allowed_lateness_ms))
    }
}

/// The kind-specific half of a continuous query (after Arroyo's aggregating
/// window operators): the driver hands it each batch, then the watermark.
///
/// Per batch the driver calls, in order: [`Operator::process_batch`] with
/// the batch of each stream the query reads; moves the watermark (when
/// [`Operator::watermarked`]); then [`Operator::handle_watermark`]. At the
/// end of bounded input it keeps calling both with empty batches while
/// [`Operator::is_empty`] is false.
pub(super) trait Operator: Send {
    /// Feeds `batches` (one per stream, in the plan's `streams` order; put
    /// in the stream tables with [`fill_streams`] for the runs over them)
    /// into the operator; returns what it emits at once and how many rows
    /// were late (behind `watermark`'s cut-off).
    fn process_batch(
        &mut self,
        cx: &Cx<'_>,
        batches: &[Batch],
        watermark: Watermark,
    ) -> impl Future<Output = Result<(Vec<Emitted>, u64), ExecError>> + Send;

    /// After the watermark moved: emits what it closed and drops the state
    /// no open window needs.
    fn handle_watermark(
        &mut self,
        cx: &Cx<'_>,
        watermark: Watermark,
    ) -> impl Future<Output = Result<Vec<Emitted>, ExecError>> + Send;

    /// Whether the query has a watermark (windows and sessions do).
    fn watermarked(&self) -> bool {
        true
    }

    /// Rows held in state.
    fn state_rows(&self) -> usize;

    /// Memory held by state, in bytes.
    fn state_bytes(&self) -> usize;

    /// Whether no state is held (nothing is left to close).
    fn is_empty(&self) -> bool;

    /// The operator's state, for a checkpoint (taken between batches).
    fn snapshot(&self) -> Result<OperatorSnapshot, SnapshotError>;

    /// Replaces the state with `snapshot`'s (taken by an operator of the
    /// same plan).
    fn restore(&mut self, snapshot: OperatorSnapshot) -> Result<(), SnapshotError>;

    /// After the empty batch at `time` at the end of input, the next batch
    /// time at which something closes or completes: the batches between
    /// would change nothing.
    fn next_event_time(
        &self,
        _plan: &StreamingPlan,
        time: i64,
        interval_ms: i64,
        _watermark: Watermark,
    ) -> i64 {
        time + interval_ms
    }
}

/// An operator's state as Arrow rows plus a few numbers, for a checkpoint
/// to persist and a fresh operator of the same plan to [`Operator::restore`].
///
/// Rows stay in the batches they were held in (a pane's batch count decides
/// when its partials are compacted), so a restored operator behaves exactly
/// like the one snapshotted.
#[derive(Debug, Clone, Default)]
pub(crate) struct OperatorSnapshot {
    /// Which operator took it (`"per_batch"`, `"windowed"`, `"session"`).
    pub(crate) kind: &'static str,
    /// For windowed queries, the watermark windows were last closed at.
    pub(crate) closed_until: Option<i64>,
    /// The state's rows, one entry per buffer in the operator's order
    /// (windowed: window inputs, kept inputs, partials; session: the
    /// streams read outside the session).
    pub(crate) buffers: Vec<PaneSnapshot>,
    /// For session queries, the open sessions.
    pub(crate) sessions: Option<SessionsSnapshot>,
}

/// One buffer of rows by pane: each held pane's start and its batches (an
/// empty list for a pane held without rows).
#[derive(Debug, Clone, Default)]
pub(crate) struct PaneSnapshot {
    /// Length of a pane in ms.
    pub(crate) pane_ms: i64,
    /// `(pane start, batches)` in pane order.
    pub(crate) panes: Vec<(i64, Vec<RecordBatch>)>,
}

impl PaneSnapshot {
    /// The panes `buffer` holds.
    fn of(buffer: &PaneBuffer) -> Self {
        Self {
            pane_ms: buffer.pane_ms(),
            panes: buffer
                .panes()
                .map(|(start, held)| (start, held.to_vec()))
                .collect(),
        }
    }

    /// A buffer holding these panes, batch for batch.
    fn into_buffer(self) -> PaneBuffer {
        PaneBuffer::from_panes(self.pane_ms, self.panes)
    }
}

/// Why a snapshot could not be taken or restored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    /// The snapshot was taken by another kind of operator or query.
    #[error(
        "cannot restore a {found} snapshot ({found_buffers} buffers) into a {expected} operator \
         ({expected_buffers} buffers): restore a snapshot of the same query"
    )]
    Mismatch {
        expected: &'static str,
        expected_buffers: usize,
        found: &'static str,
        found_buffers: usize,
    },
    /// The state could not be exported, or the snapshot's rows are not
    /// what the operator holds.
    #[error("cannot snapshot or restore the operator's state: {0}")]
    State(#[from] ArrowError),
}

impl OperatorSnapshot {
    /// Checks the snapshot was taken by a `kind` operator with `buffers` buffers.
    pub(crate) fn check(&self, kind: &'static str, buffers: usize) -> Result<(), SnapshotError> {
        if self.kind == kind && self.buffers.len() == buffers {
            return Ok(());
        }
        Err(SnapshotError::Mismatch {
            expected: kind,
            expected_buffers: buffers,
            found: self.kind,
            found_buffers: self.buffers.len(),
        })
    }
}
