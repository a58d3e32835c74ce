//! Checkpoints: what a continuous query needs to survive `kill -9` and
//! carry on with identical output (Spark Streaming's checkpoint + offsets
//! and commit logs).
//!
//! Per query, a directory (`<checkpoint>/<query name>/`) holds:
//! - `id`: this checkpoint's identity, made when it is created (so a
//!   `--checkpoint-reset` makes a new one): a kafka sink tags its messages
//!   with it and, on a restart, looks only for its own batches.
//! - `fingerprint.json`: what the query is (normalized SQL, stream schemas,
//!   sources and their options, sinks); a restart against another query is
//!   refused with the difference named (`--checkpoint-reset` starts over).
//! - `offsets/<n>.json`, written **before** batch `n` runs: its id, batch
//!   time and, per stream, the ranges it reads and the source's position
//!   before and after (so the batch can be re-read exactly).
//! - `commits/<n>.json`, written **after** the sinks committed batch `n`
//!   (the console printed it; a file sink wrote its rows and renamed the
//!   files it finished). A file sink keeps a rolling file open across
//!   batches, and a crash loses an open file: the entry then names the open
//!   files' first batch (`pending_from`), and batch `n` counts as durable
//!   only from there on (see below).
//! - `state/<n>.arrow` + `state/<n>.json`, after batch `n` ran (every
//!   `checkpoint_interval` batches): the operator's state as Arrow IPC, and
//!   the driver's state, the sources' positions and the Arrow file's
//!   checksum as JSON.
//! - `wal/<stream>/<n>.arrow`, for sources that cannot re-read their input
//!   (socket, stdin): what the source delivered for batch `n`, written
//!   before the batch runs (the write-ahead log, see `wal`).
//!
//! Recovery ([`QueryCheckpoint::recover`]) takes the newest consistent
//! state at or before the last durable batch (the last committed one, or
//! the batch before the sink's oldest open file; a damaged state is
//! skipped, with a warning, for the one before) and the offsets entries
//! after it: the driver re-runs those batches with exactly the logged
//! ranges and times, and sends on only the results of batches not durable
//! yet. A file sink skips, per partition, the rows its own commit log
//! already has in finished files, and writes the others again: no row is
//! lost with the open file, none is written twice.
//! Every file is written atomically (see `store`). Retention keeps the last
//! [`KEEP_STATES`] states at or before the last durable batch, every state
//! after it, and every log entry after the oldest kept state: a rolling
//! file open for many batches keeps the checkpoint back to its first batch
//! (rather than finishing files at every checkpoint, which would make one
//! small file per batch); a long `rollover_interval` therefore means as
//! many states on disk as batches it spans.
//!
//! This module sits below `exec` (it knows Arrow batches and JSON values,
//! not operators): the driver converts its snapshots to and from them.

mod crash;
mod inspect;
mod state;
mod store;
mod wal;

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::batch::SourceOffset;
use crate::source::Source;

pub use crash::{CRASH_VAR, CrashPoint, at_with_results as crash_at};
pub use inspect::{CheckpointInfo, QueryCheckpointInfo, inspect};
pub use wal::WalSource;

/// `--checkpoint DIR` and its companions, as a session's config holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSettings {
    /// The checkpoint directory (one subdirectory per query).
    pub dir: PathBuf,
    /// Delete an existing checkpoint and start over (`--checkpoint-reset`).
    pub reset: bool,
    /// A state snapshot every this many batches (`--checkpoint-interval`, default 1).
    pub interval: u64,
}

/// States kept by retention (the newest; log entries after the oldest stay).
pub const KEEP_STATES: usize = 10;

/// Everything that can go wrong with a checkpoint directory.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing a checkpoint file failed.
    #[error("checkpoint: {what} '{}': {source}", path.display())]
    Io {
        /// What was being done.
        what: String,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A checkpoint file is damaged and nothing earlier can stand in for it.
    #[error(
        "checkpoint file '{}' is corrupted: {reason}; restore it from a backup, or start over \
         with --checkpoint-reset (which deletes the checkpoint)", path.display()
    )]
    Corrupted {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint was written by another query, schema, source or sink.
    #[error(
        "checkpoint '{}' was written by a different query: {what} changed (was: {was}; now: \
         {now}); run the original query, or start over with --checkpoint-reset (which deletes \
         the checkpoint)", dir.display()
    )]
    Changed {
        /// The query's checkpoint directory.
        dir: PathBuf,
        /// What differs (`query`, `stream bids schema`, ...).
        what: String,
        /// Its value in the checkpoint.
        was: String,
        /// Its value now.
        now: String,
    },
    /// The checkpoint cannot be used by this query (a source that cannot
    /// resume, a state of another operator).
    #[error("checkpoint: {0}")]
    Unusable(String),
}

/// What a query is, part by part (`(what, value)`), for telling a restart
/// of the same query from another one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `(what, value)` pairs in a fixed order.
    pub parts: Vec<(String, String)>,
}

/// One stream's part of an offsets log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    /// The stream's name.
    pub stream: String,
    /// The ranges the batch reads, per source partition.
    pub ranges: Vec<SourceOffset>,
    /// The source's position before the batch (`Source::position`).
    pub before: String,
    /// The source's position after it: a replay reads up to here.
    pub after: String,
}

/// An offsets log entry: what batch `batch_id` reads, logged before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetsEntry {
    /// The batch's id.
    pub batch_id: u64,
    /// The batch's scheduled time, ms.
    pub batch_time_ms: i64,
    /// A batch run at the end of bounded input to close windows (reads nothing).
    pub closing: bool,
    /// Per stream of the query, in the plan's order.
    pub streams: Vec<StreamEntry>,
}

/// A commit log entry: the sinks have committed batch `batch_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitEntry {
    /// The batch's id.
    pub batch_id: u64,
    /// The batch's scheduled time, ms.
    pub batch_time_ms: i64,
    /// Results (windows, batches) the sinks wrote for it.
    pub results: usize,
    /// The sinks and their positions (`stdout`, a file sink's path).
    pub sinks: Vec<String>,
    /// The first batch whose results a sink holds only in files it has not
    /// finished yet (a rolling file open across batches; a crash loses it):
    /// recovery re-runs from there and retention keeps what that needs.
    /// `None`: every result up to `batch_id` is durable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_from: Option<u64>,
}

impl CommitEntry {
    /// The last batch whose results are durable in every sink: recovery
    /// restores a state at or before it and sends the results after it.
    pub fn durable(&self) -> Option<u64> {
        match self.pending_from {
            Some(first) => first.min(self.batch_id + 1).checked_sub(1),
            None => Some(self.batch_id),
        }
    }
}

/// A state snapshot as the driver hands it over and gets it back.
#[derive(Debug, Clone)]
pub struct StateSnapshot {
    /// The batch after which it was taken.
    pub batch_id: u64,
    /// The driver's state (next batch, watermarks, totals), as JSON.
    pub driver: serde_json::Value,
    /// The operator's metadata (kind, pane layout), as JSON.
    pub operator: serde_json::Value,
    /// The operator's rows, in the order `operator` describes.
    pub batches: Vec<RecordBatch>,
    /// Per stream, the source's position after the batch.
    pub sources: Vec<(String, String)>,
}

/// Where a restarted query carries on from.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The state to restore (`None`: from the start, replaying every logged batch).
    pub state: Option<StateSnapshot>,
    /// Logged batches after the state, to re-run exactly, in order.
    pub replay: Vec<OffsetsEntry>,
    /// The last batch whose results are durable in the sinks: replayed
    /// batches up to it run for their state only, their results are not
    /// sent again (a file sink's open files make this lag the commit log).
    pub committed: Option<u64>,
}

/// One query's checkpoint directory, opened for a run.
#[derive(Debug)]
pub struct QueryCheckpoint {
    dir: PathBuf,
    /// A state snapshot every this many batches.
    interval: u64,
    /// The sinks, for the commit log.
    sinks: Vec<String>,
    /// The last batch committed in this run, for the driver to wait on.
    committed: tokio::sync::watch::Sender<Option<u64>>,
    /// This checkpoint's identity (see [`Self::id`]).
    id: String,
}

impl QueryCheckpoint {
    /// Opens (creating) the checkpoint of query `name` under `root`,
    /// checking it was written by the query `fingerprint` describes;
    /// `reset` deletes an existing one first.
    pub fn open(
        root: &Path,
        name: &str,
        fingerprint: &Fingerprint,
        interval: u64,
        sinks: Vec<String>,
        reset: bool,
    ) -> Result<Self, CheckpointError> {
        let dir = root.join(name);
        if reset && dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(store::io(&dir, "removing (reset)"))?;
        }
        for sub in ["offsets", "commits", "state"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(store::io(&path, "creating"))?;
        }
        let path = dir.join("fingerprint.json");
        if path.exists() {
            let stored: Fingerprint = store::read_json(&path)?;
            compare(&dir, &stored, fingerprint)?;
        } else {
            store::write_json(&path, fingerprint, None)?;
        }
        let id = identity(&dir)?;
        Ok(Self {
            id,
            dir,
            interval: interval.max(1),
            sinks,
            committed: tokio::sync::watch::channel(None).0,
        })
    }

    /// The query's checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This checkpoint's identity: made when the checkpoint is created,
    /// the same across restarts, new after `--checkpoint-reset`. Sinks that
    /// look for their own output of earlier runs (a kafka sink's
    /// `quiver.checkpoint` header) tell it by this.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wraps the source of `stream` (one that cannot re-read its input:
    /// socket, stdin) in a write-ahead log under this checkpoint, so it
    /// can resume; see [`WalSource`].
    pub fn write_ahead(
        &self,
        stream: &str,
        source: Box<dyn Source>,
    ) -> Result<Box<dyn Source>, CheckpointError> {
        let dir = wal_dir(&self.dir, stream);
        Ok(Box::new(WalSource::open(source, dir)?))
    }

    /// Logs what batch `entry.batch_id` reads, before it runs.
    pub fn log_offsets(&self, entry: &OffsetsEntry) -> Result<(), CheckpointError> {
        let path = store::entry(&self.dir.join("offsets"), entry.batch_id, "json");
        store::write_json(&path, entry, None)?;
        crash::at(CrashPoint::AfterOffsetsLog, entry.batch_id);
        Ok(())
    }

    /// Waits until batch `batch_id` is committed in this run: the next
    /// batch starts only then, so at most one batch is out but not
    /// committed (the one a crash may repeat on a console).
    pub async fn committed(&self, batch_id: u64) {
        let mut rx = self.committed.subscribe();
        let _ = rx.wait_for(|c| c.is_some_and(|c| c >= batch_id)).await;
    }

    /// Whether a state snapshot is due after batch `batch_id`.
    pub fn state_due(&self, batch_id: u64) -> bool {
        (batch_id + 1).is_multiple_of(self.interval)
    }

    /// Writes the state after batch `snapshot.batch_id`.
    pub fn write_state(&self, snapshot: &StateSnapshot) -> Result<(), CheckpointError> {
        state::write(&self.dir.join("state"), snapshot)
    }

    /// Logs that the sinks committed batch `batch_id` (`results` results),
    /// then drops what recovery no longer needs.
    pub fn commit(
        &self,
        batch_id: u64,
        batch_time_ms: i64,
        results: usize,
    ) -> Result<(), CheckpointError> {
        self.commit_pending(batch_id, batch_time_ms, results, None)
    }

    /// [`Self::commit`] for a sink that holds results of batches from
    /// `pending_from` on in files it has not finished (see
    /// [`CommitEntry::pending_from`]).
    pub fn commit_pending(
        &self,
        batch_id: u64,
        batch_time_ms: i64,
        results: usize,
        pending_from: Option<u64>,
    ) -> Result<(), CheckpointError> {
        crash::at_with_results(CrashPoint::BeforeCommitLog, batch_id, results > 0);
        let entry = CommitEntry {
            batch_id,
            batch_time_ms,
            results,
            sinks: self.sinks.clone(),
            pending_from: pending_from.filter(|p| *p <= batch_id),
        };
        let path = store::entry(&self.dir.join("commits"), batch_id, "json");
        store::write_json(&path, &entry, None)?;
        crash::at_with_results(CrashPoint::AfterCommitLog, batch_id, results > 0);
        self.committed.send_replace(Some(batch_id));
        self.retain(batch_id, entry.durable())
    }

    /// Keeps the newest [`KEEP_STATES`] states at or before `durable` (and
    /// any after it), and the log entries after the oldest kept state; the
    /// last commit entry always stays. With nothing durable yet (a sink's
    /// file open since batch 0), everything stays.
    fn retain(&self, committed: u64, durable: Option<u64>) -> Result<(), CheckpointError> {
        let Some(durable) = durable else {
            return Ok(());
        };
        let states = self.dir.join("state");
        let ids = store::ids(&states, "json")?;
        let done: Vec<u64> = ids.iter().copied().filter(|id| *id <= durable).collect();
        let drop = done.len().saturating_sub(KEEP_STATES);
        for id in &done[..drop] {
            state::remove(&states, *id)?;
        }
        let Some(&oldest) = done.get(drop) else {
            return Ok(());
        };
        // Write-ahead log entries from the oldest kept state's position on.
        let wal = self.dir.join("wal");
        if wal.is_dir() {
            // A damaged state keeps its entries: a recovery may still need them.
            let sources =
                state::read_meta(&states, oldest).map_or_else(|_| Vec::new(), |m| m.sources);
            for (stream, position) in &sources {
                let dir = wal_dir(&self.dir, stream);
                if let Some(keep_from) = wal::next_batch(position)
                    && dir.is_dir()
                {
                    wal::prune(&dir, keep_from)?;
                }
            }
        }
        for (sub, keep_from) in [("offsets", oldest + 1), ("commits", oldest)] {
            let dir = self.dir.join(sub);
            for id in store::ids(&dir, "json")? {
                if id < keep_from && id != committed {
                    store::remove(&store::entry(&dir, id, "json"))?;
                }
            }
        }
        Ok(())
    }

    /// Where a restarted query carries on from (see the module docs).
    pub fn recover(&self) -> Result<Recovery, CheckpointError> {
        let commits = self.dir.join("commits");
        let (committed, durable) = match store::ids(&commits, "json")?.last() {
            Some(&id) => {
                let entry: CommitEntry = store::read_json(&store::entry(&commits, id, "json"))?;
                (Some(entry.batch_id), entry.durable())
            }
            None => (None, None),
        };
        let states = self.dir.join("state");
        let mut state = None;
        let mut damaged = None;
        for id in store::ids(&states, "json")?.into_iter().rev() {
            if durable.is_none_or(|d| id > d) {
                continue;
            }
            match state::read(&states, id) {
                Ok(snapshot) => {
                    state = Some(snapshot);
                    break;
                }
                Err(e @ CheckpointError::Corrupted { .. }) => {
                    tracing::warn!("{e}; falling back to the checkpoint before it");
                    damaged.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        let offsets = self.dir.join("offsets");
        let after = state.as_ref().map(|s: &StateSnapshot| s.batch_id);
        let ids: Vec<u64> = store::ids(&offsets, "json")?
            .into_iter()
            .filter(|id| after.is_none_or(|a| *id > a))
            .collect();
        // Without a state, the log must go back to the first batch.
        if state.is_none() && (committed.is_some() || !ids.is_empty()) && ids.first() != Some(&0) {
            return Err(damaged.unwrap_or_else(|| {
                CheckpointError::Unusable(format!(
                    "'{}' has no consistent state and its offsets log does not reach back to \
                     batch 0: start over with --checkpoint-reset",
                    self.dir.display()
                ))
            }));
        }
        let replay = ids
            .into_iter()
            .map(|id| store::read_json(&store::entry(&offsets, id, "json")))
            .collect::<Result<_, _>>()?;
        Ok(Recovery {
            state,
            replay,
            committed: durable,
        })
    }
}

/// The write-ahead log directory of `stream` in the query directory `dir`
/// (characters other than letters, digits, `_` and `-` become `_`).
fn wal_dir(dir: &Path, stream: &str) -> PathBuf {
    let name: String = (stream.chars())
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join("wal").join(name)
}

/// The identity in `dir/id`, made (time and process id, in hex) and
/// written atomically if the checkpoint has none yet.
fn identity(dir: &Path) -> Result<String, CheckpointError> {
    let path = dir.join("id");
    if path.exists() {
        let id = std::fs::read_to_string(&path).map_err(store::io(&path, "reading"))?;
        let id = id.trim();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(CheckpointError::Corrupted {
                path,
                reason: format!("'{id}' is not a checkpoint id"),
            });
        }
        return Ok(id.to_string());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{nanos:x}-{:x}", std::process::id());
    store::write_atomic(&path, id.as_bytes(), None)?;
    Ok(id)
}

/// The first part of `now` that differs from `stored`, as an error.
fn compare(dir: &Path, stored: &Fingerprint, now: &Fingerprint) -> Result<(), CheckpointError> {
    let changed = |what: &str, was: Option<&String>, now: Option<&String>| {
        let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(none)".into());
        CheckpointError::Changed {
            dir: dir.to_path_buf(),
            what: what.to_string(),
            was: show(was),
            now: show(now),
        }
    };
    for (what, value) in &now.parts {
        let was = stored.parts.iter().find(|(w, _)| w == what).map(|(_, v)| v);
        if was != Some(value) {
            return Err(changed(what, was, Some(value)));
        }
    }
    for (what, value) in &stored.parts {
        if !now.parts.iter().any(|(w, _)| w == what) {
            return Err(changed(what, Some(value), None));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
