//! Catching up on the simulated clock: windows of days over bounded input
//! close without stepping through every empty batch interval, and Ctrl-C or
//! SIGTERM during a long catch-up stops the query after its current batch,
//! with what it printed so far and exit code 0. The timeouts only guard
//! against a hang; nothing here asserts speed.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a run may take before the test calls it a hang.
const GUARD: Duration = Duration::from_secs(60);

/// Three CSV files of one value each: one file per batch.
fn input(dir: &Path) {
    let data = dir.join("in");
    std::fs::create_dir_all(&data).unwrap();
    for (i, v) in [1, 10, 100].iter().enumerate() {
        std::fs::write(data.join(format!("{i}.csv")), format!("v\n{v}\n")).unwrap();
    }
}

const STREAM: &str = "CREATE STREAM s WITH (connector = 'files', path = 'in', format = 'csv', max_files_per_batch = 1);";

fn quiver(dir: &Path, script: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(dir)
        .args(["--clock", "simulated", "--until-idle", "--format", "csv"])
        .args(["--start-time", "2025-12-08T00:00:00Z", "-c"])
        .arg(format!("{STREAM} {script}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` up to [`GUARD`], killing it (and failing) after.
fn wait(mut child: Child) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > GUARD {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "quiver did not end within {GUARD:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "quiver failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_thirty_day_tumbling_window_over_bounded_input_closes() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path());
    // 2025-12-08 starts an epoch-aligned 30-day window: it closes 2.6M
    // one-second batch intervals after the input ends.
    let output = wait(quiver(
        dir.path(),
        "SELECT window_start, window_end, count(*) AS n, sum(v) AS total \
         FROM TUMBLE(s, _batch_time, INTERVAL '30' DAY) GROUP BY window_start, window_end",
    ));
    assert_success(&output);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "window_start,window_end,n,total\n2025-12-08T00:00:00,2026-01-07T00:00:00,3,111\n"
    );
}

#[test]
fn a_thirty_day_hopping_window_over_bounded_input_emits_every_window() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path());
    let output = wait(quiver(
        dir.path(),
        "SELECT window_start, count(*) AS n, sum(v) AS total \
         FROM HOP(s, _batch_time, INTERVAL '1' DAY, INTERVAL '30' DAY) GROUP BY window_start",
    ));
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("window_"))
        .collect();
    // The 30 windows holding 2025-12-08, one per day, each with all 3 rows.
    assert_eq!(rows.len(), 30, "{stdout}");
    assert_eq!(rows[0], "2025-11-09T00:00:00,3,111");
    assert_eq!(rows[29], "2025-12-08T00:00:00,3,111");
    assert!(rows.iter().all(|r| r.ends_with(",3,111")), "{stdout}");
}

/// Starts a catch-up that emits a window per batch for 30 days of batches,
/// waits for some of its output, sends `signal` and checks that it stops.
fn signal_stops_a_long_catch_up(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path());
    let mut child = quiver(
        dir.path(),
        "SELECT window_start, count(*) AS n FROM HOP(s, _batch_time, INTERVAL '1' SECOND, \
         INTERVAL '30' DAY) GROUP BY window_start",
    );
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // Past the input (3 batches): the rest is closing windows.
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "output ended early"
        );
        seen.push(line);
    }
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        rest
    });
    let output = wait(child);
    let rest = reader.join().unwrap();
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stopping after the current batch") && stderr.contains("stopped after"),
        "{stderr}"
    );
    // What was printed is whole rows of windows with all 3 input rows.
    let all: Vec<String> = seen
        .into_iter()
        .chain(rest.lines().map(String::from))
        .collect();
    assert_eq!(all[0].trim_end(), "window_start,n");
    for row in &all[4..] {
        assert!(row.trim_end().ends_with(",3"), "{row:?}");
    }
}

#[test]
fn sigterm_stops_a_long_catch_up_after_the_current_batch() {
    signal_stops_a_long_catch_up("-TERM");
}

#[test]
fn ctrl_c_stops_a_long_catch_up_after_the_current_batch() {
    signal_stops_a_long_catch_up("-INT");
}
