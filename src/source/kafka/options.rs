//! Typed `WITH (...)` options of the `kafka` connector. librdkafka properties
//! pass through as `properties.<name>`; their values may be secrets (SASL
//! passwords), so nothing here prints them: `Debug` shows names only and
//! [`KafkaOptions::redact`] scrubs them out of librdkafka's messages.

use std::time::Duration;

use super::avro::{AVRO_KEYS, AvroFormat};
use crate::format::{Format, FormatError, FormatKind};
use crate::options::{Options, PassThrough};
use crate::source::{FORMAT_KEYS, SourceError};

/// The connector's name in `connector = 'kafka'` and in messages.
pub(super) const CONNECTOR: &str = "kafka";

/// Options of the kafka connector besides the format ones and `properties.*`.
const OWN_KEYS: &[&str] = &[
    "topic",
    "topic-pattern",
    "scan.topic-partition-discovery.interval",
    "bootstrap.servers",
    "group.id",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "max_records_per_batch",
    "max_rate",
    "timeout",
    "assignment",
    "dead_letter.topic",
    "dead_letter.path",
    "startup.retry",
];

/// Prefix of options passed to librdkafka as they are.
const PROPERTY_PREFIX: &str = "properties.";

/// Default bound on one batch.
const DEFAULT_MAX_RECORDS: usize = 100_000;

/// Default time between two looks for new partitions and topics.
const DEFAULT_DISCOVERY: Duration = Duration::from_secs(10);

/// Default bound on every blocking broker request at open and commit.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a query starts reading each partition (`scan.startup.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupMode {
    /// The earliest offset still in the partition.
    Earliest,
    /// The end of the partition: only messages produced after the start.
    Latest,
    /// The group's committed offset; the earliest where it has none (default).
    GroupOffsets,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

/// Which partitions a query reads (`assignment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// Every partition of the topics, assigned by quiver (default): one
    /// query reads the whole topic.
    All,
    /// The partitions the group's coordinator gives this consumer: the
    /// queries of one `group.id` split the partitions between them and take
    /// over those of a query that stops.
    Group,
}

/// Where `on_error = 'dead_letter'` writes malformed messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterTarget {
    /// `dead_letter.topic`: a topic on the same `bootstrap.servers`.
    Topic(String),
    /// `dead_letter.path`: a file that NDJSON lines are appended to.
    File(std::path::PathBuf),
}

/// How message values are decoded.
#[derive(Debug, Clone)]
pub enum ValueFormat {
    /// json, csv or text through [`crate::format`].
    Decoded(Format),
    /// `raw`: one `value` BINARY column, the bytes as they are.
    Raw,
    /// `avro`: Avro datums of the writer schema in `avro.schema`.
    Avro(AvroFormat),
}

/// The topics a stream reads: named, or every topic whose name matches.
#[derive(Debug, Clone)]
pub enum Topics {
    /// `topic`: these topics, in the order given; each must exist.
    Named(Vec<String>),
    /// `topic-pattern`: every topic whose whole name matches (Rust regex
    /// syntax), now and later; none matching yet is not an error.
    Pattern(regex::Regex),
}

impl Topics {
    /// Whether the stream reads `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Topics::Named(names) => names.iter().any(|n| n == topic),
            // Internal topics (`__consumer_offsets`) only when named.
            Topics::Pattern(re) => !topic.starts_with("__") && re.is_match(topic),
        }
    }
}

/// The parsed options of one kafka stream.
#[derive(Clone)]
pub struct KafkaOptions {
    /// The topics to read.
    pub topics: Topics,
    /// How often to look for new partitions (a topic grew, a new topic
    /// matches `topic-pattern`): `scan.topic-partition-discovery.interval`.
    pub discovery: Duration,
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// `group.id`: the consumer group whose offsets are read and committed.
    pub group_id: String,
    /// Where reading starts.
    pub startup: StartupMode,
    /// Every partition, or the group's share.
    pub assignment: Assignment,
    /// Most messages one batch takes, over all partitions.
    pub max_records: usize,
    /// `max_rate`: most messages per second of batch interval, over all
    /// partitions (a batch of interval `i` takes at most `max_rate * i`,
    /// at least 1); `None`: no bound but `max_records`.
    pub max_rate: Option<u64>,
    /// Bound on each blocking broker request (metadata, offsets, commit).
    pub timeout: Duration,
    /// `startup.retry`: how long to keep retrying a broker that does not
    /// answer when the query starts; `None`: fail at once.
    pub startup_retry: Option<Duration>,
    /// How values decode.
    pub format: ValueFormat,
    /// `on_error = 'dead_letter'`: where malformed messages go (the format
    /// then skips them, and the source writes them there).
    pub dead_letter: Option<DeadLetterTarget>,
    /// `properties.<name>` options, prefix removed; values are secret.
    pub properties: PassThrough,
}

impl std::fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOptions")
            .field("topics", &self.topics)
            .field("discovery", &self.discovery)
            .field("bootstrap", &self.bootstrap)
            .field("group_id", &self.group_id)
            .field("startup", &self.startup)
            .field("assignment", &self.assignment)
            .field("max_records", &self.max_records)
            .field("max_rate", &self.max_rate)
            .field("timeout", &self.timeout)
            .field("startup_retry", &self.startup_retry)
            .field("format", &self.format)
            .field("dead_letter", &self.dead_letter)
            .field("properties", &self.properties)
            .finish()
    }
}

impl KafkaOptions {
    /// Parses and checks the options of a kafka stream.
    pub fn parse(options: &Options) -> Result<Self, SourceError> {
        let valid: Vec<&str> = (OWN_KEYS.iter().chain(FORMAT_KEYS).chain(AVRO_KEYS))
            .copied()
            .collect();
        let own = options
            .iter()
            .filter(|(k, _)| !k.starts_with(PROPERTY_PREFIX))
            .map(|(k, v)| (k.to_string(), v.to_string()));
        Options::new(own).check_keys(CONNECTOR, &valid)?;
        let topics = match (options.get("topic"), options.get("topic-pattern")) {
            (Some(_), Some(_)) => {
                return Err(options
                    .invalid(
                        "topic-pattern",
                        "give either 'topic' (names) or 'topic-pattern' (a regular expression), not both",
                    )
                    .into());
            }
            (None, Some(pattern)) => {
                // The whole name must match, as in Flink.
                let anchored = format!("^(?:{})$", pattern.trim());
                match regex::Regex::new(&anchored) {
                    Ok(re) => Topics::Pattern(re),
                    Err(e) => {
                        return Err(options
                            .invalid("topic-pattern", format!("not a regular expression: {e}"))
                            .into());
                    }
                }
            }
            (topic, None) => {
                let Some(topic) = topic else {
                    return Err(crate::options::OptionError::Missing {
                        owner: format!("connector '{CONNECTOR}'"),
                        key: "topic' or 'topic-pattern".into(),
                    }
                    .into());
                };
                let topics: Vec<String> = (topic.split(','))
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect();
                if topics.is_empty() {
                    return Err(options
                        .invalid("topic", "name one topic or a comma-separated list")
                        .into());
                }
                Topics::Named(topics)
            }
        };
        let discovery = match options.get("scan.topic-partition-discovery.interval") {
            None => DEFAULT_DISCOVERY,
            Some(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                options.invalid(
                    "scan.topic-partition-discovery.interval",
                    format!("{e}; e.g. '10s'"),
                )
            })?,
        };
        if discovery.is_zero() {
            return Err(options
                .invalid(
                    "scan.topic-partition-discovery.interval",
                    "must be positive",
                )
                .into());
        }
        let bootstrap = options
            .required(CONNECTOR, "bootstrap.servers")?
            .to_string();
        let group_id = options.required(CONNECTOR, "group.id")?.to_string();
        let startup = match options
            .get("scan.startup.mode")
            .map(|m| m.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("group-offsets") => StartupMode::GroupOffsets,
            Some("earliest") | Some("earliest-offset") => StartupMode::Earliest,
            Some("latest") | Some("latest-offset") => StartupMode::Latest,
            Some("timestamp") => match options.parse_opt("scan.startup.timestamp-millis")? {
                Some(ms) => StartupMode::Timestamp(ms),
                None => {
                    return Err(crate::options::OptionError::Missing {
                        owner: "scan.startup.mode = 'timestamp'".into(),
                        key: "scan.startup.timestamp-millis".into(),
                    }
                    .into());
                }
            },
            Some(_) => {
                return Err(options
                    .invalid(
                        "scan.startup.mode",
                        "valid modes are 'group-offsets' (default), 'earliest', 'latest' and 'timestamp'",
                    )
                    .into());
            }
        };
        if startup != StartupMode::GroupOffsets
            && !matches!(startup, StartupMode::Timestamp(_))
            && options.get("scan.startup.timestamp-millis").is_some()
        {
            return Err(options
                .invalid(
                    "scan.startup.timestamp-millis",
                    "only used with scan.startup.mode = 'timestamp'",
                )
                .into());
        }
        let assignment = match (options.get("assignment"))
            .map(|m| m.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("all") => Assignment::All,
            Some("group") => Assignment::Group,
            Some(_) => {
                return Err(options
                    .invalid("assignment", "valid values are 'all' (default) and 'group'")
                    .into());
            }
        };
        if assignment == Assignment::Group && startup != StartupMode::GroupOffsets {
            return Err(options
                .invalid(
                    "scan.startup.mode",
                    "with assignment = 'group' every partition starts at the group's committed \
                     offset (the earliest where it has none): only 'group-offsets' applies",
                )
                .into());
        }
        let max_records = options.parse_or("max_records_per_batch", DEFAULT_MAX_RECORDS)?;
        if max_records == 0 {
            return Err(options
                .invalid("max_records_per_batch", "must be at least 1")
                .into());
        }
        let max_rate: Option<u64> = options.parse_opt("max_rate")?;
        if max_rate == Some(0) {
            return Err(options
                .invalid("max_rate", "must be at least 1 (records per second)")
                .into());
        }
        let timeout = match options.get("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(text) => humantime::parse_duration(text.trim())
                .map_err(|e| options.invalid("timeout", format!("{e}; e.g. '10s'")))?,
        };
        if timeout.is_zero() {
            return Err(options.invalid("timeout", "must be positive").into());
        }
        let startup_retry = match options.get("startup.retry") {
            None => None,
            Some(text) => Some(
                humantime::parse_duration(text.trim())
                    .map_err(|e| options.invalid("startup.retry", format!("{e}; e.g. '5m'")))?,
            ),
        }
        .filter(|d| !d.is_zero());
        let (dead_letter, options) = dead_letter(options)?;
        let options = &options;
        let format = match options
            .get("format")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("raw") => {
                for key in ["header", "delimiter"] {
                    if options.get(key).is_some() {
                        return Err(options.invalid(key, "not used by format 'raw'").into());
                    }
                }
                ValueFormat::Raw
            }
            Some("avro") => ValueFormat::Avro(AvroFormat::parse(options)?),
            _ if let Some(key) = AVRO_KEYS.iter().find(|k| options.get(k).is_some()) => {
                return Err(options
                    .invalid(key, "only used with format = 'avro'")
                    .into());
            }
            _ => ValueFormat::Decoded(Format::from_options(options, FormatKind::Text).map_err(
                |e| match e {
                    FormatError::UnknownFormat { name, valid } => FormatError::UnknownFormat {
                        name,
                        valid: format!("{valid}, avro, raw"),
                    },
                    other => other,
                },
            )?),
        };
        let properties = PassThrough::from_options(options, PROPERTY_PREFIX);
        Ok(Self {
            topics,
            discovery,
            bootstrap,
            group_id,
            startup,
            assignment,
            max_records,
            max_rate,
            timeout,
            startup_retry,
            format,
            dead_letter,
            properties,
        })
    }

    /// Most messages a batch of `interval_ms` takes: `max_records_per_batch`,
    /// and `max_rate` per second of the interval (at least 1).
    pub fn batch_bound(&self, interval_ms: i64) -> usize {
        let Some(rate) = self.max_rate else {
            return self.max_records;
        };
        let by_rate = (u128::from(rate) * interval_ms.max(0) as u128 / 1000).max(1);
        self.max_records
            .min(usize::try_from(by_rate).unwrap_or(usize::MAX))
    }

    /// The format's name, for messages.
    #[cfg(test)]
    pub fn format_name(&self) -> &'static str {
        match &self.format {
            ValueFormat::Decoded(format) => format.name(),
            ValueFormat::Raw => "raw",
            ValueFormat::Avro(_) => "avro",
        }
    }

    /// `message` with the value of every `properties.*` option replaced by
    /// `***`: librdkafka quotes values in its errors ("Invalid value ... for
    /// configuration property ..."), and they may be passwords.
    /// The values of [`NOT_SECRET`](crate::options::NOT_SECRET)
    /// properties (protocol, mechanism, file paths) stay, to name what to fix.
    pub fn redact(&self, message: &str) -> String {
        (self.properties).redact_except(message, crate::options::NOT_SECRET)
    }
}

/// `on_error = 'dead_letter'` with exactly one of `dead_letter.topic` and
/// `dead_letter.path`: the target, and `options` with `on_error = 'skip'`
/// for the format (which then leaves malformed messages out).
fn dead_letter(options: &Options) -> Result<(Option<DeadLetterTarget>, Options), SourceError> {
    let wanted =
        (options.get("on_error")).is_some_and(|v| v.trim().eq_ignore_ascii_case("dead_letter"));
    let topic = options.get("dead_letter.topic").map(str::trim);
    let path = options.get("dead_letter.path").map(str::trim);
    if !wanted {
        if let Some(key) = (topic.map(|_| "dead_letter.topic")).or(path.map(|_| "dead_letter.path"))
        {
            return Err(options
                .invalid(key, "only used with on_error = 'dead_letter'")
                .into());
        }
        return Ok((None, options.clone()));
    }
    let target = match (topic, path) {
        (Some(topic), None) if !topic.is_empty() => DeadLetterTarget::Topic(topic.to_string()),
        (None, Some(path)) if !path.is_empty() => DeadLetterTarget::File(path.into()),
        (Some(_), Some(_)) => {
            return Err(options
                .invalid(
                    "dead_letter.path",
                    "give either dead_letter.topic or dead_letter.path, not both",
                )
                .into());
        }
        _ => {
            return Err(options
                .invalid(
                    "on_error",
                    "'dead_letter' needs dead_letter.topic = 'TOPIC' (on the same \
                     bootstrap.servers) or dead_letter.path = 'FILE' (NDJSON lines)",
                )
                .into());
        }
    };
    let skip = options
        .without("on_error")
        .merged(Options::new([("on_error", "skip")]));
    Ok((Some(target), skip))
}

#[cfg(test)]
mod tests;
