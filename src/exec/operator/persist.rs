//! An [`OperatorSnapshot`] as a checkpoint stores it: a small JSON
//! description (kind, watermark closed at, the pane layout: each pane's
//! start and how many record batches it holds) and the record batches
//! themselves, in that order (then the open sessions' table and rows).

use datafusion::arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use super::{OperatorSnapshot, PaneSnapshot};
use crate::window::{SessionRows, SessionsSnapshot};
use datafusion::arrow::error::ArrowError;

#[derive(Serialize, Deserialize)]
struct Meta {
    kind: String,
    closed_until: Option<i64>,
    /// Per buffer: pane length, and per pane its start and batch count.
    buffers: Vec<(i64, Vec<(i64, usize)>)>,
    /// The open sessions' row batches (after their table), if any.
    session_rows: Option<usize>,
}

/// The snapshot as JSON and its record batches. Copies the open sessions'
/// rows out of the batches they are held in, so it belongs on the
/// checkpoint writer's thread.
pub(in crate::exec) fn to_parts(
    snapshot: OperatorSnapshot,
) -> Result<(serde_json::Value, Vec<RecordBatch>), ArrowError> {
    let mut batches = Vec::new();
    let buffers = (snapshot.buffers.into_iter())
        .map(|buffer| {
            let panes = (buffer.panes.into_iter())
                .map(|(start, held)| {
                    let n = held.len();
                    batches.extend(held);
                    (start, n)
                })
                .collect();
            (buffer.pane_ms, panes)
        })
        .collect();
    let session_rows = match snapshot.sessions {
        Some(s) => {
            batches.push(s.sessions);
            let rows = s.rows.into_batches()?;
            let n = rows.len();
            batches.extend(rows);
            Some(n)
        }
        None => None,
    };
    let meta = Meta {
        kind: snapshot.kind.to_string(),
        closed_until: snapshot.closed_until,
        buffers,
        session_rows,
    };
    Ok((serde_json::to_value(meta).unwrap_or_default(), batches))
}

/// The snapshot `to_parts` took apart.
pub(in crate::exec) fn from_parts(
    meta: serde_json::Value,
    batches: Vec<RecordBatch>,
) -> Result<OperatorSnapshot, String> {
    let meta: Meta = serde_json::from_value(meta).map_err(|e| format!("operator state: {e}"))?;
    let kind = match meta.kind.as_str() {
        "per_batch" => "per_batch",
        "windowed" => "windowed",
        "session" => "session",
        other => return Err(format!("operator state of an unknown kind '{other}'")),
    };
    let mut rest = batches.into_iter();
    let mut take = |n: usize| -> Result<Vec<RecordBatch>, String> {
        let taken: Vec<RecordBatch> = rest.by_ref().take(n).collect();
        if taken.len() == n {
            Ok(taken)
        } else {
            Err("operator state has fewer record batches than its description".into())
        }
    };
    let mut buffers = Vec::new();
    for (pane_ms, panes) in meta.buffers {
        let panes = (panes.into_iter())
            .map(|(start, n)| Ok((start, take(n)?)))
            .collect::<Result<_, String>>()?;
        buffers.push(PaneSnapshot { pane_ms, panes });
    }
    let sessions = match meta.session_rows {
        Some(n) => {
            let table = take(1)?.pop().ok_or("operator state lacks its sessions")?;
            Some(SessionsSnapshot {
                sessions: table,
                rows: SessionRows::copied(take(n)?),
            })
        }
        None => None,
    };
    Ok(OperatorSnapshot {
        kind,
        closed_until: meta.closed_until,
        buffers,
        sessions,
    })
}
