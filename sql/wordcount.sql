-- Spark Streaming's NetworkWordCount as SQL: start `nc -lk 9999`, type lines,
-- and every batch prints that batch's word counts (reduceByKey + print()).
-- Run: cargo run --release -- run sql/wordcount.sql
CREATE STREAM lines WITH (connector = 'socket', host = '127.0.0.1', port = 9999, format = 'text');

SELECT word, count(*) AS n
FROM (SELECT unnest(string_to_array(line, ' ')) AS word FROM lines)
WHERE word <> ''
GROUP BY word
ORDER BY n DESC, word;
