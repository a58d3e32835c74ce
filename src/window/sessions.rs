//! Open session windows, kept per key between batches so that a batch costs
//! work proportional to its new rows and the rows of the sessions it closes
//! (not to every open row).
//!
//! A session of a key is a maximal run of its rows, in time order, where each
//! row follows the previous one by less than the gap; it spans
//! `[first time, last time + gap)` and closes once the watermark reaches its
//! end. Per key the open sessions are kept ordered by start; consecutive ones
//! are at least `gap` apart (`next.start - prev.last >= gap`). A new row at
//! `t` joins every session with `start - gap < t < last + gap` — merging the
//! two it bridges when it arrives out of order — or starts a session of its own.
//!
//! Rows stay in the batches they arrived in; sessions hold references to
//! them. A batch is dropped once none of its rows is open, and the open rows
//! are copied into one batch when the retained batches hold more than twice
//! as many rows as are open, so memory stays proportional to the open rows.
//! `sessions/snapshot.rs` exports the open sessions as Arrow data for a
//! checkpoint and rebuilds them.

use std::collections::BTreeSet;

use datafusion::arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, interleave_record_batch, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, SortField};
// hashbrown with a fast hasher: a lookup per new row.
use datafusion::common::HashMap;

mod snapshot;

pub use snapshot::{SessionRows, SessionsSnapshot};

/// Retained rows beyond twice the open ones that trigger copying the open
/// rows into one batch (so small states are not copied over and over).
const COMPACT_SLACK_ROWS: usize = 65_536;

/// A row of a retained batch (8 bytes per open row).
#[derive(Debug, Clone, Copy)]
struct RowRef {
    batch: u32,
    row: u32,
}

/// One open session of a key.
#[derive(Debug)]
struct Session {
    key: Box<[u8]>,
    start: i64,
    last: i64,
    /// The session's rows, in arrival order.
    rows: Vec<RowRef>,
    /// The end this session is listed under in `ends`, if any.
    indexed_end: Option<i64>,
    /// Whether its end changed since `ends` was last brought up to date.
    dirty: bool,
}

/// A batch some open rows point into, with how many of its rows are open.
#[derive(Debug)]
struct Retained {
    batch: RecordBatch,
    live: usize,
}

/// The open sessions of a session window, by key.
#[derive(Debug)]
pub struct OpenSessions {
    gap_ms: i64,
    /// Turns key columns into comparable bytes; made from the first keyed batch.
    converter: Option<RowConverter>,
    /// Per key (its row-format bytes), its open sessions ordered by start.
    by_key: HashMap<Box<[u8]>, Vec<u64>>,
    sessions: HashMap<u64, Session>,
    /// `(end, session)` of every open session, earliest end first.
    ends: BTreeSet<(i64, u64)>,
    batches: HashMap<u32, Retained>,
    /// Id of the next retained batch; ids start again from 0 when all open
    /// rows are copied into one batch.
    next_batch: u32,
    next_session: u64,
    open_rows: usize,
    retained_rows: usize,
    /// Retained rows allowed beyond twice the open ones before compacting.
    compact_slack: usize,
}

impl OpenSessions {
    /// No open sessions yet; sessions end `gap_ms` after their last row.
    pub fn new(gap_ms: i64) -> Self {
        Self {
            gap_ms,
            converter: None,
            by_key: HashMap::new(),
            sessions: HashMap::new(),
            ends: BTreeSet::new(),
            batches: HashMap::new(),
            next_batch: 0,
            next_session: 0,
            open_rows: 0,
            retained_rows: 0,
            compact_slack: COMPACT_SLACK_ROWS,
        }
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Rows of the open sessions.
    pub fn rows(&self) -> usize {
        self.open_rows
    }

    /// Memory of the retained batches plus the per-row references.
    pub fn bytes(&self) -> usize {
        let batches: usize = self
            .batches
            .values()
            .map(|r| r.batch.get_array_memory_size())
            .sum();
        batches + self.open_rows * std::mem::size_of::<RowRef>()
    }

    /// The earliest end of an open session: until the watermark reaches it,
    /// no session closes.
    pub fn next_end(&self) -> Option<i64> {
        self.ends.first().map(|(end, _)| *end)
    }

    /// The earliest start of an open session: rows read beside the sessions
    /// (a stream joined to them) are needed from there on. Linear in the
    /// open sessions.
    pub fn earliest_start(&self) -> Option<i64> {
        self.sessions.values().map(|s| s.start).min()
    }

    /// Session gap in ms.
    pub fn gap_ms(&self) -> i64 {
        self.gap_ms
    }

    /// Adds the rows of `batch`, with times `times` (ms, one per row) and
    /// session keys `keys` (one array per key expression, none for one
    /// sequence of sessions over all rows), to the open sessions.
    pub fn insert(
        &mut self,
        batch: RecordBatch,
        times: &[i64],
        keys: &[ArrayRef],
    ) -> Result<(), ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if times.len() != batch.num_rows() || keys.iter().any(|k| k.len() != batch.num_rows()) {
            return Err(ArrowError::InvalidArgumentError(
                "session rows, times and keys differ in length".into(),
            ));
        }
        let rows = if keys.is_empty() {
            None
        } else {
            if self.converter.is_none() {
                let fields = keys
                    .iter()
                    .map(|k| SortField::new(k.data_type().clone()))
                    .collect();
                self.converter = Some(RowConverter::new(fields)?);
            }
            let converter = self.converter.as_ref().ok_or_else(|| {
                ArrowError::InvalidArgumentError("no session key converter".into())
            })?;
            Some(converter.convert_columns(keys)?)
        };
        if self.next_batch == u32::MAX {
            self.compact()?;
        }
        let id = self.next_batch;
        self.next_batch += 1;
        let mut dirty = Vec::new();
        for (row, &t) in times.iter().enumerate() {
            let key: &[u8] = rows.as_ref().map_or(&[], |r| r.row(row).data());
            let at = RowRef {
                batch: id,
                row: row as u32,
            };
            if let Some(session) = self.add_row(key, t, at) {
                dirty.push(session);
            }
        }
        self.open_rows += batch.num_rows();
        self.retained_rows += batch.num_rows();
        let live = batch.num_rows();
        self.batches.insert(id, Retained { batch, live });
        for session in dirty {
            self.reindex(session);
        }
        Ok(())
    }

    /// Puts one row into its key's sessions; returns the session whose end
    /// changed when `ends` must be updated for it.
    fn add_row(&mut self, key: &[u8], t: i64, at: RowRef) -> Option<u64> {
        let gap = self.gap_ms;
        let list = match self.by_key.get_mut(key) {
            Some(list) => list,
            None => self.by_key.entry(key.into()).or_default(),
        };
        let sessions = &mut self.sessions;
        // Sessions are ordered by start and by last alike.
        let first = list.partition_point(|s| sessions[s].last.saturating_add(gap) <= t);
        let mut past = first;
        while past < list.len() && sessions[&list[past]].start.saturating_sub(gap) < t {
            past += 1;
        }
        if first == past {
            let id = self.next_session;
            self.next_session += 1;
            list.insert(first, id);
            sessions.insert(
                id,
                Session {
                    key: key.into(),
                    start: t,
                    last: t,
                    rows: vec![at],
                    indexed_end: None,
                    dirty: true,
                },
            );
            return Some(id);
        }
        let target = list[first];
        for merged in list.drain(first + 1..past).collect::<Vec<_>>() {
            let Some(other) = sessions.remove(&merged) else {
                continue;
            };
            if let Some(end) = other.indexed_end {
                self.ends.remove(&(end, merged));
            }
            let session = sessions.get_mut(&target)?;
            session.start = session.start.min(other.start);
            session.last = session.last.max(other.last);
            session.rows.extend(other.rows);
        }
        let session = sessions.get_mut(&target)?;
        session.rows.push(at);
        session.start = session.start.min(t);
        session.last = session.last.max(t);
        let moved = session.indexed_end != Some(session.last.saturating_add(gap));
        if moved && !session.dirty {
            session.dirty = true;
            return Some(target);
        }
        None
    }

    /// Lists a session under its current end.
    fn reindex(&mut self, id: u64) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        session.dirty = false;
        let end = session.last.saturating_add(self.gap_ms);
        if session.indexed_end == Some(end) {
            return;
        }
        if let Some(old) = session.indexed_end.replace(end) {
            self.ends.remove(&(old, id));
        }
        self.ends.insert((end, id));
    }

    /// Closes every session whose end is at or before `watermark`: returns
    /// their rows (each session's in arrival order) with `window_start` and
    /// `window_end` appended, as `schema` (the rows' columns, then those two).
    pub fn close(
        &mut self,
        watermark: i64,
        schema: &SchemaRef,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        let mut closed = Vec::new();
        while let Some(&(end, id)) = self.ends.first() {
            if end > watermark {
                break;
            }
            self.ends.pop_first();
            let Some(session) = self.sessions.remove(&id) else {
                continue;
            };
            if let Some(list) = self.by_key.get_mut(&session.key) {
                list.retain(|s| *s != id);
                if list.is_empty() {
                    self.by_key.remove(&session.key);
                }
            }
            closed.push(session);
        }
        if closed.is_empty() {
            return Ok(None);
        }
        let (mut starts, mut ends) = (Vec::new(), Vec::new());
        let mut refs = Vec::new();
        for session in &closed {
            let end = session.last.saturating_add(self.gap_ms);
            starts.extend(std::iter::repeat_n(session.start, session.rows.len()));
            ends.extend(std::iter::repeat_n(end, session.rows.len()));
            refs.extend_from_slice(&session.rows);
        }
        let rows = self.gather(&refs)?;
        for at in &refs {
            if let Some(retained) = self.batches.get_mut(&at.batch) {
                retained.live -= 1;
                if retained.live == 0 {
                    self.retained_rows -= retained.batch.num_rows();
                    self.batches.remove(&at.batch);
                }
            }
        }
        self.open_rows -= refs.len();
        self.compact_if_sparse()?;
        let mut columns = rows.columns().to_vec();
        let width = columns.len();
        for (values, index) in [(starts, width), (ends, width + 1)] {
            let field = schema.fields().get(index).ok_or_else(|| {
                ArrowError::SchemaError("closed sessions' schema lacks window columns".into())
            })?;
            let array: ArrayRef = std::sync::Arc::new(TimestampMillisecondArray::from(values));
            columns.push(cast(&array, field.data_type())?);
        }
        RecordBatch::try_new(schema.clone(), columns).map(Some)
    }

    /// The rows `refs` point at, in that order, as one batch.
    fn gather(&self, refs: &[RowRef]) -> Result<RecordBatch, ArrowError> {
        gather(|id| self.batches.get(&id).map(|r| &r.batch), refs)
    }

    /// Copies the open rows into one batch when the retained batches hold
    /// mostly closed rows.
    fn compact_if_sparse(&mut self) -> Result<(), ArrowError> {
        if self.retained_rows <= 2 * self.open_rows + self.compact_slack {
            return Ok(());
        }
        self.compact()
    }

    /// Copies the open rows into one batch, numbered 0.
    fn compact(&mut self) -> Result<(), ArrowError> {
        let mut ids: Vec<u64> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        let refs: Vec<RowRef> = ids
            .iter()
            .flat_map(|id| self.sessions[id].rows.iter().copied())
            .collect();
        if refs.is_empty() {
            self.batches.clear();
            self.retained_rows = 0;
            self.next_batch = 0;
            return Ok(());
        }
        let batch = self.gather(&refs)?;
        let id = 0;
        self.next_batch = 1;
        let mut row = 0u32;
        for session in ids {
            if let Some(session) = self.sessions.get_mut(&session) {
                for at in &mut session.rows {
                    *at = RowRef { batch: id, row };
                    row += 1;
                }
            }
        }
        self.batches.clear();
        self.retained_rows = batch.num_rows();
        let live = batch.num_rows();
        self.batches.insert(id, Retained { batch, live });
        Ok(())
    }
}

/// The rows `refs` point at, in that order, as one batch; `batch` finds a
/// retained batch by its id. One pass over `refs` (a session's rows mostly
/// come from one batch, so the last id is remembered), no sorting: this runs
/// over every open row for a checkpoint's snapshot.
fn gather<'a>(
    batch: impl Fn(u32) -> Option<&'a RecordBatch>,
    refs: &[RowRef],
) -> Result<RecordBatch, ArrowError> {
    let lost = || ArrowError::InvalidArgumentError("session row lost".into());
    if let Some(first) = refs.first()
        && refs.iter().all(|at| at.batch == first.batch)
    {
        // All from one batch (as after a compaction): a plain `take`.
        let rows = UInt32Array::from_iter_values(refs.iter().map(|at| at.row));
        return take_record_batch(batch(first.batch).ok_or_else(lost)?, &rows);
    }
    let mut batches: Vec<&RecordBatch> = Vec::new();
    let mut position: HashMap<u32, usize> = HashMap::new();
    let mut last: Option<(u32, usize)> = None;
    let mut indices = Vec::with_capacity(refs.len());
    for at in refs {
        let index = match last {
            Some((id, index)) if id == at.batch => index,
            _ => {
                let index = match position.get(&at.batch) {
                    Some(index) => *index,
                    None => {
                        batches.push(batch(at.batch).ok_or_else(lost)?);
                        position.insert(at.batch, batches.len() - 1);
                        batches.len() - 1
                    }
                };
                last = Some((at.batch, index));
                index
            }
        };
        indices.push((index, at.row as usize));
    }
    interleave_record_batch(&batches, &indices)
}

#[cfg(test)]
mod tests;
