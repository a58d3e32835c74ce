//! The hub of a `<name>_late` stream: where the late rows that event-time
//! queries over `<name>` find (`late_policy = 'side'`, see `exec::late`)
//! meet the sources of `<name>_late` (the `late` connector, [`super::LateSource`]).
//!
//! The hub is a runtime object of the session (its registry keys it by the
//! late stream's name; catalog definitions do not hold it), keeps at most
//! [`super::LATE_BUFFER_ROWS`] rows (oldest dropped first, with a warning when a
//! subscriber had not read them), and hands a subscriber the rows published
//! at or after its first batch time — so on the simulated clock, where every
//! query starts at the same time, a reader declared after the writer still
//! sees every late row.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

/// Where late rows of one stream meet their readers.
pub struct LateHub {
    stream: String,
    schema: SchemaRef,
    capacity_rows: usize,
    state: Mutex<HubState>,
    changed: tokio::sync::Notify,
}

impl std::fmt::Debug for LateHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("LateHub")
            .field("stream", &self.stream)
            .field("rows", &state.rows)
            .field("publishers", &state.publishers.len())
            .field("subscribers", &state.subscribers.len())
            .finish()
    }
}

#[derive(Default)]
struct HubState {
    log: VecDeque<Published>,
    rows: usize,
    next_seq: u64,
    /// Next unread sequence number of each live subscriber.
    subscribers: BTreeMap<u64, u64>,
    next_subscriber: u64,
    /// Live publishers: the time of the next batch each will publish (every
    /// row with an earlier time is in the log).
    publishers: BTreeMap<u64, i64>,
    next_publisher: u64,
    had_publisher: bool,
    sealed: bool,
}

impl HubState {
    /// True when every row with a time before `time_ms` has been published.
    fn published_before(&self, time_ms: i64) -> bool {
        (self.had_publisher || self.sealed) && self.publishers.values().all(|next| *next >= time_ms)
    }
}

struct Published {
    seq: u64,
    time_ms: i64,
    batch: RecordBatch,
}

impl LateHub {
    /// A hub for the late stream `stream` (e.g. `bids_late`) whose rows have
    /// `schema`, keeping at most `capacity_rows` rows.
    pub fn new(stream: &str, schema: SchemaRef, capacity_rows: usize) -> Self {
        Self {
            stream: stream.to_string(),
            schema,
            capacity_rows,
            state: Mutex::new(HubState::default()),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Name of the late stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Schema of the late rows (the stream's columns, then `query`).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Registers a query whose first batch is at `first_ms` as a publisher:
    /// readers wait for its batches and are not drained while it lives.
    /// Dropping the guard ends the registration.
    pub fn publisher(self: &Arc<Self>, first_ms: i64) -> LatePublisher {
        let id = {
            let mut state = lock(&self.state);
            let id = state.next_publisher;
            state.next_publisher += 1;
            state.publishers.insert(id, first_ms);
            state.had_publisher = true;
            id
        };
        self.changed.notify_waiters();
        LatePublisher {
            hub: self.clone(),
            id,
        }
    }

    /// Publisher `id` (see [`LatePublisher::id`]) has published everything
    /// before `next_ms`.
    pub(crate) fn advance(&self, id: u64, next_ms: i64) {
        if let Some(next) = lock(&self.state).publishers.get_mut(&id) {
            *next = (*next).max(next_ms);
        }
        self.changed.notify_waiters();
    }

    /// No more publishers will register (the end of a `quiver run` script):
    /// readers neither wait for one nor stay undrained when none ever came.
    pub fn seal(&self) {
        lock(&self.state).sealed = true;
        self.changed.notify_waiters();
    }

    /// Waits until every row published for batches before `time_ms` is in:
    /// each live publisher has run its batches before that time (and one has
    /// registered, or the session said none will). This makes what a reader's
    /// batch holds independent of how the queries' tasks are scheduled.
    pub async fn wait_published_before(&self, time_ms: i64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if lock(&self.state).published_before(time_ms) {
                return;
            }
            changed.await;
        }
    }

    /// Adds the late rows a query found in its batch at `time_ms`. Drops the
    /// oldest rows beyond the capacity, warning when a reader had not read them.
    pub fn publish(&self, time_ms: i64, batch: RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        let mut state = lock(&self.state);
        let seq = state.next_seq;
        state.next_seq += 1;
        state.rows += batch.num_rows();
        state.log.push_back(Published {
            seq,
            time_ms,
            batch,
        });
        let mut lost = 0;
        while state.rows > self.capacity_rows && state.log.len() > 1 {
            let Some(oldest) = state.log.pop_front() else {
                break;
            };
            state.rows -= oldest.batch.num_rows();
            if state.subscribers.values().any(|next| *next <= oldest.seq) {
                lost += oldest.batch.num_rows();
            }
        }
        if lost > 0 {
            tracing::warn!(
                "stream {}: more than {} late rows unread; dropped the {lost} oldest before every reader had them",
                self.stream,
                self.capacity_rows
            );
        }
    }

    /// A reader of the late stream; it sees rows published at or after the
    /// time of its first batch.
    pub fn subscribe(self: &Arc<Self>) -> LateSubscription {
        let mut state = lock(&self.state);
        let id = state.next_subscriber;
        state.next_subscriber += 1;
        state.subscribers.insert(id, 0);
        LateSubscription {
            hub: self.clone(),
            id,
            from_ms: None,
            pending: VecDeque::new(),
        }
    }
}

/// Keeps a query registered as a publisher of a hub until dropped. A query's
/// handle holds it, so a reader is drained only after the publishing query's
/// results were consumed.
#[derive(Debug)]
pub struct LatePublisher {
    hub: Arc<LateHub>,
    id: u64,
}

impl LatePublisher {
    /// The hub this registration is with.
    pub(crate) fn hub(&self) -> &Arc<LateHub> {
        &self.hub
    }

    /// The registration's id in its hub, for [`LateHub::advance`].
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for LatePublisher {
    fn drop(&mut self) {
        lock(&self.hub.state).publishers.remove(&self.id);
        self.hub.changed.notify_waiters();
    }
}

/// One reader's position in a hub.
#[derive(Debug)]
pub struct LateSubscription {
    hub: Arc<LateHub>,
    id: u64,
    from_ms: Option<i64>,
    /// Rows taken from the log whose time has not come yet (a publisher ran
    /// ahead of this reader), oldest first.
    pending: VecDeque<(i64, RecordBatch)>,
}

impl LateSubscription {
    /// The rows published for batches before `batch_time_ms` not taken yet,
    /// from the first call's `batch_time_ms` on.
    pub fn take(&mut self, batch_time_ms: i64) -> Vec<RecordBatch> {
        let from = *self.from_ms.get_or_insert(batch_time_ms);
        {
            let mut state = lock(&self.hub.state);
            let next = state.subscribers.get(&self.id).copied().unwrap_or(0);
            self.pending.extend(
                state
                    .log
                    .iter()
                    .filter(|p| p.seq >= next && p.time_ms >= from)
                    .map(|p| (p.time_ms, p.batch.clone())),
            );
            let end = state.next_seq;
            state.subscribers.insert(self.id, end);
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(time, _)| *time < batch_time_ms);
        self.pending = later.into();
        due.into_iter().map(|(_, batch)| batch).collect()
    }

    /// True when every publisher has ended (and one existed, or the session
    /// said no more will come) and this reader has read everything.
    pub fn is_drained(&self) -> bool {
        let state = lock(&self.hub.state);
        let next = state.subscribers.get(&self.id).copied().unwrap_or(0);
        let from = self.from_ms.unwrap_or(i64::MIN);
        state.publishers.is_empty()
            && (state.had_publisher || state.sealed)
            && self.pending.is_empty()
            && !state.log.iter().any(|p| p.seq >= next && p.time_ms >= from)
    }
}

impl Drop for LateSubscription {
    fn drop(&mut self) {
        lock(&self.hub.state).subscribers.remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        super::super::late_schema(&Schema::new(vec![Field::new("v", DataType::Int64, false)]))
            .unwrap()
    }

    fn rows(values: &[i64]) -> RecordBatch {
        let v = Arc::new(Int64Array::from(values.to_vec()));
        let q = Arc::new(StringArray::from(vec!["q"; values.len()]));
        RecordBatch::try_new(schema(), vec![v, q]).unwrap()
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                a.values().to_vec()
            })
            .collect()
    }

    #[test]
    fn a_subscriber_sees_rows_from_its_first_batch_time_once_in_later_batches() {
        let hub = Arc::new(LateHub::new("s_late", schema(), 100));
        hub.publish(1_000, rows(&[1]));
        let mut early = hub.subscribe();
        hub.publish(2_000, rows(&[2]));
        // Subscribed later, but its first batch is at 2 s: it sees row 2 only.
        let mut late = hub.subscribe();
        // Rows found in the batch at 1 s are for readers' batches after it.
        assert!(early.take(1_000).is_empty());
        assert_eq!(values(&early.take(2_000)), [1]);
        assert!(late.take(2_000).is_empty());
        assert_eq!(values(&early.take(3_000)), [2]);
        assert_eq!(values(&late.take(3_000)), [2]);
        hub.publish(3_000, rows(&[3, 4]));
        // A publisher ahead of the reader: its rows wait for their batch.
        hub.publish(5_000, rows(&[5]));
        assert_eq!(values(&early.take(4_000)), [3, 4]);
        assert!(early.take(5_000).is_empty());
        assert!(!early.is_drained());
        assert_eq!(values(&early.take(6_000)), [5]);
        assert_eq!(values(&late.take(6_000)), [3, 4, 5]);
    }

    #[test]
    fn readers_wait_until_publishers_ran_the_batches_before_theirs() {
        let hub = Arc::new(LateHub::new("s_late", schema(), 100));
        let ready = |t| lock(&hub.state).published_before(t);
        assert!(!ready(0), "no publisher yet, and the session is not sealed");
        let publisher = hub.publisher(1_000);
        assert!(ready(1_000) && !ready(1_001));
        hub.advance(publisher.id, 2_000);
        assert!(ready(2_000) && !ready(3_000));
        drop(publisher);
        assert!(ready(i64::MAX));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let other = Arc::new(LateHub::new("t_late", schema(), 100));
        let waiting = other.clone();
        runtime.block_on(async move {
            let wait = tokio::spawn(async move { waiting.wait_published_before(5_000).await });
            tokio::task::yield_now().await;
            assert!(!wait.is_finished());
            other.seal();
            wait.await.unwrap();
        });
    }

    #[test]
    fn drained_once_publishers_end_and_everything_is_read() {
        let hub = Arc::new(LateHub::new("s_late", schema(), 100));
        let mut reader = hub.subscribe();
        assert!(reader.take(0).is_empty());
        // No publisher yet, and more may come.
        assert!(!reader.is_drained());
        let publisher = hub.publisher(0);
        hub.publish(0, rows(&[1]));
        drop(publisher);
        assert!(!reader.is_drained(), "row 1 is unread");
        assert_eq!(values(&reader.take(1_000)), [1]);
        assert!(reader.is_drained());

        let other = Arc::new(LateHub::new("t_late", schema(), 100));
        let mut reader = other.subscribe();
        reader.take(0);
        other.seal();
        assert!(reader.is_drained(), "sealed: no publisher will come");
    }

    #[test]
    fn memory_is_bounded_by_dropping_the_oldest_rows() {
        let hub = Arc::new(LateHub::new("s_late", schema(), 3));
        let mut reader = hub.subscribe();
        reader.take(0);
        hub.publish(0, rows(&[1, 2]));
        hub.publish(0, rows(&[3]));
        hub.publish(0, rows(&[4, 5]));
        assert_eq!(values(&reader.take(1)), [3, 4, 5]);
        // The newest batch is kept even when it alone exceeds the capacity.
        hub.publish(0, rows(&[6, 7, 8, 9]));
        assert_eq!(values(&reader.take(2)), [6, 7, 8, 9]);
        drop(reader);
        assert_eq!(lock(&hub.state).subscribers.len(), 0);
    }
}
