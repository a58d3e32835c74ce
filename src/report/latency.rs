//! Batch latency percentiles with constant memory: a log-scale histogram
//! (four buckets per doubling, so a percentile is within ~19% of the truth),
//! cheap enough to copy after every batch.

use std::time::Duration;

const BUCKETS: usize = 112;
const PER_DOUBLING: f64 = 4.0;

/// Counts of batch durations by log-scale bucket (1 µs to ~4.6 h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            max_us: 0,
        }
    }
}

impl LatencyHistogram {
    /// Records one batch duration.
    pub fn record(&mut self, duration: Duration) {
        let us = duration.as_micros().max(1) as u64;
        let bucket = ((us as f64).log2() * PER_DOUBLING).floor() as usize;
        self.counts[bucket.min(BUCKETS - 1)] += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Number of durations recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The duration below which a fraction `q` (0..=1) of batches fell:
    /// the upper edge of that bucket, capped by the largest duration seen.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let upper = 2f64.powf((bucket + 1) as f64 / PER_DOUBLING) as u64;
                return Some(Duration::from_micros(upper.min(self.max_us)));
            }
        }
        Some(Duration::from_micros(self.max_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.percentile(0.5).unwrap().as_secs_f64() * 1e3;
        let p99 = h.percentile(0.99).unwrap().as_secs_f64() * 1e3;
        assert!((50.0..=60.0).contains(&p50), "{p50}");
        assert!((99.0..=100.0).contains(&p99), "{p99}");
        assert_eq!(h.count(), 100);
    }
}
