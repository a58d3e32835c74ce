//! The driver's calls into its sources that may block — polling a batch and
//! committing one — made on tokio's blocking pool: the sources move there
//! and back ([`Driver::on_sources`]), so an async worker never waits on a
//! file read, a generator or a broker.

use super::{Driver, Polled, Sources};
use crate::exec::ExecError;
use crate::exec::operator::Operator;
use crate::source::{PollContext, SourceError};

impl<O: Operator> Driver<O> {
    /// Runs `work` over the query's sources on the blocking pool and puts
    /// them back. A panic in a source is the driver's panic, as if the
    /// source had run here; a cancelled task is an error naming `doing`.
    async fn on_sources<T: Send + 'static>(
        &mut self,
        doing: &str,
        work: impl FnOnce(&str, &mut Sources) -> T + Send + 'static,
    ) -> Result<T, ExecError> {
        let mut sources = std::mem::take(&mut self.sources);
        let query = self.name.clone();
        let task = tokio::task::spawn_blocking(move || {
            let out = work(&query, &mut sources);
            (sources, out)
        });
        match task.await {
            Ok((sources, out)) => {
                self.sources = sources;
                Ok(out)
            }
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => Err(ExecError::Source {
                query: self.name.to_string(),
                stream: (self.plan.streams.iter())
                    .map(|(def, _)| def.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                source: SourceError::Runtime(format!("{doing} was cancelled: {join}")),
            }),
        }
    }

    /// Once the consumer has moved past the end of the last batch sent (its
    /// sink committed it; a foreground consumer took its results), lets each
    /// source commit that batch's ranges ([`crate::source::Source::commit`]),
    /// on the blocking pool. Waits for that: the next batch is polled only
    /// after the previous one is committed, as Spark runs a batch's output
    /// before the next batch. A consumer that goes away first (a failed
    /// sink) leaves the batch uncommitted, and returns false. A source's
    /// failure to commit is a warning: the next batch's commit covers these
    /// ranges.
    pub(super) async fn commit_handed_out(&mut self) -> Result<bool, ExecError> {
        let Some((id, offsets)) = self.uncommitted.take() else {
            return Ok(true);
        };
        let handed_out = self
            .handed_out
            .wait_for(|last| last.is_some_and(|last| last >= id))
            .await
            .is_ok();
        if !handed_out {
            return Ok(false);
        }
        let committing = std::time::Instant::now();
        self.on_sources("committing", move |query, sources| {
            for ((stream, _, source), offsets) in sources.iter_mut().zip(&offsets) {
                if let Err(e) = source.commit(&offsets.ranges) {
                    tracing::warn!("{query}, stream '{stream}': committing batch {id}: {e}");
                }
            }
        })
        .await?;
        self.source_commit = committing.elapsed();
        Ok(true)
    }

    /// Pulls every source for batch `batch_id` at `time`, on tokio's
    /// blocking pool: one [`crate::batch::Batch`] per stream, stamped with
    /// `_batch_time`.
    pub(super) async fn poll(&mut self, batch_id: u64, time: i64) -> Result<Polled, ExecError> {
        let ctx = PollContext {
            batch_time_ms: time,
            interval_ms: self.interval_ms,
        };
        self.on_sources("polling", move |query, sources| {
            poll_all(query, sources, batch_id, &ctx)
        })
        .await?
    }
}

/// Pulls every source (in `plan.streams` order) for batch `batch_id`: one
/// [`Batch`] per stream. Runs on the blocking pool.
fn poll_all(
    query: &str,
    sources: &mut Sources,
    batch_id: u64,
    ctx: &PollContext,
) -> Result<Polled, ExecError> {
    let mut polled = Vec::with_capacity(sources.len());
    for (stream, schema, source) in sources.iter_mut() {
        let data = source.poll_batch(ctx).map_err(|source| ExecError::Source {
            query: query.to_string(),
            stream: stream.clone(),
            source,
        })?;
        let batch = data
            .into_batch(batch_id, ctx.batch_time_ms, schema.clone())
            .map_err(|source| ExecError::Arrow {
                query: query.to_string(),
                source,
            })?;
        polled.push(batch);
    }
    Ok(polled)
}
