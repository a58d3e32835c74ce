//! The `late` connector: the source of a `<name>_late` stream. It reads the
//! late rows that event-time queries over `<name>` publish to the stream's
//! hub (`late_policy = 'side'`, see `exec::late`). Drained once every
//! publishing query has ended and its rows were read.

use datafusion::arrow::datatypes::SchemaRef;

use super::{PollContext, Source, SourceData, SourceError, StreamDef};
use crate::exec::LateSubscription;

/// A reader of one late stream.
pub struct LateSource {
    schema: SchemaRef,
    subscription: LateSubscription,
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
        })
    }
}

impl Source for LateSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll_batch(&mut self, ctx: &PollContext) -> Result<SourceData, SourceError> {
        Ok(SourceData {
            data: self.subscription.take(ctx.batch_time_ms),
            ..SourceData::default()
        })
    }

    fn is_drained(&self) -> bool {
        self.subscription.is_drained()
    }
}
