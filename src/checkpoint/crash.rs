//! Fault injection for crash tests: `QUIVER_CHECKPOINT_CRASH=<point>@<n>`
//! aborts the process (as `kill -9` would: no destructors, no flush) when
//! batch `n` reaches `<point>`, so each point of the checkpoint protocol is
//! reachable deterministically. Modelled on the file sink's
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
            "before_commit_log" | "after_sink_commit" => Self::BeforeCommitLog,
            "after_commit_log" => Self::AfterCommitLog,
            _ => return None,
        })
    }
}

/// Name of the environment variable.
pub const CRASH_VAR: &str = "QUIVER_CHECKPOINT_CRASH";

/// Whether the hook asks to abort at `point` of batch `batch`.
pub(super) fn armed(point: CrashPoint, batch: u64) -> bool {
    let Ok(spec) = std::env::var(CRASH_VAR) else {
        return false;
    };
    let Some((name, n)) = spec.split_once('@') else {
        return false;
    };
    let Ok(n) = n.parse::<u64>() else {
        return false;
    };
    let reached = match point {
        CrashPoint::AfterWalWrite => batch >= n,
        _ => batch == n,
    };
    CrashPoint::parse(name) == Some(point) && reached
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
