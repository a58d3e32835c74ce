//! Statements that start continuous queries: a foreground `SELECT` over
//! streams (the caller consumes its results), and the background queries
//! `INSERT INTO` and `CREATE SINK` start (`STOP QUERY` stops them).

use std::sync::atomic::Ordering;

use datafusion::sql::sqlparser::ast;

use super::{Context, Output};
use crate::catalog::Kind;
use crate::checkpoint::CheckpointSettings;
use crate::error::Error;
use crate::exec::start_query;
use crate::options::Options;
use crate::sink::{self, SinkDef};
use crate::sql::StreamingPlan;

impl Context {
    /// `STOP QUERY name`: stops a background query and reports what it did.
    pub(super) async fn stop_query(&self, name: &str) -> Result<Output, Error> {
        let status = self.background.stop(name).await?;
        Ok(Output::Message(format!(
            "stopped query {name} after {}, {} written",
            crate::report::counted(status.batches, "batch", "batches"),
            crate::report::counted(status.output_rows, "row", "rows"),
        )))
    }

    pub(super) async fn query(&self, query: &ast::Query) -> Result<Output, Error> {
        let Some(plan) = self.plan(query).await? else {
            return self
                .run_on_datafusion(ast::Statement::Query(Box::new(query.clone())))
                .await;
        };
        let config = self.config();
        let name = format!("query_{}", self.next_query.fetch_add(1, Ordering::Relaxed));
        let interval_ms = config.batch_interval.as_millis() as i64;
        let streams = plan.streams.iter().map(|(s, _)| s.name.clone()).collect();
        let hubs = self.runtime.late_hubs(&plan);
        let checkpoint = self.open_checkpoint(&name, query, &plan, "stdout", "stdout", None)?;
        let handle = start_query(
            name,
            plan,
            &hubs,
            interval_ms,
            config.clock,
            config.limits,
            checkpoint,
        )?;
        self.add_reader(&handle.name, false, streams, handle.progress.clone());
        Ok(Output::Query(handle))
    }

    /// Plans `sql`, one continuous query over this session's streams,
    /// without starting it (`None` when it reads no stream): unit tests run
    /// a real plan's operator batch by batch.
    #[cfg(test)]
    pub(crate) async fn plan_query(&self, sql: &str) -> Result<Option<StreamingPlan>, Error> {
        let statement = crate::sql::parse_script(sql)?.pop().map(|p| p.statement);
        let Some(crate::sql::Statement::Query(query)) = statement else {
            return Err(crate::sql::SqlError::Parse(format!("expected one query: {sql}")).into());
        };
        self.plan(&query).await
    }

    /// `INSERT INTO sink_table SELECT ...`: starts a background query named
    /// after the table, its rows cast by position to the table's columns.
    pub(super) async fn insert(&self, table: &str, query: &ast::Query) -> Result<Output, Error> {
        let (def, known) = self.catalog.read(|c| {
            let known: Vec<String> = c.sinks.keys().cloned().collect();
            (c.sinks.get(table).cloned(), known)
        });
        let Some(def) = def else {
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
    pub(super) async fn create_sink(
        &self,
        name: &str,
        query: &ast::Query,
        options: &Options,
        if_not_exists: bool,
    ) -> Result<Output, Error> {
        if self.catalog.read(|c| c.sinks.contains_key(name)) {
            if if_not_exists {
                return Ok(Output::Message(format!("sink {name} already exists")));
            }
            return Err(Error::Catalog(format!(
                "sink '{name}' already exists; use INSERT INTO {name} SELECT ... to start another query into it"
            )));
        }
        self.check_name_free(name, Kind::SinkTable)?;
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
        let def = SinkDef {
            name: name.to_string(),
            connector: connector.to_ascii_lowercase(),
            schema: plan.schema.clone(),
            options: options.without("connector"),
        };
        self.with_new_sink(
            def,
            |name| format!(
                "sink '{name}' already exists; use INSERT INTO {name} SELECT ... to start another query into it"
            ),
            |def| {
                self.attach_memory_table(def)?;
                let output = self.start_planned(def.clone(), plan, query)?;
                self.register_file_table(def)?;
                Ok(output)
            },
        )
    }

    pub(super) async fn start_background(
        &self,
        def: SinkDef,
        query: &ast::Query,
    ) -> Result<Output, Error> {
        let Some(mut plan) = self.plan(query).await? else {
            return Err(Error::Catalog(format!(
                "INSERT INTO {}: the query reads no stream; quiver's INSERT starts a continuous query",
                def.name
            )));
        };
        plan.cast_to(&def.schema)?;
        self.start_planned(def, plan, query)
    }

    /// Starts background query `def.name` (`query`, planned as `plan`)
    /// into the sink `def`; under `--checkpoint DIR`, or with the sink
    /// option `checkpoint = 'DIR'` (which takes precedence), the query
    /// checkpoints in `DIR/<sink name>/` when its sink can
    /// ([`sink::CHECKPOINT_CONNECTORS`]).
    pub(super) fn start_planned(
        &self,
        def: SinkDef,
        plan: StreamingPlan,
        query: &ast::Query,
    ) -> Result<Output, Error> {
        let streams = plan.streams.iter().map(|(s, _)| s.name.clone()).collect();
        let config = self.config();
        let interval_ms = config.batch_interval.as_millis() as i64;
        let own = sink::own_checkpoint(&def.options).map(|dir| CheckpointSettings {
            dir,
            reset: false,
            interval: config.checkpoint.as_ref().map_or(1, |c| c.interval),
        });
        if (own.is_some() || config.checkpoint.is_some())
            && !sink::CHECKPOINT_CONNECTORS.contains(&def.connector.as_str())
        {
            return Err(Error::Catalog(format!(
                "--checkpoint: background query {} writes to a {} sink, which cannot resume from \
                 a checkpoint yet (the memory sink cannot; {} can); run it \
                 without --checkpoint (and without its checkpoint option)",
                def.name,
                def.connector,
                sink::CHECKPOINT_CONNECTORS.join(", ")
            )));
        }
        let described = format!("{} {} {:?}", def.connector, def.name, def.options);
        let shown = format!("{} {}", def.connector, def.name);
        let checkpoint = self.open_checkpoint(&def.name, query, &plan, &described, &shown, own)?;
        let sink = self.open_sink(&def)?;
        let hubs = self.runtime.late_hubs(&plan);
        let handle = start_query(
            def.name.clone(),
            plan,
            &hubs,
            interval_ms,
            config.clock,
            config.limits,
            checkpoint,
        )?;
        let progress = handle.progress.clone();
        self.background.start(handle, sink, &def.connector)?;
        self.add_reader(&def.name, true, streams, progress);
        Ok(Output::Message(format!(
            "started query {} writing to {} sink {} (SHOW QUERIES shows progress, STOP QUERY {} stops it)",
            def.name, def.connector, def.name, def.name
        )))
    }
}
