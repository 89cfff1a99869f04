//! `mmio-delivery`: MMIO accesses delivered four ways, measured with the
//! harness of the ioregion work (`crate::dispatch::ioregion_dispatch`):
//! an exit to userspace (`KVM_EXIT_MMIO` handled by the vCPU thread),
//! `KVM_IOEVENTFD` (handled in the kernel, no exit), a posted write over a
//! `kvmng_ioregion` socket, and a synchronous read over it. Unlike the
//! other operations this is not per path: it runs through the backend the
//! kernel calls for (the legacy emulation on a stock kernel, where the
//! socket ways are carried out by the library inside `kvmng_run`; the
//! kernel on a kvmng kernel). The harness runs once per round in a worker
//! of its own, so that the rounds interleave with time like the rest.

use crate::ops::PathKind;
use crate::report::{fmt_ns, fmt_ratio};
use crate::stats::{self, Bootstrap, Estimate, Summary};
use crate::worker::{Request, Worker};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The way the others are compared with: an exit to userspace.
pub const BASELINE_WAY: &str = "mmio-exit";

/// One way's figures: nanoseconds per access, one sample per batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRow {
    /// The harness's name of the way.
    pub way: String,
    /// The batches.
    pub summary: Summary,
    /// The median with its interval.
    pub median_ci: Estimate,
    /// Median / median of the exit to userspace.
    pub ratio_to_exit: Option<Estimate>,
    /// Median per round.
    pub round_medians: Vec<f64>,
}

/// The result of the mmio-delivery operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryResult {
    /// The backend that ran it (`legacy` or `native`).
    pub backend: String,
    /// Accesses per batch (a sample is one batch's time / accesses).
    pub accesses_per_batch: u64,
    /// Batches per way and round.
    pub batches_per_round: usize,
    /// Rounds.
    pub rounds: usize,
    /// Why it could not be measured.
    pub error: Option<String>,
    /// One per way measured.
    pub rows: Vec<DeliveryRow>,
    /// The ways not measured, with the reason (e.g. no kvmng_ioregion in
    /// this kernel).
    #[serde(default)]
    pub unavailable: Vec<(String, String)>,
}

/// Accesses per batch and batches per round for `--iters`.
pub fn sizes(iters: usize) -> (u64, usize) {
    (
        ((iters / 5).clamp(20, 1000)) as u64,
        (iters / 1000).clamp(1, 8),
    )
}

/// Runs the harness `rounds` times; `on_round` is called after each.
pub fn measure(
    iters: usize,
    rounds: usize,
    cpu: Option<usize>,
    b: &Bootstrap,
    mut on_round: impl FnMut(usize),
) -> DeliveryResult {
    let (accesses, batches) = sizes(iters);
    let mut result = DeliveryResult {
        backend: String::new(),
        accesses_per_batch: accesses,
        batches_per_round: batches,
        rounds,
        error: None,
        rows: Vec::new(),
        unavailable: Vec::new(),
    };
    let mut per_way: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    let mut worker = match Worker::spawn(PathKind::Legacy, None, cpu, &[]) {
        Ok(w) => w,
        Err(e) => {
            result.error = Some(format!("{e:#}"));
            return result;
        }
    };
    for round in 0..rounds {
        match worker.request(&Request::Dispatch { accesses, batches }) {
            Ok(r) if r.ok => {
                result.backend = r.info.unwrap_or_default();
                result.unavailable = r.unavailable;
                for (way, samples) in r.series {
                    match per_way.iter_mut().find(|(w, _)| *w == way) {
                        Some((_, rounds)) => rounds.push(samples),
                        None => per_way.push((way, vec![samples])),
                    }
                }
            }
            Ok(r) => {
                result.error = r.error.or(Some("the harness failed".into()));
                break;
            }
            Err(e) => {
                result.error = Some(format!("{e:#}"));
                break;
            }
        }
        on_round(round);
    }
    let _ = worker.quit();
    if result.error.is_none() {
        result.rows = analyse(&per_way, b);
    }
    result
}

/// The rows of per-way samples (`rounds[r]` = the batches of round r).
pub fn analyse(per_way: &[(String, Vec<Vec<f64>>)], b: &Bootstrap) -> Vec<DeliveryRow> {
    let by_name: BTreeMap<&str, &Vec<Vec<f64>>> =
        per_way.iter().map(|(w, r)| (w.as_str(), r)).collect();
    let baseline = by_name.get(BASELINE_WAY).copied();
    per_way
        .iter()
        .filter(|(_, rounds)| rounds.iter().any(|r| !r.is_empty()))
        .map(|(way, rounds)| {
            let all: Vec<f64> = rounds.iter().flatten().copied().collect();
            DeliveryRow {
                way: way.clone(),
                summary: stats::summarize(&all),
                median_ci: stats::median_ci(rounds, b),
                ratio_to_exit: baseline
                    .filter(|_| way != BASELINE_WAY)
                    .map(|base| stats::ratio_of_medians_ci(rounds, base, b)),
                round_medians: rounds.iter().map(|r| stats::median(r)).collect(),
            }
        })
        .collect()
}

/// What each way is, for the table.
fn describe(way: &str) -> &'static str {
    match way {
        "mmio-exit" => "KVM_EXIT_MMIO to the vCPU thread, then kvmng_run again",
        "ioeventfd" => "KVM_IOEVENTFD: the kernel bumps an eventfd, no exit",
        "ioregion-posted-write" => {
            "a posted write to a device thread over the kvmng_ioregion socket"
        }
        "ioregion-sync-read" => "a read answered by a device thread over the socket (a round trip)",
        _ => "",
    }
}

/// The markdown section (no heading).
pub fn render(d: &DeliveryResult) -> String {
    let mut s = String::new();
    if let Some(e) = &d.error {
        let _ = writeln!(s, "Not measured: {e}\n");
        return s;
    }
    let _ = writeln!(
        s,
        "4-byte accesses of the `mmio_bench` guest, served four ways by the ioregion work's \
         harness through the {} backend: {} rounds of {} batch(es) of {} accesses per way; a \
         sample is a batch's time divided by its accesses.{}\n",
        d.backend,
        d.rounds,
        d.batches_per_round,
        d.accesses_per_batch,
        if d.backend == "legacy" {
            " On this stock kernel the socket ways are the library's emulation: the access \
             still exits inside `kvmng_run`, which hands it to the socket and re-enters \
             without returning to its caller; on a kvmng kernel the kernel does it."
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "| way | what serves an access | min | median [95% CI] | p99 | ratio to {BASELINE_WAY} [95% CI] |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
    for r in &d.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} [{}, {}] | {} | {} |",
            r.way,
            describe(&r.way),
            fmt_ns(r.summary.min),
            fmt_ns(r.median_ci.value),
            fmt_ns(r.median_ci.low),
            fmt_ns(r.median_ci.high),
            fmt_ns(r.summary.p99),
            r.ratio_to_exit
                .as_ref()
                .map_or("1 (baseline)".into(), fmt_ratio)
        );
    }
    for (way, why) in &d.unavailable {
        let _ = writeln!(s, "| {way} | {} | {why} | | | |", describe(way));
    }
    s
}

/// The row of `way`.
pub fn row<'a>(d: &'a DeliveryResult, way: &str) -> Option<&'a DeliveryRow> {
    d.rows.iter().find(|r| r.way == way)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ways_are_compared_with_the_exit() {
        let per_way = vec![
            (
                "mmio-exit".to_string(),
                vec![vec![8000.0, 8100.0], vec![7900.0, 8000.0]],
            ),
            (
                "ioeventfd".to_string(),
                vec![vec![2000.0, 2000.0], vec![2000.0, 2000.0]],
            ),
        ];
        let rows = analyse(&per_way, &Bootstrap::default());
        assert_eq!(rows.len(), 2);
        assert!(rows[0].ratio_to_exit.is_none());
        let r = rows[1].ratio_to_exit.unwrap();
        assert!((r.value - 0.25).abs() < 1e-12, "{r:?}");
        let d = DeliveryResult {
            backend: "legacy".into(),
            accesses_per_batch: 100,
            batches_per_round: 2,
            rounds: 2,
            error: None,
            rows,
            unavailable: Vec::new(),
        };
        let md = render(&d);
        assert!(md.contains("| mmio-exit | KVM_EXIT_MMIO"), "{md}");
        assert!(md.contains("| 1 (baseline) |"), "{md}");
        assert!(md.contains("| 0.25 ["), "{md}");
        assert!(md.contains("library's emulation"), "{md}");
        let failed = DeliveryResult {
            error: Some("no ioregion".into()),
            rows: Vec::new(),
            ..d
        };
        assert_eq!(render(&failed), "Not measured: no ioregion\n\n");
    }

    #[test]
    fn sizes_scale_with_iters() {
        assert_eq!(sizes(8), (20, 1));
        assert_eq!(sizes(5000), (1000, 5));
        assert_eq!(sizes(100_000), (1000, 8));
    }
}
