//! The `files` connector: a directory of files, read once each, new files in
//! lexicographic order, at most `max_files_per_batch` per batch. Like Spark's
//! file stream, a file is picked up whole when it appears; write files
//! elsewhere and rename them into the directory so no half-written file is read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;

use super::{FORMAT_KEYS, PollContext, Source, SourceData, SourceError};
use crate::batch::SourceOffset;
use crate::format::{Format, FormatKind};
use crate::options::Options;

const CONNECTOR: &str = "files";
const OWN_KEYS: &[&str] = &["path", "pattern", "max_files_per_batch"];

/// Typed options of the files connector.
#[derive(Debug, Clone)]
struct FilesOptions {
    dir: PathBuf,
    pattern: glob::Pattern,
    max_files_per_batch: usize,
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
        let format = Format::from_options(options, FormatKind::Text)?;
        Ok(Self {
            dir,
            pattern,
            max_files_per_batch,
            format,
        })
    }

    /// Files in the directory matching the pattern, sorted by name. Names
    /// starting with `.` or `_` are temporary or metadata files and skipped.
    fn list(&self) -> Result<Vec<String>, SourceError> {
        let io = |source| SourceError::Io {
            what: format!("files source: listing '{}'", self.dir.display()),
            source,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') || !self.pattern.matches(&name) {
                continue;
            }
            if entry.file_type().map_err(io)?.is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
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
    let first = opts.list()?.into_iter().next().ok_or_else(|| {
        SourceError::Schema(format!(
            "cannot infer the columns of {} files: directory '{}' has no file matching '{}'; \
             declare the columns in CREATE STREAM name (col TYPE, ...)",
            opts.format.name(),
            opts.dir.display(),
            opts.pattern
        ))
    })?;
    let path = opts.dir.join(&first);
    Ok(opts
        .format
        .infer_schema(&read(&path)?, &path.display().to_string())?)
}

/// A running files source: remembers which files it has read.
pub struct FilesSource {
    schema: SchemaRef,
    opts: FilesOptions,
    seen: BTreeSet<String>,
    drained: bool,
}

impl FilesSource {
    /// Opens the directory named by option `path`.
    pub fn open(schema: SchemaRef, options: &Options) -> Result<Self, SourceError> {
        Ok(Self {
            schema,
            opts: FilesOptions::parse(options)?,
            seen: BTreeSet::new(),
            drained: false,
        })
    }
}

impl Source for FilesSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll_batch(&mut self, _ctx: &PollContext) -> Result<SourceData, SourceError> {
        let new: Vec<String> = self
            .opts
            .list()?
            .into_iter()
            .filter(|n| !self.seen.contains(n))
            .collect();
        let take = new.len().min(self.opts.max_files_per_batch);
        self.drained = take == new.len();
        let mut out = SourceData::default();
        for name in &new[..take] {
            let path = self.opts.dir.join(name);
            let bytes = read(&path)?;
            let decoded = self.opts.format.decode(
                &self.schema,
                &bytes,
                self.opts.format.header,
                &path.display().to_string(),
            )?;
            out.data.extend(decoded.batches);
            out.skipped += decoded.skipped;
            self.seen.insert(name.clone());
            out.offsets = vec![SourceOffset {
                partition: self.opts.dir.display().to_string(),
                position: name.clone(),
            }];
        }
        Ok(out)
    }

    fn is_drained(&self) -> bool {
        self.drained
    }
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
        let first = source.poll_batch(&ctx()).unwrap();
        assert_eq!(first.offsets[0].position, "a.csv");
        assert!(!source.is_drained());
        let second = source.poll_batch(&ctx()).unwrap();
        assert_eq!(
            (
                second.offsets[0].position.as_str(),
                second.data[0].num_rows()
            ),
            ("b.csv", 1)
        );
        assert!(source.is_drained());
        assert!(source.poll_batch(&ctx()).unwrap().data.is_empty());
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
