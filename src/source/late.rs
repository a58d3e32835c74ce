//! The `late` connector: the source of a `<name>_late` stream. It reads the
//! late rows that event-time queries over `<name>` publish to the stream's
//! hub (`late_policy = 'side'`, see `exec::late`). Drained once every
//! publishing query has ended and its rows were read. Its position is the
//! number of late rows read so far (a count, not replayable: the rows live
//! only in the hub).

use datafusion::arrow::datatypes::SchemaRef;

use super::{PollContext, Source, SourceData, SourceError, StreamDef};
use crate::batch::SourceOffset;
use crate::exec::LateSubscription;

/// A reader of one late stream.
pub struct LateSource {
    schema: SchemaRef,
    subscription: LateSubscription,
    /// Rows read so far (the position).
    read: u64,
}

impl LateSource {
    /// Subscribes to the hub of the late stream `def`.
    pub fn open(def: &StreamDef) -> Result<Self, SourceError> {
        let hub = def.late.as_ref().ok_or_else(|| {
            SourceError::Runtime(format!(
                "stream '{}' is a late-row stream without its hub",
                def.name
            ))
        })?;
        Ok(Self {
            schema: def.schema.clone(),
            subscription: hub.subscribe(),
            read: 0,
        })
    }
}

impl Source for LateSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll_batch(&mut self, ctx: &PollContext) -> Result<SourceData, SourceError> {
        let data = self.subscription.take(ctx.batch_time_ms);
        let start = self.read;
        self.read += data.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        Ok(SourceData {
            data,
            offsets: vec![SourceOffset {
                partition: "0".into(),
                start: start.to_string(),
                end: self.read.to_string(),
            }],
            ..SourceData::default()
        })
    }

    fn is_drained(&self) -> bool {
        self.subscription.is_drained()
    }
}
