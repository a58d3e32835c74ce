//! The operator of a windowed query (TUMBLE, HOP): keeps each window input's
//! rows by pane — or, for aggregates computed incrementally, one partial
//! aggregate per pane — and runs the query once per window the watermark
//! closed, over the panes of that window stamped with its bounds. Panes no
//! open window needs are evicted; complete panes' partials are compacted.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Cx, Emitted, Filled, Operator, OperatorSnapshot, PaneSnapshot, SnapshotError, Watermark, fill,
    fill_streams,
};
use crate::batch::Batch;
use crate::exec::ExecError;
use crate::exec::event_time::on_time_rows;
use crate::sql::{KeptInput, StreamingPlan, TimeDomain, WindowedPlan};
use crate::window::{PaneBuffer, WindowSpec, stamp_window};

/// A complete pane's partials are merged into one batch when they came in
/// more batches than this; below it a merge costs more than it saves (a
/// plan run, against merging a few small batches at window close).
const COMPACT_ABOVE_BATCHES: usize = 3;

/// Window state: kept rows and partials by pane, and how far windows have
/// been emitted.
pub(in crate::exec) struct Windowed {
    spec: WindowSpec,
    /// Panes of each window input (in `plan.windows()` order).
    windows: Vec<PaneBuffer>,
    /// Panes of each kept input (in `plan.kept()` order).
    kept: Vec<PaneBuffer>,
    /// Partial aggregates by pane, one buffer per incremental aggregate.
    partials: Vec<PaneBuffer>,
    /// The watermark windows were last closed at: windows ending at or
    /// before it (plus lateness) have been emitted.
    closed_until: Option<i64>,
}

impl Windowed {
    /// An operator with empty state for `plan`'s window `spec`.
    pub(in crate::exec) fn new(plan: &WindowedPlan) -> Self {
        let spec = plan.spec;
        let pane_ms = spec.pane_ms();
        let panes = |n: usize| (0..n).map(|_| PaneBuffer::new(pane_ms)).collect();
        Self {
            spec,
            windows: panes(plan.windows.len()),
            kept: panes(plan.kept.len()),
            partials: panes(plan.partials.len()),
            closed_until: None,
        }
    }

    fn buffers(&self) -> impl Iterator<Item = &PaneBuffer> {
        self.windows.iter().chain(&self.kept).chain(&self.partials)
    }

    /// Runs the partial aggregates over window input `window` once per pane
    /// of the batch's new rows (each run sees one pane's rows, stamped with
    /// the pane's bounds) and adds the partials to their panes.
    async fn feed_partials(
        &mut self,
        cx: &Cx<'_>,
        window: usize,
        new_rows: &PaneBuffer,
    ) -> Result<(), ExecError> {
        let input = &cx.plan.windows()[window];
        let pane_ms = new_rows.pane_ms();
        for pane in new_rows.pane_starts() {
            let end = pane + pane_ms;
            let rows = stamp_window(
                &new_rows.rows_between(pane, end),
                input.table.schema_ref(),
                (pane, end),
            )
            .map_err(|e| cx.arrow(e))?;
            let _filled = fill(&input.table, rows);
            for (j, partial) in cx.plan.partials().iter().enumerate() {
                if partial.window != window {
                    continue;
                }
                let partials = cx.run(&partial.partial).await?;
                self.partials[j].insert_pane(pane, partials);
            }
        }
        Ok(())
    }

    /// Merges the partials of each pane no more rows can arrive for (it ends
    /// at or before the watermark's cut-off) into one batch, when they came
    /// in more than [`COMPACT_ABOVE_BATCHES`] batches: a long window's panes
    /// then hold one partial row per group, not one per group and batch.
    async fn compact_partials(
        &mut self,
        cx: &Cx<'_>,
        watermark: Watermark,
    ) -> Result<(), ExecError> {
        let Some(complete_until) = watermark.cutoff() else {
            return Ok(());
        };
        for (j, partial) in cx.plan.partials().iter().enumerate() {
            let pane_ms = self.partials[j].pane_ms();
            let fragmented =
                self.partials[j].fragmented_before(complete_until, COMPACT_ABOVE_BATCHES);
            for pane in fragmented {
                let end = pane + pane_ms;
                let rows = stamp_window(
                    self.partials[j].pane_batches(pane),
                    partial.table.schema_ref(),
                    (pane, end),
                )
                .map_err(|e| cx.arrow(e))?;
                let merged = cx.run_over(&partial.table, rows, &partial.compact).await?;
                self.partials[j].replace_pane(pane, merged);
            }
        }
        Ok(())
    }

    /// Windows that hold rows and whose end (plus lateness) the watermark
    /// passed since windows were last closed, as `(end, start)`.
    fn closing(&self, watermark: Watermark) -> BTreeSet<(i64, i64)> {
        let mut closing = BTreeSet::new();
        let Some(at) = watermark.at else {
            return closing;
        };
        let lateness = watermark.allowed_lateness_ms;
        let spec = self.spec;
        // Only the windows due now, not every window holding the pane (a
        // 30-day window sliding by 1 s has 2.6M).
        let after = self
            .closed_until
            .map_or(i64::MIN, |c| c.saturating_sub(lateness));
        for panes in self.windows.iter().chain(&self.partials) {
            for pane in panes.pane_starts() {
                let mut next = spec.next_end_after(pane, after);
                while let Some(end) = next.filter(|e| e.saturating_add(lateness) <= at) {
                    closing.insert((end, end - spec.size_ms));
                    next = spec.next_end_after(pane, end);
                }
            }
        }
        closing
    }

    /// Runs the query over window `[start, end)`.
    async fn close_window(&self, cx: &Cx<'_>, start: i64, end: i64) -> Result<Emitted, ExecError> {
        let plan = cx.plan;
        let mut filled: Vec<Filled<'_>> = Vec::new();
        for (input, panes) in plan.windows().iter().zip(&self.windows) {
            if !input.keeps_rows {
                continue;
            }
            let rows = stamp_window(
                &panes.rows_between(start, end),
                input.table.schema_ref(),
                (start, end),
            )
            .map_err(|e| cx.arrow(e))?;
            filled.push(fill(&input.table, rows));
        }
        for (input, panes) in plan.kept().iter().zip(&self.kept) {
            filled.push(fill(&input.table, panes.all_rows()));
        }
        for (partial, panes) in plan.partials().iter().zip(&self.partials) {
            let rows = stamp_window(
                &panes.rows_between(start, end),
                partial.table.schema_ref(),
                (start, end),
            )
            .map_err(|e| cx.arrow(e))?;
            filled.push(fill(&partial.table, rows));
        }
        let rows = cx.execute().await?;
        drop(filled);
        Ok(Emitted {
            window: Some((start, end)),
            rows,
        })
    }
}

impl Operator for Windowed {
    /// Runs each window input's (and kept input's) feeder over the batch and
    /// adds its rows to the panes; rows behind the watermark, or without a
    /// time, are late: counted and dropped. Inputs over the same relation see
    /// the same rows, so each relation counts once.
    async fn process_batch(
        &mut self,
        cx: &Cx<'_>,
        batches: &[Batch],
        watermark: Watermark,
    ) -> Result<(Vec<Emitted>, u64), ExecError> {
        let plan = cx.plan;
        let _streams = fill_streams(plan, batches);
        let cutoff = match plan.time {
            Some(TimeDomain::Event) => watermark.cutoff(),
            _ => None,
        };
        let mut late_by_relation: BTreeMap<&str, u64> = BTreeMap::new();
        let inputs = (plan.windows().iter().enumerate().map(|(i, w)| (true, i, w)))
            .chain(plan.kept().iter().enumerate().map(|(i, k)| (false, i, k)));
        for (windowed, i, input) in inputs {
            let input: &KeptInput = input;
            let batches = cx.run(&input.feeder).await?;
            let keeps_rows = input.keeps_rows;
            let incremental = windowed && plan.partials().iter().any(|p| p.window == i);
            let mut new_rows = PaneBuffer::new(self.spec.pane_ms());
            let mut late = 0;
            for batch in batches {
                let (rows, times, dropped) =
                    on_time_rows(&batch, input.time_index, cutoff).map_err(|e| cx.arrow(e))?;
                late += dropped;
                let panes = if !keeps_rows {
                    &mut new_rows
                } else if windowed {
                    &mut self.windows[i]
                } else {
                    &mut self.kept[i]
                };
                panes.insert(&rows, &times).map_err(|e| cx.arrow(e))?;
                if keeps_rows && incremental {
                    new_rows.insert(&rows, &times).map_err(|e| cx.arrow(e))?;
                }
            }
            if incremental {
                self.feed_partials(cx, i, &new_rows).await?;
            }
            let counted = late_by_relation.entry(&input.relation).or_default();
            *counted = (*counted).max(late);
        }
        Ok((Vec::new(), late_by_relation.values().sum()))
    }

    async fn handle_watermark(
        &mut self,
        cx: &Cx<'_>,
        watermark: Watermark,
    ) -> Result<Vec<Emitted>, ExecError> {
        let mut results = Vec::new();
        for (end, start) in self.closing(watermark) {
            results.push(self.close_window(cx, start, end).await?);
        }
        if let Some(at) = watermark.at {
            self.closed_until = Some(at);
            let keep_from = if at == i64::MAX {
                i64::MAX
            } else {
                self.spec
                    .first_open_start(at - watermark.allowed_lateness_ms)
            };
            let buffers = self.windows.iter_mut().chain(&mut self.kept);
            for panes in buffers.chain(&mut self.partials) {
                panes.evict_before(keep_from);
            }
        }
        // After eviction: only panes open windows still need are merged.
        self.compact_partials(cx, watermark).await?;
        Ok(results)
    }

    /// Every buffer's panes (window inputs, kept inputs, partials, in that
    /// order) and how far windows were emitted.
    fn snapshot(&self) -> Result<OperatorSnapshot, SnapshotError> {
        Ok(OperatorSnapshot {
            kind: "windowed",
            closed_until: self.closed_until,
            buffers: self.buffers().map(PaneSnapshot::of).collect(),
            sessions: None,
        })
    }

    fn restore(&mut self, snapshot: OperatorSnapshot) -> Result<(), SnapshotError> {
        let (windows, kept) = (self.windows.len(), self.kept.len());
        snapshot.check("windowed", windows + kept + self.partials.len())?;
        let mut buffers = snapshot.buffers.into_iter().map(PaneSnapshot::into_buffer);
        self.windows = buffers.by_ref().take(windows).collect();
        self.kept = buffers.by_ref().take(kept).collect();
        self.partials = buffers.collect();
        self.closed_until = snapshot.closed_until;
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.buffers().map(PaneBuffer::rows).sum()
    }

    fn state_bytes(&self) -> usize {
        self.buffers().map(PaneBuffer::bytes).sum()
    }

    fn is_empty(&self) -> bool {
        self.windows
            .iter()
            .chain(&self.partials)
            .all(PaneBuffer::is_empty)
    }

    /// The next batch time at which a processing-time window closes or a
    /// pane completes (its partials can be compacted).
    fn next_event_time(
        &self,
        plan: &StreamingPlan,
        time: i64,
        interval_ms: i64,
        watermark: Watermark,
    ) -> i64 {
        let next = time + interval_ms;
        let Some(after) = watermark.cutoff() else {
            return next;
        };
        if plan.time == Some(TimeDomain::Event) {
            return next;
        }
        let spec = self.spec;
        let event = self
            .windows
            .iter()
            .chain(&self.partials)
            .flat_map(|panes| {
                let pane_ms = panes.pane_ms();
                panes.pane_starts().flat_map(move |pane| {
                    let pane_end = Some(pane + pane_ms).filter(|end| *end > after);
                    pane_end.into_iter().chain(spec.next_end_after(pane, after))
                })
            })
            .min();
        let Some(event) = event else {
            return next;
        };
        // The batch at `t` moves the watermark to `t + interval`.
        let due = event.saturating_add(watermark.allowed_lateness_ms) - interval_ms;
        let aligned = due.div_euclid(interval_ms) * interval_ms;
        let aligned = if aligned < due {
            aligned + interval_ms
        } else {
            aligned
        };
        next.max(aligned)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(times: &[i64]) -> (RecordBatch, Int64Array) {
        let schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Int64, false)]));
        let times = Int64Array::from(times.to_vec());
        let rows = RecordBatch::try_new(schema, vec![Arc::new(times.clone())]).unwrap();
        (rows, times)
    }

    /// A HOP(size 4 s, slide 2 s) operator with one window input and one
    /// partial buffer, fed by hand.
    fn operator() -> Windowed {
        let spec = WindowSpec {
            kind: crate::window::WindowKind::Hop,
            size_ms: 4_000,
            slide_ms: 2_000,
        };
        let pane_ms = spec.pane_ms();
        Windowed {
            spec,
            windows: vec![PaneBuffer::new(pane_ms)],
            kept: Vec::new(),
            partials: vec![PaneBuffer::new(pane_ms)],
            closed_until: None,
        }
    }

    fn feed(op: &mut Windowed, times: &[i64]) {
        let (rows, times) = batch(times);
        op.windows[0].insert(&rows, &times).unwrap();
        op.partials[0].insert_pane(times.value(0).div_euclid(2_000) * 2_000, vec![rows]);
    }

    fn state(op: &Windowed, watermark: Watermark) -> String {
        let panes: Vec<_> = op
            .buffers()
            .map(|b| {
                b.panes()
                    .map(|(start, held)| {
                        let rows: Vec<_> =
                            held.iter().map(|b| format!("{:?}", b.column(0))).collect();
                        (start, rows)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        format!(
            "{panes:?} {:?} {:?}",
            op.closing(watermark),
            op.closed_until
        )
    }

    #[test]
    fn restored_state_continues_like_the_uninterrupted_one() {
        let batches: [&[i64]; 4] = [&[500, 2_500], &[3_000, 4_100], &[6_000, 1_000], &[9_000]];
        let watermark = |at| Watermark {
            at: Some(at),
            allowed_lateness_ms: 0,
        };
        let mut whole = operator();
        let mut first = operator();
        for b in &batches[..2] {
            feed(&mut whole, b);
            feed(&mut first, b);
        }
        first.closed_until = Some(2_000);
        whole.closed_until = Some(2_000);
        let snapshot = first.snapshot().unwrap();
        drop(first);
        let mut restored = operator();
        restored.restore(snapshot).unwrap();
        for b in &batches[2..] {
            feed(&mut whole, b);
            feed(&mut restored, b);
        }
        for at in [4_000, 8_000, 12_000] {
            assert_eq!(
                state(&whole, watermark(at)),
                state(&restored, watermark(at))
            );
        }
        assert_eq!(whole.state_rows(), restored.state_rows());
        let per_batch = OperatorSnapshot {
            kind: "per_batch",
            ..OperatorSnapshot::default()
        };
        assert!(operator().restore(per_batch).is_err());
    }
}
