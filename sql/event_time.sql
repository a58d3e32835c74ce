-- Event time: the 3 auctions with the most bids in each 10 s of *bid time*,
-- every 2 s (Nexmark q5's window), over 20 000 generated events. A window
-- is emitted once the watermark (latest bid time - 4 s) passes its end;
-- a bid behind the watermark would be counted as late and dropped.
CREATE STREAM bids (WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
  WITH (connector = 'nexmark', kind = 'bid', rate = 1000, events = 20000);

SELECT auction, count(*) AS bids, window_start, window_end
FROM TABLE(HOP(TABLE bids, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end
ORDER BY bids DESC, auction
LIMIT 3;
