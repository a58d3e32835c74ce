//! Line editing for the REPL (rustyline): a statement is complete when its
//! last token is `;` (so it may span lines, and a `;` inside a string or a
//! comment does not count), backslash commands are complete at once, and Tab
//! completes keywords, backslash commands, file names after `\i`, and the
//! names of streams, views, sink tables, their columns and background queries.

use std::sync::Arc;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Behavior, Config, Editor, Helper};

use super::commands::COMMANDS;

/// Keywords offered by completion: the statements quiver adds and the SQL
/// most streaming queries use.
const KEYWORDS: &[&str] = &[
    "AND", "AS", "ASC", "AVG", "BETWEEN", "BY", "CASE", "CAST", "COUNT", "CREATE", "DESC",
    "DESCRIBE", "DISTINCT", "ELSE", "END", "EXPLAIN", "FALSE", "FROM", "GROUP", "HAVING", "HOP",
    "IF", "IN", "INSERT", "INTERVAL", "INTO", "IS", "JOIN", "LEFT", "LIKE", "LIMIT", "MAX", "MIN",
    "MINUTE", "NOT", "NULL", "ON", "OR", "ORDER", "PROGRESS", "QUERIES", "QUERY", "SECOND",
    "SELECT", "SET", "SHOW", "SINK", "STOP", "STREAM", "STREAMS", "SUM", "TABLE", "TABLES", "THEN",
    "TRUE", "TUMBLE", "UNION", "VALUES", "VIEW", "WHEN", "WHERE", "WITH",
];

/// Column names every stream or window has.
const SYSTEM_COLUMNS: &[&str] = &["_batch_time", "window_start", "window_end"];

/// The REPL's rustyline helper: completion and statement validation. It
/// reads names from the session's catalog at each Tab.
pub struct ReplHelper {
    ctx: Arc<quiver::Context>,
    files: FilenameCompleter,
}

/// A rustyline editor with the REPL's helper and a file-backed history.
pub type ReplEditor = Editor<ReplHelper, FileHistory>;

/// An editor for `ctx`'s session.
pub fn new(ctx: Arc<quiver::Context>) -> rustyline::Result<ReplEditor> {
    // Prompts and editing go to the terminal itself, so that with stdout
    // redirected (`quiver > results.txt`) the file holds only results.
    let config = Config::builder()
        .behavior(Behavior::PreferTerm)
        .max_history_size(10_000)?
        .history_ignore_dups(true)?
        .build();
    let mut editor = Editor::with_config(config)?;
    editor.set_helper(Some(ReplHelper {
        ctx,
        files: FilenameCompleter::new(),
    }));
    Ok(editor)
}

/// Whether `input` can be run: a backslash command, `quit`/`exit`, or SQL
/// whose last token is `;`. Unterminated strings and comments are incomplete.
pub fn is_complete(input: &str) -> bool {
    let input = input.trim();
    if input.is_empty() || input.starts_with('\\') || is_quit_word(input) {
        return true;
    }
    match Tokenizer::new(&GenericDialect {}, input).tokenize() {
        Ok(tokens) => {
            tokens
                .iter()
                .rev()
                .find(|t| !matches!(t, Token::Whitespace(_)))
                == Some(&Token::SemiColon)
        }
        Err(_) => false,
    }
}

/// `quit` and `exit` leave the REPL, as in psql.
pub fn is_quit_word(input: &str) -> bool {
    matches!(
        input
            .trim()
            .trim_end_matches(';')
            .to_ascii_lowercase()
            .as_str(),
        "quit" | "exit"
    )
}

impl ReplHelper {
    /// Stream, column and background query names known to the session.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = SYSTEM_COLUMNS.iter().map(|s| s.to_string()).collect();
        for stream in self.ctx.streams() {
            names.extend(stream.schema.fields().iter().map(|f| f.name().clone()));
            names.push(stream.name);
        }
        for sink in self.ctx.sink_tables() {
            names.extend(sink.schema.fields().iter().map(|f| f.name().clone()));
            names.push(sink.name);
        }
        names.extend(self.ctx.stream_views().into_iter().map(|v| v.name));
        names.extend(self.ctx.background().list().into_iter().map(|q| q.name));
        names.sort();
        names.dedup();
        names
    }

    /// Completions for the word `prefix` of SQL text: keywords in the case
    /// the user types, and names as they are.
    fn complete_word(&self, prefix: &str) -> Vec<Pair> {
        let lower = prefix.chars().all(|c| !c.is_ascii_uppercase()) && !prefix.is_empty();
        let starts = |candidate: &str| {
            candidate
                .get(..prefix.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
        };
        let mut pairs: Vec<Pair> = self
            .names()
            .into_iter()
            .filter(|n| starts(n))
            .map(|n| Pair {
                display: n.clone(),
                replacement: n,
            })
            .collect();
        pairs.extend(KEYWORDS.iter().filter(|k| starts(k)).map(|k| {
            let word = if lower {
                k.to_ascii_lowercase()
            } else {
                k.to_string()
            };
            Pair {
                display: word.clone(),
                replacement: word,
            }
        }));
        pairs
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        if before.trim_start().starts_with("\\i ") {
            return self.files.complete(line, pos, ctx);
        }
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '\\' | '?')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        if word.starts_with('\\') {
            let pairs = COMMANDS
                .iter()
                .filter(|(name, _, _)| name.starts_with(word))
                .map(|(name, _, _)| Pair {
                    display: name.to_string(),
                    replacement: name.to_string(),
                })
                .collect();
            return Ok((start, pairs));
        }
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        Ok((start, self.complete_word(word)))
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if is_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_complete_at_its_semicolon() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1;  -- done"));
        assert!(is_complete("\\q"));
        assert!(is_complete("exit"));
        assert!(is_complete(""));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT\n  1"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT 1 -- ;"));
        assert!(!is_complete("SELECT 1 /* ; */"));
    }

    fn helper() -> ReplHelper {
        ReplHelper {
            ctx: Arc::new(quiver::Context::default()),
            files: FilenameCompleter::new(),
        }
    }

    fn replacements(pairs: Vec<Pair>) -> Vec<String> {
        pairs.into_iter().map(|p| p.replacement).collect()
    }

    #[test]
    fn completion_copes_with_non_ascii_text() {
        let helper = helper();
        let history = rustyline::history::DefaultHistory::new();
        let ctx = rustyline::Context::new(&history);
        let line = "SELECT 'café·' AS é, sel";
        let (start, pairs) = helper.complete(line, line.len(), &ctx).unwrap();
        assert_eq!(&line[start..], "sel");
        assert_eq!(replacements(pairs), ["select"]);
        assert!(helper.complete_word("é").is_empty());
    }

    #[test]
    fn keywords_complete_in_the_case_typed() {
        let helper = helper();
        assert_eq!(replacements(helper.complete_word("sel")), ["select"]);
        assert_eq!(replacements(helper.complete_word("SEL")), ["SELECT"]);
        assert_eq!(replacements(helper.complete_word("_b")), ["_batch_time"]);
    }

    #[tokio::test]
    async fn stream_and_column_names_complete() {
        let helper = helper();
        helper
            .ctx
            .sql("CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid')")
            .await
            .unwrap();
        let names = replacements(helper.complete_word("bi"));
        assert!(names.contains(&"bids".to_string()), "{names:?}");
        assert!(names.contains(&"bidder".to_string()), "{names:?}");
        assert_eq!(replacements(helper.complete_word("chan")), ["channel"]);
    }
}
