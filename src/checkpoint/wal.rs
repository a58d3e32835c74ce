//! The write-ahead log of sources that cannot re-read their input (socket,
//! stdin: [`crate::source::LOGGED_CONNECTORS`]), Spark Streaming's receiver
//! WAL: under `--checkpoint`, every batch such a source delivers is written
//! to `<checkpoint>/<query>/wal/<stream>/<batch>.arrow` **before** the
//! batch is processed (before its offsets log entry, even), so what the
//! query received is never lost by a crash.
//!
//! [`WalSource`] wraps the connector's source and gives it what `--checkpoint`
//! needs from a source ([`Source::position`], `seek`, `poll_to`), so the
//! connectors themselves stay unchanged:
//! - a live poll takes what arrived from the connector, logs it (atomically,
//!   checksummed: see `store`), then hands it on;
//! - a replay ([`Source::poll_to`]) reads the logged entries between two
//!   positions, the same rows, ranges and skipped counts, and checks that
//!   they were logged for that batch time;
//! - after a restart, an entry that was logged but never reached the
//!   offsets log (a crash between the two) is delivered by the next poll,
//!   the batch it was polled for, before live input continues.
//!
//! A position is a small JSON object: the next batch's number (the file
//! name of its entry; it follows the driver's batch ids, as every batch
//! polls each source once) and, per source partition, the end of the
//! records read so far. The connector counts from 0 again after a restart;
//! the log rewrites its ranges to carry on from the logged ends, so the
//! offsets stay continuous across restarts. Polls that read nothing write
//! no entry; a replay checks the entries it reads chain up exactly from one
//! position to the next, so a missing, truncated or corrupted entry is an
//! error naming the file, never a silent gap.
//!
//! Retention drops the entries before the oldest kept state's position
//! (see `QueryCheckpoint::retain`): the same horizon as the offsets log.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use serde::{Deserialize, Serialize};

use super::crash::{self, CrashPoint};
use super::{CheckpointError, store};
use crate::batch::SourceOffset;
use crate::source::{PollContext, Source, SourceData, SourceError};

/// Where a [`WalSource`] is: see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    /// The number of the next batch (its entry's file name).
    next: u64,
    /// Per source partition, the end of the records read so far.
    ends: Vec<(String, String)>,
}

impl Position {
    fn parse(text: &str) -> Result<Self, SourceError> {
        serde_json::from_str(text).map_err(|e| {
            SourceError::Runtime(format!(
                "write-ahead log: bad position '{text}' in the checkpoint ({e}); start over \
                 with --checkpoint-reset"
            ))
        })
    }

    fn end(&self, partition: &str) -> Option<&str> {
        (self.ends.iter())
            .find(|(p, _)| p == partition)
            .map(|(_, e)| e.as_str())
    }

    fn set_end(&mut self, partition: &str, end: String) {
        match self.ends.iter_mut().find(|(p, _)| p == partition) {
            Some((_, e)) => *e = end,
            None => self.ends.push((partition.to_string(), end)),
        }
    }

    /// `range` moved to carry on from this position's end of its
    /// partition (numeric ranges only; others pass through), and the end
    /// moved past it.
    fn advance(&mut self, range: &SourceOffset) -> SourceOffset {
        let start = self.end(&range.partition).unwrap_or("0").to_string();
        let moved = match (
            range.start.parse::<u64>(),
            range.end.parse::<u64>(),
            start.parse::<u64>(),
        ) {
            (Ok(s), Ok(e), Ok(base)) if e >= s => SourceOffset {
                partition: range.partition.clone(),
                start: base.to_string(),
                end: (base + (e - s)).to_string(),
            },
            _ => range.clone(),
        };
        self.set_end(&moved.partition, moved.end.clone());
        moved
    }
}

/// The first line of an entry, after the checksum line: everything but the rows.
#[derive(Debug, Serialize, Deserialize)]
struct EntryHeader {
    /// The batch number the entry was polled for.
    batch: u64,
    /// The batch's time, ms: a replay must be for the same time.
    batch_time_ms: i64,
    /// The ranges read (already continued from the previous entry).
    offsets: Vec<SourceOffset>,
    /// The partition of each record batch (see [`SourceData::partitions`]).
    partitions: Vec<u32>,
    /// Malformed records skipped.
    skipped: u64,
    /// Record batches in the Arrow IPC stream that follows.
    batches: usize,
}

/// A source whose every delivered batch is logged before it is processed;
/// see the module docs.
pub struct WalSource {
    inner: Box<dyn Source>,
    dir: PathBuf,
    position: Position,
}

impl WalSource {
    /// Wraps `inner`, logging into `dir` (created if missing).
    pub(super) fn open(inner: Box<dyn Source>, dir: PathBuf) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(&dir).map_err(store::io(&dir, "creating"))?;
        Ok(Self {
            inner,
            dir,
            position: Position::default(),
        })
    }

    fn path(&self, batch: u64) -> PathBuf {
        store::entry(&self.dir, batch, "arrow")
    }

    /// Reads the entry of `batch`, if there is one.
    fn read(&self, batch: u64) -> Result<Option<(EntryHeader, Vec<RecordBatch>)>, SourceError> {
        let path = self.path(batch);
        if !path.exists() {
            return Ok(None);
        }
        read_entry(&path).map(Some).map_err(wal_error)
    }
}

fn wal_error(e: CheckpointError) -> SourceError {
    SourceError::Runtime(format!("write-ahead log: {e}"))
}

/// Encodes an entry: a checksum line over the rest, the header as one JSON
/// line, then the rows as one Arrow IPC stream.
fn encode(
    header: &EntryHeader,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, String> {
    let mut body = serde_json::to_vec(header).map_err(|e| e.to_string())?;
    body.push(b'\n');
    let mut writer = StreamWriter::try_new(body, schema).map_err(|e| e.to_string())?;
    for batch in batches {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    let body = writer.into_inner().map_err(|e| e.to_string())?;
    let mut out = format!("{:016x}\n", store::checksum(&body)).into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads and checks the entry at `path`.
fn read_entry(path: &Path) -> Result<(EntryHeader, Vec<RecordBatch>), CheckpointError> {
    let bytes = std::fs::read(path).map_err(store::io(path, "reading"))?;
    let corrupted = |reason: String| CheckpointError::Corrupted {
        path: path.to_path_buf(),
        reason,
    };
    let split = |b: &[u8]| b.iter().position(|c| *c == b'\n');
    let at = split(&bytes).ok_or_else(|| corrupted("truncated: no checksum line".into()))?;
    let (sum, body) = (&bytes[..at], &bytes[at + 1..]);
    if format!("{:016x}", store::checksum(body)).as_bytes() != sum {
        return Err(corrupted(
            "checksum mismatch (truncated or modified)".into(),
        ));
    }
    let at = split(body).ok_or_else(|| corrupted("no header line".into()))?;
    let header: EntryHeader = serde_json::from_slice(&body[..at])
        .map_err(|e| corrupted(format!("cannot decode the header: {e}")))?;
    let reader = StreamReader::try_new(&body[at + 1..], None)
        .map_err(|e| corrupted(format!("bad Arrow IPC: {e}")))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupted(format!("bad Arrow IPC: {e}")))?;
    if batches.len() != header.batches {
        return Err(corrupted(format!(
            "{} record batches, expected {}",
            batches.len(),
            header.batches
        )));
    }
    Ok((header, batches))
}

fn into_data(header: EntryHeader, batches: Vec<RecordBatch>) -> SourceData {
    SourceData {
        data: batches,
        partitions: header.partitions,
        offsets: header.offsets,
        skipped: header.skipped,
        lag: None,
    }
}

impl Source for WalSource {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    /// Delivers an entry logged by a crashed run past the last logged
    /// position, if there is one; otherwise polls the connector and logs
    /// what it read before handing it on.
    fn poll_batch(&mut self, ctx: &PollContext) -> Result<SourceData, SourceError> {
        let batch = self.position.next;
        if let Some((header, batches)) = self.read(batch)? {
            for range in &header.offsets {
                self.position.set_end(&range.partition, range.end.clone());
            }
            self.position.next += 1;
            return Ok(into_data(header, batches));
        }
        let mut data = self.inner.poll_batch(ctx)?;
        let mut position = self.position.clone();
        data.offsets = data.offsets.iter().map(|r| position.advance(r)).collect();
        let read = data.offsets.iter().any(|r| r.start != r.end) || !data.data.is_empty();
        if read {
            let header = EntryHeader {
                batch,
                batch_time_ms: ctx.batch_time_ms,
                offsets: data.offsets.clone(),
                partitions: data.partitions.clone(),
                skipped: data.skipped,
                batches: data.data.len(),
            };
            let path = self.path(batch);
            let bytes = encode(&header, &self.inner.schema(), &data.data).map_err(|e| {
                SourceError::Runtime(format!(
                    "write-ahead log: cannot encode '{}': {e}",
                    path.display()
                ))
            })?;
            store::write_atomic(&path, &bytes, None).map_err(wal_error)?;
            crash::at(CrashPoint::AfterWalWrite, batch);
        }
        position.next += 1;
        self.position = position;
        Ok(data)
    }

    fn is_drained(&self) -> bool {
        self.inner.is_drained() && !self.path(self.position.next).exists()
    }

    fn partition_count(&self) -> u32 {
        self.inner.partition_count()
    }

    fn partition_name(&self, partition: u32) -> String {
        self.inner.partition_name(partition)
    }

    fn commit(&mut self, ranges: &[SourceOffset]) -> Result<(), SourceError> {
        self.inner.commit(ranges)
    }

    fn position(&self) -> Result<String, SourceError> {
        serde_json::to_string(&self.position)
            .map_err(|e| SourceError::Runtime(format!("write-ahead log: {e}")))
    }

    fn seek(&mut self, position: &str) -> Result<(), SourceError> {
        self.position = Position::parse(position)?;
        Ok(())
    }

    /// Reads the entries from the current position up to `position`,
    /// checking they chain up exactly (no entry missing) and were logged
    /// for this batch time.
    fn poll_to(&mut self, ctx: &PollContext, position: &str) -> Result<SourceData, SourceError> {
        let target = Position::parse(position)?;
        let mut out = SourceData::default();
        let mut at = self.position.clone();
        for batch in at.next..target.next {
            let Some((header, batches)) = self.read(batch)? else {
                continue;
            };
            if header.batch_time_ms != ctx.batch_time_ms {
                return Err(SourceError::Runtime(format!(
                    "write-ahead log: entry '{}' was logged for batch time {} ms, but the \
                     offsets log replays batch time {} ms; start over with --checkpoint-reset",
                    self.path(batch).display(),
                    header.batch_time_ms,
                    ctx.batch_time_ms
                )));
            }
            for range in &header.offsets {
                at.set_end(&range.partition, range.end.clone());
            }
            let data = into_data(header, batches);
            for (i, rows) in data.data.iter().enumerate() {
                out.extend_partition(data.partition_of(i), vec![rows.clone()]);
            }
            out.skipped += data.skipped;
        }
        // What the entries hold must reach the logged position exactly.
        for (partition, end) in &target.ends {
            if at.end(partition).unwrap_or("0") != end {
                return Err(wal_error(CheckpointError::Corrupted {
                    path: self.dir.clone(),
                    reason: format!(
                        "entries for batches {}..{} are missing: partition '{partition}' \
                         reaches {} instead of {end}",
                        self.position.next,
                        target.next,
                        at.end(partition).unwrap_or("0")
                    ),
                }));
            }
        }
        out.offsets = (target.ends.iter())
            .map(|(partition, end)| SourceOffset {
                partition: partition.clone(),
                start: self.position.end(partition).unwrap_or("0").to_string(),
                end: end.clone(),
            })
            .collect();
        self.position = target;
        Ok(out)
    }
}

/// The `next` batch of a position a [`WalSource`] reported, for retention:
/// entries before it are not needed to resume from there.
pub(super) fn next_batch(position: &str) -> Option<u64> {
    Position::parse(position).ok().map(|p| p.next)
}

/// Removes the entries in `dir` before batch `keep_from`.
pub(super) fn prune(dir: &Path, keep_from: u64) -> Result<(), CheckpointError> {
    let mut removed = false;
    for id in store::ids(dir, "arrow")? {
        if id < keep_from {
            store::remove(&store::entry(dir, id, "arrow"))?;
            removed = true;
        }
    }
    if removed {
        store::sync_dir(dir)?;
    }
    Ok(())
}

/// The entries in `dir` and their size in bytes.
pub(super) fn size(dir: &Path) -> Result<(u64, u64), CheckpointError> {
    let mut entries = 0;
    let mut bytes = 0;
    for id in store::ids(dir, "arrow")? {
        let path = store::entry(dir, id, "arrow");
        entries += 1;
        bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
    }
    Ok((entries, bytes))
}

#[cfg(test)]
mod tests;
