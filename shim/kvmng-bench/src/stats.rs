//! Statistics for `kvmng bench` and `kvmng ab`: order statistics, and
//! bootstrap confidence intervals for a median and for a ratio of medians.
//!
//! The bench interleaves the paths in rounds, so its samples are clustered:
//! samples of one round share whatever the machine was doing then (a kernel
//! build, another worker). Its intervals therefore come from a *round*
//! bootstrap: each resample draws whole rounds with replacement, the same
//! rounds for the numerator and the denominator of a ratio (they ran side
//! by side), and takes the medians of the pooled samples. A drift between
//! rounds then widens the interval instead of hiding in it. With one round
//! it degenerates to the ordinary bootstrap of single samples.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Median of `v` (the mean of the two middle values for an even count);
/// NaN for an empty slice. Reorders `v`.
pub fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (left, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *m;
    if n % 2 == 1 {
        upper
    } else {
        let lower = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// Median of `v`; NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    median_in_place(&mut v.to_vec())
}

/// The `q`-quantile (0 < q ≤ 1) by the nearest-rank method: the smallest
/// value with at least `q·n` values at or below it (p99 of 1..=100 is 99).
/// NaN when empty.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let rank = (q * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// A point estimate with a two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The statistic on the data as measured.
    pub value: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

impl Estimate {
    /// True when the interval contains `x`.
    #[cfg(test)]
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// Summary of one set of samples (nanoseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Largest sample.
    pub max: f64,
}

/// The summary of `samples` (which must not be empty).
pub fn summarize(samples: &[f64]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Summary {
        n,
        min: sorted.first().copied().unwrap_or(f64::NAN),
        median: median(&sorted),
        p99: quantile_sorted(&sorted, 0.99),
        mean: sorted.iter().sum::<f64>() / n.max(1) as f64,
        max: sorted.last().copied().unwrap_or(f64::NAN),
    }
}

/// Settings of a bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Number of resamples.
    pub resamples: usize,
    /// Confidence level (0.95 for a 95% interval).
    pub confidence: f64,
    /// Seed of the generator: the same data and seed give the same interval.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            resamples: 2000,
            confidence: 0.95,
            seed: 0x6b76_6d6e_6700_0007,
        }
    }
}

/// Percentile interval of the bootstrap distribution `dist`.
fn percentile_interval(mut dist: Vec<f64>, confidence: f64, value: f64) -> Estimate {
    dist.retain(|x| x.is_finite());
    if dist.is_empty() {
        return Estimate {
            value,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    dist.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    let n = dist.len();
    let index = |p: f64| ((p * (n - 1) as f64).round() as usize).min(n - 1);
    Estimate {
        value,
        low: dist[index(alpha)],
        high: dist[index(1.0 - alpha)],
    }
}

fn pool(rounds: &[Vec<f64>], picks: &[usize], out: &mut Vec<f64>) {
    out.clear();
    for &r in picks {
        out.extend_from_slice(&rounds[r]);
    }
}

fn flatten(rounds: &[Vec<f64>]) -> Vec<f64> {
    rounds.iter().flatten().copied().collect()
}

/// The resampling units: the rounds, or (with a single round) each sample
/// on its own.
fn units(rounds: &[Vec<f64>]) -> Vec<Vec<f64>> {
    if rounds.len() == 1 {
        rounds[0].iter().map(|&x| vec![x]).collect()
    } else {
        rounds.to_vec()
    }
}

/// Median of the pooled samples, with a round-bootstrap interval.
/// `rounds[r]` holds the samples of round r.
pub fn median_ci(rounds: &[Vec<f64>], b: &Bootstrap) -> Estimate {
    let all = flatten(rounds);
    let value = median(&all);
    let units = units(rounds);
    let k = units.len();
    if k == 0 || all.is_empty() {
        return Estimate {
            value,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let mut rng = StdRng::seed_from_u64(b.seed);
    let mut picks = vec![0usize; k];
    let mut pooled = Vec::with_capacity(all.len() * 2);
    let dist = (0..b.resamples)
        .map(|_| {
            for p in picks.iter_mut() {
                *p = rng.random_range(0..k);
            }
            pool(&units, &picks, &mut pooled);
            median_in_place(&mut pooled)
        })
        .collect();
    percentile_interval(dist, b.confidence, value)
}

/// Ratio of the pooled medians `median(num) / median(den)`, with a paired
/// round-bootstrap interval: both sides are resampled with the same rounds.
/// `num` and `den` must have the same number of rounds (they are paired by
/// index); with one round each, samples are resampled independently.
pub fn ratio_of_medians_ci(num: &[Vec<f64>], den: &[Vec<f64>], b: &Bootstrap) -> Estimate {
    let value = median(&flatten(num)) / median(&flatten(den));
    let mut rng = StdRng::seed_from_u64(b.seed ^ 0x005e_ed0f_7a71_0000);
    let mut a = Vec::new();
    let mut c = Vec::new();
    let paired = num.len() == den.len() && num.len() > 1;
    let dist: Vec<f64> = if paired {
        let k = num.len();
        let mut picks = vec![0usize; k];
        (0..b.resamples)
            .map(|_| {
                for p in picks.iter_mut() {
                    *p = rng.random_range(0..k);
                }
                pool(num, &picks, &mut a);
                pool(den, &picks, &mut c);
                median_in_place(&mut a) / median_in_place(&mut c)
            })
            .collect()
    } else {
        let un = flatten(num);
        let ud = flatten(den);
        if un.is_empty() || ud.is_empty() {
            return Estimate {
                value,
                low: f64::NAN,
                high: f64::NAN,
            };
        }
        (0..b.resamples)
            .map(|_| {
                a.clear();
                a.extend((0..un.len()).map(|_| un[rng.random_range(0..un.len())]));
                c.clear();
                c.extend((0..ud.len()).map(|_| ud[rng.random_range(0..ud.len())]));
                median_in_place(&mut a) / median_in_place(&mut c)
            })
            .collect()
    };
    percentile_interval(dist, b.confidence, value)
}

/// Ratio of medians of two sets of runs, `median(num) / median(den)`,
/// with a bootstrap interval. With `paired` (equal lengths; run i of each
/// ran next to the other) pairs are resampled together, else each side
/// on its own. For `kvmng ab`, where a unit is a whole run.
pub fn ratio_of_run_medians(num: &[f64], den: &[f64], paired: bool, b: &Bootstrap) -> Estimate {
    let as_rounds = |v: &[f64]| v.iter().map(|&x| vec![x]).collect::<Vec<_>>();
    if paired && num.len() == den.len() && num.len() > 1 {
        ratio_of_medians_ci(&as_rounds(num), &as_rounds(den), b)
    } else {
        ratio_of_medians_ci(&[num.to_vec()], &[den.to_vec()], b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of N(0, 1) values (Box–Muller on the seeded
    /// generator).
    fn normals(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                let u2: f64 = rng.random_range(0.0..1.0);
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect()
    }

    fn split(v: &[f64], rounds: usize) -> Vec<Vec<f64>> {
        let per = v.len().div_ceil(rounds);
        v.chunks(per).map(|c| c.to_vec()).collect()
    }

    #[test]
    fn median_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(median(&v), 50.5);
    }

    #[test]
    fn p99_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile_sorted(&v, 0.99), 99.0);
        assert_eq!(quantile_sorted(&v, 1.0), 100.0);
        assert_eq!(quantile_sorted(&v, 0.5), 50.0);
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(quantile_sorted(&v, 0.99), 990.0);
        assert_eq!(quantile_sorted(&[5.0], 0.99), 5.0);
        assert!(quantile_sorted(&[], 0.99).is_nan());
    }

    #[test]
    fn summary_of_a_known_set() {
        let mut v: Vec<f64> = (1..=200).map(f64::from).collect();
        v.reverse();
        let s = summarize(&v);
        assert_eq!(s.n, 200);
        assert_eq!((s.min, s.max), (1.0, 200.0));
        assert_eq!(s.median, 100.5);
        assert_eq!(s.p99, 198.0);
        assert_eq!(s.mean, 100.5);
    }

    #[test]
    fn constant_data_gives_a_degenerate_interval() {
        let b = Bootstrap::default();
        let num = vec![vec![300.0; 50]; 10];
        let den = vec![vec![100.0; 50]; 10];
        let r = ratio_of_medians_ci(&num, &den, &b);
        assert_eq!((r.value, r.low, r.high), (3.0, 3.0, 3.0));
        let m = median_ci(&num, &b);
        assert_eq!((m.value, m.low, m.high), (300.0, 300.0, 300.0));
    }

    #[test]
    fn ratio_interval_contains_the_true_ratio_and_is_tight() {
        // Two paths: medians 2000 and 1000 (symmetric noise), 20 rounds of
        // 100 samples: the ratio is 2 and the interval is narrow.
        let b = Bootstrap::default();
        let noise_a = normals(1, 2000);
        let noise_b = normals(2, 2000);
        let a: Vec<f64> = noise_a.iter().map(|z| 2000.0 + 50.0 * z).collect();
        let c: Vec<f64> = noise_b.iter().map(|z| 1000.0 + 25.0 * z).collect();
        let r = ratio_of_medians_ci(&split(&a, 20), &split(&c, 20), &b);
        assert!(r.contains(2.0), "{r:?}");
        assert!(r.low < r.value && r.value < r.high, "{r:?}");
        assert!(r.high - r.low < 0.02, "{r:?}");
        assert!((r.value - 2.0).abs() < 0.01, "{r:?}");
    }

    #[test]
    fn drift_between_rounds_widens_the_round_bootstrap() {
        // The same samples, with a slow drift added per round that affects
        // both paths alike: the paired ratio stays near 2, and the median
        // interval of one path widens compared with no drift.
        let b = Bootstrap::default();
        let za = normals(3, 2000);
        let flat: Vec<f64> = za.iter().map(|z| 1000.0 + 10.0 * z).collect();
        let drifting: Vec<Vec<f64>> = split(&flat, 20)
            .into_iter()
            .enumerate()
            .map(|(r, v)| v.into_iter().map(|x| x * (1.0 + 0.02 * r as f64)).collect())
            .collect();
        let flat_ci = median_ci(&split(&flat, 20), &b);
        let drift_ci = median_ci(&drifting, &b);
        assert!(
            drift_ci.high - drift_ci.low > 3.0 * (flat_ci.high - flat_ci.low),
            "{flat_ci:?} {drift_ci:?}"
        );
        let other: Vec<Vec<f64>> = drifting
            .iter()
            .map(|v| v.iter().map(|x| x / 2.0).collect())
            .collect();
        let r = ratio_of_medians_ci(&drifting, &other, &b);
        assert!(
            (r.low - 2.0).abs() < 1e-9 && (r.high - 2.0).abs() < 1e-9,
            "{r:?}"
        );
    }

    #[test]
    fn coverage_of_the_ratio_interval_is_near_nominal() {
        // 200 simulated experiments with a known ratio of 1.5: a 95%
        // interval should cover it in roughly 95% of them.
        let b = Bootstrap {
            resamples: 400,
            ..Bootstrap::default()
        };
        let mut covered = 0;
        let experiments = 200;
        for e in 0..experiments {
            let za = normals(1000 + e, 200);
            let zb = normals(5000 + e, 200);
            let a: Vec<f64> = za.iter().map(|z| 150.0 + 10.0 * z).collect();
            let c: Vec<f64> = zb.iter().map(|z| 100.0 + 10.0 * z).collect();
            let r = ratio_of_medians_ci(&split(&a, 10), &split(&c, 10), &b);
            if r.contains(1.5) {
                covered += 1;
            }
        }
        let rate = covered as f64 / experiments as f64;
        assert!((0.88..=0.995).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn run_ratio_paired_and_unpaired() {
        let b = Bootstrap::default();
        let a = [10.0, 11.0, 9.0, 10.0, 10.5, 9.5];
        let c = [5.0, 5.5, 4.5, 5.0, 5.25, 4.75];
        let paired = ratio_of_run_medians(&a, &c, true, &b);
        assert_eq!(paired.value, 2.0);
        // Each pair has exactly ratio 2, so any paired resample too.
        assert!((paired.low - 2.0).abs() < 1e-9 && (paired.high - 2.0).abs() < 1e-9);
        let unpaired = ratio_of_run_medians(&a, &c, false, &b);
        assert_eq!(unpaired.value, 2.0);
        assert!(unpaired.low < 2.0 && unpaired.high > 2.0, "{unpaired:?}");
    }

    #[test]
    fn same_seed_same_interval() {
        let b = Bootstrap::default();
        let z = normals(9, 300);
        let rounds = split(&z.iter().map(|x| 100.0 + x).collect::<Vec<_>>(), 5);
        assert_eq!(median_ci(&rounds, &b), median_ci(&rounds, &b));
    }
}
