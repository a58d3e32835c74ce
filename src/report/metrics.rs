//! Prometheus-style metrics of every query, recorded through the `metrics`
//! facade from each [`ProgressRecord`] once its batch is committed — the
//! same records `--progress-json` and `SHOW PROGRESS` show, so the numbers
//! agree. The library only records: without an installed recorder (the
//! binary installs Prometheus' with `--metrics`) every call is a no-op.
//! Names and labels follow Prometheus' conventions (`_total` counters,
//! base units: seconds, bytes).

use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

use super::ProgressRecord;

/// Name of the batch duration histogram, for exporters that set its buckets.
pub const BATCH_DURATION_SECONDS: &str = "quiver_batch_duration_seconds";

/// Name of the per-phase duration histogram.
pub const PHASE_DURATION_SECONDS: &str = "quiver_phase_duration_seconds";

/// Buckets of [`BATCH_DURATION_SECONDS`] and [`PHASE_DURATION_SECONDS`],
/// in seconds: 1 ms to 30 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric quiver records: name, kind, labels and help text (what the
/// README's table lists).
pub const METRICS: &[(&str, &str, &str, &str)] = &[
    (
        "quiver_batches_total",
        "counter",
        "query",
        "Batches committed.",
    ),
    (
        "quiver_input_rows_total",
        "counter",
        "query, stream",
        "Rows read from the stream's source.",
    ),
    (
        "quiver_output_rows_total",
        "counter",
        "query",
        "Rows handed to the query's sink.",
    ),
    (
        "quiver_skipped_rows_total",
        "counter",
        "query",
        "Malformed records skipped (on_error = 'skip').",
    ),
    (
        "quiver_late_rows_total",
        "counter",
        "query",
        "Rows that arrived behind the watermark.",
    ),
    (
        BATCH_DURATION_SECONDS,
        "histogram",
        "query",
        "Batch duration, from its poll to its sink's commit.",
    ),
    (
        PHASE_DURATION_SECONDS,
        "histogram",
        "query, phase",
        "Duration of a batch's phase: poll (with decoding), checkpoint, query, sink, commit.",
    ),
    (
        "quiver_scheduling_delay_seconds",
        "gauge",
        "query",
        "How late the last batch started after its scheduled time.",
    ),
    (
        "quiver_watermark_delay_seconds",
        "gauge",
        "query",
        "Last batch time minus the event-time watermark.",
    ),
    (
        "quiver_state_rows",
        "gauge",
        "query",
        "Rows held in window state after the last batch.",
    ),
    (
        "quiver_state_bytes",
        "gauge",
        "query",
        "Memory held by window state after the last batch.",
    ),
    (
        "quiver_kafka_lag",
        "gauge",
        "query, stream, partition",
        "Records a source partition holds beyond what was read (Kafka).",
    ),
];

/// Registers the help text and units of every metric with the installed
/// recorder (its `# HELP` lines). Call once after installing it.
pub fn describe_metrics() {
    for (name, kind, _, help) in METRICS {
        let unit = if name.ends_with("_seconds") {
            Some(Unit::Seconds)
        } else if name.ends_with("_bytes") {
            Some(Unit::Bytes)
        } else {
            None
        };
        match (*kind, unit) {
            ("counter", Some(unit)) => describe_counter!(*name, unit, *help),
            ("counter", None) => describe_counter!(*name, *help),
            ("gauge", Some(unit)) => describe_gauge!(*name, unit, *help),
            ("gauge", None) => describe_gauge!(*name, *help),
            (_, Some(unit)) => describe_histogram!(*name, unit, *help),
            (_, None) => describe_histogram!(*name, *help),
        }
    }
}

/// Records the batch of `r`. Runs once per batch.
pub(super) fn record(r: &ProgressRecord) {
    let query = r.query.clone();
    counter!("quiver_batches_total", "query" => query.clone()).increment(1);
    for source in &r.sources {
        counter!("quiver_input_rows_total", "query" => query.clone(), "stream" => source.stream.clone())
            .increment(source.input_rows);
        for p in &source.partitions {
            if let Some(lag) = p.lag {
                gauge!("quiver_kafka_lag", "query" => query.clone(), "stream" => source.stream.clone(), "partition" => p.partition.clone())
                    .set(lag as f64);
            }
        }
    }
    counter!("quiver_output_rows_total", "query" => query.clone()).increment(r.output_rows);
    counter!("quiver_skipped_rows_total", "query" => query.clone()).increment(r.skipped_rows);
    counter!("quiver_late_rows_total", "query" => query.clone()).increment(r.late_rows);
    histogram!(BATCH_DURATION_SECONDS, "query" => query.clone()).record(r.durations.total_ms / 1e3);
    let d = &r.durations;
    for (phase, ms) in [
        ("poll", d.poll_ms),
        ("checkpoint", d.checkpoint_ms),
        ("query", d.query_ms),
        ("sink", d.sink_ms),
        ("commit", d.commit_ms),
        ("source_commit", d.source_commit_ms),
    ] {
        histogram!(PHASE_DURATION_SECONDS, "query" => query.clone(), "phase" => phase)
            .record(ms / 1e3);
    }
    if r.closing {
        return;
    }
    gauge!("quiver_scheduling_delay_seconds", "query" => query.clone())
        .set(r.delay_ms as f64 / 1e3);
    if let Some(w) = r.watermark_ms.filter(|w| *w != i64::MAX) {
        gauge!("quiver_watermark_delay_seconds", "query" => query.clone())
            .set((r.batch_time_ms - w) as f64 / 1e3);
    }
    gauge!("quiver_state_rows", "query" => query.clone()).set(r.state_rows as f64);
    gauge!("quiver_state_bytes", "query" => query).set(r.state_bytes as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_lists_every_metric_with_its_kind_and_labels() {
        let readme = include_str!("../../README.md");
        for (name, kind, labels, _) in METRICS {
            let row = format!("| `{name}` | {kind} | {labels} |");
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
        let rows = readme
            .lines()
            .filter(|l| l.starts_with("| `quiver_"))
            .count();
        assert_eq!(
            rows,
            METRICS.len(),
            "README lists metrics quiver does not record"
        );
    }
}
