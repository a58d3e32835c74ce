//! The `socket` connector: a TCP client reading newline-delimited records, as
//! Spark's `socketTextStream` (`nc -lk 9999` on the other end). It reconnects
//! with exponential backoff and says so on stderr, so a listener that is not
//! up yet, or restarts, never stops the query.

use std::sync::atomic::Ordering;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use tokio::net::TcpStream;

use super::lines::{LineChannel, pump_lines, runtime};
use super::{PollContext, Source, SourceData, SourceError};
use crate::format::{Format, FormatKind};
use crate::options::Options;

/// Options of the socket connector (besides the format options).
pub(super) const KEYS: &[&str] = &["host", "port"];

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A running socket source.
pub struct SocketSource {
    schema: SchemaRef,
    format: Format,
    address: String,
    lines: LineChannel,
}

impl SocketSource {
    /// Starts connecting to `host:port` in the background.
    pub fn open(schema: SchemaRef, options: &Options) -> Result<Self, SourceError> {
        let host = options.get("host").unwrap_or("127.0.0.1").to_string();
        let port: u16 =
            options
                .parse_opt("port")?
                .ok_or_else(|| crate::options::OptionError::Missing {
                    owner: "connector 'socket'".into(),
                    key: "port".into(),
                })?;
        let format = Format::from_options(options, FormatKind::Text)?;
        let address = format!("{host}:{port}");
        let (lines, tx, ended) = LineChannel::new();
        let target = address.clone();
        runtime()?.spawn(async move {
            let mut backoff = Duration::from_millis(100);
            while !tx.is_closed() {
                let stream = match TcpStream::connect(&target).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::warn!("socket source: cannot connect to {target}: {e}; retrying in {backoff:?}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                };
                tracing::info!("socket source: connected to {target}");
                backoff = Duration::from_millis(100);
                if !pump_lines(stream, &tx, "socket source").await {
                    return;
                }
                tracing::info!("socket source: {target} closed the connection; reconnecting");
                ended.store(true, Ordering::Release);
                tokio::time::sleep(backoff).await;
            }
        });
        Ok(Self {
            schema,
            format,
            address,
            lines,
        })
    }
}

impl Source for SocketSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll_batch(&mut self, _ctx: &PollContext) -> Result<SourceData, SourceError> {
        self.lines.drain(
            &self.format,
            &self.schema,
            &format!("socket {}", self.address),
        )
    }

    /// A socket is drained while its peer has closed the connection and every
    /// received line was taken (it keeps reconnecting unless the query stops).
    fn is_drained(&self) -> bool {
        self.lines.is_drained()
    }
}
