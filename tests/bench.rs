//! `quiver bench kafka` and `quiver bench checkpoint` at tiny sizes in a
//! debug build: the commands run end to end and print every figure they
//! promise (the numbers themselves mean nothing here; no timing is
//! asserted). `QUIVER_KAFKA_BROKER=host:port` also runs the broker part.

use std::process::{Command, Output, Stdio};

/// `quiver bench ARGS`, run to completion, stdout and stderr captured.
fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("bench")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("run quiver bench")
}

/// stdout, after checking that the command succeeded.
fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "quiver bench failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The line of `stdout` starting with `prefix`, which must hold every one of `fields`.
fn line_with<'a>(stdout: &'a str, prefix: &str, fields: &[&str]) -> &'a str {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with '{prefix}' in:\n{stdout}"));
    for field in fields {
        assert!(line.contains(field), "'{field}' missing from: {line}");
    }
    line
}

#[test]
fn bench_kafka_decodes_in_memory_and_consumes_a_mock_cluster() {
    let stdout = succeeded(&bench(&[
        "kafka",
        "--events",
        "3000",
        "--events-per-batch",
        "1000",
    ]));
    line_with(&stdout, "kafka: ", &["JSON bid messages", "3 partitions"]);
    line_with(
        &stdout,
        "in memory: decode+batch+GROUP BY",
        &["quiver", "baseline", "events/s", "ratio"],
    );
    line_with(&stdout, "mock cluster: produced", &["messages"]);
    line_with(
        &stdout,
        "mock cluster: consume+decode+GROUP BY vs raw consume",
        &["quiver", "baseline", "events/s", "ratio"],
    );
    line_with(
        &stdout,
        "mock cluster: raw StreamConsumer (async) vs raw BaseConsumer",
        &["events/s", "ratio"],
    );
    assert!(
        !stdout.contains("broker:"),
        "no broker was given:\n{stdout}"
    );
}

#[test]
fn bench_kafka_against_a_broker() {
    let Ok(broker) = std::env::var("QUIVER_KAFKA_BROKER") else {
        eprintln!("skipping: set QUIVER_KAFKA_BROKER=host:port to run against a broker");
        return;
    };
    let stdout = succeeded(&bench(&[
        "kafka",
        "--events",
        "3000",
        "--events-per-batch",
        "1000",
        "--broker",
        &broker,
    ]));
    line_with(
        &stdout,
        "broker: consume+decode+GROUP BY vs raw consume",
        &["quiver", "baseline", "events/s", "ratio"],
    );
    line_with(&stdout, "goals", &["against the broker's raw consume"]);
}

#[test]
fn bench_kafka_names_an_unreachable_broker() {
    let output = bench(&["kafka", "--events", "300", "--broker", "127.0.0.1:1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}

#[test]
fn bench_checkpoint_reports_throughput_size_and_recovery() {
    let stdout = succeeded(&bench(&[
        "checkpoint",
        "--query",
        "q5,q11",
        "--events",
        "20000",
        "--rate",
        "5000",
        "--kill-after",
        "2",
        "--state-every",
        "1,2",
    ]));
    for query in ["q5", "q11"] {
        for every in [1, 2] {
            let label = format!("{query} every {every}:");
            line_with(
                &stdout,
                &format!("{label} throughput:"),
                &["without", "with --checkpoint", "events/s", "ratio", "loss"],
            );
            line_with(
                &stdout,
                &format!("{label} size"),
                &["on disk after", "state", "logs", "per batch written"],
            );
            // Killed before batch 2: every 1 restores batch 1's state and
            // replays batch 2; every 2 restores batch 1's too (a snapshot
            // after batches 1, 3, ...) and replays batch 2 alone.
            line_with(
                &stdout,
                &format!("{label} recovery:"),
                &[
                    "killed before batch 2",
                    "after replaying 1)",
                    "fresh start",
                    "ratio",
                ],
            );
        }
    }
}

#[test]
fn bench_checkpoint_refuses_a_kill_after_the_end() {
    let output = bench(&[
        "checkpoint",
        "--query",
        "q5",
        "--events",
        "5000",
        "--rate",
        "5000",
        "--kill-after",
        "50",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--kill-after"), "{stderr}");
}
