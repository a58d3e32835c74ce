//! How reports read as text: times (`2026-11-24 10:00:03`), the `--progress`
//! line of a batch, and what became of a batch's late rows. The library only
//! renders; the front ends decide whether and where to print.

use super::BatchEnd;

/// Renders a time in ms since the epoch as `2026-11-24 10:00:03` (with
/// milliseconds when they are not zero).
pub fn format_time(ms: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return ms.to_string();
    };
    if ms % 1000 == 0 {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
    }
}

impl BatchEnd {
    /// The batch's `--progress` line: `progress: query_1 batch 5: 920 rows
    /// in, watermark ..., 1 results, state 40 rows`; `None` for the batches
    /// that only close windows at the end of input.
    pub fn progress_line(&self) -> Option<String> {
        let progress = self.progress.as_ref()?;
        let mut line = format!(
            "progress: {} batch {}: {} rows in",
            self.query, self.batch_id, progress.input_rows
        );
        match (progress.watermark_ms, &progress.watermark_held_by) {
            (Some(watermark), held) => {
                line += &format!(", watermark {}", format_time(watermark));
                if let Some(held) = held {
                    line += &format!(" (held by {held})");
                }
            }
            (None, Some(held)) => line += &format!(", no watermark yet (held by {held})"),
            (None, None) => {}
        }
        if progress.late_rows > 0 {
            line += ", ";
            line += &late_outcome(progress.late_rows, &progress.late_routed, false);
        }
        line += &format!(
            ", {} results, state {} rows",
            self.results, progress.state_rows
        );
        Some(line)
    }
}

/// What became of a batch's `late` rows, `routed` of them to late streams:
/// `dropped N late rows, routed N late rows to stream s_late` (warnings) or,
/// not `verb_first`, `N late rows dropped, N late rows routed to stream
/// s_late` (progress lines).
pub(crate) fn late_outcome(late: u64, routed: &[(String, u64)], verb_first: bool) -> String {
    let say = |n: u64, verb: &str, to: &str| {
        if verb_first {
            format!("{verb} {n} late rows{to}")
        } else {
            format!("{n} late rows {verb}{to}")
        }
    };
    let sent: u64 = routed.iter().map(|(_, n)| n).sum();
    let mut parts = Vec::new();
    if late > sent {
        parts.push(say(late - sent, "dropped", ""));
    }
    for (stream, n) in routed.iter().filter(|(_, n)| *n > 0) {
        parts.push(say(*n, "routed", &format!(" to stream {stream}")));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Progress;

    fn end(progress: Option<Progress>) -> BatchEnd {
        BatchEnd {
            query: "query_1".into(),
            batch_id: 5,
            batch_time_ms: 0,
            results: 1,
            offsets: Vec::new(),
            input: Default::default(),
            progress,
        }
    }

    #[test]
    fn a_progress_line_names_rows_watermark_late_rows_results_and_state() {
        let progress = Progress {
            input_rows: 920,
            watermark_ms: Some(1_767_225_600_999),
            late_rows: 3,
            late_routed: vec![("bids_late".into(), 1)],
            state_rows: 40,
            ..Progress::default()
        };
        assert_eq!(
            end(Some(progress)).progress_line().as_deref(),
            Some(
                "progress: query_1 batch 5: 920 rows in, watermark 2026-01-01 00:00:00.999, \
                 2 late rows dropped, 1 late rows routed to stream bids_late, 1 results, state 40 rows"
            )
        );
    }

    #[test]
    fn closing_batches_have_no_progress_line() {
        assert_eq!(end(None).progress_line(), None);
    }

    #[test]
    fn times_show_milliseconds_only_when_there_are_some() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_500), "1970-01-01 00:00:01.500");
    }
}
