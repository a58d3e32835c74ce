//! One open output file of a partition: results of consecutive batches are
//! appended to a hidden in-progress file, which is finished — footer, fsync,
//! atomic rename to its final name, fsync of the directory — when the rolling
//! policy says so. Readers listing the directory see a file only once it is
//! complete.
//!
//! Fault injection for crash tests: `QUIVER_SINK_CRASH=<point>[@<n>]` aborts
//! the process (a real crash, no cleanup) the n-th time (default 1st) the sink
//! reaches `<point>`: `after_append` (rows in an open file), `after_write`
//! (file complete and fsynced, not renamed) or `after_rename` (renamed, commit
//! not recorded).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use super::commit::{file_name, sync_dir, temp_name};
use super::options::FileSinkOptions;
use super::writer::{EncodeError, FormatWriter};
use crate::sink::SinkError;

/// The environment variable naming a crash point (tests only).
pub const CRASH_ENV: &str = "QUIVER_SINK_CRASH";

/// Aborts the process if `QUIVER_SINK_CRASH` names `point` and this is the
/// occurrence it asks for.
pub fn crash_point(point: &str) {
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var(CRASH_ENV) else {
        return;
    };
    let (name, nth) = match spec.split_once('@') {
        Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    if name == point && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        tracing::error!("{CRASH_ENV}: crashing at {point}");
        std::process::abort();
    }
}

/// A file that was finished and renamed to its final name.
#[derive(Debug, Clone)]
pub struct FinishedFile {
    /// Partition directory, relative to the sink's root.
    pub partition: String,
    /// Last batch it holds rows of, and that batch's time.
    pub last_batch: u64,
    /// Time of `last_batch` (ms).
    pub last_time_ms: i64,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// An in-progress file.
pub struct OpenFile {
    sink: String,
    ext: &'static str,
    partition: String,
    dir: PathBuf,
    temp: PathBuf,
    writer: FormatWriter,
    first_batch: u64,
    first_time_ms: i64,
    last_batch: u64,
    last_time_ms: i64,
    rows: u64,
}

/// Builds the sink error for a failed file operation.
pub fn file_error(
    sink: &str,
    action: &'static str,
    path: &Path,
    source: std::io::Error,
) -> SinkError {
    SinkError::File {
        sink: sink.to_string(),
        action,
        path: path.display().to_string(),
        source,
    }
}

fn encode_error(sink: &str, path: &Path, e: EncodeError) -> SinkError {
    match e.io {
        Some(io) => file_error(sink, "write", path, io),
        None => SinkError::Write {
            sink: sink.to_string(),
            message: format!("encoding '{}': {}", path.display(), e.message),
        },
    }
}

impl OpenFile {
    /// Creates the in-progress file of `partition` (a directory under
    /// `root`) starting with batch `batch` at `time_ms`.
    pub fn create(
        sink: &str,
        root: &Path,
        partition: &str,
        schema: SchemaRef,
        options: &FileSinkOptions,
        batch: u64,
        time_ms: i64,
    ) -> Result<Self, SinkError> {
        let dir = if partition.is_empty() {
            root.to_path_buf()
        } else {
            root.join(partition)
        };
        if !dir.is_dir() {
            fs::create_dir_all(&dir)
                .map_err(|e| file_error(sink, "create the directory", &dir, e))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent).map_err(|e| file_error(sink, "sync the directory", parent, e))?;
            }
        }
        let ext = options.format.extension();
        let temp = dir.join(temp_name(sink, batch, ext));
        let file = File::create(&temp).map_err(|e| file_error(sink, "create", &temp, e))?;
        let writer = FormatWriter::new(file, schema, options).map_err(|e| {
            let _ = fs::remove_file(&temp);
            encode_error(sink, &temp, e)
        })?;
        Ok(Self {
            sink: sink.to_string(),
            ext,
            partition: partition.to_string(),
            dir,
            temp,
            writer,
            first_batch: batch,
            first_time_ms: time_ms,
            last_batch: batch,
            last_time_ms: time_ms,
            rows: 0,
        })
    }

    /// Appends rows of batch `batch` (time `time_ms`).
    pub fn append(
        &mut self,
        batch: u64,
        time_ms: i64,
        rows: &RecordBatch,
    ) -> Result<(), SinkError> {
        self.writer
            .write(rows)
            .map_err(|e| encode_error(&self.sink, &self.temp, e))?;
        self.rows += rows.num_rows() as u64;
        self.last_batch = batch;
        self.last_time_ms = time_ms;
        crash_point("after_append");
        Ok(())
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes the file holds (or will, once buffered rows are flushed).
    pub fn bytes(&self) -> u64 {
        self.writer.bytes()
    }

    /// First batch in the file.
    pub fn first_batch(&self) -> u64 {
        self.first_batch
    }

    /// How long, in batch time, before `now_ms` the file's first batch was.
    pub fn age(&self, now_ms: i64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.first_time_ms).max(0) as u64)
    }

    /// Completes the file and renames it to its final name.
    pub fn finish(self) -> Result<FinishedFile, SinkError> {
        let temp = self.temp.clone();
        let bytes = match self.writer.finish() {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = fs::remove_file(&temp);
                return Err(encode_error(&self.sink, &temp, e));
            }
        };
        crash_point("after_write");
        let path = self.dir.join(file_name(
            &self.sink,
            self.first_batch,
            self.last_batch,
            self.ext,
        ));
        if let Err(e) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(file_error(
                &self.sink,
                "rename the finished file to",
                &path,
                e,
            ));
        }
        sync_dir(&self.dir)
            .map_err(|e| file_error(&self.sink, "sync the directory", &self.dir, e))?;
        Ok(FinishedFile {
            partition: self.partition,
            last_batch: self.last_batch,
            last_time_ms: self.last_time_ms,
            rows: self.rows,
            bytes,
        })
    }

    /// Drops the file without finishing it (after a failure): its rows were
    /// never committed, and a replay writes them again.
    pub fn abandon(self) {
        drop(self.writer);
        let _ = fs::remove_file(&self.temp);
    }
}
