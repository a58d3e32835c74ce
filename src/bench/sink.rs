//! `quiver bench sink`: the Parquet file sink writing the results of
//! consecutive batches, in rows/s and MB/s, against one bare `ArrowWriter`
//! writing the same batches with the same properties in the same run; and the
//! number of files a 10-minute run at 1 s batches leaves with the default
//! rollover, against the goal of one file per partition per rollover interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;

use quiver::nexmark::{self, NexmarkGenerator, NexmarkKind};
use quiver::{Config, Context, DEFAULT_SIMULATED_START_MS};

use super::Measurement;

/// A scratch directory for a benchmark's files, removed on drop.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new(name: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("quiver-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `batches` (one `Vec` per stream batch) through the Parquet sink with
/// default options; returns (elapsed, bytes written).
fn write_with_sink(
    batches: &[Vec<RecordBatch>],
    dir: &std::path::Path,
) -> anyhow::Result<(Duration, u64)> {
    use quiver::{Options, Progress, QueryResult, SinkDef};
    let schema = nexmark::schema(NexmarkKind::Bid);
    let def = SinkDef::new(
        "bench",
        "parquet",
        schema.clone(),
        Options::new([("path", dir.display().to_string())]),
    );
    let started = Instant::now();
    let mut sink = quiver::open_sink(&def)?;
    for (id, rows) in batches.iter().enumerate() {
        sink.write(&QueryResult {
            query: Arc::from("bench"),
            batch_id: id as u64,
            batch_time_ms: DEFAULT_SIMULATED_START_MS + id as i64 * 1000,
            window: None,
            schema: schema.clone(),
            rows: rows.clone(),
            progress: Progress::default(),
            input: Default::default(),
            offsets: Vec::new(),
        })?;
    }
    sink.close()?;
    Ok((started.elapsed(), parquet_bytes(dir)?))
}

/// Bytes of the Parquet files in `dir` (what the sink's `bytes` status counts:
/// finished data files, not its journal).
fn parquet_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".parquet") {
            bytes += entry.metadata()?.len();
        }
    }
    Ok(bytes)
}

/// Writes the same batches into one file with a bare `ArrowWriter` and the
/// sink's properties (zstd, 1M-row row groups), fsynced as the sink does.
fn write_with_arrow_writer(
    batches: &[Vec<RecordBatch>],
    dir: &std::path::Path,
) -> anyhow::Result<(Duration, u64)> {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::Compression;
    use datafusion::parquet::file::properties::WriterProperties;
    let started = Instant::now();
    let file = std::fs::File::create(dir.join("bare.parquet"))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(Default::default()))
        .set_max_row_group_row_count(Some(1024 * 1024))
        .build();
    let mut writer = ArrowWriter::try_new(file, nexmark::schema(NexmarkKind::Bid), Some(props))?;
    for batch in batches.iter().flatten() {
        writer.write(batch)?;
    }
    let file = writer.into_inner()?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    Ok((started.elapsed(), bytes))
}

/// Parquet sink throughput against a bare `ArrowWriter` over the same bids,
/// best of three alternating rounds each (the machine is shared and noisy).
pub fn sink(events: u64, events_per_batch: u64) -> anyhow::Result<Vec<Measurement>> {
    let generator = NexmarkGenerator::new(7, 1, DEFAULT_SIMULATED_START_MS);
    let per_batch = events_per_batch.max(1);
    let batches: Vec<Vec<RecordBatch>> = (0..events.div_ceil(per_batch))
        .map(|i| {
            generator.generate(
                NexmarkKind::Bid,
                i * per_batch,
                ((i + 1) * per_batch).min(events),
            )
        })
        .collect();
    let rows: usize = batches.iter().flatten().map(RecordBatch::num_rows).sum();
    let memory: usize = batches
        .iter()
        .flatten()
        .map(RecordBatch::get_array_memory_size)
        .sum();
    let (mut best_sink, mut best_bare) = (Duration::MAX, Duration::MAX);
    let (mut sink_bytes, mut bare_bytes) = (0, 0);
    for _ in 0..3 {
        let dir = ScratchDir::new("bare")?;
        let (elapsed, bytes) = write_with_arrow_writer(&batches, &dir.0)?;
        (best_bare, bare_bytes) = (best_bare.min(elapsed), bytes);
        let dir = ScratchDir::new("sink")?;
        let (elapsed, bytes) = write_with_sink(&batches, &dir.0)?;
        (best_sink, sink_bytes) = (best_sink.min(elapsed), bytes);
    }
    let per_s = |n: f64, d: Duration| n / d.as_secs_f64();
    let mb = memory as f64 / 1e6;
    Ok(vec![
        Measurement {
            name: format!(
                "parquet sink, {} batches of {per_batch} events ({rows} bids)",
                batches.len()
            ),
            quiver: per_s(rows as f64, best_sink),
            baseline: per_s(rows as f64, best_bare),
            unit: "rows/s",
        },
        Measurement {
            name: format!("  same, Arrow input MB/s ({mb:.0} MB in memory)"),
            quiver: per_s(mb, best_sink),
            baseline: per_s(mb, best_bare),
            unit: "MB/s",
        },
        Measurement {
            name: "  same, bytes on disk".into(),
            quiver: sink_bytes as f64 / 1e6,
            baseline: bare_bytes as f64 / 1e6,
            unit: "MB",
        },
    ])
}

/// Files left by a 10-minute run (600 batches of 1 s, simulated clock) of
/// `SELECT *, auction % 4 AS bucket FROM bids` into a Parquet sink
/// partitioned by `bucket` with the default rollover (128 MiB / 1 min),
/// against the goal: 4 partitions × 10 intervals.
pub async fn sink_file_count() -> anyhow::Result<Measurement> {
    let dir = ScratchDir::new("files")?;
    let ctx = Context::new(Config::bounded(Duration::from_secs(1)));
    ctx.sql("CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', events = 60000, rate = 100, seed = 7)")
        .await?;
    ctx.sql(&format!(
        "CREATE SINK bench AS SELECT *, auction % 4 AS bucket FROM bids \
         WITH (connector = 'parquet', path = '{}', partition_by = 'bucket')",
        dir.0.display()
    ))
    .await?;
    let status = ctx.background().wait_all().await;
    if let Some(failed) = status.iter().find_map(|s| s.error.clone()) {
        anyhow::bail!("the sink benchmark query failed: {failed}");
    }
    let mut files = 0;
    for partition in std::fs::read_dir(&dir.0)? {
        let partition = partition?;
        if partition
            .file_name()
            .to_string_lossy()
            .starts_with("bucket=")
        {
            files += std::fs::read_dir(partition.path())?
                .filter_map(Result::ok)
                .filter(|f| f.file_name().to_string_lossy().ends_with(".parquet"))
                .count();
        }
    }
    Ok(Measurement {
        name: "parquet sink files, 10 min at 1 s batches, 4 partitions".into(),
        quiver: files as f64,
        baseline: 40.0,
        unit: "files",
    })
}
