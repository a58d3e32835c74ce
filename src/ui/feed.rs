//! Feeding the live page's [`Board`] from what a front end already has:
//! the plan of a statement it starts, and the background queries' progress
//! records and states.

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use quiver::{Context, Output, ParsedStatement};
use tokio::sync::broadcast;

use super::{Board, Kind};

/// The `EXPLAIN` of statement `sql`, for the live page; `None` when the
/// statement cannot be explained (the page then shows its SQL only).
pub async fn explain(ctx: &Context, sql: &str) -> Option<String> {
    let Ok(mut outputs) = ctx.sql(&format!("EXPLAIN {sql}")).await else {
        return None;
    };
    let Some(Output::Rows(batches)) = outputs.pop() else {
        return None;
    };
    let mut plan = String::new();
    for batch in &batches {
        let (Some(kind), Some(text)) = (
            batch.column_by_name("plan_type"),
            batch.column_by_name("plan"),
        ) else {
            continue;
        };
        let (Some(kind), Some(text)) = (
            kind.as_any().downcast_ref::<StringArray>(),
            text.as_any().downcast_ref::<StringArray>(),
        ) else {
            continue;
        };
        for (kind, text) in kind.iter().zip(text.iter()) {
            plan += &format!("{}:\n{}\n\n", kind.unwrap_or(""), text.unwrap_or(""));
        }
    }
    (!plan.is_empty()).then(|| plan.trim_end().to_string())
}

/// The plan of the query `statement` runs, for the live page (`None`
/// when it runs none or cannot be explained).
async fn plan_of(ctx: &Context, statement: &ParsedStatement) -> Option<String> {
    explain(ctx, &statement.query_text()?).await
}

/// Puts the foreground query `name`, started by `statement`, on `board`.
pub async fn foreground_started(
    ctx: &Context,
    board: &Board,
    name: &str,
    statement: &ParsedStatement,
) {
    let plan = plan_of(ctx, statement).await;
    board.started(name, Kind::Foreground, &statement.text, plan);
}

/// Puts the background queries `statement` started (`INSERT INTO`,
/// `CREATE SINK ... AS SELECT`: those `board` does not know yet) on
/// `board`.
pub async fn background_started(ctx: &Context, board: &Board, statement: &ParsedStatement) {
    for status in ctx.background().list() {
        if !board.knows(&status.name) {
            let plan = plan_of(ctx, statement).await;
            board.started(&status.name, Kind::Background, &statement.text, plan);
        }
    }
}

/// Feeds `board` with the background queries' progress records, and
/// their states once a second, for the live page.
pub fn feed_background(ctx: Arc<Context>, board: Arc<Board>) {
    let mut records = ctx.background().records();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                received = records.recv() => match received {
                    Ok(record) => board.record(&record),
                    // Missed records leave a gap in the charts, nothing worse.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => board.background(&ctx.background().list()),
            }
        }
    });
}
