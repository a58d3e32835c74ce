//! Tests of the kafka source's options: defaults, startup modes, topics and
//! patterns, dead letters, properties and their redaction.

use super::*;

fn base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("topic", "a, b"),
        ("bootstrap.servers", "127.0.0.1:9092"),
        ("group.id", "g"),
    ]
}

fn parse(extra: &[(&'static str, &'static str)]) -> Result<KafkaOptions, SourceError> {
    let mut pairs = base();
    pairs.extend_from_slice(extra);
    KafkaOptions::parse(&Options::new(pairs))
}

#[test]
fn defaults_and_topic_list() {
    let opts = parse(&[]).unwrap();
    assert!(matches!(&opts.topics, Topics::Named(t) if t == &["a", "b"]));
    assert_eq!(opts.discovery, DEFAULT_DISCOVERY);
    assert_eq!(opts.startup, StartupMode::GroupOffsets);
    assert_eq!(opts.max_records, DEFAULT_MAX_RECORDS);
    assert_eq!(opts.format_name(), "text");
}

#[test]
fn startup_modes_and_timestamp() {
    let mode = |m: &'static str| parse(&[("scan.startup.mode", m)]).map(|o| o.startup);
    assert_eq!(mode("earliest").unwrap(), StartupMode::Earliest);
    assert_eq!(mode("latest").unwrap(), StartupMode::Latest);
    assert!(
        mode("timestamp")
            .unwrap_err()
            .to_string()
            .contains("timestamp-millis")
    );
    let ts = parse(&[
        ("scan.startup.mode", "timestamp"),
        ("scan.startup.timestamp-millis", "1700000000000"),
    ])
    .unwrap();
    assert_eq!(ts.startup, StartupMode::Timestamp(1_700_000_000_000));
    let err = mode("newest").unwrap_err().to_string();
    assert!(err.contains("'earliest'"), "{err}");
}

#[test]
fn assignment_is_all_or_group_and_group_needs_group_offsets() {
    assert_eq!(parse(&[]).unwrap().assignment, Assignment::All);
    let group = parse(&[("assignment", "group")]).unwrap();
    assert_eq!(group.assignment, Assignment::Group);
    let err = parse(&[("assignment", "some")]).unwrap_err().to_string();
    assert!(err.contains("'group'"), "{err}");
    let err = parse(&[("assignment", "group"), ("scan.startup.mode", "earliest")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("group-offsets"), "{err}");
}

#[test]
fn max_rate_bounds_a_batch_by_its_interval() {
    assert_eq!(parse(&[]).unwrap().batch_bound(1_000), DEFAULT_MAX_RECORDS);
    let rate = parse(&[("max_rate", "20")]).unwrap();
    assert_eq!(rate.batch_bound(1_000), 20);
    assert_eq!(rate.batch_bound(500), 10);
    assert_eq!(rate.batch_bound(1), 1);
    let both = parse(&[("max_rate", "1000"), ("max_records_per_batch", "30")]).unwrap();
    assert_eq!(both.batch_bound(1_000), 30);
    let err = parse(&[("max_rate", "0")]).unwrap_err().to_string();
    assert!(err.contains("at least 1"), "{err}");
}

#[test]
fn unknown_option_is_refused_but_properties_pass() {
    let err = parse(&[("grup.id", "x")]).unwrap_err().to_string();
    assert!(
        err.contains("unknown option 'grup.id' for connector 'kafka'"),
        "{err}"
    );
    let opts = parse(&[("properties.fetch.min.bytes", "1")]).unwrap();
    assert_eq!(
        opts.properties.iter().collect::<Vec<_>>(),
        [("fetch.min.bytes", "1")]
    );
}

#[test]
fn property_values_are_never_shown() {
    let opts = parse(&[("properties.sasl.password", "hunter2")]).unwrap();
    assert!(!format!("{opts:?}").contains("hunter2"));
    assert_eq!(
        opts.redact("Invalid value \"hunter2\" for property"),
        "Invalid value \"***\" for property"
    );
}

#[test]
fn topic_pattern_matches_whole_names_and_excludes_topic() {
    let pattern = |p: &'static str| {
        KafkaOptions::parse(&Options::new([
            ("topic-pattern", p),
            ("bootstrap.servers", "b:1"),
            ("group.id", "g"),
        ]))
    };
    let topics = pattern("^bids-.*").unwrap().topics;
    assert!(topics.matches("bids-eu") && !topics.matches("old-bids-eu"));
    let topics = pattern("bids|asks").unwrap().topics;
    assert!(topics.matches("asks") && !topics.matches("asks2"));
    assert!(!pattern(".*").unwrap().topics.matches("__consumer_offsets"));
    let err = pattern("bids-(").unwrap_err().to_string();
    assert!(
        err.contains("'topic-pattern'") && err.contains("regular expression"),
        "{err}"
    );
    let err = parse(&[("topic-pattern", "x")]).unwrap_err().to_string();
    assert!(err.contains("not both"), "{err}");
    let err = KafkaOptions::parse(&Options::new([
        ("bootstrap.servers", "b:1"),
        ("group.id", "g"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(err.contains("topic-pattern"), "{err}");
}

#[test]
fn dead_letter_needs_exactly_one_target() {
    let topic = parse(&[("on_error", "dead_letter"), ("dead_letter.topic", "dlq")]).unwrap();
    assert_eq!(
        topic.dead_letter,
        Some(DeadLetterTarget::Topic("dlq".into()))
    );
    let ValueFormat::Decoded(format) = &topic.format else {
        panic!("text format");
    };
    assert_eq!(format.on_error, crate::format::OnError::Skip);
    let file = parse(&[("on_error", "dead_letter"), ("dead_letter.path", "/t/x")]).unwrap();
    assert_eq!(
        file.dead_letter,
        Some(DeadLetterTarget::File("/t/x".into()))
    );
    let err = parse(&[("on_error", "dead_letter")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dead_letter.topic") && err.contains("dead_letter.path"),
        "{err}"
    );
    let err = parse(&[
        ("on_error", "dead_letter"),
        ("dead_letter.topic", "dlq"),
        ("dead_letter.path", "/t/x"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("not both"), "{err}");
    let err = parse(&[("dead_letter.topic", "dlq")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'dead_letter.topic'") && err.contains("on_error"),
        "{err}"
    );
    assert_eq!(parse(&[]).unwrap().dead_letter, None);
}

#[test]
fn missing_required_options_are_named() {
    let err = KafkaOptions::parse(&Options::new([("topic", "t")])).unwrap_err();
    assert!(err.to_string().contains("'bootstrap.servers'"), "{err}");
    let err = parse(&[("max_records_per_batch", "0")]).unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    let err = parse(&[("format", "raw"), ("header", "true")]).unwrap_err();
    assert!(err.to_string().contains("'raw'"), "{err}");
    let err = parse(&[("format", "protobuf")]).unwrap_err();
    assert!(err.to_string().contains("text, avro, raw"), "{err}");
    let err = parse(&[("format", "json"), ("avro.schema", "{}")]).unwrap_err();
    assert!(
        err.to_string().contains("only used with format = 'avro'"),
        "{err}"
    );
}
