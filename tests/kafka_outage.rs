//! Broker trouble while a kafka query runs, on librdkafka's mock cluster:
//! offset commits that fail with transport errors (the broker or its group
//! coordinator unreachable) are held back and retried, the query does not
//! fail, and in the end the group's committed offsets are the partition
//! ends. The same against a real broker stopped and restarted mid-run is in
//! tests/kafka_broker.rs.

use std::time::Duration;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use quiver::Clock;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

mod common;

use common::kafka::{
    Msg, SIMULATED, UNTIL_IDLE, bids, cluster, committed_and_ends, context_with, produce, run_in,
};

/// [`bids`] without keys.
fn unkeyed_bids(n: usize) -> Vec<Msg> {
    (bids(n).into_iter())
        .map(|m| Msg { key: None, ..m })
        .collect()
}

/// The sums of the per-batch `count(*)` and `sum(amount)` rows.
fn count_and_sum(rows: &[RecordBatch]) -> (i64, i64) {
    let (mut n, mut total) = (0, 0);
    for batch in rows {
        for i in 0..batch.num_rows() {
            n += batch.column(0).as_primitive::<Int64Type>().value(i);
            total += batch.column(1).as_primitive::<Int64Type>().value(i);
        }
    }
    (n, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_failing_with_transport_errors_are_retried_and_nothing_is_lost() {
    let cluster = cluster(&["bids"]);
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "bids", &unkeyed_bids(300));
    // The next commits fail as if the connection had dropped (more errors
    // than librdkafka's own retries absorb: without quiver's retry the
    // query fails with "committing offsets failed").
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT; 12],
    );
    let script = format!(
        "CREATE STREAM bids (user VARCHAR, amount BIGINT) WITH (connector = 'kafka', topic = 'bids', \
         'bootstrap.servers' = '{bootstrap}', 'group.id' = 'g', format = 'json', timeout = '5s', \
         max_records_per_batch = '50'); \
         SELECT count(*) AS n, sum(amount) AS total FROM bids;"
    );
    let ctx = context_with(SIMULATED, Duration::from_secs(1), UNTIL_IDLE);
    let rows = run_in(&ctx, &script)
        .await
        .expect("the query survives failing commits");
    assert_eq!(count_and_sum(&rows), (300, (0..300).sum::<i64>()));
    for (p, (committed, end)) in committed_and_ends(&bootstrap, "bids", "g")
        .into_iter()
        .enumerate()
    {
        assert_eq!(committed, end, "partition {p}: committed offset = end");
        assert_eq!(end, 100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_mid_run_and_back_loses_and_duplicates_nothing() {
    let cluster = cluster(&["bids"]);
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "bids", &unkeyed_bids(600));
    // Small batches and a small prefetch: the run spans the outage.
    let script = format!(
        "CREATE STREAM bids (user VARCHAR, amount BIGINT) WITH (connector = 'kafka', topic = 'bids', \
         'bootstrap.servers' = '{bootstrap}', 'group.id' = 'g', format = 'json', timeout = '5s', \
         max_records_per_batch = '20', 'properties.queued.max.messages.kbytes' = '1', \
         'properties.max.partition.fetch.bytes' = '256', \
         'properties.session.timeout.ms' = '6000'); \
         SELECT count(*) AS n, sum(amount) AS total FROM bids;"
    );
    let query = tokio::spawn(async move {
        let ctx = context_with(Clock::Wall, Duration::from_millis(100), UNTIL_IDLE);
        run_in(&ctx, &script).await
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster.broker_down(1).expect("down");
    // Longer than session.timeout.ms, how long librdkafka itself holds a
    // commit back while it has no coordinator: without quiver's retry the
    // query fails with "committing offsets failed: ... WaitingForCoordinator".
    tokio::time::sleep(Duration::from_secs(9)).await;
    cluster.broker_up(1).expect("up");
    let rows = tokio::time::timeout(Duration::from_secs(120), query)
        .await
        .expect("the query ends")
        .expect("join")
        .expect("the query survives the outage");
    assert_eq!(count_and_sum(&rows), (600, (0..600).sum::<i64>()));
    for (p, (committed, end)) in committed_and_ends(&bootstrap, "bids", "g")
        .into_iter()
        .enumerate()
    {
        assert_eq!((p, committed), (p, end), "committed offset = end");
        assert_eq!(end, 200);
    }
}
