//! The results of `kvmng bench`: the JSON document and its tables (the
//! machine they were measured on is in [`crate::machine`]).

use crate::ops::{Op, PathKind};
use crate::stats::{Bootstrap, Estimate, Summary};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

pub use crate::machine::{kvm_flavour, loadavg, Load, Machine};

/// Today's date and time, UTC, as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_of(secs)
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (civil-from-days).
pub fn utc_of(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// One path's availability in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathInfo {
    /// The path.
    pub path: PathKind,
    /// What it is.
    pub description: String,
    /// Measured in this run.
    pub available: bool,
    /// Why not.
    pub reason: Option<String>,
}

/// The shim's census of one command, from the check run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CensusRow {
    /// The ioctl.
    pub command: String,
    /// Calls.
    pub count: u64,
    /// Carried out through the kvmng API.
    pub translated: u64,
    /// Passed to the kernel, with a reason.
    pub fallback: u64,
    /// The reasons.
    pub reasons: Vec<(String, u64)>,
}

/// One path's figures for one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathResult {
    /// The path.
    pub path: PathKind,
    /// `ok`, `failed` or `unavailable`.
    pub status: String,
    /// Why it failed or is unavailable.
    pub error: Option<String>,
    /// The samples, ns.
    pub summary: Option<Summary>,
    /// The median with its interval.
    pub median_ci: Option<Estimate>,
    /// Median of this path / median of the ioctl path, with its interval.
    pub ratio_to_ioctl: Option<Estimate>,
    /// Median per round (ns), in round order: the drift, visible.
    pub round_medians: Vec<f64>,
    /// kvmng syscalls the shim's SIGSYS handler emulated per sample.
    pub trapped_per_sample: Option<f64>,
    /// The shim's census of the op's ioctls (shim path, check run).
    pub census: Vec<CensusRow>,
    /// A note from the fixture (e.g. which MSRs a sync covers).
    pub info: Option<String>,
}

/// One operation's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpResult {
    /// The op's name.
    pub op: String,
    /// What a sample is.
    pub description: String,
    /// Samples per path.
    pub iterations: usize,
    /// Rounds they were spread over.
    pub rounds: usize,
    /// One per path of the run.
    pub results: Vec<PathResult>,
}

impl OpResult {
    /// The result of `path`.
    pub fn get(&self, path: PathKind) -> Option<&PathResult> {
        self.results.iter().find(|r| r.path == path)
    }
}

/// Settings of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `--iters`: samples per path per op, before an op's divisor.
    pub iters: usize,
    /// Rounds.
    pub rounds: usize,
    /// Untimed samples after set-up.
    pub warmup: usize,
    /// Untimed samples at the start of each batch.
    pub batch_warmup: usize,
    /// The bootstrap.
    pub bootstrap: Bootstrap,
    /// The CPU every worker was pinned to (None: not pinned).
    pub cpu: Option<usize>,
    /// What a sample counts: `ns` (the monotonic clock) or `instructions`
    /// (`--instructions`: the TSC, which counts instructions under QEMU
    /// TCG with `-icount shift=0`).
    #[serde(default = "unit_ns")]
    pub unit: String,
    /// `--instructions`: the TSC over a loop of known length.
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

fn unit_ns() -> String {
    "ns".into()
}

/// The check of `--instructions`: TSC ticks over a loop of a known number
/// of instructions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Instructions in the loop.
    pub instructions: u64,
    /// TSC ticks it took (the least of a few runs).
    pub ticks: u64,
}

impl Calibration {
    /// Ticks per instruction: 1.00 (within a few instructions) when the
    /// TSC counts instructions.
    pub fn ratio(&self) -> f64 {
        self.ticks as f64 / self.instructions as f64
    }

    /// Whether the TSC counts instructions (within 1%).
    pub fn counts_instructions(&self) -> bool {
        (self.ratio() - 1.0).abs() < 0.01
    }
}

/// A count of instructions, for tables: "812", "12.3 k", "4.56 M".
pub fn fmt_insns(n: f64) -> String {
    if !n.is_finite() {
        "-".into()
    } else if n < 1e4 {
        format!("{n:.0}")
    } else if n < 1e6 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{:.2} M", n / 1e6)
    }
}

/// The formatter of a run's unit.
pub fn fmt_unit(settings: &Settings) -> fn(f64) -> String {
    if settings.unit == "instructions" {
        fmt_insns
    } else {
        fmt_ns
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// `kvmng bench`.
    pub tool: String,
    /// The kvmng version.
    pub version: String,
    /// The exact command line.
    pub command: String,
    /// When (UTC).
    pub date: String,
    /// Where.
    pub machine: Machine,
    /// How.
    pub settings: Settings,
    /// Which paths.
    pub paths: Vec<PathInfo>,
    /// The figures.
    pub ops: Vec<OpResult>,
    /// The mmio-delivery operation (four ways, not per path), if asked.
    #[serde(default)]
    pub mmio_delivery: Option<crate::delivery::DeliveryResult>,
}

impl BenchReport {
    /// The result of `op` on `path`, when it was measured.
    pub fn result(&self, op: Op, path: PathKind) -> Option<&PathResult> {
        self.ops
            .iter()
            .find(|o| o.op == op.name())
            .and_then(|o| o.get(path))
            .filter(|r| r.status == "ok")
    }
}

/// A duration in ns, for tables: "812 ns", "12.3 µs", "4.56 ms".
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A ratio with its interval: "1.23 [1.20, 1.26]".
pub fn fmt_ratio(r: &Estimate) -> String {
    if r.low.is_finite() && r.high.is_finite() {
        format!("{:.2} [{:.2}, {:.2}]", r.value, r.low, r.high)
    } else {
        format!("{:.2}", r.value)
    }
}

/// The per-op tables (markdown).
pub fn render_tables(report: &BenchReport, svg_link: Option<&str>) -> String {
    let mut s = String::new();
    for op in &report.ops {
        let _ = writeln!(s, "### {}\n", op.op);
        let _ = writeln!(
            s,
            "{} — {} samples per path in {} rounds.\n",
            op.description, op.iterations, op.rounds
        );
        let _ = writeln!(
            s,
            "| path | min | median [95% CI] | p99 | ratio to ioctl [95% CI] |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        let mut notes = Vec::new();
        for r in &op.results {
            match (&r.summary, r.status.as_str()) {
                (Some(sum), "ok") => {
                    let med = r
                        .median_ci
                        .map(|m| {
                            format!(
                                "{} [{}, {}]",
                                fmt_ns(m.value),
                                fmt_ns(m.low),
                                fmt_ns(m.high)
                            )
                        })
                        .unwrap_or_else(|| fmt_ns(sum.median));
                    let ratio = if r.path == PathKind::Ioctl {
                        "1 (baseline)".to_string()
                    } else {
                        r.ratio_to_ioctl.as_ref().map_or("-".into(), fmt_ratio)
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} |",
                        r.path.name(),
                        fmt_ns(sum.min),
                        med,
                        fmt_ns(sum.p99),
                        ratio
                    );
                }
                _ => {
                    let _ = writeln!(s, "| {} | {} | | | |", r.path.name(), r.status);
                    if let Some(e) = &r.error {
                        notes.push(format!("{} {}: {}", r.path.name(), r.status, e));
                    }
                }
            }
            if let Some(t) = r.trapped_per_sample {
                if r.path == PathKind::Trap {
                    notes.push(format!(
                        "trap: {t:.2} kvmng syscalls emulated by the SIGSYS handler per sample \
                         (untimed calls a sample makes count too)"
                    ));
                }
            }
            if !r.census.is_empty() {
                let calls = r
                    .census
                    .iter()
                    .map(|c| format!("{} {}", c.command, c.count))
                    .collect::<Vec<_>>()
                    .join(", ");
                let fallbacks: Vec<String> = r
                    .census
                    .iter()
                    .filter(|c| c.fallback > 0 || c.translated != c.count)
                    .map(|c| {
                        format!(
                            "{}: {} of {} translated, {} fell back ({})",
                            c.command,
                            c.translated,
                            c.count,
                            c.fallback,
                            c.reasons
                                .iter()
                                .map(|(why, n)| format!("{why}: {n}"))
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    })
                    .collect();
                if fallbacks.is_empty() {
                    notes.push(format!(
                        "shim: the check run's samples made {calls} call(s), every one translated \
                         (census)"
                    ));
                } else {
                    notes.push(format!(
                        "shim: NOT every call was translated in the check run: {}",
                        fallbacks.join("; ")
                    ));
                }
            }
            if let Some(info) = &r.info {
                if r.path == PathKind::Ioctl {
                    notes.push(format!("content: {info}"));
                }
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(s);
            for n in notes {
                let _ = writeln!(s, "* {n}");
            }
        }
        if let Some(dir) = svg_link {
            let _ = writeln!(s, "\n![{} median per path]({dir}/{}.svg)", op.op, op.op);
        }
        let _ = writeln!(s);
    }
    if let Some(d) = &report.mmio_delivery {
        let _ = writeln!(s, "### mmio-delivery\n");
        s.push_str(&crate::delivery::render(d));
        if let (Some(dir), None) = (svg_link, &d.error) {
            let _ = writeln!(
                s,
                "\n![mmio-delivery median per way]({dir}/mmio-delivery.svg)"
            );
        }
        let _ = writeln!(s);
    }
    s
}

/// A compact text table for the terminal.
pub fn render_text(report: &BenchReport) -> String {
    let fmt_ns = fmt_unit(&report.settings);
    let mut s = String::new();
    if let Some(c) = &report.settings.calibration {
        let _ = writeln!(
            s,
            "figures in {}: a loop of {} instructions took {} TSC ticks ({:.4} per instruction{})",
            report.settings.unit,
            c.instructions,
            c.ticks,
            c.ratio(),
            if c.counts_instructions() {
                ""
            } else {
                ": the TSC does NOT count instructions here; run under -icount shift=0"
            }
        );
    }
    let _ = writeln!(
        s,
        "{:<15} {:<7} {:>11} {:>11} {:>11}  ratio to ioctl [95% CI]",
        "op", "path", "min", "median", "p99"
    );
    for op in &report.ops {
        for r in &op.results {
            match &r.summary {
                Some(sum) if r.status == "ok" => {
                    let ratio = if r.path == PathKind::Ioctl {
                        "1".to_string()
                    } else {
                        r.ratio_to_ioctl.as_ref().map_or("-".into(), fmt_ratio)
                    };
                    let _ = writeln!(
                        s,
                        "{:<15} {:<7} {:>11} {:>11} {:>11}  {}",
                        op.op,
                        r.path.name(),
                        fmt_ns(sum.min),
                        fmt_ns(sum.median),
                        fmt_ns(sum.p99),
                        ratio
                    );
                }
                _ => {
                    let _ = writeln!(
                        s,
                        "{:<15} {:<7} {}{}",
                        op.op,
                        r.path.name(),
                        r.status,
                        r.error
                            .as_ref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    for p in report.paths.iter().filter(|p| !p.available) {
        let _ = writeln!(
            s,
            "{:<15} {:<7} not measured: {}",
            "(every op)",
            p.path.name(),
            p.reason.as_deref().unwrap_or("unavailable")
        );
    }
    if let Some(d) = &report.mmio_delivery {
        match &d.error {
            Some(e) => {
                let _ = writeln!(s, "{:<15} not measured: {e}", "mmio-delivery");
            }
            None => {
                for (way, why) in &d.unavailable {
                    let _ = writeln!(s, "{:<15} {:<22} {why}", "mmio-delivery", way);
                }
                for r in &d.rows {
                    let _ = writeln!(
                        s,
                        "{:<15} {:<22} {:>11} {:>11} {:>11}  {}",
                        "mmio-delivery",
                        r.way,
                        fmt_ns(r.summary.min),
                        fmt_ns(r.summary.median),
                        fmt_ns(r.summary.p99),
                        r.ratio_to_exit
                            .as_ref()
                            .map_or("1 (per access; the baseline)".into(), |x| {
                                format!("{} to mmio-exit", fmt_ratio(x))
                            })
                    );
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_report() -> BenchReport {
        let sum = |m: f64| Summary {
            n: 100,
            min: m * 0.9,
            median: m,
            p99: m * 1.5,
            mean: m * 1.05,
            max: m * 2.0,
        };
        let est = |v: f64| Estimate {
            value: v,
            low: v * 0.98,
            high: v * 1.02,
        };
        let ok = |path, m: f64, ratio: Option<f64>| PathResult {
            path,
            status: "ok".into(),
            error: None,
            summary: Some(sum(m)),
            median_ci: Some(est(m)),
            ratio_to_ioctl: ratio.map(est),
            round_medians: vec![m, m],
            trapped_per_sample: None,
            census: Vec::new(),
            info: None,
        };
        BenchReport {
            tool: "kvmng bench".into(),
            version: "0.1.0".into(),
            command: "kvmng bench --iters 10".into(),
            date: utc_of(0),
            machine: Machine {
                cpu_model: "Test CPU".into(),
                cpus: 2,
                cpu_mhz: 2000.0,
                memory_gib: 24.0,
                kernel: "6.18.0".into(),
                kvm: kvm_flavour(&["kvm", "kvm_pvm"], "fpu hypervisor"),
                kvmng_syscalls: false,
                load: Load::default(),
            },
            settings: Settings {
                iters: 10,
                rounds: 2,
                warmup: 1,
                batch_warmup: 1,
                bootstrap: Bootstrap::default(),
                cpu: Some(0),
                unit: "ns".into(),
                calibration: None,
            },
            paths: vec![],
            ops: vec![OpResult {
                op: "regs-get".into(),
                description: Op::RegsGet.describe(),
                iterations: 10,
                rounds: 2,
                results: vec![
                    ok(PathKind::Ioctl, 5000.0, None),
                    ok(PathKind::Trap, 7500.0, Some(1.5)),
                    PathResult {
                        status: "failed".into(),
                        error: Some("run: EINTR".into()),
                        summary: None,
                        median_ci: None,
                        ratio_to_ioctl: None,
                        ..ok(PathKind::Shim, 0.0, None)
                    },
                ],
            }],
            mmio_delivery: Some(crate::delivery::DeliveryResult {
                backend: "legacy".into(),
                accesses_per_batch: 10,
                batches_per_round: 1,
                rounds: 2,
                error: Some("the harness failed".into()),
                rows: Vec::new(),
                unavailable: Vec::new(),
            }),
        }
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc_of(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_of(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_of(1_767_225_600 + 3661), "2026-01-01 01:01 UTC");
    }

    #[test]
    fn durations_and_ratios_format() {
        assert_eq!(fmt_ns(812.4), "812 ns");
        assert_eq!(fmt_ns(12_345.0), "12.35 µs");
        assert_eq!(fmt_ns(4_560_000.0), "4.56 ms");
        assert_eq!(fmt_ns(1.5e9), "1.50 s");
        assert_eq!(fmt_ns(f64::NAN), "-");
        let r = Estimate {
            value: 1.234,
            low: 1.2,
            high: 1.26,
        };
        assert_eq!(fmt_ratio(&r), "1.23 [1.20, 1.26]");
    }

    #[test]
    fn json_round_trips() {
        let report = sample_report();
        let text = serde_json::to_string_pretty(&report).unwrap();
        let back: BenchReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["ops"][0]["results"][1]["path"], "trap");
        assert_eq!(v["ops"][0]["results"][1]["ratio_to_ioctl"]["value"], 1.5);
        assert_eq!(v["machine"]["cpus"], 2);
    }

    #[test]
    fn markdown_tables_have_every_row() {
        let report = sample_report();
        let md = render_tables(&report, Some("bench"));
        assert!(md.contains("### regs-get"), "{md}");
        assert!(
            md.contains(
                "| ioctl | 4.50 µs | 5.00 µs [4.90 µs, 5.10 µs] | 7.50 µs | 1 (baseline) |"
            ),
            "{md}"
        );
        assert!(md.contains("| trap | 6.75 µs | 7.50 µs"), "{md}");
        assert!(md.contains("| 1.50 [1.47, 1.53] |"), "{md}");
        assert!(md.contains("| shim | failed | | | |"), "{md}");
        assert!(md.contains("* shim failed: run: EINTR"), "{md}");
        assert!(
            md.contains("![regs-get median per path](bench/regs-get.svg)"),
            "{md}"
        );
        let text = render_text(&report);
        assert!(text.contains("regs-get        trap"), "{text}");
        assert!(
            text.contains("mmio-delivery   not measured: the harness failed"),
            "{text}"
        );
    }

    #[test]
    fn census_notes_say_whether_everything_was_translated() {
        let mut report = sample_report();
        let row = |command: &str, count, translated, fallback| CensusRow {
            command: command.into(),
            count,
            translated,
            fallback,
            reasons: if fallback > 0 {
                vec![("creating thread binds at KVM_RUN".into(), fallback)]
            } else {
                Vec::new()
            },
        };
        report.ops[0].results[1].census = vec![row("KVM_GET_REGS", 4, 4, 0)];
        let md = render_tables(&report, None);
        assert!(
            md.contains("* shim: the check run's samples made KVM_GET_REGS 4 call(s), every one translated (census)"),
            "{md}"
        );
        report.ops[0].results[1].census = vec![row("KVM_GET_REGS", 4, 3, 1)];
        let md = render_tables(&report, None);
        assert!(
            md.contains("NOT every call was translated in the check run: KVM_GET_REGS: 3 of 4 translated, 1 fell back (creating thread binds at KVM_RUN: 1)"),
            "{md}"
        );
    }

    #[test]
    fn machine_table_and_flavour() {
        let m = sample_report().machine;
        assert!(m.kvm.starts_with("PVM"));
        assert!(m.kvm.contains("itself a guest"));
        assert_eq!(
            kvm_flavour(&["kvm", "kvm_intel"], "vmx"),
            "kvm_intel (hardware VMX)"
        );
        let md = m.markdown();
        assert!(md.contains("| CPU | Test CPU |"), "{md}");
        assert!(md.contains("| logical CPUs | 2 |"), "{md}");
        assert!(md.contains("| memory | 24.0 GiB |"), "{md}");
    }
}
