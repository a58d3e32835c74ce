//! Crash tests of the write-ahead log (`--checkpoint` over socket and
//! stdin): the test feeds numbered records (`rec-0000`, ...) to a first
//! process, which crashes at a named point of the protocol
//! (`QUIVER_CHECKPOINT_CRASH`) or is SIGKILLed while records are still
//! arriving. What that process received is what it logged: the records in
//! its write-ahead log, plus those it printed (their entries may have been
//! pruned). A restart with the same checkpoint directory gets only the
//! other records, as a peer that resends what was not acknowledged would
//! send them. Across both runs every record must come out exactly once
//! (a crash at `before_commit_log` repeats the last printed batch on
//! stdout, as `tests/checkpoint.rs` documents: at least once there).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

mod common;

/// Records fed to the first process at most (a hang guard: it crashes long before).
const RECORDS: usize = 3_000;

fn record(i: usize) -> String {
    format!("rec-{i:04}")
}

/// A per-batch aggregate over the socket stream: each record once, with its count.
fn socket_query(port: u16) -> String {
    format!(
        "CREATE STREAM s WITH (connector = 'socket', port = {port}, format = 'text'); \
         SELECT line, count(*) AS n FROM s GROUP BY line"
    )
}

/// A windowed (processing-time) aggregate over stdin: state that must
/// survive the restart; each window's row names its records.
const STDIN_QUERY: &str = "CREATE STREAM s WITH (connector = 'stdin', format = 'text'); \
     SELECT window_start, count(*) AS n, string_agg(line, ' ') AS lines \
     FROM TUMBLE(s, _batch_time, INTERVAL '1' SECOND) GROUP BY window_start";

fn quiver(dir: &Path, sql: &str, crash: Option<&str>, stdin: Stdio, extra: &[&str]) -> Child {
    let mut cmd = common::quiver_in(dir);
    cmd.args([
        "-c",
        sql,
        "--checkpoint",
        "ck",
        "--until-idle",
        "--format",
        "csv",
    ])
    .args(["--batch-interval", "100ms"])
    .args(extra)
    .stdin(stdin)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(crash) = crash {
        cmd.env("QUIVER_CHECKPOINT_CRASH", crash);
    }
    cmd.spawn().unwrap()
}

/// Collects a child's stdout and stderr until it exits; returns
/// (result lines without the header, stderr, success).
fn finish(mut child: Child) -> (Vec<String>, String, bool) {
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).ok();
        text
    });
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).ok();
    let status = child.wait().unwrap();
    let rows = out.lines().skip(1).map(String::from).collect();
    (rows, err.join().unwrap(), status.success())
}

/// Writes records 0.. one at a time until `stop` is set, the peer is gone
/// or all are written.
fn feed(mut out: impl Write + Send + 'static, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for i in 0..RECORDS {
            if stop.load(Ordering::Acquire) || writeln!(out, "{}", record(i)).is_err() {
                return;
            }
            out.flush().ok();
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// The records a (dead) first run received. Records arrive in order and
/// the write-ahead log holds contiguous blocks of them, so that is every
/// record up to the last one in the log's entries (strings are stored as
/// they are in Arrow IPC) or in the run's output. Older entries may have
/// been pruned: their records are in the output or in the saved state.
fn received(dir: &Path, printed: &[String]) -> BTreeSet<usize> {
    let mut logged = Vec::new();
    let wal = dir.join("ck/query_1/wal/s");
    for entry in std::fs::read_dir(wal).into_iter().flatten().flatten() {
        // A temporary file (a write the kill interrupted) acknowledges nothing.
        if !entry.file_name().to_string_lossy().starts_with('.') {
            logged.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    let text = String::from_utf8_lossy(&logged);
    let printed = printed.join("\n");
    let last = (0..RECORDS)
        .rev()
        .find(|i| text.contains(&record(*i)) || printed.contains(&record(*i)));
    last.map_or_else(BTreeSet::new, |last| (0..=last).collect())
}

/// Every record in `rows` (each row's `rec-NNNN` tokens), with repeats.
fn records_in(rows: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    for row in rows {
        for token in row.split(|c: char| !(c.is_alphanumeric() || c == '-')) {
            if let Some(n) = token.strip_prefix("rec-") {
                out.push(n.parse().unwrap());
            }
        }
    }
    out
}

/// Whether the first run may have died between printing a batch and
/// logging its commit: then that batch is printed again (at least once on
/// stdout, see `tests/checkpoint.rs`). A state is written while the next
/// batch runs, so a crash in its write may fall there too.
fn may_repeat(case: &str) -> bool {
    case.starts_with("before_commit_log")
        || case.starts_with("mid_state_write")
        || case == "sigkill"
}

/// Checks that the two runs together printed records 0..total once each,
/// but for the rows the first run printed last where [`may_repeat`].
fn assert_exactly_once(case: &str, first: &[String], second: &[String], total: usize) {
    let (a, b) = (records_in(first), records_in(second));
    let both: BTreeSet<usize> = a.iter().chain(&b).copied().collect();
    assert_eq!(both, (0..total).collect(), "{case}: lost records");
    let twice: BTreeSet<usize> = b.iter().filter(|r| a.contains(r)).copied().collect();
    if may_repeat(case) {
        // Only the first run's last printed rows: its uncommitted batch.
        let last: BTreeSet<usize> = a[a.len() - twice.len()..].iter().copied().collect();
        assert_eq!(twice, last, "{case}: repeated more than the last batch");
    } else {
        assert!(twice.is_empty(), "{case}: printed twice: {twice:?}");
    }
    let mut sorted = a.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        a.len(),
        "{case}: the first run repeated records"
    );
}

/// How the first run ends.
enum Death {
    /// A named crash point, `point@batch`.
    Crash(&'static str),
    /// SIGKILL once this many records are in its write-ahead log.
    KillAfter(usize),
}

/// Accepts `child`'s connection; a child that exits first fails the test
/// (instead of hanging it).
fn accept(listener: &TcpListener, child: &mut Child) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                return conn;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .ok();
            panic!("quiver exited ({status}) before connecting: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (a hang guard only) until the first run has logged `n` records, then kills it.
fn kill_after(dir: &Path, child: &mut Child, n: usize) {
    for _ in 0..6_000 {
        if received(dir, &[]).len() >= n || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
}

impl Death {
    /// The crash point the first run is given (none: it is killed).
    fn crash(&self) -> Option<&'static str> {
        match self {
            Death::Crash(point) => Some(point),
            Death::KillAfter(_) => None,
        }
    }

    /// The case, as messages name it: the crash point or `sigkill`.
    fn case(&self) -> String {
        self.crash()
            .map_or_else(|| "sigkill".to_string(), String::from)
    }
}

/// Feeds the first run records through `input` until it dies as `death`
/// says; what it printed and the records it received (some).
fn first_run(
    dir: &Path,
    mut first: Child,
    input: impl Write + Send + 'static,
    death: &Death,
) -> (Vec<String>, BTreeSet<usize>) {
    let case = death.case();
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed(input, stop.clone());
    if let Death::KillAfter(n) = death {
        kill_after(dir, &mut first, *n);
    }
    let (printed, stderr, ok) = finish(first);
    stop.store(true, Ordering::Release);
    feeder.join().unwrap();
    assert!(!ok, "{case}: the first run did not crash: {stderr}");
    let got = received(dir, &printed);
    assert!(
        !got.is_empty(),
        "{case}: nothing was received before the crash"
    );
    (printed, got)
}

/// Writes records `0..total` but those in `got` to `out`, and closes it:
/// what a peer resends after the restart.
fn resend(mut out: impl Write, got: &BTreeSet<usize>, total: usize) {
    for i in (0..total).filter(|i| !got.contains(i)) {
        writeln!(out, "{}", record(i)).unwrap();
    }
}

fn socket_case(death: Death) {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sql = socket_query(listener.local_addr().unwrap().port());
    let case = death.case();
    let mut first = quiver(dir.path(), &sql, death.crash(), Stdio::null(), &[]);
    let conn = accept(&listener, &mut first);
    let (printed, got) = first_run(dir.path(), first, conn, &death);
    let total = got.last().unwrap() + 20;
    // The restart: the peer sends only what was not received.
    let mut second = quiver(dir.path(), &sql, None, Stdio::null(), &[]);
    resend(accept(&listener, &mut second), &got, total);
    let (again, stderr, ok) = finish(second);
    assert!(ok, "{case}: the restart failed: {stderr}");
    assert_exactly_once(&case, &printed, &again, total);
}

#[test]
fn a_socket_source_crashed_at_every_point_loses_and_repeats_nothing() {
    for point in [
        "after_wal_write@5",
        "after_offsets_log@6",
        "mid_state_write@7",
        "before_commit_log@5",
        "after_commit_log@8",
    ] {
        socket_case(Death::Crash(point));
    }
}

#[test]
fn a_socket_source_killed_while_receiving_loses_and_repeats_nothing() {
    // "Random" moments, spread without a random number generator.
    let seed = std::process::id() as usize;
    for k in 0..3 {
        socket_case(Death::KillAfter(5 + (seed * (k + 7)) % 60));
    }
}

fn stdin_case(death: Death, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let case = death.case();
    let mut first = quiver(
        dir.path(),
        STDIN_QUERY,
        death.crash(),
        Stdio::piped(),
        extra,
    );
    let input = first.stdin.take().unwrap();
    let (printed, got) = first_run(dir.path(), first, input, &death);
    let total = got.last().unwrap() + 20;
    let mut second = quiver(dir.path(), STDIN_QUERY, None, Stdio::piped(), extra);
    resend(second.stdin.take().unwrap(), &got, total);
    let (again, stderr, ok) = finish(second);
    assert!(ok, "{case}: the restart failed: {stderr}");
    assert_exactly_once(&case, &printed, &again, total);
    // Windows are the state: each closes once, and the counts add up.
    let rows = [printed, again].concat();
    let windows: Vec<&str> = rows.iter().map(|r| r.split(',').next().unwrap()).collect();
    let distinct: BTreeSet<&&str> = windows.iter().collect();
    if !may_repeat(&case) {
        assert_eq!(
            distinct.len(),
            windows.len(),
            "{case}: a window twice: {rows:?}"
        );
    }
}

#[test]
fn a_stdin_source_crashed_or_killed_loses_and_repeats_nothing() {
    for point in [
        "after_wal_write@4",
        "after_offsets_log@12",
        "after_commit_log@9",
    ] {
        stdin_case(Death::Crash(point), &[]);
    }
    stdin_case(Death::KillAfter(40 + std::process::id() as usize % 40), &[]);
    // A state every third batch: the batches since are replayed from the log.
    let every_third = ["--checkpoint-interval", "3"];
    stdin_case(Death::Crash("after_offsets_log@8"), &every_third);
    stdin_case(Death::KillAfter(150), &every_third);
}

/// Runs the stdin query fed records until it crashes at `point`; whether
/// it succeeded instead.
fn fed_until_crash(dir: &Path, point: &str) -> bool {
    let mut first = quiver(dir, STDIN_QUERY, Some(point), Stdio::piped(), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed(first.stdin.take().unwrap(), stop.clone());
    let (_, _, ok) = finish(first);
    stop.store(true, Ordering::Release);
    feeder.join().unwrap();
    ok
}

#[test]
fn inspect_shows_the_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let ok = fed_until_crash(dir.path(), "after_wal_write@3");
    assert!(!ok);
    let out = common::inspect_checkpoint(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = BufReader::new(stdout.as_bytes())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("write-ahead log:"));
    let line = line.unwrap_or_else(|| panic!("no write-ahead log line: {stdout}"));
    assert!(
        line.contains(" entries, ") && line.ends_with(" bytes"),
        "{line}"
    );
}

#[test]
fn a_corrupted_entry_stops_the_restart_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ok = fed_until_crash(dir.path(), "after_wal_write@4");
    assert!(!ok, "the hook did not fire");
    // Damage every entry: the restart needs the last one (logged, not run).
    let wal = dir.path().join("ck/query_1/wal/s");
    let mut damaged = 0;
    for entry in std::fs::read_dir(&wal).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        std::fs::write(entry.path(), &bytes[..bytes.len() - 7]).unwrap();
        damaged += 1;
    }
    assert!(damaged > 0, "nothing was logged");
    let second = quiver(dir.path(), STDIN_QUERY, None, Stdio::null(), &[]);
    let (rows, stderr, ok) = finish(second);
    assert!(!ok, "a damaged log must not be skipped: {rows:?}");
    assert!(stderr.contains(".arrow' is corrupted"), "{stderr}");
    assert!(stderr.contains("--checkpoint-reset"), "{stderr}");
}
