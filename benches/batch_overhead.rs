//! `cargo bench`: the same measurements as `quiver bench` (per-batch overhead
//! and per-batch GROUP BY throughput, each next to DataFusion on the same data
//! in the same run; Parquet sink throughput next to a bare `ArrowWriter`).
//! Sizes can be set with QUIVER_BENCH_EVENTS.

// The benchmark code of `quiver bench`, a module of the binary, compiled
// here as well: the library's API holds no benchmark (nor clap) types.
#[path = "../src/bench/mod.rs"]
mod bench;

fn main() -> anyhow::Result<()> {
    let events = std::env::var("QUIVER_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let args = bench::BenchArgs {
        which: "all".into(),
        events,
        events_per_batch: 100_000,
        batches: 2_000,
        query: Vec::new(),
        rate: 100_000,
        broker: None,
        kill_after: 5,
        state_every: vec![1],
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench::run(&args))
}
