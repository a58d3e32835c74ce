//! Shared plumbing of line-oriented sources (socket, stdin): a background task
//! reads lines into a bounded channel; each batch drains what has arrived and
//! decodes it with the stream's format. The bound applies backpressure to the
//! reader instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::mpsc;

use super::{SourceData, SourceError};
use crate::format::Format;

/// Lines buffered between the reader task and the next batch.
pub(super) const CHANNEL_LINES: usize = 100_000;

/// The receiving end of a line reader task.
pub(super) struct LineChannel {
    rx: mpsc::Receiver<Vec<u8>>,
    /// Set by the reader when its input ended (EOF or disconnect).
    pub(super) ended: Arc<AtomicBool>,
    /// Total lines taken so far (the source's position: a batch's range is
    /// the line count before and after it).
    taken: u64,
}

impl LineChannel {
    /// A channel and the sender half for the reader task.
    pub(super) fn new() -> (Self, mpsc::Sender<Vec<u8>>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel(CHANNEL_LINES);
        let ended = Arc::new(AtomicBool::new(false));
        (
            Self {
                rx,
                ended: ended.clone(),
                taken: 0,
            },
            tx,
            ended,
        )
    }

    /// Drains every line that has arrived and decodes them.
    pub(super) fn drain(
        &mut self,
        format: &Format,
        schema: &SchemaRef,
        origin: &str,
    ) -> Result<SourceData, SourceError> {
        let mut buf = Vec::new();
        let mut lines = 0u64;
        while let Ok(line) = self.rx.try_recv() {
            buf.extend_from_slice(&line);
            buf.push(b'\n');
            lines += 1;
        }
        let start = self.taken;
        self.taken += lines;
        let mut out = SourceData {
            offsets: vec![crate::batch::SourceOffset {
                partition: origin.to_string(),
                start: start.to_string(),
                end: self.taken.to_string(),
            }],
            ..SourceData::default()
        };
        if lines > 0 {
            let decoded = format.decode(schema, &buf, false, origin)?;
            out.data.extend(decoded.batches);
            out.skipped = decoded.skipped;
        }
        Ok(out)
    }

    /// True when the input ended and every line has been taken.
    pub(super) fn is_drained(&self) -> bool {
        self.ended.load(Ordering::Acquire) && self.rx.is_empty()
    }
}

/// Errors when a line source is opened outside a tokio runtime.
pub(super) fn runtime() -> Result<tokio::runtime::Handle, SourceError> {
    tokio::runtime::Handle::try_current()
        .map_err(|e| SourceError::Runtime(format!("line sources need a tokio runtime: {e}")))
}

/// Copies lines from `reader` into `tx` until end of input. Returns false
/// when the receiving source is gone and the reader should stop for good.
pub(super) async fn pump_lines<R>(reader: R, tx: &mpsc::Sender<Vec<u8>>, origin: &str) -> bool
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    let mut reader = tokio::io::BufReader::new(reader);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => return true,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if tx.send(line).await.is_err() {
                    return false;
                }
            }
            Err(e) => {
                tracing::warn!("{origin}: read failed: {e}");
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FormatKind;
    use crate::options::Options;

    #[test]
    fn a_drain_reads_the_line_count_range_since_the_last() {
        let format = Format::from_options(&Options::new([("format", "text")]), FormatKind::Text)
            .expect("format");
        let schema = format.fixed_schema(None).expect("text schema");
        let (mut lines, tx, _) = LineChannel::new();
        let range =
            |data: &SourceData| (data.offsets[0].start.clone(), data.offsets[0].end.clone());
        for line in ["a", "b"] {
            tx.try_send(line.as_bytes().to_vec()).expect("send");
        }
        let first = lines.drain(&format, &schema, "stdin").expect("drain");
        assert_eq!(range(&first), ("0".into(), "2".into()));
        assert_eq!(first.data.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        let empty = lines.drain(&format, &schema, "stdin").expect("drain");
        assert_eq!(range(&empty), ("2".into(), "2".into()));
        tx.try_send(b"c".to_vec()).expect("send");
        let third = lines.drain(&format, &schema, "stdin").expect("drain");
        assert_eq!(range(&third), ("2".into(), "3".into()));
    }
}
