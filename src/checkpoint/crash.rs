//! Fault injection for crash tests: `QUIVER_CHECKPOINT_CRASH=<point>@<n>`
//! aborts the process (as `kill -9` would: no destructors, no flush) when
//! batch `n` reaches `<point>`, so each point of the checkpoint protocol is
//! reachable deterministically. At the points after a batch ran (the sinks'
//! commit and the commit log), `<point>@r<n>` aborts at the `n`-th batch
//! (from 0) that had results instead. Modelled on the file sink's
//! `QUIVER_SINK_CRASH`.

/// The named points of the protocol, in the order a batch passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// A socket or stdin source's write-ahead log entry for the batch is
    /// written; its offsets log entry is not (see `wal`). Batches that
    /// read nothing write no entry, so `after_wal_write@n` fires at the
    /// first entry of batch `n` or later.
    AfterWalWrite,
    /// The batch's offsets log entry is written; it has not run yet.
    AfterOffsetsLog,
    /// Half of the batch's state snapshot is written to its temp file.
    MidStateWrite,
    /// A kafka sink enqueued every message of the batch; it has neither
    /// flushed them nor committed its transaction (exactly-once), so the
    /// restart must abort or re-send them.
    AfterKafkaSendBeforeCommit,
    /// The sinks committed the batch (stdout printed it); the commit log
    /// entry is not written (`after_sink_commit` is the same point).
    BeforeCommitLog,
    /// The batch's commit log entry is written.
    AfterCommitLog,
}

impl CrashPoint {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "after_wal_write" => Self::AfterWalWrite,
            "after_offsets_log" => Self::AfterOffsetsLog,
            "mid_state_write" => Self::MidStateWrite,
            "after_kafka_send_before_commit" => Self::AfterKafkaSendBeforeCommit,
            "before_commit_log" | "after_sink_commit" => Self::BeforeCommitLog,
            "after_commit_log" => Self::AfterCommitLog,
            _ => return None,
        })
    }
}

use std::sync::atomic::{AtomicU64, Ordering};

/// Name of the environment variable.
pub const CRASH_VAR: &str = "QUIVER_CHECKPOINT_CRASH";

/// Whether the hook asks to abort at `point` of batch `batch`.
pub(super) fn armed(point: CrashPoint, batch: u64) -> bool {
    armed_with(point, batch, None)
}

/// [`armed`] at a point that knows whether the batch had results
/// (`results`): there `<point>@r<n>` names the `n`-th batch (from 0) that
/// had results, so a test can hit a batch that wrote to the sink whatever
/// the batches' ids.
fn armed_with(point: CrashPoint, batch: u64, results: Option<bool>) -> bool {
    static RESULT_BATCHES: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var(CRASH_VAR) else {
        return false;
    };
    let Some((name, n)) = spec.split_once('@') else {
        return false;
    };
    if CrashPoint::parse(name) != Some(point) {
        return false;
    }
    if let Some(n) = n.strip_prefix('r') {
        let Ok(n) = n.parse::<u64>() else {
            return false;
        };
        return results == Some(true) && RESULT_BATCHES.fetch_add(1, Ordering::SeqCst) == n;
    }
    let Ok(n) = n.parse::<u64>() else {
        return false;
    };
    match point {
        CrashPoint::AfterWalWrite => batch >= n,
        _ => batch == n,
    }
}

/// Aborts the process: the simulated crash.
pub(super) fn abort(point: CrashPoint, batch: u64) -> ! {
    tracing::error!("{CRASH_VAR}: crashing at {point:?} of batch {batch}");
    std::process::abort()
}

/// Aborts if the hook asks for `point` of `batch`.
pub fn at(point: CrashPoint, batch: u64) {
    if armed(point, batch) {
        abort(point, batch);
    }
}

/// Aborts if the hook asks for `point` of `batch`, or (`<point>@r<n>`) for
/// the `n`-th batch with results at `point` and `results` says this one had.
pub fn at_with_results(point: CrashPoint, batch: u64, results: bool) {
    if armed_with(point, batch, Some(results)) {
        abort(point, batch);
    }
}
