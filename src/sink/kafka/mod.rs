//! The `kafka` sink: each result row one message (value, key and topic as
//! [`options`] say, encoded by [`encode`]), written by one librdkafka
//! `ThreadedProducer` (its thread serves delivery reports, which librdkafka
//! needs while a transaction commits or aborts).
//!
//! Delivery: by default the producer is idempotent (no duplicates from its
//! own retries) and every message carries a `quiver.batch` header, the id of
//! the batch that produced it, and a `quiver.run` header, the run of the
//! sink that sent it (when it was opened, in nanoseconds since 1970, as a
//! decimal). [`Sink::commit`] flushes the producer and fails the query if
//! any message of the batch was not delivered: nothing is dropped silently.
//! With `sink.semantic = 'exactly-once'` the producer is transactional and
//! each batch is one transaction, begun at the batch's first write and
//! committed in `commit`; a batch that fails (or a query that stops
//! mid-batch) is aborted, so `read_committed` readers never see it.
//!
//! **Under `--checkpoint`** every message also carries `quiver.checkpoint`,
//! the checkpoint's identity, and a crash is recovered as follows.
//! - At-least-once (default): the restart re-runs the batches after the
//!   last one in the checkpoint's commit log, with the same ids and the same
//!   input, so the same rows; the batch the process died in (possibly half
//!   delivered) comes again, complete, under a newer `quiver.run`. A reader
//!   gets every row exactly once by keeping, per `quiver.batch`, only the
//!   messages of the greatest `quiver.run` (dropping the earlier, possibly
//!   partial, delivery). `SHOW QUERIES` says so on the sink's line.
//! - Exactly-once: abort and replay. The restarted producer's
//!   `init_transactions`, with the same `transactional.id`, fences the dead
//!   process and aborts the transaction it left open; the batch is re-run
//!   from the checkpoint and sent in a new transaction. If the dead process
//!   had already committed the batch's transaction (it died before the
//!   commit log entry), [`resume`] finds that batch id in the topic with a
//!   `read_committed` reader and the sink skips it, so `read_committed`
//!   readers see every batch exactly once. This needs one output topic
//!   (not `topic.column`).
//!
//! Crash point (`QUIVER_CHECKPOINT_CRASH=after_kafka_send_before_commit@n`,
//! or `@r<n>` for the `n`-th batch that sent messages): the batch's messages
//! are enqueued, not yet flushed nor committed.
//!
//! TLS and SASL as for the source ([`crate::source::kafka::security`]): a
//! refused password or an untrusted certificate fails `open` at once.
//!
//! Blocking: `write` only enqueues (waiting while librdkafka's queue is
//! full); `commit` blocks on the flush and the transaction commit, bounded
//! by option `timeout`. The sink task runs both on tokio's blocking pool.

pub mod encode;
pub mod options;
mod resume;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::{Sink, SinkDef, SinkError};
use crate::checkpoint::{CrashPoint, crash_at};
use crate::report::{BatchEnd, QueryResult};
use crate::source::kafka::security::{self, Diagnosis, NoAnswer};
use options::{KafkaSinkOptions, Semantic, TopicChoice};

/// The header every message carries: the id of the batch that produced it.
pub const BATCH_HEADER: &str = "quiver.batch";

/// The header every message carries: the run of the sink that sent it
/// (nanoseconds since 1970 when it was opened). A batch replayed after a
/// crash comes again under a greater run: keep, per batch, the greatest.
pub const RUN_HEADER: &str = "quiver.run";

/// The header messages carry under `--checkpoint`: the checkpoint's identity.
pub const CHECKPOINT_HEADER: &str = "quiver.checkpoint";

/// Delivery failures the producer reported since the last commit.
#[derive(Debug, Default)]
struct Failures {
    /// How many messages failed.
    count: u64,
    /// The first failure: topic and librdkafka's error.
    first: Option<String>,
}

/// The producer's librdkafka callbacks: log lines and background errors go
/// to `tracing` at debug level, redacted (as the kafka source's `Quiet`
/// does); failed deliveries are recorded for [`Sink::commit`] to report,
/// and a failed TLS handshake or SASL authentication in the log is kept in
/// the [`Diagnosis`] (see [`security`]).
pub struct SinkContext {
    opts: KafkaSinkOptions,
    failures: Mutex<Failures>,
    diagnosis: Diagnosis,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let message = self.opts.redact(message);
        tracing::debug!(target: "librdkafka", "{level:?} {fac}: {message}");
        self.diagnosis.record(&message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let message = self.opts.redact(&format!("{error}: {reason}"));
        tracing::debug!(target: "librdkafka", "{message}");
        self.diagnosis.record(&message);
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        use rdkafka::message::Message;
        if let Err((error, message)) = result {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            failures.count += 1;
            if failures.first.is_none() {
                let hint = match error.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::UnknownTopicOrPartition)
                    | Some(RDKafkaErrorCode::UnknownTopic) => {
                        "; the topic does not exist: create it first"
                    }
                    Some(RDKafkaErrorCode::MessageTimedOut) => {
                        "; the broker did not acknowledge it within option 'timeout' (is it reachable?)"
                    }
                    _ => "",
                };
                failures.first = Some(format!(
                    "topic '{}': {}{hint}",
                    message.topic(),
                    self.opts.redact(&error.to_string())
                ));
            }
        }
    }
}

/// What to do when `e` says the broker has no transactions (some brokers
/// accept `InitProducerId` and refuse only `EndTxn`, so this applies to
/// every transactional call).
fn no_transactions_hint(e: &KafkaError) -> Option<&'static str> {
    let unsupported = matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion)
    ) || e.to_string().to_ascii_uppercase().contains("UNSUPPORTED");
    unsupported.then_some(
        "the broker does not support transactions; drop sink.semantic = 'exactly-once' to use \
         the default at-least-once mode, where every message carries a 'quiver.batch' header \
         (its batch id) so readers can drop replayed batches",
    )
}

/// A running kafka sink.
pub struct KafkaSink {
    name: String,
    opts: KafkaSinkOptions,
    producer: ThreadedProducer<SinkContext>,
    /// Where messages go, for `status`: `topic 't'` or `topics from column 'c'`.
    target: String,
    /// The batch whose transaction is open (exactly-once only).
    open_batch: Option<u64>,
    /// Messages enqueued since the last commit.
    pending: u64,
    /// Messages delivered (committed), and batches committed with messages.
    delivered: u64,
    batches: u64,
    /// This run's `quiver.run` header value.
    run: String,
    /// The checkpoint's identity, under `--checkpoint`.
    checkpoint: Option<String>,
    /// Exactly-once under `--checkpoint`: the last batch found committed in
    /// the topic (read at the first write; `Some(None)`: none).
    committed_before: Option<Option<u64>>,
    /// Rows of replayed batches not sent again (already committed).
    skipped: u64,
}

impl KafkaSink {
    /// Connects (the metadata of the topic, or of the cluster with
    /// `topic.column`, within option `timeout`) and, for exactly-once,
    /// initializes the transactional producer.
    pub fn open(def: &SinkDef) -> Result<Self, SinkError> {
        let opts =
            KafkaSinkOptions::parse(&def.name, &def.options, &def.schema).map_err(|source| {
                SinkError::Option {
                    sink: def.name.clone(),
                    source,
                }
            })?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &opts.bootstrap)
            .set("enable.idempotence", "true")
            .set("allow.auto.create.topics", "false")
            .set("message.timeout.ms", opts.timeout.as_millis().to_string());
        if opts.semantic == Semantic::ExactlyOnce {
            config.set("transactional.id", &opts.transactional_id).set(
                "transaction.timeout.ms",
                (opts.timeout.as_millis().max(1000) * 2).to_string(),
            );
        }
        for (name, value) in opts.properties.iter() {
            config.set(name, value);
        }
        security::set_defaults(&mut config, &opts.properties);
        security::check_files(&opts.properties).map_err(|e| SinkError::Write {
            sink: def.name.clone(),
            message: format!("kafka sink: {e}"),
        })?;
        let error = |what: &str, e: &KafkaError| SinkError::Write {
            sink: def.name.clone(),
            message: format!("kafka sink: {what}: {}", opts.redact(&e.to_string())),
        };
        let diagnosis = Diagnosis::default();
        let producer: ThreadedProducer<SinkContext> = config
            .create_with_context(SinkContext {
                opts: opts.clone(),
                failures: Mutex::new(Failures::default()),
                diagnosis: diagnosis.clone(),
            })
            .map_err(|e| error("cannot create the producer", &e))?;
        let topic = match &opts.topic {
            TopicChoice::Fixed(topic) => Some(topic.as_str()),
            TopicChoice::Column(_) => None,
        };
        let metadata = security::until_answer(opts.timeout, &diagnosis, |t| {
            producer.client().fetch_metadata(topic, t)
        })
        .map_err(|e| SinkError::Write {
            sink: def.name.clone(),
            message: match &e {
                NoAnswer::Security(failure) => {
                    format!("kafka sink ('{}'): {}", opts.bootstrap, failure.message)
                }
                NoAnswer::Kafka(..) => format!(
                    "kafka broker '{}' unreachable within {} (option 'timeout'): {}",
                    opts.bootstrap,
                    humantime::format_duration(opts.timeout),
                    e.reason(|m| opts.redact(m))
                ),
            },
        })?;
        if let Some(topic) = topic {
            let found = metadata.topics().iter().find(|t| t.name() == topic);
            let missing = match found {
                None => true,
                Some(t) => t.error().is_some() || t.partitions().is_empty(),
            };
            if missing {
                return Err(SinkError::Write {
                    sink: def.name.clone(),
                    message: format!(
                        "kafka topic '{topic}' does not exist on '{}'; create it first",
                        opts.bootstrap
                    ),
                });
            }
        }
        if opts.semantic == Semantic::ExactlyOnce {
            producer.init_transactions(opts.timeout).map_err(|e| {
                let hint = no_transactions_hint(&e).unwrap_or(
                    "check that the broker supports transactions and that transactional.id is not in use",
                );
                SinkError::Write {
                    sink: def.name.clone(),
                    message: format!(
                        "kafka sink: cannot start transactions (transactional.id '{}'): {}; {hint}",
                        opts.transactional_id,
                        opts.redact(&e.to_string())
                    ),
                }
            })?;
        }
        let target = match &opts.topic {
            TopicChoice::Fixed(topic) => format!("topic '{topic}'"),
            TopicChoice::Column(i) => {
                format!("topics from column '{}'", def.schema.field(*i).name())
            }
        };
        Ok(Self {
            name: def.name.clone(),
            target,
            opts,
            producer,
            open_batch: None,
            pending: 0,
            delivered: 0,
            batches: 0,
            run: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                .to_string(),
            checkpoint: None,
            committed_before: None,
            skipped: 0,
        })
    }

    fn error(&self, message: String) -> SinkError {
        SinkError::Write {
            sink: self.name.clone(),
            message: format!("kafka sink: {message}"),
        }
    }

    fn kafka_error(&self, what: &str, e: &KafkaError) -> SinkError {
        let hint = match no_transactions_hint(e) {
            Some(hint) if self.opts.semantic == Semantic::ExactlyOnce => format!("; {hint}"),
            _ => String::new(),
        };
        self.error(format!(
            "{what}: {}{hint}",
            self.opts.redact(&e.to_string())
        ))
    }

    /// Takes the delivery failures recorded since the last call.
    fn take_failures(&self) -> Failures {
        let mut failures = self
            .producer
            .context()
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *failures)
    }

    /// Fails if a message could not be delivered.
    fn check_deliveries(&self) -> Result<(), SinkError> {
        let failures = self.take_failures();
        match failures.first {
            None => Ok(()),
            Some(first) => Err(self.error(format!(
                "{} message(s) not delivered, the first to {first}{}",
                failures.count,
                self.security_failure()
            ))),
        }
    }

    /// Enqueues one message, waiting (at most `timeout`) while librdkafka's
    /// queue is full.
    fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &OwnedHeaders,
    ) -> Result<(), SinkError> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers.clone());
        record.key = key;
        record.payload = value;
        let started = Instant::now();
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if started.elapsed() > self.opts.timeout {
                        return Err(self.error(format!(
                            "the producer queue stayed full for {} (option 'timeout'): is '{}' reachable?",
                            humantime::format_duration(self.opts.timeout),
                            self.opts.bootstrap
                        )));
                    }
                    record = back;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err((e, _)) => {
                    return Err(self.kafka_error(&format!("cannot send to topic '{topic}'"), &e));
                }
            }
        }
    }

    /// Aborts the open transaction, if any.
    fn abort(&mut self) -> Result<(), SinkError> {
        if self.open_batch.take().is_some() {
            self.pending = 0;
            self.take_failures();
            self.producer
                .abort_transaction(self.opts.timeout)
                .map_err(|e| self.kafka_error("cannot abort the transaction", &e))?;
        }
        Ok(())
    }

    /// `; <why>` when librdkafka logged a failed TLS handshake or SASL
    /// authentication (a password revoked while the query runs), else
    /// empty: appended to delivery errors, which would otherwise only say
    /// that the broker did not answer.
    fn security_failure(&self) -> String {
        match self.producer.context().diagnosis.last() {
            Some(failure) => format!("; {}", failure.message),
            None => String::new(),
        }
    }

    /// Waits until every enqueued message is delivered; fails if one was not.
    fn flush(&mut self) -> Result<(), SinkError> {
        if let Err(e) = self.producer.flush(self.opts.timeout) {
            let left = self.producer.in_flight_count();
            self.check_deliveries()?;
            return Err(self.kafka_error(
                &format!(
                    "{left} message(s) not delivered to '{}' within {} (option 'timeout'){}",
                    self.opts.bootstrap,
                    humantime::format_duration(self.opts.timeout),
                    self.security_failure()
                ),
                &e,
            ));
        }
        self.check_deliveries()
    }

    /// Exactly-once under `--checkpoint`: the last batch of this checkpoint
    /// already committed to the topic (read back once, see [`resume`]).
    fn committed_before(&mut self) -> Result<Option<u64>, SinkError> {
        if let Some(last) = self.committed_before {
            return Ok(last);
        }
        let (Some(checkpoint), Semantic::ExactlyOnce) = (&self.checkpoint, self.opts.semantic)
        else {
            return Ok(None);
        };
        let TopicChoice::Fixed(topic) = &self.opts.topic else {
            return Err(self.error(
 "sink.semantic = 'exactly-once' with topic.column cannot resume from a checkpoint (quiver cannot tell which topic holds its last committed batch); write to one topic, or use the default at-least-once mode"
                    .into(),
            ));
        };
        let last = resume::last_committed_batch(&self.opts, topic, checkpoint).map_err(|e| {
            self.error(format!(
                "cannot find the last batch committed to topic '{topic}' before the restart: {e}"
            ))
        })?;
        self.committed_before = Some(last);
        Ok(last)
    }

    fn commit_batch(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        if self.open_batch.is_some() {
            self.producer
                .commit_transaction(self.opts.timeout)
                .map_err(|e| self.kafka_error("cannot commit the batch's transaction", &e))?;
            self.open_batch = None;
        }
        if self.pending > 0 {
            self.batches += 1;
        }
        self.delivered += std::mem::take(&mut self.pending);
        Ok(())
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, result: &QueryResult) -> Result<(), SinkError> {
        if result.num_rows() == 0 {
            return Ok(());
        }
        if self
            .committed_before()?
            .is_some_and(|last| result.batch_id <= last)
        {
            self.skipped += result.num_rows() as u64;
            return Ok(());
        }
        if self.opts.semantic == Semantic::ExactlyOnce && self.open_batch.is_none() {
            self.producer
                .begin_transaction()
                .map_err(|e| self.kafka_error("cannot begin a transaction", &e))?;
            self.open_batch = Some(result.batch_id);
        }
        let batch_id = result.batch_id.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: BATCH_HEADER,
                value: Some(batch_id.as_bytes()),
            })
            .insert(Header {
                key: RUN_HEADER,
                value: Some(self.run.as_bytes()),
            });
        if let Some(checkpoint) = &self.checkpoint {
            headers = headers.insert(Header {
                key: CHECKPOINT_HEADER,
                value: Some(checkpoint.as_bytes()),
            });
        }
        for rows in &result.rows {
            let encoded = encode::encode(rows, &self.opts)
                .map_err(|e| self.error(format!("cannot encode a row: {e}")))?;
            for (i, value) in encoded.values.iter().enumerate() {
                let topic = match (&self.opts.topic, &encoded.topics) {
                    (_, Some(topics)) => topics[i].as_str(),
                    (TopicChoice::Fixed(topic), None) => topic.as_str(),
                    (TopicChoice::Column(_), None) => {
                        unreachable!("encode gives every row a topic")
                    }
                };
                let key = encoded.keys.as_ref().and_then(|k| k[i].as_deref());
                self.send(topic, key, value.as_deref(), &headers)?;
                self.pending += 1;
            }
        }
        self.check_deliveries()
    }

    fn commit(&mut self, end: &BatchEnd) -> Result<(), SinkError> {
        crash_at(
            CrashPoint::AfterKafkaSendBeforeCommit,
            end.batch_id,
            self.pending > 0,
        );
        match self.commit_batch() {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Err(abort) = self.abort() {
                    tracing::warn!("{abort}");
                }
                Err(e)
            }
        }
    }

    /// A transaction still open here belongs to a batch that never reached
    /// its commit (the query failed or stopped mid-batch): it is aborted.
    fn close(&mut self) -> Result<(), SinkError> {
        if self.open_batch.is_some() {
            return self.abort();
        }
        self.flush()
    }

    fn resume_from_checkpoint(&mut self, checkpoint: &str) {
        self.checkpoint = Some(checkpoint.to_string());
    }

    fn status(&self) -> String {
        let mode = match self.opts.semantic {
            Semantic::ExactlyOnce => format!(
                "exactly-once (one transaction per batch, transactional.id '{}')",
                self.opts.transactional_id
            ),
            Semantic::AtLeastOnce => {
                format!("at-least-once (idempotent, '{BATCH_HEADER}' header per message)")
            }
        };
        let recovery = match (&self.checkpoint, self.opts.semantic) {
            (None, _) => String::new(),
            (Some(_), Semantic::AtLeastOnce) => format!(
                "; checkpointed: a batch replayed after a crash comes again with the same '{BATCH_HEADER}' and a newer '{RUN_HEADER}' (readers keep, per batch, the newest run)"
            ),
            (Some(_), Semantic::ExactlyOnce) => match self.committed_before {
                Some(Some(last)) => format!(
                    "; checkpointed: batches up to {last} were committed before the restart, {} replayed row(s) not sent again",
                    self.skipped
                ),
                _ => "; checkpointed: an open transaction of a crashed run is aborted and its batch sent again"
                    .to_string(),
            },
        };
        format!(
            "kafka {} ({}): {} messages in {} batches, {mode}{recovery}",
            self.target,
            self.opts.format.name(),
            self.delivered,
            self.batches
        )
    }
}
