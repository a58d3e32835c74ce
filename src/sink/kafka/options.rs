//! Typed `WITH (...)` options of the `kafka` sink, parsed once and checked
//! against the sink's columns. librdkafka properties pass through as
//! `properties.<name>`; their values may be secrets (SASL passwords), so
//! nothing here prints them: `Debug` shows names only and
//! [`KafkaSinkOptions::redact`] scrubs them out of librdkafka's messages.

use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Schema};

use crate::options::{OptionError, Options, PassThrough};

/// The connector's name in `connector = 'kafka'` and in messages.
pub(super) const CONNECTOR: &str = "kafka";

/// The sink's options besides `properties.*`.
const KEYS: &[&str] = &[
    "topic",
    "topic.column",
    "bootstrap.servers",
    "format",
    "key",
    "sink.semantic",
    "transactional.id",
    "timeout",
    "properties.<name>",
];

/// Prefix of options passed to librdkafka as they are.
const PROPERTY_PREFIX: &str = "properties.";

/// `properties.*` that quiver sets itself from its own options.
const OWN_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "use option 'bootstrap.servers'"),
    ("transactional.id", "use option 'transactional.id'"),
    (
        "enable.idempotence",
        "the sink is always idempotent; sink.semantic = 'exactly-once' adds transactions",
    ),
];

/// Default bound on delivery (`message.timeout.ms`) and on every blocking
/// broker request (metadata at open, flush and transaction calls).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How rows become message values and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    /// One JSON object per message, the columns as fields.
    Json,
    /// One CSV line per message, no header, no line end.
    Csv,
    /// The bytes of the single value column (BINARY or VARCHAR) as they are.
    Raw,
}

impl SinkFormat {
    /// The format's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Raw => "raw",
        }
    }
}

/// Delivery guarantee (`sink.semantic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    /// Idempotent producer; every message carries a `quiver.batch` header so
    /// readers can drop the messages of a replayed batch (the default).
    AtLeastOnce,
    /// A transactional producer, one transaction per batch.
    ExactlyOnce,
}

/// Where each message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChoice {
    /// Every message to this topic (`topic`).
    Fixed(String),
    /// The topic named by this column of each row (`topic.column`), which is
    /// not part of the value.
    Column(usize),
}

/// The parsed options of one kafka sink.
#[derive(Clone)]
pub struct KafkaSinkOptions {
    /// Where each message goes.
    pub topic: TopicChoice,
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// How values and keys are encoded.
    pub format: SinkFormat,
    /// Indices of the columns that make the message key (empty: no key).
    pub key: Vec<usize>,
    /// Indices of the columns that make the message value.
    pub value: Vec<usize>,
    /// Delivery guarantee.
    pub semantic: Semantic,
    /// `transactional.id` for exactly-once (default `quiver-<sink name>`).
    pub transactional_id: String,
    /// Bound on delivery and on every blocking broker request.
    pub timeout: Duration,
    /// `properties.<name>` options, prefix removed; values are secret.
    pub properties: PassThrough,
}

impl std::fmt::Debug for KafkaSinkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSinkOptions")
            .field("topic", &self.topic)
            .field("bootstrap", &self.bootstrap)
            .field("format", &self.format)
            .field("key", &self.key)
            .field("semantic", &self.semantic)
            .field("timeout", &self.timeout)
            .field("properties", &self.properties)
            .finish()
    }
}

/// The index of column `name` in `schema`, or an error naming the columns.
fn column(options: &Options, key: &str, name: &str, schema: &Schema) -> Result<usize, OptionError> {
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        options.invalid(
            key,
            format!("no column '{name}'; the columns are: {}", names.join(", ")),
        )
    })
}

impl KafkaSinkOptions {
    /// Parses the options of sink `sink` writing rows of `schema`.
    pub fn parse(sink: &str, options: &Options, schema: &Schema) -> Result<Self, OptionError> {
        let own = options
            .iter()
            .filter(|(k, _)| !k.starts_with(PROPERTY_PREFIX))
            .map(|(k, v)| (k.to_string(), v.to_string()));
        Options::new(own).check_keys(CONNECTOR, KEYS)?;
        let properties = PassThrough::from_options(options, PROPERTY_PREFIX);
        for (name, _) in properties.iter() {
            if let Some((_, why)) = OWN_PROPERTIES.iter().find(|(p, _)| *p == name) {
                return Err(options.invalid(&format!("{PROPERTY_PREFIX}{name}"), *why));
            }
        }
        let topic = match (options.get("topic"), options.get("topic.column")) {
            (Some(_), Some(_)) => {
                return Err(options.invalid(
                    "topic.column",
                    "give either 'topic' (one topic) or 'topic.column' (a column naming each row's topic), not both",
                ));
            }
            (None, None) => {
                return Err(OptionError::Missing {
                    owner: format!("connector '{CONNECTOR}' (sink)"),
                    key: "topic".into(),
                });
            }
            (Some(t), None) if t.trim().is_empty() || t.contains(',') => {
                return Err(options.invalid("topic", "a sink writes to one topic"));
            }
            (Some(t), None) => TopicChoice::Fixed(t.trim().to_string()),
            (None, Some(c)) => {
                let index = column(options, "topic.column", c.trim(), schema)?;
                if !matches!(
                    schema.field(index).data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    return Err(options.invalid("topic.column", "the column must be VARCHAR"));
                }
                TopicChoice::Column(index)
            }
        };
        let bootstrap = options
            .required(CONNECTOR, "bootstrap.servers")?
            .to_string();
        let format = match options
            .get("format")
            .map(|f| f.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("json") => SinkFormat::Json,
            Some("csv") => SinkFormat::Csv,
            Some("raw") => SinkFormat::Raw,
            Some(_) => {
                return Err(options.invalid("format", "valid sink formats are: json, csv, raw"));
            }
        };
        let key = match options.get("key") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| column(options, "key", c, schema))
                .collect::<Result<_, _>>()?,
        };
        let value: Vec<usize> = (0..schema.fields().len())
            .filter(|i| topic != TopicChoice::Column(*i))
            .collect();
        if format == SinkFormat::Raw {
            let binary_or_text = |i: &usize| {
                matches!(
                    schema.field(*i).data_type(),
                    DataType::Binary
                        | DataType::LargeBinary
                        | DataType::BinaryView
                        | DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                )
            };
            if value.len() != 1 || !value.iter().all(binary_or_text) {
                return Err(options.invalid(
                    "format",
                    "format 'raw' writes one BINARY or VARCHAR column as the value; select just that column (and the topic column, if any)",
                ));
            }
            if key.len() > 1 || !key.iter().all(binary_or_text) {
                return Err(options.invalid(
                    "key",
                    "with format 'raw' the key is one BINARY or VARCHAR column",
                ));
            }
        }
        let semantic = match options
            .get("sink.semantic")
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("at-least-once") => Semantic::AtLeastOnce,
            Some("exactly-once") => Semantic::ExactlyOnce,
            Some(_) => {
                return Err(options.invalid(
                    "sink.semantic",
                    "valid values are 'at-least-once' (default) and 'exactly-once'",
                ));
            }
        };
        if semantic == Semantic::AtLeastOnce && options.get("transactional.id").is_some() {
            return Err(options.invalid(
                "transactional.id",
                "only used with sink.semantic = 'exactly-once'",
            ));
        }
        let transactional_id = options
            .get("transactional.id")
            .map(|t| t.trim().to_string())
            .unwrap_or_else(|| format!("quiver-{sink}"));
        let timeout = match options.get("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(text) => humantime::parse_duration(text.trim())
                .map_err(|e| options.invalid("timeout", format!("{e}; e.g. '30s'")))?,
        };
        if timeout < Duration::from_millis(1) {
            return Err(options.invalid("timeout", "must be at least 1ms"));
        }
        Ok(Self {
            topic,
            bootstrap,
            format,
            key,
            value,
            semantic,
            transactional_id,
            timeout,
            properties,
        })
    }

    /// `message` with the value of every `properties.*` option replaced by
    /// `***`: librdkafka quotes values in its errors, and they may be
    /// passwords.
    /// The values of [`NOT_SECRET`](crate::options::NOT_SECRET)
    /// properties (protocol, mechanism, file paths) stay, to name what to fix.
    pub fn redact(&self, message: &str) -> String {
        (self.properties).redact_except(message, crate::options::NOT_SECRET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("user", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("dest", DataType::Utf8, true),
        ])
    }

    fn parse(extra: &[(&'static str, &'static str)]) -> Result<KafkaSinkOptions, OptionError> {
        let mut pairs = vec![("bootstrap.servers", "127.0.0.1:9092")];
        pairs.extend_from_slice(extra);
        KafkaSinkOptions::parse("out", &Options::new(pairs), &schema())
    }

    #[test]
    fn defaults_keys_and_topic_column() {
        let opts = parse(&[("topic", "t"), ("key", "user")]).unwrap();
        assert_eq!(opts.topic, TopicChoice::Fixed("t".into()));
        assert_eq!(
            (opts.key.clone(), opts.value.clone()),
            (vec![0], vec![0, 1, 2])
        );
        assert_eq!(
            (opts.format, opts.semantic),
            (SinkFormat::Json, Semantic::AtLeastOnce)
        );
        assert_eq!(opts.transactional_id, "quiver-out");
        let opts = parse(&[("topic.column", "dest")]).unwrap();
        assert_eq!(
            (opts.topic, opts.value),
            (TopicChoice::Column(2), vec![0, 1])
        );
    }

    #[test]
    fn bad_options_are_named() {
        let err = |extra| parse(extra).unwrap_err().to_string();
        let e = err(&[("topic", "t"), ("topik", "x")]);
        assert!(
            e.contains("unknown option 'topik'") && e.contains("sink.semantic"),
            "{e}"
        );
        assert!(err(&[]).contains("'topic'"));
        assert!(err(&[("topic", "t"), ("key", "nope")]).contains("no column 'nope'"));
        assert!(err(&[("topic", "t"), ("format", "raw")]).contains("one BINARY or VARCHAR"));
        assert!(err(&[("topic", "t"), ("sink.semantic", "once")]).contains("'exactly-once'"));
        assert!(err(&[("topic", "t"), ("transactional.id", "x")]).contains("exactly-once"));
        assert!(
            err(&[("topic", "t"), ("properties.bootstrap.servers", "x")]).contains("use option")
        );
    }

    #[test]
    fn property_values_are_never_shown() {
        let opts = parse(&[("topic", "t"), ("properties.sasl.password", "hunter2")]).unwrap();
        assert!(!format!("{opts:?}").contains("hunter2"));
        assert_eq!(opts.redact("bad \"hunter2\""), "bad \"***\"");
    }
}
