//! The librdkafka side of the kafka source: a `BaseConsumer` with a manual
//! assignment of every partition of the stream's topics, each Kafka
//! partition one source partition (numbered in topic order, then partition
//! order). Start offsets are resolved explicitly at open (so `--until-idle`
//! knows where each partition stands), messages are taken from librdkafka's
//! prefetch queue in `poll`, and offsets are committed to the group with
//! Kafka's convention: the committed offset is the *next* offset to read.
//!
//! No thread of our own: librdkafka already fetches on its own threads into
//! a prefetch queue (`queued.min.messages`), so `poll` only drains that
//! queue; a thread of ours would add a copy of every message
//! (`BorrowedMessage::detach`) and a channel hop, and no overlap.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use datafusion::arrow::array::ArrayBuilder;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use super::group::{Change, Rebalances};
use super::options::{Assignment, CONNECTOR, KafkaOptions, StartupMode, Topics};
use super::outage::{Due, Outage, PROBE_TIMEOUT, Signal, is_transport};
use super::security::{self, Diagnosis, NoAnswer};
use crate::source::SourceError;

mod assignment;
mod commits;
mod config;
mod discovery;

pub use super::chunk::{Chunk, OffsetRange, Polled};
pub use config::{check_config, is_unreachable};
use config::{client_config, is_rebalance, kafka_error, no_answer, unknown_topic, unreachable};

/// A consumer assigned to every partition of the stream's topics.
pub struct KafkaConsumer {
    consumer: BaseConsumer<Quiet>,
    opts: KafkaOptions,
    /// The topics read so far (the named ones, or those `topic-pattern`
    /// matched), by topic index.
    topics: Vec<String>,
    /// When to look for new partitions next (see [`discovery`]).
    next_discovery: Instant,
    /// Source partition `i` is `(topic index, kafka partition)`.
    partitions: Vec<(usize, i32)>,
    /// Per topic index, source partition number by Kafka partition number.
    by_topic: Vec<Vec<Option<u32>>>,
    /// Per source partition, the next offset to read.
    next: Vec<i64>,
    /// Per source partition, the end (high watermark) seen at open.
    end_at_start: Vec<i64>,
    /// Per source partition, librdkafka's position at its last partition
    /// EOF since it was (re)assigned or moved: past the transaction markers
    /// after the last message, which are never delivered (so `next` stops
    /// short of the end).
    eof_at: Vec<Option<i64>>,
    /// Per source partition, whether this consumer reads it now.
    assigned: Vec<bool>,
    /// Rebalances librdkafka reported, not applied yet.
    rebalances: Rebalances,
    /// False under `assignment = 'group'` until the first assignment.
    seen_assignment: bool,
    /// `next` changed (open, a checkpoint's seek) and the partitions are to
    /// be assigned there before the next poll.
    pending_assign: bool,
    /// Broker outages and the commits they hold back (interior mutability:
    /// commits happen from `&self`, see `KafkaSource::is_drained`).
    retry: RefCell<Retry>,
}

/// What an outage holds back.
struct Retry {
    outage: Outage,
    /// Per source partition, a next offset to commit that no commit has
    /// carried to the broker yet.
    unsent: Vec<Option<i64>>,
}

/// The consumer's librdkafka callbacks: its log lines and background
/// errors go to `tracing` at debug level (`RUST_LOG=debug` shows them). A
/// broker that cannot be reached is reported once by quiver itself (the
/// timeout at open, `on_poll_error` later), not as a burst of librdkafka's
/// own `FAIL` lines per connection attempt. Property values are redacted
/// there too. Transport errors raise the [`Signal`] that starts an outage
/// (see [`super::outage`]); a failed TLS handshake or SASL authentication
/// in the log is kept in the [`Diagnosis`] (see [`super::security`]).
pub struct Quiet {
    /// For redacting property values out of librdkafka's messages.
    opts: KafkaOptions,
    /// Raised on a transport error: starts an outage.
    outage: Signal,
    /// The rebalances to apply on the next poll.
    rebalances: Rebalances,
    /// A TLS or SASL failure seen in the log.
    diagnosis: Diagnosis,
}

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let message = self.opts.redact(message);
        tracing::debug!(target: "librdkafka", "{level:?} {fac}: {message}");
        self.diagnosis.record(&message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let message = self.opts.redact(&format!("{error}: {reason}"));
        tracing::debug!(target: "librdkafka", "{message}");
        self.diagnosis.record(&message);
        if is_transport(&error) {
            self.outage.raise(message);
        }
    }
}

/// Under `assignment = 'group'` the rebalance callbacks record the
/// partitions taken away (before librdkafka unassigns them) and given
/// (after it assigns them); see [`super::group`].
impl ConsumerContext for Quiet {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Revoke(_)) {
            self.rebalances.record(rebalance);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !matches!(rebalance, Rebalance::Revoke(_)) {
            self.rebalances.record(rebalance);
        }
    }
}

impl KafkaConsumer {
    /// Connects, looks the topics up, resolves where each partition starts
    /// and assigns them all. Every broker request is bounded by
    /// `opts.timeout`, so a wrong address or topic fails instead of hanging.
    pub fn open(opts: &KafkaOptions) -> Result<Self, SourceError> {
        let signal = Signal::default();
        let rebalances = Rebalances::default();
        let context = Quiet {
            opts: opts.clone(),
            outage: signal.clone(),
            rebalances: rebalances.clone(),
            diagnosis: Diagnosis::default(),
        };
        let consumer = client_config(opts)?
            .create_with_context(context)
            .map_err(|e| kafka_error(opts, "cannot create the consumer", &e))?;
        let mut me = Self {
            consumer,
            opts: opts.clone(),
            topics: Vec::new(),
            next_discovery: Instant::now() + opts.discovery,
            partitions: Vec::new(),
            by_topic: Vec::new(),
            next: Vec::new(),
            end_at_start: Vec::new(),
            eof_at: Vec::new(),
            assigned: Vec::new(),
            rebalances,
            seen_assignment: opts.assignment == Assignment::All,
            pending_assign: false,
            retry: RefCell::new(Retry {
                outage: Outage::new(&opts.bootstrap, signal),
                unsent: Vec::new(),
            }),
        };
        me.discover()?;
        if opts.assignment == Assignment::Group {
            return me.subscribe();
        }
        let starts = me.resolve_starts()?;
        me.retry.get_mut().unsent = vec![None; starts.len()];
        me.assigned = vec![true; starts.len()];
        me.next = starts;
        // Assigned by the first poll, after a checkpoint's seek if any:
        // librdkafka asserts when an assignment is replaced before its
        // partitions have started.
        me.pending_assign = true;
        Ok(me)
    }

    /// The offset each partition starts at, after `scan.startup.mode`, and
    /// the ends seen now (for `--until-idle`). Starts are clamped into the
    /// partition's `[low, high]`, as librdkafka would reset them.
    fn resolve_starts(&mut self) -> Result<Vec<i64>, SourceError> {
        let opts = &self.opts;
        let mut bounds = Vec::with_capacity(self.partitions.len());
        for p in 0..self.partitions.len() {
            let (topic, partition) = self.kafka_partition(p as u32);
            let (low, high) = self
                .consumer
                .fetch_watermarks(topic, partition, opts.timeout)
                .map_err(|e| unreachable(opts, &e))?;
            bounds.push((low, high));
        }
        self.end_at_start = bounds.iter().map(|(_, high)| *high).collect();
        self.eof_at = vec![None; bounds.len()];
        let requested: Vec<Option<i64>> = match opts.startup {
            StartupMode::Earliest => vec![None; bounds.len()],
            StartupMode::Latest => bounds.iter().map(|(_, high)| Some(*high)).collect(),
            StartupMode::GroupOffsets => {
                let committed = self
                    .consumer
                    .committed_offsets(self.partition_list(Offset::Invalid)?, opts.timeout)
                    .map_err(|e| kafka_error(opts, "cannot read the group's offsets", &e))?;
                self.offsets_in(&committed)
            }
            StartupMode::Timestamp(ms) => {
                let found = self
                    .consumer
                    .offsets_for_times(self.partition_list(Offset::Offset(ms))?, opts.timeout)
                    .map_err(|e| kafka_error(opts, "cannot look offsets up by timestamp", &e))?;
                // No message at or after the time: start at the end.
                self.offsets_in(&found)
                    .into_iter()
                    .zip(&bounds)
                    .map(|(o, (_, high))| o.or(Some(*high)))
                    .collect()
            }
        };
        Ok(requested
            .into_iter()
            .zip(bounds)
            .map(|(start, (low, high))| start.unwrap_or(low).clamp(low, high.max(low)))
            .collect())
    }

    /// Every assigned partition with `offset`.
    fn partition_list(&self, offset: Offset) -> Result<TopicPartitionList, SourceError> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions.len() {
            let (topic, partition) = self.kafka_partition(p as u32);
            tpl.add_partition_offset(topic, partition, offset)
                .map_err(|e| kafka_error(&self.opts, "cannot build a partition list", &e))?;
        }
        Ok(tpl)
    }

    /// The concrete offset `tpl` holds for each source partition.
    fn offsets_in(&self, tpl: &TopicPartitionList) -> Vec<Option<i64>> {
        (0..self.partitions.len())
            .map(|p| {
                let (topic, partition) = self.kafka_partition(p as u32);
                match tpl.find_partition(topic, partition).map(|e| e.offset()) {
                    Some(Offset::Offset(n)) => Some(n),
                    _ => None,
                }
            })
            .collect()
    }

    /// Number of source partitions.
    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// The topic and Kafka partition of source partition `p`.
    pub fn kafka_partition(&self, p: u32) -> (&str, i32) {
        let (topic, partition) = self.partitions[p as usize];
        (self.topics[topic].as_str(), partition)
    }

    /// Takes up to `max` messages from librdkafka's queue: waits up to
    /// `wait` for the first one, then takes only what is already there.
    pub fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, SourceError> {
        self.discover_new()?;
        self.assign_if_pending()?;
        self.tend()?;
        let mut chunks: Vec<Option<Chunk>> = Vec::new();
        let deadline = Instant::now() + wait;
        let mut taken = 0;
        while taken < max {
            self.apply_rebalances(&mut chunks)?;
            let timeout = if taken == 0 {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let message = match self.consumer.poll(timeout) {
                None => break,
                Some(Ok(message)) => message,
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    self.on_partition_eof(partition);
                    continue;
                }
                Some(Err(e)) => {
                    self.on_poll_error(&e)?;
                    if Instant::now() >= deadline {
                        break;
                    }
                    continue;
                }
            };
            let Some(p) = self.source_partition(message.topic(), message.partition()) else {
                continue;
            };
            if message.offset() < self.next[p as usize] && !self.rebalances.is_pending() {
                continue; // fetched before a seek (see `start_assigned`)
            }
            if self.rebalances.is_pending() {
                // This poll also rebalanced: apply that first (rare; the
                // message is copied to let go of the consumer).
                let message = message.detach();
                self.apply_rebalances(&mut chunks)?;
                if message.offset() < self.next[p as usize] {
                    continue;
                }
                self.take(&mut chunks, p, &message);
            } else {
                self.take(&mut chunks, p, &message);
            }
            taken += 1;
        }
        self.apply_rebalances(&mut chunks)?;
        Ok(self.finish(chunks))
    }

    /// Re-reads exactly up to `targets` (per source partition, the next
    /// offset the logged batch stopped at; `None`: not read): every message
    /// from the current position below its partition's target, however
    /// long librdkafka takes to fetch them (bounded by option `timeout`
    /// without progress), nothing beyond. Messages fetched past a target
    /// are dropped, and those partitions seek back to their position, so
    /// the next poll carries on from there.
    pub fn poll_until(&mut self, targets: &[Option<i64>]) -> Result<Polled, SourceError> {
        self.assign_if_pending()?;
        let mut chunks: Vec<Option<Chunk>> = Vec::new();
        let mut overshot = vec![false; targets.len()];
        let reached = |next: &[i64]| {
            (targets.iter().zip(next)).all(|(target, next)| target.is_none_or(|t| *next >= t))
        };
        let mut read: Vec<i64> = self.next.clone();
        let mut deadline = Instant::now() + self.opts.timeout;
        while !reached(&read) {
            let now = Instant::now();
            if now >= deadline {
                let (p, stopped) = (read.iter().enumerate())
                    .find(|(p, next)| targets[*p].is_some_and(|t| **next < t))
                    .map(|(p, next)| (p as u32, *next))
                    .unwrap_or_default();
                let (topic, partition) = self.kafka_partition(p);
                return Err(SourceError::Runtime(format!(
                    "{CONNECTOR} source: cannot re-read the checkpoint's last batch: topic \
                     '{topic}' partition {partition} has nothing after offset {stopped} within \
                     {} (the batch logged up to {}); were its messages deleted by retention? \
                     Start over with --checkpoint-reset",
                    humantime::format_duration(self.opts.timeout),
                    targets[p as usize].unwrap_or_default()
                )));
            }
            let message = match self.consumer.poll(deadline - now) {
                None | Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    self.on_poll_error(&e)?;
                    continue;
                }
            };
            let Some(p) = self.source_partition(message.topic(), message.partition()) else {
                continue;
            };
            let (slot, offset) = (p as usize, message.offset());
            let Some(target) = targets.get(slot).copied().flatten() else {
                overshot[slot] = true;
                continue;
            };
            if offset < read[slot] {
                continue;
            }
            if offset >= target {
                overshot[slot] = true;
                continue;
            }
            self.take(&mut chunks, p, &message);
            read[slot] = offset + 1;
            deadline = Instant::now() + self.opts.timeout;
        }
        let polled = self.finish(chunks);
        // Where a message past the target was dropped, fetch again from the
        // position (the partition is fetching: a seek is enough).
        for (p, overshot) in overshot.iter().enumerate() {
            if !overshot {
                continue;
            }
            let (topic, partition) = self.kafka_partition(p as u32);
            let at = Offset::Offset(self.next[p]);
            if let Err(e) = self.consumer.seek(topic, partition, at, self.opts.timeout) {
                tracing::debug!("{CONNECTOR} source: seek after a re-read: {e}");
                self.pending_assign = true;
            }
        }
        Ok(polled)
    }

    /// Appends `message` of source partition `p` to its chunk.
    fn take(&self, chunks: &mut Vec<Option<Chunk>>, p: u32, message: &impl Message) {
        let slot = p as usize;
        if chunks.len() <= slot {
            chunks.resize_with(slot + 1, || None);
        }
        let chunk = chunks[slot].get_or_insert_with(|| {
            let (topic, partition) = self.kafka_partition(p);
            Chunk::new(p, topic, partition)
        });
        chunk
            .values
            .extend_from_slice(message.payload().unwrap_or_default());
        chunk.ends.push(chunk.values.len());
        chunk.has_value.push(message.payload().is_some());
        chunk.keys.append_option(message.key());
        chunk.offsets.push(message.offset());
        chunk.timestamps.push(match message.timestamp() {
            Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
            Timestamp::NotAvailable => None,
        });
        if let Some(headers) = message.headers() {
            for header in headers.iter() {
                chunk.header_keys.append_value(header.key);
                chunk.header_values.append_option(header.value);
            }
        }
        (chunk.header_ends).push(chunk.header_keys.len() as i32);
    }

    /// The chunks taken, with their ranges; moves the positions past them.
    fn finish(&mut self, chunks: Vec<Option<Chunk>>) -> Polled {
        let mut polled = Polled::default();
        for chunk in chunks.into_iter().flatten() {
            let first = chunk.offsets[0];
            let next = chunk.offsets[chunk.len() - 1] + 1;
            self.next[chunk.partition as usize] = next;
            polled.ranges.push(OffsetRange {
                partition: chunk.partition,
                first,
                next,
            });
            polled.chunks.push(chunk);
        }
        polled
    }

    /// The source partition of Kafka partition `partition` of `topic`.
    pub fn partition_of(&self, topic: &str, partition: i32) -> Option<u32> {
        self.source_partition(topic, partition)
    }

    /// Errors librdkafka reports while fetching: those that will not go
    /// away (the topic vanished, access denied, a fatal client error) stop
    /// the query; transport errors are retried by librdkafka and start an
    /// outage (a status line while it lasts); others are warnings.
    fn on_poll_error(&self, e: &KafkaError) -> Result<(), SourceError> {
        if is_transport(e) {
            let reason = self.opts.redact(&e.to_string());
            self.retry.borrow_mut().outage.suspect(reason);
            return Ok(());
        }
        let code = e.rdkafka_error_code();
        let permanent = matches!(e, KafkaError::MessageConsumptionFatal(_))
            || matches!(
                code,
                Some(
                    RDKafkaErrorCode::UnknownTopicOrPartition
                        | RDKafkaErrorCode::UnknownTopic
                        | RDKafkaErrorCode::TopicAuthorizationFailed
                        | RDKafkaErrorCode::GroupAuthorizationFailed
                        | RDKafkaErrorCode::SaslAuthenticationFailed
                        | RDKafkaErrorCode::Authentication
                        | RDKafkaErrorCode::SSL
                        | RDKafkaErrorCode::Fatal
                )
            );
        let security = matches!(
            code,
            Some(
                RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SSL
            )
        );
        if permanent {
            // librdkafka's error has only the code; its log line says more.
            if let Some(failure) = self.diagnosis().last().filter(|_| security) {
                return Err(SourceError::Runtime(format!(
                    "{CONNECTOR} source ('{}'): reading failed: {}",
                    self.opts.bootstrap, failure.message
                )));
            }
            return Err(kafka_error(&self.opts, "reading failed", e));
        }
        tracing::warn!(
            "{CONNECTOR} source {}: {} (librdkafka retries)",
            self.opts.bootstrap,
            self.opts.redact(&e.to_string())
        );
        Ok(())
    }

    /// The TLS / SASL failures librdkafka logged (see [`super::security`]).
    fn diagnosis(&self) -> &Diagnosis {
        &self.consumer.context().diagnosis
    }

    fn source_partition(&self, topic: &str, partition: i32) -> Option<u32> {
        let t = self.topics.iter().position(|name| name == topic)?;
        *self.by_topic[t].get(usize::try_from(partition).ok()?)?
    }

    /// The next offset to read in source partition `p`.
    pub fn position(&self, p: u32) -> i64 {
        self.next.get(p as usize).copied().unwrap_or(0)
    }

    /// The end offset of source partition `p`: librdkafka's cached high
    /// watermark (see [`super::lag`]; no broker request), or the end seen
    /// at open before a fetch for it has answered.
    pub fn end_offset(&self, p: u32) -> i64 {
        let (topic, partition) = self.kafka_partition(p);
        let at_start = self.end_at_start.get(p as usize).copied().unwrap_or(0);
        super::lag::cached_high_watermark(&self.consumer, topic, partition)
            .map_or(at_start, |high| high.max(at_start))
    }

    /// True once every assigned partition has been read up to the end it
    /// had at open (under `assignment = 'group'`: not before the first
    /// assignment): its position reached that end, or librdkafka reported
    /// partition EOF since (a partition whose last offsets are transaction
    /// markers, which are never delivered, ends past its last message).
    pub fn reached_start_ends(&self) -> bool {
        self.seen_assignment
            && (self.next.iter().zip(&self.end_at_start))
                .zip(self.assigned.iter().zip(&self.eof_at))
                .all(|((next, end), (assigned, eof))| {
                    !assigned || *next >= *end || eof.is_some_and(|at| at >= *end)
                })
    }

    /// librdkafka reached the end of Kafka partition `partition` of some
    /// topic (rdkafka's `PartitionEOF` does not say which): every message
    /// before it was delivered and taken (`poll` takes all it polls).
    /// Records librdkafka's position then (no broker request) for each
    /// assigned partition of that number; where several topics have it,
    /// the position tells which reached its end.
    fn on_partition_eof(&mut self, partition: i32) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for p in 0..self.partitions.len() {
            if !self.assigned[p] || self.partitions[p].1 != partition {
                continue;
            }
            let (topic, partition) = self.kafka_partition(p as u32);
            let at = positions
                .find_partition(topic, partition)
                .map(|e| e.offset());
            if let Some(Offset::Offset(at)) = at
                && at >= self.next[p]
            {
                self.eof_at[p] = Some(at);
            }
        }
    }

    /// The offset to commit for source partition `p` after a batch that
    /// ends at `next`: past the transaction markers that follow `next`
    /// when librdkafka's partition EOF showed only markers are there, so
    /// the group's committed offset reaches the partition's end (as a Java
    /// consumer's would).
    pub fn commit_offset(&self, p: u32, next: i64) -> i64 {
        let at = self.eof_at.get(p as usize).copied().flatten();
        match at {
            Some(at) if self.next.get(p as usize) == Some(&next) => at.max(next),
            _ => next,
        }
    }
}
