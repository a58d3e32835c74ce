//! Kafka over TLS and SASL without an external broker: librdkafka's mock
//! cluster behind a proxy that terminates TLS (the test CA in
//! `tests/data/tls/`) and SASL/PLAIN (`common/kafka_proxy.rs`), with the
//! mock advertising the proxy's address, so quiver's source and sink reach
//! the topics only by speaking TLS / SASL. The README's two examples
//! (SASL_SSL with PLAIN, mutual TLS) run here as round trips; wrong
//! settings (an untrusted certificate, a TLS client at a plaintext port
//! and the reverse, a wrong password, at start or revoked while the query
//! runs (source and sink), a missing CA file) fail with a
//! message naming what to fix, and no secret appears in any output.

#[path = "common/kafka_proxy.rs"]
mod kafka_proxy;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray};
use kafka_proxy::{Mock, Proxy, Security, produce, tls_file};
use quiver::{Clock, Config, Context, Output, RunLimits};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The README's password (SASL example) and key password (mTLS example).
const PASSWORD: &str = "hunter2";
const KEY_PASSWORD: &str = "client-key-secret";

/// The `sql` block after `marker` in the README's Kafka security section.
fn readme_example(marker: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("### Kafka security\n")
        .nth(1)
        .expect("README has a Kafka security section");
    section
        .split(marker)
        .nth(1)
        .and_then(|s| s.split("```sql\n").nth(1))
        .and_then(|s| s.split("```").next())
        .unwrap_or_else(|| panic!("README shows {marker}"))
        .to_string()
}

/// The README's placeholders made real: the broker is `address`, the
/// example files are the test CA's.
fn localize(example: &str, address: &str) -> String {
    example
        .replace("broker.example.com:9093", address)
        .replace("/etc/quiver/", &tls_file(""))
}

/// The `'properties.*' = '...'` lines of `example`.
fn properties_of(example: &str) -> Vec<(String, String)> {
    example
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_end_matches([',', ')', ';']);
            let (key, value) = line.split_once(" = ")?;
            let key = key.trim_matches('\'').strip_prefix("properties.")?;
            Some((key.to_string(), value.trim_matches('\'').to_string()))
        })
        .collect()
}

fn context() -> Context {
    Context::new(Config {
        batch_interval: Duration::from_millis(200),
        clock: Clock::Simulated {
            start_ms: 1_767_225_600_000,
        },
        limits: RunLimits {
            until_idle: true,
            ..RunLimits::default()
        },
        ..Config::default()
    })
}

/// Runs `script` until idle; the sink status lines, or the first error.
async fn run(ctx: &Context, script: &str) -> Result<Vec<String>, String> {
    ctx.sql(script).await.map_err(|e| e.to_string())?;
    let mut sinks = Vec::new();
    for status in ctx.background().wait_all().await {
        if let Some(e) = status.error {
            return Err(e);
        }
        sinks.push(status.sink);
    }
    Ok(sinks)
}

/// Every value of partition 0 of `topic`, read through `bootstrap` with
/// the client `properties`.
fn read_all(bootstrap: &str, properties: &[(String, String)], topic: &str) -> Vec<String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .set("enable.partition.eof", "true");
    for (k, v) in properties {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("consume: {e}"),
            Some(Ok(m)) => out.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned()),
        }
    }
    out
}

/// Six bids (`u0`..`u2`, amounts 0, 50, ..., 250) produced to `bids`.
fn produce_bids(bootstrap: &str, properties: &[(String, String)]) {
    let props: Vec<(&str, &str)> = (properties.iter())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let values: Vec<String> = (0..6)
        .map(|i| format!(r#"{{"user": "u{}", "amount": {}}}"#, i % 3, i * 50))
        .collect();
    produce(bootstrap, &props, "bids", &values);
}

/// Every cell of a statement's rows, as text.
async fn shown(ctx: &Context, statement: &str) -> String {
    let mut text = String::new();
    if let Ok(outputs) = ctx.sql(statement).await {
        for output in outputs {
            if let Output::Rows(batches) = output {
                for batch in batches {
                    for column in batch.columns() {
                        let column = datafusion::arrow::compute::cast(
                            column,
                            &datafusion::arrow::datatypes::DataType::Utf8,
                        )
                        .unwrap();
                        let strings = column.as_string::<i32>();
                        for i in 0..strings.len() {
                            text.push_str(strings.value(i));
                            text.push('\n');
                        }
                    }
                }
            }
        }
    }
    text
}

/// A mock cluster with topics `bids` and `big_bids` behind a proxy.
fn endpoint(security: Security) -> (Mock, Proxy) {
    let mock = Mock::new();
    mock.create_topic("bids", 1);
    mock.create_topic("big_bids", 1);
    let proxy = Proxy::start(&mock.address, security);
    mock.advertise(proxy.port);
    (mock, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_sasl_ssl_example_round_trips_over_tls_with_sasl_plain() {
    let (_mock, proxy) = endpoint(Security {
        tls: true,
        plain: Some(("quiver".into(), PASSWORD.into())),
        ..Security::default()
    });
    let address = proxy.address();
    // The managed cluster's certificate is publicly trusted; the test's is
    // signed by the test CA.
    let script = localize(&readme_example("SASL_SSL with PLAIN"), &address).replace(
        "'properties.security.protocol' = 'SASL_SSL',",
        &format!(
            "'properties.security.protocol' = 'SASL_SSL',\n'properties.ssl.ca.location' = '{}',",
            tls_file("ca.pem")
        ),
    );
    let mut properties = properties_of(&script);
    properties.sort();
    properties.dedup();
    produce_bids(&address, &properties);
    let ctx = context();
    let sinks = run(&ctx, &script).await.unwrap();
    let mut got = read_all(&address, &properties, "big_bids");
    got.sort();
    assert_eq!(
        got,
        [
            r#"{"user":"u0","amount":150}"#,
            r#"{"user":"u1","amount":200}"#,
            r#"{"user":"u2","amount":250}"#
        ]
    );
    assert!(proxy.stats.tls_sessions.load(Ordering::SeqCst) >= 2);
    assert!(proxy.stats.authenticated.load(Ordering::SeqCst) >= 2);
    assert_eq!(proxy.stats.refused.load(Ordering::SeqCst), 0);
    // The password is in no output.
    let mut output = sinks.join("\n");
    for statement in [
        "SHOW STREAMS",
        "SHOW QUERIES",
        "DESCRIBE bids",
        "SHOW PROGRESS big_bids",
    ] {
        output.push_str(&shown(&ctx, statement).await);
    }
    output.push_str(&shown(&ctx, "EXPLAIN SELECT user FROM bids").await);
    assert!(output.contains("bids"), "{output}");
    assert!(!output.contains(PASSWORD), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_mtls_example_round_trips_with_a_client_certificate() {
    let (_mock, proxy) = endpoint(Security {
        tls: true,
        client_cert: true,
        ..Security::default()
    });
    let address = proxy.address();
    let stream = localize(&readme_example("(mutual TLS)"), &address);
    let properties = properties_of(&stream);
    assert!(
        properties.iter().any(|(_, v)| v == KEY_PASSWORD),
        "{properties:?}"
    );
    produce_bids(&address, &properties);
    let with: Vec<String> = (properties.iter())
        .map(|(k, v)| format!("'properties.{k}' = '{v}'"))
        .collect();
    let script = format!(
        "{stream}\nCREATE SINK big_bids AS SELECT user, amount FROM bids WHERE amount >= 100 WITH \
         (connector = 'kafka', topic = 'big_bids', format = 'json', 'bootstrap.servers' = \
         '{address}', {});",
        with.join(", ")
    );
    let sinks = run(&context(), &script).await.unwrap();
    assert_eq!(read_all(&address, &properties, "big_bids").len(), 4);
    assert!(proxy.stats.tls_sessions.load(Ordering::SeqCst) >= 2);
    assert!(!sinks.join("\n").contains(KEY_PASSWORD), "{sinks:?}");
}

/// A stream `s` on `bids` at `bootstrap` with `properties` and `timeout`,
/// and a background query reading it.
fn source_script(bootstrap: &str, properties: &str, timeout: &str) -> String {
    format!(
        "CREATE STREAM s (user VARCHAR, amount BIGINT) WITH (connector = 'kafka', topic = 'bids', \
         'bootstrap.servers' = '{bootstrap}', 'group.id' = 'g', format = 'json', \
         timeout = '{timeout}' {properties}); \
         CREATE SINK q AS SELECT user FROM s WITH (connector = 'blackhole');"
    )
}

/// The error of running a query on the stream of [`source_script`].
async fn source_error(bootstrap: &str, properties: &str, timeout: &str) -> String {
    let ctx = context();
    match ctx
        .sql(&source_script(bootstrap, properties, timeout))
        .await
    {
        Err(e) => e.to_string(),
        Ok(_) => match ctx.background().wait_all().await.pop() {
            Some(status) => status.error.unwrap_or_else(|| "no error".into()),
            None => "no query".into(),
        },
    }
}

/// `, 'properties.*' = ...` for SASL/PLAIN (no TLS) as user `quiver`.
fn sasl_plain(password: &str) -> String {
    format!(
        ", 'properties.security.protocol' = 'SASL_PLAINTEXT', 'properties.sasl.mechanisms' = \
         'PLAIN', 'properties.sasl.username' = 'quiver', 'properties.sasl.password' = '{password}'"
    )
}

/// The error the first background query of `ctx` stops with (empty if none).
async fn error_when_stopped(ctx: &Context) -> String {
    let status = tokio::time::timeout(Duration::from_secs(120), ctx.background().wait_all())
        .await
        .expect("the query stops");
    status[0].error.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_at_once_naming_the_sasl_properties() {
    let (_mock, proxy) = endpoint(Security {
        plain: Some(("quiver".into(), PASSWORD.into())),
        ..Security::default()
    });
    let wrong = "not-the-password-42";
    let props = sasl_plain(wrong);
    let err = source_error(&proxy.address(), &props, "20s").await;
    assert!(err.contains("SASL authentication failed"), "{err}");
    assert!(err.contains("properties.sasl.password"), "{err}");
    assert!(err.contains("Invalid username or password"), "{err}");
    assert!(!err.contains(wrong), "{err}");
    assert!(proxy.stats.refused.load(Ordering::SeqCst) >= 1);

    // The sink: reading from a plain mock, writing through the proxy.
    let plain = Mock::new();
    plain.create_topic("bids", 1);
    produce(
        &plain.address,
        &[],
        "bids",
        &[r#"{"user": "a", "amount": 1}"#.into()],
    );
    let script = format!(
        "CREATE STREAM s (user VARCHAR, amount BIGINT) WITH (connector = 'kafka', topic = 'bids', \
         'bootstrap.servers' = '{}', 'group.id' = 'g', format = 'json'); \
         CREATE SINK out AS SELECT user, amount FROM s WITH (connector = 'kafka', topic = \
         'big_bids', format = 'json', 'bootstrap.servers' = '{}', timeout = '20s' {props});",
        plain.address,
        proxy.address()
    );
    let err = run(&context(), &script).await.unwrap_err();
    assert!(err.contains("kafka sink"), "{err}");
    assert!(err.contains("SASL authentication failed"), "{err}");
    assert!(!err.contains(wrong), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_revoked_while_the_query_runs_fails_the_source() {
    let (_mock, proxy) = endpoint(Security {
        plain: Some(("quiver".into(), PASSWORD.into())),
        ..Security::default()
    });
    let props = sasl_plain(PASSWORD);
    let ctx = Context::new(Config {
        batch_interval: Duration::from_millis(200),
        ..Config::default()
    });
    ctx.sql(&source_script(&proxy.address(), &props, "20s"))
        .await
        .unwrap();
    // Running: authenticated, and a few batches later the password is revoked.
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.stats.authenticated.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut(true);
    let err = error_when_stopped(&ctx).await;
    assert!(err.contains("SASL authentication failed"), "{err}");
    assert!(err.contains("Invalid username or password"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_revoked_while_the_query_runs_fails_the_sink() {
    let (_mock, proxy) = endpoint(Security {
        plain: Some(("quiver".into(), PASSWORD.into())),
        ..Security::default()
    });
    // The source reads a plain mock; only the sink goes through the proxy.
    let plain = Mock::new();
    plain.create_topic("bids", 1);
    let bid = |i: usize| vec![format!(r#"{{"user": "u{i}", "amount": {i}}}"#)];
    produce(&plain.address, &[], "bids", &bid(0));
    let ctx = Context::new(Config {
        batch_interval: Duration::from_millis(200),
        ..Config::default()
    });
    let script = format!(
        "CREATE STREAM s (user VARCHAR, amount BIGINT) WITH (connector = 'kafka', topic = 'bids', \
         'bootstrap.servers' = '{}', 'group.id' = 'g', format = 'json'); \
         CREATE SINK out AS SELECT user, amount FROM s WITH (connector = 'kafka', topic = \
         'big_bids', format = 'json', 'bootstrap.servers' = '{}', timeout = '3s' {});",
        plain.address,
        proxy.address(),
        sasl_plain(PASSWORD)
    );
    ctx.sql(&script).await.unwrap();
    // The first bid is delivered through the proxy; then the password is
    // revoked and more bids arrive, which the sink can no longer deliver.
    let props: Vec<(String, String)> = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanisms", "PLAIN"),
        ("sasl.username", "quiver"),
        ("sasl.password", PASSWORD),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_all(&proxy.address(), &props, "big_bids").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.cut(true);
    for i in 1..4 {
        produce(&plain.address, &[], "bids", &bid(i));
    }
    let err = error_when_stopped(&ctx).await;
    assert!(err.contains("kafka sink"), "{err}");
    assert!(err.contains("not delivered"), "{err}");
    assert!(err.contains("SASL authentication failed"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_broker_certificate_names_ssl_ca_location() {
    let (_mock, proxy) = endpoint(Security {
        tls: true,
        ..Security::default()
    });
    let props = format!(
        ", 'properties.security.protocol' = 'SSL', 'properties.ssl.ca.location' = '{}'",
        tls_file("other-ca.pem")
    );
    let err = source_error(&proxy.address(), &props, "20s").await;
    assert!(err.contains("not trusted"), "{err}");
    assert!(err.contains("properties.ssl.ca.location"), "{err}");
    assert!(err.contains("certificate verify failed"), "{err}");
    assert!(proxy.stats.tls_failures.load(Ordering::SeqCst) >= 1);
    assert_eq!(proxy.stats.tls_sessions.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_security_protocol_for_the_port_says_which_to_set() {
    let mock = Mock::new();
    mock.create_topic("bids", 1);
    let tls = ", 'properties.security.protocol' = 'SSL'";
    let err = source_error(&mock.address, tls, "3s").await;
    assert!(err.contains("does not speak TLS"), "{err}");
    assert!(err.contains("properties.security.protocol"), "{err}");

    let (_mock, proxy) = endpoint(Security {
        tls: true,
        ..Security::default()
    });
    let err = source_error(&proxy.address(), "", "3s").await;
    assert!(err.contains("expects TLS"), "{err}");
    assert!(
        err.contains("properties.security.protocol = 'SSL'"),
        "{err}"
    );

    // A client without SASL at a port that requires it.
    let (_mock, proxy) = endpoint(Security {
        plain: Some(("quiver".into(), PASSWORD.into())),
        ..Security::default()
    });
    let err = source_error(&proxy.address(), "", "3s").await;
    assert!(err.contains("requires SASL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ca_file_is_refused_at_create_naming_the_property_and_path() {
    let ctx = context();
    let err = ctx
        .sql(
            "CREATE STREAM s (user VARCHAR) WITH (connector = 'kafka', topic = 'bids', \
             'bootstrap.servers' = '127.0.0.1:1', 'group.id' = 'g', format = 'json', \
             'properties.security.protocol' = 'SSL', \
             'properties.ssl.ca.location' = '/nonexistent/ca.pem', \
             'properties.ssl.key.password' = 'k3y-pass')",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("properties.ssl.ca.location"), "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    assert!(!err.contains("k3y-pass"), "{err}");

    // The sink: when its query starts.
    let plain = Mock::new();
    plain.create_topic("bids", 1);
    produce(&plain.address, &[], "bids", &[r#"{"user": "a"}"#.into()]);
    let script = format!(
        "CREATE STREAM s (user VARCHAR) WITH (connector = 'kafka', topic = 'bids', \
         'bootstrap.servers' = '{0}', 'group.id' = 'g', format = 'json'); \
         CREATE SINK out AS SELECT user FROM s WITH (connector = 'kafka', topic = 'bids', \
         'bootstrap.servers' = '{0}', 'properties.security.protocol' = 'SSL', \
         'properties.ssl.ca.location' = '/nonexistent/ca.pem', \
         'properties.ssl.key.password' = 'k3y-pass');",
        plain.address
    );
    let err = run(&context(), &script).await.unwrap_err();
    assert!(err.contains("kafka sink"), "{err}");
    assert!(err.contains("'properties.ssl.ca.location'"), "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    assert!(!err.contains("k3y-pass"), "{err}");
}
