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
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    for (name, value) in opts.properties.iter() {
        if let Some((_, why)) = REFUSED_PROPERTIES.iter().find(|(k, _)| *k == name) {
            return Err(SourceError::Runtime(format!(
                "{CONNECTOR} source: option 'properties.{name}' is not allowed: {why}"
            )));
        }
        config.set(name, value);
    }
    Ok(config)
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

pub(super) fn unreachable(opts: &KafkaOptions, e: &KafkaError) -> SourceError {
    SourceError::Runtime(format!(
        "{CONNECTOR} source: no answer from bootstrap.servers '{}' within {} ({}); \
         check the address and that the broker runs, or raise option 'timeout'",
        opts.bootstrap,
        humantime::format_duration(opts.timeout),
        opts.redact(&e.to_string())
    ))
}

pub(super) fn unknown_topic(opts: &KafkaOptions, topic: &str) -> SourceError {
    SourceError::Runtime(format!(
        "{CONNECTOR} source: topic '{topic}' does not exist on '{}'; create it or fix option 'topic'",
        opts.bootstrap
    ))
}
