//! What the parser produces: one [`Statement`] per statement of a script,
//! with the text and line it came from ([`ParsedStatement`]).

use datafusion::sql::sqlparser::ast::{self, ColumnDef};

use crate::options::Options;

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
    /// `SHOW PROGRESS name [LIMIT n]`: the newest progress records of a
    /// background query (10 unless `LIMIT` says; the last 100 are kept).
    ShowProgress {
        /// The background query.
        name: String,
        /// How many records, newest last.
        limit: Option<u64>,
    },
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
    pub(crate) statement: Statement,
    /// Its source text, trimmed, without the trailing `;`.
    pub text: String,
    /// 1-based line where it starts in the script.
    pub line: u64,
}

impl ParsedStatement {
    /// The `SELECT` this statement runs, as SQL text, when it runs one: a
    /// query, `EXPLAIN`, `INSERT INTO ... SELECT` or `CREATE SINK ... AS
    /// SELECT`. What a front end explains to show a query's plan (the live
    /// page), whatever statement started the query.
    pub fn query_text(&self) -> Option<String> {
        match &self.statement {
            Statement::Query(query)
            | Statement::Explain(query)
            | Statement::Insert { query, .. }
            | Statement::CreateSink { query, .. } => Some(query.to_string()),
            _ => None,
        }
    }
}
