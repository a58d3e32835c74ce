-- Writing Parquet: bids and top price per channel every 10 seconds, appended to
-- rolling Parquet files (one per minute of batches), partitioned by day
-- (out/channel_counts/dt=2026-01-01/...), readable by DuckDB, pyarrow, Spark and
-- DataFusion while the query runs: files appear only when complete.
-- Run: cargo run --release -- run sql/parquet_sink.sql --until-idle
--      (add --clock simulated to run the two minutes of events at full speed)
CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', rate = 1000, events = 120000, seed = 1);

CREATE SINK channel_counts AS
  SELECT channel, count(*) AS bids, max(price) AS top_price, window_start, window_end,
         CAST(window_start AS DATE) AS dt
  FROM TUMBLE(bids, _batch_time, INTERVAL '10' SECOND)
  GROUP BY channel, window_start, window_end
  WITH (connector = 'parquet', path = 'out/channel_counts', partition_by = 'dt',
        rollover_interval = '1min', compression = 'zstd');
