//! Window state kept per pane: the rows of one relation grouped by the pane
//! (a span of `gcd(size, slide)`) their time falls in. A window is the union
//! of its panes, so a row is stored once however many windows cover it, and a
//! pane is freed as soon as the last window that needs it has closed.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::error::ArrowError;

/// Rows by pane start (ms since the epoch).
#[derive(Debug)]
pub struct PaneBuffer {
    pane_ms: i64,
    panes: BTreeMap<i64, Vec<RecordBatch>>,
}

impl PaneBuffer {
    /// An empty buffer of panes `pane_ms` long.
    pub fn new(pane_ms: i64) -> Self {
        Self {
            pane_ms,
            panes: BTreeMap::new(),
        }
    }

    /// Adds the rows of `batch`, whose times are `times` (ms, no nulls).
    pub fn insert(&mut self, batch: &RecordBatch, times: &Int64Array) -> Result<(), ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let pane_ms = self.pane_ms;
        let panes: Int64Array = times
            .values()
            .iter()
            .map(|t| t.div_euclid(pane_ms) * pane_ms)
            .collect();
        let distinct: BTreeSet<i64> = panes.values().iter().copied().collect();
        if distinct.len() == 1 {
            let pane = panes.value(0);
            self.panes.entry(pane).or_default().push(batch.clone());
            return Ok(());
        }
        for pane in distinct {
            let mask = eq(&panes, &Int64Array::new_scalar(pane))?;
            let rows = filter_record_batch(batch, &mask)?;
            self.panes.entry(pane).or_default().push(rows);
        }
        Ok(())
    }

    /// Adds `batches` to the pane starting at `pane`; the pane is held (and
    /// its windows will close) even when `batches` is empty, like a pane
    /// whose rows a partial aggregate filtered out.
    pub fn insert_pane(&mut self, pane: i64, batches: Vec<RecordBatch>) {
        self.panes
            .entry(pane)
            .or_default()
            .extend(batches.into_iter().filter(|b| b.num_rows() > 0));
    }

    /// Starts of the panes ending at or before `t` that hold more than
    /// `batches` batches: complete panes worth merging into one.
    pub fn fragmented_before(&self, t: i64, batches: usize) -> Vec<i64> {
        self.panes
            .iter()
            .filter(|(start, held)| start.saturating_add(self.pane_ms) <= t && held.len() > batches)
            .map(|(start, _)| *start)
            .collect()
    }

    /// The batches of the pane starting at `pane` (none if not held).
    pub fn pane_batches(&self, pane: i64) -> &[RecordBatch] {
        self.panes.get(&pane).map_or(&[], Vec::as_slice)
    }

    /// Replaces the batches of the pane starting at `pane`.
    pub fn replace_pane(&mut self, pane: i64, batches: Vec<RecordBatch>) {
        self.panes.insert(pane, batches);
    }

    /// Length of a pane in ms.
    pub fn pane_ms(&self) -> i64 {
        self.pane_ms
    }

    /// True when no pane is held.
    pub fn is_empty(&self) -> bool {
        self.panes.is_empty()
    }

    /// The rows whose time is in `[start, end)` (both pane-aligned).
    pub fn rows_between(&self, start: i64, end: i64) -> Vec<RecordBatch> {
        self.panes
            .range(start..end)
            .flat_map(|(_, batches)| batches.iter().cloned())
            .collect()
    }

    /// Every row held.
    pub fn all_rows(&self) -> Vec<RecordBatch> {
        self.panes.values().flatten().cloned().collect()
    }

    /// Frees the panes that end at or before `t`.
    pub fn evict_before(&mut self, t: i64) {
        let pane_ms = self.pane_ms;
        self.panes
            .retain(|start, _| start.saturating_add(pane_ms) > t);
    }

    /// Starts of the panes that hold rows.
    pub fn pane_starts(&self) -> impl Iterator<Item = i64> + '_ {
        self.panes.keys().copied()
    }

    /// Number of rows held.
    pub fn rows(&self) -> usize {
        self.panes
            .values()
            .flatten()
            .map(RecordBatch::num_rows)
            .sum()
    }

    /// Every held pane's start and batches, in pane order (a pane held
    /// without rows has no batches), for a snapshot.
    pub fn panes(&self) -> impl Iterator<Item = (i64, &[RecordBatch])> + '_ {
        self.panes
            .iter()
            .map(|(start, held)| (*start, held.as_slice()))
    }

    /// A buffer holding exactly `panes` (as [`PaneBuffer::panes`] listed
    /// them), batch for batch: restores a snapshot.
    pub fn from_panes(pane_ms: i64, panes: Vec<(i64, Vec<RecordBatch>)>) -> Self {
        Self {
            pane_ms,
            panes: panes.into_iter().collect(),
        }
    }

    /// Memory held by the rows, in bytes.
    pub fn bytes(&self) -> usize {
        self.panes
            .values()
            .flatten()
            .map(RecordBatch::get_array_memory_size)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    #[test]
    fn rows_land_in_their_pane_and_panes_are_freed() {
        let mut panes = PaneBuffer::new(2_000);
        let times = [500, 2_500, 1_999, -1, 4_000];
        panes
            .insert(&batch(&times), &Int64Array::from(times.to_vec()))
            .unwrap();
        assert_eq!(
            panes.pane_starts().collect::<Vec<_>>(),
            vec![-2_000, 0, 2_000, 4_000]
        );
        let rows: usize = panes
            .rows_between(0, 4_000)
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 3);
        panes.evict_before(2_000);
        assert_eq!(panes.rows(), 2);
        assert_eq!(panes.pane_starts().next(), Some(2_000));
    }
}
