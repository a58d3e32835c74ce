//! When batches happen. `Wall` waits for each batch time on the real clock;
//! `Simulated` runs batch k at `start + k * interval` back to back, so that
//! processing-time windows are deterministic in tests and backfills.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The clock that schedules batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Batch times follow the wall clock, aligned to the batch interval.
    Wall,
    /// Batch times start at `start_ms` and advance without waiting.
    Simulated {
        /// Time of the first batch, ms since the epoch (rounded up to the interval).
        start_ms: i64,
    },
}

/// Default start of the simulated clock: 2026-01-01T00:00:00Z.
pub const DEFAULT_SIMULATED_START_MS: i64 = 1_767_225_600_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Clock {
    /// The time of the first batch: the next multiple of `interval_ms`.
    pub fn first_batch_time(&self, interval_ms: i64) -> i64 {
        let from = match self {
            Clock::Wall => now_ms() + 1,
            Clock::Simulated { start_ms } => *start_ms,
        };
        (from + interval_ms - 1).div_euclid(interval_ms) * interval_ms
    }

    /// Waits until the batch at `batch_time_ms` is due (never, when simulated).
    pub async fn wait_for(&self, batch_time_ms: i64) {
        match self {
            Clock::Wall => {
                let wait = batch_time_ms - now_ms();
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
            }
            Clock::Simulated { .. } => tokio::task::yield_now().await,
        }
    }

    /// How late the batch at `batch_time_ms` starts (0 when simulated).
    pub fn delay_ms(&self, batch_time_ms: i64) -> i64 {
        match self {
            Clock::Wall => (now_ms() - batch_time_ms).max(0),
            Clock::Simulated { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_batch_is_aligned_to_the_interval() {
        let clock = Clock::Simulated { start_ms: 10_500 };
        assert_eq!(clock.first_batch_time(1000), 11_000);
        assert_eq!(
            Clock::Simulated { start_ms: 10_000 }.first_batch_time(1000),
            10_000
        );
        assert_eq!(Clock::Wall.first_batch_time(200) % 200, 0);
    }
}
