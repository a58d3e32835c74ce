//! Closing the windows still open at the end of bounded input: the
//! driver's last batches, which read nothing and only move time (or the
//! watermark) on.

use tokio::sync::{mpsc, watch};

use super::{Driver, Polled};
use crate::batch::Batch;
use crate::exec::ExecError;
use crate::exec::operator::Operator;
use crate::report::{QueryEvent, QuerySummary};
use crate::sql::TimeDomain;

impl<O: Operator> Driver<O> {
    /// At the end of bounded input, closes the windows that still hold rows:
    /// for processing time by running empty batches as if time went on
    /// (Spark's availableNow), for event time by moving the watermark past
    /// every window (Flink's end of input). Only batches at which something
    /// happens run (a window closes, a pane completes): the batch time jumps
    /// over empty intervals, so a 30-day window closes in a few batches. A
    /// stop request is honoured between batches.
    pub(super) async fn close_open_windows(
        &mut self,
        mut batch_id: u64,
        mut time: i64,
        tx: &mpsc::Sender<QueryEvent>,
        stop: &watch::Receiver<bool>,
        summary: &mut QuerySummary,
    ) -> Result<(), ExecError> {
        let event_time = self.plan.time == Some(TimeDomain::Event);
        let max_batches = match self.plan.window() {
            _ if event_time => 1,
            Some(spec) => spec.size_ms / self.interval_ms + 1,
            None => return Ok(()),
        };
        for _ in 0..max_batches {
            if *stop.borrow() {
                break;
            }
            if self.operator.is_empty() {
                break;
            }
            let empty: Polled = self
                .sources
                .iter()
                .map(|(_, schema, _)| Batch::empty(batch_id, time, schema.clone()))
                .collect();
            if let (Some(ck), Some(sent)) = (&self.checkpoint, self.last_sent) {
                let mut stopped = stop.clone();
                tokio::select! {
                    _ = ck.committed(sent) => {}
                    _ = stopped.changed() => break,
                    _ = tx.closed() => break,
                }
            }
            self.log_offsets(batch_id, time, &empty, self.positions()?, true)?;
            self.input = self.input.next(time, &[]);
            summary.batches += 1;
            let step = self.step(batch_id, time, empty, &[], event_time).await?;
            summary.output_rows += step
                .results
                .iter()
                .map(|r| r.num_rows() as u64)
                .sum::<u64>();
            self.save_state(batch_id, time + self.interval_ms, true, summary)
                .await?;
            self.progress.send_modify(|p| {
                p.summary = summary.clone();
                p.last.watermark_ms = self.watermarks.current.at;
            });
            let results = step.results.len();
            for mut result in step.results {
                result.progress.watermark_ms = self.watermarks.current.at;
                if tx.send(QueryEvent::Result(result)).await.is_err() {
                    return Ok(());
                }
            }
            let end = self.batch_end(batch_id, time, results, Vec::new(), None);
            if tx.send(end).await.is_err() {
                return Ok(());
            }
            self.last_sent = Some(batch_id);
            // Skipped intervals keep their ids, as if they had run empty:
            // ids and times stay those of a run stepping through every one.
            let next = self.operator.next_event_time(
                &self.plan,
                time,
                self.interval_ms,
                self.watermarks.current,
            );
            batch_id += ((next - time) / self.interval_ms) as u64;
            time = next;
            // Let a stop request (or anything else on this worker) in.
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}
