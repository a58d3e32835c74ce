//! `EXPLAIN`: a continuous query's streaming plan (its inputs, windows and
//! watermarks) above DataFusion's plan of the per-batch query; a query that
//! reads no stream is explained by DataFusion alone.

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
        let interval = humantime::format_duration(self.config().batch_interval);
        let domain = match plan.time {
            Some(crate::sql::TimeDomain::Event) => "event time",
            _ => "processing time",
        };
        let mut inputs: Vec<String> = Vec::new();
        if let Some(w) = plan.window() {
            for (i, input) in plan.windows().iter().enumerate() {
                let incremental = plan.partials().iter().any(|p| p.window == i);
                let state = match (incremental, input.keeps_rows) {
                    (false, _) => "",
                    (true, true) => ", aggregated from partials per pane, rows kept too",
                    (true, false) => ", aggregated from partials per pane",
                };
                inputs.push(format!(
                    "{} window over {} (size {} ms, slide {} ms, {domain}{state})",
                    format!("{:?}", w.kind).to_uppercase(),
                    input.relation,
                    w.size_ms,
                    w.slide_ms
                ));
            }
            for input in plan.kept() {
                inputs.push(format!("{} rows kept for open windows", input.relation));
            }
        } else if let Some(session) = plan.session() {
            inputs.push(format!(
                "SESSION window over {} (gap {} ms, {domain}), rows kept until their session closes",
                session.input.relation, session.gap_ms
            ));
        } else {
            for (stream, _) in &plan.streams {
                inputs.push(format!("{} per batch", stream.name));
            }
        }
        for w in &plan.watermarks {
            inputs.push(format!(
                "watermark of {}: max({}) so far",
                w.stream, w.def.expr
            ));
        }
        let streaming = format!(
            "continuous query, batch_interval {interval}\ninputs: {}",
            inputs.join("; ")
        );
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
