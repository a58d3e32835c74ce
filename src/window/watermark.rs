//! Event-time progress. A stream declares `WATERMARK FOR ts AS ts - INTERVAL
//! '4' SECOND`: after each batch its watermark is the largest value of that
//! expression seen so far (max event time minus the delay), so it never goes
//! back. A stream that has sent nothing for `idle_timeout` stops holding back
//! the queries that read it; a query's watermark is the minimum over its
//! active streams. Rows older than the watermark when they arrive are late.

use std::time::Duration;

/// What happens to late rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatePolicy {
    /// Count them (`late_rows` in progress) and drop them.
    #[default]
    Drop,
    /// Count them and write them to the stream `<name>_late`, which queries
    /// can read or sink; window results are the same as with `Drop`.
    Side,
}

impl LatePolicy {
    /// The names `late_policy = '...'` accepts.
    pub const NAMES: &[&str] = &["drop", "side"];

    /// Parses a `late_policy` option value (case-insensitive); the error
    /// lists the valid policies.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.to_ascii_lowercase().as_str() {
            "drop" => Ok(Self::Drop),
            "side" => Ok(Self::Side),
            other => Err(format!(
                "late_policy = '{other}' is invalid; valid policies are: {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// A stream's `WATERMARK` clause and its event-time options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkDef {
    /// The event-time column (`ts` in `WATERMARK FOR ts AS ...`).
    pub column: String,
    /// The watermark expression as SQL (`ts - INTERVAL '4' SECOND`).
    pub expr: String,
    /// After this long without rows the stream no longer holds back the
    /// watermark (`idle_timeout` option).
    pub idle_timeout: Option<Duration>,
    /// Windows stay open this much longer than the watermark says, so rows up
    /// to this late still count (`allowed_lateness` option).
    pub allowed_lateness: Duration,
    /// What to do with late rows (`late_policy` option).
    pub late_policy: LatePolicy,
}

/// One stream's watermark as batches go by.
#[derive(Debug, Clone, Default)]
pub struct WatermarkTracker {
    watermark: Option<i64>,
    last_data_ms: Option<i64>,
    idle_timeout_ms: Option<i64>,
}

impl WatermarkTracker {
    /// A tracker for a stream with `def`.
    pub fn new(def: &WatermarkDef) -> Self {
        Self {
            watermark: None,
            last_data_ms: None,
            idle_timeout_ms: def.idle_timeout.map(|d| d.as_millis() as i64),
        }
    }

    /// Records a batch at `batch_time_ms` whose largest watermark-expression
    /// value is `candidate` (`None` when the batch had no rows).
    pub fn observe(&mut self, batch_time_ms: i64, candidate: Option<i64>) {
        if let Some(candidate) = candidate {
            self.watermark = Some(self.watermark.map_or(candidate, |w| w.max(candidate)));
            self.last_data_ms = Some(batch_time_ms);
        }
    }

    /// The stream's watermark, once it has seen a row.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// True when the stream has had no rows for its idle timeout (a stream
    /// that never sent a row is idle once the timeout has passed since
    /// `started_ms`).
    pub fn is_idle(&self, batch_time_ms: i64, started_ms: i64) -> bool {
        match self.idle_timeout_ms {
            None => false,
            Some(timeout) => batch_time_ms - self.last_data_ms.unwrap_or(started_ms) >= timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_policy_parses_drop_and_side_and_lists_them_otherwise() {
        assert_eq!(LatePolicy::parse("drop"), Ok(LatePolicy::Drop));
        assert_eq!(LatePolicy::parse("SIDE"), Ok(LatePolicy::Side));
        let error = LatePolicy::parse("keep").unwrap_err();
        assert!(
            error.contains("'keep'") && error.ends_with("drop, side"),
            "{error}"
        );
    }

    #[test]
    fn watermark_never_goes_back_and_idleness_is_timed() {
        let def = WatermarkDef {
            column: "ts".into(),
            expr: "ts".into(),
            idle_timeout: Some(Duration::from_secs(3)),
            allowed_lateness: Duration::ZERO,
            late_policy: LatePolicy::Drop,
        };
        let mut w = WatermarkTracker::new(&def);
        assert_eq!(w.watermark(), None);
        w.observe(0, Some(10));
        w.observe(1_000, Some(5));
        assert_eq!(w.watermark(), Some(10));
        w.observe(2_000, None);
        assert!(!w.is_idle(2_000, 0));
        assert!(!w.is_idle(3_999, 0));
        assert!(w.is_idle(4_000, 0));
    }
}
