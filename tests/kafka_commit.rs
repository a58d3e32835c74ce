//! When the kafka source commits its group offsets, and the lag it reports,
//! on librdkafka's mock cluster: a background query with a recording sink
//! reads the group's committed offsets from inside each `Sink::commit` —
//! batch k's sink commit sees exactly batch k − 1's range ends committed
//! (the source commits a batch after its sinks did, with Kafka's convention:
//! the next offset to read) — and after `--until-idle` they equal the
//! partition ends, an empty partition included. A sink whose commit fails
//! leaves the group at the batch before. A foreground query stopped after a
//! number of batches has its last batch committed too. Every batch's
//! progress carries each partition's lag (end offset − position).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::AsArray;

use quiver::{BatchEnd, Context, Output, QueryResult, QueryState, RunLimits, Sink, SinkError};
use rdkafka::consumer::BaseConsumer;

mod common;

use common::kafka::{
    Cluster, Msg, SIMULATED, UNTIL_IDLE, cluster, committed_offsets, context_with, group_reader,
    produce,
};

/// Messages per partition: the last partition stays empty.
const SIZES: [i64; 3] = [60, 30, 0];

/// A mock cluster with a 3-partition `topic` holding [`SIZES`] messages.
fn cluster_with_sizes(topic: &str) -> Cluster {
    let cluster = cluster(&[topic]);
    let messages: Vec<Msg> = (SIZES.iter().enumerate())
        .flat_map(|(partition, n)| {
            (0..*n).map(move |i| {
                let value = format!(r#"{{"user": "u{}", "amount": {i}}}"#, i % 5);
                Msg::value(partition as i32, value)
            })
        })
        .collect();
    produce(&cluster.bootstrap_servers(), topic, &messages);
    cluster
}

/// A context on the simulated clock with 1 s batches, under `limits`.
fn context(limits: RunLimits) -> Context {
    context_with(SIMULATED, Duration::from_secs(1), limits)
}

fn script(bootstrap: &str, topic: &str, group: &str) -> String {
    format!(
        "CREATE STREAM bids (user VARCHAR, amount BIGINT) WITH (connector = 'kafka', topic = '{topic}', \
         'bootstrap.servers' = '{bootstrap}', 'group.id' = '{group}', format = 'json', \
         timeout = '5s', max_records_per_batch = 20);
         SELECT user, count(*) AS n FROM bids GROUP BY user;"
    )
}

/// One batch as the recording sink saw it at its commit.
#[derive(Debug, Clone)]
struct Seen {
    batch_id: u64,
    /// The batch's range ends, per partition.
    ends: Vec<i64>,
    /// The batch's lag per partition, from its progress.
    lag: Vec<u64>,
    /// The group's committed offsets when the sink committed the batch.
    committed: Vec<i64>,
}

/// A sink recording every commit, and failing the commit of batch `fail_at`.
struct Recording {
    seen: Arc<Mutex<Vec<Seen>>>,
    group: BaseConsumer,
    topic: String,
    fail_at: Option<u64>,
}

impl Sink for Recording {
    fn write(&mut self, _result: &QueryResult) -> Result<(), SinkError> {
        Ok(())
    }

    fn commit(&mut self, end: &BatchEnd) -> Result<(), SinkError> {
        let Some(stream) = end.offsets.first() else {
            return Ok(());
        };
        let ends = stream
            .ranges
            .iter()
            .map(|r| r.end.parse().expect("a kafka offset"))
            .collect();
        let progress = end.progress.as_ref().expect("a reading batch has progress");
        let lag = progress.lag[0].partitions.iter().map(|(_, n)| *n).collect();
        self.seen.lock().unwrap().push(Seen {
            batch_id: end.batch_id,
            ends,
            lag,
            committed: committed_offsets(&self.group, &self.topic),
        });
        // Fails at the first batch from `fail_at` on that read something
        // (under load a batch can come before the broker's first fetch).
        let read_something = {
            let seen = self.seen.lock().unwrap();
            let n = seen.len();
            n < 2 || seen[n - 1].ends != seen[n - 2].ends
        };
        if self.fail_at.is_some_and(|at| end.batch_id >= at) && read_something {
            // Long enough for the driver to have polled the next batch, had
            // it not waited for this commit.
            std::thread::sleep(Duration::from_millis(300));
            return Err(SinkError::Write {
                sink: "recording".into(),
                message: "disk full".into(),
            });
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Runs the query of `topic` for `group` in the background until idle with
/// a recording sink failing at `fail_at`; what it saw and the final state.
async fn record(
    bootstrap: &str,
    topic: &str,
    group: &str,
    fail_at: Option<u64>,
) -> (Vec<Seen>, QueryState, String) {
    let ctx = context(UNTIL_IDLE);
    let Some(Output::Query(handle)) = ctx
        .sql(&script(bootstrap, topic, group))
        .await
        .expect("runs")
        .pop()
    else {
        panic!("a continuous query");
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Recording {
        seen: seen.clone(),
        group: group_reader(bootstrap, group),
        topic: topic.into(),
        fail_at,
    };
    ctx.background()
        .start(handle, Box::new(sink), "recording")
        .expect("start");
    let status = ctx.background().wait_all().await;
    let seen = seen.lock().unwrap().clone();
    let Some(Output::Rows(rows)) = ctx.sql("SHOW QUERIES").await.expect("show").pop() else {
        panic!("SHOW QUERIES returns rows");
    };
    let lag = rows[0]
        .column_by_name("lag")
        .expect("a lag column")
        .as_string::<i32>()
        .value(0)
        .to_string();
    (seen, status[0].state, lag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_committed_to_the_group_after_its_sink_committed_it() {
    let cluster = cluster_with_sizes("bids");
    let bootstrap = cluster.bootstrap_servers();
    let (seen, state, lag) = record(&bootstrap, "bids", "g", None).await;
    assert_eq!(state, QueryState::Finished);
    assert!(seen.len() >= 5, "90 messages at 20 per batch: {seen:?}");
    // Nothing is committed before the first batch's sink commit; then each
    // sink commit sees the batch before committed, exactly.
    assert_eq!(seen[0].committed, [-1; 3], "{seen:?}");
    for pair in seen.windows(2) {
        assert_eq!(
            pair[1].committed, pair[0].ends,
            "batch {}",
            pair[1].batch_id
        );
    }
    // After --until-idle: the last batch too, at the partition ends (the
    // next offsets to read), the empty partition included.
    assert_eq!(seen[seen.len() - 1].ends, SIZES);
    assert_eq!(
        committed_offsets(&group_reader(&bootstrap, "g"), "bids"),
        SIZES
    );

    // Lag per partition: its end − where the batch stopped; the first batch
    // took 20 of 90, the last leaves none.
    for batch in &seen {
        let expected: Vec<u64> = (SIZES.iter().zip(&batch.ends))
            .map(|(size, end)| (size - end) as u64)
            .collect();
        assert_eq!(batch.lag, expected, "batch {}", batch.batch_id);
    }
    assert!(
        seen.iter().any(|b| b.lag.iter().sum::<u64>() > 0),
        "{seen:?}"
    );
    assert_eq!(seen[seen.len() - 1].lag, [0; 3]);
    // SHOW QUERIES shows the last batch's lag per partition.
    assert_eq!(lag, "0 (bids/0: 0, bids/1: 0, bids/2: 0)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_sink_commit_fails_is_not_committed_to_the_group() {
    let cluster = cluster_with_sizes("fails");
    let bootstrap = cluster.bootstrap_servers();
    let (seen, state, _) = record(&bootstrap, "fails", "g", Some(2)).await;
    assert_eq!(state, QueryState::Failed);
    // The failing batch is the last one seen: nothing ran after it.
    let failed = seen.len() - 1;
    assert!(seen[failed].batch_id >= 2 && failed >= 1, "{seen:?}");
    // The group stays at batch 1's ends: batch 2 was read but not written.
    assert_eq!(
        committed_offsets(&group_reader(&bootstrap, "g"), "fails"),
        seen[failed - 1].ends
    );
    assert_ne!(seen[failed].ends, seen[failed - 1].ends);
    // The same group goes on from there: batch 2's messages are read again.
    let (again, state, _) = record(&bootstrap, "fails", "g", None).await;
    assert_eq!(state, QueryState::Finished);
    let read: i64 =
        again[again.len() - 1].ends.iter().sum::<i64>() - seen[failed - 1].ends.iter().sum::<i64>();
    assert_eq!(read, 90 - seen[failed - 1].ends.iter().sum::<i64>());
    assert_eq!(
        committed_offsets(&group_reader(&bootstrap, "g"), "fails"),
        SIZES
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreground_query_stopped_after_two_batches_commits_both() {
    let cluster = cluster_with_sizes("fg");
    let bootstrap = cluster.bootstrap_servers();
    let ctx = context(RunLimits {
        until_idle: false,
        max_batches: Some(2),
    });
    let Some(Output::Query(mut query)) = ctx
        .sql(&script(&bootstrap, "fg", "g"))
        .await
        .expect("runs")
        .pop()
    else {
        panic!("a continuous query");
    };
    let mut lines = Vec::new();
    let mut taken = Vec::new();
    while let Some(event) = query.next_event().await {
        if let quiver::QueryEvent::BatchEnd(end) = event {
            lines.extend(end.progress_line());
            let ends: Vec<i64> = (end.offsets[0].ranges.iter())
                .map(|r| r.end.parse().expect("a kafka offset"))
                .collect();
            taken.push(ends);
        }
    }
    query.finish().await.expect("finishes");
    // How much a batch takes depends on when the mock broker's fetches
    // arrive (at most 20): what matters is that both batches were committed,
    // the last one too, at its range ends.
    assert_eq!(taken.len(), 2, "{taken:?}");
    let committed = committed_offsets(&group_reader(&bootstrap, "g"), "fg");
    assert_eq!(committed, taken[1], "{taken:?}");
    // The progress lines show the lag summed: what is left after each batch.
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, ends) in lines.iter().zip(&taken) {
        let lag = SIZES.iter().sum::<i64>() - ends.iter().sum::<i64>();
        assert!(line.contains(&format!(", lag {lag}, ")), "{lines:?}");
    }
}
