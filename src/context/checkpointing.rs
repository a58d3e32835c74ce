//! Opening a query's checkpoint (`--checkpoint DIR`): the fingerprint of
//! what the query is — its normalized SQL, each stream's schema and source
//! (connector and options) and its sinks — and the check that every source
//! can resume.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;

use super::Context;
use crate::checkpoint::{Fingerprint, QueryCheckpoint};
use crate::error::Error;
use crate::exec::ExecError;
use crate::source::{RESUMABLE_CONNECTORS, SourceError};
use crate::sql::StreamingPlan;

impl Context {
    /// The checkpoint of query `name` (`query` planned as `plan`, writing
    /// to `sink`), when the session checkpoints; refuses sources that
    /// cannot resume and a checkpoint written by another query.
    pub(super) fn open_checkpoint(
        &self,
        name: &str,
        query: &ast::Query,
        plan: &StreamingPlan,
        sink: &str,
    ) -> Result<Option<Arc<QueryCheckpoint>>, Error> {
        let Some(settings) = self.config().checkpoint else {
            return Ok(None);
        };
        let mut parts = vec![("query".to_string(), query.to_string())];
        for (def, _) in &plan.streams {
            if !RESUMABLE_CONNECTORS.contains(&def.connector.as_str()) {
                return Err(ExecError::Source {
                    query: name.to_string(),
                    stream: def.name.clone(),
                    source: SourceError::Runtime(format!(
                        "--checkpoint: the {} connector cannot resume from a checkpoint yet \
                         (only {} can; a write-ahead log for socket and stdin is a later \
                         increment); run without --checkpoint",
                        def.connector,
                        RESUMABLE_CONNECTORS.join(", ")
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
            vec![sink.to_string()],
            settings.reset,
        )
        .map_err(|source| ExecError::Checkpoint {
            query: name.to_string(),
            source,
        })?;
        Ok(Some(Arc::new(opened)))
    }
}
