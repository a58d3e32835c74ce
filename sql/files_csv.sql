-- A directory of CSV files, two new files per batch; revenue per region per batch.
-- Run: cargo run --release -- run sql/files_csv.sql --until-idle --format csv
CREATE STREAM sales WITH (connector = 'files', path = 'sql/data/sales', pattern = '*.csv',
                          format = 'csv', header = true, max_files_per_batch = 2);

SELECT region, count(*) AS orders, sum(amount) AS revenue
FROM sales
GROUP BY region
ORDER BY region;
