//! Names and their removal: one name per object across quiver's streams,
//! views and sink tables and DataFusion's tables (`CREATE TABLE x AS VALUES`
//! refuses a stream's name, and the reverse), and `DROP STREAM | VIEW |
//! TABLE`, refused while a running query reads the stream.
//!
//! Statements that change the catalog hold [`Context`]'s DDL lock from
//! their name check to their insert, so two of them cannot both find a name
//! free.

use std::collections::BTreeSet;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;
use tokio::sync::watch;

use super::{Context, Output, lock};
use crate::error::Error;
use crate::exec::QueryProgress;
use crate::source;
use crate::sql::{DropKind, Statement, parser::normalize_name};

/// A query this session started and the streams it reads, so that they
/// are not dropped under it.
pub(super) struct Reader {
    /// The query's name.
    query: String,
    /// Background (`INSERT INTO`, `CREATE SINK`: `STOP QUERY` stops it) or
    /// foreground (Ctrl-C stops it).
    background: bool,
    /// The streams it reads, through views too.
    streams: BTreeSet<String>,
    /// Its progress; closed once the query has ended.
    progress: watch::Receiver<QueryProgress>,
}

impl Reader {
    fn is_running(&self) -> bool {
        self.progress.has_changed().is_ok()
    }
}

/// Whether `statement` creates or drops a named object, or may start a
/// query reading streams (and so takes the DDL lock: a stream is not dropped
/// between a query's planning and its registration as a reader).
pub(super) fn changes_catalog(statement: &Statement) -> bool {
    match statement {
        Statement::CreateStream { .. }
        | Statement::CreateView { .. }
        | Statement::CreateSink { .. }
        | Statement::Insert { .. }
        | Statement::Query(_)
        | Statement::Drop { .. }
        | Statement::DataFusion(_) => true,
        Statement::Other(other) => created_name(other).is_some(),
        _ => false,
    }
}

/// The name a DataFusion statement creates (`CREATE TABLE`, `CREATE VIEW`).
pub(super) fn created_name(statement: &ast::Statement) -> Option<String> {
    match statement {
        ast::Statement::CreateTable(create) => Some(normalize_name(&create.name)),
        ast::Statement::CreateView(view) => Some(normalize_name(&view.name)),
        _ => None,
    }
}

impl Context {
    /// Records that query `query` (running, with `progress`) reads `streams`.
    pub(super) fn add_reader(
        &self,
        query: &str,
        background: bool,
        streams: BTreeSet<String>,
        progress: watch::Receiver<QueryProgress>,
    ) {
        let mut readers = lock(&self.readers);
        readers.retain(Reader::is_running);
        readers.push(Reader {
            query: query.to_string(),
            background,
            streams,
            progress,
        });
    }

    /// What `name` already names, if anything: "stream", "view", "sink
    /// table" or "table" (DataFusion's tables and views).
    pub(super) fn name_owner(&self, name: &str) -> Option<&'static str> {
        if lock(&self.streams).contains_key(name) {
            Some("stream")
        } else if lock(&self.views).iter().any(|v| v.name == name) {
            Some("view")
        } else if lock(&self.sinks).contains_key(name) {
            Some("sink table")
        } else if self.tables.table_exist(name).unwrap_or(false) {
            Some("table")
        } else {
            None
        }
    }

    /// Refuses to create `kind` `name` when another kind of object has that
    /// name (the same kind reports its own "already exists").
    pub(super) fn check_name_free(&self, name: &str, kind: &str) -> Result<(), Error> {
        match self.name_owner(name) {
            Some(owner) if owner != kind => Err(Error::Catalog(format!(
                "cannot create {kind} '{name}': a {owner} named '{name}' exists; \
                 pick another name, or DROP {} {name} first",
                drop_keyword(owner)
            ))),
            _ => Ok(()),
        }
    }

    /// `DROP STREAM | VIEW | TABLE`.
    pub(super) async fn drop_objects(
        &self,
        kind: DropKind,
        names: &[String],
        if_exists: bool,
        statement: &ast::Statement,
    ) -> Result<Output, Error> {
        let [name] = names else {
            return Err(Error::Catalog(
                "DROP one object at a time: DROP STREAM name".into(),
            ));
        };
        let owner = self.name_owner(name);
        match (kind, owner) {
            (DropKind::Stream | DropKind::Table, Some("stream")) => self.drop_stream(name),
            (DropKind::View, Some("view")) => self.drop_view(name),
            (DropKind::Table, Some("sink table")) => self.drop_sink_table(name),
            (DropKind::View | DropKind::Table, Some("table")) => self
                .run_df_statement(DFStatement::Statement(Box::new(statement.clone())))
                .await
                .map(|_| {
                    let kind = if kind == DropKind::View {
                        "view"
                    } else {
                        "table"
                    };
                    Output::Message(format!("dropped {kind} {name}"))
                }),
            (_, None) if if_exists => Ok(Output::Message(format!(
                "{name} does not exist; nothing dropped"
            ))),
            (_, None) => {
                let streams: Vec<String> = lock(&self.streams).keys().cloned().collect();
                Err(Error::Catalog(format!(
                    "cannot drop '{name}': no stream, view or table has that name; streams: {}",
                    if streams.is_empty() {
                        "none".to_string()
                    } else {
                        streams.join(", ")
                    }
                )))
            }
            (_, Some(owner)) => Err(Error::Catalog(format!(
                "'{name}' is a {owner}: DROP {} {name}",
                drop_keyword(owner)
            ))),
        }
    }

    fn drop_stream(&self, name: &str) -> Result<Output, Error> {
        let mut streams = lock(&self.streams);
        let Some(def) = streams.get(name) else {
            return Err(Error::Catalog(format!("stream '{name}' does not exist")));
        };
        if def.connector == source::LATE_CONNECTOR
            && let Some(owner) = name.strip_suffix(crate::exec::late::LATE_SUFFIX)
            && streams.contains_key(owner)
        {
            return Err(Error::Catalog(format!(
                "stream '{name}' holds the late rows of stream '{owner}': DROP STREAM {owner} drops both"
            )));
        }
        let late = format!("{name}{}", crate::exec::late::LATE_SUFFIX);
        let mut dropped = vec![name.to_string()];
        if def.late.is_some() && streams.contains_key(&late) {
            dropped.push(late);
        }
        for view in lock(&self.views).iter() {
            if let Some(stream) = dropped.iter().find(|s| view.reads.contains(*s)) {
                return Err(Error::Catalog(format!(
                    "cannot drop stream '{name}': view '{}' reads stream '{stream}'; DROP VIEW {} first",
                    view.name, view.name
                )));
            }
        }
        let readers = lock(&self.readers);
        if let Some((reader, stream)) = readers.iter().filter(|r| r.is_running()).find_map(|r| {
            dropped
                .iter()
                .find(|s| r.streams.contains(*s))
                .map(|s| (r, s))
        }) {
            let stop = if reader.background {
                format!("STOP QUERY {}", reader.query)
            } else {
                "Ctrl-C".to_string()
            };
            return Err(Error::Catalog(format!(
                "cannot drop stream '{name}': query {} reads stream '{stream}' and is running; \
                 stop it first ({stop})",
                reader.query
            )));
        }
        drop(readers);
        for stream in &dropped {
            streams.remove(stream);
        }
        Ok(Output::Message(format!(
            "dropped stream {}",
            dropped.join(" and stream ")
        )))
    }

    fn drop_view(&self, name: &str) -> Result<Output, Error> {
        let mut views = lock(&self.views);
        if let Some(other) = views.iter().find(|v| v.reads.contains(name)) {
            return Err(Error::Catalog(format!(
                "cannot drop view '{name}': view '{}' reads it; DROP VIEW {} first",
                other.name, other.name
            )));
        }
        views.retain(|v| v.name != name);
        Ok(Output::Message(format!("dropped view {name}")))
    }

    fn drop_sink_table(&self, name: &str) -> Result<Output, Error> {
        let running = self.background.list().into_iter().find(|q| {
            q.name == name
                && matches!(
                    q.state,
                    crate::exec::QueryState::Running | crate::exec::QueryState::Stopping
                )
        });
        if running.is_some() {
            return Err(Error::Catalog(format!(
                "cannot drop table '{name}': query {name} writes to it and is running; \
                 stop it first (STOP QUERY {name})"
            )));
        }
        let mut sinks = lock(&self.sinks);
        if let Some(def) = sinks.remove(name)
            && (def.table.is_some() || crate::sink::files::is_file_connector(&def.connector))
        {
            self.tables
                .deregister_table(datafusion::common::TableReference::bare(name))?;
        }
        Ok(Output::Message(format!("dropped table {name}")))
    }

    /// A statement quiver leaves to DataFusion (`CREATE TABLE x AS VALUES`,
    /// `SELECT 1`), after checking that a name it creates is free.
    pub(super) async fn run_other_statement(
        &self,
        statement: &ast::Statement,
    ) -> Result<Output, Error> {
        if let Some(name) = created_name(statement) {
            self.check_name_free(&name, "table")?;
        }
        self.run_on_datafusion(statement.clone()).await
    }

    /// `CREATE EXTERNAL TABLE` and other statements of DataFusion's dialect.
    pub(super) async fn run_datafusion_statement(
        &self,
        statement: &DFStatement,
    ) -> Result<Output, Error> {
        if let DFStatement::CreateExternalTable(create) = statement {
            if create.unbounded {
                return Err(Error::Catalog(format!(
                    "CREATE UNBOUNDED EXTERNAL TABLE is not supported: declare a stream, \
                     CREATE STREAM {} WITH (connector = 'files', path = '{}', format = 'csv')",
                    create.name,
                    create.locations.join(",")
                )));
            }
            self.check_name_free(&create.name.to_string(), "table")?;
        }
        self.run_df_statement(statement.clone()).await
    }
}

/// The DROP keyword for an object kind.
fn drop_keyword(owner: &str) -> &'static str {
    match owner {
        "stream" => "STREAM",
        "view" => "VIEW",
        _ => "TABLE",
    }
}
