//! A batch's source ranges reach the sink's commit step: a background query
//! with a recording sink, over a directory partitioned by subdirectories and
//! over the Nexmark generator, gets one commit per batch, in batch order,
//! whose ranges are the files read / the events generated — contiguous per
//! partition, starting at the beginning and ending at the input's end — and
//! each result carries the ranges of the batch that produced it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use quiver::{
    BatchEnd, Clock, Context, Output, QueryResult, QueryState, RunLimits, Sink, SinkError,
    StreamOffsets,
};

/// What the recording sink saw.
#[derive(Default)]
struct Seen {
    /// `(batch id, ranges)` of every commit, in call order.
    commits: Vec<(u64, Vec<StreamOffsets>)>,
    /// `(batch id, ranges)` of every result written, in call order.
    results: Vec<(u64, Vec<StreamOffsets>)>,
}

/// A sink recording the offsets it is given.
struct Recording(Arc<Mutex<Seen>>);

impl Sink for Recording {
    fn write(&mut self, result: &QueryResult) -> Result<(), SinkError> {
        let mut seen = self.0.lock().unwrap();
        seen.results.push((result.batch_id, result.offsets.clone()));
        Ok(())
    }

    fn commit(&mut self, end: &BatchEnd) -> Result<(), SinkError> {
        let mut seen = self.0.lock().unwrap();
        seen.commits.push((end.batch_id, end.offsets.clone()));
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Runs `query` after `setup` to the end of its input with a recording sink.
async fn record(setup: &str, query: &str) -> (Seen, u64) {
    let ctx = Context::new(quiver::Config {
        clock: Clock::Simulated { start_ms: 0 },
        limits: RunLimits {
            until_idle: true,
            ..RunLimits::default()
        },
        ..Default::default()
    });
    ctx.sql(setup).await.expect("setup");
    let Some(Output::Query(handle)) = ctx.sql(query).await.expect("query").pop() else {
        panic!("{query} is not a query");
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    ctx.background()
        .start(handle, Box::new(Recording(seen.clone())), "recording")
        .expect("start");
    let status = ctx.background().wait_all().await;
    assert_eq!(status.len(), 1);
    assert_eq!(
        status[0].state,
        QueryState::Finished,
        "{:?}",
        status[0].error
    );
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (seen, status[0].batches)
}

/// Per partition of stream `stream`, the `(start, end)` of each commit that
/// has the partition, in commit order.
fn ranges_by_partition(
    commits: &[(u64, Vec<StreamOffsets>)],
    stream: &str,
) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (_, offsets) in commits {
        for s in offsets.iter().filter(|s| s.stream == stream) {
            for r in &s.ranges {
                out.entry(r.partition.clone())
                    .or_default()
                    .push((r.start.clone(), r.end.clone()));
            }
        }
    }
    out
}

/// One commit per batch, ids 0, 1, ... in order; each result carries the
/// ranges its batch commits.
fn check_commits(seen: &Seen, batches: u64) {
    let ids: Vec<u64> = seen.commits.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len() as u64, batches, "one commit per batch: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids.first(), Some(&0));
    let committed: BTreeMap<u64, &Vec<StreamOffsets>> =
        seen.commits.iter().map(|(id, o)| (*id, o)).collect();
    assert!(!seen.results.is_empty());
    for (id, offsets) in &seen.results {
        assert_eq!(Some(&offsets), committed.get(id), "result of batch {id}");
    }
}

/// Every partition's ranges are contiguous, start at `first` and end at `last`.
fn check_tiling(ranges: &[(String, String)], first: &str, last: &str) {
    assert_eq!(ranges[0].0, first, "{ranges:?}");
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "contiguous: {ranges:?}");
    }
    assert_eq!(ranges[ranges.len() - 1].1, last, "{ranges:?}");
}

#[tokio::test]
async fn file_ranges_per_subdirectory_reach_the_sink_commit() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("p0", ["a.csv", "b.csv", "c.csv"].as_slice()),
        ("p1", &["x.csv", "y.csv"]),
    ];
    for (sub, names) in files {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for (i, name) in names.iter().enumerate() {
            std::fs::write(dir.path().join(sub).join(name), format!("v\n{i}\n")).unwrap();
        }
    }
    let setup = format!(
        "CREATE STREAM s WITH (connector = 'files', path = '{}', format = 'csv', \
         partitions = 'subdirectories', max_files_per_batch = 1)",
        dir.path().display()
    );
    let (seen, batches) = record(&setup, "SELECT count(*) AS n FROM s").await;
    check_commits(&seen, batches);
    let by_partition = ranges_by_partition(&seen.commits, "s");
    assert_eq!(by_partition.len(), 2, "{by_partition:?}");
    for (sub, names) in files {
        let partition = dir.path().join(sub).display().to_string();
        let ranges = &by_partition[&partition];
        check_tiling(ranges, "", names[names.len() - 1]);
        // Batch k read the k-th file of the partition (one per batch).
        let moved: Vec<&str> = ranges
            .iter()
            .filter(|(start, end)| start != end)
            .map(|(_, end)| end.as_str())
            .collect();
        assert_eq!(moved, names, "{partition}: {ranges:?}");
        assert!(
            ranges[..names.len()].iter().all(|(s, e)| s != e),
            "{ranges:?}"
        );
    }
}

#[tokio::test]
async fn generator_event_numbers_reach_the_sink_commit() {
    // 5000 events at 1000 per second, two partitions: five batches of 1000
    // events each, then the batches closing the open window read nothing.
    let setup = "CREATE STREAM bids WITH (connector = 'nexmark', events = 5000, rate = 1000, \
                 partitions = 2)";
    let query = "SELECT window_start, count(*) AS n FROM TUMBLE(bids, _batch_time, INTERVAL '2' SECOND) \
                 GROUP BY window_start, window_end";
    let (seen, batches) = record(setup, query).await;
    check_commits(&seen, batches);
    // Batches whose window did not close have a commit but no result.
    assert!(seen.results.len() < seen.commits.len());
    let by_partition = ranges_by_partition(&seen.commits, "bids");
    assert_eq!(by_partition.keys().collect::<Vec<_>>(), ["0", "1"]);
    for ranges in by_partition.values() {
        check_tiling(ranges, "0", "5000");
        let expected: Vec<(String, String)> = (0..5)
            .map(|k| ((k * 1000).to_string(), ((k + 1) * 1000).to_string()))
            .collect();
        assert_eq!(ranges, &expected);
    }
    // The reading batches come first; the closing ones read nothing.
    let reading = seen.commits.iter().filter(|(_, o)| !o.is_empty()).count();
    assert_eq!(reading, 5);
    assert!(seen.commits[..5].iter().all(|(_, o)| !o.is_empty()));
}
