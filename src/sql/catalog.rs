//! What a continuous query can read: streams (a source plus its declared
//! columns, computed columns and watermark) and views over streams. Views
//! over streams are kept by quiver, not DataFusion, because each query
//! registers them anew over its own per-batch tables.

use std::collections::{BTreeMap, BTreeSet};

use crate::source::StreamDef;

/// A view whose query reads streams (`CREATE VIEW bid AS SELECT ... FROM datagen`).
#[derive(Debug, Clone)]
pub struct ViewDef {
    /// View name.
    pub name: String,
    /// The view's query as SQL.
    pub sql: String,
    /// Streams and views over streams the query reads directly.
    pub reads: BTreeSet<String>,
    /// Columns defined as `PROCTIME()`: processing-time attributes.
    pub proctime_columns: BTreeSet<String>,
}

/// Streams and views over streams, by name.
#[derive(Debug, Clone, Copy)]
pub struct Catalog<'a> {
    /// The declared streams.
    pub streams: &'a BTreeMap<String, StreamDef>,
    /// Views over streams, in creation order (a view only reads earlier ones).
    pub views: &'a [ViewDef],
}

impl Catalog<'_> {
    /// True for a stream or a view over streams.
    pub fn is_streaming(&self, name: &str) -> bool {
        self.streams.contains_key(name) || self.view(name).is_some()
    }

    /// The view over streams called `name`.
    pub fn view(&self, name: &str) -> Option<&ViewDef> {
        self.views.iter().find(|v| v.name == name)
    }

    /// The streams `name` reads, through any views.
    pub fn base_streams(&self, name: &str) -> BTreeSet<String> {
        if self.streams.contains_key(name) {
            return BTreeSet::from([name.to_string()]);
        }
        match self.view(name) {
            Some(view) => view
                .reads
                .iter()
                .flat_map(|r| self.base_streams(r))
                .collect(),
            None => BTreeSet::new(),
        }
    }

    /// The views `names` need, themselves included, in creation order.
    pub fn views_needed(&self, names: &BTreeSet<String>) -> Vec<&ViewDef> {
        let mut needed: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = names.iter().cloned().collect();
        while let Some(name) = todo.pop() {
            if let Some(view) = self.view(&name)
                && needed.insert(name)
            {
                todo.extend(view.reads.iter().cloned());
            }
        }
        self.views
            .iter()
            .filter(|v| needed.contains(&v.name))
            .collect()
    }
}
