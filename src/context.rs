//! `Context`: the library's entry point and the catalog of streams. It runs
//! statements — DDL changes the catalog, one-off queries run on DataFusion
//! directly, and a query that reads a stream becomes a running continuous
//! query whose results the caller consumes. Front ends (CLI, REPL) are thin
//! users of this API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{self, ColumnDef};

use crate::batch::{BATCH_TIME_COLUMN, SYSTEM_COLUMNS, with_batch_time};
use crate::error::Error;
use crate::exec::{Clock, QueryHandle, Registry, RunLimits, start_query};
use crate::options::Options;
use crate::sink::{self, SinkDef};
use crate::source::{self, StreamDef};
use crate::sql::{
    Catalog, ParsedStatement, SqlError, Statement, StreamingPlan, ViewDef, parse_script,
};
use crate::window::{LatePolicy, WatermarkDef};

mod ddl;

/// Engine settings; `SET` changes them for queries started afterwards.
#[derive(Debug, Clone, Copy)]
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            batch_interval: Duration::from_secs(1),
            clock: Clock::Wall,
            limits: RunLimits::default(),
            incremental_aggregates: true,
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
        }
    }
}

/// Settings `SET` accepts besides `datafusion.*`.
const SETTINGS: &[&str] = &["batch_interval", "incremental_aggregates"];

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
    streams: Mutex<BTreeMap<String, StreamDef>>,
    views: Mutex<Vec<ViewDef>>,
    sinks: Mutex<BTreeMap<String, SinkDef>>,
    /// Held by a statement that creates or drops a name, from its check
    /// that the name is free to its insert (see [`ddl`]).
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
            streams: Mutex::new(BTreeMap::new()),
            views: Mutex::new(Vec::new()),
            sinks: Mutex::new(BTreeMap::new()),
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
        *lock(&self.config)
    }

    /// The declared streams, by name.
    pub fn streams(&self) -> Vec<StreamDef> {
        lock(&self.streams).values().cloned().collect()
    }

    /// The sink tables (`CREATE TABLE ... WITH (connector = 'blackhole')`,
    /// `CREATE SINK`), by name: what `INSERT INTO` can write to. For front
    /// ends listing the catalog (the REPL's `\d` and completion).
    pub fn sink_tables(&self) -> Vec<SinkDef> {
        lock(&self.sinks).values().cloned().collect()
    }

    /// The views over streams (`CREATE VIEW v AS SELECT ... FROM stream`), in
    /// creation order. For front ends listing the catalog.
    pub fn stream_views(&self) -> Vec<ViewDef> {
        lock(&self.views).clone()
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
        let mut names: Vec<String> = lock(&self.streams).keys().cloned().collect();
        names.extend(lock(&self.views).iter().map(|v| v.name.clone()));
        names.extend(lock(&self.sinks).keys().cloned());
        names
    }

    async fn execute_inner(&self, statement: &Statement) -> Result<Output, Error> {
        let _ddl = if ddl::changes_catalog(statement) {
            Some(self.ddl.lock().await)
        } else {
            None
        };
        match statement {
            Statement::CreateStream {
                name,
                columns,
                computed,
                watermark,
                primary_key,
                options,
                if_not_exists,
                table_syntax: _,
            } => {
                let connector = options.get("connector").map(str::to_ascii_lowercase);
                if connector.as_deref().is_some_and(sink::is_sink_connector) {
                    if !computed.is_empty() || watermark.is_some() {
                        return Err(Error::Catalog(format!(
                            "sink table '{name}' cannot have computed columns or a WATERMARK"
                        )));
                    }
                    return self
                        .create_sink_table(name, columns, options, *if_not_exists)
                        .await;
                }
                let time = StreamTime {
                    computed: computed
                        .iter()
                        .map(|(n, e)| (n.clone(), e.to_string()))
                        .collect(),
                    watermark: watermark.as_ref().map(|(c, e)| (c.clone(), e.to_string())),
                    primary_key: primary_key.clone(),
                };
                self.create_stream(name, columns, time, options, *if_not_exists)
                    .await
            }
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
            Statement::StopQuery(name) => {
                let status = self.background.stop(name).await?;
                Ok(Output::Message(format!(
                    "stopped query {name} after {}, {} written",
                    crate::exec::counted(status.batches, "batch", "batches"),
                    crate::exec::counted(status.output_rows, "row", "rows"),
                )))
            }
            Statement::Drop {
                kind,
                names,
                if_exists,
                statement,
            } => self.drop_objects(*kind, names, *if_exists, statement).await,
            Statement::DataFusion(statement) => self.run_datafusion_statement(statement).await,
            Statement::Other(statement) => {
                if let Some(name) = ddl::created_name(statement) {
                    self.check_name_free(&name, "table")?;
                }
                self.run_on_datafusion(statement.as_ref().clone()).await
            }
        }
    }

    /// `INSERT INTO sink_table SELECT ...`: starts a background query named
    /// after the table, its rows cast by position to the table's columns.
    async fn insert(&self, table: &str, query: &ast::Query) -> Result<Output, Error> {
        let def = lock(&self.sinks).get(table).cloned();
        let Some(def) = def else {
            let known: Vec<String> = lock(&self.sinks).keys().cloned().collect();
            return Err(Error::Catalog(format!(
                "INSERT INTO {table}: '{table}' is not a sink table; declare it with CREATE TABLE \
                 {table} (...) WITH (connector = ...) (sink connectors: {}); sink tables: {}",
                sink::CONNECTORS.join(", "),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        self.start_background(def, query).await
    }

    /// `CREATE SINK name AS SELECT ... WITH (connector = ...)`: a sink table
    /// with the query's schema, and the background query that fills it.
    async fn create_sink(
        &self,
        name: &str,
        query: &ast::Query,
        options: &Options,
        if_not_exists: bool,
    ) -> Result<Output, Error> {
        if lock(&self.sinks).contains_key(name) {
            if if_not_exists {
                return Ok(Output::Message(format!("sink {name} already exists")));
            }
            return Err(Error::Catalog(format!(
                "sink '{name}' already exists; use INSERT INTO {name} SELECT ... to start another query into it"
            )));
        }
        self.check_name_free(name, "sink table")?;
        let Some(connector) = options.get("connector") else {
            return Err(Error::Catalog(format!(
                "CREATE SINK {name} needs WITH (connector = '...'); sink connectors are: {}",
                sink::CONNECTORS.join(", ")
            )));
        };
        let Some(plan) = self.plan(query).await? else {
            return Err(Error::Catalog(format!(
                "CREATE SINK {name}: the query reads no stream, so it would never produce rows"
            )));
        };
        let mut def = SinkDef {
            name: name.to_string(),
            connector: connector.to_ascii_lowercase(),
            schema: plan.schema.clone(),
            options: options.without("connector"),
            table: None,
        };
        self.attach_memory_table(&mut def)?;
        let output = self.start_planned(def.clone(), plan)?;
        self.register_file_table(&def)?;
        lock(&self.sinks).insert(name.to_string(), def);
        Ok(output)
    }

    /// A `memory` sink writes to a session table of its name, created here.
    fn attach_memory_table(&self, def: &mut SinkDef) -> Result<(), Error> {
        if def.connector != "memory" {
            return Ok(());
        }
        let table = Arc::new(crate::sql::provider::BatchTable::new(def.schema.clone()));
        let name = datafusion::common::TableReference::bare(def.name.as_str());
        self.tables.deregister_table(name.clone())?;
        self.tables.register_table(name, table.clone())?;
        def.table = Some(table);
        Ok(())
    }

    async fn start_background(&self, def: SinkDef, query: &ast::Query) -> Result<Output, Error> {
        let Some(mut plan) = self.plan(query).await? else {
            return Err(Error::Catalog(format!(
                "INSERT INTO {}: the query reads no stream; quiver's INSERT starts a continuous query",
                def.name
            )));
        };
        plan.cast_to(&def.schema)?;
        self.start_planned(def, plan)
    }

    fn start_planned(&self, def: SinkDef, plan: StreamingPlan) -> Result<Output, Error> {
        let sink = sink::open(&def)?;
        let streams = plan.streams.iter().map(|(s, _)| s.name.clone()).collect();
        let config = self.config();
        let interval_ms = config.batch_interval.as_millis() as i64;
        let handle = start_query(
            def.name.clone(),
            plan,
            interval_ms,
            config.clock,
            config.limits,
        )?;
        let progress = handle.progress.clone();
        self.background.start(handle, sink, &def.connector)?;
        self.add_reader(&def.name, true, streams, progress);
        Ok(Output::Message(format!(
            "started query {} writing to {} sink {} (SHOW QUERIES shows progress, STOP QUERY {} stops it)",
            def.name, def.connector, def.name, def.name
        )))
    }

    fn show_queries(&self) -> Result<RecordBatch, Error> {
        use datafusion::arrow::array::{Int64Array, UInt64Array};
        let queries = self.background.list();
        let text = |f: &dyn Fn(&crate::exec::QueryStatus) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(queries.iter().map(f).collect::<Vec<_>>()))
        };
        let count = |f: &dyn Fn(&crate::exec::QueryStatus) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from(queries.iter().map(f).collect::<Vec<_>>()))
        };
        let columns = vec![
            text(&|q| Some(q.name.clone())),
            text(&|q| Some(q.state.to_string())),
            count(&|q| q.batches),
            count(&|q| q.input_rows),
            count(&|q| q.output_rows),
            Arc::new(Int64Array::from(
                queries
                    .iter()
                    .map(|q| q.last_batch.as_millis() as i64)
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
            text(&|q| {
                let watermark = q.watermark_ms.map(sink::format_time);
                match (watermark, &q.watermark_held_by) {
                    (Some(w), Some(held)) => Some(format!("{w} (held by {held})")),
                    (None, Some(held)) => Some(format!("none yet (held by {held})")),
                    (watermark, None) => watermark,
                }
            }),
            count(&|q| q.late_rows),
            text(&|q| Some(q.sink.clone())),
            text(&|q| q.error.clone()),
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("batches", DataType::UInt64, false),
            Field::new("rows_in", DataType::UInt64, false),
            Field::new("rows_out", DataType::UInt64, false),
            Field::new("last_batch_ms", DataType::Int64, false),
            Field::new("watermark", DataType::Utf8, true),
            Field::new("late_rows", DataType::UInt64, false),
            Field::new("sink", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Catalog(e.to_string()))
    }

    /// `CREATE TABLE t (...) WITH (connector = 'blackhole' | 'print' | ...)`:
    /// a table that `INSERT INTO` writes to.
    async fn create_sink_table(
        &self,
        name: &str,
        columns: &[ColumnDef],
        options: &Options,
        if_not_exists: bool,
    ) -> Result<Output, Error> {
        if lock(&self.sinks).contains_key(name) {
            return if if_not_exists {
                Ok(Output::Message(format!("table {name} already exists")))
            } else {
                Err(Error::Catalog(format!(
                    "table '{name}' already exists; use CREATE TABLE IF NOT EXISTS"
                )))
            };
        }
        self.check_name_free(name, "sink table")?;
        if columns.is_empty() {
            return Err(Error::Catalog(format!(
                "sink table '{name}' needs its columns: CREATE TABLE {name} (a BIGINT, ...) WITH (...)"
            )));
        }
        let mut def = SinkDef {
            name: name.to_string(),
            connector: options
                .get("connector")
                .unwrap_or_default()
                .to_ascii_lowercase(),
            schema: self.declared_schema(columns).await?,
            options: options.without("connector"),
            table: None,
        };
        self.attach_memory_table(&mut def)?;
        // Open once now so that bad options fail here, not at INSERT time.
        sink::open(&def)?.close()?;
        let readable = self.register_file_table(&def)?;
        let connector = def.connector.clone();
        lock(&self.sinks).insert(name.to_string(), def);
        Ok(Output::Message(format!(
            "created table {name} ({connector} sink{readable}); INSERT INTO {name} SELECT ... starts a query writing to it"
        )))
    }

    /// A file sink table is also readable: registers DataFusion's listing
    /// table over its path under its name. Returns a note for the message.
    fn register_file_table(&self, def: &SinkDef) -> Result<&'static str, Error> {
        if !sink::files::is_file_connector(&def.connector) {
            return Ok("");
        }
        let options = sink::files::FileSinkOptions::parse(&def.connector, &def.options).map_err(
            |source| sink::SinkError::Option {
                sink: def.name.clone(),
                source,
            },
        )?;
        let table = Arc::new(crate::sql::file_table::FileTable::new(
            &options,
            &def.schema,
        )?);
        let name = datafusion::common::TableReference::bare(def.name.as_str());
        self.tables.deregister_table(name.clone())?;
        self.tables.register_table(name, table)?;
        Ok(", readable: queries see its finished files")
    }

    /// `CREATE VIEW`: a view over streams is kept by quiver and planned into
    /// each query that reads it; any other view goes to DataFusion.
    async fn create_view(
        &self,
        name: &str,
        query: &ast::Query,
        or_replace: bool,
    ) -> Result<Output, Error> {
        let streams = lock(&self.streams).clone();
        let views = lock(&self.views).clone();
        let catalog = Catalog {
            streams: &streams,
            views: &views,
        };
        let mut probe = query.clone();
        let reads = crate::sql::rewrite_relations(&mut probe, catalog)?;
        self.check_name_free(name, if reads.is_empty() { "table" } else { "view" })?;
        if reads.is_empty() {
            return self
                .run_sql_on_datafusion(&format!(
                    "CREATE {}VIEW {name} AS {query}",
                    if or_replace { "OR REPLACE " } else { "" }
                ))
                .await
                .map(|_| Output::Message(format!("created view {name}")));
        }
        if catalog.is_streaming(name) && !or_replace {
            return Err(Error::Catalog(format!(
                "'{name}' already exists; use CREATE OR REPLACE VIEW"
            )));
        }
        let view = ViewDef {
            name: name.to_string(),
            sql: {
                let mut named = query.clone();
                crate::sql::name_view_columns(&mut named);
                named.to_string()
            },
            reads,
            proctime_columns: crate::sql::proctime_columns(query),
        };
        // Plan a query over the view now, so that a broken view fails here.
        let probe_sql = format!("SELECT * FROM {}", view.name);
        let mut with_view = views.clone();
        with_view.retain(|v| v.name != name);
        with_view.push(view.clone());
        let probe_query = match crate::sql::parse_script(&probe_sql)?.remove(0).statement {
            Statement::Query(q) => q,
            _ => return Err(Error::Catalog("cannot check the view".into())),
        };
        StreamingPlan::try_new(
            &probe_query,
            Catalog {
                streams: &streams,
                views: &with_view,
            },
            &self.tables,
            self.tables.copied_config(),
            self.config().batch_interval.as_millis() as i64,
        )
        .await?;
        *lock(&self.views) = with_view;
        Ok(Output::Message(format!("created view {name} over streams")))
    }

    /// `CREATE FUNCTION name AS 'class'`: Flink's UDF registration. quiver
    /// cannot load Java classes; functions it has built in are accepted.
    fn create_function(&self, name: &str, class: &str) -> Result<Output, Error> {
        let state = self.tables.state();
        if state
            .scalar_functions()
            .contains_key(&name.to_ascii_lowercase())
        {
            Ok(Output::Message(format!(
                "function {name} is built into quiver; '{class}' is not loaded"
            )))
        } else {
            Err(Error::Catalog(format!(
                "cannot load '{class}': quiver does not run Java UDFs, and has no built-in function '{name}'"
            )))
        }
    }

    async fn create_stream(
        &self,
        name: &str,
        columns: &[ColumnDef],
        time: StreamTime,
        options: &Options,
        if_not_exists: bool,
    ) -> Result<Output, Error> {
        if lock(&self.streams).contains_key(name) {
            return if if_not_exists {
                Ok(Output::Message(format!("stream {name} already exists")))
            } else {
                Err(Error::Catalog(format!(
                    "stream '{name}' already exists; use CREATE STREAM IF NOT EXISTS"
                )))
            };
        }
        self.check_name_free(name, "stream")?;
        let connector = options
            .get("connector")
            .ok_or_else(|| {
                Error::Catalog(format!(
                    "CREATE STREAM {name} needs WITH (connector = '...'); valid connectors are: {}",
                    source::CONNECTORS.join(", ")
                ))
            })?
            .to_ascii_lowercase();
        let watermark = match time.watermark {
            Some((column, expr)) => Some(watermark_def(column, expr, options)?),
            None => {
                for key in TIME_OPTIONS {
                    if options.get(key).is_some() {
                        return Err(Error::Catalog(format!(
                            "option '{key}' needs a WATERMARK: add WATERMARK FOR ts AS ts - INTERVAL '5' SECOND to the column list"
                        )));
                    }
                }
                None
            }
        };
        let mut options = options.without("connector");
        for key in TIME_OPTIONS {
            options = options.without(key);
        }
        let declared = if columns.is_empty() {
            None
        } else {
            Some(self.declared_schema(columns).await?)
        };
        if !source::CONNECTORS.contains(&connector.as_str()) {
            return Err(Error::Catalog(format!(
                "unknown connector '{connector}'; source connectors (streams) are: {}; sink connectors (tables for INSERT INTO) are: {}",
                source::CONNECTORS.join(", "),
                sink::CONNECTORS.join(", ")
            )));
        }
        let schema = source::resolve_schema(&connector, declared, &options)?;
        if schema.field_with_name(BATCH_TIME_COLUMN).is_ok() {
            return Err(Error::Catalog(format!(
                "column {BATCH_TIME_COLUMN} is reserved: quiver adds it to every stream"
            )));
        }
        if let Some(w) = &watermark {
            check_watermark_column(name, &schema, &time.computed, &w.column)?;
        }
        for column in &time.primary_key {
            if schema.field_with_name(column).is_err()
                && !time.computed.iter().any(|(c, _)| c == column)
            {
                return Err(Error::Catalog(format!(
                    "PRIMARY KEY ({column}): stream '{name}' has no column '{column}'; its columns are: {}",
                    crate::sql::plan::column_names(&schema)
                )));
            }
        }
        let mut def = StreamDef {
            name: name.to_string(),
            connector: connector.clone(),
            schema,
            options,
            computed: time.computed,
            watermark,
            primary_key: time.primary_key,
            late: None,
        };
        let late = match &def.watermark {
            Some(w) if w.late_policy == LatePolicy::Side => Some(self.late_stream(&def).await?),
            _ => None,
        };
        def.late = late.as_ref().and_then(|l| l.late.clone());
        let columns = def.schema.fields().len();
        let plural = if columns == 1 { "" } else { "s" };
        let mut message = format!("created stream {name} ({connector}, {columns} column{plural})");
        if let Some(late) = &late {
            self.check_name_free(&late.name, "stream")?;
        }
        let mut streams = lock(&self.streams);
        if let Some(late) = late {
            if streams.contains_key(&late.name) {
                return Err(Error::Catalog(format!(
                    "late_policy = 'side' on stream '{name}' declares stream '{}', which already exists",
                    late.name
                )));
            }
            message += &format!("; its late rows go to stream {}", late.name);
            streams.insert(late.name.clone(), late);
        }
        streams.insert(name.to_string(), def);
        Ok(Output::Message(message))
    }

    /// The `<name>_late` stream of a stream with `late_policy = 'side'`: its
    /// columns as queries see them (computed ones included, typed by
    /// DataFusion) plus `query`, read through the hub they share.
    async fn late_stream(&self, def: &StreamDef) -> Result<StreamDef, Error> {
        let name = format!("{}{}", def.name, crate::exec::late::LATE_SUFFIX);
        let ctx = crate::sql::functions::session_context(Self::session_config());
        let raw = "__quiver_raw";
        let table = crate::sql::provider::BatchTable::new(with_batch_time(&def.schema));
        ctx.register_table(raw, Arc::new(table))?;
        let columns = ctx
            .sql(&crate::sql::plan::with_computed_columns(def, raw))
            .await
            .map_err(|e| Error::Catalog(format!("computed columns of stream '{}': {e}", def.name)))?
            .schema()
            .as_arrow()
            .clone();
        let schema = crate::exec::late::late_schema(&columns)
            .map_err(|e| Error::Catalog(format!("stream '{}': {e}", def.name)))?;
        let hub =
            crate::exec::LateHub::new(&name, schema.clone(), crate::exec::late::LATE_BUFFER_ROWS);
        Ok(StreamDef {
            name,
            connector: source::LATE_CONNECTOR.to_string(),
            schema,
            options: Options::default(),
            computed: Vec::new(),
            watermark: None,
            primary_key: Vec::new(),
            late: Some(Arc::new(hub)),
        })
    }

    /// Tells the session that no more queries will start (the end of a
    /// `quiver run` script): a `<name>_late` stream that no query publishes
    /// to is then drained, so bounded runs over it end.
    pub fn no_more_queries(&self) {
        for def in lock(&self.streams).values() {
            if def.connector == source::LATE_CONNECTOR
                && let Some(hub) = &def.late
            {
                hub.seal();
            }
        }
    }

    /// Arrow schema of declared columns, with DataFusion's SQL type mapping.
    async fn declared_schema(&self, columns: &[ColumnDef]) -> Result<SchemaRef, Error> {
        let list: Vec<String> = columns.iter().map(ToString::to_string).collect();
        let sql = format!("CREATE TABLE __quiver_columns ({})", list.join(", "));
        match self.tables.state().create_logical_plan(&sql).await? {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                Ok(Arc::new(create.input.schema().as_arrow().clone()))
            }
            other => Err(Error::Catalog(format!(
                "unexpected plan for column list: {other}"
            ))),
        }
    }

    fn show_streams(&self) -> Result<RecordBatch, Error> {
        let streams = self.streams();
        let column = |f: &dyn Fn(&StreamDef) -> String| -> ArrayRef {
            Arc::new(StringArray::from(streams.iter().map(f).collect::<Vec<_>>()))
        };
        let columns = vec![
            column(&|s| s.name.clone()),
            column(&|s| s.connector.clone()),
            column(&|s| s.options.get("format").unwrap_or("text").to_string()),
            column(&|s| {
                s.schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        ];
        RecordBatch::try_new(
            string_schema(&["name", "connector", "format", "columns"]),
            columns,
        )
        .map_err(|e| Error::Catalog(e.to_string()))
    }

    async fn describe(&self, name: &str) -> Result<Output, Error> {
        let def = lock(&self.streams).get(name).cloned();
        let Some(def) = def else {
            return self
                .run_sql_on_datafusion(&format!("DESCRIBE {name}"))
                .await;
        };
        let schema = with_batch_time(&def.schema);
        let fields = schema.fields();
        let names: StringArray = fields.iter().map(|f| Some(f.name().clone())).collect();
        let types: StringArray = fields
            .iter()
            .map(|f| Some(f.data_type().to_string()))
            .collect();
        let nullable: StringArray = fields
            .iter()
            .map(|f| Some(if f.is_nullable() { "YES" } else { "NO" }))
            .collect();
        // System columns are selectable by name but left out of `SELECT *`.
        let system: StringArray = fields
            .iter()
            .map(|f| {
                Some(if SYSTEM_COLUMNS.contains(&f.name().as_str()) {
                    "YES"
                } else {
                    "NO"
                })
            })
            .collect();
        let mut headers = vec!["column_name", "data_type", "is_nullable", "is_system"];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(names),
            Arc::new(types),
            Arc::new(nullable),
            Arc::new(system),
        ];
        // A `key` column (PRI, as MySQL's DESCRIBE) only on streams with a
        // declared primary key.
        if !def.primary_key.is_empty() {
            headers.push("key");
            columns.push(Arc::new(
                fields
                    .iter()
                    .map(|f| {
                        Some(if def.primary_key.contains(f.name()) {
                            "PRI"
                        } else {
                            ""
                        })
                    })
                    .collect::<StringArray>(),
            ));
        }
        let batch = RecordBatch::try_new(string_schema(&headers), columns)
            .map_err(|e| Error::Catalog(e.to_string()))?;
        Ok(Output::Rows(vec![batch]))
    }

    async fn set(&self, name: &str, value: &str) -> Result<Output, Error> {
        match name {
            "batch_interval" => {
                let interval = humantime::parse_duration(value).map_err(|e| {
                    Error::Catalog(format!(
                        "batch_interval = '{value}' is invalid: {e}; write e.g. '200ms' or '1s'"
                    ))
                })?;
                if interval < Duration::from_millis(1) {
                    return Err(Error::Catalog("batch_interval must be at least 1ms".into()));
                }
                lock(&self.config).batch_interval = interval;
                Ok(Output::Message(format!(
                    "batch_interval = {}",
                    humantime::format_duration(interval)
                )))
            }
            "incremental_aggregates" => {
                let on = match value.to_ascii_lowercase().as_str() {
                    "true" | "on" => true,
                    "false" | "off" => false,
                    _ => {
                        return Err(Error::Catalog(format!(
                            "incremental_aggregates = '{value}' is invalid; write true or false"
                        )));
                    }
                };
                lock(&self.config).incremental_aggregates = on;
                Ok(Output::Message(format!("incremental_aggregates = {on}")))
            }
            _ if name.starts_with("datafusion.") => {
                self.run_sql_on_datafusion(&format!("SET {name} = '{}'", value.replace('\'', "''")))
                    .await
            }
            _ => Err(Error::Catalog(format!(
                "unknown setting '{name}'; valid settings are: {}, datafusion.*",
                SETTINGS.join(", ")
            ))),
        }
    }

    async fn plan(&self, query: &ast::Query) -> Result<Option<StreamingPlan>, Error> {
        let streams = lock(&self.streams).clone();
        let views = lock(&self.views).clone();
        let catalog = Catalog {
            streams: &streams,
            views: &views,
        };
        let interval_ms = self.config().batch_interval.as_millis() as i64;
        let settings = crate::sql::PlanSettings {
            incremental_aggregates: self.config().incremental_aggregates,
        };
        let config = self
            .tables
            .copied_config()
            .with_extension(Arc::new(settings));
        Ok(StreamingPlan::try_new(query, catalog, &self.tables, config, interval_ms).await?)
    }

    async fn query(&self, query: &ast::Query) -> Result<Output, Error> {
        let Some(plan) = self.plan(query).await? else {
            return self
                .run_on_datafusion(ast::Statement::Query(Box::new(query.clone())))
                .await;
        };
        let config = self.config();
        let name = format!("query_{}", self.next_query.fetch_add(1, Ordering::Relaxed));
        let interval_ms = config.batch_interval.as_millis() as i64;
        let streams = plan.streams.iter().map(|(s, _)| s.name.clone()).collect();
        let handle = start_query(name, plan, interval_ms, config.clock, config.limits)?;
        self.add_reader(&handle.name, false, streams, handle.progress.clone());
        Ok(Output::Query(handle))
    }

    async fn explain(&self, query: &ast::Query) -> Result<Output, Error> {
        let Some(plan) = self.plan(query).await? else {
            return self
                .run_sql_on_datafusion(&format!("EXPLAIN {query}"))
                .await;
        };
        let interval = humantime::format_duration(self.config().batch_interval);
        let domain = match plan.time {
            Some(crate::sql::TimeDomain::Event) => "event time",
            _ => "processing time",
        };
        let mut inputs: Vec<String> = Vec::new();
        if let Some(w) = plan.window() {
            for (i, input) in plan.windows().iter().enumerate() {
                let incremental = plan.partials().iter().any(|p| p.window == i);
                let state = match (incremental, input.keeps_rows) {
                    (false, _) => "",
                    (true, true) => ", aggregated from partials per pane, rows kept too",
                    (true, false) => ", aggregated from partials per pane",
                };
                inputs.push(format!(
                    "{} window over {} (size {} ms, slide {} ms, {domain}{state})",
                    format!("{:?}", w.kind).to_uppercase(),
                    input.relation,
                    w.size_ms,
                    w.slide_ms
                ));
            }
            for input in plan.kept() {
                inputs.push(format!("{} rows kept for open windows", input.relation));
            }
        } else if let Some(session) = plan.session() {
            inputs.push(format!(
                "SESSION window over {} (gap {} ms, {domain}), rows kept until their session closes",
                session.input.relation, session.gap_ms
            ));
        } else {
            for (stream, _) in &plan.streams {
                inputs.push(format!("{} per batch", stream.name));
            }
        }
        for w in &plan.watermarks {
            inputs.push(format!(
                "watermark of {}: max({}) so far",
                w.stream, w.def.expr
            ));
        }
        let streaming = format!(
            "continuous query, batch_interval {interval}\ninputs: {}",
            inputs.join("; ")
        );
        let mut batches = vec![
            RecordBatch::try_new(
                string_schema(&["plan_type", "plan"]),
                vec![
                    Arc::new(StringArray::from(vec!["streaming_plan"])),
                    Arc::new(StringArray::from(vec![streaming])),
                ],
            )
            .map_err(|e| Error::Catalog(e.to_string()))?,
        ];
        batches.extend(plan.explain().await?);
        Ok(Output::Rows(batches))
    }

    async fn run_sql_on_datafusion(&self, sql: &str) -> Result<Output, Error> {
        let rows = self
            .tables
            .sql(sql)
            .await
            .map_err(SqlError::from)?
            .collect()
            .await?;
        Ok(Output::Rows(rows))
    }

    async fn run_on_datafusion(&self, statement: ast::Statement) -> Result<Output, Error> {
        self.run_df_statement(DFStatement::Statement(Box::new(statement)))
            .await
    }

    async fn run_df_statement(&self, statement: DFStatement) -> Result<Output, Error> {
        let state = self.tables.state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(SqlError::from)?;
        let is_ddl = matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Statement(_));
        let rows = self
            .tables
            .execute_logical_plan(plan)
            .await?
            .collect()
            .await?;
        Ok(if is_ddl {
            Output::Message("ok".into())
        } else {
            Output::Rows(rows)
        })
    }
}

/// Stream options that configure event time rather than the connector.
const TIME_OPTIONS: &[&str] = &["idle_timeout", "allowed_lateness", "late_policy"];

/// A stream's computed columns and watermark, as SQL text.
struct StreamTime {
    computed: Vec<(String, String)>,
    watermark: Option<(String, String)>,
    primary_key: Vec<String>,
}

/// The WATERMARK column must be a TIMESTAMP column of the stream (physical
/// or computed; a computed column's type is checked when a query plans it).
fn check_watermark_column(
    stream: &str,
    schema: &SchemaRef,
    computed: &[(String, String)],
    column: &str,
) -> Result<(), Error> {
    if computed.iter().any(|(c, _)| c == column) {
        return Ok(());
    }
    match schema.field_with_name(column) {
        Ok(field) if matches!(field.data_type(), DataType::Timestamp(_, _)) => Ok(()),
        Ok(field) => {
            let fix = match field.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => format!(
                    "declare it as TIMESTAMP(3) (ISO-8601 strings are parsed as they are read), \
                     or add the computed column {column} AS to_timestamp({column})"
                ),
                t if t.is_integer() => format!(
                    "add the computed column {column} AS to_timestamp_millis({column}) \
                     (epoch milliseconds; to_timestamp_seconds for seconds)"
                ),
                _ => format!(
                    "declare it as TIMESTAMP(3), or add the computed column {column} AS CAST({column} AS TIMESTAMP)"
                ),
            };
            Err(Error::Catalog(format!(
                "WATERMARK FOR {column}: column '{column}' of stream '{stream}' is {}, not a TIMESTAMP; {fix}",
                field.data_type()
            )))
        }
        Err(_) => Err(Error::Catalog(format!(
            "WATERMARK FOR {column}: stream '{stream}' has no column '{column}'; its columns are: {}",
            crate::sql::plan::column_names(schema)
        ))),
    }
}

fn watermark_def(column: String, expr: String, options: &Options) -> Result<WatermarkDef, Error> {
    let duration = |key: &str| -> Result<Option<Duration>, Error> {
        options
            .get(key)
            .map(|v| {
                humantime::parse_duration(v).map_err(|e| {
                    Error::Catalog(format!(
                        "option '{key}' = '{v}' is invalid: {e}; write e.g. '10s' or '500ms'"
                    ))
                })
            })
            .transpose()
    };
    let late_policy = match options.get("late_policy") {
        None => LatePolicy::Drop,
        Some(value) => LatePolicy::parse(value).map_err(Error::Catalog)?,
    };
    Ok(WatermarkDef {
        column,
        expr,
        idle_timeout: duration("idle_timeout")?,
        allowed_lateness: duration("allowed_lateness")?.unwrap_or_default(),
        late_policy,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn string_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ))
}
