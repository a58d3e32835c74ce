//! Open sessions as Arrow data, for a checkpoint: one row per open session
//! (its bounds, row count and key values) and the open rows themselves, so
//! that [`OpenSessions::restore`] rebuilds sessions that close, merge and
//! emit exactly like the ones snapshotted.
//!
//! Keys are exported as their values (decoded from the row format), not as
//! row-format bytes, whose encoding Arrow does not promise to keep.
//!
//! Taking a snapshot is cheap, since it runs between a query's batches: the
//! open rows are kept as references into the batches the sessions hold
//! (shared, not copied), and [`SessionRows::into_batches`] copies them out
//! later, on the checkpoint writer's thread.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt64Array};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, SortField};

use super::{OpenSessions, Retained, RowRef, Session, gather};
use datafusion::common::HashMap;

/// Columns of [`SessionsSnapshot::sessions`] before the key columns.
const START: &str = "start";
const LAST: &str = "last";
const ROWS: &str = "rows";

/// The open sessions of a session window as Arrow record batches.
#[derive(Debug, Clone)]
pub struct SessionsSnapshot {
    /// One row per open session, in the order they were opened: `start` and
    /// `last` (the session's first and last row time, ms), `rows` (how many
    /// of [`SessionsSnapshot::rows`] are its), then one column per session
    /// key (`key_0`, ...; none when all rows form one sequence of sessions).
    pub sessions: RecordBatch,
    /// The open rows, each session's in arrival order, sessions in
    /// `sessions` order.
    pub rows: SessionRows,
}

/// The open rows of a [`SessionsSnapshot`]: either still references into the
/// batches the sessions held when it was taken, or copied out in order.
#[derive(Debug, Clone)]
pub struct SessionRows(Rows);

#[derive(Debug, Clone)]
enum Rows {
    /// In order, as record batches (as read from a checkpoint).
    Copied(Vec<RecordBatch>),
    /// The retained batches by id, and the open rows in order.
    Held {
        batches: HashMap<u32, RecordBatch>,
        refs: Vec<RowRef>,
    },
}

impl SessionRows {
    /// Rows already in order, e.g. read back from a checkpoint.
    pub fn copied(batches: Vec<RecordBatch>) -> Self {
        Self(Rows::Copied(batches))
    }

    /// How many open rows there are.
    #[cfg(test)]
    pub fn num_rows(&self) -> usize {
        match &self.0 {
            Rows::Copied(batches) => batches.iter().map(RecordBatch::num_rows).sum(),
            Rows::Held { refs, .. } => refs.len(),
        }
    }

    /// The open rows in order as record batches (none when no session is
    /// open); copies them out of the held batches if need be.
    pub fn into_batches(self) -> Result<Vec<RecordBatch>, ArrowError> {
        match self.0 {
            Rows::Copied(batches) => Ok(batches),
            Rows::Held { refs, .. } if refs.is_empty() => Ok(Vec::new()),
            Rows::Held { batches, refs } => Ok(vec![gather(|id| batches.get(&id), &refs)?]),
        }
    }
}

fn error(what: &str) -> ArrowError {
    ArrowError::InvalidArgumentError(format!("invalid session snapshot: {what}"))
}

impl OpenSessions {
    /// The open sessions and their rows (see the module doc: the rows are
    /// not copied here).
    pub fn snapshot(&self) -> Result<SessionsSnapshot, ArrowError> {
        let mut ids: Vec<u64> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        let sessions: Vec<&Session> = ids.iter().map(|id| &self.sessions[id]).collect();
        let refs: Vec<RowRef> = sessions
            .iter()
            .flat_map(|s| s.rows.iter().copied())
            .collect();
        let batches = (self.batches.iter())
            .map(|(id, retained)| (*id, retained.batch.clone()))
            .collect();
        let rows = SessionRows(Rows::Held { batches, refs });
        let mut fields = vec![
            Field::new(START, DataType::Int64, false),
            Field::new(LAST, DataType::Int64, false),
            Field::new(ROWS, DataType::UInt64, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                sessions.iter().map(|s| s.start),
            )),
            Arc::new(Int64Array::from_iter_values(
                sessions.iter().map(|s| s.last),
            )),
            Arc::new(UInt64Array::from_iter_values(
                sessions.iter().map(|s| s.rows.len() as u64),
            )),
        ];
        if let Some(converter) = self.converter.as_ref().filter(|_| !sessions.is_empty()) {
            let parser = converter.parser();
            let keys = converter.convert_rows(sessions.iter().map(|s| parser.parse(&s.key)))?;
            for (i, key) in keys.into_iter().enumerate() {
                fields.push(Field::new(
                    format!("key_{i}"),
                    key.data_type().clone(),
                    true,
                ));
                columns.push(key);
            }
        }
        let sessions = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        Ok(SessionsSnapshot { sessions, rows })
    }

    /// Open sessions with a gap of `gap_ms` holding `snapshot`'s (taken by
    /// [`OpenSessions::snapshot`]); their rows are kept in one batch.
    pub fn restore(gap_ms: i64, snapshot: SessionsSnapshot) -> Result<Self, ArrowError> {
        let mut open = Self::new(gap_ms);
        let index = &snapshot.sessions;
        let int = |name: &str| {
            index
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .ok_or_else(|| error(&format!("no Int64 column '{name}'")))
        };
        let (starts, lasts) = (int(START)?, int(LAST)?);
        let counts = index
            .column_by_name(ROWS)
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            .ok_or_else(|| error("no UInt64 column 'rows'"))?;
        let keys: Vec<ArrayRef> = index.columns().iter().skip(3).cloned().collect();
        let encoded = if keys.is_empty() {
            None
        } else {
            let fields = keys
                .iter()
                .map(|k| SortField::new(k.data_type().clone()))
                .collect();
            let converter = RowConverter::new(fields)?;
            let encoded = converter.convert_columns(&keys)?;
            open.converter = Some(converter);
            Some(encoded)
        };
        let rows = snapshot.rows.into_batches()?;
        let rows = match rows.first() {
            None => None,
            Some(first) => Some(concat_batches(first.schema_ref(), &rows)?),
        };
        let total = rows.as_ref().map_or(0, RecordBatch::num_rows);
        if counts.null_count() > 0 || counts.values().contains(&0) {
            return Err(error("a session without rows"));
        }
        if counts.values().iter().sum::<u64>() != total as u64 {
            return Err(error("the sessions' row counts do not add up to the rows"));
        }
        let mut row = 0u32;
        for i in 0..index.num_rows() {
            let key: Box<[u8]> = encoded
                .as_ref()
                .map_or_else(Box::default, |e| e.row(i).data().into());
            let n = counts.value(i) as u32;
            let id = open.next_session;
            open.next_session += 1;
            open.by_key.entry(key.clone()).or_default().push(id);
            open.sessions.insert(
                id,
                Session {
                    key,
                    start: starts.value(i),
                    last: lasts.value(i),
                    rows: (row..row + n).map(|row| RowRef { batch: 0, row }).collect(),
                    indexed_end: None,
                    dirty: true,
                },
            );
            row += n;
        }
        // A key's sessions are listed by start (ids follow opening order).
        for list in open.by_key.values_mut() {
            list.sort_by_key(|id| open.sessions[id].start);
        }
        let ids: Vec<u64> = open.sessions.keys().copied().collect();
        for id in ids {
            open.reindex(id);
        }
        if let Some(batch) = rows.filter(|b| b.num_rows() > 0) {
            open.open_rows = total;
            open.retained_rows = total;
            open.next_batch = 1;
            open.batches.insert(0, Retained { batch, live: total });
        }
        Ok(open)
    }
}
