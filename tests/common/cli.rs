//! The quiver binary as the CLI tests run it: from the project root,
//! output captured, with a hang guard.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a CLI test waits for quiver to stop.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The quiver binary, run from the project root with stdout and stderr captured.
pub fn quiver() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Fails the test with quiver's stderr unless it exited successfully.
pub fn assert_success(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "quiver failed ({}):\n{stderr}",
        output.status
    );
}

/// Waits for `child` with a generous bound, killing it (and failing) on timeout.
pub fn wait(mut child: Child) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > TIMEOUT {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "quiver did not stop within {TIMEOUT:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
