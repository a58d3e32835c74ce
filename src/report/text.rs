//! How reports read as text: times (`2026-11-24 10:00:03`), the `--progress`
//! line of a batch, and what became of a batch's late rows. The library only
//! renders; the front ends decide whether and where to print.

use super::{BatchEnd, StreamLag, total_lag};

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
        if let Some(lag) = total_lag(&progress.lag) {
            line += &format!(", lag {lag}");
        }
        line += &format!(
            ", {} results, state {} rows",
            self.results, progress.state_rows
        );
        Some(line)
    }
}

/// The lag summed, then per partition: `12 (bids/0: 5, bids/1: 7)`, the
/// partitions prefixed with their stream when the query reads several
/// lagging streams; `None` when no stream reports lag (what `SHOW QUERIES`
/// shows).
pub fn format_lag(lags: &[StreamLag]) -> Option<String> {
    let total = total_lag(lags)?;
    let several = lags.len() > 1;
    let parts: Vec<String> = lags
        .iter()
        .flat_map(|s| {
            s.partitions.iter().map(move |(p, n)| {
                if several {
                    format!("{} {p}: {n}", s.stream)
                } else {
                    format!("{p}: {n}")
                }
            })
        })
        .collect();
    Some(format!("{total} ({})", parts.join(", ")))
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

    fn lag(stream: &str, partitions: &[(&str, u64)]) -> StreamLag {
        StreamLag {
            stream: stream.into(),
            partitions: partitions
                .iter()
                .map(|(p, n)| (p.to_string(), *n))
                .collect(),
        }
    }

    #[test]
    fn lag_is_summed_in_the_progress_line_and_per_partition_in_its_detail() {
        let lags = vec![lag("bids", &[("bids/0", 5), ("bids/1", 7)])];
        let progress = Progress {
            input_rows: 3,
            lag: lags.clone(),
            ..Progress::default()
        };
        assert_eq!(
            end(Some(progress)).progress_line().as_deref(),
            Some("progress: query_1 batch 5: 3 rows in, lag 12, 1 results, state 0 rows")
        );
        assert_eq!(
            format_lag(&lags).as_deref(),
            Some("12 (bids/0: 5, bids/1: 7)")
        );
        let two = vec![lag("a", &[("t/0", 1)]), lag("b", &[("u/0", 0)])];
        assert_eq!(format_lag(&two).as_deref(), Some("1 (a t/0: 1, b u/0: 0)"));
        // Sources that cannot tell show nothing.
        assert_eq!(format_lag(&[]), None);
        assert!(
            !end(Some(Progress::default()))
                .progress_line()
                .unwrap()
                .contains("lag")
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
