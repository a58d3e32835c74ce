//! The write-ahead log on its own: logging, replaying, continuing after a
//! restart, and what a damaged or missing entry gives.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::*;

/// A connector that hands out queued lines, one group per poll, counting
/// its range from 0 like the line sources do after every start.
struct Lines {
    schema: SchemaRef,
    polls: VecDeque<Vec<&'static str>>,
    taken: u64,
}

fn lines(polls: Vec<Vec<&'static str>>) -> Box<dyn Source> {
    let schema = Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]));
    Box::new(Lines {
        schema,
        polls: polls.into(),
        taken: 0,
    })
}

impl Source for Lines {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll_batch(&mut self, _ctx: &PollContext) -> Result<SourceData, SourceError> {
        let rows = self.polls.pop_front().unwrap_or_default();
        let start = self.taken;
        self.taken += rows.len() as u64;
        let mut data = SourceData {
            offsets: vec![SourceOffset {
                partition: "stdin".into(),
                start: start.to_string(),
                end: self.taken.to_string(),
            }],
            ..SourceData::default()
        };
        if !rows.is_empty() {
            let column = Arc::new(StringArray::from(rows));
            data.data
                .push(RecordBatch::try_new(self.schema.clone(), vec![column]).unwrap());
        }
        Ok(data)
    }

    fn is_drained(&self) -> bool {
        self.polls.is_empty()
    }
}

fn ctx(batch: i64) -> PollContext {
    PollContext {
        batch_time_ms: 1_000 * batch,
        interval_ms: 1_000,
    }
}

fn values(data: &SourceData) -> Vec<String> {
    let mut out = Vec::new();
    for batch in &data.data {
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        out.extend((0..column.len()).map(|i| column.value(i).to_string()));
    }
    out
}

fn range(data: &SourceData) -> (String, String) {
    (data.offsets[0].start.clone(), data.offsets[0].end.clone())
}

/// Runs three batches (the second reads nothing) and returns the log's
/// directory and the positions before each batch and after the last.
fn three_batches(dir: &Path) -> Vec<String> {
    let mut wal =
        WalSource::open(lines(vec![vec!["a", "b"], vec![], vec!["c"]]), dir.into()).expect("open");
    let mut positions = vec![wal.position().unwrap()];
    for batch in 0..3 {
        wal.poll_batch(&ctx(batch)).expect("poll");
        positions.push(wal.position().unwrap());
    }
    positions
}

#[test]
fn a_restart_replays_the_logged_batches_exactly_then_continues_live() {
    let dir = tempfile::tempdir().unwrap();
    let positions = three_batches(dir.path());
    // Only batches that read something are logged.
    assert_eq!(store::ids(dir.path(), "arrow").unwrap(), [0, 2]);
    // A restarted process: the connector counts from 0 again.
    let mut wal = WalSource::open(lines(vec![vec!["d", "e"]]), dir.path().into()).unwrap();
    wal.seek(&positions[0]).unwrap();
    let first = wal.poll_to(&ctx(0), &positions[1]).expect("replay 0");
    assert_eq!(
        (values(&first), range(&first)),
        (vec!["a".into(), "b".into()], ("0".into(), "2".into()))
    );
    let second = wal.poll_to(&ctx(1), &positions[2]).expect("replay 1");
    assert_eq!(
        (values(&second).len(), range(&second)),
        (0, ("2".into(), "2".into()))
    );
    let third = wal.poll_to(&ctx(2), &positions[3]).expect("replay 2");
    assert_eq!(
        (values(&third), range(&third)),
        (vec!["c".into()], ("2".into(), "3".into()))
    );
    // Live input carries on the count.
    let live = wal.poll_batch(&ctx(3)).expect("live");
    assert_eq!(
        (values(&live), range(&live)),
        (vec!["d".into(), "e".into()], ("3".into(), "5".into()))
    );
    assert_eq!(store::ids(dir.path(), "arrow").unwrap(), [0, 2, 3]);
}

#[test]
fn an_entry_logged_but_not_in_the_offsets_log_is_delivered_next() {
    let dir = tempfile::tempdir().unwrap();
    let positions = three_batches(dir.path());
    // The crash came after batch 2's entry, before its offsets log entry:
    // the driver resumes from the position after batch 1.
    let mut wal = WalSource::open(lines(vec![vec!["d"]]), dir.path().into()).unwrap();
    wal.seek(&positions[2]).unwrap();
    let received = wal.poll_batch(&ctx(2)).expect("poll");
    assert_eq!(
        (values(&received), range(&received)),
        (vec!["c".into()], ("2".into(), "3".into()))
    );
    assert_eq!(wal.position().unwrap(), positions[3]);
    let live = wal.poll_batch(&ctx(3)).expect("live");
    assert_eq!(
        (values(&live), range(&live)),
        (vec!["d".into()], ("3".into(), "4".into()))
    );
}

#[test]
fn a_replay_for_another_batch_time_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let positions = three_batches(dir.path());
    let mut wal = WalSource::open(lines(vec![]), dir.path().into()).unwrap();
    wal.seek(&positions[0]).unwrap();
    let err = wal.poll_to(&ctx(7), &positions[1]).unwrap_err().to_string();
    assert!(err.contains("logged for batch time 0 ms"), "{err}");
}

fn replay_error(damage: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let positions = three_batches(dir.path());
    damage(&store::entry(dir.path(), 2, "arrow"));
    let mut wal = WalSource::open(lines(vec![]), dir.path().into()).unwrap();
    wal.seek(&positions[2]).unwrap();
    wal.poll_to(&ctx(2), &positions[3]).unwrap_err().to_string()
}

#[test]
fn a_truncated_entry_is_an_error_naming_the_file() {
    let err = replay_error(|path| {
        let bytes = std::fs::read(path).unwrap();
        std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert!(
        err.contains("00000000000000000002.arrow' is corrupted"),
        "{err}"
    );
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn a_flipped_byte_is_an_error_naming_the_file() {
    let err = replay_error(|path| {
        let mut bytes = std::fs::read(path).unwrap();
        let last = bytes.len() - 10;
        bytes[last] ^= 0xff;
        std::fs::write(path, bytes).unwrap();
    });
    assert!(
        err.contains("00000000000000000002.arrow' is corrupted"),
        "{err}"
    );
}

#[test]
fn a_missing_entry_is_an_error_not_a_silent_gap() {
    let err = replay_error(|path| std::fs::remove_file(path).unwrap());
    assert!(err.contains("are missing"), "{err}");
    assert!(err.contains("reaches 2 instead of 3"), "{err}");
}

#[test]
fn pruning_keeps_the_entries_from_a_position_on() {
    let dir = tempfile::tempdir().unwrap();
    let positions = three_batches(dir.path());
    assert_eq!(next_batch(&positions[2]), Some(2));
    prune(dir.path(), 2).unwrap();
    assert_eq!(store::ids(dir.path(), "arrow").unwrap(), [2]);
    let (entries, bytes) = size(dir.path()).unwrap();
    assert_eq!(entries, 1);
    assert!(bytes > 0);
}

#[test]
fn retention_keeps_the_entries_the_oldest_kept_state_needs() {
    use super::super::{Fingerprint, KEEP_STATES, QueryCheckpoint, StateSnapshot};
    let root = tempfile::tempdir().unwrap();
    let fp = Fingerprint::default();
    let ck = QueryCheckpoint::open(root.path(), "q", &fp, 1, vec![], false).unwrap();
    let polls = (0..20).map(|_| vec!["x"]).collect();
    let mut wal = ck.write_ahead("s", lines(polls)).unwrap();
    let dir = root.path().join("q/wal/s");
    for id in 0..20u64 {
        wal.poll_batch(&ctx(id as i64)).unwrap();
        let snapshot = StateSnapshot {
            batch_id: id,
            driver: serde_json::json!({}),
            operator: serde_json::json!({}),
            batches: vec![],
            sources: vec![("s".into(), wal.position().unwrap())],
        };
        ck.write_state(&snapshot).unwrap();
        ck.commit(id, 0, 0).unwrap();
    }
    // States 10..19 are kept; the oldest (after batch 10) resumes at batch 11.
    let oldest = 20 - KEEP_STATES as u64;
    let kept = store::ids(&dir, "arrow").unwrap();
    assert_eq!(kept, (oldest + 1..20).collect::<Vec<_>>());
}
