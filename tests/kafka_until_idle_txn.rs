//! `--until-idle` over topics as a transactional producer leaves them, on
//! librdkafka's mock cluster. Each committed transaction leaves a commit
//! marker after its messages, so a partition's end offset is one past the
//! last *data* message and a consumer's position never reaches it by
//! reading messages alone; quiver also counts librdkafka's partition EOF
//! (reported after the end seen at start was read) as reaching the end.
//! The mock cluster's transactions write no markers, so the test writes
//! one itself with a raw Produce request (a control record batch).
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const TOPIC: &str = "lines";
const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Hang guard only: nothing is asserted about time.
const PATIENCE: Duration = Duration::from_secs(60);

/// Produces `per` lines to every partition (`p<p> w<i % 4>`), each
/// partition's lines followed by a transaction commit marker (written as a
/// raw Produce request: the mock cluster's transactions write none);
/// returns the word counts they add.
fn produce_with_markers(bootstrap: &str, topic: &str, per: usize) -> BTreeMap<String, i64> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    let mut counts = BTreeMap::new();
    for p in 0..PARTITIONS {
        for i in 0..per {
            let line = format!("{topic}{p} w{}", i % 4);
            for word in line.split(' ') {
                *counts.entry(word.to_string()).or_default() += 1;
            }
            let record = BaseRecord::<(), _>::to(topic).partition(p).payload(&line);
            producer.send(record).expect("enqueue");
        }
    }
    producer.flush(TIMEOUT).expect("flush");
    for p in 0..PARTITIONS {
        produce_commit_marker(bootstrap, topic, p);
    }
    counts
}

/// Appends a transaction commit marker (a control batch of one record) to
/// `partition` with a Produce v3 request.
fn produce_commit_marker(bootstrap: &str, topic: &str, partition: i32) {
    // The control record: key = (version 0, type 1 = commit), value =
    // (version 0, coordinator epoch 0).
    let (key, value) = ([0u8, 0, 0, 1], [0u8, 0, 0, 0, 0, 0]);
    let mut record = vec![0u8, 0, 0]; // attributes, timestamp delta, offset delta
    record.push(zigzag(key.len() as i64));
    record.extend_from_slice(&key);
    record.push(zigzag(value.len() as i64));
    record.extend_from_slice(&value);
    record.push(0); // no headers
    let mut records = vec![zigzag(record.len() as i64)];
    records.extend_from_slice(&record);
    // From attributes on: what the CRC covers.
    let mut tail = Vec::new();
    tail.extend_from_slice(&0x30i16.to_be_bytes()); // transactional | control
    tail.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    tail.extend_from_slice(&0i64.to_be_bytes()); // first timestamp
    tail.extend_from_slice(&0i64.to_be_bytes()); // max timestamp
    tail.extend_from_slice(&4242i64.to_be_bytes()); // producer id
    tail.extend_from_slice(&0i16.to_be_bytes()); // producer epoch
    tail.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    tail.extend_from_slice(&1i32.to_be_bytes()); // one record
    tail.extend_from_slice(&records);
    let mut batch = Vec::new();
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    batch.extend_from_slice(&((4 + 1 + 4 + tail.len()) as i32).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c(&tail).to_be_bytes());
    batch.extend_from_slice(&tail);

    let mut request = Vec::new();
    request.extend_from_slice(&0i16.to_be_bytes()); // Produce
    request.extend_from_slice(&3i16.to_be_bytes()); // v3
    request.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    request.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    request.extend_from_slice(&(-1i16).to_be_bytes()); // no transactional id
    request.extend_from_slice(&1i16.to_be_bytes()); // acks
    request.extend_from_slice(&10_000i32.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes()); // one topic
    request.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    request.extend_from_slice(topic.as_bytes());
    request.extend_from_slice(&1i32.to_be_bytes()); // one partition
    request.extend_from_slice(&partition.to_be_bytes());
    request.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    request.extend_from_slice(&batch);

    let address = bootstrap.split(',').next().expect("an address");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the mock");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream
        .write_all(&(request.len() as i32).to_be_bytes())
        .expect("send");
    stream.write_all(&request).expect("send");
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).expect("response");
    // correlation id, topic count, topic name, partition count, partition,
    // then the error code.
    let at = 4 + 4 + 2 + topic.len() + 4 + 4;
    let error = i16::from_be_bytes([response[at], response[at + 1]]);
    assert_eq!(error, 0, "the mock refused the commit marker");
}

/// A small non-negative value as a one-byte zigzag varint.
fn zigzag(n: i64) -> u8 {
    assert!((0..64).contains(&n));
    (n << 1) as u8
}

/// CRC-32C (Castagnoli), as record batches carry it.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Per partition: the group's committed offset, the last data message's
/// offset + 1 and the end offset (high watermark).
fn offsets(bootstrap: &str, topic: &str, group: &str) -> Vec<(i64, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, TIMEOUT).expect("committed");
    (0..PARTITIONS)
        .map(|p| {
            let offset = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(rdkafka::Offset::Offset(n)) => n,
                _ => -1,
            };
            let (_, high) = (consumer.fetch_watermarks(topic, p, TIMEOUT)).expect("watermarks");
            (offset, high)
        })
        .collect()
}

/// Runs `SELECT word, count(*)` over `topics` with `--until-idle` (group
/// `txn`) and returns the summed counts; fails if it does not end.
fn word_counts_until_idle(bootstrap: &str, topics: &str, extra: &str) -> BTreeMap<String, i64> {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = format!(
        "CREATE STREAM lines WITH (connector = 'kafka', topic = '{topics}', \
         'bootstrap.servers' = '{bootstrap}', 'group.id' = 'txn', format = 'text'{extra});\n\
         SELECT word, count(*) AS n FROM (SELECT unnest(string_to_array(line, ' ')) AS word \
         FROM lines) GROUP BY word;\n"
    );
    std::fs::write(dir.path().join("txn.sql"), script).expect("write the script");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(dir.path())
        .args(["run", "txn.sql", "--until-idle", "--format", "csv"])
        .args(["--batch-interval", "100ms"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run quiver");
    let started = Instant::now();
    let mut hung = false;
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > PATIENCE {
            hung = true;
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().expect("wait");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout);
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    assert!(!hung, "--until-idle never ended; stderr:\n{stderr}");
    assert!(status.success(), "{stderr}");
    let mut counts = BTreeMap::new();
    for line in stdout.lines().skip(1) {
        let (word, n) = line.split_once(',').expect("word,n");
        *counts.entry(word.to_string()).or_default() += n.parse::<i64>().expect("a count");
    }
    counts
}

/// The group's committed offsets are the partition ends, past the markers
/// (Kafka's convention: the next offset to read), as a Java consumer's
/// would be: a second run reads nothing old, and lag tools show none.
fn assert_committed_ends(bootstrap: &str, topic: &str, per: i64) {
    for (p, (committed, end)) in offsets(bootstrap, topic, "txn").iter().enumerate() {
        assert_eq!((*committed, *end), (per + 1, per + 1), "{topic}/{p}");
    }
}

#[test]
fn until_idle_ends_on_a_transactional_topic_and_counts_every_line_once() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let produced = produce_with_markers(&bootstrap, TOPIC, 20);
    // The commit markers: each partition ends past its 20 data messages.
    let ends = offsets(&bootstrap, TOPIC, "txn");
    assert!(ends.iter().all(|(_, end)| *end == 21), "{ends:?}");
    assert_eq!(word_counts_until_idle(&bootstrap, TOPIC, ""), produced);
    assert_committed_ends(&bootstrap, TOPIC, 20);
}

/// Two topics share partition numbers, and librdkafka's partition EOF
/// names only the number: each topic's partitions still count as read to
/// their end (by librdkafka's position), and only then.
#[test]
fn until_idle_ends_on_two_transactional_topics_with_the_same_partition_numbers() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("lines", PARTITIONS, 1).expect("topic");
    cluster.create_topic("more", PARTITIONS, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let mut produced = produce_with_markers(&bootstrap, "lines", 20);
    for (word, n) in produce_with_markers(&bootstrap, "more", 30) {
        *produced.entry(word).or_default() += n;
    }
    assert_eq!(
        word_counts_until_idle(&bootstrap, "lines,more", ""),
        produced
    );
    assert_committed_ends(&bootstrap, "lines", 20);
    assert_committed_ends(&bootstrap, "more", 30);
}

/// Under `assignment = 'group'` `--until-idle` waits for the group's
/// committed offsets to reach the ends: they do, past the markers.
#[test]
fn until_idle_ends_on_a_transactional_topic_under_group_assignment() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let produced = produce_with_markers(&bootstrap, TOPIC, 20);
    let group = ", assignment = 'group'";
    assert_eq!(word_counts_until_idle(&bootstrap, TOPIC, group), produced);
    assert_committed_ends(&bootstrap, TOPIC, 20);
}
