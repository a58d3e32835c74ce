//! A broker that does not answer when the query starts. By default that is
//! one clear error within option `timeout` (a wrong address is far likelier
//! then than an outage). With `startup.retry = '5m'` the query starts
//! anyway and [`Connecting`] keeps trying: each batch while the broker is
//! away is empty, the status line of an outage
//! (`kafka: 127.0.0.1:9092 unreachable, retrying (12 s)`) repeats with the
//! outage's backoff, a stop request (Ctrl-C) ends the query between two
//! attempts, and once the broker answers the source opens as it would have
//! at start (`... reachable again after 14 s`). Past `startup.retry` the
//! query fails with the error of the last attempt.

use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;

use super::KafkaSource;
use super::consumer::is_unreachable;
use super::options::{CONNECTOR, KafkaOptions};
use super::outage::{Due, Outage, Signal};
use crate::batch::SourceOffset;
use crate::options::Options;
use crate::source::{PollContext, Source, SourceData, SourceError};

/// Opens the kafka source of a stream: connected, or — under
/// `startup.retry` with the broker not answering — still connecting.
pub fn open(schema: SchemaRef, options: &Options) -> Result<Box<dyn Source>, SourceError> {
    let opts = KafkaOptions::parse(options)?;
    match KafkaSource::open(schema.clone(), options) {
        Ok(source) => Ok(Box::new(source)),
        Err(e) if opts.startup_retry.is_some() && is_unreachable(&e) => {
            Ok(Box::new(Connecting::new(schema, options.clone(), &opts, e)))
        }
        Err(e) => Err(e),
    }
}

/// A kafka source whose broker has not answered yet.
pub struct Connecting {
    schema: SchemaRef,
    options: Options,
    outage: Outage,
    /// When to give up (`startup.retry` after the start).
    deadline: Instant,
    /// The error of the last attempt.
    last: String,
    /// A checkpoint's position to seek to once connected.
    seek: Option<String>,
    /// The source, once connected.
    source: Option<KafkaSource>,
}

impl Connecting {
    fn new(schema: SchemaRef, options: Options, opts: &KafkaOptions, error: SourceError) -> Self {
        let retry = opts.startup_retry.unwrap_or_default();
        let mut outage = Outage::new(&opts.bootstrap, Signal::default());
        let last = error.to_string();
        outage.suspect(last.clone());
        outage.probed(Err(last.clone()));
        Self {
            schema,
            options,
            outage,
            deadline: Instant::now() + retry,
            last,
            seek: None,
            source: None,
        }
    }

    /// Tries to connect if the backoff has passed; the source once connected.
    fn connect(&mut self) -> Result<Option<&mut KafkaSource>, SourceError> {
        if self.source.is_none() && self.outage.due() == Due::Probe {
            if Instant::now() >= self.deadline {
                return Err(SourceError::Runtime(format!(
                    "{} (retried for option 'startup.retry')",
                    self.last
                )));
            }
            match KafkaSource::open(self.schema.clone(), &self.options) {
                Ok(mut source) => {
                    self.outage.probed(Ok(()));
                    if let Some(position) = self.seek.take() {
                        source.seek(&position)?;
                    }
                    self.source = Some(source);
                }
                Err(e) if is_unreachable(&e) => {
                    self.last = e.to_string();
                    self.outage.probed(Err(self.last.clone()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(self.source.as_mut())
    }
}

impl Source for Connecting {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Empty until the broker answers.
    fn poll_batch(&mut self, ctx: &PollContext) -> Result<SourceData, SourceError> {
        match self.connect()? {
            Some(source) => source.poll_batch(ctx),
            None => Ok(SourceData::default()),
        }
    }

    fn is_drained(&self) -> bool {
        self.source.as_ref().is_some_and(Source::is_drained)
    }

    fn partition_count(&self) -> u32 {
        self.source.as_ref().map_or(1, Source::partition_count)
    }

    fn owns_partition(&self, partition: u32) -> bool {
        (self.source.as_ref()).is_some_and(|s| s.owns_partition(partition))
    }

    fn partition_name(&self, partition: u32) -> String {
        match &self.source {
            Some(source) => source.partition_name(partition),
            None => partition.to_string(),
        }
    }

    fn commit(&mut self, ranges: &[SourceOffset]) -> Result<(), SourceError> {
        match &mut self.source {
            Some(source) => source.commit(ranges),
            None => Ok(()),
        }
    }

    /// Before the broker answered: the checkpoint's position if the query
    /// resumed from one; a fresh query cannot checkpoint yet.
    fn position(&self) -> Result<String, SourceError> {
        match (&self.source, &self.seek) {
            (Some(source), _) => source.position(),
            (None, Some(position)) => Ok(position.clone()),
            (None, None) => Err(SourceError::Runtime(format!(
                "{CONNECTOR} source: cannot checkpoint before the broker answered once: {}",
                self.last
            ))),
        }
    }

    fn seek(&mut self, position: &str) -> Result<(), SourceError> {
        match &mut self.source {
            Some(source) => source.seek(position),
            None => {
                self.seek = Some(position.to_string());
                Ok(())
            }
        }
    }

    fn poll_to(&mut self, ctx: &PollContext, position: &str) -> Result<SourceData, SourceError> {
        match self.connect()? {
            Some(source) => source.poll_to(ctx, position),
            None => Err(SourceError::Runtime(format!(
                "{CONNECTOR} source: cannot re-read the checkpoint's last batch: {}",
                self.last
            ))),
        }
    }
}
