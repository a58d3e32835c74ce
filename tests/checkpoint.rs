//! Crash tests of `--checkpoint`: the README's Recovery query (files →
//! event-time HOP aggregate → stdout CSV) and a Nexmark query, aborted at
//! each named point of the protocol (`QUIVER_CHECKPOINT_CRASH`), restarted
//! with the same checkpoint directory; what a user sees across both runs
//! must be what one uninterrupted run prints.

use std::path::Path;
use std::process::Output;

mod common;

const FLAGS: &[&str] = &["--clock", "simulated", "--until-idle", "--format", "csv"];

/// The SQL of the README's Recovery section.
fn readme_query() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("## Recovery").expect("README has Recovery")..];
    let sql = section.split("```sql\n").nth(1).unwrap();
    sql.split("```").next().unwrap().to_string()
}

/// A directory with the README's script and six input files whose rows
/// span overlapping windows.
fn files_setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    for i in 0..6 {
        let mut body = String::from("ts,k,v\n");
        for j in 0..3 {
            body += &format!(
                "1970-01-01T00:00:0{}.500,k{},{}\n",
                i + j,
                j % 2,
                i * 10 + j
            );
        }
        std::fs::write(dir.path().join(format!("in/f{i}.csv")), body).unwrap();
    }
    std::fs::write(dir.path().join("recovery.sql"), readme_query()).unwrap();
    dir
}

/// Runs quiver in `dir` with `args` and [`FLAGS`], crashing at `crash`.
fn quiver(dir: &Path, args: &[&str], crash: Option<&str>) -> Output {
    common::run_quiver(dir, &[args, FLAGS].concat(), crash)
}

/// Result lines of a CSV run, without its header.
fn rows(out: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().skip(1).map(String::from).collect()
}

/// Runs `args` crashing at `crash`, then again; returns both runs' rows.
fn crash_and_resume(dir: &Path, args: &[&str], crash: &str) -> (Vec<String>, Vec<String>) {
    let first = quiver(dir, args, Some(crash));
    assert!(!first.status.success(), "{crash}: the hook did not fire");
    let second = quiver(dir, args, None);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{crash}: restart failed: {stderr}");
    (rows(&first), rows(&second))
}

const POINTS: &[&str] = &["after_offsets_log", "mid_state_write", "after_commit_log"];

#[test]
fn files_hop_resumes_exactly_after_a_crash_at_every_point() {
    let dir = files_setup();
    let full = rows(&quiver(dir.path(), &["run", "recovery.sql"], None));
    assert_eq!(full.len(), 16, "{full:?}");
    let args = ["run", "recovery.sql", "--checkpoint", "ck"];
    // Batches 0-5 read a file each; batch 6 closes the last windows.
    for point in POINTS {
        for batch in [0, 1, 3, 5, 6] {
            std::fs::remove_dir_all(dir.path().join("ck")).ok();
            let crash = format!("{point}@{batch}");
            let (before, after) = crash_and_resume(dir.path(), &args, &crash);
            if *point == "mid_state_write" {
                // The state is written while the next batch runs and is
                // printed: the abort may fall after a batch was printed and
                // before its commit was logged, which repeats that batch.
                assert_resumed_at_least_once(&full, &before, &after, &crash);
            } else {
                assert_eq!([before, after].concat(), full, "{crash}");
            }
        }
    }
}

/// `before` (a crashed run's rows) then `after` (the restart's) are `full`,
/// except that the restart may first repeat the last rows `before` printed
/// (a batch printed but not committed: the console is at least once).
fn assert_resumed_at_least_once(full: &[String], before: &[String], after: &[String], crash: &str) {
    let overlap = before.len() + after.len() - full.len();
    assert_eq!(before, &full[..before.len()], "{crash}");
    assert_eq!(
        after[..overlap],
        before[before.len() - overlap..],
        "{crash}"
    );
    assert_eq!(after[overlap..], full[before.len()..], "{crash}");
}

#[test]
fn with_a_state_every_third_batch_the_batches_since_are_replayed() {
    let dir = files_setup();
    let full = rows(&quiver(dir.path(), &["run", "recovery.sql"], None));
    let args = [
        "run",
        "recovery.sql",
        "--checkpoint",
        "ck",
        "--checkpoint-interval",
        "3",
    ];
    for crash in [
        "after_offsets_log@4",
        "after_commit_log@4",
        "mid_state_write@5",
    ] {
        std::fs::remove_dir_all(dir.path().join("ck")).ok();
        let (before, after) = crash_and_resume(dir.path(), &args, crash);
        if crash.starts_with("mid_state_write") {
            assert_resumed_at_least_once(&full, &before, &after, crash);
        } else {
            assert_eq!([before, after].concat(), full, "{crash}");
        }
    }
}

#[test]
fn a_crash_between_printing_and_the_commit_log_repeats_that_batch_only() {
    let dir = files_setup();
    let full = rows(&quiver(dir.path(), &["run", "recovery.sql"], None));
    let args = ["run", "recovery.sql", "--checkpoint", "ck"];
    for batch in [1, 4, 6] {
        std::fs::remove_dir_all(dir.path().join("ck")).ok();
        let crash = format!("before_commit_log@{batch}");
        let (before, after) = crash_and_resume(dir.path(), &args, &crash);
        // The first run printed a prefix of the output; the restart repeats
        // the last batch it printed (`overlap` rows), then carries on.
        assert!(
            before.len() + after.len() > full.len(),
            "{crash}: nothing repeated"
        );
        assert_resumed_at_least_once(&full, &before, &after, &crash);
    }
}

#[test]
fn a_corrupted_state_falls_back_to_the_previous_one_end_to_end() {
    let dir = files_setup();
    let full = rows(&quiver(dir.path(), &["run", "recovery.sql"], None));
    let args = ["run", "recovery.sql", "--checkpoint", "ck"];
    let first = quiver(dir.path(), &args, Some("after_offsets_log@4"));
    // Damage the newest state (batch 3's, or batch 2's when the crash came
    // while batch 3's was still being written, off the query's path).
    let states = dir.path().join("ck/query_1/state");
    let mut written: Vec<_> = std::fs::read_dir(&states)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "arrow"))
        .collect();
    written.sort();
    assert!(written.len() >= 2, "{written:?}");
    let arrow = written.pop().unwrap();
    let bytes = std::fs::read(&arrow).unwrap();
    std::fs::write(&arrow, &bytes[..bytes.len() / 2]).unwrap();
    let second = quiver(dir.path(), &args, None);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    let name = arrow.file_name().unwrap().to_string_lossy();
    assert!(
        stderr.contains(&format!("{name}' is corrupted")),
        "{stderr}"
    );
    assert_eq!([rows(&first), rows(&second)].concat(), full);
}

#[test]
fn a_changed_query_is_refused_until_reset() {
    let dir = files_setup();
    let args = ["run", "recovery.sql", "--checkpoint", "ck"];
    assert!(quiver(dir.path(), &args, None).status.success());
    let changed = readme_query().replace("sum(v)", "max(v)");
    std::fs::write(dir.path().join("recovery.sql"), changed).unwrap();
    let refused = quiver(dir.path(), &args, None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("query changed"), "{stderr}");
    assert!(stderr.contains("--checkpoint-reset"), "{stderr}");
    let mut reset = args.to_vec();
    reset.push("--checkpoint-reset");
    let again = quiver(dir.path(), &reset, None);
    assert!(again.status.success());
    assert_eq!(rows(&again).len(), 16, "started over");
}

#[test]
fn inspect_shows_the_last_committed_batch_and_offsets() {
    let dir = files_setup();
    let args = ["run", "recovery.sql", "--checkpoint", "ck"];
    quiver(dir.path(), &args, Some("after_offsets_log@3"));
    let out = common::inspect_checkpoint(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("last committed batch: 2"), "{stdout}");
    assert!(
        stdout.contains("last logged batch: 3 (not committed"),
        "{stdout}"
    );
    assert!(stdout.contains(": f2.csv..f3.csv"), "{stdout}");
    assert!(stdout.contains("state: after batch 2"), "{stdout}");
}

#[test]
fn inspect_after_the_end_of_input_says_so_instead_of_a_number() {
    let dir = files_setup();
    let args = ["run", "recovery.sql", "--checkpoint", "ck"];
    assert!(quiver(dir.path(), &args, None).status.success());
    let out = common::inspect_checkpoint(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("watermark end of input"), "{stdout}");
    assert!(!stdout.contains(&i64::MAX.to_string()), "{stdout}");
}

#[test]
fn nexmark_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let sql = "CREATE STREAM bids (WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '1' SECOND) \
               WITH (connector = 'nexmark', kind = 'bid', rate = 500, events = 3000); \
               SELECT auction, count(*) AS n, window_start \
               FROM TABLE(HOP(TABLE bids, DESCRIPTOR(`dateTime`), INTERVAL '1' SECOND, \
               INTERVAL '2' SECOND)) GROUP BY auction, window_start";
    let mut full = rows(&quiver(dir.path(), &["-c", sql], None));
    full.sort();
    assert!(full.len() > 10, "{full:?}");
    for crash in [
        "after_offsets_log@2",
        "mid_state_write@4",
        "after_commit_log@1",
    ] {
        std::fs::remove_dir_all(dir.path().join("ck")).ok();
        let args = ["-c", sql, "--checkpoint", "ck"];
        let (before, after) = crash_and_resume(dir.path(), &args, crash);
        let mut both = [before, after].concat();
        both.sort();
        if crash.starts_with("mid_state_write") {
            // The state is written while the next batch is printed: the
            // crash may repeat that batch (each row is one window, so the
            // repeats are equal rows).
            both.dedup();
        }
        assert_eq!(both, full, "{crash}");
    }
}

#[test]
fn sources_that_cannot_resume_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    let sql = "CREATE STREAM s (ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
               WITH (connector = 'files', path = 'in', format = 'csv', late_policy = 'side'); \
               SELECT * FROM s_late";
    let out = quiver(dir.path(), &["-c", sql, "--checkpoint", "ck"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the late connector cannot resume from a checkpoint yet"),
        "{stderr}"
    );
}

/// SIGTERM (or Ctrl-C) while a checkpointed query waits for more files:
/// it finishes the batch, logs its commit and exits 0; a restart prints
/// the rest, and both runs together print what one run prints.
#[test]
fn a_graceful_stop_commits_its_last_batch_and_a_restart_carries_on() {
    use std::process::Stdio;
    let dir = files_setup();
    let full = rows(&quiver(dir.path(), &["run", "recovery.sql"], None));
    for signal in ["-TERM", "-INT"] {
        std::fs::remove_dir_all(dir.path().join("ck")).ok();
        // No --until-idle: the query waits for more files until stopped.
        let child = common::quiver_in(dir.path())
            .args(["run", "recovery.sql", "--checkpoint", "ck"])
            .args(["--clock", "simulated", "--format", "csv"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        common::wait_for_commits(&dir.path().join("ck/query_1/commits"), 8);
        common::send_signal(child.id(), signal);
        let stopped = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&stopped.stderr);
        assert!(stopped.status.success(), "{signal}: {stderr}");
        assert!(
            stderr.contains("stopping after the current batch"),
            "{stderr}"
        );
        let args = ["run", "recovery.sql", "--checkpoint", "ck"];
        let resumed = quiver(dir.path(), &args, None);
        assert!(resumed.status.success());
        let before = rows(&stopped);
        assert!(
            before.len() < full.len(),
            "{signal}: the windows at the end of input are open"
        );
        assert_eq!([before, rows(&resumed)].concat(), full, "{signal}");
    }
}
