//! Flink's spellings of window table functions that sqlparser cannot parse,
//! rewritten at the token level before parsing.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

/// The named argument `SESSION(TABLE t PARTITION BY k, ...)` is parsed into.
pub const SESSION_PARTITION_ARGUMENT: &str = "partition_by";

/// Flink's window table functions take `TABLE name` as first argument
/// (`TUMBLE(TABLE bid, DESCRIPTOR(ts), ...)`), which sqlparser cannot parse;
/// dropping the `TABLE` keyword there leaves `TUMBLE(bid, ...)`, the same call.
/// Flink's `SESSION(TABLE bid PARTITION BY bidder, ...)` (or `PARTITION BY
/// (k1, k2)`) cannot be parsed either: its `PARTITION BY` becomes a named
/// argument, `SESSION(bid, partition_by => bidder, ...)`, which
/// [`crate::sql::session`] reads back.
pub(super) fn drop_table_keyword(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    // Parenthesis depth, and the depth inside a SESSION( call while its
    // first argument is being read.
    let mut depth = 0usize;
    let mut session_first_argument: Option<usize> = None;
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        let word = |t: &Token, value: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(value));
        let previous = |out: &[TokenWithSpan], n: usize| {
            out.iter()
                .rev()
                .filter(|t| !matches!(t.token, Token::Whitespace(_)))
                .nth(n)
                .map(|t| t.token.clone())
        };
        match &token.token {
            Token::LParen => {
                depth += 1;
                if previous(&out, 0).is_some_and(|t| word(&t, "SESSION")) {
                    session_first_argument = Some(depth);
                }
            }
            Token::RParen => {
                if session_first_argument == Some(depth) {
                    session_first_argument = None;
                }
                depth = depth.saturating_sub(1);
            }
            Token::Comma if session_first_argument == Some(depth) => {
                session_first_argument = None;
            }
            Token::Word(w) if w.keyword == Keyword::TABLE && w.quote_style.is_none() => {
                let after_paren = previous(&out, 0).is_some_and(|t| t == Token::LParen);
                let window = previous(&out, 1).is_some_and(|t| {
                    ["TUMBLE", "HOP", "SESSION", "CUMULATE"]
                        .iter()
                        .any(|name| word(&t, name))
                });
                if after_paren && window {
                    continue;
                }
            }
            t if session_first_argument == Some(depth) && word(t, "PARTITION") => {
                let mut skipped = Vec::new();
                while tokens
                    .peek()
                    .is_some_and(|t| matches!(t.token, Token::Whitespace(_)))
                {
                    skipped.extend(tokens.next());
                }
                if tokens.peek().is_some_and(|t| word(&t.token, "BY")) {
                    tokens.next();
                    let span = token.span;
                    for t in [
                        Token::Comma,
                        Token::Whitespace(Whitespace::Space),
                        Token::make_word(SESSION_PARTITION_ARGUMENT, None),
                        Token::Whitespace(Whitespace::Space),
                        Token::RArrow,
                    ] {
                        out.push(TokenWithSpan::new(t, span));
                    }
                    session_first_argument = None;
                    continue;
                }
                out.push(token);
                out.extend(skipped);
                continue;
            }
            _ => {}
        }
        out.push(token);
    }
    out
}
