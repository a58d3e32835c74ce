//! Names and their removal: one name per object across quiver's streams,
//! views and sink tables and DataFusion's tables (`CREATE TABLE x AS VALUES`
//! refuses a stream's name, and the reverse), and `DROP STREAM | VIEW |
//! TABLE`, refused while a running query reads the stream (and dropping the
//! object's runtime object, a late stream's hub or a memory sink's table).
//!
//! The catalog checks a name and takes it in one step
//! ([`crate::catalog::Catalog::insert_new`]); statements that change the
//! catalog or start queries also hold [`Context`]'s DDL lock for their whole
//! run (why: see the field's doc).

use std::collections::BTreeSet;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;
use tokio::sync::watch;

use super::{Context, Output, lock};
use crate::catalog::{Def, Defs, Kind};
use crate::error::Error;
use crate::report::QueryProgress;
use crate::source::{self, late};
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

    /// What `name` already names, if anything, DataFusion's tables and
    /// views included.
    pub(super) fn name_owner(&self, name: &str) -> Option<Kind> {
        self.catalog
            .read(|c| c.owner(name))
            .or_else(|| self.is_datafusion_table(name).then_some(Kind::Table))
    }

    /// Whether DataFusion has a table or view called `name`.
    pub(super) fn is_datafusion_table(&self, name: &str) -> bool {
        self.tables.table_exist(name).unwrap_or(false)
    }

    /// Refuses to create `kind` `name` when another kind of object has that
    /// name (the same kind reports its own "already exists").
    pub(super) fn check_name_free(&self, name: &str, kind: Kind) -> Result<(), Error> {
        match self.name_owner(name) {
            Some(owner) if owner != kind => Err(name_taken(name, kind, owner)),
            _ => Ok(()),
        }
    }

    /// Adds `defs` to the catalog, atomically checking that their names are
    /// free; a name the same kind of object has gives `same_kind`'s error.
    pub(super) fn insert_new(
        &self,
        defs: Vec<Def>,
        kind: Kind,
        same_kind: impl FnOnce(&str) -> String,
    ) -> Result<(), Error> {
        self.catalog
            .insert_new(defs, |name| self.is_datafusion_table(name))
            .map_err(|taken| {
                if taken.kind == kind {
                    Error::Catalog(same_kind(&taken.name))
                } else {
                    name_taken(&taken.name, kind, taken.kind)
                }
            })
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
            (DropKind::Stream | DropKind::Table, Some(Kind::Stream)) => self.drop_stream(name),
            (DropKind::View, Some(Kind::View)) => self.drop_view(name),
            (DropKind::Table, Some(Kind::SinkTable)) => self.drop_sink_table(name),
            (DropKind::View | DropKind::Table, Some(Kind::Table)) => self
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
                let streams: Vec<String> =
                    self.catalog.read(|c| c.streams.keys().cloned().collect());
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
                owner.drop_keyword()
            ))),
        }
    }

    fn drop_stream(&self, name: &str) -> Result<Output, Error> {
        self.catalog
            .update(|defs| self.drop_stream_from(defs, name))
    }

    /// Removes stream `name` (and its `<name>_late` stream) from `defs`
    /// unless a view or a running query reads it.
    fn drop_stream_from(&self, defs: &mut Defs, name: &str) -> Result<Output, Error> {
        let streams = &mut defs.streams;
        let Some(def) = streams.get(name) else {
            return Err(Error::Catalog(format!("stream '{name}' does not exist")));
        };
        if def.connector == source::LATE_CONNECTOR
            && let Some(owner) = name.strip_suffix(late::LATE_SUFFIX)
            && streams.contains_key(owner)
        {
            return Err(Error::Catalog(format!(
                "stream '{name}' holds the late rows of stream '{owner}': DROP STREAM {owner} drops both"
            )));
        }
        let late = late::late_stream_name(name);
        let side = def
            .watermark
            .as_ref()
            .is_some_and(|w| w.late_policy == crate::window::LatePolicy::Side);
        let mut dropped = vec![name.to_string()];
        if side
            && streams
                .get(&late)
                .is_some_and(|l| l.connector == source::LATE_CONNECTOR)
        {
            dropped.push(late);
        }
        for view in &defs.views {
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
            self.runtime.remove(stream);
        }
        Ok(Output::Message(format!(
            "dropped stream {}",
            dropped.join(" and stream ")
        )))
    }

    fn drop_view(&self, name: &str) -> Result<Output, Error> {
        self.catalog.update(|defs| {
            if let Some(other) = defs.views.iter().find(|v| v.reads.contains(name)) {
                return Err(Error::Catalog(format!(
                    "cannot drop view '{name}': view '{}' reads it; DROP VIEW {} first",
                    other.name, other.name
                )));
            }
            defs.views.retain(|v| v.name != name);
            Ok(Output::Message(format!("dropped view {name}")))
        })
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
        let removed = self.catalog.update(|defs| defs.sinks.remove(name));
        self.runtime.remove(name);
        if let Some(def) = removed
            && (def.connector == "memory" || crate::sink::files::is_file_connector(&def.connector))
        {
            self.tables
                .deregister_table(datafusion::common::TableReference::bare(name))?;
        }
        Ok(Output::Message(format!("dropped table {name}")))
    }
}

/// Creating `kind` `name` refused: `owner` (another kind) has the name.
pub(super) fn name_taken(name: &str, kind: Kind, owner: Kind) -> Error {
    Error::Catalog(format!(
        "cannot create {kind} '{name}': a {owner} named '{name}' exists; \
         pick another name, or DROP {} {name} first",
        owner.drop_keyword()
    ))
}

/// What `CREATE STREAM` / `CREATE TABLE` says of a name its own kind already
/// has: the error, naming the `IF NOT EXISTS` fix.
pub(super) fn already_exists(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Stream => format!("stream '{name}' already exists; use CREATE STREAM IF NOT EXISTS"),
        _ => format!("table '{name}' already exists; use CREATE TABLE IF NOT EXISTS"),
    }
}

/// The answer to creating `name` again as the `kind` it already is: a note
/// with `IF NOT EXISTS`, else [`already_exists`]'s error.
pub(super) fn exists_reply(kind: Kind, name: &str, if_not_exists: bool) -> Result<Output, Error> {
    if if_not_exists {
        let word = if kind == Kind::Stream {
            "stream"
        } else {
            "table"
        };
        Ok(Output::Message(format!("{word} {name} already exists")))
    } else {
        Err(Error::Catalog(already_exists(kind, name)))
    }
}
