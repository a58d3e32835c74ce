//! The operator of a query without windows: runs the plan once per batch
//! over the batch's rows and keeps nothing between batches.

use super::{Cx, Emitted, Operator, OperatorSnapshot, SnapshotError, Watermark, fill_streams};
use crate::batch::Batch;
use crate::exec::ExecError;

/// Runs the query once per batch; stateless.
#[derive(Debug, Default)]
pub(in crate::exec) struct PerBatch;

impl Operator for PerBatch {
    async fn process_batch(
        &mut self,
        cx: &Cx<'_>,
        batches: &[Batch],
        _watermark: Watermark,
    ) -> Result<(Vec<Emitted>, u64), ExecError> {
        let _streams = fill_streams(cx.plan, batches);
        let rows = cx.execute().await?;
        Ok((vec![Emitted { window: None, rows }], 0))
    }

    async fn handle_watermark(
        &mut self,
        _cx: &Cx<'_>,
        _watermark: Watermark,
    ) -> Result<Vec<Emitted>, ExecError> {
        Ok(Vec::new())
    }

    fn watermarked(&self) -> bool {
        false
    }

    fn state_rows(&self) -> usize {
        0
    }

    fn state_bytes(&self) -> usize {
        0
    }

    fn is_empty(&self) -> bool {
        true
    }

    /// Nothing is kept between batches: the snapshot holds no rows.
    fn snapshot(&self) -> Result<OperatorSnapshot, SnapshotError> {
        Ok(OperatorSnapshot {
            kind: "per_batch",
            ..OperatorSnapshot::default()
        })
    }

    fn restore(&mut self, snapshot: OperatorSnapshot) -> Result<(), SnapshotError> {
        snapshot.check("per_batch", 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_holds_nothing_and_fits_only_a_per_batch_operator() {
        let snapshot = PerBatch.snapshot().unwrap();
        assert_eq!(snapshot.kind, "per_batch");
        assert!(snapshot.buffers.is_empty());
        assert!(PerBatch.restore(snapshot).is_ok());
        let windowed = OperatorSnapshot {
            kind: "windowed",
            ..OperatorSnapshot::default()
        };
        assert!(PerBatch.restore(windowed).is_err());
    }
}
