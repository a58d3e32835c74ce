//! Parsing quiver's SQL: DataFusion's dialect plus the streaming statements
//! (`CREATE STREAM`, `SHOW STREAMS`, `DESCRIBE`, `SET`, `EXPLAIN`). Built on
//! sqlparser's `Parser` the way DataFusion's `DFParser` adds
//! `CREATE EXTERNAL TABLE`: peek at the leading keywords, parse our statements
//! with the parser's own building blocks, hand everything else to sqlparser.

use datafusion::sql::sqlparser::ast::{self, ObjectName};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::SqlError;
use crate::options::Options;

mod create_stream;
use create_stream::{has_with_options, parse_create_stream};
mod flink_tokens;
mod redact;
mod statement;
#[cfg(test)]
mod tests;

pub use flink_tokens::SESSION_PARTITION_ARGUMENT;
pub use statement::{DropKind, ParsedStatement, Statement};

use flink_tokens::drop_table_keyword;

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
        let text = redact::redact_secrets(slice(sql, start, next.span.start).trim());
        statements.push(ParsedStatement {
            statement,
            text,
            line: start.line,
        });
    }
}

/// How deeply sqlparser lets parentheses, CASE, function calls and subqueries
/// nest (its default recursion limit).
const NESTING_LIMIT: usize = 50;

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
            parse_create_stream(parser)
        }
        (Some("CREATE"), Some("TABLE")) if has_with_options(parser) => {
            parser.next_token();
            parser.next_token();
            parse_create_stream(parser)
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
        (Some("SHOW"), Some("PROGRESS")) => {
            parser.next_token();
            parser.next_token();
            let name = normalize_name(&parser.parse_object_name(false)?);
            let limit = if parser.parse_keyword(Keyword::LIMIT) {
                Some(parser.parse_literal_uint()?)
            } else {
                None
            };
            Ok(Statement::ShowProgress { name, limit })
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
            drop @ ast::Statement::Drop {
                object_type:
                    ast::ObjectType::Stream | ast::ObjectType::View | ast::ObjectType::Table,
                ..
            } => Ok(drop_statement(drop)),
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

/// `DROP STREAM | VIEW | TABLE`: the names to drop, and the statement itself
/// for DataFusion to drop the tables.
fn drop_statement(drop: ast::Statement) -> Statement {
    let ast::Statement::Drop {
        object_type,
        if_exists,
        names,
        ..
    } = &drop
    else {
        return Statement::Other(Box::new(drop));
    };
    Statement::Drop {
        kind: match object_type {
            ast::ObjectType::Stream => DropKind::Stream,
            ast::ObjectType::View => DropKind::View,
            _ => DropKind::Table,
        },
        names: names.iter().map(normalize_name).collect(),
        if_exists: *if_exists,
        statement: Box::new(drop),
    }
}
