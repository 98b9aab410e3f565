//! A fixed-size log-linear histogram of microseconds: exact below 128 µs,
//! then 64 sub-buckets per power of two (under 1.6 % error). Its size never
//! depends on how many values it holds, so recording at a million values a
//! second costs no memory.

use serde::Serialize;

/// Values above this (about 12.7 days) are recorded as this.
const MAX_US: u64 = 1 << 40;
const LINEAR: usize = 128;
const SUB: usize = 64;
const BUCKETS: usize = LINEAR + SUB * 34;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR as u64 {
        return v as usize;
    }
    // v >> e lands in 64..128: the power of two picks the row, the rest the sub-bucket.
    let e = (63 - v.leading_zeros()) as usize - 6;
    LINEAR + (e - 1) * SUB + ((v >> e) as usize - SUB)
}

/// The highest value a bucket holds (so percentiles never understate).
fn upper(i: usize) -> u64 {
    if i < LINEAR {
        return i as u64;
    }
    let e = (i - LINEAR) / SUB + 1;
    let sub = ((i - LINEAR) % SUB + SUB) as u64;
    ((sub + 1) << e) - 1
}

impl Histogram {
    pub fn record(&mut self, us: u64) {
        let v = us.min(MAX_US);
        self.counts[index(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
    }

    /// The value at or under which `p` percent of the values lie (µs).
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: self.count,
            mean_ms: if self.count == 0 {
                0.0
            } else {
                self.sum as f64 / self.count as f64 / 1000.0
            },
            p50_ms: ms(self.percentile(50.0)),
            p90_ms: ms(self.percentile(90.0)),
            p99_ms: ms(self.percentile(99.0)),
            p999_ms: ms(self.percentile(99.9)),
            max_ms: ms(self.max),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..200_000u64).chain([1 << 39, MAX_US]) {
            let i = index(v);
            assert!(i >= last && i < BUCKETS, "{v} -> {i}");
            assert!(upper(i) >= v, "bucket {i} ends at {} below {v}", upper(i));
            // Relative error of the reported upper bound stays under 1/64.
            assert!((upper(i) - v) as f64 <= v as f64 / 64.0 + 1.0, "{v}");
            last = i;
        }
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.percentile(50.0);
        assert!((500..=508).contains(&p50), "{p50}");
        let p99 = h.percentile(99.0);
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.percentile(100.0), 1000);
        h.record(5000);
        assert_eq!(h.summary().count, 1001);
        assert_eq!(h.summary().max_ms, 5.0);
    }
}
