//! Opening a query's checkpoint (`--checkpoint DIR`): the fingerprint of
//! what the query is — its normalized SQL, each stream's schema and source
//! (connector and options) and its sinks — and the check that every source
//! can resume (by re-reading, or through a write-ahead log).

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;

use super::Context;
use crate::checkpoint::{CheckpointSettings, Fingerprint, QueryCheckpoint};
use crate::error::Error;
use crate::exec::ExecError;
use crate::source::{LOGGED_CONNECTORS, RESUMABLE_CONNECTORS, SourceError};
use crate::sql::StreamingPlan;

impl Context {
    /// The checkpoint of query `name` (`query` planned as `plan`, writing
    /// to the sink `sink` describes in full: connector, name and options,
    /// as the fingerprint compares them; `quiver checkpoint inspect` shows
    /// `sink_name`), when the session checkpoints or the query has `own`
    /// settings (a sink's `checkpoint = 'DIR'`); refuses sources that
    /// cannot resume and a checkpoint written by another query.
    pub(super) fn open_checkpoint(
        &self,
        name: &str,
        query: &ast::Query,
        plan: &StreamingPlan,
        sink: &str,
        sink_name: &str,
        own: Option<CheckpointSettings>,
    ) -> Result<Option<Arc<QueryCheckpoint>>, Error> {
        let Some(settings) = own.or(self.config().checkpoint) else {
            return Ok(None);
        };
        let mut parts = vec![("query".to_string(), query.to_string())];
        for (def, _) in &plan.streams {
            let connector = def.connector.as_str();
            if !RESUMABLE_CONNECTORS.contains(&connector) && !LOGGED_CONNECTORS.contains(&connector)
            {
                return Err(ExecError::Source {
                    query: name.to_string(),
                    stream: def.name.clone(),
                    source: SourceError::Runtime(format!(
                        "--checkpoint: the {} connector cannot resume from a checkpoint yet \
                         (only {} can, and {} through a write-ahead log); run without \
                         --checkpoint",
                        def.connector,
                        RESUMABLE_CONNECTORS.join(", "),
                        LOGGED_CONNECTORS.join(" and ")
                    )),
                }
                .into());
            }
            let fields: Vec<String> = (def.schema.fields().iter())
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect();
            parts.push((format!("stream {} schema", def.name), fields.join(", ")));
            parts.push((
                format!("stream {} source", def.name),
                format!("{} {:?} {:?}", def.connector, def.options, def.computed),
            ));
        }
        parts.push(("sink".to_string(), sink.to_string()));
        let opened = QueryCheckpoint::open(
            &settings.dir,
            name,
            &Fingerprint { parts },
            settings.interval,
            vec![sink_name.to_string()],
            settings.reset,
        )
        .map_err(|source| ExecError::Checkpoint {
            query: name.to_string(),
            source,
        })?;
        Ok(Some(Arc::new(opened)))
    }
}
