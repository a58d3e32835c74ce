//! State snapshots on disk: `<n>.arrow` holds the operator's record batches,
//! each as its own Arrow IPC stream (the batches have different schemas)
//! prefixed by its length; `<n>.json` holds the rest of the
//! [`StateSnapshot`] and the Arrow file's length and checksum. The Arrow
//! file is written first, so a `<n>.json` always names a complete one.

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use serde::{Deserialize, Serialize};

use super::crash::CrashPoint;
use super::{CheckpointError, StateSnapshot, store};

/// `<n>.json`: the snapshot without its rows.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StateMeta {
    pub(super) batch_id: u64,
    pub(super) driver: serde_json::Value,
    pub(super) operator: serde_json::Value,
    pub(super) sources: Vec<(String, String)>,
    /// Record batches in the Arrow file.
    pub(super) batches: usize,
    /// The Arrow file's length and checksum (hex).
    pub(super) arrow_bytes: u64,
    pub(super) arrow_checksum: String,
}

fn encode(batches: &[RecordBatch], path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let failed = |e: datafusion::arrow::error::ArrowError| {
        CheckpointError::Unusable(format!(
            "cannot encode the state for '{}': {e}",
            path.display()
        ))
    };
    // LZ4-compressed buffers: state is mostly keys and partial aggregates,
    // and fewer bytes to write and fsync cost less than compressing them
    // (BENCHMARKS.md, "Checkpoint cost and recovery"). Readers detect it.
    let options = IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::LZ4_FRAME))
        .map_err(failed)?;
    let mut out = Vec::new();
    for batch in batches {
        let mut writer =
            StreamWriter::try_new_with_options(Vec::new(), &batch.schema(), options.clone())
                .map_err(failed)?;
        writer.write(batch).map_err(failed)?;
        let bytes = writer.into_inner().map_err(failed)?;
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

fn decode(mut bytes: &[u8], path: &Path) -> Result<Vec<RecordBatch>, CheckpointError> {
    let corrupted = |reason: String| CheckpointError::Corrupted {
        path: path.to_path_buf(),
        reason,
    };
    let mut batches = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupted("truncated length".into()))?;
        let len = u64::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(corrupted("truncated batch".into()));
        }
        let reader = StreamReader::try_new(&rest[..len], None)
            .map_err(|e| corrupted(format!("bad Arrow IPC: {e}")))?;
        for batch in reader {
            batches.push(batch.map_err(|e| corrupted(format!("bad Arrow IPC: {e}")))?);
        }
        bytes = &rest[len..];
    }
    Ok(batches)
}

/// Writes `snapshot` into `dir` (Arrow file, then JSON).
pub(super) fn write(dir: &Path, snapshot: &StateSnapshot) -> Result<(), CheckpointError> {
    let arrow = store::entry(dir, snapshot.batch_id, "arrow");
    let bytes = encode(&snapshot.batches, &arrow)?;
    let crash = Some((CrashPoint::MidStateWrite, snapshot.batch_id));
    store::write_atomic(&arrow, &bytes, crash)?;
    let meta = StateMeta {
        batch_id: snapshot.batch_id,
        driver: snapshot.driver.clone(),
        operator: snapshot.operator.clone(),
        sources: snapshot.sources.clone(),
        batches: snapshot.batches.len(),
        arrow_bytes: bytes.len() as u64,
        arrow_checksum: format!("{:016x}", store::checksum(&bytes)),
    };
    store::write_json(&store::entry(dir, snapshot.batch_id, "json"), &meta, None)
}

/// Reads the state after batch `id` from `dir`, checking both files.
pub(super) fn read(dir: &Path, id: u64) -> Result<StateSnapshot, CheckpointError> {
    let meta = read_meta(dir, id)?;
    let arrow = store::entry(dir, id, "arrow");
    let bytes = std::fs::read(&arrow).map_err(store::io(&arrow, "reading"))?;
    if bytes.len() as u64 != meta.arrow_bytes
        || format!("{:016x}", store::checksum(&bytes)) != meta.arrow_checksum
    {
        return Err(CheckpointError::Corrupted {
            path: arrow,
            reason: "length or checksum differs from its .json (truncated or modified)".into(),
        });
    }
    let batches = decode(&bytes, &arrow)?;
    if batches.len() != meta.batches {
        return Err(CheckpointError::Corrupted {
            path: arrow,
            reason: format!(
                "{} record batches, expected {}",
                batches.len(),
                meta.batches
            ),
        });
    }
    Ok(StateSnapshot {
        batch_id: meta.batch_id,
        driver: meta.driver,
        operator: meta.operator,
        batches,
        sources: meta.sources,
    })
}

/// The JSON half of the state after batch `id`.
pub(super) fn read_meta(dir: &Path, id: u64) -> Result<StateMeta, CheckpointError> {
    store::read_json(&store::entry(dir, id, "json"))
}

/// Removes the state after batch `id` (JSON first, so no JSON names a
/// missing Arrow file).
pub(super) fn remove(dir: &Path, id: u64) -> Result<(), CheckpointError> {
    store::remove(&store::entry(dir, id, "json"))?;
    store::remove(&store::entry(dir, id, "arrow"))?;
    store::sync_dir(dir)
}
