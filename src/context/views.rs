//! `CREATE VIEW`: a view over streams is kept by quiver and planned into
//! each query that reads it; any other view goes to DataFusion.

use datafusion::sql::sqlparser::ast;

use super::ddl::name_taken;
use super::{Context, Output};
use crate::catalog::{Def, Kind};
use crate::error::Error;
use crate::sql::{Catalog, ParsedStatement, Statement, StreamingPlan, ViewDef};

impl Context {
    /// `CREATE VIEW`: a view over streams is kept by quiver and planned into
    /// each query that reads it; any other view goes to DataFusion.
    pub(super) async fn create_view(
        &self,
        name: &str,
        query: &ast::Query,
        or_replace: bool,
    ) -> Result<Output, Error> {
        let defs = self.catalog.snapshot();
        let catalog = defs.streaming();
        let mut probe = query.clone();
        let reads = crate::sql::rewrite_relations(&mut probe, catalog)?;
        self.check_name_free(
            name,
            if reads.is_empty() {
                Kind::Table
            } else {
                Kind::View
            },
        )?;
        if reads.is_empty() {
            return self
                .run_on_datafusion(datafusion_view(name, query, or_replace))
                .await
                .map(|_| Output::Message(format!("created view {name}")));
        }
        if catalog.is_streaming(name) && !or_replace {
            return Err(Error::Catalog(format!(
                "'{name}' already exists; use CREATE OR REPLACE VIEW"
            )));
        }
        let view = ViewDef {
            name: name.to_string(),
            sql: {
                let mut named = query.clone();
                crate::sql::name_view_columns(&mut named);
                named.to_string()
            },
            reads,
            proctime_columns: crate::sql::proctime_columns(query),
        };
        // Plan a query over the view now, so that a broken view fails here.
        let mut with_view = defs.views.clone();
        with_view.retain(|v| v.name != name);
        with_view.push(view.clone());
        let probe_query = select_all_from(name)?;
        StreamingPlan::try_new(
            &probe_query,
            Catalog {
                streams: &defs.streams,
                views: &with_view,
            },
            &self.tables,
            self.tables.copied_config(),
            self.config().batch_interval.as_millis() as i64,
        )
        .await?;
        if or_replace {
            self.catalog
                .replace_view(view, |name| self.is_datafusion_table(name))
                .map_err(|taken| name_taken(&taken.name, Kind::View, taken.kind))?;
        } else {
            self.insert_new(vec![Def::View(view)], Kind::View, |name| {
                format!("'{name}' already exists; use CREATE OR REPLACE VIEW")
            })?;
        }
        Ok(Output::Message(format!("created view {name} over streams")))
    }
}

/// `SELECT * FROM name`, with `name` set in the syntax tree as one
/// identifier (not spliced into SQL text, where a quoted name would break).
fn select_all_from(name: &str) -> Result<Box<ast::Query>, Error> {
    let Some(ParsedStatement {
        statement: Statement::Query(mut query),
        ..
    }) = crate::sql::parse_script("SELECT * FROM view_probe")?.pop()
    else {
        return Err(Error::Catalog("cannot check the view".into()));
    };
    if let ast::SetExpr::Select(select) = query.body.as_mut()
        && let Some(from) = select.from.first_mut()
        && let ast::TableFactor::Table { name: table, .. } = &mut from.relation
    {
        *table = ast::ObjectName::from(vec![ast::Ident::new(name)]);
    }
    Ok(query)
}

/// `CREATE [OR REPLACE] VIEW name AS query` as a statement for DataFusion.
fn datafusion_view(name: &str, query: &ast::Query, or_replace: bool) -> ast::Statement {
    ast::Statement::CreateView(ast::CreateView {
        or_alter: false,
        or_replace,
        materialized: false,
        secure: false,
        name: ast::ObjectName::from(vec![ast::Ident::new(name)]),
        name_before_not_exists: false,
        columns: Vec::new(),
        query: Box::new(query.clone()),
        options: ast::CreateTableOptions::None,
        cluster_by: Vec::new(),
        comment: None,
        with_no_schema_binding: false,
        if_not_exists: false,
        temporary: false,
        copy_grants: false,
        to: None,
        params: None,
    })
}
