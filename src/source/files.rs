//! The `files` connector: a directory of files, read once each, new files in
//! lexicographic order, at most `max_files_per_batch` per batch. Like Spark's
//! file stream, a file is picked up whole when it appears; write files
//! elsewhere and rename them into the directory so no half-written file is read.
//!
//! With `partitions = 'subdirectories'` each immediate subdirectory of `path`
//! is one source partition (like Kafka partitions `p0/`, `p1/`), with its own
//! watermark: files are read in name order within each, at most
//! `max_files_per_batch` per partition and batch; files directly in `path`
//! are ignored. Subdirectories that appear later become new partitions.
//!
//! A partition's position is the name of the last file read from it (`""`
//! before the first): a batch's range runs from the last file read before it
//! to the last file it read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;

use super::{FORMAT_KEYS, PollContext, Source, SourceData, SourceError};
use crate::batch::SourceOffset;
use crate::format::{Format, FormatKind};
use crate::options::Options;

const CONNECTOR: &str = "files";
const OWN_KEYS: &[&str] = &["path", "pattern", "max_files_per_batch", "partitions"];

/// How a files source splits into partitions (option `partitions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partitioning {
    /// `'none'` (default): the directory is one partition.
    None,
    /// `'subdirectories'`: each immediate subdirectory is one partition.
    Subdirectories,
}

/// Typed options of the files connector.
#[derive(Debug, Clone)]
struct FilesOptions {
    dir: PathBuf,
    pattern: glob::Pattern,
    max_files_per_batch: usize,
    partitioning: Partitioning,
    format: Format,
}

impl FilesOptions {
    fn parse(options: &Options) -> Result<Self, SourceError> {
        let valid: Vec<&str> = OWN_KEYS.iter().chain(FORMAT_KEYS).copied().collect();
        options.check_keys(CONNECTOR, &valid)?;
        let dir = PathBuf::from(options.required(CONNECTOR, "path")?);
        if !dir.is_dir() {
            return Err(SourceError::Io {
                what: format!("files source: directory '{}'", dir.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not found or not a directory; create it or fix option 'path'",
                ),
            });
        }
        let pattern_text = options.get("pattern").unwrap_or("*");
        let pattern = glob::Pattern::new(pattern_text)
            .map_err(|e| options.invalid("pattern", e.to_string()))?;
        let max_files_per_batch = options.parse_or("max_files_per_batch", 1000usize)?;
        if max_files_per_batch == 0 {
            return Err(options
                .invalid("max_files_per_batch", "must be at least 1")
                .into());
        }
        let partitioning = match options.get("partitions").map(str::to_ascii_lowercase) {
            None => Partitioning::None,
            Some(p) if p == "none" => Partitioning::None,
            Some(p) if p == "subdirectories" => Partitioning::Subdirectories,
            Some(_) => {
                return Err(options
                    .invalid(
                        "partitions",
                        "valid values are 'none' (default) and 'subdirectories' \
                         (each subdirectory of path is one partition)",
                    )
                    .into());
            }
        };
        let format = Format::from_options(options, FormatKind::Text)?;
        Ok(Self {
            dir,
            pattern,
            max_files_per_batch,
            partitioning,
            format,
        })
    }

    /// The directory of `partition` (`None`: `path` itself).
    fn partition_dir(&self, partition: Option<&str>) -> PathBuf {
        match partition {
            Some(sub) => self.dir.join(sub),
            None => self.dir.clone(),
        }
    }

    /// Files in the directory of `partition` matching the pattern, sorted by
    /// name. Names starting with `.` or `_` are temporary or metadata files
    /// and skipped. A partition directory that vanished has no files.
    fn list(&self, partition: Option<&str>) -> Result<Vec<String>, SourceError> {
        let dir = self.partition_dir(partition);
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if partition.is_some() && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Vec::new());
            }
            entries => entries,
        };
        self.entries(&dir, entries, |name, kind| {
            kind.is_file() && self.pattern.matches(name)
        })
    }

    /// The subdirectories of `path`, sorted by name (not starting with `.`
    /// or `_`): the partitions under `partitions = 'subdirectories'`.
    fn subdirectories(&self) -> Result<Vec<String>, SourceError> {
        self.entries(&self.dir, std::fs::read_dir(&self.dir), |_, kind| {
            kind.is_dir()
        })
    }

    /// Names of `entries` (of `dir`) that `keep` accepts, sorted; hidden and
    /// `_` names are skipped.
    fn entries(
        &self,
        dir: &Path,
        entries: std::io::Result<std::fs::ReadDir>,
        keep: impl Fn(&str, std::fs::FileType) -> bool,
    ) -> Result<Vec<String>, SourceError> {
        let io = |source| SourceError::Io {
            what: format!("files source: listing '{}'", dir.display()),
            source,
        };
        let mut names = Vec::new();
        for entry in entries.map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if keep(&name, entry.file_type().map_err(io)?) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The files to infer the schema from, in the order they are read: the
    /// matching files of the directory, or of its subdirectories one after
    /// another.
    fn files_in_order(&self) -> Result<Vec<PathBuf>, SourceError> {
        match self.partitioning {
            Partitioning::None => Ok(self.list(None)?.iter().map(|f| self.dir.join(f)).collect()),
            Partitioning::Subdirectories => {
                let mut files = Vec::new();
                for sub in self.subdirectories()? {
                    let dir = self.dir.join(&sub);
                    files.extend(self.list(Some(&sub))?.iter().map(|f| dir.join(f)));
                }
                Ok(files)
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SourceError> {
    std::fs::read(path).map_err(|source| SourceError::Io {
        what: format!("files source: reading '{}'", path.display()),
        source,
    })
}

/// Declared columns, or the schema inferred from the first matching file.
pub(super) fn resolve_schema(
    declared: Option<SchemaRef>,
    options: &Options,
) -> Result<SchemaRef, SourceError> {
    let opts = FilesOptions::parse(options)?;
    if let Some(schema) = opts.format.fixed_schema(declared) {
        return Ok(schema);
    }
    let files = opts.files_in_order()?;
    // Empty files (or only blank lines) have no columns to infer: the
    // first file with data decides.
    for path in &files {
        let data = read(path)?;
        if data.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Ok(opts
            .format
            .infer_schema(&data, &path.display().to_string())?);
    }
    let within = if opts.partitioning == Partitioning::Subdirectories {
        " in any subdirectory"
    } else {
        ""
    };
    let found = match files.len() {
        0 => format!("has no file matching '{}'{within}", opts.pattern),
        1 => format!(
            "has one file matching '{}'{within}, and it is empty",
            opts.pattern
        ),
        n => format!(
            "has {n} files matching '{}'{within}, all empty",
            opts.pattern
        ),
    };
    Err(SourceError::Schema(format!(
        "cannot infer the columns of {} files: directory '{}' {found}; \
         declare the columns in CREATE STREAM name (col TYPE, ...)",
        opts.format.name(),
        opts.dir.display(),
    )))
}

/// A running files source: remembers which files it has read, per partition.
pub struct FilesSource {
    schema: SchemaRef,
    opts: FilesOptions,
    /// The partitions' subdirectories in the order they were found (their
    /// number is their index); one `None` (the directory itself) when the
    /// source is not partitioned.
    partitions: Vec<Option<String>>,
    /// Files read, per partition.
    seen: Vec<BTreeSet<String>>,
    /// The last file read, per partition (its position; `""` before the first).
    last: Vec<String>,
    drained: bool,
}

impl FilesSource {
    /// Opens the directory named by option `path`.
    pub fn open(schema: SchemaRef, options: &Options) -> Result<Self, SourceError> {
        let opts = FilesOptions::parse(options)?;
        let mut source = Self {
            schema,
            partitions: Vec::new(),
            seen: Vec::new(),
            last: Vec::new(),
            drained: false,
            opts,
        };
        match source.opts.partitioning {
            Partitioning::None => {
                source.partitions.push(None);
                source.seen.push(BTreeSet::new());
                source.last.push(String::new());
            }
            Partitioning::Subdirectories => source.discover_partitions()?,
        }
        Ok(source)
    }

    /// Adds subdirectories not seen before as new partitions, in name order.
    fn discover_partitions(&mut self) -> Result<(), SourceError> {
        if self.opts.partitioning != Partitioning::Subdirectories {
            return Ok(());
        }
        for sub in self.opts.subdirectories()? {
            if !self.partitions.iter().any(|p| p.as_deref() == Some(&sub)) {
                self.partitions.push(Some(sub));
                self.seen.push(BTreeSet::new());
                self.last.push(String::new());
            }
        }
        Ok(())
    }
}

impl Source for FilesSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll_batch(&mut self, _ctx: &PollContext) -> Result<SourceData, SourceError> {
        self.discover_partitions()?;
        let mut out = SourceData::default();
        let mut drained = true;
        let partitions = self
            .partitions
            .iter()
            .zip(&mut self.seen)
            .zip(&mut self.last);
        for (partition, ((sub, seen), last)) in partitions.enumerate() {
            let new: Vec<String> = self
                .opts
                .list(sub.as_deref())?
                .into_iter()
                .filter(|n| !seen.contains(n))
                .collect();
            let take = new.len().min(self.opts.max_files_per_batch);
            drained &= take == new.len();
            let dir = self.opts.partition_dir(sub.as_deref());
            for name in &new[..take] {
                let path = dir.join(name);
                let bytes = read(&path)?;
                let decoded = self.opts.format.decode(
                    &self.schema,
                    &bytes,
                    self.opts.format.header,
                    &path.display().to_string(),
                )?;
                out.extend_partition(partition as u32, decoded.batches);
                out.skipped += decoded.skipped;
                seen.insert(name.clone());
            }
            let start = last.clone();
            if let Some(name) = new[..take].last() {
                last.clone_from(name);
            }
            out.offsets.push(SourceOffset {
                partition: dir.display().to_string(),
                start,
                end: last.clone(),
            });
        }
        self.drained = drained;
        Ok(out)
    }

    fn is_drained(&self) -> bool {
        self.drained
    }

    fn partition_count(&self) -> u32 {
        self.partitions.len().max(1) as u32
    }

    fn partition_name(&self, partition: u32) -> String {
        match self.partitions.get(partition as usize) {
            Some(Some(sub)) => sub.clone(),
            _ => partition.to_string(),
        }
    }

    fn position(&self) -> Result<String, SourceError> {
        let partitions: Vec<PartitionPosition> = (self.partitions.iter())
            .zip(&self.seen)
            .zip(&self.last)
            .map(|((dir, seen), last)| PartitionPosition {
                dir: dir.clone(),
                seen: seen.iter().cloned().collect(),
                last: last.clone(),
            })
            .collect();
        serde_json::to_string(&partitions)
            .map_err(|e| SourceError::Runtime(format!("files source: position: {e}")))
    }

    fn seek(&mut self, position: &str) -> Result<(), SourceError> {
        let partitions = parse_position(position)?;
        self.partitions = partitions.iter().map(|p| p.dir.clone()).collect();
        self.seen = (partitions.iter())
            .map(|p| p.seen.iter().cloned().collect())
            .collect();
        self.last = partitions.into_iter().map(|p| p.last).collect();
        self.drained = false;
        Ok(())
    }

    fn poll_to(&mut self, _ctx: &PollContext, position: &str) -> Result<SourceData, SourceError> {
        let target = parse_position(position)?;
        let mut out = SourceData::default();
        for (partition, goal) in target.iter().enumerate() {
            if self.partitions.get(partition) != Some(&goal.dir) {
                self.partitions.push(goal.dir.clone());
                self.seen.push(BTreeSet::new());
                self.last.push(String::new());
            }
            let dir = self.opts.partition_dir(goal.dir.as_deref());
            let seen = &mut self.seen[partition];
            let mut new: Vec<&String> = goal.seen.iter().filter(|n| !seen.contains(*n)).collect();
            new.sort();
            for name in new {
                let path = dir.join(name);
                let bytes = read(&path).map_err(|e| {
                    SourceError::Runtime(format!(
                        "files source: re-reading batch logged in the checkpoint: {e} (the file \
                         was read before the crash and must stay until its batch is committed)"
                    ))
                })?;
                let decoded = self.opts.format.decode(
                    &self.schema,
                    &bytes,
                    self.opts.format.header,
                    &path.display().to_string(),
                )?;
                out.extend_partition(partition as u32, decoded.batches);
                out.skipped += decoded.skipped;
                seen.insert(name.clone());
            }
            out.offsets.push(SourceOffset {
                partition: dir.display().to_string(),
                start: std::mem::replace(&mut self.last[partition], goal.last.clone()),
                end: goal.last.clone(),
            });
        }
        // Drained as the logged poll was, if nothing arrived since.
        self.drained = true;
        for (sub, seen) in self.partitions.iter().zip(&self.seen) {
            let listed = self.opts.list(sub.as_deref())?;
            self.drained &= listed.iter().all(|n| seen.contains(n));
        }
        Ok(out)
    }
}

/// One partition's position: its subdirectory, every file read from it
/// and the last one.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PartitionPosition {
    dir: Option<String>,
    seen: Vec<String>,
    last: String,
}

fn parse_position(position: &str) -> Result<Vec<PartitionPosition>, SourceError> {
    serde_json::from_str(position).map_err(|e| {
        SourceError::Runtime(format!(
            "files source: the checkpoint's position '{position}' is not one: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PollContext {
        PollContext {
            batch_time_ms: 0,
            interval_ms: 1000,
        }
    }

    #[test]
    fn reads_new_files_in_order_limited_per_batch() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [
            ("b.csv", "x\n2\n"),
            ("a.csv", "x\n1\n"),
            ("c.txt", "x\n9\n"),
            (".d.csv", "x\n7\n"),
        ] {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let options = Options::new([
            ("path", dir.path().to_str().unwrap()),
            ("format", "csv"),
            ("pattern", "*.csv"),
            ("max_files_per_batch", "1"),
        ]);
        let schema = resolve_schema(None, &options).unwrap();
        let mut source = FilesSource::open(schema, &options).unwrap();
        let range = |data: &SourceData| {
            let o = &data.offsets[0];
            (o.start.clone(), o.end.clone())
        };
        let first = source.poll_batch(&ctx()).unwrap();
        assert_eq!(range(&first), ("".into(), "a.csv".into()));
        assert!(!source.is_drained());
        let second = source.poll_batch(&ctx()).unwrap();
        assert_eq!(range(&second), ("a.csv".into(), "b.csv".into()));
        assert_eq!(second.data[0].num_rows(), 1);
        assert!(source.is_drained());
        // Nothing new: an empty range at the last position.
        let third = source.poll_batch(&ctx()).unwrap();
        assert!(third.data.is_empty());
        assert_eq!(range(&third), ("b.csv".into(), "b.csv".into()));
    }

    #[test]
    fn subdirectories_are_partitions_read_in_name_order_each() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [
            ("p0/b.csv", "x\n2\n"),
            ("p0/a.csv", "x\n1\n"),
            ("p1/a.csv", "x\n10\n"),
            ("top.csv", "x\n99\n"),
            ("_tmp/a.csv", "x\n98\n"),
        ] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        let options = Options::new([
            ("path", dir.path().to_str().unwrap()),
            ("format", "csv"),
            ("partitions", "subdirectories"),
            ("max_files_per_batch", "1"),
        ]);
        let schema = resolve_schema(None, &options).unwrap();
        let mut source = FilesSource::open(schema, &options).unwrap();
        assert_eq!(source.partition_count(), 2);
        assert_eq!(source.partition_name(1), "p1");
        let values = |data: &SourceData| -> Vec<(u32, i64)> {
            data.data
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let v = datafusion::arrow::array::AsArray::as_primitive::<
                        datafusion::arrow::datatypes::Int64Type,
                    >(b.column(0))
                    .value(0);
                    (data.partition_of(i), v)
                })
                .collect()
        };
        // One file per partition and batch, in name order within each.
        let first = source.poll_batch(&ctx()).unwrap();
        assert_eq!(values(&first), [(0, 1), (1, 10)]);
        assert_eq!(first.offsets.len(), 2);
        assert!(!source.is_drained());
        // A subdirectory created later is a new partition.
        std::fs::create_dir(dir.path().join("p2")).unwrap();
        std::fs::write(dir.path().join("p2/z.csv"), "x\n20\n").unwrap();
        let second = source.poll_batch(&ctx()).unwrap();
        assert_eq!(values(&second), [(0, 2), (2, 20)]);
        assert_eq!(source.partition_count(), 3);
        assert!(source.is_drained());
        assert!(source.poll_batch(&ctx()).unwrap().data.is_empty());
    }

    #[test]
    fn a_position_remembers_out_of_order_files_and_poll_to_rereads_exactly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.csv"), "x\n2\n").unwrap();
        let options = Options::new([("path", dir.path().to_str().unwrap()), ("format", "csv")]);
        let schema = resolve_schema(None, &options).unwrap();
        let mut source = FilesSource::open(schema.clone(), &options).unwrap();
        source.poll_batch(&ctx()).unwrap();
        // `a.csv` arrives after `b.csv` was read: its name sorts before the
        // position's `end`, yet it is new.
        std::fs::write(dir.path().join("a.csv"), "x\n1\n").unwrap();
        let before = source.position().unwrap();
        let logged = source.poll_batch(&ctx()).unwrap();
        assert_eq!(logged.data[0].num_rows(), 1);
        let after = source.position().unwrap();
        // A file arriving after the crash is not part of the logged batch.
        std::fs::write(dir.path().join("c.csv"), "x\n3\n").unwrap();
        let mut restarted = FilesSource::open(schema, &options).unwrap();
        restarted.seek(&before).unwrap();
        let replayed = restarted.poll_to(&ctx(), &after).unwrap();
        assert_eq!(replayed.offsets, logged.offsets);
        assert_eq!(replayed.data, logged.data);
        assert!(!restarted.is_drained(), "c.csv is still to read");
        let next = restarted.poll_batch(&ctx()).unwrap();
        assert_eq!(next.offsets[0].end, "c.csv");
        assert_eq!(next.data.len(), 1, "only c.csv: b.csv and a.csv were read");
    }

    #[test]
    fn unknown_partitioning_is_refused() {
        let err = FilesOptions::parse(&Options::new([("path", "."), ("partitions", "dirs")]))
            .unwrap_err();
        assert!(err.to_string().contains("subdirectories"), "{err}");
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let err = resolve_schema(None, &Options::new([("path", "/no/such/dir")])).unwrap_err();
        assert!(
            err.to_string().contains("directory '/no/such/dir'"),
            "{err}"
        );
    }

    #[test]
    fn unknown_option_lists_valid_ones() {
        let err =
            FilesOptions::parse(&Options::new([("path", "."), ("max_file", "1")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown option 'max_file' for connector 'files'"),
            "{err}"
        );
    }
}
