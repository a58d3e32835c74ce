//! The live page (`--ui`): a running `quiver run` serves its queries'
//! state and batches as JSON and the page's assets; what the page shows
//! agrees with the progress lines of the same run. (The page itself in a
//! browser: scripts/ui_check.mjs, run by .ci/run.)

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `quiver run` with `--ui` on a free port; its stderr lines go to a channel.
struct Run {
    child: Child,
    addr: String,
    lines: mpsc::Receiver<String>,
}

impl Run {
    fn start(sql: &str, args: &[&str]) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(["-c", sql, "--ui", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("quiver starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("quiver prints the page's address");
        let addr = first
            .strip_prefix("ui: http://")
            .and_then(|a| a.strip_suffix('/'))
            .unwrap_or_else(|| panic!("first line names the page: {first}"))
            .to_string();
        Run { child, addr, lines }
    }

    /// `GET path`: the status code and body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("the page answers");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout set");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("request sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response read");
        let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        (status, body.to_string())
    }

    fn queries(&self) -> serde_json::Value {
        let (status, body) = self.get("/api/queries");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    }

    /// Polls the page until `done` holds for its JSON (or fails after a minute).
    fn wait_for(&self, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let json = self.queries();
            if done(&json) {
                return json;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the page never showed what was expected: {json}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn points(query: &serde_json::Value, metric: &str) -> Vec<serde_json::Value> {
    query["points"][metric]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_running_query_is_on_the_page_and_agrees_with_its_progress_lines() {
    let run = Run::start(
        "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', rate = 5000, seed = 1); \
         SELECT channel, count(*) AS n FROM bids GROUP BY channel",
        &["--batch-interval", "200ms", "--progress"],
    );
    let json = run.wait_for(|j| {
        j["queries"][0]["points"]["batch"]
            .as_array()
            .is_some_and(|b| b.len() >= 4)
    });
    assert_eq!(json["interval_ms"], 200);
    let query = &json["queries"][0];
    assert_eq!(query["kind"], "foreground");
    assert_eq!(query["state"], "running");
    assert!(query["sql"].as_str().unwrap().starts_with("SELECT channel"));
    assert!(
        query["plan"].as_str().unwrap().contains("streaming_plan"),
        "{query}"
    );
    let name = query["name"].as_str().unwrap().to_string();

    // Every point's input rows equal the progress line of its batch: the
    // generator makes rate × interval = 1000 events per 200 ms batch, of
    // which 92% are bids (Nexmark's proportions): 920 rows.
    let batches = points(query, "batch");
    let rows = points(query, "input_rows");
    let rates = points(query, "input_rate");
    let mut progress = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while batches
        .iter()
        .any(|b| !progress.contains_key(&b.as_u64().unwrap()))
    {
        let line = run
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a progress line per batch");
        // "progress: <query> batch <id>: <rows> rows in, ..."
        let Some(rest) = line.strip_prefix(&format!("progress: {name} batch ")) else {
            continue;
        };
        let (id, rest) = rest.split_once(": ").unwrap();
        let n: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
        progress.insert(id.parse::<u64>().unwrap(), n);
    }
    for ((batch, rows), rate) in batches.iter().zip(&rows).zip(&rates) {
        let batch = batch.as_u64().unwrap();
        assert_eq!(rows.as_u64(), Some(progress[&batch]), "batch {batch}");
        assert_eq!(rows.as_u64(), Some(920), "batch {batch}");
        // Rows over the wall time since the previous batch (none before the first).
        if batch > 0 {
            assert!(
                rate.as_f64().is_some_and(|r| r > 0.0),
                "batch {batch}: {rate}"
            );
        }
    }
    let output: u64 = points(query, "output_rows")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(output > 0, "the query's result rows are counted: {query}");

    // The page and its embedded assets.
    let (status, html) = run.get("/");
    assert_eq!(status, 200);
    assert!(html.contains("/uPlot.iife.min.js") && html.contains("/app.js"));
    let (status, js) = run.get("/uPlot.iife.min.js");
    assert_eq!(status, 200);
    assert!(js.len() > 40_000, "uPlot is embedded");
    assert_eq!(run.get("/app.js").0, 200);
    assert_eq!(run.get("/no-such-page").0, 404);
}

#[test]
fn background_queries_show_their_plan_sink_and_the_rows_they_wrote() {
    let run = Run::start(
        "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', rate = 5000, seed = 1); \
         CREATE TABLE counts (channel VARCHAR, n BIGINT) WITH (connector = 'blackhole'); \
         INSERT INTO counts SELECT channel, count(*) AS n FROM bids GROUP BY channel; \
         CREATE SINK totals AS SELECT count(*) AS n FROM bids WITH (connector = 'blackhole')",
        &["--batch-interval", "200ms", "--max-batches", "30"],
    );
    let by_name = |j: &serde_json::Value, name: &str| -> Option<serde_json::Value> {
        (j["queries"].as_array()?.iter())
            .find(|q| q["name"] == name)
            .cloned()
    };
    let json = run.wait_for(|j| {
        ["counts", "totals"].iter().all(|name| {
            by_name(j, name).is_some_and(|q| {
                q["points"]["batch"]
                    .as_array()
                    .is_some_and(|b| b.len() >= 3)
            })
        })
    });
    for (name, statement) in [
        ("counts", "INSERT INTO counts"),
        ("totals", "CREATE SINK totals"),
    ] {
        let query = by_name(&json, name).unwrap();
        assert_eq!(query["kind"], "background", "{query}");
        assert!(
            query["sql"].as_str().unwrap().starts_with(statement),
            "{query}"
        );
        // The plan of the SELECT, whichever statement started the query.
        assert!(
            query["plan"]
                .as_str()
                .unwrap_or_default()
                .contains("streaming_plan"),
            "{query}"
        );
        let sink = query["sink"].as_str().unwrap_or_default();
        assert!(sink.contains("blackhole"), "{query}");
        // Rows written per batch, as the sink counted them.
        let written: u64 = points(&query, "output_rows")
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert!(written > 0, "{query}");
    }
}

#[test]
fn a_public_address_needs_ui_public() {
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["-c", "SELECT 1", "--ui", "0.0.0.0:0"])
        .output()
        .expect("quiver runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no authentication") && stderr.contains("--ui-public"),
        "{stderr}"
    );
}
