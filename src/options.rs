//! Typed access to a `WITH (key = value, ...)` option list. Connectors and
//! formats declare the keys they understand; anything else is an error that
//! lists the valid keys, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::str::FromStr;

/// A `WITH (...)` option that is unknown, missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// An option the connector or format does not understand.
    #[error("unknown option '{key}' for {owner}; valid options are: {valid}")]
    Unknown {
        /// What the option was given to (`connector 'files'`, `format csv`).
        owner: String,
        /// The option as written, lower case.
        key: String,
        /// The options `owner` accepts, comma-separated.
        valid: String,
    },
    /// A required option is absent.
    #[error("{owner} needs option '{key}', e.g. WITH ({key} = '...')")]
    Missing {
        /// What needs the option.
        owner: String,
        /// The missing option.
        key: String,
    },
    /// A required option is absent whose value is not obvious: the message
    /// says what it holds and shows one that would do.
    #[error("{owner} needs option '{key}' ({what}), e.g. WITH ({key} = '{example}')")]
    MissingWithExample {
        /// What needs the option (`format 'avro'`).
        owner: String,
        /// The missing option.
        key: String,
        /// What its value is.
        what: String,
        /// A value that would do.
        example: String,
    },
    /// An option value that cannot be used.
    #[error("option '{key}' = '{value}' is invalid: {reason}")]
    Invalid {
        /// The option.
        key: String,
        /// Its value as written.
        value: String,
        /// Why it cannot be used, and what would do.
        reason: String,
    },
}

/// The options of one `CREATE STREAM ... WITH (...)` clause, keys lower-cased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    entries: BTreeMap<String, String>,
}

impl Options {
    /// Builds options from key/value pairs; keys are case-insensitive.
    pub fn new<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let entries = pairs
            .into_iter()
            .map(|(k, v)| (k.into().to_ascii_lowercase(), v.into()))
            .collect();
        Self { entries }
    }

    /// These options without `key` (e.g. `connector`, consumed by the catalog).
    pub fn without(&self, key: &str) -> Options {
        let mut entries = self.entries.clone();
        entries.remove(key);
        Self { entries }
    }

    /// These options with `other`'s added (`other` wins on a repeated key).
    pub fn merged(mut self, other: Options) -> Options {
        self.entries.extend(other.entries);
        self
    }

    /// All options, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The raw value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The value of a required option.
    pub fn required(&self, connector: &str, key: &str) -> Result<&str, OptionError> {
        self.get(key).ok_or_else(|| OptionError::Missing {
            owner: format!("connector '{connector}'"),
            key: key.to_string(),
        })
    }

    /// Parses `key` into `T`, or returns `default` when it is absent.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, OptionError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| OptionError::Invalid {
                key: key.to_string(),
                value: v.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Parses an optional `key` into `T`.
    pub fn parse_opt<T: FromStr>(&self, key: &str) -> Result<Option<T>, OptionError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|e: T::Err| OptionError::Invalid {
                    key: key.to_string(),
                    value: v.to_string(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Builds the error for an option whose value was parsed but is unusable.
    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> OptionError {
        OptionError::Invalid {
            key: key.to_string(),
            value: self.get(key).unwrap_or_default().to_string(),
            reason: reason.into(),
        }
    }

    /// Fails on the first key that is not in `valid`, naming the valid keys.
    pub fn check_keys(&self, connector: &str, valid: &[&str]) -> Result<(), OptionError> {
        match self.entries.keys().find(|k| !valid.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => Err(OptionError::Unknown {
                owner: format!("connector '{connector}'"),
                key: key.clone(),
                valid: valid.join(", "),
            }),
        }
    }
}

/// librdkafka properties (`properties.<name>` without the prefix) whose
/// values are not secret: shown as they are in messages and in the
/// statement text errors echo, since a protocol name or a file path is what
/// a user needs to see to fix a connection.
pub const NOT_SECRET: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.crl.location",
    "ssl.keystore.location",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
];

/// The options given under a prefix to pass through to a library as they
/// are (`properties.<name>` to librdkafka), prefix removed. Their values may
/// be secrets (SASL passwords): `Debug` shows the names only, and
/// [`PassThrough::redact`] scrubs the values out of the library's messages.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PassThrough(Vec<(String, String)>);

impl PassThrough {
    /// The options of `options` whose key starts with `prefix`.
    pub fn from_options(options: &Options, prefix: &str) -> Self {
        Self(
            options
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(prefix)
                        .map(|name| (name.to_string(), v.to_string()))
                })
                .collect(),
        )
    }

    /// `(name, value)` pairs, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `message` with every value replaced by `***`.
    pub fn redact(&self, message: &str) -> String {
        self.redact_except(message, &[])
    }

    /// `message` with every value replaced by `***` but those of the keys
    /// in `shown` (known not to be secret, such as a file path). A value
    /// shorter than 6 characters is replaced only where it stands as a word
    /// of its own: a user name `u` or `acks = 1` must not turn librdkafka's
    /// `BrokerTransportFailure` into `BrokerTransportFail***re`. Longer
    /// values are replaced wherever they occur.
    pub fn redact_except(&self, message: &str, shown: &[&str]) -> String {
        let mut out = message.to_string();
        for (key, value) in &self.0 {
            if !value.is_empty() && !shown.contains(&key.as_str()) {
                out = if value.chars().count() < 6 {
                    replace_word(&out, value, "***")
                } else {
                    out.replace(value.as_str(), "***")
                };
            }
        }
        out
    }
}

/// `text` with each occurrence of `word` that is not part of a longer word
/// (no letter, digit or `_` right before or after it) replaced by `with`.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let inner = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in text.match_indices(word) {
        let end = at + word.len();
        if at < copied
            || (inner(word.chars().next()) && inner(text[..at].chars().next_back()))
            || (inner(word.chars().next_back()) && inner(text[end..].chars().next()))
        {
            continue;
        }
        out.push_str(&text[copied..at]);
        out.push_str(with);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

impl std::fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_redacted_as_words_not_inside_other_words() {
        let properties = PassThrough::from_options(
            &Options::new([
                ("properties.sasl.username", "u"),
                ("properties.sasl.password", "hunter2"),
                ("properties.acks", "1"),
            ]),
            "properties.",
        );
        assert_eq!(
            properties.redact(
                "BrokerTransportFailure: user u, password hunter2 (hunter2x), acks=1, broker 10"
            ),
            "BrokerTransportFailure: user ***, password *** (***x), acks=***, broker 10"
        );
    }
}
