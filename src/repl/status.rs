//! The live status line under a foreground query: one line on stderr,
//! rewritten in place after every batch (`\r` + clear line), and cleared
//! before anything else is printed. Only on a terminal: when stderr is a file
//! or a pipe nothing is written, so captured output holds no control codes.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use quiver::QueryProgress;
use quiver::{format_time, total_lag};

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

    /// Draws `progress` of `query` (whose batches are `interval` apart).
    pub fn show(&mut self, query: &str, progress: &QueryProgress, interval: Duration) {
        if !self.enabled || progress.batch_id.is_none() {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{CLEAR}{}", render(query, progress, interval));
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
/// the last batch's input rate and duration, the watermark after it, the
/// rows dropped as late so far, and `· lag N` (summed over partitions)
/// before `Ctrl-C` when a source reports lag (Kafka).
pub fn render(query: &str, progress: &QueryProgress, interval: Duration) -> String {
    let last = &progress.last;
    let seconds = interval.as_secs_f64().max(1e-3);
    let rate = last.input_rows as f64 / seconds;
    let mut watermark = last
        .watermark_ms
        .map_or_else(|| "-".to_string(), format_time);
    if let Some(held) = &last.watermark_held_by {
        watermark += &format!(" (held by {held})");
    }
    let batch = progress
        .batch_id
        .map_or_else(|| "-".to_string(), |id| id.to_string());
    let lag = total_lag(&last.lag).map_or_else(String::new, |lag| format!(" · lag {lag}"));
    format!(
        "{query} · batch {batch} · {rate:.0} rows/s · {:.1} ms · watermark {watermark} · {} late{lag} · Ctrl-C stops",
        last.duration.as_secs_f64() * 1e3,
        progress.summary.late_rows,
    )
}

#[cfg(test)]
mod tests {
    use quiver::{Progress, QuerySummary};

    use super::*;

    #[test]
    fn renders_rate_duration_watermark_and_late_rows() {
        let progress = QueryProgress {
            summary: QuerySummary {
                late_rows: 2,
                ..QuerySummary::default()
            },
            batch_id: Some(12),
            last: Progress {
                input_rows: 500,
                duration: Duration::from_micros(3_300),
                watermark_ms: Some(1_767_225_600_000),
                ..Progress::default()
            },
        };
        assert_eq!(
            render("query_1", &progress, Duration::from_millis(500)),
            "query_1 · batch 12 · 1000 rows/s · 3.3 ms · \
             watermark 2026-01-01 00:00:00 · 2 late · Ctrl-C stops"
        );
    }

    #[test]
    fn shows_the_lag_summed_when_a_source_reports_it() {
        let mut progress = QueryProgress {
            batch_id: Some(1),
            ..QueryProgress::default()
        };
        let line = render("query_1", &progress, Duration::from_secs(1));
        assert!(!line.contains("lag"), "{line}");
        progress.last.lag = vec![quiver::StreamLag {
            stream: "bids".into(),
            partitions: vec![("bids/0".into(), 3), ("bids/1".into(), 4)],
        }];
        let line = render("query_1", &progress, Duration::from_secs(1));
        assert!(line.ends_with(" · 0 late · lag 7 · Ctrl-C stops"), "{line}");
    }

    #[test]
    fn names_the_partition_holding_the_watermark() {
        let progress = QueryProgress {
            last: Progress {
                watermark_ms: Some(1_767_225_600_000),
                watermark_held_by: Some("bids partition 1".into()),
                ..Progress::default()
            },
            ..QueryProgress::default()
        };
        assert!(
            render("query_1", &progress, Duration::from_secs(1))
                .contains("watermark 2026-01-01 00:00:00 (held by bids partition 1) ·")
        );
    }
}
