//! `Context`: the library's entry point. It parses statements and
//! dispatches each to the one function for its kind; the statement groups
//! live in their own files:
//!
//! - [`streams`] — `CREATE STREAM` (and a stream's `<name>_late` stream),
//! - [`views`] — `CREATE VIEW`,
//! - [`sinks`] — sink tables (`CREATE TABLE ... WITH (connector = ...)`),
//! - [`queries`] — continuous queries, foreground (`SELECT`) and background
//!   (`INSERT INTO`, `CREATE SINK`, `STOP QUERY`),
//! - [`show`] — `SHOW STREAMS`, `SHOW QUERIES`, `SHOW PROGRESS`, `DESCRIBE`,
//! - [`explain`] — `EXPLAIN`,
//! - [`settings`] — `SET`, `CREATE FUNCTION`,
//! - [`ddl`] — one name per object, `DROP`,
//! - [`passthrough`] — statements DataFusion runs itself (static tables,
//!   `CREATE EXTERNAL TABLE`, one-off queries),
//! - [`runtime`] — the runtime objects of catalog entries (late streams'
//!   hubs, memory sinks' tables), by name.
//!
//! Front ends (CLI, REPL) are thin users of this API.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast;

use crate::catalog::Catalog;
use crate::error::Error;
use crate::exec::{Clock, QueryHandle, Registry};
use crate::report::RunLimits;
use crate::sink::SinkDef;
use crate::source::StreamDef;
use crate::sql::{ParsedStatement, Statement, StreamingPlan, ViewDef, parse_script};

mod checkpointing;
mod ddl;
mod explain;
mod passthrough;
mod queries;
mod runtime;
mod settings;
mod show;
mod sinks;
mod streams;
mod views;

/// Engine settings; `SET` changes them for queries started afterwards.
#[derive(Debug, Clone)]
pub struct Config {
    /// Length of a batch interval (`SET batch_interval = '200ms'`).
    pub batch_interval: Duration,
    /// Wall-clock or simulated batch times.
    pub clock: Clock,
    /// When queries stop by themselves.
    pub limits: RunLimits,
    /// Compute decomposable window aggregates from per-pane partials
    /// (`SET incremental_aggregates = false` keeps raw rows instead).
    pub incremental_aggregates: bool,
    /// Where continuous queries checkpoint (`--checkpoint DIR`), if anywhere.
    pub checkpoint: Option<crate::checkpoint::CheckpointSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            batch_interval: Duration::from_secs(1),
            clock: Clock::Wall,
            limits: RunLimits::default(),
            incremental_aggregates: true,
            checkpoint: None,
        }
    }
}

impl Config {
    /// Batches of `batch_interval` on the simulated clock from its default
    /// start, back to back, until every source is drained: a bounded input
    /// processed as fast as possible (benchmarks, backfills, tests).
    pub fn bounded(batch_interval: Duration) -> Self {
        Self {
            batch_interval,
            clock: Clock::Simulated {
                start_ms: crate::exec::DEFAULT_SIMULATED_START_MS,
            },
            limits: RunLimits {
                until_idle: true,
                ..RunLimits::default()
            },
            incremental_aggregates: true,
            checkpoint: None,
        }
    }
}

/// What a statement produced.
#[derive(Debug)]
pub enum Output {
    /// A statement that changed something (`CREATE STREAM`, `SET`, ...).
    Message(String),
    /// Rows of a one-off statement (`SHOW STREAMS`, `SELECT 1`, `EXPLAIN`).
    Rows(Vec<RecordBatch>),
    /// A continuous query, now running.
    Query(QueryHandle),
}

/// A quiver session: streams, static tables, settings and running queries.
pub struct Context {
    config: Mutex<Config>,
    /// Streams, views over streams and sink tables, behind one lock.
    catalog: Catalog,
    /// The runtime objects of catalog entries, by name: late streams' hubs,
    /// memory sinks' tables.
    runtime: runtime::Runtime,
    /// Held by a statement that changes the catalog or starts a query, for
    /// its whole run. The catalog's own lock makes each check-and-insert
    /// atomic, but two things still need this one: a statement that starts
    /// a query plans against a snapshot, awaits, and only then registers as
    /// a reader of its streams (a DROP STREAM in between would drop a
    /// stream under it); and DataFusion's `CREATE TABLE`/`CREATE VIEW`
    /// check that the name is free in quiver's catalog, then create it in
    /// DataFusion's after awaits (see [`ddl`]).
    ddl: tokio::sync::Mutex<()>,
    /// The running queries and the streams they read.
    readers: Mutex<Vec<ddl::Reader>>,
    tables: SessionContext,
    next_query: AtomicU64,
    background: Registry,
}

impl Default for Context {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl Context {
    /// A session with `config`.
    pub fn new(config: Config) -> Self {
        Self {
            config: Mutex::new(config),
            catalog: Catalog::default(),
            runtime: runtime::Runtime::default(),
            ddl: tokio::sync::Mutex::new(()),
            readers: Mutex::new(Vec::new()),
            tables: crate::sql::functions::session_context(Self::session_config()),
            next_query: AtomicU64::new(1),
            background: Registry::default(),
        }
    }

    /// Identifiers are case-sensitive, as in Flink SQL (Nexmark's
    /// `emailAddress`, `dateTime`); keywords and functions are not.
    fn session_config() -> SessionConfig {
        let mut config = SessionConfig::new()
            .with_target_partitions(1)
            .with_information_schema(true);
        config.options_mut().sql_parser.enable_ident_normalization = false;
        // Sources decode text as Utf8; declared VARCHAR columns must match.
        config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        config
    }

    /// Current settings.
    pub fn config(&self) -> Config {
        lock(&self.config).clone()
    }

    /// The declared streams, by name.
    pub fn streams(&self) -> Vec<StreamDef> {
        self.catalog.read(|c| c.streams.values().cloned().collect())
    }

    /// The sink tables (`CREATE TABLE ... WITH (connector = 'blackhole')`,
    /// `CREATE SINK`), by name: what `INSERT INTO` can write to. For front
    /// ends listing the catalog (the REPL's `\d` and completion).
    pub fn sink_tables(&self) -> Vec<SinkDef> {
        self.catalog.read(|c| c.sinks.values().cloned().collect())
    }

    /// The views over streams (`CREATE VIEW v AS SELECT ... FROM stream`), in
    /// creation order. For front ends listing the catalog.
    pub fn stream_views(&self) -> Vec<ViewDef> {
        self.catalog.read(|c| c.views.clone())
    }

    /// The background queries (`INSERT INTO`, `CREATE SINK`): their status,
    /// stopping them, waiting for them, and failures not yet reported.
    pub fn background(&self) -> &Registry {
        &self.background
    }

    /// Parses and runs every statement of `script`, stopping at the first error.
    pub async fn sql(&self, script: &str) -> Result<Vec<Output>, Error> {
        let mut outputs = Vec::new();
        for statement in parse_script(script)? {
            outputs.push(self.execute(&statement).await?);
        }
        Ok(outputs)
    }

    /// Runs one parsed statement; errors name the statement.
    pub async fn execute(&self, statement: &ParsedStatement) -> Result<Output, Error> {
        self.execute_inner(&statement.statement)
            .await
            .map_err(|source| Error::Statement {
                line: statement.line,
                text: statement.text.clone(),
                source: Box::new(source.for_user(&self.tables, self.relation_names())),
            })
    }

    /// The names of the streams, views over streams and sink tables.
    fn relation_names(&self) -> Vec<String> {
        self.catalog.read(|c| c.names())
    }

    async fn execute_inner(&self, statement: &Statement) -> Result<Output, Error> {
        let _ddl = if ddl::changes_catalog(statement) {
            Some(self.ddl.lock().await)
        } else {
            None
        };
        match statement {
            Statement::CreateStream { .. } => self.create_stream_statement(statement).await,
            Statement::CreateView {
                name,
                query,
                or_replace,
            } => self.create_view(name, query, *or_replace).await,
            Statement::CreateFunction { name, class } => self.create_function(name, class),
            Statement::ShowStreams => Ok(Output::Rows(vec![self.show_streams()?])),
            Statement::Describe(name) => self.describe(name).await,
            Statement::Set { name, value } => self.set(name, value).await,
            Statement::Explain(query) => self.explain(query).await,
            Statement::Query(query) => self.query(query).await,
            Statement::Insert { table, query } => self.insert(table, query).await,
            Statement::CreateSink {
                name,
                query,
                options,
                if_not_exists,
            } => self.create_sink(name, query, options, *if_not_exists).await,
            Statement::ShowQueries => Ok(Output::Rows(vec![self.show_queries()?])),
            Statement::ShowProgress { name, limit } => {
                Ok(Output::Rows(vec![self.show_progress(name, *limit)?]))
            }
            Statement::StopQuery(name) => self.stop_query(name).await,
            Statement::Drop {
                kind,
                names,
                if_exists,
                statement,
            } => self.drop_objects(*kind, names, *if_exists, statement).await,
            Statement::DataFusion(statement) => self.run_datafusion_statement(statement).await,
            Statement::Other(statement) => self.run_other_statement(statement).await,
        }
    }

    async fn plan(&self, query: &ast::Query) -> Result<Option<StreamingPlan>, Error> {
        let defs = self.catalog.snapshot();
        let interval_ms = self.config().batch_interval.as_millis() as i64;
        let settings = crate::sql::PlanSettings {
            incremental_aggregates: self.config().incremental_aggregates,
        };
        let config = self
            .tables
            .copied_config()
            .with_extension(Arc::new(settings));
        Ok(
            StreamingPlan::try_new(query, defs.streaming(), &self.tables, config, interval_ms)
                .await?,
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The object name `name` was written as: the inverse of
/// [`crate::sql::parser::normalize_name`], which joins its parts with dots.
fn object_name(name: &str) -> ast::ObjectName {
    ast::ObjectName::from(name.split('.').map(ast::Ident::new).collect::<Vec<_>>())
}
