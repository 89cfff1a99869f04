//! The short A/B table of `make demo`: syscall against ioctl, from the
//! committed results (docs/bench/vm-bench.json: instructions in the
//! patched kernel; docs/bench/bench.json: time on the host that ran
//! `make bench`). Nothing is measured here.

use crate::icount::VmBench;
use crate::ops::{Op, PathKind};
use crate::report::{fmt_insns, fmt_ns, BenchReport};
use anyhow::Context;
use std::fmt::Write as _;
use std::path::Path;

/// The operations of the short table: one per hot path of a VMM.
pub const OPS: [Op; 5] = [
    Op::RunPio,
    Op::RegsGet,
    Op::StateGet,
    Op::IrqLine,
    Op::MemoryMap(1),
];

/// Reads `make bench`'s JSON.
pub fn read_bench(path: &Path) -> anyhow::Result<BenchReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a kvmng bench JSON file", path.display()))
}

fn median(r: &BenchReport, op: Op, path: PathKind) -> Option<f64> {
    r.result(op, path)?.summary.as_ref().map(|s| s.median)
}

fn ratio(num: Option<f64>, den: Option<f64>) -> String {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => format!("{:.2}", n / d),
        _ => "-".into(),
    }
}

fn or_dash(v: Option<f64>, fmt: fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), fmt)
}

/// The table: per operation, the patched kernel's ioctl and syscall in
/// instructions (when `vm` is given), and the host's ioctl, shim and trap
/// in time (when `host` is given).
pub fn ab_table(host: Option<&BenchReport>, vm: Option<&VmBench>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:^34}   {:^32}",
        "", "patched kernel, instructions", "make bench's host, time"
    );
    let _ = writeln!(
        s,
        "{:<14} {:>12} {:>12} {:>8}   {:>10} {:>10} {:>10}",
        "op", "ioctl", "syscall", "ratio", "ioctl", "shim", "trap"
    );
    for op in OPS {
        let (vi, vn) = match vm {
            Some(v) => (
                v.median(op, PathKind::Ioctl),
                v.median(op, PathKind::Native),
            ),
            None => (None, None),
        };
        let (hi, hs, ht) = match host {
            Some(h) => (
                median(h, op, PathKind::Ioctl),
                median(h, op, PathKind::Shim),
                median(h, op, PathKind::Trap),
            ),
            None => (None, None, None),
        };
        let _ = writeln!(
            s,
            "{:<14} {:>12} {:>12} {:>8}   {:>10} {:>10} {:>10}",
            op.name(),
            or_dash(vi, fmt_insns),
            or_dash(vn, fmt_insns),
            ratio(vn, vi),
            or_dash(hi, fmt_ns),
            or_dash(hs, fmt_ns),
            or_dash(ht, fmt_ns),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_results_give_a_full_table() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/bench");
        let host = read_bench(&root.join("bench.json")).unwrap();
        let vm = VmBench::read(&root.join("vm-bench.json")).unwrap();
        let t = ab_table(Some(&host), Some(&vm));
        assert_eq!(t.lines().count(), 2 + OPS.len(), "{t}");
        let run = t.lines().find(|l| l.starts_with("run-pio")).unwrap();
        assert!(!run.contains(" - "), "{t}");
        assert!(ab_table(None, None).contains("run-pio"));
    }
}
