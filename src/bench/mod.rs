//! `quiver bench`: measurements that matter to a streaming engine, each next
//! to a baseline measured in the same run (these machines are shared and
//! noisy, so ratios mean more than absolute numbers):
//!
//! - `overhead`: time per batch of a trivial query over tiny batches, against
//!   DataFusion planning and running the same SQL on the same data.
//! - `throughput`: Nexmark bids → per-batch `GROUP BY auction`, in events/s,
//!   against DataFusion running the same query once over all the events.
//! - `nexmark`: the Nexmark query files, against DataFusion computing the same
//!   results as one batch (see [`nexmark`]).
//! - `sink`: the Parquet file sink against a bare `ArrowWriter` over the same
//!   batches, and the files a 10-minute run leaves (see [`sink`]).
//! - `kafka`: JSON bid messages through the kafka source's decoding and a
//!   per-batch GROUP BY, from memory, a mock cluster and optionally a broker,
//!   against raw decoding / a bare librdkafka consumer (see [`kafka`]).
//! - `checkpoint`: Nexmark q5 and q11 with and without `--checkpoint`, the
//!   checkpoint's size, and recovery time after a kill (see [`checkpoint`]).

pub mod checkpoint;
pub mod kafka;
pub mod nexmark;
pub mod sink;

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use quiver::nexmark::{NexmarkGenerator, NexmarkKind, schema as bid_schema};
use quiver::{Config, Context, DEFAULT_SIMULATED_START_MS, Output};

/// Arguments of `quiver bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark: overhead, throughput, nexmark, sink, kafka,
    /// checkpoint, or all (overhead, throughput and sink).
    #[arg(default_value = "all", value_parser = ["overhead", "throughput", "nexmark", "sink", "kafka", "checkpoint", "all"])]
    pub which: String,
    /// Nexmark queries to run, comma-separated (`quiver bench nexmark`,
    /// default q0,q5,q7,q8,q11; `quiver bench checkpoint`, default q5,q11).
    #[arg(long, value_delimiter = ',')]
    pub query: Vec<String>,
    /// Nexmark events per second of event time (one batch per second).
    #[arg(long, default_value_t = 100_000)]
    pub rate: u64,
    /// Nexmark events for the throughput and nexmark benchmarks.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Events per batch for the throughput and sink benchmarks.
    #[arg(long, default_value_t = 100_000)]
    pub events_per_batch: u64,
    /// Batches for the overhead benchmark.
    #[arg(long, default_value_t = 2_000)]
    pub batches: u64,
    /// A Kafka broker (`HOST:PORT`) for `quiver bench kafka` to also measure
    /// against: a fresh 3-partition topic is created on it.
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: Option<String>,
    /// `quiver bench checkpoint`: the batch after which the checkpointed run
    /// is killed to time its recovery.
    #[arg(long, default_value_t = 5)]
    pub kill_after: u64,
    /// `quiver bench checkpoint`: state snapshot intervals to measure, in
    /// batches, comma-separated (`--checkpoint-interval` of each run; the
    /// logs are written every batch).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10])]
    pub state_every: Vec<u64>,
}

impl BenchArgs {
    /// `--query`, or `default` (comma-separated) when not given.
    fn queries(&self, default: &str) -> Vec<String> {
        if self.query.is_empty() {
            default.split(',').map(str::to_string).collect()
        } else {
            self.query.clone()
        }
    }
}

/// The per-batch aggregate both benchmarks run.
pub const THROUGHPUT_QUERY: &str =
    "SELECT auction, count(*) AS bids, max(price) AS top FROM bids GROUP BY auction";
/// The trivial query of the overhead benchmark.
pub const OVERHEAD_QUERY: &str = "SELECT count(*) FROM bids";

/// One measurement and its baseline.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// What was measured.
    pub name: String,
    /// quiver's figure.
    pub quiver: f64,
    /// The baseline's figure.
    pub baseline: f64,
    /// Unit of both figures.
    pub unit: &'static str,
}

impl std::fmt::Display for Measurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<42} quiver {:>12.1} {unit}   baseline {:>12.1} {unit}   ratio {:.2}",
            self.name,
            self.quiver,
            self.baseline,
            self.quiver / self.baseline,
            unit = self.unit
        )
    }
}

/// Runs the benchmarks named by `args` and prints one line per measurement.
pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if matches!(args.which.as_str(), "overhead" | "all") {
        println!("{}", overhead(args.batches).await?);
    }
    if matches!(args.which.as_str(), "throughput" | "all") {
        for m in throughput(args.events, args.events_per_batch).await? {
            println!("{m}");
        }
    }
    if args.which == "nexmark" {
        nexmark::run(&args.queries("q0,q5,q7,q8,q11"), args.events, args.rate).await?;
    }
    if args.which == "kafka" {
        kafka::run(args.events, args.events_per_batch, args.broker.as_deref()).await?;
    }
    if args.which == "checkpoint" {
        checkpoint::run(
            &args.queries("q5,q11"),
            args.events,
            args.rate,
            args.kill_after,
            &args.state_every,
        )
        .await?;
    }
    if matches!(args.which.as_str(), "sink" | "all") {
        for m in sink::sink(args.events, args.events_per_batch)? {
            println!("{m}");
        }
        println!("{}", sink::sink_file_count().await?);
    }
    Ok(())
}

fn bids_stream(events: u64, events_per_batch: u64) -> String {
    // rate = events per second, one batch per second: events_per_batch events per batch.
    format!(
        "CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', events = {events}, rate = {events_per_batch}, seed = 7)"
    )
}

/// Runs `query` over a Nexmark bid stream on a simulated clock until the
/// generator is drained; returns (batches, elapsed).
async fn run_quiver(
    query: &str,
    events: u64,
    events_per_batch: u64,
) -> anyhow::Result<(u64, Duration)> {
    let ctx = Context::new(Config::bounded(Duration::from_secs(1)));
    ctx.sql(&bids_stream(events, events_per_batch)).await?;
    let started = Instant::now();
    let Some(Output::Query(mut handle)) = ctx.sql(query).await?.pop() else {
        anyhow::bail!("benchmark query did not start a continuous query");
    };
    while handle.next().await.is_some() {}
    let summary = handle.finish().await?;
    Ok((summary.batches, started.elapsed()))
}

/// The same bids as the stream produces, generated up front.
fn pregenerated_bids(events: u64) -> Vec<RecordBatch> {
    NexmarkGenerator::new(7, 1, DEFAULT_SIMULATED_START_MS).generate(NexmarkKind::Bid, 0, events)
}

async fn datafusion_over(
    batches: Vec<Vec<RecordBatch>>,
    query: &str,
) -> anyhow::Result<SessionContext> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let table = MemTable::try_new(bid_schema(NexmarkKind::Bid), batches)?;
    ctx.register_table("bids", Arc::new(table))?;
    ctx.sql(query).await?;
    Ok(ctx)
}

/// Per-batch overhead of a trivial query over batches of 10 events.
pub async fn overhead(batches: u64) -> anyhow::Result<Measurement> {
    let (ran, elapsed) = run_quiver(OVERHEAD_QUERY, batches * 10, 10).await?;
    let quiver_us = elapsed.as_secs_f64() * 1e6 / ran.max(1) as f64;
    let data = pregenerated_bids(10);
    let ctx = datafusion_over(vec![data], OVERHEAD_QUERY).await?;
    let started = Instant::now();
    for _ in 0..batches {
        ctx.sql(OVERHEAD_QUERY).await?.collect().await?;
    }
    let baseline_us = started.elapsed().as_secs_f64() * 1e6 / batches.max(1) as f64;
    Ok(Measurement {
        name: format!("per-batch overhead ({ran} batches of 10 events)"),
        quiver: quiver_us,
        baseline: baseline_us,
        unit: "us/batch",
    })
}

/// Events per second through a per-batch GROUP BY, against one DataFusion run
/// over the same pre-generated events (and against generation alone).
pub async fn throughput(events: u64, events_per_batch: u64) -> anyhow::Result<Vec<Measurement>> {
    let (_, elapsed) = run_quiver(THROUGHPUT_QUERY, events, events_per_batch).await?;
    let quiver_eps = events as f64 / elapsed.as_secs_f64();
    let started = Instant::now();
    let data = pregenerated_bids(events);
    let generation_eps = events as f64 / started.elapsed().as_secs_f64();
    let ctx = datafusion_over(vec![data], THROUGHPUT_QUERY).await?;
    let started = Instant::now();
    ctx.sql(THROUGHPUT_QUERY).await?.collect().await?;
    let datafusion_eps = events as f64 / started.elapsed().as_secs_f64();
    Ok(vec![
        Measurement {
            name: format!("nexmark GROUP BY per batch ({events_per_batch} events/batch)"),
            quiver: quiver_eps,
            baseline: datafusion_eps,
            unit: "events/s",
        },
        Measurement {
            name: "  same, quiver vs generator alone".into(),
            quiver: quiver_eps,
            baseline: generation_eps,
            unit: "events/s",
        },
    ])
}
