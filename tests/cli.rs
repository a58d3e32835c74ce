//! End-to-end tests of the `quiver` binary: the socket and stdin sources
//! against real peers, very long expressions, Ctrl-C, background queries
//! and output discipline (data on stdout, messages on stderr). The example
//! scripts in `sql/` and the README's examples: tests/cli_examples.rs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::cli::{TIMEOUT, assert_success, quiver, wait};

fn sql_example(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql").join(name)).unwrap()
}

/// Sums the `n` column of CSV output per word (batches may split differently).
fn word_totals(csv: &str) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for line in csv.lines().filter(|l| !l.starts_with("word,")) {
        let mut fields = line.split(',');
        let (word, n) = (fields.next().unwrap(), fields.next().unwrap());
        *totals.entry(word.to_string()).or_default() += n.parse::<u64>().unwrap();
    }
    totals
}

/// Starts quiver on `script`, serves `lines` to its socket source, closes the
/// connection and returns quiver's output (it stops: --until-idle).
fn socket_run(script: &str, lines: &str, args: &[&str]) -> Output {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = script.replace("9999", &port.to_string());
    let child = quiver()
        .args(["--until-idle", "--format", "csv"])
        .args(args)
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let mut child = child;
    let mut peer = accept(&listener, &mut child);
    peer.write_all(lines.as_bytes()).unwrap();
    drop(peer);
    wait(child)
}

/// Accepts quiver's connection, failing (not hanging) if quiver exits first.
fn accept(listener: &TcpListener, child: &mut Child) -> std::net::TcpStream {
    listener.set_nonblocking(true).unwrap();
    let started = Instant::now();
    loop {
        match listener.accept() {
            Ok((peer, _)) => {
                peer.set_nonblocking(false).unwrap();
                return peer;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait().unwrap() {
                    let mut stderr = String::new();
                    child
                        .stderr
                        .take()
                        .unwrap()
                        .read_to_string(&mut stderr)
                        .unwrap();
                    panic!("quiver exited ({status}) before connecting:\n{stderr}");
                }
                assert!(started.elapsed() < TIMEOUT, "quiver never connected");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn socket_word_count_counts_every_word_once() {
    let output = socket_run(
        &sql_example("wordcount.sql"),
        "hello world\nhello quiver\n\nworld  hello\n",
        &["--batch-interval", "100ms"],
    );
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("word,n\n"), "{stdout}");
    let totals = word_totals(&stdout);
    assert_eq!(
        totals,
        BTreeMap::from([
            ("hello".into(), 3),
            ("quiver".into(), 1),
            ("world".into(), 2)
        ])
    );
}

#[test]
fn socket_windowed_word_count_counts_each_batch_in_three_windows() {
    let output = socket_run(
        &sql_example("windowed_wordcount.sql"),
        "a b a\nc\n",
        &["--clock", "simulated"],
    );
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // size 30 s / slide 10 s: every batch belongs to three windows.
    assert_eq!(
        word_totals(&stdout),
        BTreeMap::from([("a".into(), 6), ("b".into(), 3), ("c".into(), 3)])
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("a,2,")).count(),
        3,
        "{stdout}"
    );
}

#[test]
fn socket_source_retries_until_the_listener_is_up() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let script = sql_example("wordcount.sql").replace("9999", &port.to_string());
    let mut child = quiver()
        .args([
            "--until-idle",
            "--format",
            "csv",
            "--batch-interval",
            "100ms",
            "-c",
            &script,
        ])
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("cannot connect") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "quiver ended before reporting the refused connection"
        );
    }
    assert!(
        line.contains(&format!("127.0.0.1:{port}")) && line.contains("retrying"),
        "{line}"
    );
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut peer = accept(&listener, &mut child);
    peer.write_all(b"late hello\n").unwrap();
    drop(peer);
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let output = wait(child);
    assert!(output.status.success());
    assert_eq!(
        word_totals(&String::from_utf8_lossy(&output.stdout)).get("late"),
        Some(&1)
    );
}

#[test]
fn stdin_stream_reads_ndjson_until_end_of_input() {
    let mut child = quiver()
        .args(["--until-idle", "--clock", "simulated", "--format", "csv", "-c"])
        .arg("CREATE STREAM s (k VARCHAR, v BIGINT) WITH (connector = 'stdin', format = 'json'); SELECT k, sum(v) AS total FROM s GROUP BY k")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"k\":\"x\",\"v\":1}\n{\"k\":\"x\",\"v\":2}\n{\"k\":\"y\",\"v\":5}\n")
        .unwrap();
    let output = wait(child);
    assert_success(&output);
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| *l != "k,total")
    {
        let (k, v) = line.split_once(',').unwrap();
        *totals.entry(k.into()).or_default() += v.parse::<u64>().unwrap();
    }
    assert_eq!(totals, BTreeMap::from([("x".into(), 3), ("y".into(), 5)]));
}

#[test]
fn a_script_on_stdin_runs_like_quiver_run() {
    let mut child = quiver()
        .args(["--until-idle", "--format", "csv"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql_example("files_csv.sql").as_bytes())
        .unwrap();
    let output = wait(child);
    assert_success(&output);
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("region,orders,revenue\neast,1,7.25\n")
    );
}

#[test]
fn max_batches_stops_an_unbounded_query() {
    let output = wait(
        quiver()
            .args(["--max-batches", "3", "--clock", "simulated", "--format", "csv", "--show-empty", "-c"])
            .arg("CREATE STREAM s WITH (connector = 'socket', port = 1); SELECT count(*) AS n FROM s")
            .spawn()
            .unwrap(),
    );
    assert_success(&output);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "n\n0\n0\n0\n");
}

/// `terms` joined by `separator`, e.g. `1 + 2 + 3`.
fn chain(terms: impl Iterator<Item = String>, separator: &str) -> String {
    terms.collect::<Vec<_>>().join(separator)
}

/// Runs `script` from a file (long scripts exceed a command-line argument's
/// limit) with `args`, and fails the test if quiver was killed by a signal or
/// reported a stack overflow or panic.
fn run_script_file(script: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sql");
    std::fs::write(&file, script).unwrap();
    let output = wait(quiver().args(args).arg("run").arg(&file).spawn().unwrap());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some(),
        "quiver was killed: {}\n{stderr}",
        output.status
    );
    assert!(
        !stderr.contains("overflowed") && !stderr.contains("panicked"),
        "{stderr}"
    );
    output
}

#[test]
fn a_sum_of_500_terms_returns_its_value() {
    let sum = chain((1..=500).map(|i| i.to_string()), " + ");
    let output = run_script_file(&format!("SELECT {sum} AS total"), &["--format", "csv"]);
    assert_success(&output);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "total\n125250\n");
}

#[test]
fn a_900_term_or_chain_over_a_stream_returns_its_rows() {
    // Planned on the enlarged stacks: the default ones overflow at a few
    // hundred terms.
    // The generator's auction ids start at 1000: the chain matches every bid.
    let or = chain((1000..1900).map(|i| format!("auction = {i}")), " OR ");
    let script = format!(
        "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', rate = 1000, events = 1000, seed = 1);\n\
         SELECT count(*) FILTER (WHERE {or}) = count(*) AND count(*) > 0 AS all_match FROM bids"
    );
    let args = ["--clock", "simulated", "--until-idle", "--format", "csv"];
    let output = run_script_file(&script, &args);
    assert_success(&output);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "all_match\ntrue\n");
}

#[test]
fn a_5000_term_or_chain_is_refused_with_the_fix() {
    let or = chain((1..=5_000).map(|i| format!("auction = {i}")), " OR ");
    let script = format!(
        "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', events = 1000);\n\
         SELECT count(*) FROM bids WHERE {or}"
    );
    let output = run_script_file(&script, &["--clock", "simulated", "--until-idle"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: expression too deep: the statement nests more than 1000 levels")
            && stderr.contains("`x IN (1, 2, ...)`"),
        "{stderr}"
    );
}

#[test]
fn a_100000_term_chain_is_refused_with_exit_code_1() {
    let sum = chain((1..=100_000).map(|i| i.to_string()), " + ");
    let output = run_script_file(&format!("SELECT 1;\nSELECT {sum}"), &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: expression too deep"), "{stderr}");
}

#[test]
fn ctrl_c_stops_after_the_current_batch_and_flushes_output() {
    let mut child = quiver()
        .args(["--batch-interval", "200ms", "--format", "csv", "-c"])
        .arg("CREATE STREAM s WITH (connector = 'socket', port = 1); SELECT count(*) AS n FROM s")
        .arg("--show-empty")
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 4];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"n\n0\n");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let output = wait(child);
    assert!(output.status.success(), "exit status {}", output.status);
    assert!(
        rest.lines().all(|l| l == "0"),
        "only complete rows after Ctrl-C: {rest:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stopping after the current batch"),
        "{stderr}"
    );
}

#[test]
fn no_arguments_on_a_terminal_less_stdin_with_nothing_is_not_an_error() {
    let output = wait(quiver().stdin(Stdio::null()).spawn().unwrap());
    assert_success(&output);
    assert!(output.stdout.is_empty());
}

#[test]
fn invalid_utf8_text_is_a_malformed_record() {
    // It used to become U+FFFD silently; now it stops the query naming the
    // file and line, or with on_error = 'skip' is skipped and counted.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/a.txt"), b"good\nbad \xff byte\nlast\n").unwrap();
    let run = |options: &str| {
        let script = format!(
            "CREATE STREAM s WITH (connector = 'files', path = 'in', format = 'text'{options}); SELECT line FROM s;"
        );
        let output = quiver()
            .current_dir(dir.path())
            .args([
                "--clock",
                "simulated",
                "--until-idle",
                "--format",
                "csv",
                "-c",
                &script,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stdout, stderr)
    };
    let (ok, stdout, stderr) = run("");
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("malformed text in in/a.txt: invalid UTF-8 on line 2"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run(", on_error = 'skip'");
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "line\ngood\nlast\n");
    assert!(stderr.contains("1 malformed record skipped"), "{stderr}");
}

/// A stream a background query (`CREATE SINK`, `INSERT INTO`) reads cannot
/// be dropped until `STOP QUERY`: the refusal names the query and the way to
/// stop it, and after the stop the stream (and the sink table) drop.
#[test]
fn drop_stream_waits_for_the_background_queries_that_read_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/0.csv"), "v\n1\n").unwrap();
    let setup = "CREATE STREAM s WITH (connector = 'files', path = 'in', format = 'csv'); \
                 CREATE SINK out AS SELECT v FROM s WITH (connector = 'blackhole'); \
                 CREATE TABLE copy (v BIGINT) WITH (connector = 'blackhole'); \
                 INSERT INTO copy SELECT v FROM s;";
    let run = |script: &str| {
        wait(
            quiver()
                .current_dir(dir.path())
                .args(["-c", script])
                .spawn()
                .unwrap(),
        )
    };
    let output = run(&format!("{setup} DROP STREAM s;"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "cannot drop stream 's': query out reads stream 's' and is running; stop it first (STOP QUERY out)"
        ),
        "{stderr}"
    );
    let output = run(&format!(
        "{setup} STOP QUERY out; DROP STREAM s; DROP TABLE copy;"
    ));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "query copy reads stream 's' and is running; stop it first (STOP QUERY copy)"
        ),
        "{stderr}"
    );
    let output = run(&format!("{setup} DROP TABLE copy;"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "cannot drop table 'copy': query copy writes to it and is running; stop it first (STOP QUERY copy)"
        ),
        "{stderr}"
    );
    let output = run(&format!(
        "{setup} STOP QUERY out; STOP QUERY copy; DROP STREAM s; DROP TABLE copy; DROP TABLE out; SHOW STREAMS;"
    ));
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("dropped stream s") && stderr.contains("dropped table copy"),
        "{stderr}"
    );
}

/// `--progress` prints a line per batch for background queries too (from
/// the batch ends their sinks committed), each batch once, in order.
#[test]
fn progress_lines_cover_background_queries_batch_by_batch() {
    let output = wait(
        quiver()
            .args([
                "--clock",
                "simulated",
                "--until-idle",
                "--progress",
                "-c",
                "CREATE STREAM bids WITH (connector = 'nexmark', events = 3000, rate = 1000); \
                 CREATE TABLE out (n BIGINT) WITH (connector = 'blackhole'); \
                 INSERT INTO out SELECT count(*) AS n FROM bids;",
            ])
            .spawn()
            .unwrap(),
    );
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    let batches: Vec<String> = (0..lines.len()).map(|b| format!(" batch {b}: ")).collect();
    assert!(lines.len() >= 3, "{stderr}");
    for (line, batch) in lines.iter().zip(&batches) {
        assert!(line.contains(batch), "{stderr}");
    }
    let rows_in: u64 = lines
        .iter()
        .filter_map(|l| l.split(": ").nth(2)?.split(' ').next()?.parse::<u64>().ok())
        .sum();
    // The bids among 3000 events (92%), as the closing status line counts them.
    assert_eq!(rows_in, 2760, "{stderr}");
    assert!(stderr.contains("3 batches, 2,760 rows in"), "{stderr}");
}
