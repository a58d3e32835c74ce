//! The interactive REPL, driven through a pseudo-terminal as a person would:
//! type statements, see results, press Ctrl-C, quit, come back to the history.
//! Every wait is for a piece of output, bounded by a generous timeout, so the
//! tests do not depend on the machine's speed.

use std::path::Path;
use std::process::Command;

use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};

/// Bound on each wait for output (generous: CI machines are slow and shared).
const TIMEOUT_MS: u64 = 120_000;
const PROMPT: &str = "quiver> ";

/// Starts `quiver` (no arguments but `args`) in a pseudo-terminal with HOME
/// set to `home`, and waits for its first prompt.
fn repl(home: &Path, args: &[&str]) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .env("HOME", home)
        .env("TERM", "xterm")
        .env_remove("RUST_LOG");
    let mut p = spawn_command(cmd, Some(TIMEOUT_MS)).expect("start quiver in a pty");
    p.exp_string(PROMPT).expect("first prompt");
    p
}

/// Types `line` and Enter.
fn send(p: &mut PtySession, line: &str) {
    p.send_line(line).expect("type into the pty");
}

/// Waits for `text` in the output; returns what came before it.
fn expect(p: &mut PtySession, text: &str) -> String {
    match p.exp_string(text) {
        Ok(before) => before,
        Err(e) => panic!("waiting for {text:?}: {e}"),
    }
}

/// Types `line`, waits for `text` and then the next prompt.
fn run(p: &mut PtySession, line: &str, text: &str) -> String {
    send(p, line);
    let before = expect(p, text);
    expect(p, PROMPT);
    before
}

/// Waits until quiver has exited and checks that it exited with status 0.
fn expect_clean_exit(p: &mut PtySession) -> String {
    let rest = p.exp_eof().expect("quiver exits");
    match p.process().wait() {
        Ok(WaitStatus::Exited(_, 0)) => rest,
        other => panic!("quiver did not exit cleanly: {other:?}\n{rest}"),
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn warnings_go_above_the_prompt_and_repeats_are_summarized() {
    let home = tempfile::tempdir().unwrap();
    let mut p = repl(home.path(), &["--batch-interval", "100ms"]);
    let port = closed_port();
    run(
        &mut p,
        &format!("CREATE STREAM lines WITH (connector = 'socket', port = {port});"),
        "created stream lines",
    );
    run(
        &mut p,
        "CREATE TABLE sunk (line VARCHAR) WITH (connector = 'blackhole');",
        "created table sunk",
    );
    run(
        &mut p,
        "INSERT INTO sunk SELECT line FROM lines;",
        "started query sunk",
    );
    // Half a statement on the line while the source retries (after 100, 200,
    // 400, 800 ms: the same warning but for its delay, held back, then
    // summarized when the delay reads "1.6s").
    p.send("SELECT 4").unwrap();
    p.flush().unwrap();
    let before = expect(&mut p, "(repeated ");
    assert!(
        before.matches("cannot connect").count() <= 2,
        "repeats not summarized:\n{before}"
    );
    assert!(
        !before.contains("SELECT 4warning"),
        "a warning inside the typed line:\n{before}"
    );
    // rustyline redraws the prompt and the typed text below the message.
    expect(&mut p, "quiver> SELECT 4");
    send(&mut p, "1 AS answer;");
    expect(&mut p, "| 41 ");
    expect(&mut p, PROMPT);
    send(&mut p, "\\q");
    expect_clean_exit(&mut p);
}

/// The lines typed in the README's REPL session, in order (continuation
/// lines start with two spaces).
const README_SESSION: &[&str] = &[
    "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', rate = '200');",
    "SELECT channel, count(*) AS n FROM TUMBLE(bids, _batch_time, INTERVAL '200' MILLISECOND)",
    "  WHERE channel NOT LIKE 'channel-%' GROUP BY channel ORDER BY n DESC;",
    "CREATE TABLE counts (channel VARCHAR, n BIGINT) WITH (connector = 'blackhole');",
    "INSERT INTO counts SELECT channel, count(*) AS n FROM bids GROUP BY channel;",
    "SHOW QUERIES;",
    "STOP QUERY counts;",
    "SELEC channel FROM bids;",
    "\\q",
];

/// The lines typed in the README's REPL transcript: each line after a
/// `quiver> ` prompt, and the continuation lines of a statement not yet ended.
fn readme_session() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("```text\n$ quiver --batch-interval 100ms\n")
        .expect("the README shows a REPL session started with --batch-interval 100ms");
    let block = &readme[start..];
    let block = &block[..block[3..].find("```").unwrap()];
    let mut lines = Vec::new();
    let mut open = false;
    for line in block.lines() {
        if let Some(input) = line.strip_prefix(PROMPT) {
            lines.push(input.to_string());
            open = !input.trim_end().ends_with(';') && !input.starts_with('\\');
        } else if open {
            lines.push(line.to_string());
            open = !line.trim_end().ends_with(';');
        }
    }
    lines
}

#[test]
fn the_readme_session_is_the_one_tested() {
    assert_eq!(readme_session(), README_SESSION);
}

/// The README's session, with more checks between its lines.
#[test]
fn foreground_query_ctrl_c_background_queries_errors_and_quit() {
    let [
        create_bids,
        select,
        select_rest,
        create_table,
        insert,
        show_queries,
        stop_query,
        typo,
        quit,
    ] = README_SESSION
    else {
        unreachable!()
    };
    let home = tempfile::tempdir().unwrap();
    let mut p = repl(home.path(), &["--batch-interval", "100ms"]);
    run(&mut p, create_bids, "created stream bids");

    // A windowed query over two lines runs in the foreground; every closed
    // window prints a banner and a table, with the live status line under it.
    send(&mut p, select);
    send(&mut p, select_rest);
    expect(&mut p, "query_1 running");
    expect(&mut p, "· window [");
    expect(&mut p, "| channel");
    expect(&mut p, "· window [");
    expect(&mut p, "rows/s");

    // Ctrl-C stops the query after its current batch and returns to the prompt.
    p.send_control('c').unwrap();
    expect(&mut p, "stopping query_1 after the current batch");
    expect(&mut p, "query_1 stopped after");
    expect(&mut p, PROMPT);
    // Its progress records stay for SHOW PROGRESS.
    send(&mut p, "SHOW PROGRESS query_1 LIMIT 2;");
    expect(&mut p, "| batch_id");
    // The offsets column of a record: the range the batch read.
    expect(&mut p, "| bids 0: ");
    expect(&mut p, PROMPT);
    // A name it does not know lists the ended foreground query too.
    run(
        &mut p,
        "SHOW PROGRESS nosuch;",
        "error: no query named 'nosuch'; known queries: query_1",
    );

    // Ctrl-C at an idle prompt, twice, does not end the session.
    for _ in 0..2 {
        p.send_control('c').unwrap();
        expect(&mut p, PROMPT);
    }
    run(&mut p, "SELECT 41 + 1 AS answer;", "| 42 ");

    // Background queries: CREATE TABLE + INSERT INTO, SHOW QUERIES, STOP QUERY.
    run(&mut p, create_table, "created table counts");
    run(&mut p, insert, "started query counts");
    run(&mut p, show_queries, "| counts | running ");
    run(&mut p, stop_query, "stopped query counts");
    run(&mut p, show_queries, "| counts | finished ");
    // CREATE SINK ... AS SELECT declares the table from the query and starts it.
    run(
        &mut p,
        "CREATE SINK totals AS SELECT count(*) AS bids FROM bids WITH (connector = 'blackhole');",
        "started query totals",
    );
    run(&mut p, show_queries, "| totals | running ");

    // A typo is an error; the session goes on with its streams.
    run(&mut p, typo, "error: syntax error");
    run(
        &mut p,
        "STOP QUERY nosuch;",
        "error: no query named 'nosuch'; background queries: counts, totals",
    );
    send(&mut p, "\\d");
    expect(&mut p, "| bids ");
    expect(&mut p, "sink tables:");
    expect(&mut p, "| counts | blackhole | channel Utf8, n Int64 |");
    expect(&mut p, PROMPT);
    run(&mut p, "\\d counts", "| n           | Int64     |");

    // \q stops background queries after their batch, sinks closed, and exits 0.
    send(&mut p, quit);
    expect(&mut p, "stopping background queries");
    expect(&mut p, "query totals: finished");
    expect_clean_exit(&mut p);
}

#[test]
fn history_persists_across_sessions() {
    let home = tempfile::tempdir().unwrap();
    let mut p = repl(home.path(), &[]);
    send(&mut p, "SELECT 6 * 7");
    run(&mut p, "  AS answer;", "| 42 ");
    // Ctrl-D quits too.
    p.send_control('d').unwrap();
    expect_clean_exit(&mut p);
    let history = std::fs::read_to_string(home.path().join(".quiver_history")).unwrap();
    assert!(history.contains("SELECT 6 * 7"), "{history}");

    // Up arrow brings back the whole multi-line statement; Enter runs it.
    let mut p = repl(home.path(), &[]);
    p.send("\x1b[A").unwrap();
    p.flush().unwrap();
    expect(&mut p, "AS answer;");
    p.send("\r").unwrap();
    p.flush().unwrap();
    expect(&mut p, "| 42 ");
    expect(&mut p, PROMPT);
    send(&mut p, "\\q");
    expect_clean_exit(&mut p);
}

#[test]
fn backslash_commands_completion_and_formats() {
    let home = tempfile::tempdir().unwrap();
    let script = home.path().join("streams.sql");
    std::fs::write(
        &script,
        "CREATE STREAM auctions WITH (connector = 'nexmark', kind = 'auction');\n",
    )
    .unwrap();
    let mut p = repl(home.path(), &[]);
    run(&mut p, "\\?", "\\timing");
    run(
        &mut p,
        &format!("\\i {}", script.display()),
        "created stream auctions",
    );
    run(&mut p, "\\d", "| auctions ");
    run(&mut p, "\\d auctions", "| _batch_time ");
    run(&mut p, "\\nope", "error: unknown command '\\nope'");

    // Tab completes a stream name.
    p.send("DESCRIBE auc\t").unwrap();
    p.flush().unwrap();
    expect(&mut p, "auctions");
    run(&mut p, ";", "| itemName ");

    run(&mut p, "\\timing on", "timing is on");
    run(&mut p, "SELECT 1 AS one;", "Time: ");
    run(&mut p, "\\format csv", "output format is csv");
    run(&mut p, "SELECT 1 AS one, 'x' AS two;", "one,two\r\n1,x");
    send(&mut p, "exit");
    expect_clean_exit(&mut p);
}

#[test]
fn long_expressions_give_a_result_or_an_error_and_the_session_lives_on() {
    let home = tempfile::tempdir().unwrap();
    let mut p = repl(home.path(), &["--batch-interval", "100ms"]);
    run(
        &mut p,
        "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', rate = '200');",
        "created stream bids",
    );
    let sum = (1..=500).map(|i| i.to_string()).collect::<Vec<_>>();
    run(
        &mut p,
        &format!("SELECT {} AS total;", sum.join(" + ")),
        "| 125250 ",
    );
    // Too long to type comfortably: run from files with \i.
    let deep = |name: &str, sql: String| {
        let file = home.path().join(name);
        std::fs::write(&file, sql).unwrap();
        format!("\\i {}", file.display())
    };
    let or = (1..=5_000)
        .map(|i| format!("auction = {i}"))
        .collect::<Vec<_>>();
    let or = deep(
        "or.sql",
        format!("SELECT count(*) FROM bids WHERE {};", or.join(" OR ")),
    );
    run(&mut p, &or, "error: expression too deep");
    let sum = (1..=100_000).map(|i| i.to_string()).collect::<Vec<_>>();
    let sum = deep("sum.sql", format!("SELECT {};", sum.join(" + ")));
    run(&mut p, &sum, "error: expression too deep");
    run(&mut p, "SELECT 1 AS one;", "| 1   |");
    send(&mut p, "\\q");
    expect_clean_exit(&mut p);
}

#[test]
fn a_failed_background_query_is_reported_at_the_prompt() {
    let home = tempfile::tempdir().unwrap();
    let input = home.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut p = repl(home.path(), &["--batch-interval", "100ms"]);
    run(
        &mut p,
        &format!(
            "CREATE STREAM events (a BIGINT) WITH (connector = 'files', path = '{}', format = 'json');",
            input.display()
        ),
        "created stream events",
    );
    run(
        &mut p,
        "CREATE SINK copy AS SELECT a FROM events WITH (connector = 'blackhole');",
        "started query copy",
    );
    // A malformed file arrives (written elsewhere, renamed in): the query fails.
    let staged = home.path().join("bad.json");
    std::fs::write(&staged, "{\"a\": 1}\nnot json\n").unwrap();
    std::fs::rename(&staged, input.join("bad.json")).unwrap();
    // Reported while the user sits at the prompt, without typing anything.
    expect(&mut p, "error: query copy failed");
    run(&mut p, "SHOW QUERIES;", "| copy | failed ");
    send(&mut p, "\\q");
    expect_clean_exit(&mut p);
}

#[test]
fn a_script_on_stdin_that_is_not_a_terminal_runs_without_prompts() {
    use std::io::Write;
    use std::process::Stdio;
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOME", home.path())
        .args(["--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 1 AS one;\nSELECT 'two' AS two;\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "one\n1\ntwo\ntwo\n"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains(PROMPT) && !stderr.contains('\x1b'),
        "{stderr}"
    );
    assert!(!home.path().join(".quiver_history").exists());
}

#[test]
fn with_stdout_redirected_prompts_stay_on_the_terminal() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out.csv");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "exec '{}' --format csv > '{}'",
            env!("CARGO_BIN_EXE_quiver"),
            out.display()
        ))
        .env("HOME", home.path())
        .env("TERM", "xterm");
    let mut p = spawn_command(cmd, Some(TIMEOUT_MS)).expect("start quiver in a pty");
    expect(&mut p, PROMPT);
    run(&mut p, "\\timing on", "timing is on");
    run(&mut p, "SELECT 1 AS one;", "Time: ");
    send(&mut p, "\\q");
    expect_clean_exit(&mut p);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "one\n1\n");
}

#[test]
fn a_sink_with_a_checkpoint_option_checkpoints_in_the_repl() {
    let home = tempfile::tempdir().unwrap();
    let input = home.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("a.json"), "{\"a\": 1}\n{\"a\": 2}\n").unwrap();
    let mut p = repl(home.path(), &["--clock", "simulated", "--until-idle"]);
    run(
        &mut p,
        &format!(
            "CREATE STREAM events (a BIGINT) WITH (connector = 'files', path = '{}', format = 'json');",
            input.display()
        ),
        "created stream events",
    );
    let (out, ck) = (home.path().join("out"), home.path().join("ck"));
    run(
        &mut p,
        &format!(
            "CREATE SINK copy AS SELECT a FROM events WITH (connector = 'parquet', path = '{}', checkpoint = '{}');",
            out.display(),
            ck.display()
        ),
        "started query copy",
    );
    // The query reads the file and commits its batch to the checkpoint.
    let commits = ck.join("copy/commits");
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(TIMEOUT_MS);
    while std::fs::read_dir(&commits).map_or(0, |d| d.count()) == 0 {
        assert!(std::time::Instant::now() < deadline, "no commit logged");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    send(&mut p, "\\q");
    expect_clean_exit(&mut p);
}

#[test]
fn checkpoint_resumes_a_foreground_query_in_a_new_session() {
    let home = tempfile::tempdir().unwrap();
    let input = home.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("a.json"), "{\"a\": 41}\n{\"a\": 42}\n").unwrap();
    let ck = home.path().join("ck");
    let args = [
        "--clock",
        "simulated",
        "--until-idle",
        "--checkpoint",
        ck.to_str().unwrap(),
    ];
    let stream = format!(
        "CREATE STREAM events (a BIGINT) WITH (connector = 'files', path = '{}', format = 'json');",
        input.display()
    );
    // First session: the query prints the file's rows, commits the batch
    // to the checkpoint and ends.
    let mut p = repl(home.path(), &args);
    run(&mut p, &stream, "created stream events");
    let printed = run(&mut p, "SELECT a FROM events;", "ended after");
    assert!(printed.contains("42"), "{printed}");
    let commits = ck.join("query_1/commits");
    assert!(
        std::fs::read_dir(&commits).map_or(0, |d| d.count()) > 0,
        "no commit logged in {}",
        commits.display()
    );
    send(&mut p, "\\q");
    expect_clean_exit(&mut p);
    // Second session, same statements: the query resumes after the
    // committed batch, so the rows are not printed again.
    let mut p = repl(home.path(), &args);
    run(&mut p, &stream, "created stream events");
    let printed = run(&mut p, "SELECT a FROM events;", "ended after");
    assert!(!printed.contains("42"), "printed again: {printed}");
    send(&mut p, "\\q");
    expect_clean_exit(&mut p);
}
