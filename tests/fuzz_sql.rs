//! Robustness of the `quiver` binary against SQL a user (or a generator)
//! might really write: the statements of the example scripts (`sql/*.sql`,
//! `sql/nexmark/*.sql`) mutated token by token, and very deep or very long
//! expressions. Whatever the input, quiver must end by itself, soon, with
//! exit code 0 or 1 — never killed by a signal (a stack overflow aborts),
//! never a panic.
//!
//! Deterministic: a seeded generator makes the same cases on every run.
//! `QUIVER_FUZZ_CASES=2000` runs more cases (default 240), `QUIVER_FUZZ_SEED`
//! another seed; a failure prints the case's script to replay it with
//! `quiver run`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// How long one run may take before it counts as a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Cases run by `cargo test`.
const DEFAULT_CASES: usize = 240;
/// Runs at once (the machine is shared; each run is single-query and short).
const PARALLEL: usize = 2;

/// Keywords inserted at random places.
const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT",
    "JOIN",
    "ON",
    "USING",
    "AS",
    "NOT",
    "NULL",
    "AND",
    "OR",
    "IN",
    "IS",
    "BETWEEN",
    "LIKE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "INTERVAL",
    "TABLE",
    "WITH",
    "UNION",
    "UNION ALL",
    "DISTINCT",
    "OVER",
    "PARTITION BY",
    "WATERMARK FOR",
    "TUMBLE",
    "HOP",
    "SESSION",
    "DESCRIPTOR",
    "UNNEST",
    "LATERAL",
    "EXISTS",
    "VALUES",
    "CREATE",
    "STREAM",
    "VIEW",
    "SINK",
    "INSERT INTO",
    "EXPLAIN",
    "SET",
    "SHOW",
    "DESCRIBE",
    "ROW",
    "ARRAY",
    "STRUCT",
    "TIMESTAMP",
    "DATE",
    "_batch_time",
    "PROCTIME()",
    "window_start",
    "window_end",
    "count(*)",
    "*",
];

/// Odd literals and punctuation injected or substituted for a token.
const ODD: &[&str] = &[
    "'",
    "\"",
    "`",
    "(",
    ")",
    "((",
    "))",
    ",",
    ";",
    ".",
    "''",
    "'a''b'",
    "NULL",
    "0",
    "-1",
    "-0",
    "1.5",
    "1e400",
    "-1e400",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "0x",
    "x'zz'",
    "'\u{1F600}'",
    "'\\'",
    "INTERVAL '0' SECOND",
    "INTERVAL '-1' SECOND",
    "INTERVAL 'x' SECOND",
    "INTERVAL '1' YEAR",
    "'2026-13-45 25:61:61'",
    "CAST(NULL AS BIGINT)",
    "TIMESTAMP '1970-01-01 00:00:00'",
    "[]",
    "{}",
    "$1",
    "?",
    "@x",
    "::",
    "::BIGINT",
    "->",
    "||",
    "%",
    "/ 0",
    "DIV 0",
];

/// The example scripts, each split into its statements (with what they need
/// before them: Nexmark queries run after `ddl.sql`).
fn corpus() -> Vec<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let read = |path: &Path| {
        let text = std::fs::read_to_string(path).expect("read an example script");
        // Socket sources would wait for a peer; read standard input instead.
        let text = text.replace(
            "connector = 'socket', host = '127.0.0.1', port = 9999",
            "connector = 'stdin'",
        );
        quiver::parse_script(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
            .into_iter()
            .map(|s| s.text)
            .collect::<Vec<_>>()
    };
    let scripts = |dir: &Path| {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("list sql/")
            .map(|e| e.expect("list sql/").path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        paths.sort();
        paths
    };
    let mut corpus: Vec<Vec<String>> = scripts(&root).iter().map(|p| read(p)).collect();
    let ddl = read(&root.join("nexmark/ddl.sql"));
    for path in scripts(&root.join("nexmark")) {
        if path.ends_with("ddl.sql") {
            corpus.push(ddl.clone());
        } else {
            corpus.push(ddl.iter().cloned().chain(read(&path)).collect());
        }
    }
    corpus
}

/// `statement` with one to three token-level mutations.
fn mutate(statement: &str, rng: &mut StdRng) -> String {
    let dialect = GenericDialect {};
    let Ok(mut tokens) = Tokenizer::new(&dialect, statement).tokenize() else {
        return statement.to_string();
    };
    let mut texts: Vec<String> = tokens.drain(..).map(|t: Token| t.to_string()).collect();
    for _ in 0..rng.random_range(1..=3) {
        if texts.is_empty() {
            texts.push(KEYWORDS.choose(rng).unwrap().to_string());
            continue;
        }
        let i = rng.random_range(0..texts.len());
        match rng.random_range(0..8) {
            0 => {
                texts.remove(i);
            }
            1 => {
                let copy = texts[i].clone();
                texts.insert(i, copy);
            }
            2 => {
                let j = rng.random_range(0..texts.len());
                texts.swap(i, j);
            }
            3 => texts.insert(i, format!(" {} ", KEYWORDS.choose(rng).unwrap())),
            4 => texts.truncate(i),
            5 => texts.insert(i, ODD.choose(rng).unwrap().to_string()),
            6 => texts[i] = ODD.choose(rng).unwrap().to_string(),
            _ => {
                let j = rng.random_range(0..texts.len());
                texts[i] = texts[j].clone();
            }
        }
    }
    texts.concat()
}

/// A statement that nests deeply or chains many terms.
fn deep(rng: &mut StdRng) -> String {
    let n = *[2, 10, 49, 51, 200, 999, 1_001, 3_000, 20_000]
        .choose(rng)
        .unwrap();
    let join = |term: &dyn Fn(usize) -> String, separator: &str| {
        (1..=n).map(term).collect::<Vec<_>>().join(separator)
    };
    let nest = |open: &str, inner: &str, close: &str| {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    };
    match rng.random_range(0..11) {
        0 => format!("SELECT {}", join(&|i| i.to_string(), " + ")),
        1 => format!(
            "SELECT count(*) FROM bids WHERE {}",
            join(&|i| format!("auction = {i}"), " OR ")
        ),
        2 => format!(
            "SELECT count(*) FROM bids WHERE {}",
            join(&|i| format!("price > {i}"), " AND ")
        ),
        3 => format!("SELECT {}", nest("(", "1", ")")),
        4 => {
            format!(
                "SELECT {}",
                nest("CASE WHEN price > 0 THEN ", "price", " ELSE 0 END")
            ) + " FROM bids"
        }
        5 => format!("SELECT {}", nest("abs(", "-1", ")")),
        6 => join(&|i| format!("SELECT {i}"), " UNION ALL "),
        7 => format!("SELECT {}", nest("(SELECT ", "1", ")")),
        8 => format!("SELECT {} FROM bids", join(&|_| "channel".into(), " || ")),
        9 => format!("SELECT {}", nest("NOT ", "true", "")),
        _ => format!(
            "SELECT count(*) FROM bids WHERE auction IN ({})",
            join(&|i| i.to_string(), ", ")
        ),
    }
}

/// The script of case `index`: a mutated example, or a deep expression over
/// a small generated stream.
fn case(corpus: &[Vec<String>], seed: u64, index: usize) -> String {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let statements: Vec<String> = if index % 4 == 3 {
        vec![
            "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', rate = 1000, events = 2000)"
                .into(),
            deep(&mut rng),
        ]
    } else {
        let script = corpus.choose(&mut rng).unwrap();
        // Mostly the statements after the DDL, sometimes the DDL itself.
        let mutated = if rng.random_bool(0.8) {
            script.len() - 1
        } else {
            rng.random_range(0..script.len())
        };
        let mut statements = script.clone();
        statements[mutated] = mutate(&statements[mutated], &mut rng);
        statements
    };
    statements.join(";\n") + ";\n"
}

/// The exit code of one run, or what went wrong.
fn run(script: &str, dir: &Path) -> Result<i32, String> {
    let file = dir.join("case.sql");
    std::fs::write(&file, script).expect("write the case");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(dir)
        .args([
            "--clock",
            "simulated",
            "--until-idle",
            "--max-batches",
            "2",
            "--batch-interval",
            "100ms",
            "--format",
            "csv",
            "run",
        ])
        .arg(&file)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start quiver");
    // A few lines for scripts reading standard input, then end of input.
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(b"a b c\nthe quick brown fox\n{\"x\": 1}\n");
    }
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for quiver") {
            break Some(status);
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = reader.join().unwrap_or_default();
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    };
    let problem = match status.map(|s| (s, s.code())) {
        None => format!("did not end within {RUN_TIMEOUT:?}"),
        Some((status, None | Some(2..))) | Some((status, Some(..=-1))) => {
            format!("ended with {status}")
        }
        Some(_) if stderr.contains("panicked") || stderr.contains("overflowed") => {
            "panicked".to_string()
        }
        Some((_, Some(code))) => return Ok(code),
    };
    let shown: String = script.chars().take(2_000).collect();
    Err(format!(
        "{problem}\n--- script\n{shown}\n--- stderr (end)\n{tail}"
    ))
}

/// Copies the directory tree `from` to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory");
    for entry in std::fs::read_dir(from).expect("list a directory") {
        let path = entry.expect("list a directory").path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy a file");
        }
    }
}

#[test]
fn mutated_and_deep_statements_never_crash_or_hang() {
    let cases = std::env::var("QUIVER_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed = std::env::var("QUIVER_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(11);
    let corpus = Arc::new(corpus());
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let succeeded = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (corpus, next, failures) = (corpus.clone(), next.clone(), failures.clone());
            let succeeded = succeeded.clone();
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().expect("temp dir");
                // Scripts name their inputs relative to the project root; a
                // copy keeps mutated sink paths away from the real ones.
                copy_dir(
                    &Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/data"),
                    &dir.path().join("sql/data"),
                );
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= cases {
                        return;
                    }
                    let script = case(&corpus, seed, index);
                    match run(&script, dir.path()) {
                        Ok(0) => {
                            succeeded.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(problem) => failures
                            .lock()
                            .unwrap()
                            .push(format!("case {index} (seed {seed}): {problem}")),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a fuzz worker");
    }
    let failures = failures.lock().unwrap();
    let succeeded = succeeded.load(Ordering::SeqCst);
    eprintln!(
        "{cases} cases: {succeeded} ran without error, {} failed",
        failures.len()
    );
    // Mutations break most statements, but not all: the cases must still
    // exercise running queries, not only the parser.
    assert!(
        succeeded * 10 >= cases,
        "only {succeeded} of {cases} cases ran without error: is the corpus broken?"
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
