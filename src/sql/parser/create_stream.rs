//! `CREATE STREAM` and Flink's `CREATE TABLE ... WITH (...)`: the column
//! list with computed columns, `WATERMARK FOR`, `PRIMARY KEY ... NOT
//! ENFORCED`, and Flink's `ROW<...>` types.

use datafusion::sql::sqlparser::ast::{self, ColumnDef};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::{Statement, normalize_name, parse_with_options, parser_err, word_at};

/// Whether a `CREATE TABLE name (...)` is followed by `WITH (`: Flink's
/// connector table, which quiver parses; other CREATE TABLEs go to DataFusion.
pub(super) fn has_with_options(parser: &Parser) -> bool {
    let mut depth = 0usize;
    let mut seen_paren = false;
    for n in 2.. {
        match parser.peek_nth_token(n).token {
            Token::EOF | Token::SemiColon => return false,
            Token::LParen => {
                depth += 1;
                seen_paren = true;
            }
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Word(w) if depth == 0 && w.keyword == Keyword::WITH => return true,
            Token::Word(w) if depth == 0 && seen_paren && w.keyword == Keyword::AS => return false,
            _ => {}
        }
    }
    false
}

pub(super) fn parse_create_stream(parser: &mut Parser) -> Result<Statement, ParserError> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = normalize_name(&parser.parse_object_name(false)?);
    let mut columns = Vec::new();
    let mut computed = Vec::new();
    let mut watermark = None;
    let mut primary_key: Vec<String> = Vec::new();
    if parser.consume_token(&Token::LParen) && !parser.consume_token(&Token::RParen) {
        loop {
            if word_at(parser, 0).as_deref() == Some("WATERMARK") {
                parser.next_token();
                if watermark.is_some() {
                    return parser_err("a stream can have only one WATERMARK");
                }
                parser.expect_keyword_is(Keyword::FOR)?;
                let column = parser.parse_identifier()?;
                let expr = if parser.parse_keyword(Keyword::AS) {
                    parser.parse_expr()?
                } else {
                    ast::Expr::Identifier(column.clone())
                };
                watermark = Some((column.value, expr));
            } else if matches!(parser.peek_token().token, Token::Word(ref w)
                if matches!(w.keyword, Keyword::PRIMARY | Keyword::CONSTRAINT))
            {
                if parser.parse_keyword(Keyword::CONSTRAINT) {
                    parser.parse_identifier()?;
                }
                let columns = parse_primary_key(parser)?;
                set_primary_key(&mut primary_key, columns)?;
            } else if matches!(parser.peek_token().token, Token::Word(ref w) if w.keyword == Keyword::UNIQUE)
            {
                return parser_err(
                    "UNIQUE constraints are not supported on streams; PRIMARY KEY (...) NOT ENFORCED is",
                );
            } else {
                let column = parser.parse_identifier()?;
                if parser.parse_keyword(Keyword::AS) {
                    computed.push((column.value, parser.parse_expr()?));
                } else {
                    if !computed.is_empty() {
                        return parser_err(&format!(
                            "column {column} comes after a computed column; declare physical columns first"
                        ));
                    }
                    let data_type = parse_column_type(parser)?;
                    let mut options = Vec::new();
                    loop {
                        if parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                            options.push(ast::ColumnOptionDef {
                                name: None,
                                option: ast::ColumnOption::NotNull,
                            });
                        } else if parser.parse_keyword(Keyword::NULL) {
                        } else if word_at(parser, 0).as_deref() == Some("PRIMARY") {
                            parser.next_token();
                            parser.expect_keyword_is(Keyword::KEY)?;
                            expect_not_enforced(parser)?;
                            set_primary_key(&mut primary_key, vec![column.value.clone()])?;
                        } else {
                            break;
                        }
                    }
                    columns.push(ColumnDef {
                        name: column,
                        data_type,
                        options,
                    });
                }
            }
            if parser.consume_token(&Token::RParen) {
                break;
            }
            parser.expect_token(&Token::Comma)?;
        }
    }
    parser.expect_keyword_is(Keyword::WITH)?;
    let options = parse_with_options(parser)?;
    Ok(Statement::CreateStream {
        name,
        columns,
        computed,
        watermark,
        primary_key,
        options,
        if_not_exists,
    })
}

/// `PRIMARY KEY (a, b) NOT ENFORCED`, after an optional `CONSTRAINT name`.
fn parse_primary_key(parser: &mut Parser) -> Result<Vec<String>, ParserError> {
    parser.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY])?;
    parser.expect_token(&Token::LParen)?;
    let mut columns = vec![parser.parse_identifier()?.value];
    while parser.consume_token(&Token::Comma) {
        columns.push(parser.parse_identifier()?.value);
    }
    parser.expect_token(&Token::RParen)?;
    expect_not_enforced(parser)?;
    Ok(columns)
}

/// Flink's primary keys are declared `NOT ENFORCED`: quiver, like Flink,
/// does not check them.
fn expect_not_enforced(parser: &mut Parser) -> Result<(), ParserError> {
    if parser.parse_keyword(Keyword::NOT) && parser.parse_keyword(Keyword::ENFORCED) {
        return Ok(());
    }
    parser_err(&format!(
        "a stream's PRIMARY KEY is not enforced: write PRIMARY KEY (...) NOT ENFORCED, found {}{}",
        parser.peek_token().token,
        parser.peek_token().span.start
    ))
}

fn set_primary_key(key: &mut Vec<String>, columns: Vec<String>) -> Result<(), ParserError> {
    if !key.is_empty() {
        return parser_err("a stream can have only one PRIMARY KEY");
    }
    *key = columns;
    Ok(())
}

/// A column type, with Flink's `ROW<name type, ...>` (or `ROW(...)`) read as
/// a struct.
fn parse_column_type(parser: &mut Parser) -> Result<ast::DataType, ParserError> {
    let is_row = matches!(parser.peek_token().token, Token::Word(ref w) if w.keyword == Keyword::ROW)
        && matches!(parser.peek_nth_token(1).token, Token::Lt | Token::LParen);
    if !is_row {
        return parser.parse_data_type();
    }
    parser.next_token();
    let close = if parser.next_token().token == Token::Lt {
        Token::Gt
    } else {
        Token::RParen
    };
    let mut fields = Vec::new();
    loop {
        let name = parser.parse_identifier()?;
        let field_type = parse_column_type(parser)?;
        fields.push(ast::StructField {
            field_name: Some(name),
            field_type,
            options: None,
        });
        if parser.consume_token(&close) {
            break;
        }
        parser.expect_token(&Token::Comma)?;
    }
    Ok(ast::DataType::Struct(
        fields,
        ast::StructBracketKind::AngleBrackets,
    ))
}
