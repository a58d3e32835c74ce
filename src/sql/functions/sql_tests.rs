//! The functions through SQL, as queries call them: registered on a
//! `SessionContext`, over literals and over generated Nexmark bids.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::register;
use crate::source::nexmark::{NexmarkGenerator, NexmarkKind, schema};

async fn query(ctx: &SessionContext, sql: &str) -> RecordBatch {
    let frame = ctx.sql(sql).await.expect("plan");
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.expect("run");
    concat_batches(&schema, &batches).expect("concat")
}

fn text(batch: &RecordBatch, column: usize) -> Vec<Option<String>> {
    let col = datafusion::arrow::compute::cast(
        batch.column(column),
        &datafusion::arrow::datatypes::DataType::Utf8,
    )
    .expect("cast");
    col.as_string::<i32>()
        .iter()
        .map(|s| s.map(String::from))
        .collect()
}

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    register(&ctx);
    ctx
}

#[tokio::test]
async fn literals() {
    let ctx = context();
    let row = query(
        &ctx,
        "SELECT regexp_extract('a=1&channel_id=9', '(&|^)channel_id=([^&]*)', 2), \
                REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)'), \
                split_index('https://www.nexmark.com/abc/def', '/', 3), \
                SPLIT_INDEX('a/b', '/', 9), \
                count_char('accbc', 'c'), \
                hour(TIMESTAMP '2024-03-01 18:59:59'), \
                regexp_extract(NULL, 'x', 1), \
                MOD(1231, 123), mod(CAST(-7 AS INT), 5)",
    )
    .await;
    let values: Vec<Option<String>> = (0..row.num_columns()).flat_map(|c| text(&row, c)).collect();
    let expected = [
        Some("9"),
        Some("foothebar"),
        Some("abc"),
        None,
        Some("3"),
        Some("18"),
        None,
        Some("1"),
        Some("-2"),
    ];
    assert_eq!(values, super::test_util::owned(&expected));
    assert_eq!(
        row.schema().field(4).data_type(),
        &datafusion::arrow::datatypes::DataType::Int64
    );
    assert_eq!(
        row.schema().field(5).data_type(),
        &datafusion::arrow::datatypes::DataType::Int64
    );
}

#[tokio::test]
async fn datafusion_lacks_them_without_register() {
    let ctx = SessionContext::new();
    for sql in [
        "SELECT hour(TIMESTAMP '2024-03-01 18:00:00')",
        "SELECT regexp_extract('a', 'a', 0)",
        "SELECT split_index('a', '/', 0)",
        "SELECT count_char('a', 'a')",
        "SELECT mod(7, 2)",
    ] {
        assert!(
            ctx.sql(sql).await.is_err(),
            "{sql} should need quiver's UDF"
        );
    }
}

#[tokio::test]
async fn nexmark_q14_q21_q22_over_generated_bids() {
    let ctx = context();
    let bids = NexmarkGenerator::new(3, 1000, 0).generate(NexmarkKind::Bid, 0, 5000);
    let table = MemTable::try_new(schema(NexmarkKind::Bid), vec![bids]).expect("table");
    ctx.register_table("bid", Arc::new(table))
        .expect("register");
    // Nexmark q22 (dir1..dir3 of the url) and q21 (channel_id from the url).
    let rows = query(
        &ctx,
        "SELECT url, SPLIT_INDEX(url, '/', 3) AS dir1, SPLIT_INDEX(url, '/', 4) AS dir2, \
                SPLIT_INDEX(url, '/', 5) AS dir3, \
                REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) AS channel_id \
         FROM bid",
    )
    .await;
    assert_eq!(rows.num_rows(), 4600);
    let (urls, dir1, dir3, ids) = (
        text(&rows, 0),
        text(&rows, 1),
        text(&rows, 3),
        text(&rows, 4),
    );
    let mut with_id = 0;
    for i in 0..rows.num_rows() {
        let url = urls[i].as_deref().expect("url");
        let parts: Vec<&str> = url.split('/').collect();
        assert_eq!(dir1[i].as_deref(), Some(parts[3]));
        assert_eq!(dir3[i].as_deref(), Some(parts[5]));
        let expected = url
            .split_once("&channel_id=")
            .map(|(_, id)| id.split('&').next().unwrap_or_default());
        assert_eq!(ids[i].as_deref(), expected, "{url}");
        with_id += usize::from(expected.is_some());
    }
    assert!(with_id > 0, "some urls carry a channel_id");
    // Nexmark q14's day/night split and count_char.
    let rows = query(
        &ctx,
        "SELECT CASE WHEN HOUR(\"dateTime\") >= 8 AND HOUR(\"dateTime\") <= 18 THEN 'dayTime' \
                     WHEN HOUR(\"dateTime\") <= 6 OR HOUR(\"dateTime\") >= 20 THEN 'nightTime' \
                     ELSE 'otherTime' END AS bidTimeType, \
                count_char(extra, 'c') AS c_counts \
         FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000",
    )
    .await;
    assert!(rows.num_rows() > 0);
    assert!(
        text(&rows, 0)
            .iter()
            .all(|t| t.as_deref() == Some("nightTime"))
    );
    let counts = rows.column(1).as_primitive::<Int64Type>();
    assert_eq!(counts.null_count(), 0);
    assert!(counts.values().iter().all(|c| *c == 0), "extra is empty");
}
