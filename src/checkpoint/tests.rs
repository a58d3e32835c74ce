use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::*;

fn fingerprint(query: &str, schema: &str) -> Fingerprint {
    Fingerprint {
        parts: vec![
            ("query".into(), query.into()),
            ("stream s schema".into(), schema.into()),
            ("stream s source".into(), "files path=in".into()),
        ],
    }
}

fn open(root: &Path, fp: &Fingerprint) -> Result<QueryCheckpoint, CheckpointError> {
    QueryCheckpoint::open(root, "query_1", fp, 1, vec!["stdout".into()], false)
}

fn entry(id: u64) -> OffsetsEntry {
    OffsetsEntry {
        batch_id: id,
        batch_time_ms: 1_000 * id as i64,
        closing: false,
        streams: vec![StreamEntry {
            stream: "s".into(),
            ranges: vec![],
            before: id.to_string(),
            after: (id + 1).to_string(),
        }],
    }
}

fn snapshot(id: u64) -> StateSnapshot {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let rows = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![id as i64]))])
        .expect("batch");
    StateSnapshot {
        batch_id: id,
        driver: serde_json::json!({"watermarks": {"at": id}}),
        operator: serde_json::json!({"kind": "windowed"}),
        batches: vec![rows],
        sources: vec![("s".into(), (id + 1).to_string())],
    }
}

/// Runs batches `0..n` through the protocol: offsets, state, commit.
fn run(ck: &QueryCheckpoint, n: u64) {
    for id in 0..n {
        ck.log_offsets(&entry(id)).unwrap();
        ck.write_state(&snapshot(id)).unwrap();
        ck.commit(id, 0, 1).unwrap();
    }
}

#[test]
fn a_changed_query_is_refused_naming_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), &fingerprint("SELECT a", "x BIGINT")).unwrap();
    let err = open(dir.path(), &fingerprint("SELECT b", "x BIGINT"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("query changed (was: SELECT a; now: SELECT b)"),
        "{err}"
    );
    assert!(err.contains("--checkpoint-reset"), "{err}");
    // The reset starts over deliberately.
    QueryCheckpoint::open(
        dir.path(),
        "query_1",
        &fingerprint("SELECT b", "x BIGINT"),
        1,
        vec![],
        true,
    )
    .unwrap();
    open(dir.path(), &fingerprint("SELECT b", "x BIGINT")).unwrap();
}

#[test]
fn a_changed_schema_is_refused_naming_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), &fingerprint("SELECT a", "x BIGINT")).unwrap();
    let err = open(dir.path(), &fingerprint("SELECT a", "x VARCHAR"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("stream s schema changed"), "{err}");
}

#[test]
fn recovery_resumes_after_the_last_commit_and_replays_the_uncommitted_batch() {
    let dir = tempfile::tempdir().unwrap();
    let ck = open(dir.path(), &fingerprint("q", "s")).unwrap();
    run(&ck, 3);
    ck.log_offsets(&entry(3)).unwrap();
    let recovery = ck.recover().unwrap();
    assert_eq!(recovery.committed, Some(2));
    assert_eq!(recovery.state.as_ref().map(|s| s.batch_id), Some(2));
    assert_eq!(recovery.state.unwrap().batches[0].num_rows(), 1);
    assert_eq!(recovery.replay, [entry(3)]);
}

#[test]
fn a_corrupted_state_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let ck = open(dir.path(), &fingerprint("q", "s")).unwrap();
    run(&ck, 3);
    let arrow = store::entry(&ck.dir().join("state"), 2, "arrow");
    let mut bytes = std::fs::read(&arrow).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&arrow, bytes).unwrap();
    let recovery = ck.recover().unwrap();
    assert_eq!(recovery.state.map(|s| s.batch_id), Some(1));
    assert_eq!(
        recovery.replay,
        [entry(2)],
        "batch 2 is re-run from its log"
    );
    assert_eq!(recovery.committed, Some(2));
}

#[test]
fn a_corrupted_file_with_nothing_before_it_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ck = open(dir.path(), &fingerprint("q", "s")).unwrap();
    run(&ck, 12);
    // Retention dropped the offsets before the oldest kept state (batch 2).
    assert!(!store::entry(&ck.dir().join("offsets"), 1, "json").exists());
    for id in 2..12 {
        std::fs::write(store::entry(&ck.dir().join("state"), id, "json"), "x").unwrap();
    }
    let err = ck.recover().unwrap_err().to_string();
    assert!(err.contains("is corrupted"), "{err}");
    assert!(err.contains(".json"), "{err}");
    // A damaged commit log entry is named too.
    std::fs::write(store::entry(&ck.dir().join("commits"), 11, "json"), "0\n{}").unwrap();
    let err = ck.recover().unwrap_err().to_string();
    assert!(
        err.contains("00000000000000000011.json' is corrupted"),
        "{err}"
    );
}

#[test]
fn inspect_reports_the_last_commit_offsets_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let ck = open(dir.path(), &fingerprint("q", "s")).unwrap();
    run(&ck, 2);
    let info = inspect(dir.path()).unwrap();
    let q = &info.queries[0];
    assert_eq!(q.query, "query_1");
    assert_eq!(q.committed.as_ref().map(|c| c.batch_id), Some(1));
    assert_eq!(q.logged.as_ref().map(|o| o.batch_id), Some(1));
    assert_eq!((q.state_batch, q.watermark_ms), (Some(1), Some(1)));
    assert!(q.state_bytes > 0);
}

#[test]
fn an_open_sink_file_keeps_its_batches_and_recovery_restarts_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let ck = open(dir.path(), &fingerprint("q", "s")).unwrap();
    // A file sink's file is open from batch 3 to batch 15.
    for id in 0..16 {
        ck.log_offsets(&entry(id)).unwrap();
        ck.write_state(&snapshot(id)).unwrap();
        let pending = (id >= 3).then_some(3);
        ck.commit_pending(id, 0, 1, pending).unwrap();
    }
    // Retention kept the states from before the file on: 0..=2 and 3..=15.
    let states = store::ids(&ck.dir().join("state"), "json").unwrap();
    assert_eq!(states, (0..16).collect::<Vec<_>>());
    let recovery = ck.recover().unwrap();
    assert_eq!(
        recovery.committed,
        Some(2),
        "the open file's batches are not durable"
    );
    assert_eq!(recovery.state.map(|s| s.batch_id), Some(2));
    assert_eq!(recovery.replay, (3..16).map(entry).collect::<Vec<_>>());
    // The file is finished: everything is durable, retention catches up.
    ck.commit_pending(15, 0, 1, None).unwrap();
    let states = store::ids(&ck.dir().join("state"), "json").unwrap();
    assert_eq!(states, (6..16).collect::<Vec<_>>());
    let recovery = ck.recover().unwrap();
    assert_eq!(recovery.committed, Some(15));
    assert!(recovery.replay.is_empty());
}

#[test]
fn a_file_open_since_batch_0_needs_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let ck = open(dir.path(), &fingerprint("q", "s")).unwrap();
    for id in 0..14 {
        ck.log_offsets(&entry(id)).unwrap();
        ck.write_state(&snapshot(id)).unwrap();
        ck.commit_pending(id, 0, 1, Some(0)).unwrap();
    }
    let recovery = ck.recover().unwrap();
    assert_eq!(recovery.committed, None);
    assert!(recovery.state.is_none());
    assert_eq!(recovery.replay.len(), 14);
}
