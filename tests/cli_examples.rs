//! End-to-end tests of the `quiver` binary on the example scripts in
//! `sql/` (run as the README shows them) and the README's examples that are
//! golden cases in tests/sql/. The other binary tests: tests/cli.rs.

use std::path::Path;

mod common;

use common::cli::{assert_success, quiver, wait};

#[test]
fn files_csv_example_prints_only_csv_on_stdout() {
    let output = wait(
        quiver()
            .args([
                "run",
                "sql/files_csv.sql",
                "--until-idle",
                "--format",
                "csv",
            ])
            .spawn()
            .unwrap(),
    );
    assert_success(&output);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "region,orders,revenue\neast,1,7.25\nnorth,2,15.0\nsouth,2,22.0\nnorth,1,1.0\n"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("created stream sales"), "{stderr}");
}

#[test]
fn demo_script_prints_windows_of_the_nexmark_generator() {
    let output = wait(
        quiver()
            .args([
                "run",
                "sql/demo.sql",
                "--clock",
                "simulated",
                "--max-batches",
                "4",
            ])
            .spawn()
            .unwrap(),
    );
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Windows close every 2 batches: after batches 1 and 3.
    assert_eq!(stdout.matches("· window [").count(), 2, "{stdout}");
    assert!(
        stdout.contains(
            "Batch 1 · 2026-01-01 00:00:01 · window [2025-12-31 23:59:52, 2026-01-01 00:00:02)"
        ),
        "{stdout}"
    );
    // The README shows this first window; the generator is deterministic.
    assert!(
        stdout.contains(
            "| Baidu        | 1187 | 98290745  | 2025-12-31T23:59:52 | 2026-01-01T00:00:02 |"
        ),
        "{stdout}"
    );
    // LIMIT 5 rows per window: 2 windows × (5 rows + 4 border/header lines).
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| channel "))
            .count(),
        10,
        "{stdout}"
    );
}

#[test]
fn event_time_example_emits_each_window_once_the_watermark_passes_it() {
    let output = wait(
        quiver()
            .args([
                "--clock",
                "simulated",
                "--until-idle",
                "--progress",
                "--format",
                "csv",
                "run",
                "sql/event_time.sql",
            ])
            .spawn()
            .unwrap(),
    );
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 20 000 events at 1000/s: 20 s of bid time, HOP every 2 s over 10 s;
    // LIMIT 3 per window. Every window is emitted exactly once.
    let windows: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("auction,"))
        .filter_map(|l| l.split(',').nth(2))
        .collect();
    let distinct: std::collections::BTreeSet<&&str> = windows.iter().collect();
    assert_eq!(windows.len(), distinct.len() * 3, "{stdout}");
    assert!(distinct.len() >= 10, "{stdout}");
    // Progress shows the watermark moving: bid time - 4 s.
    assert!(
        stderr.contains(
            "progress: query_1 batch 5: 920 rows in, watermark 2026-01-01 00:00:00.999, 1 results"
        ),
        "{stderr}"
    );
}

#[test]
fn nexmark_q5_runs_unmodified_after_quivers_ddl() {
    let output = wait(
        quiver()
            .args([
                "--clock",
                "simulated",
                "--until-idle",
                "run",
                "sql/nexmark/ddl.sql",
                "sql/nexmark/q5.sql",
            ])
            .spawn()
            .unwrap(),
    );
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("query nexmark_q5: finished, 11 batches, 1,000,000 rows in"),
        "{stderr}"
    );
    assert!(stderr.contains("(blackhole: "), "{stderr}");
}

#[test]
fn readme_late_data_example_is_the_golden_case_it_names() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme
        .find("### Late data")
        .expect("README has a Late data section")..];
    let example = section
        .split("```sql\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the Late data section shows SQL");
    let case = std::fs::read_to_string(root.join("tests/sql/late_side_output.case")).unwrap();
    let script = case
        .split("--- run --clock simulated --until-idle\n")
        .nth(1)
        .and_then(|s| s.split("--- expect").next())
        .expect("the golden case runs a script");
    assert_eq!(example.trim(), script.trim());
}

/// The README's group-window and CREATE EXTERNAL TABLE examples are the
/// statements golden cases run (whitespace aside).
#[test]
fn readme_group_window_and_external_table_examples_are_golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let case =
        |name: &str| words(&std::fs::read_to_string(root.join("tests/sql").join(name)).unwrap());
    let group_window = readme
        .split("group windows\n")
        .nth(1)
        .and_then(|s| s.split("```sql\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README shows a group-window query");
    assert!(
        case("group_window_tumble_event_time.case").contains(&words(group_window)),
        "{group_window}"
    );
    let start = readme.find("CREATE EXTERNAL TABLE").unwrap();
    let end = start + readme[start..].find("'true');").unwrap() + "'true');".len();
    let external = words(&readme[start..end]);
    assert!(
        case("ddl_drop_external_table_keys.case").contains(&external),
        "{external}"
    );
}
