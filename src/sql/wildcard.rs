//! System columns (`_batch_time`, see [`crate::batch::SYSTEM_COLUMNS`]) are
//! selectable by name but do not expand from `*`, like Flink's `METADATA
//! VIRTUAL` columns: `INSERT INTO sink SELECT * FROM s` writes the stream's
//! own columns. DataFusion 55 has no hidden columns, so after `rewrite` has
//! given every streaming relation a table of its own, each `*` / `t.*` over
//! such a table gets an `EXCLUDE` of the system columns that table has: a
//! `*` over one relation becomes `* EXCLUDE (...)`, over several (a join) one
//! `t.*` per relation, in the order DataFusion would expand them. A `*` whose
//! expansion cannot be spelled that way (USING/NATURAL/semi joins, relations
//! without a name) is left as written.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    ExcludeSelectItem, Ident, JoinConstraint, JoinOperator, ObjectName, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, TableFactor, TableWithJoins, VisitMut, VisitorMut,
    WildcardAdditionalOptions,
};

use super::parser::normalize_name;
use super::rewrite::Rewritten;
use crate::batch::SYSTEM_COLUMNS;

/// Adds the system columns of `system`'s tables (table name → the system
/// columns its schema has) to the `EXCLUDE` of every wildcard over them.
pub fn hide_system_columns(query: &mut Query, system: &BTreeMap<String, Vec<String>>) {
    if system.is_empty() {
        return;
    }
    let _ = query.visit(&mut Hider { system });
}

/// The system columns (`_batch_time`, ...) of each table that replaced a
/// streaming relation in the rewritten query, for `*` to leave out.
pub async fn system_columns(
    ctx: &SessionContext,
    found: &Rewritten,
) -> BTreeMap<String, Vec<String>> {
    let tables = found
        .inputs
        .iter()
        .map(|i| &i.table)
        .chain(found.windows.iter().map(|w| &w.table))
        .chain(found.sessions.iter().map(|s| &s.table));
    let mut out = BTreeMap::new();
    for table in tables {
        let Ok(provider) = ctx
            .table_provider(TableReference::bare(table.as_str()))
            .await
        else {
            continue;
        };
        let schema = provider.schema();
        let columns: Vec<String> = SYSTEM_COLUMNS
            .iter()
            .filter(|c| schema.field_with_name(c).is_ok())
            .map(ToString::to_string)
            .collect();
        if !columns.is_empty() {
            out.insert(table.clone(), columns);
        }
    }
    out
}

struct Hider<'a> {
    system: &'a BTreeMap<String, Vec<String>>,
}

/// A relation of a FROM clause: the name its columns are qualified by
/// (`None` when it has none), and its system columns.
type Relation = (Option<ObjectName>, Vec<String>);

impl VisitorMut for Hider<'_> {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        let has_wildcard = select.projection.iter().any(|item| {
            matches!(
                item,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        });
        if !has_wildcard {
            return ControlFlow::Continue(());
        }
        let Some(relations) = self.relations(&select.from) else {
            return ControlFlow::Continue(());
        };
        if relations.iter().all(|(_, system)| system.is_empty()) {
            return ControlFlow::Continue(());
        }
        let mut projection = Vec::with_capacity(select.projection.len());
        for item in std::mem::take(&mut select.projection) {
            match item {
                SelectItem::Wildcard(options) if relations.len() == 1 => {
                    projection.push(SelectItem::Wildcard(excluding(options, &relations[0].1)));
                }
                SelectItem::Wildcard(options)
                    if is_plain(&options) && relations.iter().all(|(q, _)| q.is_some()) =>
                {
                    for (qualifier, system) in &relations {
                        let Some(qualifier) = qualifier else { continue };
                        projection.push(SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(qualifier.clone()),
                            excluding(options.clone(), system),
                        ));
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    options,
                ) => {
                    let wanted = normalize_name(&name);
                    let system = relations
                        .iter()
                        .find(|(q, _)| q.as_ref().is_some_and(|q| normalize_name(q) == wanted))
                        .map(|(_, system)| system.as_slice())
                        .unwrap_or_default();
                    projection.push(SelectItem::QualifiedWildcard(
                        SelectItemQualifiedWildcardKind::ObjectName(name),
                        excluding(options, system),
                    ));
                }
                other => projection.push(other),
            }
        }
        select.projection = projection;
        ControlFlow::Continue(())
    }
}

impl Hider<'_> {
    /// The relations of a FROM clause in the order `*` expands them, or
    /// `None` when that expansion is not their columns one after another.
    fn relations(&self, from: &[TableWithJoins]) -> Option<Vec<Relation>> {
        let mut out = Vec::new();
        for table in from {
            self.relation(&table.relation, &mut out)?;
            for join in &table.joins {
                let constraint = match &join.join_operator {
                    JoinOperator::Join(c)
                    | JoinOperator::Inner(c)
                    | JoinOperator::Left(c)
                    | JoinOperator::LeftOuter(c)
                    | JoinOperator::Right(c)
                    | JoinOperator::RightOuter(c)
                    | JoinOperator::FullOuter(c)
                    | JoinOperator::CrossJoin(c) => c,
                    _ => return None,
                };
                if !matches!(constraint, JoinConstraint::On(_) | JoinConstraint::None) {
                    return None;
                }
                self.relation(&join.relation, &mut out)?;
            }
        }
        Some(out)
    }

    fn relation(&self, factor: &TableFactor, out: &mut Vec<Relation>) -> Option<()> {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                // Columns renamed by `AS t(a, b, ...)` are the user's own.
                let system = match alias {
                    Some(alias) if !alias.columns.is_empty() => Vec::new(),
                    _ => self
                        .system
                        .get(&normalize_name(name))
                        .cloned()
                        .unwrap_or_default(),
                };
                let qualifier = match alias {
                    Some(alias) => ObjectName::from(vec![alias.name.clone()]),
                    None => name.clone(),
                };
                out.push((Some(qualifier), system));
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => out.extend(self.relations(std::slice::from_ref(table_with_joins))?),
            TableFactor::NestedJoin { .. } => return None,
            TableFactor::Derived { alias, .. }
            | TableFactor::TableFunction { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::UNNEST { alias, .. } => out.push((
                alias
                    .as_ref()
                    .map(|a| ObjectName::from(vec![a.name.clone()])),
                Vec::new(),
            )),
            _ => return None,
        }
        Some(())
    }
}

/// Whether a wildcard has no EXCLUDE/EXCEPT/REPLACE/RENAME/ILIKE of its own.
fn is_plain(options: &WildcardAdditionalOptions) -> bool {
    options.opt_ilike.is_none()
        && options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_rename.is_none()
}

/// `options` with `system` added to its EXCLUDE (those it does not already
/// exclude or except).
fn excluding(
    mut options: WildcardAdditionalOptions,
    system: &[String],
) -> WildcardAdditionalOptions {
    let mut names: Vec<ObjectName> = match options.opt_exclude.take() {
        None => Vec::new(),
        Some(ExcludeSelectItem::Single(name)) => vec![name],
        Some(ExcludeSelectItem::Multiple(names)) => names,
    };
    let mut taken: Vec<String> = names.iter().map(normalize_name).collect();
    if let Some(except) = &options.opt_except {
        taken.push(except.first_element.value.clone());
        taken.extend(except.additional_elements.iter().map(|i| i.value.clone()));
    }
    for column in system {
        if !taken.iter().any(|t| t == column) {
            names.push(ObjectName::from(vec![Ident::new(column.clone())]));
        }
    }
    options.opt_exclude = (!names.is_empty()).then_some(ExcludeSelectItem::Multiple(names));
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn hidden(sql: &str) -> String {
        let statement = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap();
        let datafusion::sql::sqlparser::ast::Statement::Query(mut query) = statement else {
            panic!("not a query: {sql}");
        };
        let system = BTreeMap::from([
            (
                "__quiver_input_0".to_string(),
                vec!["_batch_time".to_string()],
            ),
            (
                "__quiver_input_1".to_string(),
                vec!["_batch_time".to_string()],
            ),
        ]);
        hide_system_columns(&mut query, &system);
        query.to_string()
    }

    #[test]
    fn wildcards_over_stream_tables_exclude_system_columns() {
        assert_eq!(
            hidden("SELECT * FROM __quiver_input_0 AS s"),
            "SELECT * EXCLUDE (_batch_time) FROM __quiver_input_0 AS s"
        );
        assert_eq!(
            hidden("SELECT _batch_time, s.* FROM __quiver_input_0 AS s"),
            "SELECT _batch_time, s.* EXCLUDE (_batch_time) FROM __quiver_input_0 AS s"
        );
        assert_eq!(
            hidden("SELECT * EXCLUDE (v) FROM __quiver_input_0 AS s"),
            "SELECT * EXCLUDE (v, _batch_time) FROM __quiver_input_0 AS s"
        );
        assert_eq!(
            hidden(
                "SELECT * FROM __quiver_input_0 AS a JOIN t ON a.k = t.k JOIN __quiver_input_1 AS b ON a.k = b.k"
            ),
            "SELECT a.* EXCLUDE (_batch_time), t.*, b.* EXCLUDE (_batch_time) FROM __quiver_input_0 AS a \
             JOIN t ON a.k = t.k JOIN __quiver_input_1 AS b ON a.k = b.k"
        );
        assert_eq!(
            hidden("SELECT * FROM (SELECT * FROM __quiver_input_0 AS s) AS x"),
            "SELECT * FROM (SELECT * EXCLUDE (_batch_time) FROM __quiver_input_0 AS s) AS x"
        );
    }

    #[test]
    fn wildcards_elsewhere_are_left_alone() {
        for sql in [
            "SELECT * FROM t",
            "SELECT * FROM __quiver_input_0 AS a JOIN __quiver_input_1 AS b USING(k)",
            "SELECT * FROM __quiver_input_0 AS s (a, b, c)",
        ] {
            assert_eq!(hidden(sql), sql);
        }
    }
}
