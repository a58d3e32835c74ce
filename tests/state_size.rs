//! Window state stays flat: a 10-minute event-time HOP(2 s, 10 s) count per
//! auction at a steady rate keeps only the panes of open windows, so the
//! state stops growing once the first windows close.

use std::time::Duration;

use quiver::{Config, Context, Output};

#[test]
fn hop_state_stops_growing_over_ten_minutes() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ctx = Context::new(Config::bounded(Duration::from_secs(1)));
        // 600 s of bids at 200 bids/s (events are 46/50 bids).
        let rate = 200;
        let script = format!(
            "CREATE STREAM bids (WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
               WITH (connector = 'nexmark', kind = 'bid', rate = {rate}, events = {});
             SELECT auction, count(*) AS n, window_start
             FROM HOP(bids, `dateTime`, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
             GROUP BY auction, window_start",
            rate * 600
        );
        let Some(Output::Query(mut query)) = ctx.sql(&script).await.unwrap().pop() else {
            panic!("expected a continuous query");
        };
        let mut state = Vec::new();
        while let Some(result) = query.next().await {
            if result.progress.input_rows > 0 {
                state.push(result.progress.state_rows);
            }
        }
        query.finish().await.unwrap();
        eprintln!("state rows per batch: {:?} ...", &state[..10]);
        assert!(state.len() > 250, "{} batches with progress", state.len());
        let (early, late) = state.split_at(state.len() / 2);
        let early_max = early[20..].iter().max().copied().unwrap_or(0);
        let late_max = late.iter().max().copied().unwrap_or(0);
        // Bids of ~16 s at most: 10 s of window, 4 s of watermark delay, a
        // batch, a pane.
        let bound = 16 * rate as usize;
        assert!(late_max <= bound, "state {late_max} rows exceeds {bound}");
        assert!(
            late_max <= early_max + early_max / 10,
            "state grew: {early_max} rows in the first five minutes, {late_max} in the last"
        );
    });
}
