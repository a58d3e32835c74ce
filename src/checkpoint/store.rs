//! Atomic, checksummed files of a checkpoint directory: every file is
//! written to a temporary name (starting with `.`), fsynced, renamed into
//! place and its directory fsynced, so a crash leaves either the old file or
//! the new one, never half of one. JSON files start with a line holding the
//! FNV-1a checksum of the rest; a file whose checksum does not match is
//! corrupted (a torn disk write, an edit) and reported by name.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::CheckpointError;
use super::crash::{self, CrashPoint};

/// FNV-1a over `bytes`: cheap, and enough to tell a damaged file.
pub(super) fn checksum(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

pub(super) fn io(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |source| CheckpointError::Io { what, path, source }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, directory
/// fsync). With `crash` set, the process aborts half way through the temp
/// file when the fault-injection hook asks for it.
pub(super) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    crash: Option<(CrashPoint, u64)>,
) -> Result<(), CheckpointError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{}.tmp", name.unwrap_or_default()));
    let mut file = std::fs::File::create(&temp).map_err(io(&temp, "creating"))?;
    if let Some((point, batch)) = crash
        && crash::armed(point, batch)
    {
        let _ = file.write_all(&bytes[..bytes.len() / 2]);
        let _ = file.sync_all();
        crash::abort(point, batch);
    }
    file.write_all(bytes).map_err(io(&temp, "writing"))?;
    file.sync_all().map_err(io(&temp, "syncing"))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(io(path, "renaming into place"))?;
    sync_dir(dir)
}

/// Fsyncs a directory, so a rename or removal in it is durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "syncing directory"))
}

/// Writes `value` as checksummed JSON to `path`, atomically.
pub(super) fn write_json<T: serde::Serialize>(
    path: &Path,
    value: &T,
    crash: Option<(CrashPoint, u64)>,
) -> Result<(), CheckpointError> {
    let body = serde_json::to_string_pretty(value).map_err(|e| CheckpointError::Corrupted {
        path: path.to_path_buf(),
        reason: format!("cannot encode: {e}"),
    })?;
    let text = format!("{:016x}\n{body}\n", checksum(body.as_bytes()));
    write_atomic(path, text.as_bytes(), crash)
}

/// Reads checksummed JSON from `path`; a damaged file is
/// [`CheckpointError::Corrupted`].
pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CheckpointError> {
    let text = std::fs::read_to_string(path).map_err(io(path, "reading"))?;
    let corrupted = |reason: String| CheckpointError::Corrupted {
        path: path.to_path_buf(),
        reason,
    };
    let (sum, body) = text
        .split_once('\n')
        .ok_or_else(|| corrupted("truncated: no checksum line".into()))?;
    let body = body.strip_suffix('\n').unwrap_or(body);
    if format!("{:016x}", checksum(body.as_bytes())) != sum {
        return Err(corrupted(
            "checksum mismatch (truncated or modified)".into(),
        ));
    }
    serde_json::from_str(body).map_err(|e| corrupted(format!("cannot decode: {e}")))
}

/// Batch ids of the `<id>.<ext>` files in `dir`, ascending (temp files and
/// other names are ignored).
pub(super) fn ids(dir: &Path, ext: &str) -> Result<Vec<u64>, CheckpointError> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries.map_err(io(dir, "listing"))?,
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir, "listing"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name
            .strip_suffix(ext)
            .and_then(|n| n.strip_suffix('.'))
            .and_then(|n| n.parse().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// `dir/<id>.<ext>`, ids zero-padded so names sort like numbers.
pub(super) fn entry(dir: &Path, id: u64, ext: &str) -> PathBuf {
    dir.join(format!("{id:020}.{ext}"))
}

/// Removes `path` if it exists.
pub(super) fn remove(path: &Path) -> Result<(), CheckpointError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path, "removing")(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = entry(dir.path(), 7, "json");
        write_json(&path, &vec![1, 2, 3], None).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&path).unwrap(), [1, 2, 3]);
        assert_eq!(ids(dir.path(), "json").unwrap(), [7]);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 4]).unwrap();
        let err = read_json::<Vec<i32>>(&path).unwrap_err().to_string();
        assert!(err.contains("00000000000000000007.json"), "{err}");
        assert!(err.contains("checksum"), "{err}");
    }
}
