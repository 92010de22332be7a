//! Latency percentiles and throughput over time.

use std::time::Duration;

/// Latencies of one kind, in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    pub micros: Vec<u64>,
}

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.micros.push(d.as_micros() as u64);
    }

    pub fn sorted(&self) -> Vec<u64> {
        let mut v = self.micros.clone();
        v.sort_unstable();
        v
    }

    /// The `q` quantile (0..=1) in milliseconds: the smallest value with at
    /// least `q` of all values at or below it.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1] as f64 / 1000.0
    }

    pub fn summary(&self) -> String {
        format!(
            "n={} p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            self.micros.len(),
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
            self.quantile_ms(0.999),
            self.quantile_ms(1.0)
        )
    }
}

/// Completions counted per 100 ms.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub buckets: Vec<u64>,
}

impl Timeline {
    pub const BUCKET: Duration = Duration::from_millis(100);

    pub fn count(&mut self, since_start: Duration) {
        let i = (since_start.as_millis() / Self::BUCKET.as_millis()) as usize;
        if self.buckets.len() <= i {
            self.buckets.resize(i + 1, 0);
        }
        self.buckets[i] += 1;
    }

    /// Per-second rates, one point per bucket.
    pub fn rates(&self) -> Vec<f64> {
        self.buckets.iter().map(|b| *b as f64 * 10.0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.push(Duration::from_millis(ms));
        }
        assert_eq!(l.quantile_ms(0.5), 50.0);
        assert_eq!(l.quantile_ms(0.99), 99.0);
        assert_eq!(l.quantile_ms(1.0), 100.0);
        assert!(Latencies::default().quantile_ms(0.5).is_nan());
    }

    #[test]
    fn the_timeline_counts_per_bucket() {
        let mut t = Timeline::default();
        t.count(Duration::from_millis(5));
        t.count(Duration::from_millis(95));
        t.count(Duration::from_millis(250));
        assert_eq!(t.buckets, vec![2, 0, 1]);
        assert_eq!(t.rates(), vec![20.0, 0.0, 10.0]);
    }
}
