//! The REPL's backslash commands (`\?`, `\q`, `\d`, `\i`, `\timing`,
//! `\format`), parsed from one input line. `\?` prints its help from the same
//! table the parser and the completer use, so the three never disagree.

use std::path::PathBuf;
use std::str::FromStr;

use quiver::OutputFormat;

/// One backslash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `\?`: list the commands.
    Help,
    /// `\q`: stop background queries (flushing their sinks) and quit.
    Quit,
    /// `\d`: list streams and tables; `\d name`: describe one.
    Describe(Option<String>),
    /// `\i file.sql`: run the statements of a file.
    Include(PathBuf),
    /// `\timing [on|off]`: print how long each statement took (toggles without argument).
    Timing(Option<bool>),
    /// `\format table|csv|ndjson`: how results are printed.
    Format(OutputFormat),
}

/// Name, arguments and description of every command, for `\?` and completion.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("\\?", "", "show this help"),
    (
        "\\q",
        "",
        "quit (background queries stop after their current batch; sinks are flushed); also Ctrl-D",
    ),
    (
        "\\d",
        "[NAME]",
        "list streams and tables, or describe stream or table NAME",
    ),
    ("\\i", "FILE", "run the SQL statements in FILE"),
    (
        "\\timing",
        "[on|off]",
        "print how long each statement takes (toggle)",
    ),
    (
        "\\format",
        "table|csv|ndjson",
        "how results are printed (default table)",
    ),
];

/// The name `\format` takes for `format`.
pub fn format_name(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Table => "table",
        OutputFormat::Csv => "csv",
        OutputFormat::Ndjson => "ndjson",
    }
}

/// The text `\?` prints: the commands, then how statements and Ctrl-C work.
pub fn help() -> String {
    let mut text = String::from("Commands:\n");
    for (name, args, description) in COMMANDS {
        let usage = format!("{name} {args}");
        text += &format!("  {usage:<26} {description}\n");
    }
    text += "\nStatements end with ';' and may span lines. A SELECT over a stream runs in the\n\
             foreground and prints every batch or window; Ctrl-C stops it after the current\n\
             batch. CREATE SINK ... AS SELECT and INSERT INTO ... SELECT run in the background:\n\
             SHOW QUERIES lists them, SHOW PROGRESS name shows one's last batches,\n\
             STOP QUERY name stops one.\n";
    text
}

impl FromStr for Command {
    type Err = String;

    fn from_str(line: &str) -> Result<Self, String> {
        let line = line.trim().trim_end_matches(';').trim();
        let (name, arg) = match line.split_once(char::is_whitespace) {
            Some((name, arg)) => (name, Some(arg.trim()).filter(|a| !a.is_empty())),
            None => (line, None),
        };
        match (name, arg) {
            ("\\?" | "\\h" | "\\help", None) => Ok(Self::Help),
            ("\\q" | "\\quit", None) => Ok(Self::Quit),
            ("\\d", arg) => Ok(Self::Describe(arg.map(str::to_string))),
            ("\\i", Some(file)) => Ok(Self::Include(PathBuf::from(file))),
            ("\\i", None) => Err("\\i needs a file name: \\i FILE".into()),
            ("\\timing", None) => Ok(Self::Timing(None)),
            ("\\timing", Some("on")) => Ok(Self::Timing(Some(true))),
            ("\\timing", Some("off")) => Ok(Self::Timing(Some(false))),
            ("\\format", Some(format)) => format.parse().map(Self::Format),
            ("\\format", None) => Err("\\format needs a format: table, csv or ndjson".into()),
            _ => Err(format!(
                "unknown command '{line}'; commands are: {} (\\? explains them)",
                COMMANDS
                    .iter()
                    .map(|(name, _, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_their_arguments() {
        assert_eq!("\\q".parse(), Ok(Command::Quit));
        assert_eq!("\\d".parse(), Ok(Command::Describe(None)));
        assert_eq!(
            "\\d bids".parse(),
            Ok(Command::Describe(Some("bids".into())))
        );
        assert_eq!(
            "\\i sql/demo.sql".parse(),
            Ok(Command::Include("sql/demo.sql".into()))
        );
        assert_eq!("\\timing on".parse(), Ok(Command::Timing(Some(true))));
        assert_eq!(
            "\\format csv".parse(),
            Ok(Command::Format(OutputFormat::Csv))
        );
    }

    #[test]
    fn unknown_commands_and_formats_say_what_is_valid() {
        let err = "\\x".parse::<Command>().unwrap_err();
        assert!(err.contains("\\timing"), "{err}");
        let err = "\\format xml".parse::<Command>().unwrap_err();
        assert!(err.contains("table, csv, ndjson"), "{err}");
    }

    #[test]
    fn help_lists_every_command() {
        let help = help();
        for (name, _, _) in COMMANDS {
            assert!(help.contains(name), "{name} missing from help");
        }
    }
}
