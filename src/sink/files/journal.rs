//! The batch journal of a file sink: one line per batch that produced a
//! result — its id, batch time and [`InputMark`] (a digest chained over every
//! batch's time and source positions, and the positions it reached) — in
//! `_quiver/<sink>/batches`. A restarted query replays from batch 0; the sink
//! checks each of its results against the journal before writing or skipping
//! anything, so a restart is either a true replay (same batches, same times,
//! same input) or refused: never a silent gap or mix.
//!
//! A line is appended when a result arrives (before its rows reach a file)
//! and the journal is fsynced before any file is renamed, so every batch a
//! visible file holds is in the journal. A torn last line (a crash during an
//! append) is dropped on open.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::commit::{LogError, at};
use crate::batch::InputMark;

const HEADER: &str = "quiver file sink batch journal v1";
/// The journal's file name, next to the commit log.
pub const FILE: &str = "batches";

/// One journaled batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Batch id.
    pub batch: u64,
    /// Batch time, ms since the epoch.
    pub time_ms: i64,
    /// What the results up to the batch were computed from.
    pub input: InputMark,
}

/// How a restarted run differs from the journaled one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The same batch id at another batch time.
    Time { batch: u64, recorded: i64, now: i64 },
    /// The same batch and time, but other input up to it.
    Input {
        batch: u64,
        recorded: InputMark,
        now: InputMark,
    },
    /// The journaled run had results in a batch where this run has none.
    Missing { batch: u64, time_ms: i64 },
    /// This run has results in a batch where the journaled run had none.
    Extra { batch: u64, time_ms: i64 },
}

/// The journal of one sink, and how far a replay has been verified.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    recorded: Vec<Record>,
    /// Index of the next record a replay must produce.
    cursor: usize,
    existed: bool,
    file: Option<File>,
    dirty: bool,
}

impl Journal {
    /// Reads the journal in `dir` (`_quiver/<sink>`), if there is one.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        let path = dir.join(FILE);
        let (recorded, existed) = match fs::read_to_string(&path) {
            Ok(text) => {
                let whole = text.rfind('\n').map_or(0, |i| i + 1);
                if whole < text.len() {
                    // A crash during an append left a torn line: drop it.
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(at("repair the batch journal", &path))?;
                    file.set_len(whole as u64)
                        .and_then(|()| file.sync_all())
                        .map_err(at("repair the batch journal", &path))?;
                }
                let records = parse(&text[..whole]).ok_or_else(|| LogError {
                    action: "read the batch journal",
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "it is not a quiver batch journal; delete the output directory to start the sink over",
                    ),
                })?;
                (records, true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), false),
            Err(e) => return Err(at("read the batch journal", &path)(e)),
        };
        Ok(Self {
            path,
            recorded,
            cursor: 0,
            existed,
            file: None,
            dirty: false,
        })
    }

    /// Whether the journal existed when the sink was opened (output written
    /// by a quiver without journals has none).
    pub fn existed(&self) -> bool {
        self.existed
    }

    /// Starts the replay check at batch `batch`: a checkpointed query
    /// resumes past the batches whose results are durable, so its first
    /// result is not batch 0's. Only before the first check.
    pub fn skip_before(&mut self, batch: u64) {
        if self.cursor == 0 {
            self.cursor = self.recorded.partition_point(|r| r.batch < batch);
        }
    }

    /// Checks a result of batch `batch` (time `time_ms`, input `input`)
    /// against the journal: a journaled batch must match, and batches up to
    /// the last journaled one must produce results exactly where the
    /// journaled run did. A batch past the journal is appended to it.
    pub fn check(
        &mut self,
        batch: u64,
        time_ms: i64,
        input: &InputMark,
    ) -> Result<Result<(), Mismatch>, LogError> {
        if let Some(record) = self.recorded.get(self.cursor) {
            if record.batch < batch {
                return Ok(Err(Mismatch::Missing {
                    batch: record.batch,
                    time_ms: record.time_ms,
                }));
            }
            if record.batch > batch {
                return Ok(Err(Mismatch::Extra { batch, time_ms }));
            }
            if record.time_ms != time_ms {
                return Ok(Err(Mismatch::Time {
                    batch,
                    recorded: record.time_ms,
                    now: time_ms,
                }));
            }
            if record.input.digest != input.digest {
                return Ok(Err(Mismatch::Input {
                    batch,
                    recorded: record.input.clone(),
                    now: input.clone(),
                }));
            }
            self.cursor += 1;
            return Ok(Ok(()));
        }
        self.append(&Record {
            batch,
            time_ms,
            input: input.clone(),
        })?;
        Ok(Ok(()))
    }

    fn append(&mut self, record: &Record) -> Result<(), LogError> {
        let path = self.path.clone();
        if self.file.is_none() {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(at("write the batch journal", &path))?;
            if !self.existed {
                file.write_all(format!("{HEADER}\n").as_bytes())
                    .map_err(at("write the batch journal", &path))?;
                self.existed = true;
            }
            self.file = Some(file);
        }
        let offsets = record.input.offsets.replace(['\t', '\n', '\r'], " ");
        let line = format!(
            "{}\t{}\t{:016x}\t{offsets}\n",
            record.batch, record.time_ms, record.input.digest
        );
        if let Some(file) = &mut self.file {
            file.write_all(line.as_bytes())
                .map_err(at("write the batch journal", &path))?;
        }
        self.recorded.push(record.clone());
        self.cursor = self.recorded.len();
        self.dirty = true;
        Ok(())
    }

    /// Makes the appended lines durable (before a file is renamed).
    pub fn sync(&mut self) -> Result<(), LogError> {
        if let (true, Some(file)) = (self.dirty, &self.file) {
            file.sync_all()
                .map_err(at("sync the batch journal", &self.path))?;
            self.dirty = false;
        }
        Ok(())
    }
}

fn parse(text: &str) -> Option<Vec<Record>> {
    let mut lines = text.lines();
    match lines.next() {
        None => return Some(Vec::new()),
        Some(header) if header == HEADER => {}
        Some(_) => return None,
    }
    let mut records: Vec<Record> = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let mut fields = line.splitn(4, '\t');
        let batch: u64 = fields.next()?.parse().ok()?;
        let time_ms = fields.next()?.parse().ok()?;
        let digest = u64::from_str_radix(fields.next()?, 16).ok()?;
        let offsets = fields.next()?.to_string();
        if records.last().is_some_and(|r| r.batch >= batch) {
            return None;
        }
        records.push(Record {
            batch,
            time_ms,
            input: InputMark { digest, offsets },
        });
    }
    Some(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(digest: u64) -> InputMark {
        InputMark {
            digest,
            offsets: format!("s in={digest}.csv"),
        }
    }

    #[test]
    fn a_replay_matches_and_a_new_run_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        assert!(!journal.existed());
        for (batch, digest) in [(1, 10), (3, 30)] {
            assert_eq!(
                journal
                    .check(batch, batch as i64 * 1000, &mark(digest))
                    .unwrap(),
                Ok(())
            );
        }
        journal.sync().unwrap();
        // A torn append is dropped on open.
        let path = dir.path().join(FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"4\t40").unwrap();
        let reopen = || Journal::open(dir.path()).unwrap();
        let mut replay = reopen();
        assert!(replay.existed());
        assert_eq!(replay.check(1, 1000, &mark(10)).unwrap(), Ok(()));
        assert_eq!(replay.check(3, 3000, &mark(30)).unwrap(), Ok(()));
        assert_eq!(replay.check(5, 5000, &mark(50)).unwrap(), Ok(()));
        assert_eq!(reopen().recorded.len(), 3);
        let mismatch = |batch, time, digest| reopen().check(batch, time, &mark(digest)).unwrap();
        assert_eq!(
            mismatch(1, 9000, 10),
            Err(Mismatch::Time {
                batch: 1,
                recorded: 1000,
                now: 9000
            })
        );
        assert!(matches!(
            mismatch(1, 1000, 11),
            Err(Mismatch::Input { batch: 1, .. })
        ));
        assert_eq!(
            mismatch(0, 0, 0),
            Err(Mismatch::Extra {
                batch: 0,
                time_ms: 0
            })
        );
        assert_eq!(
            mismatch(2, 2000, 20),
            Err(Mismatch::Missing {
                batch: 1,
                time_ms: 1000
            })
        );
    }

    #[test]
    fn a_checkpointed_restart_is_checked_from_its_first_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        for batch in [1, 3, 5] {
            let checked = journal.check(batch, batch as i64, &mark(batch)).unwrap();
            assert_eq!(checked, Ok(()));
        }
        // A checkpoint resumes at batch 3: batch 1 is not replayed.
        let mut resumed = Journal::open(dir.path()).unwrap();
        resumed.skip_before(3);
        assert_eq!(resumed.check(3, 3, &mark(3)).unwrap(), Ok(()));
        assert!(matches!(
            resumed.check(5, 5, &mark(6)).unwrap(),
            Err(Mismatch::Input { batch: 5, .. })
        ));
        // Without it, batch 3 first means batch 1 went missing.
        let mut plain = Journal::open(dir.path()).unwrap();
        assert!(matches!(
            plain.check(3, 3, &mark(3)).unwrap(),
            Err(Mismatch::Missing { batch: 1, .. })
        ));
    }
}
