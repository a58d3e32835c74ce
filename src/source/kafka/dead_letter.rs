//! `on_error = 'dead_letter'`: malformed messages are left out of the rows
//! (counted as skipped) and written, as they came, to a dead-letter topic
//! (`dead_letter.topic`, on the stream's `bootstrap.servers`) or appended to
//! a file (`dead_letter.path`, one JSON object per line).
//!
//! A topic's message has the original key and value, and headers
//! `quiver.error` (the decode error), `quiver.topic`, `quiver.partition` and
//! `quiver.offset`. A file's line is `{"topic", "partition", "offset",
//! "error", "key_base64", "value_base64"}` (`null` where the message had no
//! key or no value).
//!
//! Durability: [`DeadLetters::write`] only enqueues (producer) or buffers
//! (file); [`DeadLetters::flush`] waits until every dead letter is
//! acknowledged by the broker or fsynced, and the source calls it before it
//! commits a batch's offsets, so a committed offset never skips a message
//! that is neither in the results nor dead-lettered; a dead letter that
//! cannot be written fails the query (at its next poll). A batch read again
//! (its sink failed, or a crash before the commit) writes its dead letters
//! again: at least once, like the results.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::decode::Rejected;
use super::options::{CONNECTOR, DeadLetterTarget, KafkaOptions};
use crate::source::SourceError;

/// Header of a dead-letter message: why it was rejected.
pub const ERROR_HEADER: &str = "quiver.error";

/// Where dead letters go, open.
pub struct DeadLetters {
    writer: Writer,
    /// Dead letters written but not flushed yet.
    pending: u64,
    /// Why dead letters were lost (a delivery or a sync failed): sticky,
    /// the query must stop before it commits past them.
    failed: Option<String>,
}

enum Writer {
    Topic {
        producer: ThreadedProducer<DeliveryContext>,
        topic: String,
    },
    File {
        path: PathBuf,
        file: BufWriter<File>,
    },
}

/// The dead-letter producer's callbacks: redacted log lines to `tracing`,
/// and the first failed delivery kept for [`DeadLetters::flush`].
pub struct DeliveryContext {
    opts: KafkaOptions,
    failed: Mutex<Option<String>>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let message = self.opts.redact(message);
        tracing::debug!(target: "librdkafka", "{level:?} {fac}: {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let message = self.opts.redact(&format!("{error}: {reason}"));
        tracing::debug!(target: "librdkafka", "{message}");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
            failed.get_or_insert_with(|| self.opts.redact(&error.to_string()));
        }
    }
}

impl DeadLetters {
    /// Opens the target of `opts.dead_letter` (none: `Ok(None)`). A topic
    /// must exist (checked within option `timeout`); a file is created if
    /// needed and appended to.
    pub fn open(opts: &KafkaOptions) -> Result<Option<Self>, SourceError> {
        let writer = match &opts.dead_letter {
            None => return Ok(None),
            Some(DeadLetterTarget::Topic(topic)) => open_topic(opts, topic)?,
            Some(DeadLetterTarget::File(path)) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| SourceError::Io {
                        what: format!("dead_letter.path '{}'", path.display()),
                        source,
                    })?;
                Writer::File {
                    path: path.clone(),
                    file: BufWriter::new(file),
                }
            }
        };
        Ok(Some(Self {
            writer,
            pending: 0,
            failed: None,
        }))
    }

    /// Writes the rejected messages of one Kafka partition (not durable
    /// before [`Self::flush`]).
    pub fn write(
        &mut self,
        topic: &str,
        partition: i32,
        rejected: &[Rejected],
    ) -> Result<(), SourceError> {
        for letter in rejected {
            match &mut self.writer {
                Writer::Topic {
                    producer,
                    topic: to,
                } => {
                    let (p, o) = (partition.to_string(), letter.offset.to_string());
                    let headers = OwnedHeaders::new()
                        .insert(header(ERROR_HEADER, &letter.error))
                        .insert(header("quiver.topic", topic))
                        .insert(header("quiver.partition", &p))
                        .insert(header("quiver.offset", &o));
                    let mut record = BaseRecord::<[u8], [u8]>::to(to).headers(headers);
                    if let Some(key) = &letter.key {
                        record = record.key(key.as_slice());
                    }
                    if let Some(value) = &letter.value {
                        record = record.payload(value.as_slice());
                    }
                    send(producer, record)?;
                }
                Writer::File { path, file } => {
                    let line = serde_json::json!({
                        "topic": topic,
                        "partition": partition,
                        "offset": letter.offset,
                        "error": letter.error,
                        "key_base64": letter.key.as_ref().map(|k| STANDARD.encode(k)),
                        "value_base64": letter.value.as_ref().map(|v| STANDARD.encode(v)),
                    });
                    writeln!(file, "{line}").map_err(|source| SourceError::Io {
                        what: format!("writing dead_letter.path '{}'", path.display()),
                        source,
                    })?;
                }
            }
            self.pending += 1;
        }
        Ok(())
    }

    /// An error once dead letters were lost: the source fails its next
    /// poll with it (a failed commit alone is only a warning, retried).
    pub fn check(&self) -> Result<(), SourceError> {
        match &self.failed {
            Some(reason) => Err(SourceError::Runtime(reason.clone())),
            None => Ok(()),
        }
    }

    /// True when every dead letter written is durable.
    pub fn is_flushed(&self) -> bool {
        self.pending == 0 && self.failed.is_none()
    }

    /// Makes every dead letter written so far durable: acknowledged by the
    /// broker (within option `timeout`) or fsynced. An error means the
    /// batch's offsets must not be committed; it stays (see [`Self::check`]).
    pub fn flush(&mut self) -> Result<(), SourceError> {
        self.check()?;
        if self.pending == 0 {
            return Ok(());
        }
        let flushed = self.sync();
        if let Err(e) = &flushed {
            self.failed = Some(e.to_string());
        }
        flushed
    }

    fn sync(&mut self) -> Result<(), SourceError> {
        match &mut self.writer {
            Writer::Topic { producer, topic } => {
                let opts = &producer.context().opts;
                let flushed = producer.flush(opts.timeout);
                let failed = (producer.context().failed.lock())
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(reason) = failed.or(flushed.err().map(|e| opts.redact(&e.to_string())))
                {
                    return Err(SourceError::Runtime(format!(
                        "{CONNECTOR} source: cannot write dead letters to topic '{topic}' on \
                         '{}': {reason}; the batch's offsets are not committed",
                        opts.bootstrap
                    )));
                }
            }
            Writer::File { path, file } => {
                let synced = file.flush().and_then(|()| file.get_ref().sync_data());
                synced.map_err(|source| SourceError::Io {
                    what: format!("syncing dead_letter.path '{}'", path.display()),
                    source,
                })?;
            }
        }
        self.pending = 0;
        Ok(())
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// A producer for `topic`, which must exist.
fn open_topic(opts: &KafkaOptions, topic: &str) -> Result<Writer, SourceError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &opts.bootstrap)
        .set("enable.idempotence", "true")
        .set("allow.auto.create.topics", "false")
        .set("message.timeout.ms", opts.timeout.as_millis().to_string());
    for (name, value) in opts.properties.iter() {
        config.set(name, value);
    }
    let context = DeliveryContext {
        opts: opts.clone(),
        failed: Mutex::new(None),
    };
    let error = |what: &str, e: &KafkaError| {
        SourceError::Runtime(format!(
            "{CONNECTOR} source: dead_letter.topic '{topic}' on '{}': {what}: {}",
            opts.bootstrap,
            opts.redact(&e.to_string())
        ))
    };
    let producer: ThreadedProducer<DeliveryContext> = config
        .create_with_context(context)
        .map_err(|e| error("cannot create the producer", &e))?;
    let metadata = (producer.client())
        .fetch_metadata(Some(topic), opts.timeout)
        .map_err(|e| error("no answer", &e))?;
    let exists = (metadata.topics().iter())
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if !exists {
        return Err(SourceError::Runtime(format!(
            "{CONNECTOR} source: dead_letter.topic '{topic}' does not exist on '{}'; create it \
             first",
            opts.bootstrap
        )));
    }
    Ok(Writer::Topic {
        producer,
        topic: topic.to_string(),
    })
}

/// Enqueues `record`, waiting for room while librdkafka's queue is full.
fn send(
    producer: &ThreadedProducer<DeliveryContext>,
    mut record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), SourceError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err((e, _)) => {
                return Err(SourceError::Runtime(format!(
                    "{CONNECTOR} source: cannot enqueue a dead letter: {e}"
                )));
            }
        }
    }
}
