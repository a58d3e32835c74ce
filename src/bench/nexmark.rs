//! `quiver bench nexmark`: the Nexmark query files of `sql/nexmark/`, run
//! unmodified (blackhole sinks) after quiver's DDL over a bounded generated
//! input, next to DataFusion computing the same result as one batch over the
//! same events generated up front. The reference SQL spells each window out
//! with explicit arithmetic; the conformance tests check that both agree.

use std::time::{Duration, Instant};

use quiver::{Config, Context, Output};

/// quiver's Nexmark DDL (`sql/nexmark/ddl.sql`).
pub const DDL: &str = include_str!("../../sql/nexmark/ddl.sql");

/// The query files quiver runs, by name.
pub const QUERIES: &[(&str, &str)] = &[
    ("q0", include_str!("../../sql/nexmark/q0.sql")),
    ("q1", include_str!("../../sql/nexmark/q1.sql")),
    ("q2", include_str!("../../sql/nexmark/q2.sql")),
    ("q5", include_str!("../../sql/nexmark/q5.sql")),
    ("q7", include_str!("../../sql/nexmark/q7.sql")),
    ("q8", include_str!("../../sql/nexmark/q8.sql")),
    ("q11", include_str!("../../sql/nexmark/q11.sql")),
    ("q12", include_str!("../../sql/nexmark/q12.sql")),
    ("q14", include_str!("../../sql/nexmark/q14.sql")),
    ("q21", include_str!("../../sql/nexmark/q21.sql")),
    ("q22", include_str!("../../sql/nexmark/q22.sql")),
];

/// The DDL with `events` events at `rate` events per second of event time.
pub fn ddl(events: u64, rate: u64) -> String {
    DDL.replace(
        "'events.num' = '1000000'",
        &format!("'events.num' = '{events}'"),
    )
    .replace(
        "'first-event.rate' = '100000'",
        &format!("'first-event.rate' = '{rate}'"),
    )
    .replace(
        "'next-event.rate' = '100000'",
        &format!("'next-event.rate' = '{rate}'"),
    )
}

/// The text of query file `name`.
pub fn query(name: &str) -> Option<&'static str> {
    QUERIES.iter().find(|(n, _)| *n == name).map(|(_, q)| *q)
}

/// Views over a table `all_events` holding every generated event, under the
/// names the reference SQL reads.
pub const REFERENCE_VIEWS: &str = "
CREATE VIEW all_person AS SELECT person.id AS id, person.name AS name, `dateTime` FROM all_events WHERE event_type = 0;
CREATE VIEW all_auction AS SELECT auction.id AS id, auction.seller AS seller, `dateTime` FROM all_events WHERE event_type = 1;
CREATE VIEW all_bid AS SELECT bid.auction AS auction, bid.bidder AS bidder, bid.price AS price, bid.channel AS channel,
    bid.url AS url, `dateTime`, bid.extra AS extra FROM all_events WHERE event_type = 2";

/// The result of query `name` computed over all events at once, with each
/// window spelled out (`t` is the event time in ms; a HOP(2 s, 10 s) window
/// of a bid starts at `(t / 2000 - k) * 2000` for k in 0..5, a 10 s TUMBLE
/// at `t / 10000 * 10000`). Reads `all_person`, `all_auction`, `all_bid`.
pub fn reference_sql(name: &str) -> Option<&'static str> {
    Some(match name {
        "q0" => "SELECT auction, bidder, price, `dateTime`, extra FROM all_bid",
        "q1" => {
            "SELECT auction, bidder, CAST(0.908 * price AS DECIMAL(23, 3)), `dateTime`, extra FROM all_bid"
        }
        "q2" => "SELECT auction, price FROM all_bid WHERE auction % 123 = 0",
        "q5" => {
            "WITH b AS (SELECT auction, CAST(`dateTime` AS BIGINT) AS t FROM all_bid),
                  w AS (SELECT auction, (t / 2000 - k) * 2000 AS ws FROM b CROSS JOIN (VALUES (0), (1), (2), (3), (4)) AS ks(k)),
                  c AS (SELECT auction, ws, count(*) AS num FROM w GROUP BY auction, ws),
                  m AS (SELECT ws, max(num) AS maxn FROM c GROUP BY ws)
             SELECT c.auction, c.num FROM c JOIN m ON c.ws = m.ws AND c.num >= m.maxn"
        }
        // The file inserts (auction, price, bidder, ...) by position.
        "q7" => {
            "WITH b AS (SELECT *, CAST(`dateTime` AS BIGINT) AS t FROM all_bid),
                  m AS (SELECT max(price) AS maxprice, (t / 10000) * 10000 + 10000 AS we FROM b GROUP BY t / 10000)
             SELECT b.auction, b.price, b.bidder, b.`dateTime`, b.extra
             FROM b JOIN m ON b.price = m.maxprice
             WHERE b.t BETWEEN m.we - 10000 AND m.we"
        }
        "q8" => {
            "WITH p AS (SELECT id, name, CAST(`dateTime` AS BIGINT) / 10000 AS w FROM all_person GROUP BY id, name, CAST(`dateTime` AS BIGINT) / 10000),
                  a AS (SELECT seller, CAST(`dateTime` AS BIGINT) / 10000 AS w FROM all_auction GROUP BY seller, CAST(`dateTime` AS BIGINT) / 10000)
             SELECT p.id, p.name, to_timestamp_millis(p.w * 10000) FROM p JOIN a ON p.id = a.seller AND p.w = a.w"
        }
        "q11" => {
            "WITH b AS (SELECT bidder, CAST(`dateTime` AS BIGINT) AS t FROM all_bid),
                  n AS (SELECT bidder, t, CASE WHEN t - lag(t) OVER (PARTITION BY bidder ORDER BY t) < 10000 THEN 0 ELSE 1 END AS new FROM b),
                  s AS (SELECT bidder, t, sum(new) OVER (PARTITION BY bidder ORDER BY t ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS sid FROM n)
             SELECT bidder, count(*), to_timestamp_millis(min(t)), to_timestamp_millis(max(t) + 10000) FROM s GROUP BY bidder, sid"
        }
        _ => return None,
    })
}

fn context() -> Context {
    Context::new(Config::bounded(Duration::from_secs(1)))
}

/// A context holding every generated event in table `all_events` and the
/// reference views over it; returns it with the time generation took.
pub async fn pregenerated(events: u64, rate: u64) -> anyhow::Result<(Context, Duration)> {
    let ctx = context();
    ctx.sql(&ddl(events, rate)).await?;
    let started = Instant::now();
    ctx.sql("CREATE SINK all_events AS SELECT * FROM datagen WITH (connector = 'memory')")
        .await?;
    ctx.background().wait_all().await;
    let generation = started.elapsed();
    ctx.sql(REFERENCE_VIEWS).await?;
    Ok((ctx, generation))
}

/// Runs `sql` as a one-off query on `ctx`; returns its row count and time.
pub async fn time_reference(ctx: &Context, sql: &str) -> anyhow::Result<(usize, Duration)> {
    let started = Instant::now();
    let rows = match ctx.sql(sql).await?.pop() {
        Some(Output::Rows(rows)) => rows.iter().map(|b| b.num_rows()).sum(),
        _ => anyhow::bail!("the reference query returned no rows"),
    };
    Ok((rows, started.elapsed()))
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

/// Runs each query of `names` over `events` events and prints quiver's
/// events/s, batch latency and peak state next to DataFusion's one batch.
pub async fn run(names: &[String], events: u64, rate: u64) -> anyhow::Result<()> {
    let (baseline, generation) = pregenerated(events, rate).await?;
    println!(
        "nexmark, {events} events at {rate} events/s of event time, 1 s batches; generating them: {:.2} s ({:.2}M events/s)",
        generation.as_secs_f64(),
        events as f64 / generation.as_secs_f64() / 1e6
    );
    for name in names {
        let Some(text) = query(name) else {
            let known: Vec<&str> = QUERIES.iter().map(|(n, _)| *n).collect();
            anyhow::bail!(
                "unknown Nexmark query '{name}'; quiver runs: {}",
                known.join(", ")
            );
        };
        let ctx = context();
        ctx.sql(&ddl(events, rate)).await?;
        let started = Instant::now();
        ctx.sql(text).await?;
        let statuses = ctx.background().wait_all().await;
        let elapsed = started.elapsed();
        let Some(status) = statuses.into_iter().next() else {
            anyhow::bail!("{name} started no query");
        };
        if let Some(error) = status.error {
            anyhow::bail!("{name} failed: {error}");
        }
        let s = &status.summary;
        let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
        let quiver_eps = events as f64 / elapsed.as_secs_f64();
        let mut line = format!(
            "{name:<4} quiver {:>7.2} s {:>7.2}M events/s  batch p50 {:>7.1} ms p99 {:>7.1} ms  peak state {} rows ({:.1} MB)  {} rows out",
            elapsed.as_secs_f64(),
            quiver_eps / 1e6,
            ms(s.latency.percentile(0.5)),
            ms(s.latency.percentile(0.99)),
            s.peak_state_rows,
            mb(s.peak_state_bytes),
            s.output_rows
        );
        if let Some(sql) = reference_sql(name) {
            let (rows, took) = time_reference(&baseline, sql).await?;
            let df_eps = events as f64 / took.as_secs_f64();
            line += &format!(
                "  | DataFusion one batch {:>6.2} s {:>7.2}M events/s ({rows} rows)  ratio {:.2}",
                took.as_secs_f64(),
                df_eps / 1e6,
                quiver_eps / df_eps
            );
        }
        println!("{line}");
    }
    Ok(())
}
