//! The file sink through its public API when things go wrong: replayed
//! batches written once, restarts that do not match the output refused,
//! unwritable paths, a full disk and names that would escape the directory
//! (read back with DataFusion's own readers, as in tests/file_sink.rs).

use std::path::Path;

use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use quiver::{SinkDef, SinkError, open_sink};

mod common;

use common::file_sink::{all_files, def, query, result, url, visible_files};

#[tokio::test]
async fn replaying_committed_batches_writes_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = def(
        dir.path(),
        "parquet",
        &[("partition_by", "k"), ("rollover_rows", "3")],
    );
    let mut sink = open_sink(&d).unwrap();
    for id in 0..5 {
        sink.write(&result(id, &["a", "b"])).unwrap();
    }
    sink.close().unwrap();
    // A restarted query replays batches 0..=4 and goes on to 7.
    let mut sink = open_sink(&d).unwrap();
    for id in 0..8 {
        sink.write(&result(id, &["a", "b"])).unwrap();
    }
    assert!(
        sink.status().contains("replayed rows skipped"),
        "{}",
        sink.status()
    );
    sink.close().unwrap();
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "t",
        url(dir.path()),
        ParquetReadOptions::default().table_partition_cols(vec![("k".into(), DataType::Utf8)]),
    )
    .await
    .unwrap();
    let out = query(
        &ctx,
        "SELECT count(*) AS c, count(DISTINCT n) AS d, sum(n) AS s FROM t",
    )
    .await;
    // 8 batches × 2 rows, each once: n = id*100 + {0,1}.
    assert!(out.contains("| 16 | 16 | 5608 |"), "{out}");
}

#[tokio::test]
async fn every_window_closing_in_one_batch_is_written_once_also_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    // One file per row, were files finished between results of a batch.
    let d = def(
        dir.path(),
        "csv",
        &[("partition_by", "k"), ("rollover_rows", "1")],
    );
    let windows = |id| {
        let mut second = result(id, &["a", "b"]);
        second.rows = result(id + 50, &["a"]).rows;
        [result(id, &["a", "b"]), second]
    };
    for _run in 0..2 {
        let mut sink = open_sink(&d).unwrap();
        for id in 0..3 {
            for r in windows(id) {
                sink.write(&r).unwrap();
            }
        }
        sink.close().unwrap();
    }
    let ctx = SessionContext::new();
    ctx.register_csv(
        "t",
        url(dir.path()),
        CsvReadOptions::new().table_partition_cols(vec![("k".into(), DataType::Utf8)]),
    )
    .await
    .unwrap();
    let out = query(
        &ctx,
        "SELECT k, count(*) AS c, sum(n) AS s FROM t GROUP BY k ORDER BY k",
    )
    .await;
    // Per batch id: a gets id*100 and (id+50)*100, b gets id*100 + 1.
    assert!(
        out.contains("| a | 6 | 15600 |") && out.contains("| b | 3 | 303   |"),
        "{out}"
    );
}

#[tokio::test]
async fn a_new_run_reusing_batch_ids_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = def(dir.path(), "parquet", &[]);
    let mut sink = open_sink(&d).unwrap();
    sink.write(&result(0, &["a"])).unwrap();
    sink.close().unwrap();
    let mut sink = open_sink(&d).unwrap();
    let mut later = result(0, &["a"]);
    later.batch_time_ms += 3_600_000;
    let err = sink.write(&later).unwrap_err().to_string();
    assert!(
        err.contains("batch 0 was committed with batch time 2026-01-01 00:00:00, but this run's batch 0 has time 2026-01-01 01:00:00")
            && err.contains("not a replay")
            && err.contains(&format!("Delete {}", dir.path().display())),
        "{err}"
    );
}

/// Writes batches 0..3 (one result each) and closes the sink.
fn committed_run(d: &SinkDef) {
    let mut sink = open_sink(d).unwrap();
    for id in 0..3 {
        let mut r = result(id, &["a"]);
        r.input.digest = id;
        r.input.offsets = format!("s in={id}.csv");
        sink.write(&r).unwrap();
    }
    sink.close().unwrap();
}

#[tokio::test]
async fn a_restart_with_the_same_batch_times_but_other_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = def(dir.path(), "csv", &[]);
    committed_run(&d);
    let files = visible_files(dir.path());
    // Batch 0 replays; batch 1 read another file.
    let mut sink = open_sink(&d).unwrap();
    let mut r = result(0, &["a"]);
    r.input.offsets = "s in=0.csv".into();
    sink.write(&r).unwrap();
    let mut other = result(1, &["a"]);
    other.input.digest = 7;
    other.input.offsets = "s in=9.csv".into();
    let err = sink.write(&other).unwrap_err().to_string();
    assert!(
        err.contains(
            "batch 1 has the committed batch time 2026-01-01 00:00:01 but this run read other input"
        ) && err.contains("committed [s in=1.csv], now [s in=9.csv]")
            && err.contains("not a replay"),
        "{err}"
    );
    sink.close().unwrap();
    assert_eq!(visible_files(dir.path()), files);
}

#[tokio::test]
async fn a_restart_with_results_in_other_batches_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = def(dir.path(), "csv", &[]);
    committed_run(&d);
    // The committed run had a result in batch 0; this one starts at batch 1.
    let mut sink = open_sink(&d).unwrap();
    let mut r = result(1, &["a"]);
    r.input.digest = 1;
    let err = sink.write(&r).unwrap_err().to_string();
    assert!(
        err.contains("batch 0 (time 2026-01-01 00:00:00) produced results in the committed run but not in this run"),
        "{err}"
    );
}

#[tokio::test]
async fn output_without_a_batch_journal_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = def(dir.path(), "csv", &[]);
    committed_run(&d);
    // What an older quiver left: the commit log, no journal.
    std::fs::remove_file(dir.path().join("_quiver/out/batches")).unwrap();
    let err = open_sink(&d).err().expect("refused").to_string();
    assert!(
        err.contains("did not record each batch's input")
            && err.contains("delete the output directory"),
        "{err}"
    );
}

#[test]
fn an_unwritable_path_is_a_clear_error_and_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the output directory should be: ENOTDIR / EEXIST even as root.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    let err = match open_sink(&def(&blocker.join("out"), "parquet", &[])) {
        Err(e) => e,
        Ok(_) => panic!("opening a sink under a file must fail"),
    };
    assert!(matches!(err, SinkError::File { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("blocker/out") && text.contains("choose another path"),
        "{text}"
    );

    // Permission denied while running: a partition directory that cannot be
    // created. Root ignores permissions, so this part needs a normal user.
    let out = dir.path().join("ro");
    std::fs::create_dir(&out).unwrap();
    let mut sink = open_sink(&def(&out, "parquet", &[("partition_by", "k")])).unwrap();
    sink.write(&result(0, &["a"])).unwrap();
    sink.close().unwrap();
    set_mode(&out, 0o555);
    let probe = out.join("probe");
    if std::fs::create_dir(&probe).is_ok() {
        std::fs::remove_dir(&probe).unwrap();
        set_mode(&out, 0o755);
        eprintln!(
            "skipping the permission-denied half: this user (root?) ignores directory permissions"
        );
        return;
    }
    let mut sink = open_sink(&def(&out, "parquet", &[("partition_by", "k")])).unwrap();
    let err = sink.write(&result(1, &["new"])).unwrap_err().to_string();
    set_mode(&out, 0o755);
    assert!(
        err.contains("k=new")
            && err.contains("Permission denied")
            && err.contains("may write there"),
        "{err}"
    );
    sink.close().unwrap();
    assert_eq!(
        visible_files(&out),
        vec!["k=a/out-00000000-00000000.parquet"]
    );
    assert!(
        all_files(&out)
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".inprogress"))
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Unmounts a small tmpfs when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    /// A 256 KiB tmpfs, when this user may mount one (root in a container
    /// that allows it); `None` otherwise.
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Self(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_stops_the_sink_with_finished_files_intact() {
    let Some(disk) = SmallDisk::mount() else {
        eprintln!(
            "skipping: cannot mount a small tmpfs here (needs root and a permissive container)"
        );
        return;
    };
    let out = disk.0.path().join("out");
    let mut sink = open_sink(&def(
        &out,
        "parquet",
        &[("rollover_rows", "1"), ("compression", "none")],
    ))
    .unwrap();
    // Incompressible-ish rows: ~40 KB per batch, one file per batch.
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("{:032x}", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15_f39c))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let err = (0..100)
        .find_map(|id| sink.write(&result(id, &keys)).err())
        .expect("a 256 KiB disk fills up");
    assert!(matches!(err, SinkError::File { .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("the error: {text}");
    assert!(
        text.contains("free some disk space") && text.contains(&out.display().to_string()),
        "{text}"
    );
    sink.close().unwrap();
    assert!(
        all_files(&out)
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".inprogress"))
    );
    let files = visible_files(&out);
    assert!(!files.is_empty());
    let ctx = SessionContext::new();
    ctx.register_parquet("t", url(&out), ParquetReadOptions::default())
        .await
        .unwrap();
    let rows = query(&ctx, "SELECT count(*) AS c FROM t").await;
    assert!(
        rows.contains(&format!("| {} |", files.len() * 1000)),
        "{rows}"
    );
}

#[test]
fn a_sink_name_that_would_escape_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = def(dir.path(), "parquet", &[]);
    d.name = "../x".into();
    let err = open_sink(&d)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("pick another name"), "{err}");
}
