//! Golden streaming SQL cases: every `tests/sql/*.case` file holds the input
//! files (one batch each with `max_files_per_batch = 1`), the `quiver` command
//! line, the script, and the exact expected stdout — per batch or window — or
//! the expected error. They run the real binary on the simulated clock, so
//! processing-time windows are deterministic.
//!
//! Sections of a case file, each starting with a `---` line:
//! - `--- file PATH` then the file's content (written under a temp dir; PATH
//!   may name subdirectories, e.g. the partitions `in/p0/0.csv`, `in/p1/0.csv`);
//! - `--- run ARGS...` then the SQL script (the command's working dir is the temp dir);
//! - `--- expect` then stdout; or `--- error` then text stderr must contain;
//! - optionally `--- progress` (before `--- expect`) then the `progress:`
//!   lines stderr must have, with `--progress` among the run arguments.
//!
//! `cargo test --test golden -- NAME` runs the cases whose file name contains
//! NAME (one test per case). `QUIVER_BLESS=1 cargo test --test golden`
//! rewrites the expectations from the actual output (review the diff before
//! committing).

use std::path::Path;
use std::process::Command;

#[derive(Debug, Default)]
struct Case {
    head: String,
    files: Vec<(String, String)>,
    args: Vec<String>,
    sql: String,
    expect: Option<String>,
    error: Option<String>,
    progress: Option<String>,
}

fn parse(text: &str) -> Case {
    let mut case = Case::default();
    let mut section: Option<(String, String)> = None;
    let mut body = String::new();
    let flush = |case: &mut Case, section: &Option<(String, String)>, body: &mut String| {
        let content = std::mem::take(body);
        match section {
            None => case.head = content,
            Some((kind, arg)) => match kind.as_str() {
                "file" => case.files.push((arg.clone(), content)),
                "run" => {
                    case.args = arg.split_whitespace().map(String::from).collect();
                    case.sql = content;
                }
                "expect" => case.expect = Some(content),
                "error" => case.error = Some(content.trim().to_string()),
                "progress" => case.progress = Some(content),
                other => panic!("unknown section '--- {other}'"),
            },
        }
    };
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("--- ") {
            flush(&mut case, &section, &mut body);
            let rest = rest.trim_end();
            let (kind, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            section = Some((kind.to_string(), arg.to_string()));
        } else {
            body.push_str(line);
        }
    }
    flush(&mut case, &section, &mut body);
    case
}

fn normalize(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case = parse(&text);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    for (name, content) in &case.files {
        let file = dir.path().join(name);
        std::fs::create_dir_all(file.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&file, content).map_err(|e| e.to_string())?;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(dir.path())
        .args(&case.args)
        .arg("-c")
        .arg(&case.sql)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let progress: String = stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect::<Vec<_>>()
        .join("\n");
    if std::env::var_os("QUIVER_BLESS").is_some() && case.expect.is_some() {
        let cut = text
            .find("--- progress")
            .or_else(|| text.find("--- expect"))
            .unwrap();
        let progress_section = if case.progress.is_some() {
            format!("--- progress\n{progress}\n")
        } else {
            String::new()
        };
        std::fs::write(
            path,
            format!(
                "{}{progress_section}--- expect\n{}\n",
                &text[..cut],
                normalize(&stdout)
            ),
        )
        .unwrap();
        return Ok(());
    }
    if let Some(expected) = &case.progress
        && normalize(expected) != normalize(&progress)
    {
        return Err(format!(
            "progress lines differ\n--- expected\n{}\n--- actual\n{}",
            normalize(expected),
            normalize(&progress)
        ));
    }
    match (&case.expect, &case.error) {
        (Some(expected), _) => {
            if !output.status.success() {
                return Err(format!(
                    "quiver failed: {}\nstderr:\n{stderr}",
                    output.status
                ));
            }
            if normalize(expected) != normalize(&stdout) {
                return Err(format!(
                    "stdout differs\n--- expected\n{}\n--- actual\n{}\n--- stderr\n{stderr}",
                    normalize(expected),
                    normalize(&stdout)
                ));
            }
        }
        (None, Some(error)) => {
            if output.status.success() {
                return Err(format!(
                    "expected failure with '{error}', but quiver succeeded\nstdout:\n{stdout}"
                ));
            }
            if !stderr.contains(error.as_str()) {
                return Err(format!(
                    "stderr does not contain '{error}'\nstderr:\n{stderr}"
                ));
            }
            if stderr.contains("panicked") {
                return Err(format!("quiver panicked:\n{stderr}"));
            }
        }
        (None, None) => return Err("case has neither '--- expect' nor '--- error'".into()),
    }
    Ok(())
}

/// One test per case file, named after it: `cargo test --test golden --
/// tumble` runs the cases whose name contains `tumble`, and a failure names
/// its case. Cases run in parallel, each in its own temp dir.
fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.retain(|p| p.extension().is_some_and(|e| e == "case"));
    paths.sort();
    assert!(
        paths.len() >= 10,
        "expected the golden cases in {}",
        dir.display()
    );
    let trials = paths
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            libtest_mimic::Trial::test(name, move || run_case(&path).map_err(Into::into))
        })
        .chain([libtest_mimic::Trial::test(
            "group_window_cases_match_their_table_function_twins",
            || {
                group_window_cases_match_their_table_function_twins();
                Ok(())
            },
        )])
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// The group-window cases (`GROUP BY k, TUMBLE(ts, size)`) must give exactly
/// what their table-function twins (`FROM TUMBLE(s, ts, size)`, in
/// `<name>_tvf.case`) give on the same input.
fn group_window_cases_match_their_table_function_twins() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut twins = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix("_tvf.case") else {
            continue;
        };
        let twin = parse(&std::fs::read_to_string(dir.join(format!("{stem}.case"))).unwrap());
        let tvf = parse(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(
            twin.files, tvf.files,
            "{stem}: the twins read different input"
        );
        assert_eq!(twin.args, tvf.args, "{stem}: the twins run differently");
        assert_ne!(twin.sql, tvf.sql, "{stem}: the twins run the same SQL");
        let (Some(a), Some(b)) = (&twin.expect, &tvf.expect) else {
            panic!("{stem}: both twins need an expected output");
        };
        assert!(!normalize(a).is_empty(), "{stem}: empty expectation");
        assert_eq!(normalize(a), normalize(b), "{stem}: outputs differ");
        twins += 1;
    }
    assert!(
        twins >= 2,
        "expected the group-window twins in {}",
        dir.display()
    );
}
