//! Late rows under `late_policy = 'side'`. A stream declared with that
//! option gets a companion stream `<name>_late`; every event-time query over
//! the stream finds, once per batch, the stream's rows that are late for it
//! (behind its watermark minus `allowed_lateness`, or without a time) and
//! publishes them — with the query's name in a `query` column — to the
//! stream's [`LateHub`]. Queries reading `<name>_late` subscribe to the hub
//! through the internal `late` connector. Window state still drops those rows
//! per window input (that is what keeps windows correct); this module
//! counts them once per stream row and routes them (without a side output,
//! the window inputs' own counts serve, once per relation).
//!
//! The hub belongs to the session (it hangs off both streams' definitions in
//! the `Context`'s catalog), keeps at most [`LATE_BUFFER_ROWS`] rows (oldest
//! dropped first, with a warning when a subscriber had not read them), and
//! hands a subscriber the rows published at or after its first batch time —
//! so on the simulated clock, where every query starts at the same time, a
//! reader declared after the writer still sees every late row.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::array::{StringArray, new_null_array};
use datafusion::arrow::compute::kernels::boolean::or_kleene;
use datafusion::arrow::compute::kernels::cmp::lt;
use datafusion::arrow::compute::{cast, filter_record_batch, is_null};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use super::ExecError;
use crate::sql::StreamingPlan;
use crate::sql::plan::CompiledQuery;
use crate::window::LatePolicy;

/// Suffix of the side-output stream's name: late rows of `bids` go to `bids_late`.
pub const LATE_SUFFIX: &str = "_late";

/// The column of a `<name>_late` stream naming the query that found the row
/// late (each query has its own watermark, so each decides for itself).
pub const QUERY_COLUMN: &str = "query";

/// Rows a hub keeps before dropping the oldest: bounds memory when nobody
/// reads the late stream, or a reader falls behind.
pub const LATE_BUFFER_ROWS: usize = 100_000;

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

    /// Publisher `id` has published everything before `next_ms`.
    fn advance(&self, id: u64, next_ms: i64) {
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

/// The schema of `<stream>_late`: the stream's columns as queries see them
/// (`columns`, without `_batch_time`), all nullable, then `query`.
pub fn late_schema(columns: &Schema) -> Result<SchemaRef, String> {
    if columns.field_with_name(QUERY_COLUMN).is_ok() {
        return Err(format!(
            "late_policy = 'side' adds a column '{QUERY_COLUMN}' to the late stream, and the stream already has one"
        ));
    }
    let mut fields: Vec<Field> = columns
        .fields()
        .iter()
        .filter(|f| f.name() != crate::batch::BATCH_TIME_COLUMN)
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(QUERY_COLUMN, DataType::Utf8, true));
    Ok(Arc::new(Schema::new(fields)))
}

/// The rows of `batch` that are late: time (column `time_index`) NULL, or
/// before `watermark`.
pub fn late_mask(
    batch: &RecordBatch,
    time_index: usize,
    watermark: Option<i64>,
) -> Result<BooleanArray, ArrowError> {
    let times = super::event_time::event_times(batch, time_index)?;
    let missing = is_null(&times)?;
    match watermark {
        None => Ok(missing),
        // NULL < w is NULL, but there `missing` is true: no NULL remains.
        Some(w) => or_kleene(&missing, &lt(&times, &Int64Array::new_scalar(w))?),
    }
}

/// One stream an event-time query checks for late rows.
struct Checked {
    stream: String,
    time_column: String,
    /// Where its late rows go (`late_policy = 'side'`).
    hub: Option<Arc<LateHub>>,
    /// `SELECT <columns> FROM stream` over the current batch, planned at the
    /// first batch.
    select: Option<CompiledQuery>,
}

/// A query's side of late data: finds each stream's late rows once per
/// batch, counts them once per stream row, publishes them where the stream's
/// policy says.
pub(super) struct LateRouter {
    checked: Vec<Checked>,
    /// Rows routed to each late stream in the last batch.
    routed: Vec<(String, u64)>,
    /// The hubs this query publishes to, with its registration id in each.
    publishing: Vec<(Arc<LateHub>, u64)>,
    interval_ms: i64,
}

impl LateRouter {
    /// The router of a query whose first batch is at `first_ms`, and its
    /// publisher registrations (for the query's handle). Only event-time
    /// queries have late rows.
    pub(super) fn new(
        plan: &StreamingPlan,
        first_ms: i64,
        interval_ms: i64,
    ) -> (Self, Vec<LatePublisher>) {
        let mut checked = Vec::new();
        let mut publishers: Vec<LatePublisher> = Vec::new();
        if plan.time == Some(crate::sql::TimeDomain::Event) {
            for (def, _) in &plan.streams {
                let Some(watermark) = &def.watermark else {
                    continue;
                };
                let hub = match watermark.late_policy {
                    LatePolicy::Side => def.late.clone(),
                    LatePolicy::Drop => None,
                };
                if let Some(hub) = &hub {
                    publishers.push(hub.publisher(first_ms));
                }
                checked.push(Checked {
                    stream: def.name.clone(),
                    time_column: watermark.column.clone(),
                    hub,
                    select: None,
                });
            }
        }
        // Nothing to route: the inputs' drop counts (once per relation) are
        // the late count; spare the extra run over every batch.
        if publishers.is_empty() {
            checked.clear();
        }
        let publishing = publishers.iter().map(|p| (p.hub.clone(), p.id)).collect();
        let router = Self {
            checked,
            routed: Vec::new(),
            publishing,
            interval_ms,
        };
        (router, publishers)
    }

    /// The `<stream>_late` hubs a reader query waits for before its batch at
    /// `time_ms` (see [`LateHub::wait_published_before`]).
    pub(super) fn read_hubs(plan: &StreamingPlan) -> Vec<Arc<LateHub>> {
        plan.streams
            .iter()
            .filter(|(def, _)| def.connector == crate::source::LATE_CONNECTOR)
            .filter_map(|(def, _)| def.late.clone())
            .collect()
    }

    /// Rows routed to each late stream in the last batch.
    pub(super) fn routed(&self) -> Vec<(String, u64)> {
        self.routed.clone()
    }

    /// Finds the late rows of every checked stream in the batch at `time`
    /// (the stream tables hold it) against `watermark` (minus the allowed
    /// lateness), publishes them under side policy and returns their count —
    /// or `None` when the window inputs' own counts are right (no event
    /// time, or no side output).
    pub(super) async fn route(
        &mut self,
        plan: &StreamingPlan,
        query: &str,
        batch_id: u64,
        time: i64,
        watermark: Option<i64>,
    ) -> Result<Option<u64>, ExecError> {
        if self.checked.is_empty() {
            return Ok(None);
        }
        let execute = |source: DataFusionError| ExecError::Execute {
            query: query.to_string(),
            batch_id,
            source,
        };
        let arrow = |source: ArrowError| ExecError::Arrow {
            query: query.to_string(),
            source,
        };
        self.routed.clear();
        let mut total = 0;
        for checked in &mut self.checked {
            if checked.select.is_none() {
                let columns: Vec<String> = match &checked.hub {
                    Some(hub) => hub
                        .schema()
                        .fields()
                        .iter()
                        .filter(|f| f.name() != QUERY_COLUMN)
                        .map(|f| quote(f.name()))
                        .collect(),
                    None => vec![quote(&checked.time_column)],
                };
                let sql = format!(
                    "SELECT {} FROM {}",
                    columns.join(", "),
                    quote(&checked.stream)
                );
                let compiled = plan
                    .compile(&sql)
                    .await
                    .map_err(|e| execute(DataFusionError::Plan(e.to_string())))?;
                checked.select = Some(compiled);
            }
            let Some(select) = &checked.select else {
                continue;
            };
            let time_index = select
                .schema
                .index_of(&checked.time_column)
                .map_err(arrow)?;
            let mut count = 0;
            for batch in plan.run(select).await.map_err(execute)? {
                let mask = late_mask(&batch, time_index, watermark).map_err(arrow)?;
                let late = mask.true_count();
                if late == 0 {
                    continue;
                }
                count += late as u64;
                if let Some(hub) = &checked.hub {
                    let rows = filter_record_batch(&batch, &mask).map_err(arrow)?;
                    hub.publish(
                        time,
                        with_query(&rows, &hub.schema(), query).map_err(arrow)?,
                    );
                }
            }
            if let Some(hub) = &checked.hub {
                self.routed.push((hub.stream().to_string(), count));
            }
            total += count;
        }
        for (hub, id) in &self.publishing {
            hub.advance(*id, time.saturating_add(self.interval_ms));
        }
        Ok(Some(total))
    }
}

impl Drop for LateRouter {
    /// The query ran its last batch: readers need not wait for it (they stay
    /// undrained until its handle lets go of the registration).
    fn drop(&mut self) {
        for (hub, id) in &self.publishing {
            hub.advance(*id, i64::MAX);
        }
    }
}

/// `rows` in the late stream's `schema`: each column cast to its type, then
/// the `query` column.
fn with_query(
    rows: &RecordBatch,
    schema: &SchemaRef,
    query: &str,
) -> Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if field.name() == QUERY_COLUMN {
            let names = std::iter::repeat_n(query, rows.num_rows());
            columns.push(Arc::new(StringArray::from_iter_values(names)));
            continue;
        }
        let column = match rows.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => c.clone(),
            Some(c) => cast(c, field.data_type())?,
            None => new_null_array(field.data_type(), rows.num_rows()),
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns)
}

/// `name` as a quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::time_type;
    use datafusion::arrow::array::TimestampMillisecondArray;

    fn schema() -> SchemaRef {
        late_schema(&Schema::new(vec![Field::new("v", DataType::Int64, false)])).unwrap()
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
    fn late_schema_drops_batch_time_adds_query_and_refuses_a_query_column() {
        let columns = Schema::new(vec![
            Field::new("ts", time_type(), false),
            Field::new(crate::batch::BATCH_TIME_COLUMN, time_type(), false),
        ]);
        let schema = late_schema(&columns).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["ts", "query"]);
        assert!(schema.fields().iter().all(|f| f.is_nullable()));
        let clash = Schema::new(vec![Field::new("query", DataType::Utf8, true)]);
        assert!(late_schema(&clash).unwrap_err().contains("'query'"));
    }

    #[test]
    fn late_rows_are_null_times_or_before_the_watermark() {
        let ts = TimestampMillisecondArray::from(vec![Some(5), None, Some(10), Some(9)]);
        let schema = Arc::new(Schema::new(vec![Field::new("ts", time_type(), true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(ts)]).unwrap();
        let mask = late_mask(&batch, 0, Some(10)).unwrap();
        assert_eq!(mask, BooleanArray::from(vec![true, true, false, true]));
        let mask = late_mask(&batch, 0, None).unwrap();
        assert_eq!(mask, BooleanArray::from(vec![false, true, false, false]));
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
