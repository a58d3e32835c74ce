//! Consumer-group scale-out (`assignment = 'group'`): the queries of one
//! `group.id` — several `quiver run` processes — subscribe to the topics and
//! the group's coordinator splits the partitions between them; when one
//! stops (or joins), its partitions move (a rebalance).
//!
//! **Exactly once for per-batch results.** A query polls batch n+1 only
//! once batch n's results are out and its offsets are committed to the
//! group (see [`crate::source::Source::commit`]), and librdkafka runs its
//! rebalance callbacks only inside a poll. So when a partition is revoked,
//! everything this query delivered from it is committed, and the only rows
//! not yet delivered are those the current poll took. Those are *dropped*
//! (not delivered with the batch): the partition's next owner starts at the
//! committed offset and reads them. Finishing the batch early for the
//! revoked partitions instead would need its results out and committed
//! inside librdkafka's callback, before the coordinator hands the partition
//! on — a batch boundary the driver does not have. Dropping keeps every
//! row's contribution in exactly one query's output.
//!
//! The exception is a commit the group refused: during a broker outage
//! (see [`super::outage`]), or while a rebalance is under way on a
//! coordinator that refuses commits then (librdkafka's mock cluster does as
//! soon as a member joins; Kafka accepts them until this member rejoins,
//! which it does only after its revoke callback). The consumer holds such a
//! commit; a partition assigned back to it goes on from the held offset,
//! one that went elsewhere is read again from the older committed offset
//! by its new owner (at least once).
//!
//! Librdkafka's callbacks only record the changes here ([`Rebalances`]);
//! the consumer applies them after each poll call (see
//! `KafkaConsumer::apply_rebalances`), where it can reach its own state.

use std::sync::{Arc, Mutex};

use rdkafka::consumer::Rebalance;

/// One change of this consumer's partitions, as `(topic, partition)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The coordinator gave these partitions to this consumer.
    Assigned(Vec<(String, i32)>),
    /// These partitions are leaving this consumer.
    Revoked(Vec<(String, i32)>),
}

/// The changes librdkafka reported since the consumer last looked, shared
/// between the consumer's context (which records them in its callbacks)
/// and the consumer (which applies them).
#[derive(Debug, Clone, Default)]
pub struct Rebalances(Arc<Mutex<Vec<Change>>>);

impl Rebalances {
    /// Records `rebalance` (errors are logged by rdkafka itself).
    pub fn record(&self, rebalance: &Rebalance<'_>) {
        let (tpl, assigned) = match rebalance {
            Rebalance::Assign(tpl) => (tpl, true),
            Rebalance::Revoke(tpl) => (tpl, false),
            Rebalance::Error(e) => {
                tracing::warn!("kafka: rebalance failed: {e}");
                return;
            }
        };
        let partitions: Vec<(String, i32)> = (tpl.elements().iter())
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let change = if assigned {
            Change::Assigned(partitions)
        } else {
            Change::Revoked(partitions)
        };
        self.lock().push(change);
    }

    /// True when changes wait to be applied.
    pub fn is_pending(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Takes the changes recorded so far, oldest first.
    pub fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Change>> {
        // A panic while holding the lock leaves a plain Vec behind: usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
