//! Consumer-group scale-out (`assignment = 'group'`) on librdkafka's mock
//! cluster: two `quiver run` processes of one `group.id` run the README's
//! scale-out KafkaWordCount over a 4-partition topic. They split the
//! partitions; the first is stopped (SIGTERM) midway, its partitions move
//! to the second, which then reads messages produced after the stop on
//! every partition. Summed over both processes' per-batch outputs, every
//! word's count equals what was produced: every line counted exactly once.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "lines";
const PARTITIONS: i32 = 4;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Hang guard for each wait; nothing is asserted about time.
const PATIENCE: Duration = Duration::from_secs(120);

/// The script of the README's scale-out recipe, on the mock cluster.
fn script(bootstrap: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("Scale-out").expect("README has Scale-out")..];
    let sql = section.split("```sql\n").nth(1).unwrap();
    let sql = sql.split("```").next().unwrap();
    sql.replace("127.0.0.1:9092", bootstrap).replace(
        "format = 'text'",
        "format = 'text', max_records_per_batch = 10, timeout = '20s', \
         'properties.session.timeout.ms' = '6000'",
    )
}

/// Produces `n` lines to each partition: line i of partition p is
/// `p<p> w<i % 5>`; returns the word counts they add.
fn produce(bootstrap: &str, n: usize, counts: &mut BTreeMap<String, i64>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for p in 0..PARTITIONS {
        for i in 0..n {
            let line = format!("p{p} w{}", i % 5);
            for word in line.split(' ') {
                *counts.entry(word.to_string()).or_default() += 1;
            }
            (producer.send(BaseRecord::<(), _>::to(TOPIC).partition(p).payload(&line)))
                .expect("enqueue");
        }
    }
    producer.flush(TIMEOUT).expect("flush");
}

/// The group's committed offsets summed over the partitions.
fn committed_total(bootstrap: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "wordcount")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let committed = consumer.committed_offsets(tpl, TIMEOUT).expect("committed");
    (committed.elements().iter())
        .map(|e| match e.offset() {
            Offset::Offset(n) => n,
            _ => 0,
        })
        .sum()
}

/// A running `quiver run` whose stdout and stderr lines are collected as
/// they come.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    pipe: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (lines, reader)
}

fn start(dir: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(dir)
        .args(["run", "scale.sql", "--batch-interval", "100ms"])
        .args(["--format", "csv"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, out_reader) = collect(child.stdout.take().unwrap());
    let (stderr, err_reader) = collect(child.stderr.take().unwrap());
    Running {
        child,
        stdout,
        stderr,
        readers: vec![out_reader, err_reader],
    }
}

impl Running {
    /// How many assignments the group has given this process so far.
    fn assignments(&self) -> usize {
        let stderr = self.stderr.lock().unwrap();
        stderr.iter().filter(|l| l.contains("' assigned ")).count()
    }

    /// The partitions of the process's last assignment, as printed.
    fn last_assignment(&self) -> String {
        let stderr = self.stderr.lock().unwrap();
        let last = stderr.iter().rev().find(|l| l.contains("' assigned "));
        last.cloned().unwrap_or_default()
    }

    /// Stops the process as Ctrl-C would (it finishes and commits its
    /// batch) and returns its word counts, summed over its batches.
    fn stop(mut self) -> BTreeMap<String, i64> {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(kill.unwrap().success());
        let status = self.child.wait().unwrap();
        for reader in self.readers {
            reader.join().unwrap();
        }
        let stderr = self.stderr.lock().unwrap().join("\n");
        assert!(status.success(), "{stderr}");
        let mut counts = BTreeMap::new();
        for line in self.stdout.lock().unwrap().iter() {
            let Some((word, n)) = line.split_once(',') else {
                continue;
            };
            if let Ok(n) = n.parse::<i64>() {
                *counts.entry(word.to_string()).or_default() += n;
            }
        }
        counts
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Phases with nothing in flight around each rebalance (the mock cluster,
/// unlike a real broker, refuses commits while a group rebalances): A reads
/// phase 1 alone; B joins and the group splits the partitions; both read
/// phase 2; A stops and B takes everything; B reads phase 3.
#[test]
fn two_processes_of_one_group_split_the_partitions_and_count_every_line_once() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scale.sql"), script(&bootstrap)).unwrap();
    let mut produced = BTreeMap::new();
    let per_partition = |n: i64| n * i64::from(PARTITIONS);
    let committed = || committed_total(&bootstrap);

    produce(&bootstrap, 100, &mut produced);
    let a = start(dir.path());
    wait_until("A to read phase 1", || committed() == per_partition(100));

    let b = start(dir.path());
    wait_until("the group to split the partitions", || {
        b.assignments() >= 1 && a.assignments() >= 2
    });
    assert!(!b.last_assignment().contains("no partitions"));
    assert!(!a.last_assignment().contains("no partitions"));
    produce(&bootstrap, 100, &mut produced);
    wait_until("A and B to read phase 2", || {
        committed() == per_partition(200)
    });

    let b_before = b.assignments();
    let from_a = a.stop();
    wait_until("B to take A's partitions", || b.assignments() > b_before);
    produce(&bootstrap, 50, &mut produced);
    wait_until("B to read phase 3", || committed() == per_partition(250));
    let last = b.last_assignment();
    let from_b = b.stop();

    let mut both = from_a.clone();
    for (word, n) in &from_b {
        *both.entry(word.clone()).or_default() += n;
    }
    assert_eq!(both, produced, "A: {from_a:?}\nB: {from_b:?}");
    for p in 0..PARTITIONS {
        assert!(last.contains(&format!("{TOPIC}/{p}")), "{last}");
        assert!(from_b.contains_key(&format!("p{p}")), "B: {from_b:?}");
    }
    assert!(from_a.contains_key("w0"), "A: {from_a:?}");
}

/// `--until-idle` under `assignment = 'group'` waits for the first
/// assignment, then ends once the group committed every partition's end.
#[test]
fn until_idle_waits_for_the_assignment_and_ends_when_the_group_is_done() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scale.sql"), script(&bootstrap)).unwrap();
    let mut produced = BTreeMap::new();
    produce(&bootstrap, 30, &mut produced);
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(dir.path())
        .args(["run", "scale.sql", "--batch-interval", "100ms"])
        .args(["--format", "csv", "--until-idle"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("consumer group 'wordcount' assigned lines/0"),
        "{stderr}"
    );
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        let (word, n) = line.split_once(',').unwrap();
        *counts.entry(word.to_string()).or_default() += n.parse::<i64>().unwrap();
    }
    assert_eq!(counts, produced);
    assert_eq!(committed_total(&bootstrap), 30 * i64::from(PARTITIONS));
}

/// A checkpoint cannot decide what a query reads when the group does.
#[test]
fn group_assignment_is_refused_under_checkpoint() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let dir = tempfile::tempdir().unwrap();
    let script = script(&cluster.bootstrap_servers());
    std::fs::write(dir.path().join("scale.sql"), script).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(dir.path())
        .args(["run", "scale.sql", "--until-idle", "--checkpoint", "ck"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("assignment = 'group' cannot resume from a checkpoint"),
        "{stderr}"
    );
}
