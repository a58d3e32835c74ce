//! Encoders: Arrow record batches into one open file, as Parquet (arrow-rs's
//! `ArrowWriter`, Arrow schema embedded so time zones and nested types survive),
//! CSV (header line per file) or NDJSON. The rolling layer decides when a
//! file ends; this layer only encodes, counts bytes and makes the file durable.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;

use super::options::{FileFormat, FileSinkOptions};

/// A file being encoded in one of the sink formats.
pub enum FormatWriter {
    /// Parquet: row groups are buffered in memory and flushed as they fill.
    Parquet(Box<ArrowWriter<File>>),
    /// CSV through a counting buffer.
    Csv(Box<csv::Writer<Counting>>, Arc<AtomicU64>),
    /// NDJSON through a counting buffer.
    Ndjson(LineDelimitedWriter<Counting>, Arc<AtomicU64>),
}

/// A buffered file writer that counts the bytes written through it.
pub struct Counting {
    inner: BufWriter<File>,
    bytes: Arc<AtomicU64>,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Counting {
    fn into_file(self) -> std::io::Result<File> {
        self.inner.into_inner().map_err(|e| e.into_error())
    }
}

/// An encoding failure, with the I/O error when there is one (disk full).
#[derive(Debug)]
pub struct EncodeError {
    /// What failed, in words.
    pub message: String,
    /// The underlying I/O error, if the failure was one.
    pub io: Option<std::io::Error>,
}

impl From<std::io::Error> for EncodeError {
    fn from(e: std::io::Error) -> Self {
        Self {
            message: e.to_string(),
            io: Some(e),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for EncodeError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        match e {
            datafusion::arrow::error::ArrowError::IoError(_, io) => io.into(),
            other => Self {
                message: other.to_string(),
                io: None,
            },
        }
    }
}

impl From<datafusion::parquet::errors::ParquetError> for EncodeError {
    fn from(e: datafusion::parquet::errors::ParquetError) -> Self {
        // The parquet crate wraps write failures in `External`; keep the
        // io::Error so disk-full and permission errors are recognised.
        let io = match &e {
            datafusion::parquet::errors::ParquetError::External(inner) => inner
                .downcast_ref::<std::io::Error>()
                .map(|io| std::io::Error::new(io.kind(), io.to_string())),
            _ => None,
        };
        Self {
            message: e.to_string(),
            io,
        }
    }
}

impl FormatWriter {
    /// Starts encoding rows of `schema` into `file`.
    pub fn new(
        file: File,
        schema: SchemaRef,
        options: &FileSinkOptions,
    ) -> Result<Self, EncodeError> {
        let bytes = Arc::new(AtomicU64::new(0));
        let counting = |file| Counting {
            inner: BufWriter::with_capacity(1 << 16, file),
            bytes: bytes.clone(),
        };
        Ok(match options.format {
            FileFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(options.compression)
                    .set_max_row_group_row_count(options.row_group_rows.or(Some(1024 * 1024)))
                    .set_created_by(format!("quiver {}", env!("CARGO_PKG_VERSION")))
                    .build();
                Self::Parquet(Box::new(ArrowWriter::try_new(file, schema, Some(props))?))
            }
            FileFormat::Csv => Self::Csv(
                Box::new(
                    csv::WriterBuilder::new()
                        .with_header(true)
                        .build(counting(file)),
                ),
                bytes.clone(),
            ),
            FileFormat::Ndjson => {
                Self::Ndjson(LineDelimitedWriter::new(counting(file)), bytes.clone())
            }
        })
    }

    /// Encodes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), EncodeError> {
        match self {
            Self::Parquet(w) => w.write(batch)?,
            Self::Csv(w, _) => w.write(batch)?,
            Self::Ndjson(w, _) => w.write(batch)?,
        }
        Ok(())
    }

    /// Bytes the file will hold if finished now (Parquet: bytes written plus
    /// the buffered row group's estimated encoded size).
    pub fn bytes(&self) -> u64 {
        match self {
            Self::Parquet(w) => (w.bytes_written() + w.in_progress_size()) as u64,
            Self::Csv(_, bytes) | Self::Ndjson(_, bytes) => bytes.load(Ordering::Relaxed),
        }
    }

    /// Writes the footer (Parquet) or flushes, then fsyncs; returns the file size.
    pub fn finish(self) -> Result<u64, EncodeError> {
        let file = match self {
            Self::Parquet(w) => w.into_inner()?,
            Self::Csv(w, _) => w.into_inner().into_file()?,
            Self::Ndjson(mut w, _) => {
                w.finish()?;
                w.into_inner().into_file()?
            }
        };
        file.sync_all()?;
        Ok(file.metadata()?.len())
    }
}
