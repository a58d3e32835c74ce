//! `quiver bench checkpoint`: what `--checkpoint` costs a Nexmark query at
//! 1 s batches (simulated clock, back to back), in the same run:
//!
//! - **throughput**: the query over the same events without and with a
//!   checkpoint (in a temp directory; a state snapshot every N batches for
//!   each N of `--state-every`, the logs every batch), alternating, best of
//!   [`ROUNDS`] each; the ratio is what is left.
//! - **size**: the checkpoint directory after the run, by kind (state
//!   snapshots, offsets and commit logs), and what one batch writes.
//! - **recovery**: the quiver binary itself (`std::env::current_exe()`) runs
//!   the query under `--checkpoint` and is killed (`abort`, as `kill -9`)
//!   when batch K's offsets are logged but before it runs; a restart then
//!   restores the state, replays batch K and carries on. Timed from spawning
//!   the restart to the end of its first new batch (K + 1), against a fresh
//!   start of the same script to its first batch (process start, planning,
//!   one batch); less one mean batch, it is the goal's figure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use quiver::{CHECKPOINT_CRASH_VAR, CheckpointSettings, Config, Context};

use super::nexmark;

/// Runs of each variant; the best counts (the machines are noisy).
pub const ROUNDS: usize = 2;
/// Longest a spawned run may take to reach the batch it is waited for.
const HANG_GUARD: Duration = Duration::from_secs(300);

/// Runs the checkpoint benchmark for each query of `names` and prints it.
pub async fn run(
    names: &[String],
    events: u64,
    rate: u64,
    kill_after: u64,
    state_every: &[u64],
) -> anyhow::Result<()> {
    if state_every.contains(&0) {
        anyhow::bail!("--state-every takes batch counts of at least 1");
    }
    println!(
        "checkpoint: {events} events at {rate} events/s of event time, 1 s batches (simulated clock), \
         state snapshot every {state_every:?} batches; best of {ROUNDS}"
    );
    for name in names {
        let Some(text) = nexmark::query(name) else {
            anyhow::bail!("unknown Nexmark query '{name}'");
        };
        let dir = scratch_dir(name)?;
        let result = measure(name, text, events, rate, kill_after, state_every, &dir).await;
        // Best effort: a leftover temp directory is harmless.
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }
    Ok(())
}

fn scratch_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "quiver-bench-checkpoint-{}-{name}",
        std::process::id()
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "NOT met" }
}

async fn measure(
    name: &str,
    text: &str,
    events: u64,
    rate: u64,
    kill_after: u64,
    state_every: &[u64],
    dir: &Path,
) -> anyhow::Result<()> {
    let script = dir.join("script.sql");
    std::fs::write(&script, format!("{}\n{text}\n", nexmark::ddl(events, rate)))?;
    let fresh = first_batch_after(&script, None, None, 1)?;
    for &every in state_every {
        let label = format!("{name} every {every}");
        let checkpoint = dir.join(format!("checkpoint-{every}"));
        let (checkpointed, batches) =
            throughput(&label, text, events, rate, &checkpoint, every).await?;
        println!(
            "{label}: size {}",
            Sizes::of(&checkpoint)?.describe(batches, every)
        );
        let recovery_dir = dir.join(format!("recovery-{every}"));
        crash_at(&script, &recovery_dir, kill_after, every)?;
        let recovered = first_batch_after(&script, Some(&recovery_dir), Some(kill_after), every)?;
        // The state restored is that of the last multiple of `every`
        // before the kill; the batches after it are replayed.
        let replayed = kill_after % every + 1;
        let batch = checkpointed.as_secs_f64() / batches.max(1) as f64;
        let overhead = recovered.as_secs_f64() - replayed as f64 * batch;
        println!(
            "{label}: recovery: killed before batch {kill_after} ran; restart to its first new batch (after replaying \
             {replayed}) {:.3} s, less {replayed} mean checkpointed batches ({batch:.3} s each): {overhead:.3} s \
             (goal < 2 s: {}) | fresh start to its first batch {:.3} s  ratio {:.2}",
            recovered.as_secs_f64(),
            met(overhead < 2.0),
            fresh.as_secs_f64(),
            recovered.as_secs_f64() / fresh.as_secs_f64()
        );
    }
    Ok(())
}

/// Runs the query without and with a checkpoint in `checkpoint`,
/// alternating, and prints the best of each; returns the checkpointed time
/// and its batches (the directory keeps the last checkpointed run's files).
async fn throughput(
    name: &str,
    text: &str,
    events: u64,
    rate: u64,
    checkpoint: &Path,
    every: u64,
) -> anyhow::Result<(Duration, u64)> {
    let (mut plain, mut checkpointed) = (Duration::MAX, Duration::MAX);
    let mut batches = 0;
    for _ in 0..ROUNDS {
        plain = plain.min(run_in_process(text, events, rate, None, every).await?.0);
        if checkpoint.exists() {
            std::fs::remove_dir_all(checkpoint)?;
        }
        let (took, ran) = run_in_process(text, events, rate, Some(checkpoint), every).await?;
        checkpointed = checkpointed.min(took);
        batches = ran;
    }
    let eps = |d: Duration| events as f64 / d.as_secs_f64();
    let ratio = plain.as_secs_f64() / checkpointed.as_secs_f64();
    println!(
        "{name}: throughput: without {:.2}M events/s ({:.2} s), with --checkpoint {:.2}M events/s ({:.2} s), \
         {batches} batches  ratio {ratio:.2} (loss {:.1}%; goal < 10%: {})",
        eps(plain) / 1e6,
        plain.as_secs_f64(),
        eps(checkpointed) / 1e6,
        checkpointed.as_secs_f64(),
        (1.0 - ratio) * 100.0,
        met(ratio > 0.9)
    );
    Ok((checkpointed, batches))
}

/// Runs `text` over the events on a bounded simulated clock, checkpointing
/// to `checkpoint` when given; returns the time and the batches it ran.
async fn run_in_process(
    text: &str,
    events: u64,
    rate: u64,
    checkpoint: Option<&Path>,
    every: u64,
) -> anyhow::Result<(Duration, u64)> {
    let mut config = Config::bounded(Duration::from_secs(1));
    config.checkpoint = checkpoint.map(|dir| CheckpointSettings {
        dir: dir.to_path_buf(),
        reset: false,
        interval: every,
    });
    let ctx = Context::new(config);
    ctx.sql(&nexmark::ddl(events, rate)).await?;
    let started = Instant::now();
    ctx.sql(text).await?;
    let statuses = ctx.background().wait_all().await;
    let took = started.elapsed();
    let Some(status) = statuses.into_iter().next() else {
        anyhow::bail!("the query started no background query");
    };
    if let Some(error) = status.error {
        anyhow::bail!("the query failed: {error}");
    }
    Ok((took, status.summary.batches))
}

/// Bytes and files of a checkpoint directory, by kind.
#[derive(Debug, Default)]
struct Sizes {
    state: (u64, u64),
    logs: (u64, u64),
    other: (u64, u64),
}

impl Sizes {
    fn of(dir: &Path) -> anyhow::Result<Self> {
        let mut sizes = Self::default();
        sizes.walk(dir, "")?;
        Ok(sizes)
    }

    /// Adds the files under `dir`; `kind` is the nearest directory name
    /// that says what they are (`state`, `offsets`, `commits`).
    fn walk(&mut self, dir: &Path, kind: &str) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                let kind = match name.as_str() {
                    "state" | "offsets" | "commits" => name.as_str(),
                    _ => kind,
                };
                self.walk(&entry.path(), kind)?;
                continue;
            }
            let bytes = entry.metadata()?.len();
            let slot = match kind {
                "state" => &mut self.state,
                "offsets" | "commits" => &mut self.logs,
                _ => &mut self.other,
            };
            slot.0 += bytes;
            slot.1 += 1;
        }
        Ok(())
    }

    /// One line: totals on disk and the mean written per batch (a state
    /// snapshot, two files, every `every` batches; a batch's logs, two
    /// entries, every batch).
    fn describe(&self, batches: u64, every: u64) -> String {
        let per = |(bytes, files): (u64, u64), per_batch: u64| {
            (bytes as f64 / (files / per_batch).max(1) as f64) / 1e3
        };
        let total = self.state.0 + self.logs.0 + self.other.0;
        format!(
            "on disk after {batches} batches {:.1} KB in {} files (state {:.1} KB in {} files, logs {:.1} KB in {} \
             files, other {:.1} KB); per batch written: state {:.1} KB + logs {:.2} KB",
            total as f64 / 1e3,
            self.state.1 + self.logs.1 + self.other.1,
            self.state.0 as f64 / 1e3,
            self.state.1,
            self.logs.0 as f64 / 1e3,
            self.logs.1,
            self.other.0 as f64 / 1e3,
            per(self.state, 2) / every as f64,
            per(self.logs, 2),
        )
    }
}

fn quiver_run(script: &Path, checkpoint: Option<&Path>, every: u64) -> anyhow::Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("run")
        .arg(script)
        .args(["--clock", "simulated", "--until-idle", "--progress"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // In the scratch directory: whatever a killed run leaves (a core file)
    // goes away with it.
    if let Some(dir) = script.parent() {
        command.current_dir(dir);
    }
    if let Some(dir) = checkpoint {
        command.arg("--checkpoint").arg(dir);
        command.arg("--checkpoint-interval").arg(every.to_string());
    }
    Ok(command)
}

/// Runs the script under `--checkpoint dir` and kills it (the checkpoint
/// crash hook: `abort`) once batch `batch`'s offsets are logged.
fn crash_at(script: &Path, dir: &Path, batch: u64, every: u64) -> anyhow::Result<()> {
    let output = quiver_run(script, Some(dir), every)?
        .env(CHECKPOINT_CRASH_VAR, format!("after_offsets_log@{batch}"))
        .stderr(Stdio::piped())
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        anyhow::bail!(
            "the run ended before batch {batch}: pass a smaller --kill-after or more --events"
        );
    }
    if !stderr.contains(CHECKPOINT_CRASH_VAR) {
        anyhow::bail!("the checkpointed run failed before batch {batch}:\n{stderr}");
    }
    Ok(())
}

/// Spawns the script (on `checkpoint`, after a kill at batch `killed`) and
/// times, from the spawn, its first batch after `killed` (its first batch
/// when none was killed; `--progress` reports no replayed batch); then
/// stops it.
fn first_batch_after(
    script: &Path,
    checkpoint: Option<&Path>,
    killed: Option<u64>,
    every: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = quiver_run(script, checkpoint, every)?
        .stderr(Stdio::piped())
        .spawn()?;
    let Some(stderr) = child.stderr.take() else {
        anyhow::bail!("no stderr from the spawned quiver");
    };
    let (batches, ends) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(id) = batch_id(&line) {
                // The receiver is gone once we have what we need.
                let _ = batches.send((started.elapsed(), id));
            }
            lines.push(line);
        }
        lines
    });
    let result = loop {
        match ends.recv_timeout(HANG_GUARD) {
            Ok((at, id)) => {
                if killed.is_none_or(|k| id > k) {
                    break Ok(at);
                }
            }
            Err(_) => break Err(()),
        }
    };
    // Our own child: stop it now that it has been timed.
    let _ = child.kill();
    let _ = child.wait();
    let lines = reader.join().unwrap_or_default();
    result.map_err(|()| {
        anyhow::anyhow!(
            "the spawned quiver reported no batch{}; its stderr:\n{}",
            killed.map_or(String::new(), |k| format!(" after {k}")),
            lines.join("\n")
        )
    })
}

/// The batch id of a `--progress` line (`progress: QUERY batch N: ...`).
fn batch_id(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("progress: ")?;
    let (_, after) = rest.split_once(" batch ")?;
    after.split(':').next()?.trim().parse().ok()
}
