//! The commit log of a file sink and its recovery after a crash: what makes
//! the output exactly-once for replayable sources with no manifest for readers
//! to understand.
//!
//! Layout: finished files `[<partition dirs>/]<sink>-<first batch>-<last batch>.<ext>`
//! (batch ids zero-padded, so names sort by batch), in-progress files
//! `.<sink>-<first batch>.<ext>.inprogress` next to them (hidden from readers:
//! names starting with `.` or `_` are skipped by Hive, Spark, DuckDB, pyarrow
//! and DataFusion), and this log in `_quiver/<sink>/commits`.
//!
//! The log records, per partition directory, the last batch whose rows of
//! that partition are all in finished files, and `durable`: the last batch
//! whose rows are all in finished files in every partition (where a replay
//! must start). It is rewritten atomically (temp file, fsync, rename, fsync
//! of the directory) after the files it mentions were renamed.
//!
//! Write order for a file: encode into the in-progress file, fsync, rename
//! to the final name, fsync the directory, then record the commit. A crash
//! can stop this at any step; on the next open, [`CommitLog::recover`]:
//! - removes every in-progress file of this sink (its rows were not
//!   committed; the replay produces them again);
//! - **adopts** every finished file whose last batch is past what the log
//!   says for its partition (a crash between rename and record): the file is
//!   complete (it was fsynced before the rename; a Parquet file is also
//!   checked for its footer), it has been visible to readers, and removing
//!   it would make rows disappear and reappear. Adopting it raises the
//!   partition's committed batch to the file's last batch.
//!
//! The sink then skips, per partition, rows of batches at or below that
//! partition's committed batch. Files of one partition are finished in batch
//! order and a batch's rows of one partition always go to one file, so every
//! row of a committed batch is in exactly one visible file and every row of a
//! later batch is written by the replay: no duplicates and no loss, whether
//! the replay restarts at batch 0 (no engine checkpoint) or at `durable + 1`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// What the log knows about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Last batch whose rows of this partition are all in finished files.
    pub batch: u64,
    /// That batch's time (ms), when known (not for adopted files).
    pub time_ms: Option<i64>,
}

/// The committed state of a file sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitState {
    /// Per partition directory (`""` when unpartitioned).
    pub partitions: BTreeMap<String, Committed>,
    /// Last batch whose rows are durable in every partition.
    pub durable: Option<u64>,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// In-progress files removed.
    pub removed_temp: Vec<PathBuf>,
    /// Finished files adopted (renamed before the crash, not yet recorded).
    pub adopted: Vec<PathBuf>,
    /// Finished-looking files removed because they were not complete.
    pub removed_broken: Vec<PathBuf>,
}

const HEADER: &str = "quiver file sink commit log v1";
/// The directory, under the output root, of quiver's own bookkeeping.
pub const META_DIR: &str = "_quiver";

/// The commit log of one sink.
#[derive(Debug)]
pub struct CommitLog {
    file: PathBuf,
    state: CommitState,
}

/// An I/O step that failed, and on which path.
#[derive(Debug)]
pub struct LogError {
    /// What was being done (`write the commit log`, ...).
    pub action: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// Why it failed.
    pub source: std::io::Error,
}

/// Wraps an I/O error with what was being done and to which file.
pub(super) fn at(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError {
        action,
        path,
        source,
    }
}

/// Name of a finished file.
pub fn file_name(sink: &str, first: u64, last: u64, ext: &str) -> String {
    format!("{sink}-{first:08}-{last:08}.{ext}")
}

/// Name of an in-progress file.
pub fn temp_name(sink: &str, first: u64, ext: &str) -> String {
    format!(".{sink}-{first:08}.{ext}.inprogress")
}

/// The batch range of a finished file of `sink`, from its name.
fn parse_file_name(name: &str, sink: &str, ext: &str) -> Option<(u64, u64)> {
    let range = name
        .strip_prefix(sink)?
        .strip_prefix('-')?
        .strip_suffix(ext)?
        .strip_suffix('.')?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

impl CommitLog {
    /// Opens (creating its directory) the log of `sink` under `root`, cleans
    /// up after a crash as the module documentation describes, and returns
    /// the log with what recovery did.
    pub fn recover(root: &Path, sink: &str, ext: &str) -> Result<(Self, Recovery), LogError> {
        let dir = root.join(META_DIR).join(sink);
        fs::create_dir_all(&dir).map_err(at("create the directory", &dir))?;
        let file = dir.join("commits");
        let _ = fs::remove_file(dir.join(".commits.tmp"));
        let mut state = match fs::read_to_string(&file) {
            Ok(text) => parse(&text).ok_or_else(|| LogError {
                action: "read the commit log",
                path: file.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "it is not a quiver commit log; delete the directory to start the sink over",
                ),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CommitState::default(),
            Err(e) => return Err(at("read the commit log", &file)(e)),
        };
        let mut recovery = Recovery::default();
        let mut changed = false;
        let temp_prefix = format!(".{sink}-");
        let temp_suffix = format!(".{ext}.inprogress");
        let mut dirs = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, partition)) = dirs.pop() {
            let entries = fs::read_dir(&dir).map_err(at("list the directory", &dir))?;
            for entry in entries {
                let entry = entry.map_err(at("list the directory", &dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                let kind = entry.file_type().map_err(at("inspect", &path))?;
                if kind.is_dir() {
                    if !name.starts_with(['.', '_']) {
                        let child = if partition.is_empty() {
                            name.clone()
                        } else {
                            format!("{partition}/{name}")
                        };
                        dirs.push((path, child));
                    }
                } else if name.starts_with(&temp_prefix) && name.ends_with(&temp_suffix) {
                    fs::remove_file(&path).map_err(at("remove the unfinished file", &path))?;
                    recovery.removed_temp.push(path);
                } else if let Some((_, last)) = parse_file_name(&name, sink, ext) {
                    let committed = state.partitions.get(&partition).map(|c| c.batch);
                    if committed.is_some_and(|c| last <= c) {
                        continue;
                    }
                    if ext == "parquet" && !has_parquet_footer(&path) {
                        fs::remove_file(&path).map_err(at("remove the broken file", &path))?;
                        recovery.removed_broken.push(path);
                        continue;
                    }
                    state.partitions.insert(
                        partition.clone(),
                        Committed {
                            batch: last,
                            time_ms: None,
                        },
                    );
                    recovery.adopted.push(path);
                    changed = true;
                }
            }
        }
        let mut log = Self { file, state };
        if changed {
            let durable = log.state.durable;
            log.record(durable)?;
        }
        Ok((log, recovery))
    }

    /// The committed state.
    pub fn state(&self) -> &CommitState {
        &self.state
    }

    /// The last committed batch of `partition`, if any.
    pub fn committed(&self, partition: &str) -> Option<Committed> {
        self.state.partitions.get(partition).copied()
    }

    /// Records that `partition`'s rows up to `batch` (time `time_ms`) are in
    /// finished files; call [`Self::record`] to make it durable.
    pub fn set(&mut self, partition: &str, batch: u64, time_ms: i64) {
        self.state.partitions.insert(
            partition.to_string(),
            Committed {
                batch,
                time_ms: Some(time_ms),
            },
        );
    }

    /// Atomically rewrites the log with the current state and `durable`.
    pub fn record(&mut self, durable: Option<u64>) -> Result<(), LogError> {
        if durable.is_some() {
            self.state.durable = durable;
        }
        let dir = self.file.parent().unwrap_or(Path::new("."));
        let temp = dir.join(".commits.tmp");
        let mut text = format!("{HEADER}\n");
        if let Some(d) = self.state.durable {
            text += &format!("durable\t{d}\n");
        }
        for (partition, c) in &self.state.partitions {
            let time = c.time_ms.map_or("-".to_string(), |t| t.to_string());
            let partition = if partition.is_empty() { "." } else { partition };
            text += &format!("partition\t{}\t{time}\t{partition}\n", c.batch);
        }
        let mut file = fs::File::create(&temp).map_err(at("write the commit log", &temp))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(at("write the commit log", &temp))?;
        fs::rename(&temp, &self.file).map_err(at("write the commit log", &self.file))?;
        sync_dir(dir).map_err(at("sync the directory", dir))
    }
}

fn parse(text: &str) -> Option<CommitState> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let mut state = CommitState::default();
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["durable", d] => state.durable = Some(d.parse().ok()?),
            ["partition", batch, time, partition] => {
                let partition = if *partition == "." { "" } else { partition };
                let time_ms = match *time {
                    "-" => None,
                    t => Some(t.parse().ok()?),
                };
                state.partitions.insert(
                    partition.to_string(),
                    Committed {
                        batch: batch.parse().ok()?,
                        time_ms,
                    },
                );
            }
            _ => return None,
        }
    }
    Some(state)
}

/// Whether `path` starts and ends with Parquet's magic bytes.
fn has_parquet_footer(path: &Path) -> bool {
    let check = || -> std::io::Result<bool> {
        let mut file = fs::File::open(path)?;
        if file.metadata()?.len() < 12 {
            return Ok(false);
        }
        let mut head = [0u8; 4];
        file.read_exact(&mut head)?;
        let mut tail = [0u8; 4];
        file.seek(SeekFrom::End(-4))?;
        file.read_exact(&mut tail)?;
        Ok(&head == b"PAR1" && &tail == b"PAR1")
    };
    check().unwrap_or(false)
}

/// Makes a rename or a new entry in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_batch() {
        let name = file_name("top-x", 3, 12, "parquet");
        assert_eq!(name, "top-x-00000003-00000012.parquet");
        assert_eq!(parse_file_name(&name, "top-x", "parquet"), Some((3, 12)));
        assert_eq!(parse_file_name(&name, "top", "parquet"), None);
        assert_eq!(parse_file_name(&name, "top-x", "csv"), None);
        assert!(file_name("s", 9, 9, "csv") < file_name("s", 10, 10, "csv"));
    }

    #[test]
    fn the_log_survives_a_reopen_and_recovery_cleans_and_adopts() {
        let root = tempfile::tempdir().unwrap();
        let (mut log, recovery) = CommitLog::recover(root.path(), "s", "csv").unwrap();
        assert_eq!(recovery, Recovery::default());
        log.set("", 4, 4000);
        log.set("k=a", 2, 2000);
        log.record(Some(2)).unwrap();
        // A crash left: an in-progress file, a finished file recorded, and a
        // finished file renamed but not recorded.
        fs::create_dir_all(root.path().join("k=a")).unwrap();
        fs::write(root.path().join("k=a/.s-00000003.csv.inprogress"), "x").unwrap();
        fs::write(root.path().join("k=a/s-00000000-00000002.csv"), "a\n").unwrap();
        fs::write(root.path().join("k=a/s-00000003-00000005.csv"), "a\n").unwrap();
        fs::write(root.path().join("other.csv"), "not ours").unwrap();
        let (log, recovery) = CommitLog::recover(root.path(), "s", "csv").unwrap();
        assert_eq!(recovery.removed_temp.len(), 1);
        assert_eq!(
            recovery.adopted,
            vec![root.path().join("k=a/s-00000003-00000005.csv")]
        );
        assert_eq!(log.committed("k=a").map(|c| c.batch), Some(5));
        assert_eq!(
            log.committed(""),
            Some(Committed {
                batch: 4,
                time_ms: Some(4000)
            })
        );
        assert_eq!(log.state().durable, Some(2));
        assert!(root.path().join("other.csv").exists());
        // Adoption was recorded.
        let (again, recovery) = CommitLog::recover(root.path(), "s", "csv").unwrap();
        assert_eq!(recovery, Recovery::default());
        assert_eq!(again.state(), log.state());
    }

    #[test]
    fn a_truncated_parquet_file_is_not_adopted() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("s-00000000-00000001.parquet"), "PAR1 half").unwrap();
        let (log, recovery) = CommitLog::recover(root.path(), "s", "parquet").unwrap();
        assert_eq!(recovery.removed_broken.len(), 1);
        assert_eq!(log.committed(""), None);
    }
}
