//! Committing a batch's offsets to the consumer group, held back while the
//! broker is unreachable and sent again once it answers.

use super::*;

impl KafkaConsumer {
    /// Commits `ranges` to the group: for each partition its `next` offset,
    /// the next one to read (Kafka's convention; committing the last
    /// processed offset would replay it on restart). Synchronous, bounded
    /// by librdkafka's request timeouts. While the broker is unreachable the
    /// offsets are held back (a later commit carries them, the newest per
    /// partition); only errors that will not go away fail.
    pub fn commit_batch(&self, ranges: &[OffsetRange]) -> Result<(), SourceError> {
        {
            let mut retry = self.retry.borrow_mut();
            for range in ranges {
                if let Some(slot) = retry.unsent.get_mut(range.partition as usize) {
                    *slot = Some(slot.map_or(range.next, |n| n.max(range.next)));
                }
            }
        }
        self.tend()?;
        self.flush_commits()
    }

    /// Sends the held-back commits unless the broker is known to be down.
    fn flush_commits(&self) -> Result<(), SourceError> {
        if self.retry.borrow().outage.is_down() {
            return Ok(());
        }
        match self.send_commits()? {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.retry.borrow_mut().outage.suspect(reason);
                Ok(())
            }
        }
    }

    /// Commits what is held back: `Ok(Err(reason))` when it failed with a
    /// transport error (kept for later), `Err` for errors that stay.
    fn send_commits(&self) -> Result<Result<(), String>, SourceError> {
        let mut retry = self.retry.borrow_mut();
        if retry.unsent.iter().all(Option::is_none) {
            return Ok(Ok(()));
        }
        let mut tpl = TopicPartitionList::new();
        for (p, next) in retry.unsent.iter().enumerate() {
            if let Some(next) = next {
                let (topic, partition) = self.kafka_partition(p as u32);
                tpl.add_partition_offset(topic, partition, Offset::Offset(*next))
                    .map_err(|e| kafka_error(&self.opts, "cannot build the commit", &e))?;
            }
        }
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                retry.unsent.fill(None);
                Ok(Ok(()))
            }
            Err(e) if is_transport(&e) => {
                Ok(Err(self.opts.redact(&format!("committing offsets: {e}"))))
            }
            Err(e) if is_rebalance(&e) => {
                // The group is rebalancing: the offsets stay held back and
                // go with the next commit (see `apply_rebalances`).
                tracing::debug!("{CONNECTOR} source: commit deferred: {e}");
                Ok(Ok(()))
            }
            Err(e) => Err(kafka_error(&self.opts, "committing offsets failed", &e)),
        }
    }

    /// Probes the broker when an outage is on and the backoff has passed:
    /// a metadata request, then the held-back commits. The outage ends
    /// when both go through.
    pub(super) fn tend(&self) -> Result<(), SourceError> {
        let due = self.retry.borrow_mut().outage.due();
        if due == Due::Probe {
            let topic = self.topics.first().map(String::as_str);
            let probe = match self
                .consumer
                .fetch_metadata(topic, PROBE_TIMEOUT.min(self.opts.timeout))
            {
                Ok(_) => self.send_commits()?,
                Err(e) => Err(self.opts.redact(&e.to_string())),
            };
            self.retry.borrow_mut().outage.probed(probe);
        }
        Ok(())
    }

    /// True when every offset handed to [`Self::commit_batch`] has reached
    /// the broker (tries again first if one is due).
    pub fn all_committed(&self) -> bool {
        if self.tend().is_err() {
            return false;
        }
        self.retry.borrow().unsent.iter().all(Option::is_none)
    }
}
