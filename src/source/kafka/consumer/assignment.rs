//! Which partitions the consumer reads and from where: the group's
//! assignments (`assignment = 'group'`) and moves to a checkpoint's
//! positions.

use super::*;

impl KafkaConsumer {
    /// Joins the group (`assignment = 'group'`): no partition is this
    /// consumer's until the coordinator's first assignment, which a poll
    /// receives. The ends seen now bound `--until-idle`.
    pub(super) fn subscribe(mut self) -> Result<Self, SourceError> {
        let count = self.partitions.len();
        let mut ends = Vec::with_capacity(count);
        for p in 0..count {
            let (topic, partition) = self.kafka_partition(p as u32);
            let (_, high) = (self.consumer)
                .fetch_watermarks(topic, partition, self.opts.timeout)
                .map_err(|e| unreachable(&self.opts, &e))?;
            ends.push(high);
        }
        self.eof_at = vec![None; ends.len()];
        self.end_at_start = ends;
        self.next = vec![0; count];
        self.assigned = vec![false; count];
        self.retry.get_mut().unsent = vec![None; count];
        self.resubscribe()?;
        Ok(self)
    }

    /// Subscribes to the topics known now (the whole list again: a topic
    /// that `topic-pattern` found later is added this way). Without any
    /// topic yet there is nothing to subscribe to, nor to wait for.
    pub(super) fn resubscribe(&mut self) -> Result<(), SourceError> {
        if self.topics.is_empty() {
            self.seen_assignment = true;
            return Ok(());
        }
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&topics)
            .map_err(|e| kafka_error(&self.opts, "cannot join the consumer group", &e))
    }

    /// Applies the rebalances librdkafka reported (see [`super::group`]):
    /// a revoked partition's messages taken by this poll are dropped (its
    /// next owner reads them from the committed offset); an assigned
    /// partition starts at the group's committed offset (the earliest where
    /// it has none) — or, when it comes back with a commit this consumer
    /// still holds (refused during the rebalance), at that offset. Held
    /// commits of partitions that went elsewhere are forgotten.
    pub(super) fn apply_rebalances(
        &mut self,
        chunks: &mut [Option<Chunk>],
    ) -> Result<(), SourceError> {
        for change in self.rebalances.take() {
            let (list, assigned) = match change {
                Change::Assigned(list) => (list, true),
                Change::Revoked(list) => (list, false),
            };
            if assigned {
                // Partitions librdkafka found before our own discovery did.
                for (topic, partition) in &list {
                    if self.source_partition(topic, *partition).is_none()
                        && self.opts.topics.matches(topic)
                    {
                        let p = self.register(topic, *partition);
                        self.end_at_start[p as usize] = self.high_watermark(p)?;
                    }
                }
            }
            let partitions: Vec<u32> = (list.iter())
                .filter_map(|(topic, partition)| self.source_partition(topic, *partition))
                .collect();
            let names: Vec<String> = (list.iter())
                .map(|(topic, partition)| format!("{topic}/{partition}"))
                .collect();
            let names = if names.is_empty() {
                "no partitions".to_string()
            } else {
                names.join(", ")
            };
            let group = &self.opts.group_id;
            if assigned {
                tracing::info!(
                    "{CONNECTOR}: consumer group '{group}' assigned {names} to this query"
                );
            } else {
                tracing::info!(
                    "{CONNECTOR}: consumer group '{group}' revoked {names} from this query"
                );
            }
            if assigned {
                self.seen_assignment = true;
                self.start_assigned(&partitions)?;
            }
            for &p in &partitions {
                let slot = p as usize;
                self.assigned[slot] = assigned;
                self.eof_at[slot] = None;
                if !assigned && let Some(chunk) = chunks.get_mut(slot) {
                    *chunk = None;
                }
            }
            if assigned {
                // A commit held back for a partition that went elsewhere
                // is not this consumer's to make any more.
                let unsent = &mut self.retry.get_mut().unsent;
                for (slot, next) in unsent.iter_mut().enumerate() {
                    if !self.assigned[slot] {
                        *next = None;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sets where each newly assigned partition starts.
    fn start_assigned(&mut self, partitions: &[u32]) -> Result<(), SourceError> {
        if partitions.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            let (topic, partition) = self.kafka_partition(*p);
            tpl.add_partition(topic, partition);
        }
        let committed = (self.consumer)
            .committed_offsets(tpl, self.opts.timeout)
            .map_err(|e| kafka_error(&self.opts, "cannot read the group's offsets", &e))?;
        for &p in partitions {
            let (topic, partition) = self.kafka_partition(p);
            let topic = topic.to_string();
            let topic = topic.as_str();
            let (low, high) = (self.consumer)
                .fetch_watermarks(topic, partition, self.opts.timeout)
                .map_err(|e| unreachable(&self.opts, &e))?;
            // A partition back after a rebalance whose commit this consumer
            // still holds goes on from there: the group's offset is older.
            let held = self.retry.borrow().unsent[p as usize];
            let start = match committed
                .find_partition(topic, partition)
                .map(|e| e.offset())
            {
                _ if held.is_some() => held.unwrap_or_default(),
                Some(Offset::Offset(n)) => n,
                _ => low,
            };
            self.next[p as usize] = start.clamp(low, high.max(low));
            if held.is_some() {
                // librdkafka starts at the group's offset; move it on (a
                // message it fetched before is skipped in `poll`).
                let at = Offset::Offset(self.next[p as usize]);
                if let Err(e) = self.consumer.seek(topic, partition, at, self.opts.timeout) {
                    tracing::debug!("{CONNECTOR} source: seek after a rebalance: {e}");
                }
            }
        }
        Ok(())
    }

    /// Whether this consumer reads source partition `p` now.
    pub fn is_assigned(&self, p: u32) -> bool {
        self.assigned.get(p as usize).copied().unwrap_or(false)
    }

    /// The source partitions this consumer reads now, in order: all of
    /// them, or under `assignment = 'group'` the group's share.
    pub fn assigned_partitions(&self) -> Vec<u32> {
        (self.assigned.iter().enumerate())
            .filter(|(_, a)| **a)
            .map(|(p, _)| p as u32)
            .collect()
    }

    /// Under `assignment = 'group'`: true once the group's committed
    /// offsets of every partition reached the ends seen at open (whichever
    /// consumer read them); always true otherwise.
    pub fn group_reached_start_ends(&self) -> bool {
        if self.opts.assignment == Assignment::All {
            return true;
        }
        let Ok(tpl) = self.partition_list(Offset::Invalid) else {
            return false;
        };
        let Ok(committed) = self.consumer.committed_offsets(tpl, self.opts.timeout) else {
            return false;
        };
        let committed = self.offsets_in(&committed);
        (committed.iter().zip(&self.end_at_start))
            .all(|(c, end)| *end == 0 || c.is_some_and(|c| c >= *end))
    }

    /// Moves to `positions` (per source partition, the next offset to
    /// read; `None`: a partition the checkpoint does not know, which
    /// starts at its earliest offset); the next poll assigns every
    /// partition there, if any moved.
    pub fn seek_to(&mut self, positions: &[Option<i64>]) -> Result<(), SourceError> {
        for (p, position) in positions.iter().enumerate() {
            let before = self.next[p];
            self.next[p] = match position {
                Some(next) => *next,
                None => {
                    let (topic, partition) = self.kafka_partition(p as u32);
                    let (low, _) = (self.consumer)
                        .fetch_watermarks(topic, partition, self.opts.timeout)
                        .map_err(|e| unreachable(&self.opts, &e))?;
                    low
                }
            };
            if self.next[p] != before {
                self.pending_assign = true;
                self.eof_at[p] = None;
            }
        }
        Ok(())
    }

    /// Assigns every partition at its position if that is pending.
    pub(super) fn assign_if_pending(&mut self) -> Result<(), SourceError> {
        if std::mem::take(&mut self.pending_assign) {
            self.reassign()?;
        }
        Ok(())
    }

    /// Assigns every partition again at its position (`next`). librdkafka
    /// drops what it had fetched for the old assignment.
    fn reassign(&mut self) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        for (p, next) in self.next.iter().enumerate() {
            let (topic, partition) = self.kafka_partition(p as u32);
            tpl.add_partition_offset(topic, partition, Offset::Offset(*next))
                .map_err(|e| kafka_error(&self.opts, "cannot build the assignment", &e))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| kafka_error(&self.opts, "cannot assign the partitions", &e))
    }
}
