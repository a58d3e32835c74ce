//! Crash tests of `--checkpoint` over the kafka source, on librdkafka's
//! mock cluster (kept alive by this process; `quiver run` connects to it):
//! an event-time TUMBLE count over a 3-partition topic, aborted at each
//! named point of the protocol (`QUIVER_CHECKPOINT_CRASH`) and restarted
//! with the same checkpoint directory. The two runs print together what one
//! uninterrupted run prints, and the group's committed offsets end at the
//! partition ends. The stream starts at `earliest`, so a restart that took
//! its offsets from anywhere but the checkpoint would read everything again.

use std::path::Path;
use std::process::Output;

mod common;

use common::kafka::{PARTITIONS, READINGS, READINGS_PER_PARTITION, committed, readings_cluster};

const FLAGS: &[&str] = &["--clock", "simulated", "--until-idle", "--format", "csv"];

/// The script: a 1 s TUMBLE count per key over the topic, read from the
/// earliest offsets by `group`, at most 25 messages a batch.
fn script(bootstrap: &str, group: &str) -> String {
    format!(
        "CREATE STREAM readings (ts TIMESTAMP(3), k VARCHAR, v BIGINT, \
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH (connector = 'kafka', topic = '{READINGS}', 'bootstrap.servers' = '{bootstrap}', \
           'group.id' = '{group}', format = 'json', 'scan.startup.mode' = 'earliest', \
           timeout = '5s', max_records_per_batch = 25);\n\
         SELECT k, count(*) AS n, sum(v) AS total, window_start \
         FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
         GROUP BY k, window_start;\n"
    )
}

/// Runs quiver in `dir` with `args` and [`FLAGS`], crashing at `crash`.
fn quiver(dir: &Path, args: &[&str], crash: Option<&str>) -> Output {
    common::run_quiver(dir, &[args, FLAGS].concat(), crash)
}

/// Result lines of a CSV run, without its header, sorted (rows of one
/// batch come in no fixed order).
fn rows(out: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows: Vec<String> = text.lines().skip(1).map(String::from).collect();
    rows.sort();
    rows
}

/// Runs the script of `group` crashing at `crash`, then again with the
/// same checkpoint; returns both runs' rows, sorted together.
fn crash_and_resume(dir: &Path, bootstrap: &str, group: &str, crash: &str) -> Vec<String> {
    let file = format!("{group}.sql");
    std::fs::write(dir.join(&file), script(bootstrap, group)).unwrap();
    let ck = format!("ck-{group}");
    let args = ["run", file.as_str(), "--checkpoint", ck.as_str()];
    let first = quiver(dir, &args, Some(crash));
    assert!(
        !first.status.success(),
        "{crash}: the hook did not fire: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = quiver(dir, &args, None);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{crash}: restart failed: {stderr}");
    let mut both = [rows(&first), rows(&second)].concat();
    both.sort();
    both
}

#[test]
fn kafka_resumes_from_the_checkpoint_offsets_after_a_crash_at_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = readings_cluster();
    let bootstrap = cluster.bootstrap_servers();
    std::fs::write(dir.path().join("full.sql"), script(&bootstrap, "full")).unwrap();
    let full = rows(&quiver(dir.path(), &["run", "full.sql"], None));
    // 4 s of readings, 3 keys: 12 windows.
    assert_eq!(full.len(), 12, "{full:?}");
    let ends = vec![READINGS_PER_PARTITION; PARTITIONS as usize];
    assert_eq!(committed(&bootstrap, READINGS, "full"), ends);
    // 120 messages, at most 25 a batch: at least 5 batches read input.
    let points = ["after_offsets_log", "mid_state_write", "after_commit_log"];
    for (i, point) in points.iter().enumerate() {
        for batch in [0, 2, 4] {
            let group = format!("g{i}-{batch}");
            let crash = format!("{point}@{batch}");
            let mut both = crash_and_resume(dir.path(), &bootstrap, &group, &crash);
            if *point == "mid_state_write" {
                // The state is written while the next batch runs and is
                // printed: the crash may repeat a printed, uncommitted
                // batch (the console is at least once).
                both.dedup();
            }
            assert_eq!(both, full, "{crash}");
            assert_eq!(committed(&bootstrap, READINGS, &group), ends, "{crash}");
        }
    }
}

#[test]
fn kafka_crash_between_printing_and_the_commit_log_repeats_one_batch_only() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = readings_cluster();
    let bootstrap = cluster.bootstrap_servers();
    std::fs::write(dir.path().join("full.sql"), script(&bootstrap, "full")).unwrap();
    let full = rows(&quiver(dir.path(), &["run", "full.sql"], None));
    let both = crash_and_resume(dir.path(), &bootstrap, "b", "before_commit_log@3");
    // At least once: every row of the full run, possibly one batch's twice.
    let mut deduped = both.clone();
    deduped.dedup();
    assert_eq!(deduped, full);
    assert_eq!(
        committed(&bootstrap, READINGS, "b"),
        vec![READINGS_PER_PARTITION; 3]
    );
}
