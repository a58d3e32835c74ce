//! End to end against a real Kafka-protocol broker (Tansu, from
//! `../shared/kafka/broker.sh`; `.ci/run` starts it): known lines produced
//! with rdkafka, `quiver run sql/kafka/*.sql --until-idle`, outputs compared
//! with what was produced, and the group's committed offsets compared with
//! the partition ends. One test stops the broker mid-run and restarts it:
//! nothing lost, nothing counted twice. Another runs two processes of one
//! consumer group and stops one midway: every line counted once overall.
//!
//! Every test skips (with a message) unless `QUIVER_KAFKA_BROKER=host:port`
//! names a running broker and `QUIVER_KAFKA_BROKER_SH` the script that runs
//! it (to create topics, and to stop and restart it).

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use common::kafka::{Broker, send_retrying};

const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(20);

/// One test at a time: the outage test stops the shared broker.
static BROKER: Mutex<()> = Mutex::new(());

impl Broker {
    /// Produces `lines`, line `i` to partition `i % 3`, and waits for the acks.
    fn produce(&self, topic: &str, lines: &[String]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .expect("producer");
        for (i, line) in lines.iter().enumerate() {
            let record = BaseRecord::<(), _>::to(topic)
                .partition(i as i32 % PARTITIONS)
                .payload(line.as_bytes());
            send_retrying(&producer, record);
        }
        producer.flush(TIMEOUT).expect("flush");
    }

    /// Per partition, the group's committed offset and the partition's end.
    fn committed_and_ends(&self, topic: &str, group: &str) -> Vec<(i64, i64)> {
        common::kafka::committed_and_ends_within(&self.address, topic, group, TIMEOUT)
    }

    fn assert_committed_ends(&self, topic: &str, group: &str, total: usize) {
        let offsets = self.committed_and_ends(topic, group);
        for (p, (committed, end)) in offsets.iter().enumerate() {
            assert_eq!(committed, end, "partition {p}: committed offset = end");
        }
        let sum: i64 = offsets.iter().map(|(_, end)| end).sum();
        assert_eq!(sum, total as i64, "{offsets:?}");
    }
}

/// `n` lines of words with known counts: line `i` is `w{i % 7} x{i % 3} all`.
fn lines(n: usize) -> (Vec<String>, BTreeMap<String, u64>) {
    let mut expected = BTreeMap::new();
    let lines = (0..n)
        .map(|i| {
            let line = format!("w{} x{}  all", i % 7, i % 3);
            for word in line.split(' ').filter(|w| !w.is_empty()) {
                *expected.entry(word.to_string()).or_default() += 1;
            }
            line
        })
        .collect();
    (lines, expected)
}

/// `sql/kafka/NAME` with its topic, group and broker address replaced.
fn script(
    name: &str,
    broker: &Broker,
    topic: &str,
    group: &str,
    extra: &str,
) -> tempfile::TempPath {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sql/kafka")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read the example");
    let stock_group = format!("'group.id' = '{}'", name.trim_end_matches(".sql"));
    assert!(text.contains("topic = 'lines'") && text.contains(&stock_group));
    let text = text
        .replace("topic = 'lines'", &format!("topic = '{topic}'"))
        .replace(&stock_group, &format!("'group.id' = '{group}'{extra}"))
        .replace("127.0.0.1:19092", &broker.address);
    let file = tempfile::Builder::new()
        .suffix(".sql")
        .tempfile()
        .expect("temp file");
    std::fs::write(file.path(), text).expect("write the script");
    file.into_temp_path()
}

fn quiver(script: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quiver"));
    command
        .arg("run")
        .arg(script)
        .args(["--until-idle", "--format", "csv"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits for `child` (at most `limit`), reading its output meanwhile.
fn wait(mut child: Child, limit: Duration) -> Output {
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        stdout.read_to_end(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        stderr.read_to_end(&mut s).map(|_| s)
    });
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().expect("wait");
    Output {
        status,
        stdout: out.join().expect("join").expect("stdout"),
        stderr: err.join().expect("join").expect("stderr"),
    }
}

fn check_success(output: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "quiver failed; stderr:\n{stderr}");
    (stdout, stderr)
}

/// Sums the `n` column of CSV output per word.
fn word_totals(csv: &str) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for line in csv.lines().filter(|l| !l.starts_with("word,")) {
        let mut fields = line.split(',');
        let (Some(word), Some(n)) = (fields.next(), fields.next()) else {
            continue;
        };
        *totals.entry(word.to_string()).or_default() += n.parse::<u64>().expect("a count");
    }
    totals
}

#[test]
fn kafka_word_count_counts_every_line_once_and_commits_the_partition_ends() {
    let Some(broker) = Broker::from_env("kafka_word_count") else {
        return;
    };
    let _one = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    let topic = broker.topic("wordcount", PARTITIONS);
    let (lines, expected) = lines(3_000);
    broker.produce(&topic, &lines);
    let sql = script("wordcount.sql", &broker, &topic, &topic, "");
    let output = wait(
        quiver(&sql, &["--clock", "simulated"])
            .spawn()
            .expect("run quiver"),
        TIMEOUT * 6,
    );
    let (stdout, _) = check_success(&output);
    assert_eq!(word_totals(&stdout), expected);
    broker.assert_committed_ends(&topic, &topic, lines.len());
}

#[test]
fn windowed_kafka_word_count_counts_each_batch_in_three_windows() {
    let Some(broker) = Broker::from_env("windowed_kafka_word_count") else {
        return;
    };
    let _one = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    let topic = broker.topic("windowed", PARTITIONS);
    let (lines, expected) = lines(1_000);
    broker.produce(&topic, &lines);
    let sql = script("windowed_wordcount.sql", &broker, &topic, &topic, "");
    let output = wait(
        quiver(&sql, &["--clock", "simulated"])
            .spawn()
            .expect("run quiver"),
        TIMEOUT * 6,
    );
    let (stdout, _) = check_success(&output);
    // size 30 s / slide 10 s: every batch belongs to three windows.
    let tripled: BTreeMap<String, u64> = expected.into_iter().map(|(w, n)| (w, 3 * n)).collect();
    assert_eq!(word_totals(&stdout), tripled);
    broker.assert_committed_ends(&topic, &topic, lines.len());
}

#[test]
fn a_broker_stopped_and_restarted_mid_run_loses_and_duplicates_nothing() {
    let Some(broker) = Broker::from_env("broker_outage") else {
        return;
    };
    let _one = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    let topic = broker.topic("outage", PARTITIONS);
    let (lines, expected) = lines(6_000);
    broker.produce(&topic, &lines);
    // Small batches and a small prefetch so the run spans the outage.
    // (session.timeout.ms bounds how long librdkafka holds a commit back
    // when it has no coordinator: 45 s by default.)
    let extra = ", max_records_per_batch = '50', 'properties.queued.max.messages.kbytes' = '1', \
                 'properties.max.partition.fetch.bytes' = '1024', 'properties.session.timeout.ms' = '6000'";
    let sql = script("wordcount.sql", &broker, &topic, &topic, extra);
    let child = quiver(&sql, &["--batch-interval", "100ms"])
        .spawn()
        .expect("run quiver");
    std::thread::sleep(Duration::from_secs(2));
    let mut child = child;
    assert!(
        child.try_wait().expect("wait").is_none(),
        "quiver ended before the outage: make the run longer"
    );
    broker.script(&["stop", broker.port()]);
    // Longer than session.timeout.ms (how long librdkafka holds a commit
    // back on its own) plus a probe: quiver sees and reports the outage.
    std::thread::sleep(Duration::from_secs(15));
    broker.script(&["start", broker.port()]);
    let output = wait(child, TIMEOUT * 9);
    let (stdout, stderr) = check_success(&output);
    assert_eq!(word_totals(&stdout), expected, "stderr:\n{stderr}");
    // librdkafka may absorb the outage itself (a commit held back until the
    // broker is back: the query stalls, no error reaches quiver); when it
    // does report it, quiver's status lines say so and that it ended.
    let status = format!("kafka: {} unreachable, retrying (", broker.address);
    if stderr.contains(&status) {
        assert!(stderr.contains("reachable again after"), "{stderr}");
    }
    broker.assert_committed_ends(&topic, &topic, lines.len());
}

/// A running `quiver run` whose stderr lines are collected as they come
/// (to see the group's assignments) and whose stdout is kept whole.
struct Running {
    child: Child,
    stderr: std::sync::Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    stdout: std::sync::Arc<Mutex<String>>,
}

impl Running {
    fn start(mut command: Command) -> Self {
        let mut child = command.spawn().expect("run quiver");
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let (out, err) = (out.expect("stdout"), err.expect("stderr"));
        let stdout = std::sync::Arc::new(Mutex::new(String::new()));
        let stderr = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (o, e) = (stdout.clone(), stderr.clone());
        let readers = vec![
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::io::BufReader::new(out).read_to_string(&mut s);
                *o.lock().unwrap() = s;
            }),
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    e.lock().unwrap().push(line);
                }
            }),
        ];
        Self {
            child,
            stderr,
            readers,
            stdout,
        }
    }

    /// How many assignments the group has given this process so far.
    fn assignments(&self) -> usize {
        let stderr = self.stderr.lock().unwrap();
        stderr.iter().filter(|l| l.contains("' assigned ")).count()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Waits for the end (killing it after `limit`, a hang guard), checks
    /// it succeeded, and returns its stdout and stderr.
    fn finish(mut self, limit: Duration) -> (String, String) {
        let started = Instant::now();
        while self.running() {
            if started.elapsed() > limit {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = self.child.wait().expect("wait");
        for reader in self.readers {
            reader.join().expect("join");
        }
        let stderr = self.stderr.lock().unwrap().join("\n");
        assert!(status.success(), "quiver failed; stderr:\n{stderr}");
        let stdout = self.stdout.lock().unwrap().clone();
        (stdout, stderr)
    }

    /// Stops the process as Ctrl-C would: it finishes and commits its
    /// batch, then ends (exit 0).
    fn stop(self) -> (String, String) {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(kill.expect("kill").success());
        self.finish(TIMEOUT * 3)
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two processes of one group (`assignment = 'group'`) split a 3-partition
/// topic; the first is stopped (SIGTERM) midway, the second takes its
/// partitions and ends with `--until-idle`. Summed over both outputs every
/// line counts exactly once, and the group committed the partition ends.
#[test]
fn two_processes_of_one_group_one_stopped_midway_count_every_line_once() {
    let Some(broker) = Broker::from_env("kafka_group_scale_out") else {
        return;
    };
    let _one = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    let topic = broker.topic("group", PARTITIONS);
    let (lines, expected) = lines(6_000);
    broker.produce(&topic, &lines);
    // Small batches so that the run spans both processes and the stop.
    let extra = ", assignment = 'group', max_records_per_batch = '20', \
                 'properties.session.timeout.ms' = '6000'";
    let sql = script("wordcount.sql", &broker, &topic, &topic, extra);
    let run = || Running::start(quiver(&sql, &["--batch-interval", "100ms"]));
    let mut a = run();
    wait_for("A's first assignment", TIMEOUT * 2, || a.assignments() >= 1);
    let mut b = run();
    wait_for("the group to split the partitions", TIMEOUT * 2, || {
        b.assignments() >= 1 && a.assignments() >= 2
    });
    // Let both read a while.
    std::thread::sleep(Duration::from_secs(2));
    assert!(a.running(), "A ended before the stop: make the run longer");
    assert!(b.running(), "B ended before A's stop: make the run longer");
    let b_before = b.assignments();
    let (from_a, a_err) = a.stop();
    wait_for("B to take A's partitions", TIMEOUT * 2, || {
        b.assignments() > b_before
    });
    let (from_b, b_err) = b.finish(TIMEOUT * 3);
    let (from_a, from_b) = (word_totals(&from_a), word_totals(&from_b));
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "A: {from_a:?}\nB: {from_b:?}"
    );
    let mut both = from_a.clone();
    for (word, n) in &from_b {
        *both.entry(word.clone()).or_default() += n;
    }
    assert_eq!(
        both, expected,
        "A: {from_a:?}\nB: {from_b:?}\nA's stderr:\n{a_err}\nB's stderr:\n{b_err}"
    );
    broker.assert_committed_ends(&topic, &topic, lines.len());
}
