//! Late rows as a stream: a stream declared with `late_policy = 'side'` gets
//! a companion stream `<name>_late`, whose rows are the late rows that the
//! event-time queries over `<name>` find (with the query's name in a `query`
//! column). The queries publish them to the late stream's [`LateHub`]
//! (`exec::late` routes them); the `late` connector's [`LateSource`] reads
//! them. Drained once every publishing query has ended and its rows were
//! read.
//!
//! The hub is a runtime object of the session, kept in its registry under
//! the late stream's name (the catalog's [`super::StreamDef`] holds only the
//! definition); a query opening a `<name>_late` source subscribes to it.

mod hub;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

pub use hub::{LateHub, LatePublisher, LateSubscription};

use super::{PollContext, Source, SourceData, SourceError};
use crate::batch::SourceOffset;

/// Suffix of the side-output stream's name: late rows of `bids` go to `bids_late`.
pub const LATE_SUFFIX: &str = "_late";

/// The column of a `<name>_late` stream naming the query that found the row
/// late (each query has its own watermark, so each decides for itself).
pub const QUERY_COLUMN: &str = "query";

/// Rows a hub keeps before dropping the oldest: bounds memory when nobody
/// reads the late stream, or a reader falls behind.
pub const LATE_BUFFER_ROWS: usize = 100_000;

/// The session's hubs, by late stream name (`bids_late`): what a query
/// opening a late stream, or publishing to one, finds its hub in.
pub type LateHubs = std::collections::BTreeMap<String, Arc<LateHub>>;

/// The name of the late stream of `stream`: `bids` → `bids_late`.
pub fn late_stream_name(stream: &str) -> String {
    format!("{stream}{LATE_SUFFIX}")
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

/// A reader of one late stream.
pub struct LateSource {
    schema: SchemaRef,
    subscription: LateSubscription,
    /// Rows read so far: the position (a count, not replayable: the rows
    /// live only in the hub).
    read: u64,
}

impl LateSource {
    /// A new reader of `hub`, the hub of a late stream with rows of `schema`.
    pub fn open(schema: SchemaRef, hub: &Arc<LateHub>) -> Self {
        Self {
            schema,
            subscription: hub.subscribe(),
            read: 0,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::time_type;

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
}
