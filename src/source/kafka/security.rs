//! Kafka over TLS and SASL, for the source and the sink alike. librdkafka
//! (built with OpenSSL) does the work: users set `properties.security.protocol`
//! (`SSL`, `SASL_SSL`, `SASL_PLAINTEXT`), `properties.sasl.*` and
//! `properties.ssl.*` as librdkafka names them. What quiver adds:
//!
//! - [`set_defaults`]: with TLS and no CA given, `ssl.ca.location = probe`,
//!   so the bundled OpenSSL finds the system's CA certificates (Debian's
//!   `/etc/ssl/certs/...`) and a managed cluster's public certificate is
//!   trusted without configuration.
//! - [`check_files`]: at CREATE STREAM / sink open, a certificate or key
//!   file that does not exist is an error naming the property and the path.
//! - [`Diagnosis`]: librdkafka reports a failed TLS handshake or SASL
//!   authentication only in its log and retries forever; the log callback
//!   records it here, worded with what to fix ([`diagnose`]), so opening
//!   fails at once on a wrong password or an untrusted certificate
//!   ([`until_answer`]) and a broker that never answers says why (a TLS
//!   client against a plaintext port, or the reverse).
//!
//! Secrets: every `properties.*` value is redacted from messages, and from
//! the statement text errors echo, except those of
//! [`NOT_SECRET`](crate::options::NOT_SECRET) (protocol, mechanism, file
//! paths); see [`crate::options::PassThrough::redact_except`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, KafkaResult};

use crate::options::PassThrough;

/// Properties naming a file (or, for `ssl.ca.location`, a directory) that
/// must exist; `probe` is librdkafka's "look in the usual places".
const FILE_PROPERTIES: &[&str] = &[
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.crl.location",
    "ssl.keystore.location",
];

/// Whether `properties` ask for TLS (`security.protocol` SSL or SASL_SSL).
fn uses_tls(properties: &PassThrough) -> bool {
    properties.iter().any(|(k, v)| {
        k == "security.protocol"
            && (v.eq_ignore_ascii_case("ssl") || v.eq_ignore_ascii_case("sasl_ssl"))
    })
}

/// quiver's TLS default: with TLS and no CA given (`ssl.ca.location`,
/// `ssl.ca.pem`), probe the system's CA certificates. The bundled OpenSSL
/// looks in its own build prefix otherwise, where Debian keeps none.
///
/// Also lets librdkafka's log lines down to `Info` reach the client's log
/// callback: a connection closed by a TLS port during the first request (a
/// plaintext client) is logged at that level only.
pub fn set_defaults(config: &mut ClientConfig, properties: &PassThrough) {
    if (config.log_level as i32) < (RDKafkaLogLevel::Info as i32) {
        config.set_log_level(RDKafkaLogLevel::Info);
    }
    let has_ca = properties
        .iter()
        .any(|(k, _)| k == "ssl.ca.location" || k == "ssl.ca.pem");
    if uses_tls(properties) && !has_ca {
        config.set("ssl.ca.location", "probe");
    }
}

/// A certificate or key file that does not exist: the error names the
/// property and the path (paths are not secret).
pub fn check_files(properties: &PassThrough) -> Result<(), String> {
    for (name, value) in properties.iter() {
        if FILE_PROPERTIES.contains(&name)
            && value != "probe"
            && let Err(e) = std::fs::metadata(value)
        {
            return Err(format!(
                "option 'properties.{name}': cannot read '{value}': {e}; give the path of \
                 the PEM file (relative paths are relative to where quiver runs)"
            ));
        }
    }
    Ok(())
}

/// A security failure librdkafka logged, worded with what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What to fix, then librdkafka's own words (redacted).
    pub message: String,
    /// True when retrying cannot help (a refused password, an untrusted
    /// certificate): opening fails at once instead of after `timeout`.
    pub permanent: bool,
}

/// The failure in one of librdkafka's log lines, if it is about TLS or SASL.
pub fn diagnose(line: &str) -> Option<Failure> {
    let (fix, permanent) = if line.contains("SASL authentication error")
        || line.contains("SASL authentication failed")
    {
        (
            "SASL authentication failed: check properties.sasl.username, \
             properties.sasl.password and properties.sasl.mechanisms",
            true,
        )
    } else if line.contains("SASL") && line.contains("mechanism") {
        (
            "the broker does not accept the SASL mechanism: check properties.sasl.mechanisms \
             (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)",
            true,
        )
    } else if line.contains("certificate verify failed")
        || line.contains("broker certificate could not be verified")
    {
        (
            "the broker's TLS certificate is not trusted: set properties.ssl.ca.location to \
             the CA certificate that signed it (PEM)",
            true,
        )
    } else if line.contains("connecting to a PLAINTEXT broker listener?") {
        (
            "the broker does not speak TLS on this port: use its TLS port, or \
             properties.security.protocol = 'PLAINTEXT' / 'SASL_PLAINTEXT'",
            false,
        )
    } else if line.contains("connecting to a SSL listener?")
        || (line.contains("Disconnected")
            && line.contains("state APIVERSION_QUERY")
            && !line.contains("ssl://"))
    {
        (
            "the broker expects TLS on this port: set properties.security.protocol = 'SSL' \
             (or 'SASL_SSL' with SASL)",
            false,
        )
    } else if line.contains("broker might require SASL authentication") || closed_before_sasl(line)
    {
        (
            "the broker requires SASL authentication: set properties.security.protocol = \
             'SASL_SSL' (or 'SASL_PLAINTEXT') and properties.sasl.mechanisms, \
             properties.sasl.username, properties.sasl.password",
            false,
        )
    } else if line.contains("SSL handshake failed") {
        (
            "the TLS handshake with the broker failed: check properties.security.protocol and \
             the properties.ssl.* files (a client certificate the broker requires?)",
            false,
        )
    } else {
        return None;
    };
    Some(Failure {
        message: format!("{fix} ({line})"),
        permanent,
    })
}

/// A connection without SASL that the broker closed within 2 s of its
/// first request (as librdkafka itself guesses, for non-SASL clients only):
/// `... Disconnected ... (after 0ms in state UP)`.
fn closed_before_sasl(line: &str) -> bool {
    let Some((_, after)) = line.rsplit_once("(after ") else {
        return false;
    };
    let quick = after
        .strip_suffix(')')
        .unwrap_or(after)
        .split_once("ms in state UP")
        .and_then(|(ms, _)| ms.parse::<u64>().ok())
        .is_some_and(|ms| ms < 2000);
    quick
        && !line.contains("sasl_")
        && (line.contains("Disconnected") || line.contains("Send failed"))
}

/// The last security failure librdkafka logged for one client, shared
/// with its log callback (which runs on librdkafka's threads).
#[derive(Debug, Clone, Default)]
pub struct Diagnosis(Arc<Mutex<Option<Failure>>>);

impl Diagnosis {
    /// Records the failure in `line` (already redacted), if any.
    pub fn record(&self, line: &str) {
        if let Some(failure) = diagnose(line) {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure);
        }
    }

    /// The last failure recorded.
    pub fn last(&self) -> Option<Failure> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Why [`until_answer`] gave up.
#[derive(Debug)]
pub enum NoAnswer {
    /// A permanent security failure (see [`Failure::permanent`]).
    Security(Failure),
    /// The broker did not answer within the timeout: librdkafka's error,
    /// and the security failure seen meanwhile if any.
    Kafka(KafkaError, Option<Failure>),
}

impl NoAnswer {
    /// What to say after the connector's own words: the security failure
    /// if there was one, else librdkafka's error.
    pub fn reason(&self, redact: impl Fn(&str) -> String) -> String {
        match self {
            Self::Security(failure) | Self::Kafka(_, Some(failure)) => failure.message.clone(),
            Self::Kafka(e, None) => redact(&e.to_string()),
        }
    }
}

/// How long one attempt of [`until_answer`] waits before looking at the
/// diagnosis again.
const SLICE: Duration = Duration::from_millis(500);

/// Runs `attempt` (a broker request bounded by the duration it is given)
/// until it succeeds or `timeout` has passed, giving up at once when
/// `diagnosis` has a permanent failure: a wrong password fails now, not
/// after `timeout`.
pub fn until_answer<T>(
    timeout: Duration,
    diagnosis: &Diagnosis,
    mut attempt: impl FnMut(Duration) -> KafkaResult<T>,
) -> Result<T, NoAnswer> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = attempt(left.min(SLICE).max(Duration::from_millis(1)));
        let e = match result {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        match diagnosis.last() {
            Some(failure) if failure.permanent => return Err(NoAnswer::Security(failure)),
            failure if Instant::now() >= deadline || !is_timeout(&e) => {
                return Err(NoAnswer::Kafka(e, failure));
            }
            _ => {}
        }
    }
}

fn is_timeout(e: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as Code;
    matches!(
        e.rdkafka_error_code(),
        Some(
            Code::OperationTimedOut
                | Code::RequestTimedOut
                | Code::AllBrokersDown
                | Code::BrokerTransportFailure
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    fn props(pairs: &[(&'static str, &'static str)]) -> PassThrough {
        PassThrough::from_options(&Options::new(pairs.to_vec()), "properties.")
    }

    #[test]
    fn tls_without_a_ca_probes_the_system_certificates() {
        let mut config = ClientConfig::new();
        set_defaults(
            &mut config,
            &props(&[("properties.security.protocol", "SASL_SSL")]),
        );
        assert_eq!(config.get("ssl.ca.location"), Some("probe"));
        let mut config = ClientConfig::new();
        set_defaults(
            &mut config,
            &props(&[
                ("properties.security.protocol", "ssl"),
                ("properties.ssl.ca.location", "/ca.pem"),
            ]),
        );
        assert_eq!(config.get("ssl.ca.location"), None);
        let mut config = ClientConfig::new();
        set_defaults(
            &mut config,
            &props(&[("properties.security.protocol", "SASL_PLAINTEXT")]),
        );
        assert_eq!(config.get("ssl.ca.location"), None);
    }

    #[test]
    fn a_missing_file_names_the_property_and_the_path() {
        let err = check_files(&props(&[
            ("properties.ssl.ca.location", "/nonexistent/ca.pem"),
            ("properties.ssl.key.password", "k3y-secret"),
        ]))
        .unwrap_err();
        assert!(err.contains("'properties.ssl.ca.location'"), "{err}");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(!err.contains("k3y-secret"), "{err}");
        assert!(check_files(&props(&[("properties.ssl.ca.location", "probe")])).is_ok());
    }

    #[test]
    fn librdkafka_lines_are_worded_with_what_to_fix() {
        let auth = diagnose(
            "sasl_plaintext://127.0.0.1:9092/bootstrap: SASL authentication error: \
             Authentication failed: Invalid username or password (after 0ms in state AUTH_REQ)",
        )
        .unwrap();
        assert!(auth.permanent);
        assert!(
            auth.message.contains("properties.sasl.password"),
            "{auth:?}"
        );
        let plain = diagnose(
            "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: Disconnected: connecting to \
             a PLAINTEXT broker listener? (after 1ms in state SSL_HANDSHAKE)",
        )
        .unwrap();
        assert!(!plain.permanent);
        assert!(plain.message.contains("does not speak TLS"), "{plain:?}");
        let sasl = diagnose(
            "127.0.0.1:9093/bootstrap: Disconnected: connection closed by peer: receive 0 after \
             POLLIN (after 0ms in state UP)",
        )
        .unwrap();
        assert!(sasl.message.contains("requires SASL"), "{sasl:?}");
        assert_eq!(
            diagnose("127.0.0.1:9093/1: Disconnected (after 600123ms in state UP)"),
            None
        );
        let tls = diagnose(
            "127.0.0.1:9093/bootstrap: Disconnected: connection reset by peer (after 0ms in \
             state APIVERSION_QUERY)",
        )
        .unwrap();
        assert!(tls.message.contains("expects TLS"), "{tls:?}");
        assert_eq!(
            diagnose(
                "ssl://127.0.0.1:9093/bootstrap: Disconnected (after 0ms in state APIVERSION_QUERY)"
            ),
            None
        );
        assert_eq!(
            diagnose("ssl://127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed"),
            None
        );
    }
}
