-- The default job: a windowed aggregate over the built-in Nexmark generator.
-- Every 2 seconds, the bids of the last 10 seconds per channel (processing time).
-- Run: cargo run --release -- run sql/demo.sql      (Ctrl-C stops it)
CREATE STREAM bids WITH (connector = 'nexmark', kind = 'bid', rate = 5000, seed = 1);

SELECT channel, count(*) AS bids, max(price) AS top_price, window_start, window_end
FROM HOP(bids, _batch_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
GROUP BY channel, window_start, window_end
ORDER BY bids DESC, channel
LIMIT 5;
