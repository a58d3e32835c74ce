//! `quiver checkpoint inspect DIR`: what a checkpoint directory holds, per
//! query — the last committed batch, the offsets per partition it reached,
//! the watermark and size of the newest state, and the sinks' positions.
//! The library returns [`CheckpointInfo`]; the front end prints it.

use std::path::Path;

use super::{CheckpointError, CommitEntry, OffsetsEntry, state, store, wal};

/// What one query's checkpoint holds.
#[derive(Debug, Clone)]
pub struct QueryCheckpointInfo {
    /// The query's name (its subdirectory).
    pub query: String,
    /// The last commit log entry (batch, time, sinks).
    pub committed: Option<CommitEntry>,
    /// The last offsets log entry (it may be ahead of the commit: that
    /// batch is re-run on restart).
    pub logged: Option<OffsetsEntry>,
    /// The batch the newest state was taken after.
    pub state_batch: Option<u64>,
    /// The newest state's size on disk, bytes (Arrow and JSON).
    pub state_bytes: u64,
    /// The watermark in the newest state, ms.
    pub watermark_ms: Option<i64>,
    /// Write-ahead log entries (socket and stdin sources) on disk.
    pub wal_entries: u64,
    /// Their size on disk, bytes.
    pub wal_bytes: u64,
}

/// What a checkpoint directory holds, per query.
#[derive(Debug, Clone, Default)]
pub struct CheckpointInfo {
    /// One entry per query, by name.
    pub queries: Vec<QueryCheckpointInfo>,
}

/// Reads the checkpoint directory `root` (as `--checkpoint` names it).
pub fn inspect(root: &Path) -> Result<CheckpointInfo, CheckpointError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root).map_err(store::io(root, "reading checkpoint"))? {
        let entry = entry.map_err(store::io(root, "listing"))?;
        if entry.path().join("fingerprint.json").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    if names.is_empty() {
        return Err(CheckpointError::Unusable(format!(
            "'{}' holds no query checkpoint (no <query>/fingerprint.json)",
            root.display()
        )));
    }
    names.sort();
    let queries = names
        .into_iter()
        .map(|name| query(&root.join(&name), name))
        .collect::<Result<_, _>>()?;
    Ok(CheckpointInfo { queries })
}

fn query(dir: &Path, query: String) -> Result<QueryCheckpointInfo, CheckpointError> {
    let last = |sub: &str| -> Result<Option<std::path::PathBuf>, CheckpointError> {
        let d = dir.join(sub);
        Ok(store::ids(&d, "json")?
            .last()
            .map(|id| store::entry(&d, *id, "json")))
    };
    let committed = last("commits")?.map(|p| store::read_json(&p)).transpose()?;
    let logged = last("offsets")?.map(|p| store::read_json(&p)).transpose()?;
    let states = dir.join("state");
    let state_batch = store::ids(&states, "json")?.last().copied();
    let (mut state_bytes, mut watermark_ms) = (0, None);
    if let Some(id) = state_batch {
        let meta = state::read_meta(&states, id)?;
        let json = std::fs::metadata(store::entry(&states, id, "json")).map_or(0, |m| m.len());
        state_bytes = meta.arrow_bytes + json;
        watermark_ms = meta
            .driver
            .pointer("/watermarks/at")
            .and_then(|v| v.as_i64());
    }
    let (mut wal_entries, mut wal_bytes) = (0, 0);
    let wal_root = dir.join("wal");
    if wal_root.is_dir() {
        for stream in std::fs::read_dir(&wal_root).map_err(store::io(&wal_root, "listing"))? {
            let stream = stream.map_err(store::io(&wal_root, "listing"))?;
            let (entries, bytes) = wal::size(&stream.path())?;
            wal_entries += entries;
            wal_bytes += bytes;
        }
    }
    Ok(QueryCheckpointInfo {
        query,
        wal_entries,
        wal_bytes,
        committed,
        logged,
        state_batch,
        state_bytes,
        watermark_ms,
    })
}
