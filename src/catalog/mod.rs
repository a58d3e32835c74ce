//! The session's catalog: the definitions of its streams, views over
//! streams and sink tables, behind one lock.
//!
//! Definitions only: plain values a query plans against and a snapshot
//! copies. The runtime objects some entries have — the hub of a
//! `<name>_late` stream, the table of a `memory` sink — live in the
//! session's registry (`context/runtime.rs`), keyed by the same name, and
//! are dropped with the entry.
//!
//! One name names one object across all of them and DataFusion's own tables
//! and views, so creating an object is one atomic check-and-insert
//! ([`Catalog::insert_new`]) and dropping one is a check-and-remove in one
//! critical section ([`Catalog::update`]). Readers take a consistent copy
//! with [`Catalog::snapshot`] (a query plans against the catalog as it was
//! when it started).
//!
//! DataFusion's tables live in its `SessionContext`; the catalog does not
//! copy them but asks, inside its critical section, whether DataFusion has a
//! name (the `taken_by_table` argument of [`Catalog::insert_new`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use crate::sink::SinkDef;
use crate::source::StreamDef;
use crate::sql::ViewDef;

/// What kind of object a name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A stream (`CREATE STREAM`, or a stream's `<name>_late` stream).
    Stream,
    /// A view over streams, kept by quiver.
    View,
    /// A sink table (`CREATE TABLE ... WITH (connector = ...)`, `CREATE SINK`).
    SinkTable,
    /// One of DataFusion's tables or views.
    Table,
}

impl Kind {
    /// The keyword that drops this kind of object (`DROP STREAM name`).
    pub(crate) fn drop_keyword(self) -> &'static str {
        match self {
            Kind::Stream => "STREAM",
            Kind::View => "VIEW",
            Kind::SinkTable | Kind::Table => "TABLE",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Stream => "stream",
            Kind::View => "view",
            Kind::SinkTable => "sink table",
            Kind::Table => "table",
        })
    }
}

/// A definition to add to the catalog.
#[derive(Debug, Clone)]
pub(crate) enum Def {
    /// A stream.
    Stream(StreamDef),
    /// A view over streams.
    View(ViewDef),
    /// A sink table.
    Sink(SinkDef),
}

impl Def {
    /// The name the definition takes.
    pub(crate) fn name(&self) -> &str {
        match self {
            Def::Stream(def) => &def.name,
            Def::View(def) => &def.name,
            Def::Sink(def) => &def.name,
        }
    }
}

/// [`Catalog::insert_new`] found the name taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlreadyExists {
    /// The name.
    pub(crate) name: String,
    /// What it already names.
    pub(crate) kind: Kind,
}

/// The definitions, as one consistent value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Defs {
    /// Streams by name.
    pub(crate) streams: BTreeMap<String, StreamDef>,
    /// Views over streams, in creation order (a view only reads earlier ones).
    pub(crate) views: Vec<ViewDef>,
    /// Sink tables by name.
    pub(crate) sinks: BTreeMap<String, SinkDef>,
}

impl Defs {
    /// What queries plan against: the streams and views over streams.
    pub(crate) fn streaming(&self) -> crate::sql::Catalog<'_> {
        crate::sql::Catalog {
            streams: &self.streams,
            views: &self.views,
        }
    }

    /// What `name` names among quiver's objects, if anything.
    pub(crate) fn owner(&self, name: &str) -> Option<Kind> {
        if self.streams.contains_key(name) {
            Some(Kind::Stream)
        } else if self.views.iter().any(|v| v.name == name) {
            Some(Kind::View)
        } else if self.sinks.contains_key(name) {
            Some(Kind::SinkTable)
        } else {
            None
        }
    }

    /// The names of the streams, views over streams and sink tables.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.streams.keys().cloned().collect();
        names.extend(self.views.iter().map(|v| v.name.clone()));
        names.extend(self.sinks.keys().cloned());
        names
    }
}

/// The definitions behind one lock.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    defs: Mutex<Defs>,
}

impl Catalog {
    /// A copy of every definition, taken in one critical section.
    pub(crate) fn snapshot(&self) -> Defs {
        self.lock().clone()
    }

    /// Reads the definitions in place (no copy).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Defs) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the definitions in one critical section: a drop checks who
    /// reads an object and removes it without another statement in between.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Defs) -> R) -> R {
        f(&mut self.lock())
    }

    /// Adds `defs` if none of their names is taken — by quiver's objects, or
    /// by DataFusion (`taken_by_table`) — all of them or none.
    pub(crate) fn insert_new(
        &self,
        defs: Vec<Def>,
        taken_by_table: impl Fn(&str) -> bool,
    ) -> Result<(), AlreadyExists> {
        let mut current = self.lock();
        for (i, def) in defs.iter().enumerate() {
            let name = def.name();
            let kind = current
                .owner(name)
                .or_else(|| taken_by_table(name).then_some(Kind::Table))
                .or_else(|| defs[..i].iter().find(|d| d.name() == name).map(def_kind));
            if let Some(kind) = kind {
                return Err(AlreadyExists {
                    name: name.to_string(),
                    kind,
                });
            }
        }
        for def in defs {
            match def {
                Def::Stream(def) => {
                    current.streams.insert(def.name.clone(), def);
                }
                Def::View(def) => current.views.push(def),
                Def::Sink(def) => {
                    current.sinks.insert(def.name.clone(), def);
                }
            }
        }
        Ok(())
    }

    /// `CREATE OR REPLACE VIEW`: replaces the view over streams called
    /// `view.name` (keeping its place in creation order is not needed: the
    /// replacement goes last, after every view it may read), or adds it if
    /// the name is free.
    pub(crate) fn replace_view(
        &self,
        view: ViewDef,
        taken_by_table: impl Fn(&str) -> bool,
    ) -> Result<(), AlreadyExists> {
        let mut current = self.lock();
        match current.owner(&view.name) {
            Some(Kind::View) | None if !taken_by_table(&view.name) => {
                current.views.retain(|v| v.name != view.name);
                current.views.push(view);
                Ok(())
            }
            owner => Err(AlreadyExists {
                name: view.name,
                kind: owner.unwrap_or(Kind::Table),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Defs> {
        self.defs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn def_kind(def: &Def) -> Kind {
    match def {
        Def::Stream(_) => Kind::Stream,
        Def::View(_) => Kind::View,
        Def::Sink(_) => Kind::SinkTable,
    }
}

#[cfg(test)]
mod tests;
