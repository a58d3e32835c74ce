//! Sink tables: `CREATE TABLE t (...) WITH (connector = ...)` declares what
//! `INSERT INTO` writes to; a `memory` sink is a session table, and a file
//! sink is also readable as DataFusion's table over its finished files.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::ColumnDef;

use super::{Context, Output, lock};
use crate::error::Error;
use crate::options::Options;
use crate::sink::{self, SinkDef};

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

    /// A `memory` sink writes to a session table of its name, created here.
    pub(super) fn attach_memory_table(&self, def: &mut SinkDef) -> Result<(), Error> {
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

    /// A file sink table is also readable: registers DataFusion's listing
    /// table over its path under its name. Returns a note for the message.
    pub(super) fn register_file_table(&self, def: &SinkDef) -> Result<&'static str, Error> {
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
}
