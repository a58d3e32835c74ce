use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionConfig;

use super::*;
use crate::batch::{BATCH_TIME_COLUMN, time_type};
use crate::options::Options;
use crate::sql::catalog::Catalog;
use crate::window::LatePolicy;

fn stream(name: &str, policy: LatePolicy) -> StreamDef {
    StreamDef {
        name: name.to_string(),
        connector: "files".into(),
        schema: Arc::new(Schema::new(vec![
            Field::new("ts", time_type(), true),
            Field::new("price", DataType::Int64, true),
        ])),
        options: Options::default(),
        computed: vec![("cents".into(), "price * 100".into())],
        watermark: Some(WatermarkDef {
            column: "ts".into(),
            expr: "ts".into(),
            idle_timeout: None,
            allowed_lateness: Duration::ZERO,
            late_policy: policy,
        }),
        primary_key: Vec::new(),
    }
}

async fn plan(streams: Vec<StreamDef>, sql: &str) -> StreamingPlan {
    let streams: BTreeMap<String, StreamDef> =
        streams.into_iter().map(|s| (s.name.clone(), s)).collect();
    let catalog = Catalog {
        streams: &streams,
        views: &[],
    };
    let mut config = SessionConfig::new().with_target_partitions(1);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let tables = crate::sql::functions::session_context(config.clone());
    let Some(crate::sql::ParsedStatement {
        statement: crate::sql::Statement::Query(query),
        ..
    }) = crate::sql::parse_script(sql).unwrap().pop()
    else {
        panic!("not a query: {sql}");
    };
    StreamingPlan::try_new(&query, catalog, &tables, config, 1_000)
        .await
        .unwrap()
        .expect("reads a stream")
}

const WINDOWED: &str = "SELECT window_start, count(*) AS n FROM TUMBLE(bids, ts, INTERVAL '4' SECOND) GROUP BY window_start";

/// The late checks are planned with the query, before any batch: under side
/// policy the stream's columns as queries see them (computed ones included,
/// `_batch_time` not), and the plan runs over the batch its table holds.
#[tokio::test]
async fn late_checks_are_planned_with_an_event_time_query_over_a_side_stream() {
    let plan = plan(vec![stream("bids", LatePolicy::Side)], WINDOWED).await;
    let [check] = plan.late_checks.as_slice() else {
        panic!("one check expected, got {:?}", plan.late_checks);
    };
    assert_eq!(check.stream, "bids");
    assert!(check.side);
    let names: Vec<&str> = check
        .select
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["ts", "price", "cents"]);
    assert_eq!(check.time_index, 0);

    let (_, table) = &plan.streams[0];
    let batch = RecordBatch::try_new(
        table.schema_ref().clone(),
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![Some(1_000), None])),
            Arc::new(Int64Array::from(vec![3, 4])),
            Arc::new(TimestampMillisecondArray::from(vec![0, 0])),
        ],
    )
    .unwrap();
    assert!(table.schema_ref().field(2).name() == BATCH_TIME_COLUMN);
    table.set(vec![batch]);
    let rows = plan.run(&check.select).await.unwrap();
    let cents = rows[0]
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(cents.values().to_vec(), [300, 400]);
    assert_eq!(rows[0].column(0).null_count(), 1);
}

/// Without a side output, or without event time, nothing is checked: the
/// window inputs' own counts serve.
#[tokio::test]
async fn no_late_checks_without_a_side_output_or_event_time() {
    let plan1 = plan(vec![stream("bids", LatePolicy::Drop)], WINDOWED).await;
    assert!(plan1.late_checks.is_empty());
    let per_batch = plan(
        vec![stream("bids", LatePolicy::Side)],
        "SELECT price FROM bids",
    )
    .await;
    assert!(per_batch.late_checks.is_empty());
}

/// `EXPLAIN`'s streaming part is the plan's `Display`.
#[tokio::test]
async fn the_plan_displays_its_interval_inputs_and_watermarks() {
    let plan = plan(vec![stream("bids", LatePolicy::Drop)], WINDOWED).await;
    assert_eq!(
        plan.to_string(),
        "continuous query, batch_interval 1s\n\
         inputs: TUMBLE window over bids (size 4000 ms, slide 4000 ms, event time, \
         aggregated from partials per pane); watermark of bids: max(ts) so far"
    );
}
