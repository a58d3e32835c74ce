//! `CREATE STREAM`: a source connector, its declared columns, computed
//! columns and watermark; with `late_policy = 'side'` also the stream's
//! `<name>_late` stream.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::helpers::stmt_create_table::CreateTableBuilder;
use datafusion::sql::sqlparser::ast::{self, ColumnDef};

use super::ddl::{already_exists, exists_reply};
use super::{Context, Output};
use crate::batch::{BATCH_TIME_COLUMN, with_batch_time};
use crate::catalog::{Def, Kind};
use crate::error::Error;
use crate::options::{OptionError, Options};
use crate::sink::{self, SinkError};
use crate::source::late::{self, LateHub};
use crate::source::{self, StreamDef};
use crate::sql::Statement;
use crate::window::{LatePolicy, WatermarkDef};

impl Context {
    /// `CREATE STREAM` and `CREATE TABLE ... WITH (connector = ...)`: a
    /// stream for a source connector, a sink table for a sink connector.
    pub(super) async fn create_stream_statement(
        &self,
        statement: &Statement,
    ) -> Result<Output, Error> {
        let Statement::CreateStream {
            name,
            columns,
            computed,
            watermark,
            primary_key,
            options,
            if_not_exists,
        } = statement
        else {
            return Err(Error::Catalog("not a CREATE STREAM statement".into()));
        };
        let connector = options.get("connector").map(str::to_ascii_lowercase);
        if connector
            .as_deref()
            .is_some_and(|c| sink::is_sink_table(c, options))
        {
            let hint = if connector.as_deref() == Some("kafka") {
                " (a kafka table without 'group.id' is a sink; give 'group.id' to read the topic as a stream)"
            } else {
                ""
            };
            if !computed.is_empty() || watermark.is_some() {
                return Err(Error::Catalog(format!(
                    "sink table '{name}' cannot have computed columns or a WATERMARK{hint}"
                )));
            }
            // A source option on a kafka table meant as a stream (group.id
            // forgotten) is unknown to the sink: say why it was taken for one.
            return match self
                .create_sink_table(name, columns, options, *if_not_exists)
                .await
            {
                Err(
                    e @ Error::Sink(SinkError::Option {
                        source: OptionError::Unknown { .. },
                        ..
                    }),
                ) if !hint.is_empty() => Err(Error::Catalog(format!("{e}{hint}"))),
                other => other,
            };
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

    async fn create_stream(
        &self,
        name: &str,
        columns: &[ColumnDef],
        time: StreamTime,
        options: &Options,
        if_not_exists: bool,
    ) -> Result<Output, Error> {
        if self.catalog.read(|c| c.streams.contains_key(name)) {
            return exists_reply(Kind::Stream, name, if_not_exists);
        }
        self.check_name_free(name, Kind::Stream)?;
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
        let def = StreamDef {
            name: name.to_string(),
            connector: connector.clone(),
            schema,
            options,
            computed: time.computed,
            watermark,
            primary_key: time.primary_key,
        };
        let late = match &def.watermark {
            Some(w) if w.late_policy == LatePolicy::Side => Some(self.late_stream(&def).await?),
            _ => None,
        };
        let columns = def.schema.fields().len();
        let plural = if columns == 1 { "" } else { "s" };
        let mut message = format!("created stream {name} ({connector}, {columns} column{plural})");
        let mut defs = Vec::new();
        let mut hub = None;
        if let Some((late, late_hub)) = late {
            self.check_name_free(&late.name, Kind::Stream)?;
            message += &format!("; its late rows go to stream {}", late.name);
            defs.push(Def::Stream(late));
            hub = Some(late_hub);
        }
        defs.push(Def::Stream(def));
        self.insert_new(defs, Kind::Stream, |taken| {
            if taken == name {
                already_exists(Kind::Stream, name)
            } else {
                format!(
                    "late_policy = 'side' on stream '{name}' declares stream '{taken}', which already exists"
                )
            }
        })?;
        if let Some(hub) = hub {
            self.runtime.add_late_hub(hub);
        }
        Ok(Output::Message(message))
    }

    /// The `<name>_late` stream of a stream with `late_policy = 'side'`: its
    /// columns as queries see them (computed ones included, typed by
    /// DataFusion) plus `query`, and the hub that carries its rows from the
    /// queries over `def` to the late stream's readers.
    async fn late_stream(&self, def: &StreamDef) -> Result<(StreamDef, Arc<LateHub>), Error> {
        let name = late::late_stream_name(&def.name);
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
        let schema = late::late_schema(&columns)
            .map_err(|e| Error::Catalog(format!("stream '{}': {e}", def.name)))?;
        let hub = LateHub::new(&name, schema.clone(), late::LATE_BUFFER_ROWS);
        let late = StreamDef {
            name,
            connector: source::LATE_CONNECTOR.to_string(),
            schema,
            options: Options::default(),
            computed: Vec::new(),
            watermark: None,
            primary_key: Vec::new(),
        };
        Ok((late, Arc::new(hub)))
    }

    /// Tells the session that no more queries will start (the end of a
    /// `quiver run` script): a `<name>_late` stream that no query publishes
    /// to is then drained, so bounded runs over it end.
    pub fn no_more_queries(&self) {
        self.runtime.seal_late_hubs();
    }

    /// Arrow schema of declared columns, with DataFusion's SQL type mapping:
    /// DataFusion plans a `CREATE TABLE` of these columns (built as a
    /// statement, not as text), and its schema is theirs.
    pub(super) async fn declared_schema(&self, columns: &[ColumnDef]) -> Result<SchemaRef, Error> {
        let name = ast::ObjectName::from(vec![ast::Ident::new("__quiver_columns")]);
        let create = CreateTableBuilder::new(name)
            .columns(columns.to_vec())
            .build();
        let statement = DFStatement::Statement(Box::new(ast::Statement::CreateTable(create)));
        match self.tables.state().statement_to_plan(statement).await? {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                Ok(Arc::new(create.input.schema().as_arrow().clone()))
            }
            other => Err(Error::Catalog(format!(
                "unexpected plan for column list: {other}"
            ))),
        }
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
