//! Sink tables: `CREATE TABLE t (...) WITH (connector = ...)` declares what
//! `INSERT INTO` writes to; a `memory` sink is a session table, and a file
//! sink is also readable as DataFusion's table over its finished files.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::ColumnDef;

use super::ddl::{already_exists, exists_reply};
use super::{Context, Output};
use crate::catalog::{Def, Kind};
use crate::error::Error;
use crate::options::Options;
use crate::sink::{self, SinkDef};
use crate::sql::provider::BatchTable;

impl Context {
    /// `CREATE TABLE t (...) WITH (connector = 'blackhole' | 'print' | ...)`:
    /// a table that `INSERT INTO` writes to.
    pub(super) async fn create_sink_table(
        &self,
        name: &str,
        columns: &[ColumnDef],
        options: &Options,
        if_not_exists: bool,
    ) -> Result<Output, Error> {
        if self.catalog.read(|c| c.sinks.contains_key(name)) {
            return exists_reply(Kind::SinkTable, name, if_not_exists);
        }
        self.check_name_free(name, Kind::SinkTable)?;
        if columns.is_empty() {
            return Err(Error::Catalog(format!(
                "sink table '{name}' needs its columns: CREATE TABLE {name} (a BIGINT, ...) WITH (...)"
            )));
        }
        let def = SinkDef {
            name: name.to_string(),
            connector: options
                .get("connector")
                .unwrap_or_default()
                .to_ascii_lowercase(),
            schema: self.declared_schema(columns).await?,
            options: options.without("connector"),
        };
        let connector = def.connector.clone();
        let readable = self.with_new_sink(
            def,
            |name| already_exists(Kind::SinkTable, name),
            |def| {
                self.attach_memory_table(def)?;
                // Open once now so that bad options fail here, not at INSERT time.
                self.open_sink(def)?.close()?;
                self.register_file_table(def)
            },
        )?;
        Ok(Output::Message(format!(
            "created table {name} ({connector} sink{readable}); INSERT INTO {name} SELECT ... starts a query writing to it"
        )))
    }

    /// Adds sink table `def` to the catalog — its name checked free and
    /// taken in one step, `same_kind` the error if a sink table has it —
    /// then runs `make`, which registers the table's session tables and
    /// runtime objects (and may start the query writing to it). If `make`
    /// fails, the name is free again: in the catalog, the runtime registry
    /// and DataFusion (whose table `make` may have registered; the name was
    /// free there before).
    pub(super) fn with_new_sink<R>(
        &self,
        def: SinkDef,
        same_kind: impl FnOnce(&str) -> String,
        make: impl FnOnce(&SinkDef) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.insert_new(vec![Def::Sink(def.clone())], Kind::SinkTable, same_kind)?;
        let made = make(&def);
        if made.is_err() {
            self.catalog.update(|c| c.sinks.remove(&def.name));
            self.runtime.remove(&def.name);
            let name = datafusion::common::TableReference::bare(def.name.as_str());
            self.tables.deregister_table(name)?;
        }
        made
    }

    /// A `memory` sink writes to a session table of its name, created here
    /// and kept in the session's runtime registry for the sinks opened on it.
    pub(super) fn attach_memory_table(&self, def: &SinkDef) -> Result<(), Error> {
        if def.connector != "memory" {
            return Ok(());
        }
        let table = Arc::new(BatchTable::new(def.schema.clone()));
        let name = datafusion::common::TableReference::bare(def.name.as_str());
        self.tables.deregister_table(name.clone())?;
        self.tables.register_table(name, table.clone())?;
        self.runtime.add_memory_table(&def.name, table);
        Ok(())
    }

    /// Opens a sink on table `def`: a `memory` sink on the session's table
    /// of that name, any other through its connector.
    pub(super) fn open_sink(&self, def: &SinkDef) -> Result<Box<dyn sink::Sink>, Error> {
        let def = &sink::without_query_options(def);
        match self.runtime.memory_table(&def.name) {
            Some(table) if def.connector == "memory" => {
                Ok(Box::new(sink::MemorySink::open(def, table)?))
            }
            _ => Ok(sink::open(def)?),
        }
    }

    /// A file sink table is also readable: registers DataFusion's listing
    /// table over its path under its name. Returns a note for the message.
    pub(super) fn register_file_table(&self, def: &SinkDef) -> Result<&'static str, Error> {
        if !sink::files::is_file_connector(&def.connector) {
            return Ok("");
        }
        let def = &sink::without_query_options(def);
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
}

/// A memory sink appends to the session's table of its name.
impl sink::MemoryTable for BatchTable {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.schema_ref().clone()
    }

    fn append(&self, rows: Vec<datafusion::arrow::array::RecordBatch>) {
        BatchTable::append(self, rows);
    }

    fn num_rows(&self) -> usize {
        BatchTable::num_rows(self)
    }
}
