-- KafkaWordCount over the last 30 seconds, every 10 seconds: DStream's
-- window(Seconds(30), Seconds(10)) over a topic of text lines. Start a broker
-- and create the topic first (see the README's Kafka section).
-- Run: cargo run --release -- run sql/kafka/windowed_wordcount.sql
CREATE STREAM lines WITH (connector = 'kafka', topic = 'lines',
  'bootstrap.servers' = '127.0.0.1:19092', 'group.id' = 'windowed_wordcount', format = 'text');

SELECT word, count(*) AS n, window_start, window_end
FROM (
  SELECT unnest(string_to_array(line, ' ')) AS word, window_start, window_end
  FROM HOP(lines, _batch_time, INTERVAL '10' SECOND, INTERVAL '30' SECOND)
)
WHERE word <> ''
GROUP BY word, window_start, window_end
ORDER BY n DESC, word;
