//! The interactive REPL: `quiver` with no arguments on a terminal. It reads
//! statements with rustyline (multi-line up to `;`, history in
//! `~/.quiver_history`, completion), runs them through `quiver::Context` like
//! `quiver run` does, and keeps the session — streams, settings, background
//! queries — alive across errors and Ctrl-C. Ctrl-D or `\q` stops background
//! queries gracefully (sinks flushed and closed) and exits.
//!
//! Files: `editor.rs` (rustyline helper), `commands.rs` (backslash commands),
//! `catalog.rs` (`\d`), `session.rs` (running input, foreground queries,
//! Ctrl-C), `status.rs` (the live status line).

mod catalog;
mod commands;
mod editor;
mod session;
mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use quiver::OutputFormat;
use rustyline::error::ReadlineError;
use tokio::runtime::Runtime;

use crate::notices::Notices;
use session::{Flow, Session};

/// The prompt for the first line of a statement (continuation lines have none).
const PROMPT: &str = "quiver> ";

/// The history file: `$HOME/.quiver_history`, if there is a home directory.
fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".quiver_history"))
}

/// Runs the REPL on `runtime` until `\q` or Ctrl-D.
pub fn run(
    runtime: &Runtime,
    ctx: quiver::Context,
    format: OutputFormat,
    show_empty: bool,
    progress: bool,
    page: Option<crate::ui::Page>,
) -> anyhow::Result<()> {
    let ctx = Arc::new(ctx);
    let mut session = {
        let _guard = runtime.enter();
        Session::new(ctx.clone(), format, show_empty)?
            .with_progress(progress)
            .with_page(page)
    };
    let mut editor = editor::new(ctx.clone())?;
    let idle = Arc::new(AtomicBool::new(false));
    if let Ok(printer) = editor.create_external_printer() {
        Notices::global().attach(printer);
        watch_failures(ctx, idle.clone());
    }
    let history = history_path();
    if let Some(path) = &history
        && path.exists()
        && let Err(e) = editor.load_history(path)
    {
        eprintln!("warning: cannot read history {}: {e}", path.display());
    }
    eprintln!(
        "quiver {}: continuous SQL over streams. Statements end with ';'. \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        session.report_failures();
        idle.store(true, Ordering::SeqCst);
        Notices::global().set_at_prompt(true);
        let line = editor.readline(PROMPT);
        Notices::global().set_at_prompt(false);
        idle.store(false, Ordering::SeqCst);
        let input = match line {
            Ok(input) => input,
            // Ctrl-C at the prompt discards the line being typed, as in psql.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: reading input: {e}");
                break;
            }
        };
        if input.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(input.trim());
        if let Some(path) = &history
            && let Err(e) = editor.save_history(path)
        {
            eprintln!("warning: cannot write history {}: {e}", path.display());
        }
        if runtime.block_on(session.handle(&input)) == Flow::Quit {
            break;
        }
    }
    runtime.block_on(session.shutdown())
}

/// While the user sits at the prompt, prints failures of background queries
/// above it as they happen (the main loop reports the others before the next
/// prompt; each failure is taken, and printed, once).
fn watch_failures(ctx: Arc<quiver::Context>, idle: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(250));
            if !idle.load(Ordering::SeqCst) {
                continue;
            }
            for failure in ctx.background().take_failures() {
                Notices::global().show_each(&format!("error: {failure}"));
            }
        }
    });
}
