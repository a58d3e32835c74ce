//! Messages the library reports through `tracing` (a socket source
//! retrying, late rows, a file sink rolling over), shown the way a person
//! reads them: `warning: socket source: cannot connect ...` instead of a
//! diagnostic line with a timestamp and a level. With `RUST_LOG` set, main
//! keeps tracing's own format for diagnostics instead.
//!
//! In the REPL the lines go above the prompt through rustyline's external
//! printer, so they never land inside the line being typed, and a message
//! that repeats (the same words, whatever its numbers) is shown once, then
//! summarized as `… (repeated 12×)` at most every [`REPEAT_SUMMARY`]. Under
//! a foreground query they erase the status line first; it is redrawn after
//! the next batch.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rustyline::ExternalPrinter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Carriage return and "erase the whole line": clears the status line.
const CLEAR: &str = "\r\x1b[2K";

/// How often a repeating message is summarized while it goes on repeating.
pub const REPEAT_SUMMARY: Duration = Duration::from_secs(30);

/// Formats an event as its message alone, after `warning: ` or `error: `.
pub struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        match *event.metadata().level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            _ => {}
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Where the process's messages go: stderr, or above the REPL's prompt.
pub struct Notices {
    state: Mutex<State>,
}

struct State {
    /// The REPL's printer, once the REPL runs.
    printer: Option<Box<dyn ExternalPrinter + Send>>,
    /// Whether the REPL is waiting at its prompt (else stderr is free).
    at_prompt: bool,
    /// Summarizes repeats, in the REPL only.
    repeats: Option<Repeats>,
}

impl Notices {
    /// The process's one instance.
    pub fn global() -> &'static Notices {
        static NOTICES: OnceLock<Notices> = OnceLock::new();
        NOTICES.get_or_init(|| Notices {
            state: Mutex::new(State {
                printer: None,
                at_prompt: false,
                repeats: None,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on, messages go through `printer` while the REPL waits at
    /// its prompt, and repeats are summarized.
    pub fn attach(&self, printer: impl ExternalPrinter + Send + 'static) {
        let mut state = self.state();
        state.printer = Some(Box::new(printer));
        state.repeats = Some(Repeats::default());
    }

    /// Tells whether the REPL is at its prompt (rustyline owns the terminal).
    pub fn set_at_prompt(&self, at_prompt: bool) {
        self.state().at_prompt = at_prompt;
    }

    /// Shows one message (a line, without its newline); in the REPL, a
    /// repeat of the last one is held back and summarized.
    pub fn show(&self, line: &str) {
        let mut state = self.state();
        let lines = match &mut state.repeats {
            Some(repeats) => repeats.admit(line, Instant::now()),
            None => vec![line.to_string()],
        };
        state.print(lines);
    }

    /// Shows one message that must never be summarized (a query's failure).
    pub fn show_each(&self, line: &str) {
        self.state().print(vec![line.to_string()]);
    }
}

impl State {
    fn print(&mut self, lines: Vec<String>) {
        for line in lines {
            if self.at_prompt
                && let Some(printer) = &mut self.printer
                && printer.print(format!("{line}\n")).is_ok()
            {
                continue;
            }
            let mut stderr = std::io::stderr().lock();
            let clear = if stderr.is_terminal() { CLEAR } else { "" };
            let _ = writeln!(stderr, "{clear}{line}");
            let _ = stderr.flush();
        }
    }
}

/// A `tracing` writer: collects one formatted event, shows it when dropped.
pub struct NoticeWriter(Vec<u8>);

impl Write for NoticeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for NoticeWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        for line in text.lines() {
            Notices::global().show(line);
        }
    }
}

/// Makes a [`NoticeWriter`] per event, for `tracing_subscriber::fmt`.
pub struct ToNotices;

impl<'a> MakeWriter<'a> for ToNotices {
    type Writer = NoticeWriter;

    fn make_writer(&'a self) -> Self::Writer {
        NoticeWriter(Vec::new())
    }
}

/// Shows the first of a run of messages that say the same thing (equal once
/// their numbers are left out) and then a summary of the run, `… (repeated
/// N×)` with the latest message, when it has gone on for [`REPEAT_SUMMARY`]
/// or when a different message ends it.
#[derive(Default)]
struct Repeats {
    /// The shape of the running message, its latest text, how many were held
    /// back, and when the run was last shown.
    run: Option<(String, String, u64, Instant)>,
}

impl Repeats {
    /// The lines to show now for `line`, arriving at `now`.
    fn admit(&mut self, line: &str, now: Instant) -> Vec<String> {
        let shape = shape(line);
        if let Some((run_shape, latest, held, shown)) = &mut self.run
            && *run_shape == shape
        {
            *held += 1;
            *latest = line.to_string();
            if now.duration_since(*shown) < REPEAT_SUMMARY {
                return Vec::new();
            }
            let summary = format!("{latest} (repeated {held}×)");
            *held = 0;
            *shown = now;
            return vec![summary];
        }
        let mut lines = Vec::new();
        if let Some((_, latest, held, _)) = self.run.take()
            && held > 0
        {
            lines.push(format!("{latest} (repeated {held}×)"));
        }
        lines.push(line.to_string());
        self.run = Some((shape, line.to_string(), 0, now));
        lines
    }
}

/// `line` with every run of digits as `#`: messages that differ only in a
/// count, a batch id or a delay have the same shape.
fn shape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_number = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_message_is_shown_once_then_summarized() {
        let mut repeats = Repeats::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let retry = |ms: u64| format!("warning: cannot connect; retrying in {ms}ms");
        assert_eq!(repeats.admit(&retry(100), at(0)), [retry(100)]);
        assert!(repeats.admit(&retry(200), at(1)).is_empty());
        assert!(repeats.admit(&retry(400), at(2)).is_empty());
        // After REPEAT_SUMMARY of repeats, one summary with the latest text.
        assert_eq!(
            repeats.admit(&retry(800), at(31)),
            [format!("{} (repeated 3×)", retry(800))]
        );
        assert!(repeats.admit(&retry(800), at(40)).is_empty());
        // A different message closes the run with its summary first.
        assert_eq!(
            repeats.admit("warning: connected", at(41)),
            [
                format!("{} (repeated 1×)", retry(800)),
                "warning: connected".to_string()
            ]
        );
        assert_eq!(
            repeats.admit("warning: something else", at(42)),
            ["warning: something else"]
        );
    }

    #[test]
    fn numbers_do_not_change_a_messages_shape() {
        assert_eq!(
            shape("batch 12: 3 late rows"),
            shape("batch 7: 41 late rows")
        );
        assert_ne!(shape("batch 1: late rows"), shape("batch 1: skipped rows"));
    }
}
