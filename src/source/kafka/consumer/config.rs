//! The librdkafka configuration of the consumer and the errors it reports,
//! worded for the user.

use super::*;

/// `properties.*` that would break quiver's offset handling.
const REFUSED_PROPERTIES: &[(&str, &str)] = &[
    (
        "enable.auto.commit",
        "quiver commits offsets itself after each batch",
    ),
    (
        "enable.auto.offset.store",
        "quiver commits offsets itself after each batch",
    ),
    (
        "auto.offset.reset",
        "use option 'scan.startup.mode'; partitions without a committed offset, and those \
         found while running, start at the earliest offset",
    ),
    ("bootstrap.servers", "use option 'bootstrap.servers'"),
    ("group.id", "use option 'group.id'"),
];

/// The librdkafka configuration: quiver's settings, then `properties.*`.
pub(super) fn client_config(opts: &KafkaOptions) -> Result<ClientConfig, SourceError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &opts.bootstrap)
        .set("group.id", &opts.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Partition EOF tells `--until-idle` a partition ending in
        // transaction markers (never delivered) was read to its end.
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        // librdkafka's own metadata refresh finds new partitions of the
        // subscribed topics (`assignment = 'group'`) as often as quiver looks.
        .set(
            "topic.metadata.refresh.interval.ms",
            opts.discovery.as_millis().min(i32::MAX as u128).to_string(),
        );
    for (name, value) in opts.properties.iter() {
        if let Some((_, why)) = REFUSED_PROPERTIES.iter().find(|(k, _)| *k == name) {
            return Err(SourceError::Runtime(format!(
                "{CONNECTOR} source: option 'properties.{name}' is not allowed: {why}"
            )));
        }
        config.set(name, value);
    }
    security::set_defaults(&mut config, &opts.properties);
    Ok(config)
}

/// Checks the configuration without contacting a broker (librdkafka's
/// `rd_kafka_conf_set` knows every property and the values of typed ones):
/// an unknown property (`properties.fetch.max.bytez`) or a bad value is an
/// error naming the option, with `properties.*` values redacted. Run at
/// CREATE STREAM, so a typo fails there, not when a query starts.
pub fn check_config(opts: &KafkaOptions) -> Result<(), SourceError> {
    security::check_files(&opts.properties)
        .map_err(|e| SourceError::Runtime(format!("{CONNECTOR} source: {e}")))?;
    match client_config(opts)?.create_native_config() {
        Ok(_) => Ok(()),
        Err(KafkaError::ClientConfig(_, description, key, _)) => {
            let option = match key.as_str() {
                "bootstrap.servers" | "group.id" => key.clone(),
                _ => format!("properties.{key}"),
            };
            Err(SourceError::Runtime(format!(
                "{CONNECTOR} source: option '{option}' is invalid: {}; see librdkafka's \
                 CONFIGURATION.md for the properties and their values",
                opts.redact(&description)
            )))
        }
        Err(e) => Err(kafka_error(opts, "invalid configuration", &e)),
    }
}

/// True for a commit the coordinator refused because the group is
/// rebalancing (or this consumer's generation just ended).
pub(super) fn is_rebalance(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
        )
    )
}

pub(super) fn kafka_error(opts: &KafkaOptions, what: &str, e: &KafkaError) -> SourceError {
    SourceError::Runtime(format!(
        "{CONNECTOR} source ({}): {what}: {}",
        opts.bootstrap,
        opts.redact(&e.to_string())
    ))
}

/// How every "the broker does not answer" error starts (see [`is_unreachable`]).
const UNREACHABLE: &str = "kafka source: no answer from bootstrap.servers";

/// True for the error of a broker that did not answer (as opposed to an
/// unknown topic, a refused option...): what `startup.retry` retries.
pub fn is_unreachable(e: &SourceError) -> bool {
    matches!(e, SourceError::Runtime(message) if message.starts_with(UNREACHABLE))
}

pub(super) fn unreachable(opts: &KafkaOptions, e: &KafkaError) -> SourceError {
    SourceError::Runtime(format!(
        "{UNREACHABLE} '{}' within {} ({}); check the address and that the broker runs, \
         raise option 'timeout', or keep retrying at start with option 'startup.retry'",
        opts.bootstrap,
        humantime::format_duration(opts.timeout),
        opts.redact(&e.to_string())
    ))
}

/// The error of a first contact that failed: a security failure (a
/// refused password, an untrusted certificate) as it is, else
/// [`unreachable`] with the security failure seen meanwhile (a TLS client
/// at a plaintext port) as its reason.
pub(super) fn no_answer(opts: &KafkaOptions, e: NoAnswer) -> SourceError {
    match e {
        NoAnswer::Security(failure) => SourceError::Runtime(format!(
            "{CONNECTOR} source ('{}'): {}",
            opts.bootstrap, failure.message
        )),
        NoAnswer::Kafka(e, None) => unreachable(opts, &e),
        NoAnswer::Kafka(_, Some(failure)) => SourceError::Runtime(format!(
            "{UNREACHABLE} '{}' within {}: {}",
            opts.bootstrap,
            humantime::format_duration(opts.timeout),
            failure.message
        )),
    }
}

pub(super) fn unknown_topic(opts: &KafkaOptions, topic: &str) -> SourceError {
    SourceError::Runtime(format!(
        "{CONNECTOR} source: topic '{topic}' does not exist on '{}'; create it or fix option 'topic'",
        opts.bootstrap
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    fn opts(extra: &[(&'static str, &'static str)]) -> KafkaOptions {
        let mut pairs = vec![
            ("topic", "t"),
            ("bootstrap.servers", "127.0.0.1:1"),
            ("group.id", "g"),
        ];
        pairs.extend_from_slice(extra);
        KafkaOptions::parse(&Options::new(pairs)).unwrap()
    }

    #[test]
    fn unknown_properties_and_bad_values_are_named_without_a_broker() {
        assert!(check_config(&opts(&[("properties.fetch.max.bytes", "1000000")])).is_ok());
        assert!(check_config(&opts(&[("properties.sasl.password", "hunter2")])).is_ok());
        let err = check_config(&opts(&[("properties.fetch.max.bytez", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("option 'properties.fetch.max.bytez'"), "{err}");
        let err = check_config(&opts(&[
            ("properties.sasl.password", "hunter2"),
            ("properties.session.timeout.ms", "hunter2"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("'properties.session.timeout.ms'"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = check_config(&opts(&[("properties.auto.offset.reset", "latest")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("scan.startup.mode"), "{err}");
    }

    /// librdkafka is built with OpenSSL and SASL: every supported protocol
    /// and mechanism makes a client (no broker needed; without OpenSSL
    /// `SASL_SSL` is refused as "OpenSSL not available at build time", and
    /// the SCRAM and OAUTHBEARER mechanisms as unsupported).
    #[test]
    fn tls_and_sasl_mechanisms_are_built_in() {
        for (protocol, mechanism) in [
            ("SSL", "PLAIN"),
            ("SASL_SSL", "PLAIN"),
            ("SASL_SSL", "SCRAM-SHA-256"),
            ("SASL_SSL", "SCRAM-SHA-512"),
            ("SASL_SSL", "OAUTHBEARER"),
            ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ] {
            let options = Options::new([
                ("topic", "t"),
                ("bootstrap.servers", "127.0.0.1:1"),
                ("group.id", "g"),
                ("properties.security.protocol", protocol),
                ("properties.sasl.mechanisms", mechanism),
                ("properties.sasl.username", "u"),
                ("properties.sasl.password", "hunter2"),
            ]);
            let opts = KafkaOptions::parse(&options).unwrap();
            check_config(&opts).unwrap();
            let consumer: Result<BaseConsumer, _> = client_config(&opts).unwrap().create();
            if let Err(e) = consumer {
                panic!("{protocol} {mechanism}: {e}");
            }
        }
        let options = Options::new([
            ("topic", "t"),
            ("bootstrap.servers", "127.0.0.1:1"),
            ("group.id", "g"),
            ("properties.security.protocol", "SASL_SSL"),
            ("properties.sasl.mechanisms", "GSSAPI"),
        ]);
        let opts = KafkaOptions::parse(&options).unwrap();
        let err = match client_config(&opts).unwrap().create::<BaseConsumer>() {
            Ok(_) => panic!("GSSAPI needs cyrus-sasl, which is not built in"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("GSSAPI") || err.contains("sasl"), "{err}");
    }
}
