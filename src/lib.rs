//! quiver: a streaming SQL engine on Apache Arrow.
//!
//! Records arriving in each batch interval become one immutable [`batch::Batch`]
//! of Arrow `RecordBatch`es; a window is the union of the batches it covers;
//! every continuous SQL query is planned once with DataFusion and run over that
//! union each batch. Data flows one way:
//!
//! ```text
//! source ─► decode ─► Batch ─► window state ─► query (DataFusion) ─► sink
//! ```
//!
//! [`Context`] is the entry point for embedding; the `quiver` binary is a thin
//! front end over it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), quiver::Error> {
//! use quiver::exec::{Clock, RunLimits};
//! let ctx = quiver::Context::new(quiver::Config {
//!     clock: Clock::Simulated { start_ms: 0 },
//!     limits: RunLimits { until_idle: true, ..RunLimits::default() },
//!     ..Default::default()
//! });
//! ctx.sql("CREATE STREAM bids WITH (connector = 'nexmark', events = 5000, rate = 1000)").await?;
//! let mut rows = 0;
//! if let Some(quiver::Output::Query(mut query)) = ctx.sql("SELECT count(*) FROM bids").await?.pop() {
//!     while let Some(result) = query.next().await {
//!         rows += result.num_rows(); // result.rows: Vec<RecordBatch>, one result per batch
//!     }
//!     query.finish().await?;
//! }
//! assert_eq!(rows, 5); // 5000 events at 1000/s: five one-second batches
//! # Ok(())
//! # }
//! ```

// Error enums carry DataFusion and source errors by value; they are built only
// on failure paths, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod batch;
mod catalog;
mod context;
mod error;
pub mod exec;
pub mod format;
pub mod options;
pub mod source;
pub mod sql;
pub mod window;
pub use context::{Config, Context, Output};
pub use error::Error;
pub mod bench;
pub mod sink;
