//! Statements DataFusion runs itself: static tables and views (`CREATE
//! TABLE x AS VALUES`, `CREATE EXTERNAL TABLE`), one-off queries over them,
//! `SET datafusion.*`. quiver only checks that a name they create is free
//! among its own objects (see [`super::ddl`]).

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use super::ddl::created_name;
use super::{Context, Output};
use crate::catalog::Kind;
use crate::error::Error;
use crate::sql::SqlError;

impl Context {
    /// A statement quiver leaves to DataFusion (`CREATE TABLE x AS VALUES`,
    /// `SELECT 1`), after checking that a name it creates is free.
    pub(super) async fn run_other_statement(
        &self,
        statement: &ast::Statement,
    ) -> Result<Output, Error> {
        if let Some(name) = created_name(statement) {
            self.check_name_free(&name, Kind::Table)?;
        }
        self.run_on_datafusion(statement.clone()).await
    }

    /// `CREATE EXTERNAL TABLE` and other statements of DataFusion's dialect.
    pub(super) async fn run_datafusion_statement(
        &self,
        statement: &DFStatement,
    ) -> Result<Output, Error> {
        if let DFStatement::CreateExternalTable(create) = statement {
            if create.unbounded {
                return Err(Error::Catalog(format!(
                    "CREATE UNBOUNDED EXTERNAL TABLE is not supported: declare a stream, \
                     CREATE STREAM {} WITH (connector = 'files', path = '{}', format = 'csv')",
                    create.name,
                    create.locations.join(",")
                )));
            }
            self.check_name_free(&create.name.to_string(), Kind::Table)?;
        }
        self.run_df_statement(statement.clone()).await
    }

    /// Runs `statement` on DataFusion and returns its rows (none for `SET`).
    pub(super) async fn rows_on_datafusion(
        &self,
        statement: ast::Statement,
    ) -> Result<Output, Error> {
        let plan = self
            .tables
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(statement)))
            .await
            .map_err(SqlError::from)?;
        let rows = self
            .tables
            .execute_logical_plan(plan)
            .await
            .map_err(SqlError::from)?
            .collect()
            .await?;
        Ok(Output::Rows(rows))
    }

    pub(super) async fn run_on_datafusion(
        &self,
        statement: ast::Statement,
    ) -> Result<Output, Error> {
        self.run_df_statement(DFStatement::Statement(Box::new(statement)))
            .await
    }

    pub(super) async fn run_df_statement(&self, statement: DFStatement) -> Result<Output, Error> {
        let state = self.tables.state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(SqlError::from)?;
        let is_ddl = matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Statement(_));
        let rows = self
            .tables
            .execute_logical_plan(plan)
            .await?
            .collect()
            .await?;
        Ok(if is_ddl {
            Output::Message("ok".into())
        } else {
            Output::Rows(rows)
        })
    }
}
