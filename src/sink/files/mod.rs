//! File sinks (`connector = 'parquet' | 'csv' | 'ndjson' | 'filesystem'`):
//! rolling, Hive-partitioned, exactly-once files that any reader can trust
//! without a manifest.
//!
//! ```sql
//! CREATE SINK top_channels AS
//!   SELECT channel, count(*) AS bids, window_start FROM TUMBLE(bids, _batch_time, INTERVAL '10' SECOND)
//!   GROUP BY channel, window_start, window_end
//!   WITH (connector = 'parquet', path = 'out/top', partition_by = 'channel', rollover_interval = '1min');
//! ```
//!
//! - **Rolling** ([`rolling`]): results of consecutive batches are appended to
//!   one open file per partition, finished when it holds `rollover_rows` rows
//!   or `rollover_bytes` bytes (checked after each batch: a batch's rows of a
//!   partition never span two files), when its first batch is
//!   `rollover_interval` old in batch time, and when the query stops.
//! - **Partitioning** ([`partition`]): `partition_by = 'a,b'` writes
//!   `a=<value>/b=<value>/` directories; the columns are not in the files.
//! - **Visibility and exactly-once** ([`commit`]): files appear under their
//!   final, deterministic name only when complete; a commit log under
//!   `_quiver/<sink>/` lets a restarted query skip what is committed, so a
//!   replay neither duplicates nor loses rows.
//! - **Encoding** ([`writer`]): Parquet (zstd by default; the Arrow schema is
//!   embedded), CSV or NDJSON.
//!
//! Under `--checkpoint` (`crate::checkpoint`), a restarted query resumes
//! at the checkpoint's batch instead of 0: the checkpoint's commit log
//! entry of a batch is written after the sink's `commit` and records the
//! oldest open file's first batch ([`Sink::pending_from`]); recovery re-runs
//! from there, and this sink skips per partition the rows already in
//! finished files, checking the journal from the first result it gets.
//!
//! A restarted query whose batch ids restart at 0 is taken for a replay: its
//! results up to the committed batches are skipped. Before that, the sink
//! checks every result against its batch journal ([`journal`]: each batch's
//! time and input) and refuses a run that is not a true replay (a wall-clock
//! restart, another `--start-time`, other input) before writing anything.

pub mod commit;
pub mod journal;
pub mod options;
pub mod partition;
pub mod rolling;
pub mod writer;

use std::collections::BTreeMap;

use commit::CommitLog;
use journal::{Journal, Mismatch};
pub use options::{FileFormat, FileSinkOptions};

/// Whether `connector` names a file sink (whose table is also readable).
pub fn is_file_connector(connector: &str) -> bool {
    matches!(connector, "parquet" | "csv" | "ndjson" | "filesystem")
}
use partition::Partitioner;
use rolling::{FinishedFile, OpenFile, crash_point, file_error};

use super::{Sink, SinkDef, SinkError};
use crate::report::QueryResult;

/// Totals of what a file sink wrote since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileSinkStats {
    /// Files finished (renamed to their final name).
    pub files: u64,
    /// Rows in finished files.
    pub rows: u64,
    /// Bytes in finished files.
    pub bytes: u64,
    /// Rows not written because their batch was already committed (a replay).
    pub replayed_rows: u64,
}

/// A rolling, partitioned, exactly-once file sink.
pub struct FileSink {
    name: String,
    options: FileSinkOptions,
    partitioner: Partitioner,
    log: CommitLog,
    journal: Journal,
    open: BTreeMap<String, OpenFile>,
    /// Last batch written in this session, and its time.
    last: Option<(u64, i64)>,
    stats: FileSinkStats,
    failed: bool,
    /// Under `--checkpoint`: the first result may be past batch 0.
    checkpointed: bool,
}

impl FileSink {
    /// Opens the sink `def` describes: validates options and the partition
    /// columns, creates the output directory and recovers from a crash.
    pub fn open(def: &SinkDef) -> Result<Self, SinkError> {
        if def.name.is_empty() || def.name.starts_with(['.', '_']) || def.name.contains(['/', '\\'])
        {
            return Err(SinkError::Write {
                sink: def.name.clone(),
                message:
                    "a file sink's name becomes part of file names: it must not be empty, start \
                          with '.' or '_', or contain '/' or '\\'; pick another name"
                        .into(),
            });
        }
        let options = FileSinkOptions::parse(&def.connector, &def.options).map_err(|source| {
            SinkError::Option {
                sink: def.name.clone(),
                source,
            }
        })?;
        let partitioner =
            Partitioner::try_new(&def.schema, &options.partition_by).map_err(|reason| {
                SinkError::Option {
                    sink: def.name.clone(),
                    source: def.options.invalid("partition_by", reason),
                }
            })?;
        std::fs::create_dir_all(&options.path)
            .map_err(|e| file_error(&def.name, "create the directory", &options.path, e))?;
        let (log, recovery) =
            CommitLog::recover(&options.path, &def.name, options.format.extension())
                .map_err(|e| file_error(&def.name, e.action, &e.path, e.source))?;
        for path in &recovery.removed_temp {
            tracing::info!(
                "sink {}: removed unfinished file {}",
                def.name,
                path.display()
            );
        }
        for path in &recovery.adopted {
            tracing::info!(
                "sink {}: kept {}, finished before a crash but not yet recorded",
                def.name,
                path.display()
            );
        }
        for path in &recovery.removed_broken {
            tracing::warn!(
                "sink {}: removed incomplete file {}",
                def.name,
                path.display()
            );
        }
        let meta = options.path.join(commit::META_DIR).join(&def.name);
        let journal =
            Journal::open(&meta).map_err(|e| file_error(&def.name, e.action, &e.path, e.source))?;
        let state = log.state();
        if !journal.existed() && (state.durable.is_some() || !state.partitions.is_empty()) {
            return Err(SinkError::Write {
                sink: def.name.clone(),
                message: format!(
                    "{} holds output of a quiver that did not record each batch's input ({} is \
                     missing), so a restart cannot be checked to be a replay of it; delete the \
                     output directory (or choose another path) to start over",
                    options.path.display(),
                    meta.join(journal::FILE).display()
                ),
            });
        }
        if let Some(durable) = log.state().durable {
            tracing::info!(
                "sink {} resumes after batch {durable}: results of committed batches are replays and are skipped \
                 (delete {} to start over)",
                def.name,
                options
                    .path
                    .join(commit::META_DIR)
                    .join(&def.name)
                    .display()
            );
        }
        Ok(Self {
            name: def.name.clone(),
            options,
            partitioner,
            log,
            journal,
            open: BTreeMap::new(),
            last: None,
            stats: FileSinkStats::default(),
            failed: false,
            checkpointed: false,
        })
    }

    /// What was written since the sink was opened.
    #[cfg(test)]
    pub fn stats(&self) -> FileSinkStats {
        self.stats
    }

    /// The last batch whose rows are all in finished files (where a replay
    /// after a crash must start from: this batch + 1).
    #[cfg(test)]
    pub fn durable_batch(&self) -> Option<u64> {
        self.log.state().durable
    }

    fn write_result(&mut self, result: &QueryResult) -> Result<(), SinkError> {
        let (batch, time) = (result.batch_id, result.batch_time_ms);
        let last = self.last.map(|(b, _)| b);
        if last.is_some_and(|last| batch < last) {
            self.stats.replayed_rows += result.num_rows() as u64;
            return Ok(());
        }
        let mut done = Vec::new();
        // Files finish when a new batch begins, never between two results
        // of one batch (several windows closing at once): a batch's rows of
        // a partition are in one file, which makes replays exact.
        if last != Some(batch) {
            if last.is_none() && self.checkpointed {
                // A checkpoint resumes after the batches it has made
                // durable: the journal is checked from this batch on.
                self.journal.skip_before(batch);
            }
            self.check_replay(result)?;
            let due: Vec<String> = self
                .open
                .iter()
                .filter(|(_, f)| f.age(time) >= self.options.rollover_interval || self.full(f))
                .map(|(p, _)| p.clone())
                .collect();
            for partition in due {
                if let Some(file) = self.open.remove(&partition) {
                    done.push(self.finish(file)?);
                }
            }
        }
        for rows in result.rows.iter().filter(|r| r.num_rows() > 0) {
            let parts = self.partitioner.split(rows).map_err(|e| SinkError::Write {
                sink: self.name.clone(),
                message: format!("splitting rows by partition_by: {e}"),
            })?;
            for (partition, rows) in parts {
                if self
                    .log
                    .committed(&partition)
                    .is_some_and(|c| batch <= c.batch)
                {
                    self.stats.replayed_rows += rows.num_rows() as u64;
                    continue;
                }
                if !self.open.contains_key(&partition) {
                    let file = OpenFile::create(
                        &self.name,
                        &self.options.path,
                        &partition,
                        self.partitioner.file_schema().clone(),
                        &self.options,
                        batch,
                        time,
                    )?;
                    self.open.insert(partition.clone(), file);
                }
                if let Some(file) = self.open.get_mut(&partition) {
                    file.append(batch, time, &rows)?;
                }
            }
        }
        self.last = Some((batch, time));
        if !done.is_empty() {
            self.commit(&done)?;
        }
        Ok(())
    }

    /// A restart replays from batch 0: each result must be the journaled
    /// run's (same batch, time and input) until the journal's end, or the
    /// run is refused before anything of it is written or skipped.
    fn check_replay(&mut self, result: &QueryResult) -> Result<(), SinkError> {
        let (batch, time) = (result.batch_id, result.batch_time_ms);
        let checked = self
            .journal
            .check(batch, time, &result.input)
            .map_err(|e| file_error(&self.name, e.action, &e.path, e.source))?;
        let Err(mismatch) = checked else {
            return Ok(());
        };
        let t = crate::report::format_time;
        let mismatch = match mismatch {
            Mismatch::Time {
                batch,
                recorded,
                now,
            } => format!(
                "batch {batch} was committed with batch time {}, but this run's batch {batch} has time {}",
                t(recorded),
                t(now)
            ),
            Mismatch::Input {
                batch,
                recorded,
                now,
            } => format!(
                "batch {batch} has the committed batch time {} but this run read other input up to it \
                 (source positions after batch {batch}: committed [{}], now [{}])",
                t(time),
                recorded.offsets,
                now.offsets
            ),
            Mismatch::Missing { batch, time_ms } => format!(
                "batch {batch} (time {}) produced results in the committed run but not in this run",
                t(time_ms)
            ),
            Mismatch::Extra { batch, time_ms } => format!(
                "this run's batch {batch} (time {}) produced results where the committed run's did not",
                t(time_ms)
            ),
        };
        Err(SinkError::NotAReplay {
            sink: self.name.clone(),
            mismatch,
            path: self.options.path.display().to_string(),
        })
    }

    /// Whether `file` reached `rollover_bytes` or `rollover_rows`.
    fn full(&self, file: &OpenFile) -> bool {
        file.bytes() >= self.options.rollover_bytes
            || self
                .options
                .rollover_rows
                .is_some_and(|max| file.rows() >= max)
    }

    /// Finishes `file` once the journal holds every batch it has rows of.
    fn finish(&mut self, file: OpenFile) -> Result<rolling::FinishedFile, SinkError> {
        if let Err(e) = self.journal.sync() {
            file.abandon();
            return Err(file_error(&self.name, e.action, &e.path, e.source));
        }
        file.finish()
    }

    /// Records finished files in the commit log (after their rename).
    fn commit(&mut self, done: &[FinishedFile]) -> Result<(), SinkError> {
        for file in done {
            self.log
                .set(&file.partition, file.last_batch, file.last_time_ms);
            self.stats.files += 1;
            self.stats.rows += file.rows;
            self.stats.bytes += file.bytes;
        }
        crash_point("after_rename");
        let durable = match self.open.values().map(OpenFile::first_batch).min() {
            Some(first) => first.checked_sub(1),
            None => self.last.map(|(b, _)| b),
        };
        self.log
            .record(durable)
            .map_err(|e| file_error(&self.name, e.action, &e.path, e.source))
    }

    fn abandon_open_files(&mut self) {
        for (_, file) in std::mem::take(&mut self.open) {
            file.abandon();
        }
    }
}

impl Sink for FileSink {
    fn write(&mut self, result: &QueryResult) -> Result<(), SinkError> {
        if self.failed {
            return Err(SinkError::Write {
                sink: self.name.clone(),
                message: "an earlier write failed; restart the query to resume".into(),
            });
        }
        let written = self.write_result(result);
        if written.is_err() {
            // Open files may hold part of the failed batch: drop them (they
            // are hidden and uncommitted; a rerun writes their rows again).
            self.failed = true;
            self.abandon_open_files();
        }
        written
    }

    fn close(&mut self) -> Result<(), SinkError> {
        if self.failed {
            self.abandon_open_files();
            return Ok(());
        }
        let mut done = Vec::new();
        for (_, file) in std::mem::take(&mut self.open) {
            match self.finish(file) {
                Ok(f) => done.push(f),
                Err(e) => {
                    self.failed = true;
                    self.abandon_open_files();
                    return Err(e);
                }
            }
        }
        let moved = self.last.map(|(b, _)| b) != self.log.state().durable;
        if !done.is_empty() || (self.last.is_some() && moved) {
            self.commit(&done)?;
        }
        Ok(())
    }

    fn resume_from_checkpoint(&mut self, _checkpoint: &str) {
        self.checkpointed = true;
    }

    fn pending_from(&self) -> Option<u64> {
        self.open.values().map(OpenFile::first_batch).min()
    }

    fn status(&self) -> String {
        let s = &self.stats;
        let mut line = format!(
            "{} file{}, {} rows, {} written",
            s.files,
            if s.files == 1 { "" } else { "s" },
            s.rows,
            human_bytes(s.bytes)
        );
        if !self.open.is_empty() {
            let rows: u64 = self.open.values().map(OpenFile::rows).sum();
            let now = self.last.map_or(0, |(_, t)| t);
            let age = self
                .open
                .values()
                .map(|f| f.age(now))
                .max()
                .unwrap_or_default();
            line += &format!(
                "; {} open ({rows} rows, oldest {}s)",
                self.open.len(),
                age.as_secs()
            );
        }
        if s.replayed_rows > 0 {
            line += &format!("; {} replayed rows skipped", s.replayed_rows);
        }
        if let Some(d) = self.log.state().durable {
            line += &format!("; committed through batch {d}");
        }
        line
    }
}

/// `1.5 MiB`-style sizes for status lines.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::options::Options;
    use crate::report::Progress;

    fn result(batch_id: u64, keys: &[&str]) -> QueryResult {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let n: Vec<i64> = (0..keys.len() as i64).collect();
        let rows = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from(n)),
            ],
        )
        .unwrap();
        QueryResult {
            query: Arc::from("q"),
            batch_id,
            batch_time_ms: batch_id as i64 * 1000,
            window: None,
            schema,
            rows: vec![rows],
            progress: Progress::default(),
            input: Default::default(),
            offsets: Vec::new(),
        }
    }

    #[test]
    fn durable_batch_stops_before_the_oldest_open_file() {
        let dir = tempfile::tempdir().unwrap();
        let def = SinkDef {
            name: "s".into(),
            connector: "csv".into(),
            schema: result(0, &[]).schema,
            options: Options::new([
                ("path", dir.path().display().to_string()),
                ("partition_by", "k".into()),
                ("rollover_rows", "2".into()),
            ]),
        };
        let mut sink = FileSink::open(&def).unwrap();
        // k=a fills a file every 2 batches; k=b's file stays open from batch 1.
        sink.write(&result(0, &["a"])).unwrap();
        sink.write(&result(1, &["a", "b"])).unwrap();
        // k=a is full; it finishes when the next batch begins.
        assert_eq!(sink.durable_batch(), None);
        sink.write(&result(2, &["a"])).unwrap();
        sink.write(&result(3, &["a"])).unwrap();
        assert_eq!(sink.durable_batch(), Some(0));
        sink.close().unwrap();
        assert_eq!(sink.durable_batch(), Some(3));
        assert_eq!(sink.stats().files, 3);
        assert_eq!(sink.stats().rows, 5);
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
