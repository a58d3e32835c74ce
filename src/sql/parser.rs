//! Parsing quiver's SQL: DataFusion's dialect plus the streaming statements
//! (`CREATE STREAM`, `SHOW STREAMS`, `DESCRIBE`, `SET`, `EXPLAIN`). Built on
//! sqlparser's `Parser` the way DataFusion's `DFParser` adds
//! `CREATE EXTERNAL TABLE`: peek at the leading keywords, parse our statements
//! with the parser's own building blocks, hand everything else to sqlparser.

use datafusion::sql::sqlparser::ast::{self, ColumnDef, ObjectName};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{
    Location, Token, TokenWithSpan, Tokenizer, Whitespace,
};

use super::SqlError;
use crate::options::Options;

mod create_stream;
use create_stream::{has_with_options, parse_create_stream};

/// One parsed statement of a script.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // statements are few and short-lived
pub enum Statement {
    /// `CREATE STREAM [IF NOT EXISTS] name [(columns)] WITH (key = value, ...)`,
    /// or Flink's `CREATE TABLE name (columns) WITH (...)`: a stream when the
    /// connector is a source, a sink table when it is a sink.
    CreateStream {
        /// Stream name, as written (identifiers are case-sensitive).
        name: String,
        /// Declared physical columns (may be empty when the connector can infer them).
        columns: Vec<ColumnDef>,
        /// Computed columns `name AS expr`, in declaration order, after the physical ones.
        computed: Vec<(String, ast::Expr)>,
        /// `WATERMARK FOR column AS expr` (`WATERMARK FOR column` alone: the
        /// column itself, no delay).
        watermark: Option<(String, ast::Expr)>,
        /// `PRIMARY KEY (columns) NOT ENFORCED`, as a constraint or inline on
        /// a column: recorded (DESCRIBE shows it), not used yet.
        primary_key: Vec<String>,
        /// All `WITH` options, including `connector`.
        options: Options,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
        /// Written as `CREATE TABLE` (Flink's spelling).
        table_syntax: bool,
    },
    /// `CREATE [OR REPLACE] VIEW name AS query`.
    CreateView {
        /// View name.
        name: String,
        /// The view's query.
        query: Box<ast::Query>,
        /// `OR REPLACE` was given.
        or_replace: bool,
    },
    /// `CREATE FUNCTION name AS 'class'` (Flink's Java UDF registration).
    CreateFunction {
        /// Function name.
        name: String,
        /// The implementing class as written.
        class: String,
    },
    /// `SHOW STREAMS`.
    ShowStreams,
    /// `DESCRIBE name` / `DESC name`.
    Describe(String),
    /// `SET name = value` / `SET name TO value`.
    Set {
        /// Setting name, lower case.
        name: String,
        /// Value as written (quotes removed).
        value: String,
    },
    /// `EXPLAIN <query>`: the streaming plan plus DataFusion's plan.
    Explain(Box<ast::Query>),
    /// A query: continuous when it reads a stream, one-off otherwise.
    Query(Box<ast::Query>),
    /// `INSERT INTO table SELECT ...`: a background query writing to a sink table.
    Insert {
        /// The sink table.
        table: String,
        /// The continuous query.
        query: Box<ast::Query>,
    },
    /// `CREATE SINK [IF NOT EXISTS] name [WITH (...)] AS SELECT ... [WITH (...)]`:
    /// declares a sink table with the query's schema and starts the query.
    CreateSink {
        /// Sink (and query) name.
        name: String,
        /// The continuous query.
        query: Box<ast::Query>,
        /// All `WITH` options, including `connector`.
        options: Options,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
    },
    /// `SHOW QUERIES`: the background queries and their progress.
    ShowQueries,
    /// `STOP QUERY name`: stop a background query after its current batch.
    StopQuery(String),
    /// `DROP STREAM | VIEW | TABLE [IF EXISTS] name`: quiver's own objects
    /// are dropped by quiver, others by DataFusion (`statement`).
    Drop {
        /// What the statement says it drops.
        kind: DropKind,
        /// The names, as written.
        names: Vec<String>,
        /// `IF EXISTS` was given.
        if_exists: bool,
        /// The statement, for DataFusion's own tables and views.
        statement: Box<ast::Statement>,
    },
    /// A statement of DataFusion's own dialect (`CREATE EXTERNAL TABLE`),
    /// parsed by DataFusion's parser.
    DataFusion(Box<datafusion::sql::parser::Statement>),
    /// Any other statement, executed by DataFusion as is.
    Other(Box<ast::Statement>),
}

/// The object a `DROP` statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropKind {
    /// `DROP STREAM`.
    Stream,
    /// `DROP VIEW`.
    View,
    /// `DROP TABLE`.
    Table,
}

/// A statement with the text it was parsed from, for messages.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    /// The statement.
    pub statement: Statement,
    /// Its source text, trimmed, without the trailing `;`.
    pub text: String,
    /// 1-based line where it starts in the script.
    pub line: u64,
}

/// Splits a script into statements and parses each one (without bounding
/// their depth: [`crate::sql::parse_script`] does that).
pub fn parse_script(sql: &str) -> Result<Vec<ParsedStatement>, SqlError> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Parse(e.to_string()))?;
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(NESTING_LIMIT)
        .with_tokens_with_locations(drop_table_keyword(tokens));
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let start = parser.peek_token().span.start;
        if parser.peek_token().token == Token::EOF {
            return Ok(statements);
        }
        let statement = parse_statement(&mut parser).map_err(parse_error)?;
        let next = parser.peek_token();
        if !matches!(next.token, Token::SemiColon | Token::EOF) {
            return Err(parse_error(ParserError::ParserError(format!(
                // A location displays as " at Line: l, Column: c".
                "expected ';' after the statement, found {}{}",
                next.token, next.span.start
            ))));
        }
        let text = slice(sql, start, next.span.start).trim().to_string();
        statements.push(ParsedStatement {
            statement,
            text,
            line: start.line,
        });
    }
}

/// Flink's window table functions take `TABLE name` as first argument
/// (`TUMBLE(TABLE bid, DESCRIPTOR(ts), ...)`), which sqlparser cannot parse;
/// dropping the `TABLE` keyword there leaves `TUMBLE(bid, ...)`, the same call.
/// Flink's `SESSION(TABLE bid PARTITION BY bidder, ...)` (or `PARTITION BY
/// (k1, k2)`) cannot be parsed either: its `PARTITION BY` becomes a named
/// argument, `SESSION(bid, partition_by => bidder, ...)`, which
/// [`super::session`] reads back.
fn drop_table_keyword(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
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

/// How deeply sqlparser lets parentheses, CASE, function calls and subqueries
/// nest (its default recursion limit).
const NESTING_LIMIT: usize = 50;

/// The named argument `SESSION(TABLE t PARTITION BY k, ...)` is parsed into.
pub const SESSION_PARTITION_ARGUMENT: &str = "partition_by";

fn parse_error(e: ParserError) -> SqlError {
    if e == ParserError::RecursionLimitExceeded {
        return SqlError::Unsupported(format!(
            "expression too deep: more than {} nested levels of parentheses, CASE, function \
             calls or subqueries; flatten the nesting, or move parts into views",
            NESTING_LIMIT
        ));
    }
    let message = e
        .to_string()
        .trim_start_matches("sql parser error: ")
        .to_string();
    let hint = if message.contains("found: PARTITIONED") {
        "; PARTITIONED BY is not supported: file sinks take a partition_by = 'col1,col2' option"
    } else if message.contains("found: SYSTEM_TIME") {
        "; temporal joins (FOR SYSTEM_TIME AS OF) are not supported yet: join with a static table, or join windows"
    } else {
        ""
    };
    SqlError::Parse(format!("{message}{hint}"))
}

/// The text between two tokenizer locations (1-based line and column).
fn slice(sql: &str, start: Location, end: Location) -> &str {
    let offset = |loc: Location| -> usize {
        if loc.line == 0 {
            return sql.len();
        }
        let mut line_start = 0;
        for _ in 1..loc.line {
            match sql[line_start..].find('\n') {
                Some(i) => line_start += i + 1,
                None => return sql.len(),
            }
        }
        sql[line_start..]
            .char_indices()
            .nth(loc.column.saturating_sub(1) as usize)
            .map_or(sql.len(), |(i, _)| line_start + i)
    };
    let (s, e) = (offset(start), offset(end));
    if s <= e { &sql[s..e] } else { &sql[s..] }
}

/// The upper-cased word of the token `n` ahead, if it is a word.
fn word_at(parser: &Parser, n: usize) -> Option<String> {
    match parser.peek_nth_token(n).token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn parse_statement(parser: &mut Parser) -> Result<Statement, ParserError> {
    let first = word_at(parser, 0);
    let second = word_at(parser, 1);
    match (first.as_deref(), second.as_deref()) {
        (Some("CREATE"), Some("STREAM")) => {
            parser.next_token();
            parser.next_token();
            parse_create_stream(parser, false)
        }
        (Some("CREATE"), Some("TABLE")) if has_with_options(parser) => {
            parser.next_token();
            parser.next_token();
            parse_create_stream(parser, true)
        }
        (Some("CREATE"), Some("FUNCTION")) if matches!(parser.peek_nth_token(3).token, Token::Word(ref w) if w.keyword == Keyword::AS) =>
        {
            parser.next_token();
            parser.next_token();
            let name = normalize_name(&parser.parse_object_name(false)?);
            parser.expect_keyword_is(Keyword::AS)?;
            let class = parser.parse_literal_string()?;
            Ok(Statement::CreateFunction { name, class })
        }
        (Some("CREATE"), Some("SINK")) => {
            parser.next_token();
            parser.next_token();
            parse_create_sink(parser)
        }
        (Some("SHOW"), Some("QUERIES")) => {
            parser.next_token();
            parser.next_token();
            Ok(Statement::ShowQueries)
        }
        (Some("STOP"), Some("QUERY")) => {
            parser.next_token();
            parser.next_token();
            Ok(Statement::StopQuery(normalize_name(
                &parser.parse_object_name(false)?,
            )))
        }
        (Some("SHOW"), Some("STREAMS")) => {
            parser.next_token();
            parser.next_token();
            Ok(Statement::ShowStreams)
        }
        (Some("DESCRIBE") | Some("DESC"), _) => {
            parser.next_token();
            Ok(Statement::Describe(normalize_name(
                &parser.parse_object_name(false)?,
            )))
        }
        (Some("SET"), _) => {
            parser.next_token();
            parse_set(parser)
        }
        (Some("CREATE"), Some("EXTERNAL" | "UNBOUNDED" | "OR"))
            if (0..5).any(|n| word_at(parser, n).as_deref() == Some("EXTERNAL")) =>
        {
            parse_with_datafusion(parser)
        }
        (Some("EXPLAIN"), Some("SELECT") | Some("WITH")) => {
            parser.next_token();
            Ok(Statement::Explain(parser.parse_query()?))
        }
        _ => match parser.parse_statement()? {
            ast::Statement::Query(query) => Ok(Statement::Query(query)),
            ast::Statement::Insert(insert) => insert_statement(insert),
            ast::Statement::CreateView(view) if view.columns.is_empty() && !view.materialized => {
                Ok(Statement::CreateView {
                    name: normalize_name(&view.name),
                    query: view.query,
                    or_replace: view.or_replace,
                })
            }
            ast::Statement::Drop {
                object_type:
                    object_type @ (ast::ObjectType::Stream
                    | ast::ObjectType::View
                    | ast::ObjectType::Table),
                if_exists,
                names,
                cascade,
                restrict,
                purge,
                temporary,
                table,
            } => Ok(Statement::Drop {
                kind: match object_type {
                    ast::ObjectType::Stream => DropKind::Stream,
                    ast::ObjectType::View => DropKind::View,
                    _ => DropKind::Table,
                },
                names: names.iter().map(normalize_name).collect(),
                if_exists,
                statement: Box::new(ast::Statement::Drop {
                    object_type,
                    if_exists,
                    names,
                    cascade,
                    restrict,
                    purge,
                    temporary,
                    table,
                }),
            }),
            other => Ok(Statement::Other(Box::new(other))),
        },
    }
}

/// Hands the statement's tokens to DataFusion's parser (`CREATE EXTERNAL
/// TABLE ... STORED AS CSV LOCATION ...`, which sqlparser reads as Hive's
/// syntax and refuses).
fn parse_with_datafusion(parser: &mut Parser) -> Result<Statement, ParserError> {
    let mut tokens = Vec::new();
    while !matches!(
        parser.peek_nth_token(tokens.len()).token,
        Token::SemiColon | Token::EOF
    ) {
        tokens.push(parser.peek_nth_token(tokens.len()));
    }
    let count = tokens.len();
    tokens.push(TokenWithSpan::wrap(Token::EOF));
    let statement = datafusion::sql::parser::DFParserBuilder::new(tokens)
        .build()
        .and_then(|mut p| p.parse_statement())
        .map_err(|e| {
            ParserError::ParserError(
                e.to_string()
                    .trim_start_matches("SQL error: ")
                    .trim_start_matches("ParserError(\"")
                    .trim_end_matches("\")")
                    .to_string(),
            )
        })?;
    for _ in 0..count {
        parser.next_token();
    }
    Ok(Statement::DataFusion(Box::new(statement)))
}

fn insert_statement(insert: ast::Insert) -> Result<Statement, ParserError> {
    let ast::TableObject::TableName(name) = &insert.table else {
        return parser_err("INSERT INTO needs a table name");
    };
    if !insert.columns.is_empty() {
        return parser_err(
            "INSERT INTO t (columns) is not supported; select the columns in the table's order",
        );
    }
    match insert.source {
        Some(query) => Ok(Statement::Insert {
            table: normalize_name(name),
            query,
        }),
        None => parser_err("INSERT INTO needs a SELECT"),
    }
}

fn parse_create_sink(parser: &mut Parser) -> Result<Statement, ParserError> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = normalize_name(&parser.parse_object_name(false)?);
    let mut options = if parser.parse_keyword(Keyword::WITH) {
        parse_with_options(parser)?
    } else {
        Options::default()
    };
    parser.expect_keyword_is(Keyword::AS)?;
    // `AS SELECT ... FROM t WITH (...)`: sqlparser would read the trailing
    // options as table hints of `t`, so the query is parsed up to them alone.
    let query = match trailing_with(parser) {
        Some(end) => {
            let mut tokens: Vec<TokenWithSpan> =
                (0..end).map(|i| parser.peek_nth_token(i)).collect();
            tokens.push(TokenWithSpan::wrap(Token::EOF));
            let dialect = GenericDialect {};
            let query = Parser::new(&dialect)
                .with_recursion_limit(NESTING_LIMIT)
                .with_tokens_with_locations(tokens)
                .parse_query()?;
            for _ in 0..end {
                parser.next_token();
            }
            query
        }
        None => parser.parse_query()?,
    };
    if parser.parse_keyword(Keyword::WITH) {
        options = options.merged(parse_with_options(parser)?);
    }
    Ok(Statement::CreateSink {
        name,
        query,
        options,
        if_not_exists,
    })
}

/// How many tokens ahead a `WITH ( ... )` starts that ends the statement.
fn trailing_with(parser: &Parser) -> Option<usize> {
    let mut depth = 0usize;
    let mut candidate = None;
    for n in 0.. {
        let token = parser.peek_nth_token(n).token;
        match token {
            Token::EOF | Token::SemiColon if depth == 0 => return candidate,
            Token::EOF => return None,
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Word(w)
                if depth == 0 && w.keyword == Keyword::WITH && w.quote_style.is_none() =>
            {
                candidate = (parser.peek_nth_token(n + 1).token == Token::LParen).then_some(n);
            }
            _ if depth == 0 => {
                // Anything after the closing parenthesis means this WITH is
                // part of the query.
                if let Some(c) = candidate
                    && n > c + 1
                {
                    candidate = None;
                }
            }
            _ => {}
        }
    }
    None
}

/// `( key = value, ... )` where keys are words (dotted allowed) or quoted
/// strings and values are strings, numbers, booleans or words.
fn parse_with_options(parser: &mut Parser) -> Result<Options, ParserError> {
    parser.expect_token(&Token::LParen)?;
    let mut pairs = Vec::new();
    loop {
        let key = match parser.next_token().token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s,
            Token::Word(w) => {
                let mut key = w.value;
                while parser.consume_token(&Token::Period) {
                    match parser.next_token().token {
                        Token::Word(w) => key = format!("{key}.{}", w.value),
                        other => {
                            return parser_err(&format!(
                                "expected an option name after '.', found {other}"
                            ));
                        }
                    }
                }
                key
            }
            Token::RParen if pairs.is_empty() => break,
            other => return parser_err(&format!("expected an option name, found {other}")),
        };
        parser.expect_token(&Token::Eq)?;
        let value = match parser.next_token().token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s,
            Token::Number(n, _) => n,
            Token::Word(w) => w.value,
            other => {
                return parser_err(&format!(
                    "expected a value for option '{key}', found {other}"
                ));
            }
        };
        pairs.push((key, value));
        if parser.consume_token(&Token::RParen) {
            break;
        }
        parser.expect_token(&Token::Comma)?;
    }
    Ok(Options::new(pairs))
}

fn parse_set(parser: &mut Parser) -> Result<Statement, ParserError> {
    let name = parser
        .parse_object_name(false)?
        .to_string()
        .to_ascii_lowercase();
    if !parser.consume_token(&Token::Eq) && !parser.parse_keyword(Keyword::TO) {
        return parser.expected("'=' or TO", parser.peek_token());
    }
    let value = match parser.next_token().token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s,
        Token::Number(n, _) => n,
        Token::Word(w) => w.value,
        other => return parser_err(&format!("expected a value for '{name}', found {other}")),
    };
    Ok(Statement::Set { name, value })
}

fn parser_err<T>(message: &str) -> Result<T, ParserError> {
    Err(ParserError::ParserError(message.to_string()))
}

/// A table name as quiver resolves it: identifiers are case-sensitive, as in
/// Flink SQL (quiver turns off DataFusion's lower-casing of identifiers).
pub fn normalize_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|part| part.as_ident())
        .map(|ident| ident.value.clone())
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_script_of_streaming_and_plain_statements() {
        let script = "CREATE STREAM Lines WITH (connector='socket', port = 9999, 'bootstrap.servers' = 'x');\n\
                      SET batch_interval = '200ms';\nSHOW STREAMS; DESCRIBE lines;\n\
                      SELECT count(*) FROM lines; EXPLAIN SELECT 1; CREATE VIEW v AS SELECT 1";
        let parsed = parse_script(script).unwrap();
        assert_eq!(parsed.len(), 7);
        match &parsed[0].statement {
            Statement::CreateStream {
                name,
                columns,
                options,
                ..
            } => {
                assert_eq!(name, "Lines");
                assert!(columns.is_empty());
                assert_eq!(options.get("connector"), Some("socket"));
                assert_eq!(options.get("port"), Some("9999"));
                assert_eq!(options.get("bootstrap.servers"), Some("x"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&parsed[1].statement, Statement::Set { name, value } if name == "batch_interval" && value == "200ms")
        );
        assert!(matches!(parsed[2].statement, Statement::ShowStreams));
        assert!(matches!(parsed[4].statement, Statement::Query(_)));
        assert_eq!(parsed[4].text, "SELECT count(*) FROM lines");
        assert_eq!(parsed[4].line, 4);
        assert!(matches!(parsed[5].statement, Statement::Explain(_)));
        assert!(matches!(parsed[6].statement, Statement::CreateView { .. }));
    }

    #[test]
    fn declared_columns_are_kept() {
        let parsed = parse_script("CREATE STREAM s (a BIGINT NOT NULL, b VARCHAR) WITH (connector = 'stdin', format = 'csv')").unwrap();
        match &parsed[0].statement {
            Statement::CreateStream { columns, .. } => assert_eq!(columns.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_carry_the_position() {
        let err = parse_script("SELECT 1;\nSELEC x FROM y").unwrap_err();
        assert!(err.to_string().contains("Line: 2"), "{err}");
        let err = parse_script("CREATE STREAM s WITH (connector 'x')").unwrap_err();
        assert!(err.to_string().contains("Expected: ="), "{err}");
    }

    #[test]
    fn parses_flink_ddl_views_and_window_table_functions() {
        let ddl =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/nexmark/ddl.sql"))
                .unwrap();
        let parsed = parse_script(&ddl).unwrap();
        match &parsed[0].statement {
            Statement::CreateStream {
                name,
                columns,
                computed,
                watermark,
                options,
                table_syntax: true,
                ..
            } => {
                assert_eq!(name, "datagen");
                assert_eq!(columns.len(), 4);
                assert!(
                    columns[3]
                        .data_type
                        .to_string()
                        .starts_with("STRUCT<auction BIGINT"),
                    "{}",
                    columns[3].data_type
                );
                assert_eq!(computed[0].0, "dateTime");
                let (column, expr) = watermark.as_ref().unwrap();
                assert_eq!(column, "dateTime");
                assert_eq!(expr.to_string(), "`dateTime` - INTERVAL '4' SECOND");
                assert_eq!(options.get("connector"), Some("nexmark"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&parsed[1].statement, Statement::CreateView { name, .. } if name == "person")
        );
        let q = parse_script(
            "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND)); \
             CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole'); \
             CREATE TABLE plain (a BIGINT); CREATE TABLE c AS SELECT 1; \
             CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar'",
        )
        .unwrap();
        assert!(
            q[0].text.contains("TABLE bid"),
            "text keeps what was written"
        );
        match &q[0].statement {
            Statement::Query(query) => assert!(
                query
                    .to_string()
                    .contains("TUMBLE(bid, DESCRIPTOR(`dateTime`)"),
                "{query}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &q[1].statement,
            Statement::CreateStream {
                table_syntax: true,
                ..
            }
        ));
        assert!(matches!(&q[2].statement, Statement::Other(_)));
        assert!(matches!(&q[3].statement, Statement::Other(_)));
        assert!(
            matches!(&q[4].statement, Statement::CreateFunction { name, class } if name == "count_char" && class.ends_with("CountChar"))
        );
    }

    #[test]
    fn session_partition_by_becomes_a_named_argument() {
        let query = |sql: &str| match &parse_script(sql).unwrap()[0].statement {
            Statement::Query(q) => q.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            query(
                "SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(ts), INTERVAL '1' SECOND))"
            ),
            "SELECT * FROM TABLE(SESSION(bid, partition_by => bidder, DESCRIPTOR(ts), INTERVAL '1' SECOND))"
        );
        assert_eq!(
            query("SELECT * FROM SESSION(bid partition   by (a, b), ts, x)"),
            "SELECT * FROM SESSION(bid, partition_by => (a, b), ts, x)"
        );
        // PARTITION BY elsewhere is left alone.
        let text = query(
            "SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM s GROUP BY SESSION(ts, INTERVAL '1' SECOND)",
        );
        assert!(text.contains("OVER (PARTITION BY a ORDER BY b)"), "{text}");
    }

    #[test]
    fn parses_drop_external_tables_and_flink_keys() {
        let parsed = parse_script(
            "DROP STREAM IF EXISTS s; DROP VIEW v; DROP TABLE t; \
             CREATE EXTERNAL TABLE e (a BIGINT) STORED AS CSV LOCATION 'x.csv' OPTIONS ('format.has_header' 'true'); \
             CREATE STREAM k (a BIGINT PRIMARY KEY NOT ENFORCED, ts TIMESTAMP(3), WATERMARK FOR ts) WITH (connector = 'stdin'); \
             CREATE TABLE k2 (a BIGINT, b INT NOT NULL, CONSTRAINT pk PRIMARY KEY (a, b) NOT ENFORCED) WITH (connector = 'stdin')",
        )
        .unwrap();
        assert!(
            matches!(&parsed[0].statement, Statement::Drop { kind: DropKind::Stream, names, if_exists: true, .. } if names == &["s"])
        );
        assert!(matches!(
            &parsed[1].statement,
            Statement::Drop {
                kind: DropKind::View,
                ..
            }
        ));
        assert!(matches!(
            &parsed[2].statement,
            Statement::Drop {
                kind: DropKind::Table,
                ..
            }
        ));
        assert!(
            matches!(&parsed[3].statement, Statement::DataFusion(s) if s.to_string().contains("CREATE EXTERNAL TABLE e")),
            "{:?}",
            parsed[3].statement
        );
        assert_eq!(parsed[3].text.chars().last(), Some(')'));
        match &parsed[4].statement {
            Statement::CreateStream {
                primary_key,
                watermark: Some((column, expr)),
                ..
            } => {
                assert_eq!(primary_key, &["a"]);
                assert_eq!((column.as_str(), expr.to_string().as_str()), ("ts", "ts"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&parsed[5].statement, Statement::CreateStream { primary_key, columns, .. } if primary_key == &["a", "b"] && columns.len() == 2)
        );
        let err =
            parse_script("CREATE STREAM s (a BIGINT, PRIMARY KEY (a)) WITH (connector = 'stdin')")
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("write PRIMARY KEY (...) NOT ENFORCED"),
            "{err}"
        );
    }

    #[test]
    fn parses_background_query_statements() {
        let parsed = parse_script(
            "INSERT INTO Out SELECT * FROM s; \
             CREATE SINK big AS SELECT a FROM s WHERE a > 1 WITH (connector = 'parquet', path = 'out'); \
             CREATE SINK IF NOT EXISTS b2 WITH (connector = 'print') AS SELECT 1; \
             SHOW QUERIES; STOP QUERY big",
        )
        .unwrap();
        assert!(matches!(&parsed[0].statement, Statement::Insert { table, .. } if table == "Out"));
        match &parsed[1].statement {
            Statement::CreateSink {
                name,
                query,
                options,
                ..
            } => {
                assert_eq!(name, "big");
                assert_eq!(query.to_string(), "SELECT a FROM s WHERE a > 1");
                assert_eq!(options.get("path"), Some("out"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&parsed[2].statement, Statement::CreateSink { if_not_exists: true, options, .. } if options.get("connector") == Some("print"))
        );
        assert!(matches!(parsed[3].statement, Statement::ShowQueries));
        assert!(matches!(&parsed[4].statement, Statement::StopQuery(n) if n == "big"));
    }
}
