//! What a person reads on stderr from a script: plain messages (no tracing
//! timestamps or levels unless `RUST_LOG` asks for diagnostics), counts that
//! read as numbers ("1 batch", "4,000"), and each query's closing line after
//! its last result.

use std::process::{Command, Output, Stdio};

/// Runs `script` through `sh -c "quiver ... 2>&1"`, so that stdout and stderr
/// arrive in one pipe in the order quiver wrote them.
fn run_merged(script: &str, args: &str, rust_log: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), script).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "'{}' run job.sql {args} 2>&1",
            env!("CARGO_BIN_EXE_quiver")
        ))
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG");
    if let Some(filter) = rust_log {
        cmd.env("RUST_LOG", filter);
    }
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "quiver failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

const WINDOWS: &str =
    "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', events = 4000, rate = 1000);
SELECT window_start, count(*) AS n FROM TUMBLE(bids, _batch_time, INTERVAL '1' SECOND)
GROUP BY window_start, window_end;";

#[test]
fn the_closing_line_comes_after_the_last_result_and_reads_plainly() {
    let output = run_merged(WINDOWS, "--clock simulated --until-idle", None);
    let text = String::from_utf8_lossy(&output.stdout);
    let closing = text
        .find("query_1: stopped after ")
        .unwrap_or_else(|| panic!("no closing line:\n{text}"));
    let last_table = text.rfind("+---").unwrap();
    assert!(
        closing > last_table,
        "closing line before a result:\n{text}"
    );
    let line = text[closing..].lines().next().unwrap();
    assert!(
        line.starts_with("query_1: stopped after ") && line.contains(" rows in, "),
        "{line}"
    );
    assert!(
        !text.contains(" INFO "),
        "tracing levels in user messages:\n{text}"
    );
    // tracing's lines start with an RFC 3339 timestamp.
    assert!(
        !text.lines().any(|l| l.starts_with("20")),
        "timestamps:\n{text}"
    );
}

#[test]
fn counts_are_grouped_and_agree_with_their_nouns() {
    let one = "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', events = 4000, rate = 10000);
SELECT count(*) FROM bids;";
    let output = run_merged(one, "--clock simulated --until-idle", None);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("query_1: stopped after 1 batch; "),
        "expected one batch, singular:\n{text}"
    );
    // Bids are 46 of every 50 events.
    assert!(text.contains("; 3,680 rows in, 1 row out"), "{text}");
}

#[test]
fn rust_log_keeps_diagnostics_in_tracings_format() {
    let output = run_merged(
        "CREATE STREAM lines WITH (connector = 'socket', port = 9);
SELECT line FROM lines;",
        "--max-batches 2 --batch-interval 100ms",
        Some("warn"),
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(" WARN "), "{text}");
}

/// An unreachable Kafka broker is one error naming the address and the
/// fix, not a burst of librdkafka's own connection-attempt lines.
#[test]
fn an_unreachable_kafka_broker_is_one_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args([
            "--until-idle",
            "-c",
            "CREATE STREAM k (line VARCHAR) WITH (connector = 'kafka', topic = 't', \
             'bootstrap.servers' = '127.0.0.1:1', 'group.id' = 'g', format = 'text', timeout = '2s'); \
             SELECT * FROM k;",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("no answer from bootstrap.servers '127.0.0.1:1' within 2s"),
        "{stderr}"
    );
    assert!(!stderr.contains("librdkafka"), "{stderr}");
}
