//! A continuous query as its consumers see it: [`start_query`] opens its
//! sources, picks the operator for its kind (per batch, windowed, session)
//! and starts the driver (`driver.rs`) on tokio; the [`QueryHandle`] yields
//! its [`QueryResult`]s (or, with [`QueryHandle::next_event`], its results
//! and the end of each batch, for a sink's commit) and [`Progress`], and
//! stops it.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::driver::{Driver, Watermarks};
use super::late::LateRouter;
use super::operator::{PerBatch, Session, Windowed};
use super::{Clock, ExecError};
use crate::batch::{InputMark, with_batch_time};
use crate::checkpoint::QueryCheckpoint;
use crate::report::{QueryEvent, QueryProgress, QueryResult, QuerySummary, RunLimits};
use crate::source::late::{LateHubs, LatePublisher, LateSource};
use crate::source::{self, LATE_CONNECTOR, Source};
use crate::sql::{PlanKind, StreamingPlan};

/// A running query: its results, and the means to stop it.
#[derive(Debug)]
pub struct QueryHandle {
    /// Name of the query (`query_1`, ...).
    pub name: String,
    /// Schema of its results.
    pub schema: SchemaRef,
    /// Progress after each batch, for status lines and `SHOW QUERIES`.
    pub progress: watch::Receiver<QueryProgress>,
    results: mpsc::Receiver<QueryEvent>,
    /// The id of the last batch end moved past, for the driver: then the
    /// sources commit that batch's ranges (`Source::commit`).
    handed_out: watch::Sender<Option<u64>>,
    /// The batch end returned last, handed out at the next call.
    returned_end: Option<u64>,
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<Result<QuerySummary, ExecError>>,
    /// Where the query checkpoints: its consumer logs each batch's commit.
    checkpoint: Option<Arc<QueryCheckpoint>>,
    /// Registrations as a publisher of late rows: readers of `<stream>_late`
    /// are not drained until this handle (and so every result) is done.
    _late: Vec<LatePublisher>,
}

/// A cloneable way to stop a query from elsewhere (a Ctrl-C handler).
#[derive(Debug, Clone)]
pub struct QueryStopper(Arc<watch::Sender<bool>>);

impl QueryStopper {
    /// Asks the query to stop after its current batch.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl QueryHandle {
    /// The next result, or `None` once the query has ended (batch ends are
    /// skipped).
    pub async fn next(&mut self) -> Option<QueryResult> {
        loop {
            match self.next_event().await? {
                QueryEvent::Result(result) => return Some(result),
                QueryEvent::BatchEnd(_) => continue,
            }
        }
    }

    /// The next result or batch end, or `None` once the query has ended:
    /// each batch's results come before its [`QueryEvent::BatchEnd`].
    ///
    /// Asking for the next event after a batch end says that batch is done
    /// with (a sink calls this only once its commit of the batch
    /// succeeded): the query's sources then commit the batch's ranges (a
    /// Kafka source its group offsets), and the next batch is polled only
    /// after that. A batch end followed by [`QueryHandle::finish`] or a
    /// drop instead is never committed. Cancel-safe.
    pub async fn next_event(&mut self) -> Option<QueryEvent> {
        if let Some(id) = self.returned_end.take() {
            self.handed_out.send_replace(Some(id));
        }
        let event = self.results.recv().await;
        if let Some(QueryEvent::BatchEnd(end)) = &event {
            self.returned_end = Some(end.batch_id);
        }
        event
    }

    /// The query's checkpoint (`--checkpoint`), if it has one: whoever
    /// writes its results calls [`QueryCheckpoint::commit`] with each
    /// batch once the batch's results are out (printed, committed); the
    /// query's next batch waits for that commit.
    pub fn checkpoint(&self) -> Option<Arc<QueryCheckpoint>> {
        self.checkpoint.clone()
    }

    /// A handle that can stop this query.
    pub fn stopper(&self) -> QueryStopper {
        QueryStopper(self.stop.clone())
    }

    /// Asks the query to stop after its current batch.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits for the query to end (drop or drain results first) and returns
    /// its totals or the error that ended it.
    pub async fn finish(self) -> Result<QuerySummary, ExecError> {
        drop(self.results);
        drop(self.handed_out);
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(ExecError::Arrow {
                query: self.name,
                source: datafusion::arrow::error::ArrowError::ExternalError(Box::new(join)),
            }),
        }
    }
}

/// Opens the query's sources and starts it on the current tokio runtime.
/// `hubs` are the session's hubs of the late streams the query publishes to
/// or reads (`late_policy = 'side'`). With `checkpoint`, the query logs
/// its batches and state there and resumes from what it holds.
#[allow(clippy::too_many_arguments)]
pub fn start_query(
    name: String,
    plan: StreamingPlan,
    hubs: &LateHubs,
    interval_ms: i64,
    clock: Clock,
    limits: RunLimits,
    checkpoint: Option<Arc<QueryCheckpoint>>,
) -> Result<QueryHandle, ExecError> {
    let late_inputs = LateRouter::read_hubs(&plan, &name, hubs)?;
    let mut sources = Vec::new();
    for (def, _) in &plan.streams {
        let source: Box<dyn Source> = match hubs.get(&def.name) {
            Some(hub) if def.connector == LATE_CONNECTOR => {
                Box::new(LateSource::open(def.schema.clone(), hub))
            }
            _ => source::open(def).map_err(|source| ExecError::Source {
                query: name.clone(),
                stream: def.name.clone(),
                source,
            })?,
        };
        // Sources that cannot re-read what they received resume from a
        // write-ahead log in the checkpoint.
        let source = match &checkpoint {
            Some(ck) if source::LOGGED_CONNECTORS.contains(&def.connector.as_str()) => {
                (ck.write_ahead(&def.name, source)).map_err(|source| ExecError::Checkpoint {
                    query: name.clone(),
                    source,
                })?
            }
            _ => source,
        };
        sources.push((def.name.clone(), with_batch_time(&def.schema), source));
    }
    let first_ms = clock.first_batch_time(interval_ms);
    let (late, publishers) = LateRouter::new(&plan, &name, hubs, first_ms, interval_ms)?;
    let (tx, results) = mpsc::channel(1);
    let (stop, stop_rx) = watch::channel(false);
    let (progress_tx, progress) = watch::channel(QueryProgress::default());
    let (handed_out, handed_out_rx) = watch::channel(None);
    let schema = plan.schema.clone();
    let name_arc: Arc<str> = Arc::from(name.as_str());
    let watermarks = Watermarks::new(&plan);
    macro_rules! driver {
        ($operator:expr) => {
            Driver {
                name: name_arc,
                operator: $operator,
                plan,
                sources,
                watermarks,
                late,
                late_inputs,
                interval_ms,
                clock,
                limits,
                progress: progress_tx,
                input: InputMark::default(),
                handed_out: handed_out_rx,
                uncommitted: None,
                state_write: None,
                source_commit: std::time::Duration::ZERO,
                checkpoint: checkpoint.clone(),
                last_sent: None,
            }
            .run(tx, stop_rx)
        };
    }
    // One operator per kind of query.
    let task = match &plan.kind {
        PlanKind::PerBatch => tokio::spawn(driver!(PerBatch)),
        PlanKind::Windowed(windowed) => {
            let operator = Windowed::new(windowed);
            tokio::spawn(driver!(operator))
        }
        PlanKind::Session { session, kept } => {
            let operator = Session::new(session, kept.len());
            tokio::spawn(driver!(operator))
        }
    };
    Ok(QueryHandle {
        name,
        schema,
        progress,
        results,
        handed_out,
        returned_end: None,
        stop: Arc::new(stop),
        task,
        checkpoint,
        _late: publishers,
    })
}
