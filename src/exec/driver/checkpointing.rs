//! The driver's side of a checkpoint (`--checkpoint`; see the
//! `checkpoint` module for the files and the protocol): before a batch runs
//! it logs the batch's ranges and the sources' positions around them; after
//! it ran it writes the state (every `checkpoint_interval` batches); the
//! consumer of the results logs the commit. On start it resumes: restores
//! the newest consistent state, moves the sources after it, re-runs the
//! logged batches after it with exactly the same ranges and batch times,
//! and sends on the results of those not committed yet.

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::state::{DriverSnapshot, WatermarksSnapshot};
use super::{Driver, Polled};
use crate::batch::{Batch, InputMark};
use crate::checkpoint::{CheckpointError, OffsetsEntry, StateSnapshot, StreamEntry};
use crate::exec::ExecError;
use crate::exec::operator::{Operator, from_parts, to_parts};
use crate::report::{QueryEvent, QuerySummary};
use crate::source::PollContext;
use crate::sql::TimeDomain;

/// The driver's JSON in a state snapshot.
#[derive(Serialize, Deserialize)]
struct DriverMeta {
    next_batch_id: u64,
    next_batch_time_ms: i64,
    /// The snapshot was taken after a batch closing windows at the end of input.
    closing: bool,
    input: InputMark,
    watermarks: WatermarksMeta,
    /// batches, input, output, skipped, late, late routed, peak rows, peak bytes.
    totals: [u64; 8],
}

#[derive(Serialize, Deserialize)]
struct WatermarksMeta {
    at: Option<i64>,
    started_ms: Option<i64>,
    held_by: Option<String>,
    streams: Vec<(String, Vec<crate::window::PartitionWatermarkState>)>,
}

/// Where a resumed query carries on: the next batch's id and time, and
/// whether it is closing windows at the end of input.
pub(in crate::exec) struct Resumed {
    pub(in crate::exec) batch_id: u64,
    pub(in crate::exec) time: i64,
    pub(in crate::exec) closing: bool,
}

impl<O: Operator> Driver<O> {
    fn checkpoint_error(&self, source: CheckpointError) -> ExecError {
        ExecError::Checkpoint {
            query: self.name.to_string(),
            source,
        }
    }

    fn unusable(&self, what: String) -> ExecError {
        self.checkpoint_error(CheckpointError::Unusable(what))
    }

    /// Each source's position, in stream order (empty without a checkpoint).
    pub(super) fn positions(&self) -> Result<Vec<String>, ExecError> {
        if self.checkpoint.is_none() {
            return Ok(Vec::new());
        }
        (self.sources.iter())
            .map(|(stream, _, source)| {
                source.position().map_err(|source| ExecError::Source {
                    query: self.name.to_string(),
                    stream: stream.clone(),
                    source,
                })
            })
            .collect()
    }

    /// Logs batch `batch_id` before it runs: `polled`'s ranges, and the
    /// sources' positions `before` it and now.
    pub(super) fn log_offsets(
        &self,
        batch_id: u64,
        time: i64,
        polled: &Polled,
        before: Vec<String>,
        closing: bool,
    ) -> Result<(), ExecError> {
        let Some(ck) = &self.checkpoint else {
            return Ok(());
        };
        let after = self.positions()?;
        let streams = (self.sources.iter().zip(polled))
            .zip(before.into_iter().zip(after))
            .map(|(((stream, _, _), batch), (before, after))| StreamEntry {
                stream: stream.clone(),
                ranges: batch.offsets.clone(),
                before,
                after,
            })
            .collect();
        let entry = OffsetsEntry {
            batch_id,
            batch_time_ms: time,
            closing,
            streams,
        };
        ck.log_offsets(&entry).map_err(|e| self.checkpoint_error(e))
    }

    /// Writes the state after batch `batch_id` when one is due: the
    /// snapshot is taken here, between batches, and written to disk on the
    /// blocking pool while the next batches run (as Flink's asynchronous
    /// snapshots), at most one write at a time. Until the write is done
    /// the previous state is the newest on disk, and the offsets log still
    /// reaches back to it (retention only counts finished states), so a
    /// crash meanwhile recovers from there and replays a few more batches.
    pub(super) async fn save_state(
        &mut self,
        batch_id: u64,
        next_time: i64,
        closing: bool,
        summary: &QuerySummary,
    ) -> Result<(), ExecError> {
        let Some(ck) = self.checkpoint.clone() else {
            return Ok(());
        };
        if !ck.state_due(batch_id) {
            return Ok(());
        }
        let snapshot = self.snapshot(batch_id + 1, next_time, summary);
        let operator = (self.operator.snapshot())
            .map_err(|e| self.unusable(format!("cannot snapshot the operator: {e}")))?;
        let w = snapshot.watermarks;
        let s = &snapshot.summary;
        let meta = DriverMeta {
            next_batch_id: snapshot.next_batch_id,
            next_batch_time_ms: snapshot.next_batch_time_ms,
            closing,
            input: snapshot.input,
            watermarks: WatermarksMeta {
                at: w.at,
                started_ms: w.started_ms,
                held_by: w.held_by,
                streams: w.streams,
            },
            totals: [
                s.batches,
                s.input_rows,
                s.output_rows,
                s.skipped,
                s.late_rows,
                s.late_routed,
                s.peak_state_rows as u64,
                s.peak_state_bytes as u64,
            ],
        };
        let driver = serde_json::to_value(meta).unwrap_or_default();
        let streams = self.sources.iter().map(|(s, _, _)| s.clone());
        let sources = streams.zip(self.positions()?).collect();
        self.state_written().await?;
        self.state_write = Some(tokio::task::spawn_blocking(move || {
            // Copying the operator's rows out (open sessions) happens here,
            // off the query's path, like the encoding and the write.
            let (operator, batches) = to_parts(operator).map_err(|e| {
                CheckpointError::Unusable(format!("cannot snapshot the operator: {e}"))
            })?;
            ck.write_state(&StateSnapshot {
                batch_id,
                driver,
                operator,
                batches,
                sources,
            })
        }));
        Ok(())
    }

    /// Waits until the state write in flight (see [`Driver::save_state`]),
    /// if any, is on disk.
    pub(super) async fn state_written(&mut self) -> Result<(), ExecError> {
        let Some(write) = self.state_write.take() else {
            return Ok(());
        };
        match write.await {
            Ok(written) => written.map_err(|e| self.checkpoint_error(e)),
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => Err(self.unusable(format!("writing the state was cancelled: {join}"))),
        }
    }

    /// Restores `state` into the operator, the driver and the sources.
    fn restore_state(
        &mut self,
        state: StateSnapshot,
        summary: &mut QuerySummary,
    ) -> Result<Resumed, ExecError> {
        let meta: DriverMeta = serde_json::from_value(state.driver)
            .map_err(|e| self.unusable(format!("driver state: {e}")))?;
        let operator = from_parts(state.operator, state.batches).map_err(|e| self.unusable(e))?;
        (self.operator.restore(operator))
            .map_err(|e| self.unusable(format!("cannot restore the operator: {e}")))?;
        let t = meta.totals;
        let snapshot = DriverSnapshot {
            next_batch_id: meta.next_batch_id,
            next_batch_time_ms: meta.next_batch_time_ms,
            input: meta.input,
            watermarks: WatermarksSnapshot {
                at: meta.watermarks.at,
                started_ms: meta.watermarks.started_ms,
                held_by: meta.watermarks.held_by,
                streams: meta.watermarks.streams,
            },
            summary: QuerySummary {
                batches: t[0],
                input_rows: t[1],
                output_rows: t[2],
                skipped: t[3],
                late_rows: t[4],
                late_routed: t[5],
                peak_state_rows: t[6] as usize,
                peak_state_bytes: t[7] as usize,
                ..QuerySummary::default()
            },
        };
        let (batch_id, time, totals) =
            (self.restore(snapshot)).map_err(|e| self.unusable(e.to_string()))?;
        *summary = totals;
        for (stream, position) in &state.sources {
            self.seek(stream, position)?;
        }
        Ok(Resumed {
            batch_id,
            time,
            closing: meta.closing,
        })
    }

    fn seek(&mut self, stream: &str, position: &str) -> Result<(), ExecError> {
        let name = self.name.to_string();
        let Some((_, _, source)) = self.sources.iter_mut().find(|(s, _, _)| s == stream) else {
            return Err(self.unusable(format!(
                "the checkpoint has a position for stream '{stream}', which this query does not read"
            )));
        };
        source.seek(position).map_err(|source| ExecError::Source {
            query: name,
            stream: stream.to_string(),
            source,
        })
    }

    /// Re-reads the logged batch `entry`, exactly its ranges.
    fn reread(&mut self, entry: &OffsetsEntry) -> Result<Polled, ExecError> {
        let ctx = PollContext {
            batch_time_ms: entry.batch_time_ms,
            interval_ms: self.interval_ms,
        };
        let mut polled = Vec::new();
        let streams: Vec<_> = (self.sources.iter())
            .map(|(s, schema, _)| (s.clone(), schema.clone()))
            .collect();
        for (i, (stream, schema)) in streams.into_iter().enumerate() {
            if entry.closing {
                polled.push(Batch::empty(
                    entry.batch_id,
                    entry.batch_time_ms,
                    schema.clone(),
                ));
                continue;
            }
            let Some(logged) = entry.streams.iter().find(|s| s.stream == stream) else {
                return Err(self.unusable(format!(
                    "batch {} in the offsets log has no entry for stream '{stream}'",
                    entry.batch_id
                )));
            };
            let logged = logged.clone();
            self.seek(&stream, &logged.before)?;
            let failed = |source| ExecError::Source {
                query: self.name.to_string(),
                stream: stream.clone(),
                source,
            };
            let data = (self.sources[i].2.poll_to(&ctx, &logged.after)).map_err(failed)?;
            let batch = (data.into_batch(entry.batch_id, entry.batch_time_ms, schema)).map_err(
                |source| ExecError::Arrow {
                    query: self.name.to_string(),
                    source,
                },
            )?;
            if batch.offsets != logged.ranges {
                return Err(self.unusable(format!(
                    "re-reading batch {} of stream '{stream}' gave other ranges than the offsets \
                     log ({:?} instead of {:?})",
                    entry.batch_id, batch.offsets, logged.ranges
                )));
            }
            polled.push(batch);
        }
        Ok(polled)
    }

    /// Resumes from the checkpoint, if there is one with something in it:
    /// restores the state, re-runs the logged batches after it and sends
    /// the results of those not committed. `None`: start from the beginning.
    pub(super) async fn resume(
        &mut self,
        tx: &mpsc::Sender<QueryEvent>,
        summary: &mut QuerySummary,
    ) -> Result<Option<Resumed>, ExecError> {
        let Some(ck) = self.checkpoint.clone() else {
            return Ok(None);
        };
        let recovery = ck.recover().map_err(|e| self.checkpoint_error(e))?;
        if recovery.state.is_none() && recovery.replay.is_empty() {
            return Ok(None);
        }
        let mut resumed = match recovery.state {
            Some(state) => self.restore_state(state, summary)?,
            None => Resumed {
                batch_id: 0,
                time: self.clock.first_batch_time(self.interval_ms),
                closing: false,
            },
        };
        let event_time = self.plan.time == Some(TimeDomain::Event);
        for entry in recovery.replay {
            let polled = self.reread(&entry)?;
            let (id, time) = (entry.batch_id, entry.batch_time_ms);
            let offsets = if entry.closing {
                Vec::new()
            } else {
                self.stream_offsets(&polled)
            };
            self.input = self.input.next(time, &offsets);
            let input_rows: u64 = polled.iter().map(|b| b.num_rows() as u64).sum();
            let end_of_input = entry.closing && event_time;
            let step = self.step(id, time, polled, &offsets, end_of_input).await?;
            summary.batches += 1;
            summary.input_rows += input_rows;
            summary.late_rows += step.late_rows;
            summary.output_rows += (step.results.iter())
                .map(|r| r.num_rows() as u64)
                .sum::<u64>();
            self.save_state(id, time + self.interval_ms, entry.closing, summary)
                .await?;
            if recovery.committed.is_none_or(|c| id > c) {
                let results = step.results.len();
                for result in step.results {
                    if tx.send(QueryEvent::Result(result)).await.is_err() {
                        return Ok(None);
                    }
                }
                // Its source offsets are committed once it is handed out,
                // as a live batch's are (a closing batch reads nothing).
                if !entry.closing {
                    self.uncommitted = Some((id, offsets.clone()));
                }
                let end = self.batch_end(id, time, results, offsets, None);
                if tx.send(end).await.is_err() {
                    return Ok(None);
                }
                self.last_sent = Some(id);
            }
            resumed = Resumed {
                batch_id: id + 1,
                time: time + self.interval_ms,
                closing: entry.closing,
            };
        }
        if resumed.closing {
            // Carry on closing where the last closing batch would have.
            let last = resumed.time - self.interval_ms;
            let next = (self.operator).next_event_time(
                &self.plan,
                last,
                self.interval_ms,
                self.watermarks.current,
            );
            resumed.batch_id += ((next - last) / self.interval_ms) as u64 - 1;
            resumed.time = next;
        }
        Ok(Some(resumed))
    }
}
