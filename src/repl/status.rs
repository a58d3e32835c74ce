//! The live status line under a foreground query: one line on stderr,
//! rewritten in place after every batch (`\r` + clear line), and cleared
//! before anything else is printed. Only on a terminal: when stderr is a file
//! or a pipe nothing is written, so captured output holds no control codes.
//! It renders the query's progress records ([`quiver::ProgressRecord`]), the
//! same that `SHOW PROGRESS` and `--progress-json` show.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use quiver::{ProgressHistory, format_time};

/// Carriage return and "erase the whole line".
const CLEAR: &str = "\r\x1b[2K";

/// The status line of the foreground query, if stderr is a terminal.
pub struct StatusLine {
    enabled: bool,
    shown: bool,
}

impl StatusLine {
    /// A status line that draws only when stderr is a terminal.
    pub fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    /// Draws the newest record of `query`'s `history` (whose batches are
    /// `interval` apart).
    pub fn show(&mut self, query: &str, history: &ProgressHistory, interval: Duration) {
        if !self.enabled || history.last().is_none() {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{CLEAR}{}", render(query, history, interval));
        let _ = stderr.flush();
        self.shown = true;
    }

    /// Erases the current line even if no status is shown: after Ctrl-C, the
    /// terminal's echo `^C` is there.
    pub fn erase(&mut self) {
        self.shown = self.enabled;
        self.clear();
    }

    /// Erases the line, so results and messages start on a clean line.
    pub fn clear(&mut self) {
        if self.shown {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "{CLEAR}");
            let _ = stderr.flush();
            self.shown = false;
        }
    }
}

/// `query_1 · batch 12 · 1000 rows/s · 3.3 ms · watermark - · 0 late · Ctrl-C stops`:
/// the last batch's input rate (its `input_rows_per_second`; rows over the
/// interval for a first batch) and duration (to its commit), the watermark
/// after it, the rows dropped as late so far, and `· lag N` (summed over
/// partitions) before `Ctrl-C` when a source reports lag (Kafka).
pub fn render(query: &str, history: &ProgressHistory, interval: Duration) -> String {
    let Some(last) = history.last() else {
        return format!("{query} · batch - · Ctrl-C stops");
    };
    let seconds = interval.as_secs_f64().max(1e-3);
    let rate = (last.input_rows_per_second).unwrap_or(last.input_rows as f64 / seconds);
    let mut watermark = last
        .watermark_ms
        .map_or_else(|| "-".to_string(), format_time);
    if let Some(held) = &last.watermark_held_by {
        watermark += &format!(" (held by {held})");
    }
    let lags = (last.sources.iter().flat_map(|s| &s.partitions)).filter_map(|p| p.lag);
    let lag = lags.reduce(|a, b| a + b);
    let lag = lag.map_or_else(String::new, |lag| format!(" · lag {lag}"));
    format!(
        "{query} · batch {} · {rate:.0} rows/s · {:.1} ms · watermark {watermark} · {} late{lag} · Ctrl-C stops",
        last.batch_id,
        last.durations.total_ms,
        history.totals().late_rows,
    )
}

#[cfg(test)]
mod tests {
    use quiver::{PartitionProgress, PhaseDurations, ProgressRecord, SourceProgress};

    use super::*;

    fn history(records: Vec<ProgressRecord>) -> ProgressHistory {
        let mut history = ProgressHistory::default();
        records.into_iter().for_each(|r| history.push(r));
        history
    }

    #[test]
    fn renders_rate_duration_watermark_and_late_rows() {
        let first = ProgressRecord {
            late_rows: 2,
            ..ProgressRecord::default()
        };
        let last = ProgressRecord {
            batch_id: 12,
            input_rows: 500,
            input_rows_per_second: Some(1000.0),
            durations: PhaseDurations {
                total_ms: 3.3,
                ..PhaseDurations::default()
            },
            watermark_ms: Some(1_767_225_600_000),
            ..ProgressRecord::default()
        };
        assert_eq!(
            render(
                "query_1",
                &history(vec![first, last]),
                Duration::from_secs(1)
            ),
            "query_1 · batch 12 · 1000 rows/s · 3.3 ms · \
             watermark 2026-01-01 00:00:00 · 2 late · Ctrl-C stops"
        );
    }

    #[test]
    fn a_first_batch_reads_its_rate_over_the_interval() {
        let first = ProgressRecord {
            input_rows: 500,
            ..ProgressRecord::default()
        };
        let line = render("query_1", &history(vec![first]), Duration::from_millis(500));
        assert!(line.contains(" · 1000 rows/s · "), "{line}");
    }

    #[test]
    fn shows_the_lag_summed_when_a_source_reports_it() {
        let mut record = ProgressRecord {
            batch_id: 1,
            ..ProgressRecord::default()
        };
        let line = render(
            "query_1",
            &history(vec![record.clone()]),
            Duration::from_secs(1),
        );
        assert!(!line.contains("lag"), "{line}");
        let partition = |p: &str, lag| PartitionProgress {
            partition: p.into(),
            start: "0".into(),
            end: "1".into(),
            lag: Some(lag),
        };
        record.sources = vec![SourceProgress {
            stream: "bids".into(),
            input_rows: 0,
            partitions: vec![partition("bids/0", 3), partition("bids/1", 4)],
        }];
        let line = render("query_1", &history(vec![record]), Duration::from_secs(1));
        assert!(line.ends_with(" · 0 late · lag 7 · Ctrl-C stops"), "{line}");
    }

    #[test]
    fn names_the_partition_holding_the_watermark() {
        let record = ProgressRecord {
            watermark_ms: Some(1_767_225_600_000),
            watermark_held_by: Some("bids partition 1".into()),
            ..ProgressRecord::default()
        };
        assert!(
            render("query_1", &history(vec![record]), Duration::from_secs(1))
                .contains("watermark 2026-01-01 00:00:00 (held by bids partition 1) ·")
        );
    }
}
