-- Word counts over the last 30 seconds, every 10 seconds: DStream's
-- window(Seconds(30), Seconds(10)). Start `nc -lk 9999` first.
-- Run: cargo run --release -- run sql/windowed_wordcount.sql
CREATE STREAM lines WITH (connector = 'socket', host = '127.0.0.1', port = 9999, format = 'text');

SELECT word, count(*) AS n, window_start, window_end
FROM (
  SELECT unnest(string_to_array(line, ' ')) AS word, window_start, window_end
  FROM HOP(lines, _batch_time, INTERVAL '10' SECOND, INTERVAL '30' SECOND)
)
WHERE word <> ''
GROUP BY word, window_start, window_end
ORDER BY n DESC, word;
