//! Helpers the integration tests share: the quiver binary without
//! inherited crash hooks and `quiver checkpoint inspect` (the checkpoint
//! tests); a seeded RNG for random kill times and the rows of a Parquet
//! sink's visible files (the crash tests); the CLI tests' binary
//! ([`cli`]), the file sink tests' results ([`file_sink`]), the Kafka
//! tests' ([`kafka`]) and the Avro tests' encoder ([`avro`]).

// Each test crate uses the part it needs.
#![allow(dead_code)]

pub mod avro;
pub mod cli;
pub mod file_sink;
pub mod kafka;

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The quiver binary, run in `dir`, without the crash hooks
/// (`QUIVER_CHECKPOINT_CRASH`, `QUIVER_SINK_CRASH`) the test's environment
/// might hold: a test sets the one it means.
pub fn quiver_in(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.current_dir(dir)
        .env_remove("QUIVER_CHECKPOINT_CRASH")
        .env_remove("QUIVER_SINK_CRASH");
    cmd
}

/// Runs quiver in `dir` with `args`, crashing at `crash`
/// (`QUIVER_CHECKPOINT_CRASH`) if given; its output.
pub fn run_quiver(dir: &Path, args: &[&str], crash: Option<&str>) -> Output {
    let mut cmd = quiver_in(dir);
    cmd.args(args);
    if let Some(crash) = crash {
        cmd.env("QUIVER_CHECKPOINT_CRASH", crash);
    }
    cmd.output().unwrap()
}

/// Waits until the checkpoint directory `commits` holds `n` commit
/// entries (a hang guard fails the test after two minutes).
pub fn wait_for_commits(commits: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(commits).map_or(0, |d| d.count()) < n {
        assert!(Instant::now() < deadline, "no batch committed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` (`-TERM`, `-INT`) to process `id`.
pub fn send_signal(id: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &id.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {id}");
}

/// `quiver checkpoint inspect ck` run in `dir`.
pub fn inspect_checkpoint(dir: &Path) -> Output {
    quiver_in(dir)
        .args(["checkpoint", "inspect", "ck"])
        .output()
        .unwrap()
}

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// A splitmix64 generator: deterministic from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The seed of a random crash test: `QUIVER_CRASH_SEED` (to replay a
/// sequence), else the time. Print it.
pub fn crash_seed() -> u64 {
    match std::env::var("QUIVER_CRASH_SEED") {
        Ok(seed) => seed.parse().expect("QUIVER_CRASH_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// Every row of every visible Parquet file under `root` (names starting
/// with `.` or `_` are hidden), each as `<directory relative to base>:
/// <values>`, sorted.
pub fn parquet_rows(root: &Path, base: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with(['.', '_']) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let partition = d.strip_prefix(base).unwrap().display().to_string();
            let file = std::fs::File::open(&path).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let options = FormatOptions::default();
                let columns: Vec<_> = (batch.columns().iter())
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                    .collect();
                for row in 0..batch.num_rows() {
                    let values: Vec<String> =
                        columns.iter().map(|c| c.value(row).to_string()).collect();
                    rows.push(format!("{partition}: {}", values.join(",")));
                }
            }
        }
    }
    rows.sort();
    rows
}

/// Waits for `child`, killing it after `limit` (a hang guard).
pub fn wait_or_kill(mut child: Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("{what}: quiver hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
