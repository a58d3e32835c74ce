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

pub mod batch;
pub mod format;
pub mod options;
pub mod source;
pub mod sql;
pub mod window;
pub mod exec;
mod context;
mod error;
pub use context::{Config, Context, Output};
pub use error::Error;
pub mod sink;
