//! Crash tests of `--checkpoint` with a Parquet sink: files → event-time
//! HOP aggregate → `CREATE SINK ... WITH (connector = 'parquet')`.
//!
//! `quiver run` (the binary) is killed — by `SIGKILL` at random moments
//! (from a seeded RNG: the seed is printed, `QUIVER_CRASH_SEED=<n>` replays
//! it), and at each named point of the checkpoint and sink protocols
//! (`QUIVER_CHECKPOINT_CRASH`, `QUIVER_SINK_CRASH`) — then restarted with the
//! same script and directory until it finishes. The Parquet files it leaves
//! must hold exactly the rows of an uninterrupted run: same rows per window,
//! no duplicates, no losses. Graceful stops (`SIGTERM`, `SIGINT`) must exit
//! 0 with every file finished, and a restart must carry on exactly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

/// The stream: one input file per batch, rows in overlapping windows.
const STREAM: &str = "CREATE STREAM readings (ts TIMESTAMP(3), k VARCHAR, v BIGINT,
                        WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
  WITH (connector = 'files', path = 'in', format = 'csv', max_files_per_batch = 1);
";

/// The HOP aggregate into a Parquet sink with `options`.
fn script(options: &str) -> String {
    format!(
        "{STREAM}CREATE SINK hops AS
SELECT k, count(*) AS n, sum(v) AS total, window_start, window_end
FROM TABLE(HOP(TABLE readings, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '2' SECOND))
GROUP BY k, window_start, window_end
WITH (connector = 'parquet', path = 'out'{options});
"
    )
}

/// A directory with `files` input files of 4 rows over 3 keys, and the
/// script (`hops.sql`) writing with sink `options`.
fn setup(files: usize, options: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    for i in 0..files {
        let mut body = String::from("ts,k,v\n");
        for j in 0..4 {
            let ms = (i * 1000 + j * 400) as i64;
            body += &format!(
                "1970-01-01T00:{:02}:{:02}.{:03},k{},{}\n",
                ms / 60_000,
                ms / 1000 % 60,
                ms % 1000,
                (i + j) % 3,
                i * 10 + j
            );
        }
        std::fs::write(dir.path().join(format!("in/f{i:03}.csv")), body).unwrap();
    }
    std::fs::write(dir.path().join("hops.sql"), script(options)).unwrap();
    dir
}

const FLAGS: &[&str] = &["--clock", "simulated", "--until-idle"];

fn command(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = common::quiver_in(dir);
    cmd.args(["run", "hops.sql"]).args(FLAGS);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    command(dir, args, env).output().unwrap()
}

const CHECKPOINT: &[&str] = &["--checkpoint", "ck"];

/// Every row of every visible Parquet file under `dir/out` (partition
/// directories included in the row), sorted.
fn output(dir: &Path) -> Vec<String> {
    common::parquet_rows(&dir.join("out"), dir)
}

/// Hidden in-progress files left under `dir/out`.
fn in_progress(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.join("out")];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().ends_with(".inprogress") {
                found.push(path);
            }
        }
    }
    found
}

/// The rows of an uninterrupted run without a checkpoint.
fn uninterrupted(files: usize, options: &str) -> Vec<String> {
    let dir = setup(files, options);
    let out = run(dir.path(), &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = output(dir.path());
    assert!(!rows.is_empty());
    rows
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn fresh(dir: &Path) {
    for sub in ["ck", "out"] {
        std::fs::remove_dir_all(dir.join(sub)).ok();
    }
}

/// Runs with `env`'s crash hook (which must fire), then restarts until done.
fn crash_then_resume(dir: &Path, env: &[(&str, String)], what: &str) {
    let crashed = run(dir, CHECKPOINT, env);
    assert!(!crashed.status.success(), "{what}: the hook did not fire");
    let resumed = run(dir, CHECKPOINT, &[]);
    assert!(
        resumed.status.success(),
        "{what}: restart failed: {}",
        stderr(&resumed)
    );
}

/// From a fresh start each time, crashes at each of `crashes` (the hook's
/// variable and value), resumes, and checks the output is `full` with
/// every file finished.
fn crash_each_then_resume(dir: &Path, crashes: Vec<(&str, String)>, full: &[String]) {
    for (var, crash) in crashes {
        fresh(dir);
        let what = format!("{var}={crash}");
        crash_then_resume(dir, &[(var, crash)], &what);
        assert_eq!(output(dir), full, "{what}");
        assert!(in_progress(dir).is_empty(), "{what}");
    }
}

/// One rolling file spans every batch (default `rollover_interval` of a
/// minute of batch time): a crash anywhere loses its open file, and the
/// checkpoint must re-run from its first batch.
#[test]
fn a_file_open_across_batches_survives_a_crash_at_every_point() {
    let files = 8;
    let full = uninterrupted(files, "");
    let dir = setup(files, "");
    let mut crashes = Vec::new();
    for point in [
        "after_offsets_log",
        "mid_state_write",
        "before_commit_log",
        "after_commit_log",
    ] {
        for batch in [0, 2, 5, 8] {
            crashes.push(("QUIVER_CHECKPOINT_CRASH", format!("{point}@{batch}")));
        }
    }
    for point in [
        "after_append@2",
        "after_append@5",
        "after_write",
        "after_rename",
    ] {
        crashes.push(("QUIVER_SINK_CRASH", point.to_string()));
    }
    crash_each_then_resume(dir.path(), crashes, &full);
}

/// Partitioned files rolled every 3 rows are finished while batches run:
/// a crash before, between and after their rename and commit, and at the
/// checkpoint's points around them.
#[test]
fn rolled_partition_files_survive_a_crash_at_every_sink_point() {
    let files = 10;
    let options = ", partition_by = 'k', rollover_rows = '3'";
    let full = uninterrupted(files, options);
    let dir = setup(files, options);
    let mut crashes = Vec::new();
    for point in ["after_append@4", "after_write@1", "after_write@3"] {
        crashes.push(("QUIVER_SINK_CRASH", point.to_string()));
    }
    for point in ["after_rename@1", "after_rename@4"] {
        crashes.push(("QUIVER_SINK_CRASH", point.to_string()));
    }
    for point in [
        "before_commit_log@4",
        "after_commit_log@6",
        "mid_state_write@7",
    ] {
        crashes.push(("QUIVER_CHECKPOINT_CRASH", point.to_string()));
    }
    crash_each_then_resume(dir.path(), crashes, &full);
}

/// A crash after batch 14 is committed while the file holds every batch
/// with results since the first:
/// the checkpoint still holds what re-running them needs (retention keeps
/// the offsets back to the open file's first batch).
#[test]
fn retention_keeps_what_an_open_file_needs() {
    let files = 16;
    let full = uninterrupted(files, "");
    let dir = setup(files, "");
    let crash = ("QUIVER_CHECKPOINT_CRASH", "after_commit_log@14".to_string());
    let crashed = run(dir.path(), CHECKPOINT, &[crash]);
    assert!(!crashed.status.success());
    // More than the 10 states retention keeps by default: the ones back to
    // the open file's first batch stayed.
    let states = std::fs::read_dir(dir.path().join("ck/hops/state"))
        .unwrap()
        .count();
    assert!(states > 2 * 10, "{states} state files");
    let offsets = std::fs::read_dir(dir.path().join("ck/hops/offsets"))
        .unwrap()
        .count();
    assert!(offsets > 10, "{offsets} offsets entries");
    assert!(output(dir.path()).is_empty(), "nothing finished yet");
    let inspect = common::inspect_checkpoint(dir.path());
    let shown = String::from_utf8_lossy(&inspect.stdout);
    assert!(shown.contains("sink files open since batch"), "{shown}");
    // The sink by connector and name, not its options' debug form.
    assert!(shown.contains("sinks: parquet hops)"), "{shown}");
    let resumed = run(dir.path(), CHECKPOINT, &[]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(output(dir.path()), full);
}

/// Waits for `child`, killing it after a generous hang guard.
fn wait(child: Child, what: &str) -> std::process::ExitStatus {
    common::wait_or_kill(child, Duration::from_secs(120), what)
}

/// Partitioned and rolled every 3 rows, so files are finished and renamed
/// while batches run: random `SIGKILL`s land while polling, querying,
/// writing and renaming sink files, committing and writing checkpoints.
#[test]
fn random_sigkills_leave_exactly_the_uninterrupted_output() {
    let files = 24;
    let options = ", partition_by = 'k', rollover_rows = '3'";
    let started = Instant::now();
    let full = uninterrupted(files, options);
    // How long a whole run takes here (debug build, busy machine).
    let span = started.elapsed().as_millis() as u64;
    let seed = common::crash_seed();
    eprintln!("random kills: QUIVER_CRASH_SEED={seed} (a whole run takes {span} ms)");
    let mut rng = common::Rng(seed);
    let dir = setup(files, options);
    let mut kills = 0;
    let mut sequences = 0;
    while kills < 24 {
        fresh(dir.path());
        sequences += 1;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let child = command(dir.path(), CHECKPOINT, &[])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if attempts > 12 {
                // Let the sequence finish.
                let status = wait(child, "last run");
                assert!(status.success(), "seed {seed}: the last run failed");
                break;
            }
            let mut child = child;
            let delay = rng.below(span);
            std::thread::sleep(Duration::from_millis(delay));
            if child.try_wait().unwrap().is_some() {
                let status = wait(child, "run");
                assert!(status.success(), "seed {seed}: a run failed");
                break;
            }
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
        }
        assert_eq!(
            output(dir.path()),
            full,
            "seed {seed}: sequence {sequences} differs"
        );
        assert!(in_progress(dir.path()).is_empty());
    }
    eprintln!("{kills} kills in {sequences} sequences");
}

/// Starts a run that stops only when asked (no `--until-idle`: the files
/// source waits for more files), waits until a batch was committed, sends
/// `signal`, and checks it exits 0 with every file finished.
fn stop_gracefully(dir: &Path, signal: &str) {
    let mut cmd = common::quiver_in(dir);
    cmd.args(["run", "hops.sql", "--clock", "simulated"])
        .args(CHECKPOINT)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let commits = dir.join("ck/hops/commits");
    common::wait_for_commits(&commits, 3);
    common::send_signal(child.id(), signal);
    let status = wait(child, signal);
    let stderr = lines.join().unwrap().join("\n");
    assert!(status.success(), "{signal}: {status}: {stderr}");
    assert!(
        stderr.contains("stopping after the current batch"),
        "{stderr}"
    );
    assert!(in_progress(dir).is_empty(), "{signal}: a file left open");
    // The last commit entry says every batch is durable.
    let last = std::fs::read_dir(&commits)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let entry = std::fs::read_to_string(last).unwrap();
    assert!(!entry.contains("pending_from"), "{entry}");
}

#[test]
fn sigterm_and_sigint_stop_after_a_checkpointed_batch_and_a_restart_carries_on() {
    let files = 8;
    let full = uninterrupted(files, "");
    let dir = setup(files, "");
    for signal in ["-TERM", "-INT"] {
        fresh(dir.path());
        stop_gracefully(dir.path(), signal);
        let resumed = run(dir.path(), CHECKPOINT, &[]);
        assert!(resumed.status.success(), "{}", stderr(&resumed));
        assert_eq!(output(dir.path()), full, "{signal}");
    }
}

#[test]
fn sinks_that_cannot_checkpoint_are_refused_by_name() {
    let dir = setup(2, "");
    let sql = format!(
        "{STREAM}CREATE TABLE shown (k VARCHAR, v BIGINT) WITH (connector = 'memory');
INSERT INTO shown SELECT k, v FROM readings;"
    );
    std::fs::write(dir.path().join("hops.sql"), sql).unwrap();
    let out = run(dir.path(), CHECKPOINT, &[]);
    let stderr = stderr(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("writes to a memory sink, which cannot resume from a checkpoint yet"),
        "{stderr}"
    );
}

/// `checkpoint = 'DIR'` in the sink's options checkpoints that query
/// without `--checkpoint`: crashed and restarted, it carries on exactly.
#[test]
fn a_sink_option_checkpoints_its_query_without_the_flag() {
    let files = 8;
    let full = uninterrupted(files, "");
    for options in [", checkpoint = 'own'", ""] {
        let dir = setup(files, options);
        if options.is_empty() {
            // A sink table declared with the option, filled by INSERT INTO.
            let sql = format!(
                "{STREAM}CREATE TABLE hops (k VARCHAR, n BIGINT, total BIGINT,
  window_start TIMESTAMP(3), window_end TIMESTAMP(3))
  WITH (connector = 'parquet', path = 'out', checkpoint = 'own');
INSERT INTO hops SELECT k, count(*) AS n, sum(v) AS total, window_start, window_end
FROM TABLE(HOP(TABLE readings, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '2' SECOND))
GROUP BY k, window_start, window_end;"
            );
            std::fs::write(dir.path().join("hops.sql"), sql).unwrap();
        }
        let crash = ("QUIVER_CHECKPOINT_CRASH", "after_offsets_log@5".to_string());
        let crashed = run(dir.path(), &[], &[crash]);
        assert!(
            !crashed.status.success(),
            "{options}: the hook did not fire"
        );
        assert!(dir.path().join("own/hops/commits").is_dir(), "{options}");
        let resumed = run(dir.path(), &[], &[]);
        assert!(resumed.status.success(), "{}", stderr(&resumed));
        assert_eq!(output(dir.path()), full, "{options}");
    }
}

/// A print sink under `--checkpoint` is at least once, as the console is:
/// a crash after its rows are out and before the commit log prints that
/// batch again on restart; a crash after the commit log repeats nothing;
/// nothing is ever lost.
#[test]
fn a_print_sink_resumes_at_least_once() {
    let dir = setup(8, "");
    let sql = format!(
        "{STREAM}CREATE SINK shown AS SELECT k, count(*) AS n, sum(v) AS total, window_start
FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(ts), INTERVAL '1' SECOND))
GROUP BY k, window_start WITH (connector = 'print', format = 'csv');"
    );
    std::fs::write(dir.path().join("hops.sql"), sql).unwrap();
    // Printed rows without the header each run prints, sorted.
    let rows = |outs: &[&Output]| {
        let mut rows: Vec<String> = (outs.iter())
            .flat_map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .into_owned()
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .filter(|l| l != "k,n,total,window_start")
            .collect();
        rows.sort();
        rows
    };
    let full = run(dir.path(), &[], &[]);
    assert!(full.status.success(), "{}", stderr(&full));
    let full = rows(&[&full]);
    assert!(full.len() >= 8, "{full:?}");
    for point in ["before_commit_log@r2", "after_commit_log@r2"] {
        fresh(dir.path());
        let crash = ("QUIVER_CHECKPOINT_CRASH", point.to_string());
        let crashed = run(dir.path(), CHECKPOINT, &[crash]);
        assert!(!crashed.status.success(), "{point}: the hook did not fire");
        let resumed = run(dir.path(), CHECKPOINT, &[]);
        assert!(resumed.status.success(), "{}", stderr(&resumed));
        let both = rows(&[&crashed, &resumed]);
        if point.starts_with("after") {
            assert_eq!(both, full, "{point}");
        } else {
            // The third batch with results, printed twice; nothing lost.
            assert!(both.len() > full.len(), "{point}: {both:?}");
            let mut deduped = both.clone();
            deduped.dedup();
            assert_eq!(deduped, full, "{point}");
        }
    }
}
