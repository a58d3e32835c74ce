//! The session's runtime objects, next to its catalog of definitions: the
//! hub of every `<name>_late` stream and the table of every `memory` sink,
//! keyed by the object's name. A query or sink finds them here when it is
//! opened; `DROP STREAM` / `DROP TABLE` removes them with the definition.
//!
//! The catalog ([`crate::catalog`]) holds definitions only — values a query
//! plans against and a snapshot copies — so nothing in it is shared mutable
//! state. The statements that change both (`CREATE`, `DROP`) hold the
//! session's DDL lock, so a query, which starts under that lock too, sees
//! the two agree.

use std::sync::{Arc, Mutex};

use crate::source::late::{LateHub, LateHubs};
use crate::sql::StreamingPlan;
use crate::sql::provider::BatchTable;

/// Runtime objects by name, behind one lock.
#[derive(Debug, Default)]
pub(super) struct Runtime {
    objects: Mutex<Objects>,
}

#[derive(Debug, Default)]
struct Objects {
    /// The hub of each `<name>_late` stream, by the late stream's name.
    late: LateHubs,
    /// The table each `memory` sink appends to, by the sink's name.
    memory: std::collections::BTreeMap<String, Arc<BatchTable>>,
}

impl Runtime {
    /// Keeps `hub` for its late stream.
    pub(super) fn add_late_hub(&self, hub: Arc<LateHub>) {
        self.lock().late.insert(hub.stream().to_string(), hub);
    }

    /// The hubs `plan` publishes to or reads: those of its streams' late
    /// streams and of the late streams it reads.
    pub(super) fn late_hubs(&self, plan: &StreamingPlan) -> LateHubs {
        let objects = self.lock();
        let mut hubs = LateHubs::new();
        for (def, _) in &plan.streams {
            let late = crate::source::late::late_stream_name(&def.name);
            for name in [&def.name, &late] {
                if let Some(hub) = objects.late.get(name) {
                    hubs.insert(name.clone(), hub.clone());
                }
            }
        }
        hubs
    }

    /// No more queries will start: readers of a late stream nobody publishes
    /// to are drained.
    pub(super) fn seal_late_hubs(&self) {
        for hub in self.lock().late.values() {
            hub.seal();
        }
    }

    /// Keeps `table` for memory sink `name`.
    pub(super) fn add_memory_table(&self, name: &str, table: Arc<BatchTable>) {
        self.lock().memory.insert(name.to_string(), table);
    }

    /// The table of memory sink `name`.
    pub(super) fn memory_table(&self, name: &str) -> Option<Arc<BatchTable>> {
        self.lock().memory.get(name).cloned()
    }

    /// Drops whatever runtime object `name` has (a dropped stream's hub, a
    /// dropped sink's table).
    pub(super) fn remove(&self, name: &str) {
        let mut objects = self.lock();
        objects.late.remove(name);
        objects.memory.remove(name);
    }

    /// Whether `name` has a runtime object.
    #[cfg(test)]
    pub(super) fn has(&self, name: &str) -> bool {
        let objects = self.lock();
        objects.late.contains_key(name) || objects.memory.contains_key(name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use crate::context::{Config, Context};

    /// A late stream's hub and a memory sink's table are the session's,
    /// not the catalog's: created with their definitions, dropped with them.
    #[tokio::test]
    async fn drop_removes_the_runtime_objects_with_the_definitions() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::new(Config::bounded(std::time::Duration::from_secs(1)));
        let path = dir.path().display();
        ctx.sql(&format!(
            "CREATE STREAM bids (ts TIMESTAMP(3), price BIGINT, WATERMARK FOR ts AS ts) \
             WITH (connector = 'files', path = '{path}', format = 'csv', late_policy = 'side');
             CREATE TABLE out (price BIGINT) WITH (connector = 'memory');"
        ))
        .await
        .unwrap();
        assert!(ctx.runtime.has("bids_late") && ctx.runtime.has("out"));
        assert!(!ctx.runtime.has("bids"));
        ctx.sql("DROP STREAM bids; DROP TABLE out").await.unwrap();
        assert!(!ctx.runtime.has("bids_late"));
        assert!(!ctx.runtime.has("out"));
    }

    /// A memory sink that fails to open leaves neither its catalog entry nor
    /// its table behind.
    #[tokio::test]
    async fn a_refused_memory_sink_leaves_no_runtime_object() {
        let ctx = Context::default();
        let refused = ctx
            .sql("CREATE TABLE out (price BIGINT) WITH (connector = 'memory', nope = '1')")
            .await;
        assert!(refused.is_err());
        assert!(!ctx.runtime.has("out"));
        // The name is free again, DataFusion's tables included.
        ctx.sql("CREATE TABLE out (price BIGINT) WITH (connector = 'memory')")
            .await
            .unwrap();
        assert!(ctx.runtime.has("out"));
    }
}
