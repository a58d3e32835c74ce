-- Spark Streaming's KafkaWordCount as SQL: a topic of text lines, split into
-- words, and every batch prints that batch's word counts. Start a broker and
-- create the topic first (see the README's Kafka section):
--   ../shared/kafka/broker.sh start 19092 && ../shared/kafka/broker.sh topic lines 3 19092
-- Run: cargo run --release -- run sql/kafka/wordcount.sql
CREATE STREAM lines WITH (connector = 'kafka', topic = 'lines',
  'bootstrap.servers' = '127.0.0.1:19092', 'group.id' = 'wordcount', format = 'text');

SELECT word, count(*) AS n
FROM (SELECT unnest(string_to_array(line, ' ')) AS word FROM lines)
WHERE word <> ''
GROUP BY word
ORDER BY n DESC, word;
