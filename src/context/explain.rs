//! `EXPLAIN`: a continuous query's streaming plan (its inputs, windows and
//! watermarks: the plan's `Display`) above DataFusion's plan of the
//! per-batch query; a query that reads no stream is explained by DataFusion
//! alone.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::sql::sqlparser::ast;

use super::show::string_schema;
use super::{Context, Output};
use crate::error::Error;

impl Context {
    pub(super) async fn explain(&self, query: &ast::Query) -> Result<Output, Error> {
        let Some(plan) = self.plan(query).await? else {
            return self
                .rows_on_datafusion(ast::Statement::Explain {
                    describe_alias: ast::DescribeAlias::Explain,
                    analyze: false,
                    verbose: false,
                    query_plan: false,
                    estimate: false,
                    statement: Box::new(ast::Statement::Query(Box::new(query.clone()))),
                    format: None,
                    options: None,
                })
                .await;
        };
        let streaming = plan.to_string();
        let mut batches = vec![
            RecordBatch::try_new(
                string_schema(&["plan_type", "plan"]),
                vec![
                    Arc::new(StringArray::from(vec!["streaming_plan"])),
                    Arc::new(StringArray::from(vec![streaming])),
                ],
            )
            .map_err(|e| Error::Catalog(e.to_string()))?,
        ];
        batches.extend(plan.explain().await?);
        Ok(Output::Rows(batches))
    }
}
