//! A bound on how deeply a statement nests, checked right after parsing.
//!
//! sqlparser limits recursive nesting (parentheses, CASE, function calls,
//! subqueries) while it parses, but builds a chain of binary operators —
//! `a + b + c + ...`, `x = 1 OR x = 2 OR ...`, `q1 UNION q2 UNION ...` — in a
//! loop, as one left-deep tree. Everything after the parser (quiver's
//! rewriting, DataFusion's planning, optimizing and evaluation) walks that
//! tree recursively, so a chain of a few thousand terms overflows a thread's
//! stack and aborts the process. [`check`] measures the nesting of a parsed
//! statement and refuses one deeper than [`MAX_DEPTH`] with a message that
//! says how to write it instead.
//!
//! The measure walks the tree with sqlparser's visitor, which is recursive
//! too: it stops one level past the limit, so it needs no more stack than the
//! statement would if it were accepted. Front ends run statements on threads
//! whose stack is sized for [`MAX_DEPTH`] (see `main.rs`).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Query, Select, SetExpr, TableFactor, Visit, Visitor};

use super::SqlError;
use super::parser::Statement;

/// The deepest nesting a statement may have: expressions inside expressions,
/// subqueries, joined tables and set operations, each one level. Chosen well
/// below what the stacks of quiver's threads survive (about 5,000 levels in
/// an unoptimized build with a 256 MiB stack, far more in a release build).
pub const MAX_DEPTH: usize = 1_000;

/// Refuses `statement` when it nests deeper than [`MAX_DEPTH`].
pub fn check_statement(statement: &Statement) -> Result<(), SqlError> {
    match statement {
        Statement::CreateStream {
            computed,
            watermark,
            ..
        } => {
            for (_, expr) in computed.iter().chain(watermark) {
                check(expr)?;
            }
            Ok(())
        }
        Statement::CreateView { query, .. }
        | Statement::Explain(query)
        | Statement::Query(query)
        | Statement::Insert { query, .. }
        | Statement::CreateSink { query, .. } => check(query),
        Statement::Other(statement) => check(statement),
        Statement::CreateFunction { .. }
        | Statement::ShowStreams
        | Statement::Describe(_)
        | Statement::Set { .. }
        | Statement::ShowQueries
        | Statement::ShowProgress { .. }
        | Statement::StopQuery(_)
        | Statement::Drop { .. }
        // CREATE EXTERNAL TABLE: names, types and options, no expressions
        // worth bounding.
        | Statement::DataFusion(_) => Ok(()),
    }
}

/// Refuses `node` (a statement, query or expression) when it nests deeper
/// than [`MAX_DEPTH`].
fn check<V: Visit>(node: &V) -> Result<(), SqlError> {
    let mut depth = Depth { current: 0 };
    match node.visit(&mut depth) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(SqlError::TooDeep { limit: MAX_DEPTH }),
    }
}

/// Counts open levels on the way down, closes them on the way up, and breaks
/// as soon as the count passes the limit.
struct Depth {
    current: usize,
}

impl Depth {
    fn enter(&mut self, levels: usize) -> ControlFlow<()> {
        self.current += levels;
        if self.current > MAX_DEPTH {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn leave(&mut self, levels: usize) -> ControlFlow<()> {
        self.current -= levels;
        ControlFlow::Continue(())
    }
}

/// How deep a query's chain of set operations (`UNION`, `EXCEPT`, ...) is.
fn set_operations(query: &Query) -> usize {
    let mut depth = 0;
    let mut pending = vec![(query.body.as_ref(), 0)];
    while let Some((body, level)) = pending.pop() {
        depth = depth.max(level);
        if let SetExpr::SetOperation { left, right, .. } = body {
            pending.push((left, level + 1));
            pending.push((right, level + 1));
        }
    }
    depth
}

/// The tables a SELECT joins: `FROM a JOIN b JOIN c` plans as a left-deep tree.
fn joins(select: &Select) -> usize {
    select.from.iter().map(|from| from.joins.len()).sum()
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.enter(1 + set_operations(query))
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.leave(1 + set_operations(query))
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.enter(1 + joins(select))
    }

    fn post_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.leave(1 + joins(select))
    }

    fn pre_visit_table_factor(&mut self, _: &TableFactor) -> ControlFlow<()> {
        self.enter(1)
    }

    fn post_visit_table_factor(&mut self, _: &TableFactor) -> ControlFlow<()> {
        self.leave(1)
    }

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.enter(1)
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.leave(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_script;

    /// Runs `test` on a thread with a stack as large as the binary's (test
    /// threads have 2 MiB, too little for a visitor 1,000 levels deep in a
    /// debug build).
    fn on_a_large_stack(test: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(test)
            .unwrap()
            .join()
            .unwrap();
    }

    fn or_chain(terms: usize) -> String {
        let chain = (1..=terms).map(|i| format!("x = {i}")).collect::<Vec<_>>();
        format!("SELECT 1 FROM t WHERE {}", chain.join(" OR "))
    }

    #[test]
    fn long_chains_are_refused_past_the_limit() {
        on_a_large_stack(|| {
            assert!(parse_script(&or_chain(MAX_DEPTH - 10)).is_ok());
            let err = parse_script(&or_chain(MAX_DEPTH)).unwrap_err().to_string();
            assert!(err.contains("too deep") && err.contains("IN ("), "{err}");
            // Grouped in parentheses, the same terms nest far less.
            let grouped = (0..10)
                .map(|g| {
                    let terms = (1..=200).map(|i| format!("x = {}", g * 200 + i));
                    format!("({})", terms.collect::<Vec<_>>().join(" OR "))
                })
                .collect::<Vec<_>>();
            let sql = format!("SELECT 1 FROM t WHERE {}", grouped.join(" OR "));
            assert!(parse_script(&sql).is_ok());
        });
    }

    #[test]
    fn set_operations_joins_and_stream_expressions_count() {
        on_a_large_stack(|| {
            let unions = vec!["SELECT 1"; MAX_DEPTH + 1].join(" UNION ALL ");
            assert!(parse_script(&unions).is_err());
            let joins = (0..MAX_DEPTH)
                .map(|i| format!("JOIN t{i} USING (k)"))
                .collect::<Vec<_>>()
                .join(" ");
            assert!(parse_script(&format!("SELECT 1 FROM t {joins}")).is_err());
            assert!(parse_script("SELECT 1 UNION ALL SELECT 2 FROM a JOIN b USING (k)").is_ok());
            let sum = vec!["ts"; MAX_DEPTH + 1].join(" + ");
            let ddl = format!(
                "CREATE STREAM s (ts TIMESTAMP, WATERMARK FOR ts AS {sum}) WITH (connector = 'stdin')"
            );
            assert!(parse_script(&ddl).is_err());
        });
    }
}
