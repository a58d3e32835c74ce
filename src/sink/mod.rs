//! Sinks: where results go. Today the console (table, CSV or NDJSON on any
//! writer); file, Parquet and Kafka sinks follow the same shape.
//!
//! Data flow: source → decode → `Batch` → window state → query → **sink**.

mod console;

pub use console::{ConsoleSink, OutputFormat};
