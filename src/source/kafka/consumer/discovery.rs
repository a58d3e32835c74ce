//! The partitions a query reads: those its topics (or `topic-pattern`) have
//! when it opens, and those that appear while it runs: a topic grows, or a
//! new topic matches `topic-pattern`. Every `scan.topic-partition-discovery.interval`
//! a poll asks the cluster's metadata (one request, bounded by the probe
//! timeout, skipped during an outage) and registers what is new as further
//! source partitions. They start at the **earliest** offset, so nothing
//! written to them before they were found is missed: under `assignment =
//! 'all'` quiver assigns them at their low watermark; under `assignment =
//! 'group'` a new topic is added to the subscription and the coordinator's
//! next assignment starts each partition at the group's committed offset,
//! the earliest where it has none (`auto.offset.reset = earliest`; see
//! `start_assigned`). `--until-idle` then also waits for them to reach the
//! end they had when found.

use super::*;

impl KafkaConsumer {
    /// Looks up the partitions of every topic; a named topic that does not
    /// exist or a cluster that does not answer is an error naming it.
    pub(super) fn discover(&mut self) -> Result<(), SourceError> {
        let opts = self.opts.clone();
        let Topics::Named(names) = &opts.topics else {
            let diagnosis = self.diagnosis().clone();
            let found = security::until_answer(opts.timeout, &diagnosis, |t| {
                let found = self.matching_partitions(t);
                self.serve_events();
                found
            })
            .map_err(|e| no_answer(&opts, e))?;
            for (topic, ids) in found {
                for id in ids {
                    self.register(&topic, id);
                }
            }
            if self.partitions.is_empty() {
                tracing::warn!(
                    "{CONNECTOR}: no topic on '{}' matches topic-pattern yet; topics created \
                     later are read once found",
                    opts.bootstrap
                );
            }
            return Ok(());
        };
        for topic in names {
            let metadata = security::until_answer(opts.timeout, self.diagnosis(), |t| {
                let metadata = self.consumer.fetch_metadata(Some(topic), t);
                self.serve_events();
                metadata
            })
            .map_err(|e| no_answer(&opts, e))?;
            let Some(found) = metadata.topics().iter().find(|m| m.name() == topic) else {
                return Err(unknown_topic(&opts, topic));
            };
            if let Some(code) = found.error() {
                let code = RDKafkaErrorCode::from(code);
                if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                    return Err(unknown_topic(&opts, topic));
                }
                return Err(SourceError::Runtime(format!(
                    "{CONNECTOR} source: topic '{topic}' on '{}': {code}",
                    opts.bootstrap
                )));
            }
            if found.partitions().is_empty() {
                return Err(unknown_topic(&opts, topic));
            }
            let mut ids: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            if !self.topics.contains(topic) {
                self.topics.push(topic.clone());
                self.by_topic.push(Vec::new());
            }
            for id in ids {
                self.register(topic, id);
            }
        }
        Ok(())
    }

    /// Serves librdkafka's queued events at open, before anything is
    /// assigned (so no message is taken): its log lines reach [`Quiet`],
    /// which keeps a failed TLS handshake or SASL authentication for
    /// [`security::until_answer`].
    fn serve_events(&self) {
        for _ in 0..1000 {
            if self.consumer.poll(Duration::ZERO).is_none() {
                break;
            }
        }
    }

    /// Adds Kafka partition `partition` of `topic` as the next source
    /// partition (not assigned, position 0: the caller sets them).
    pub(super) fn register(&mut self, topic: &str, partition: i32) -> u32 {
        let t = match self.topics.iter().position(|name| name == topic) {
            Some(t) => t,
            None => {
                self.topics.push(topic.to_string());
                self.by_topic.push(Vec::new());
                self.topics.len() - 1
            }
        };
        let p = self.partitions.len() as u32;
        let slot = usize::try_from(partition).unwrap_or_default();
        let index = &mut self.by_topic[t];
        if index.len() <= slot {
            index.resize(slot + 1, None);
        }
        index[slot] = Some(p);
        self.partitions.push((t, partition));
        self.next.push(0);
        self.end_at_start.push(0);
        self.eof_at.push(None);
        self.assigned.push(false);
        self.retry.get_mut().unsent.push(None);
        p
    }

    /// Looks for new partitions if the interval has passed.
    pub(super) fn discover_new(&mut self) -> Result<(), SourceError> {
        let now = Instant::now();
        if now < self.next_discovery {
            return Ok(());
        }
        self.next_discovery = now + self.opts.discovery;
        if self.retry.borrow().outage.is_down() {
            return Ok(());
        }
        let found = match self.matching_partitions(PROBE_TIMEOUT.min(self.opts.timeout)) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!("{CONNECTOR} source: looking for new partitions: {e}");
                return Ok(());
            }
        };
        let known_topics = self.topics.len();
        let mut added = Vec::new();
        for (topic, ids) in found {
            for id in ids {
                if self.source_partition(&topic, id).is_none() {
                    added.push(self.register(&topic, id));
                }
            }
        }
        if added.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = (added.iter())
            .map(|p| {
                let (topic, partition) = self.kafka_partition(*p);
                format!("{topic}/{partition}")
            })
            .collect();
        tracing::info!(
            "{CONNECTOR}: new partitions {}; reading them from the earliest offset",
            names.join(", ")
        );
        for &p in &added {
            self.end_at_start[p as usize] = self.high_watermark(p)?;
        }
        match self.opts.assignment {
            Assignment::All => {
                for &p in &added {
                    let (topic, partition) = self.kafka_partition(p);
                    let (low, _) = (self.consumer)
                        .fetch_watermarks(topic, partition, self.opts.timeout)
                        .map_err(|e| unreachable(&self.opts, &e))?;
                    self.next[p as usize] = low;
                    self.assigned[p as usize] = true;
                }
                self.pending_assign = true;
            }
            Assignment::Group if self.topics.len() > known_topics => {
                if known_topics == 0 {
                    self.seen_assignment = false;
                }
                self.resubscribe()?;
            }
            // New partitions of subscribed topics: librdkafka's metadata
            // refresh rebalances them in.
            Assignment::Group => {}
        }
        Ok(())
    }

    /// The partitions of every topic the stream reads (by name, or those
    /// `topic-pattern` matches), topics sorted by name.
    pub(super) fn matching_partitions(
        &self,
        timeout: Duration,
    ) -> Result<Vec<(String, Vec<i32>)>, KafkaError> {
        let metadata = self.consumer.fetch_metadata(None, timeout)?;
        let mut found: Vec<(String, Vec<i32>)> = (metadata.topics().iter())
            .filter(|t| t.error().is_none() && self.opts.topics.matches(t.name()))
            .map(|t| {
                let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                ids.sort_unstable();
                (t.name().to_string(), ids)
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// The end offset of source partition `p` now (a broker request).
    pub(super) fn high_watermark(&self, p: u32) -> Result<i64, SourceError> {
        let (topic, partition) = self.kafka_partition(p);
        let (_, high) = (self.consumer)
            .fetch_watermarks(topic, partition, self.opts.timeout)
            .map_err(|e| unreachable(&self.opts, &e))?;
        Ok(high)
    }
}
