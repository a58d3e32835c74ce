//! The typed options of a file sink, parsed once from `WITH (...)`: where to
//! write, in which format, how to partition, when to roll a file, and how to
//! encode Parquet. Defaults and validation live here; every error names the
//! option.

use std::time::Duration;

use datafusion::parquet::basic::Compression;

use crate::options::{OptionError, Options};

/// quiver's documented option names.
pub const KEYS: &[&str] = &[
    "path",
    "format",
    "partition_by",
    "rollover_rows",
    "rollover_bytes",
    "rollover_interval",
    "row_group_rows",
    "compression",
    "refresh_interval",
    // The query's own checkpoint directory: taken out before the sink opens
    // (`sink::without_query_options`), listed so a misspelling names it.
    "checkpoint",
];

/// Flink-style and dashed spellings accepted for the documented names.
const ALIASES: &[(&str, &str)] = &[
    ("sink.rolling-policy.file-size", "rollover_bytes"),
    ("sink.rolling-policy.rollover-interval", "rollover_interval"),
    ("sink.rolling-policy.rollover-rows", "rollover_rows"),
    ("parquet.compression", "compression"),
    ("parquet.block.rows", "row_group_rows"),
    ("partition-by", "partition_by"),
    ("partition.by", "partition_by"),
    ("rollover-rows", "rollover_rows"),
    ("rollover-bytes", "rollover_bytes"),
    ("rollover-interval", "rollover_interval"),
    ("row-group-rows", "row_group_rows"),
    ("lookup.join.cache.ttl", "refresh_interval"),
    ("refresh-interval", "refresh_interval"),
];

/// Default `rollover_bytes`: 128 MiB, Flink's default part size.
pub const DEFAULT_ROLLOVER_BYTES: u64 = 128 << 20;
/// Default `rollover_interval`: one minute.
pub const DEFAULT_ROLLOVER_INTERVAL: Duration = Duration::from_secs(60);

/// The encoding of the files a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet (the default), with the Arrow schema embedded.
    Parquet,
    /// CSV with a header line per file.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl FileFormat {
    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
        }
    }
}

impl std::str::FromStr for FileFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Ok(Self::Parquet),
            "csv" => Ok(Self::Csv),
            "ndjson" | "json" => Ok(Self::Ndjson),
            other => Err(format!(
                "unknown file format '{other}'; valid formats are: parquet, csv, ndjson"
            )),
        }
    }
}

/// Everything a file sink needs to know, validated.
#[derive(Debug, Clone)]
pub struct FileSinkOptions {
    /// Root directory of the output (created if missing).
    pub path: std::path::PathBuf,
    /// File encoding.
    pub format: FileFormat,
    /// Columns whose values name the Hive-style directories `col=value/`.
    pub partition_by: Vec<String>,
    /// Finish a file once it holds at least this many rows.
    pub rollover_rows: Option<u64>,
    /// Finish a file once it holds at least this many bytes.
    pub rollover_bytes: u64,
    /// Finish a file once its first batch is this old (in batch time).
    pub rollover_interval: Duration,
    /// Rows per Parquet row group (`None`: the parquet crate's default).
    pub row_group_rows: Option<usize>,
    /// Parquet compression codec.
    pub compression: Compression,
    /// When the table is read by a continuous query: how often (in batch
    /// time) it reads the files again; `None` reads them once per query.
    pub refresh_interval: Option<Duration>,
}

impl FileSinkOptions {
    /// Parses the options of sink `connector` (`parquet`, `csv`, `ndjson` or
    /// `filesystem`, which takes `format`).
    pub fn parse(connector: &str, raw: &Options) -> Result<Self, OptionError> {
        let options = canonical(raw);
        options.check_keys(connector, KEYS)?;
        let path = options.required(connector, "path")?;
        if path.trim().is_empty() {
            return Err(options.invalid("path", "give a directory, e.g. path = 'out/bids'"));
        }
        let default_format = match connector {
            "csv" => FileFormat::Csv,
            "ndjson" => FileFormat::Ndjson,
            _ => FileFormat::Parquet,
        };
        let format = options.parse_or("format", default_format)?;
        if connector != "filesystem" && format != default_format {
            return Err(options.invalid(
                "format",
                format!(
                    "connector '{connector}' writes {}; use connector = 'filesystem' to choose a format",
                    default_format.extension()
                ),
            ));
        }
        let partition_by: Vec<String> = options
            .get("partition_by")
            .unwrap_or_default()
            .split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        let rollover_rows = options.parse_opt::<u64>("rollover_rows")?;
        if rollover_rows == Some(0) {
            return Err(options.invalid("rollover_rows", "must be at least 1"));
        }
        let rollover_bytes = match options.get("rollover_bytes") {
            None => DEFAULT_ROLLOVER_BYTES,
            Some(v) => parse_size(v).map_err(|reason| options.invalid("rollover_bytes", reason))?,
        };
        let rollover_interval = match options.get("rollover_interval") {
            None => DEFAULT_ROLLOVER_INTERVAL,
            Some(v) => humantime::parse_duration(&v.replace(' ', "")).map_err(|e| {
                options.invalid(
                    "rollover_interval",
                    format!("{e}; write e.g. '1min' or '30s'"),
                )
            })?,
        };
        if rollover_interval.is_zero() {
            return Err(options.invalid("rollover_interval", "must be longer than 0"));
        }
        let row_group_rows = options.parse_opt::<usize>("row_group_rows")?;
        if row_group_rows == Some(0) {
            return Err(options.invalid("row_group_rows", "must be at least 1"));
        }
        let compression = match options.get("compression") {
            None => Compression::ZSTD(Default::default()),
            Some(v) => {
                parse_compression(v).map_err(|reason| options.invalid("compression", reason))?
            }
        };
        if format != FileFormat::Parquet
            && options.get("compression").is_some()
            && compression != Compression::UNCOMPRESSED
        {
            return Err(options.invalid(
                "compression",
                format!("{} files are written uncompressed", format.extension()),
            ));
        }
        if format != FileFormat::Parquet && row_group_rows.is_some() {
            return Err(options.invalid("row_group_rows", "only Parquet files have row groups"));
        }
        let refresh_interval = match options.get("refresh_interval") {
            None => None,
            Some(v) => Some(humantime::parse_duration(&v.replace(' ', "")).map_err(|e| {
                options.invalid(
                    "refresh_interval",
                    format!("{e}; write e.g. '10min' or '30s'"),
                )
            })?),
        };
        if refresh_interval.is_some_and(|r| r.is_zero()) {
            return Err(options.invalid("refresh_interval", "must be longer than 0"));
        }
        Ok(Self {
            path: path.into(),
            refresh_interval,
            format,
            partition_by,
            rollover_rows,
            rollover_bytes,
            rollover_interval,
            row_group_rows,
            compression,
        })
    }
}

/// The options with aliases renamed to quiver's names.
fn canonical(raw: &Options) -> Options {
    Options::new(raw.iter().map(|(k, v)| {
        let key = ALIASES
            .iter()
            .find(|(alias, _)| *alias == k)
            .map_or(k, |(_, name)| name);
        (key.to_string(), v.to_string())
    }))
}

/// `zstd` (default level), `zstd(9)`, `snappy`, `gzip`, `lz4`, `none`.
fn parse_compression(value: &str) -> Result<Compression, String> {
    let value = value.trim().to_ascii_lowercase();
    match value.as_str() {
        "none" | "uncompressed" => Ok(Compression::UNCOMPRESSED),
        "zstd" => Ok(Compression::ZSTD(Default::default())),
        "gzip" => Ok(Compression::GZIP(Default::default())),
        "brotli" => Ok(Compression::BROTLI(Default::default())),
        other => other.parse().map_err(|_| {
            "valid codecs are: zstd (default), zstd(1..22), snappy, gzip, lz4, none".to_string()
        }),
    }
}

/// A byte size: `1000`, `64KB`, `128MiB`, `1 GB` (KB/MB/GB are powers of
/// 1000, KiB/MiB/GiB of 1024).
pub fn parse_size(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let digits = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(digits);
    let number: f64 = number
        .parse()
        .map_err(|_| "write a size such as '128MiB', '64MB' or '1000000'".to_string())?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}'; use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let bytes = (number * scale as f64) as u64;
    if bytes == 0 {
        return Err("must be at least 1 byte".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(connector: &str, pairs: &[(&str, &str)]) -> Result<FileSinkOptions, OptionError> {
        FileSinkOptions::parse(connector, &Options::new(pairs.iter().copied()))
    }

    #[test]
    fn defaults_are_zstd_parquet_128mib_one_minute() {
        let o = parse("parquet", &[("path", "out")]).unwrap();
        assert_eq!(o.format, FileFormat::Parquet);
        assert_eq!(o.rollover_bytes, 128 << 20);
        assert_eq!(o.rollover_interval, Duration::from_secs(60));
        assert!(matches!(o.compression, Compression::ZSTD(_)));
        assert!(o.partition_by.is_empty() && o.rollover_rows.is_none());
    }

    #[test]
    fn flink_names_and_formats_are_accepted() {
        let o = parse(
            "filesystem",
            &[
                ("path", "out"),
                ("format", "csv"),
                ("sink.rolling-policy.file-size", "64MB"),
                ("sink.rolling-policy.rollover-interval", "10 min"),
                ("partition_by", "dt, channel"),
            ],
        )
        .unwrap();
        assert_eq!(o.format, FileFormat::Csv);
        assert_eq!(o.rollover_bytes, 64_000_000);
        assert_eq!(o.rollover_interval, Duration::from_secs(600));
        assert_eq!(o.partition_by, vec!["dt", "channel"]);
    }

    #[test]
    fn bad_options_name_the_option() {
        let err = parse("parquet", &[]).unwrap_err().to_string();
        assert!(err.contains("needs option 'path'"), "{err}");
        let err = parse("parquet", &[("path", "o"), ("rollover", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown option 'rollover'") && err.contains("rollover_rows"));
        assert!(err.contains("checkpoint"), "{err}");
        let err = parse("parquet", &[("path", "o"), ("compression", "zip")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'compression'") && err.contains("snappy"),
            "{err}"
        );
        let err = parse("parquet", &[("path", "o"), ("format", "csv")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("filesystem"), "{err}");
        let err = parse("csv", &[("path", "o"), ("compression", "zstd")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("uncompressed"), "{err}");
    }

    #[test]
    fn sizes_and_codecs() {
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("1.5 KB"), Ok(1500));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_compression("snappy"), Ok(Compression::SNAPPY));
        assert_eq!(parse_compression("none"), Ok(Compression::UNCOMPRESSED));
        assert!(matches!(
            parse_compression("zstd(9)"),
            Ok(Compression::ZSTD(_))
        ));
    }
}
