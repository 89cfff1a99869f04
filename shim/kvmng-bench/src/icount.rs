//! The in-guest instruction counts of `make vm-bench`
//! (kernel-patch/vm-test/bench.sh): `kvmng bench --instructions` run twice
//! on the patched kernel under QEMU TCG with `-icount shift=0`, the two
//! reports in one JSON file (docs/bench/vm-bench.json) with where they
//! came from. This module reads that file and renders its tables: the
//! instructions per operation and path, the spread between the two runs
//! (the determinism check), the issue's targets, and the sub-operations
//! that say where a call's instructions go.

use crate::ops::{Op, PathKind};
use crate::report::{fmt_insns, BenchReport};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// The chart of the first run's ratios, next to the other charts.
pub const RATIO_CHART: &str = "vm-bench-ratios.svg";

/// docs/bench/vm-bench.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmBench {
    /// When the VM ran (UTC).
    pub date: String,
    /// The guest kernel's release and its cache entry.
    pub kernel: String,
    /// The kernel's cache directory (make kernel).
    pub kernel_dir: String,
    /// `qemu-system-x86_64 --version`.
    pub qemu: String,
    /// The QEMU command line (without the paths of the initramfs).
    pub qemu_command: String,
    /// The `kvmng bench` command run inside, twice.
    pub guest_command: String,
    /// Wall time of the whole `make vm-bench` VM, seconds.
    pub seconds: f64,
    /// The runs (two: the determinism check).
    pub runs: Vec<BenchReport>,
    /// The end-to-end workload's boots (absent from files made before it).
    #[serde(default)]
    pub workload: Vec<crate::workload::BootRun>,
}

impl VmBench {
    /// Reads a `make vm-bench` JSON file.
    pub fn read(path: &Path) -> anyhow::Result<VmBench> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let vm: VmBench = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a make vm-bench JSON file", path.display()))?;
        if vm.runs.is_empty() {
            bail!("{} holds no run", path.display());
        }
        Ok(vm)
    }

    /// The median of `op` on `path` in every run that measured it.
    pub fn medians(&self, op: Op, path: PathKind) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|r| r.result(op, path))
            .filter_map(|r| r.summary.as_ref().map(|s| s.median))
            .collect()
    }

    /// The median of the first run.
    pub fn median(&self, op: Op, path: PathKind) -> Option<f64> {
        self.medians(op, path).first().copied()
    }
}

/// The spread of a set of figures: (max − min) / min.
pub fn spread(v: &[f64]) -> Option<f64> {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (v.len() >= 2 && min > 0.0).then(|| (max - min) / min)
}

/// The native path's targets (issue 18, item 3): (op, the ratio native /
/// ioctl must not exceed, what it compares).
pub const TARGETS: [(Op, f64, &str); 4] = [
    (Op::RegsGet, 0.75, "get general registers"),
    (Op::RegsSet, 0.75, "set general registers"),
    (
        Op::StatePut,
        0.70,
        "QEMU's 8-ioctl runtime state put vs one batched call",
    ),
    (Op::RunPio, 0.90, "KVM_RUN round trip with a PIO exit"),
];

/// The shim's targets per call (issue 18, item 1): shim − native at most
/// this many instructions per call; irq-line is two calls per sample.
pub const SHIM_CALL_TARGET: f64 = 100.0;

/// The shim's per-call ops: (op, calls per sample).
const SHIM_CALL_OPS: [(Op, f64); 5] = [
    (Op::RunPio, 1.0),
    (Op::RegsGet, 1.0),
    (Op::RegsSet, 1.0),
    (Op::IrqLine, 2.0),
    (Op::CheckExtension, 1.0),
];

/// The shim's register sync against QEMU's own ioctls (issue 18, item 2):
/// shim / ioctl at most this.
pub const SHIM_SYNC_TARGET: f64 = 0.85;

/// The paths of the instruction table.
const PATHS: [PathKind; 4] = [
    PathKind::Ioctl,
    PathKind::Legacy,
    PathKind::Shim,
    PathKind::Native,
];

fn cell(v: Option<f64>) -> String {
    v.map_or("-".into(), fmt_insns)
}

fn pct(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x < 0.0001 {
        "< 0.01%".into()
    } else {
        format!("{:.2}%", x * 100.0)
    }
}

/// The shim against its targets: per call against native, and QEMU's
/// register sync against the ioctls.
fn shim_targets(vm: &VmBench) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "The shim (an unmodified program's ioctls carried out as kvmng calls) against its \
         targets (reported, not asserted):\n\n\
         | op | ioctl | native | shim | (shim − native) per call | target | |\n\
         |---|---:|---:|---:|---:|---:|---|"
    );
    for (op, calls) in SHIM_CALL_OPS {
        let (i, n, h) = (
            vm.median(op, PathKind::Ioctl),
            vm.median(op, PathKind::Native),
            vm.median(op, PathKind::Shim),
        );
        let per = n.zip(h).map(|(n, h)| (h - n) / calls);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | ≤ {SHIM_CALL_TARGET:.0} | {} |",
            op.name(),
            cell(i),
            cell(n),
            cell(h),
            per.map_or("-".into(), |p| format!("{p:.0}")),
            match per {
                Some(p) if p <= SHIM_CALL_TARGET => "met",
                // The one op whose native call is another syscall: the
                // shim's KVM_IRQ_LINE is kvmng_control (the ioctl reads
                // the caller's struct), the native op kvmng_irq.
                Some(_) if op == Op::IrqLine => {
                    "missed: the shim calls kvmng_control, the native op kvmng_irq; the shim's \
                     own share is check-extension's, which takes the same path"
                }
                Some(_) => "missed",
                None => "not measured",
            }
        );
    }
    for op in [Op::StatePut, Op::StateGet] {
        let (i, h) = (
            vm.median(op, PathKind::Ioctl),
            vm.median(op, PathKind::Shim),
        );
        let r = i.zip(h).map(|(i, h)| h / i);
        let _ = writeln!(
            s,
            "| {} (shim / ioctl) | {} | {} | {} | {} | ≤ {SHIM_SYNC_TARGET:.2} × ioctl | {} |",
            op.name(),
            cell(i),
            cell(vm.median(op, PathKind::Native)),
            cell(h),
            r.map_or("-".into(), |r| format!("{r:.2}")),
            match r {
                Some(r) if r <= SHIM_SYNC_TARGET => "met",
                Some(_) => "missed: docs/shim.md, \"A register sync is not batched\"",
                None => "not measured",
            }
        );
    }
    s.push('\n');
    s
}

/// The register sync one step at a time: what each ioctl costs, what the
/// same entry costs as a one-entry `kvmng_vcpu_state` (the shim's call),
/// and the shim's own part, with the sums against the batched call.
fn sync_steps(vm: &VmBench) -> String {
    let mut s = String::new();
    let m = |op, p| vm.median(op, p);
    let measured = Op::state_steps()
        .into_iter()
        .any(|op| m(op, PathKind::Ioctl).is_some());
    if !measured {
        return s;
    }
    let _ = writeln!(
        s,
        "The register sync one ioctl at a time (`--ops state-steps`): each step of the put \
         and the get alone, as an ioctl, as a `kvmng_vcpu_state` of that one entry (native: \
         what the shim makes of the ioctl) and through the shim; medians of run 1, \
         instructions.\n\n\
         | step | ioctl | native, one entry | shim | native − ioctl | shim − native |\n\
         |---|---:|---:|---:|---:|---:|"
    );
    for (put, whole, names) in [
        (true, Op::StatePut, &crate::ops::PUT_STEPS[..]),
        (false, Op::StateGet, &crate::ops::GET_STEPS[..]),
    ] {
        let group_measured = (0..names.len()).any(|i| {
            let op = Op::StateStep { put, step: i as u8 };
            m(op, PathKind::Ioctl).is_some()
        });
        if !group_measured {
            continue;
        }
        // One row: ioctl, native, shim, and the two differences.
        let row = |s: &mut String, label: String, v: [Option<f64>; 3]| {
            let diff = |a: Option<f64>, b: Option<f64>| {
                a.zip(b).map_or("-".into(), |(a, b)| signed(a - b))
            };
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {} | {} | {} |",
                cell(v[0]),
                cell(v[1]),
                cell(v[2]),
                diff(v[1], v[0]),
                diff(v[2], v[1])
            );
        };
        let mut sum = [0.0f64; 3];
        let mut complete = true;
        for (i, name) in names.iter().enumerate() {
            let op = Op::StateStep { put, step: i as u8 };
            let v = [
                m(op, PathKind::Ioctl),
                m(op, PathKind::Native),
                m(op, PathKind::Shim),
            ];
            for (acc, x) in sum.iter_mut().zip(v) {
                match x {
                    Some(x) => *acc += x,
                    None => complete = false,
                }
            }
            row(&mut s, format!("{} {name}", op.name()), v);
        }
        if complete {
            row(&mut s, format!("{} summed", whole.name()), sum.map(Some));
            let v = [
                m(whole, PathKind::Ioctl),
                m(whole, PathKind::Native),
                m(whole, PathKind::Shim),
            ];
            if v.iter().all(Option::is_some) {
                row(
                    &mut s,
                    format!(
                        "{} measured whole (native: one batch of {} entries)",
                        whole.name(),
                        names.len()
                    ),
                    v,
                );
            }
        }
    }
    let _ = writeln!(s);
    s
}

/// Native / ioctl of the first run.
pub fn native_ratio(vm: &VmBench, op: Op) -> Option<f64> {
    Some(vm.median(op, PathKind::Native)? / vm.median(op, PathKind::Ioctl)?)
}

/// The markdown section (no heading).
pub fn render(vm: &VmBench) -> String {
    let mut s = String::new();
    let first = &vm.runs[0];
    let _ = writeln!(
        s,
        "From `make vm-bench` on {} ({} runs; the JSON is `docs/bench/vm-bench.json`): kernel {}, \
         booted by {} as\n\n```\n{}\n```\n\nand inside it, twice:\n\n```\n{}\n```\n",
        vm.date,
        vm.runs.len(),
        vm.kernel,
        vm.qemu,
        vm.qemu_command,
        vm.guest_command
    );
    let _ = writeln!(
        s,
        "With `-icount shift=0` QEMU advances the guest's clock (and its TSC) by one per \
         instruction executed, whatever the host does; `--instructions` reads the TSC around \
         each sample, so a figure is the number of instructions the whole guest machine \
         executed for the operation: the guest kernel's, the program's, and those of the \
         nested guest (its KVM as the guest detected it, emulated by QEMU: {}). Interrupts land at fixed instruction \
         counts too, so the medians are reproducible; the spread column compares the two \
         runs. The VM took {:.0} s.\n\n\
         What the counts leave out: instructions are not time. The nested guest's world \
         switches (a VM entry, an exit) are single instructions whose work QEMU does in its \
         helpers, so an exit costs here only the software around it, while on hardware the \
         switch itself takes hundreds to thousands of cycles: paths that save exits (ioeventfd, \
         kvmng_ioregion) look worse here than they are, and cache and TLB effects do not show. \
         When the guest idles (a thread waiting with nothing else runnable), `sleep=off` moves \
         its clock to the next timer deadline: deterministic, but not instructions; the \
         measured calls do not wait, except the socket ways of mmio-delivery, whose device \
         thread runs on the same CPU.\n",
        first.machine.kvm,
        vm.seconds
    );
    for (i, r) in vm.runs.iter().enumerate() {
        if let Some(c) = &r.settings.calibration {
            let _ = writeln!(
                s,
                "* run {}: a loop of {} instructions read {} TSC ticks ({:.5} per instruction){}",
                i + 1,
                c.instructions,
                c.ticks,
                c.ratio(),
                if c.counts_instructions() {
                    ""
                } else {
                    " — the TSC did NOT count instructions: the figures below are not counts"
                }
            );
        }
    }
    let _ = writeln!(
        s,
        "* paths: {}\n",
        first
            .paths
            .iter()
            .map(|p| if p.available {
                format!("{} measured", p.path.name())
            } else {
                format!(
                    "{} not measured ({})",
                    p.path.name(),
                    p.reason.as_deref().unwrap_or("unavailable")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    );

    let _ = writeln!(
        s,
        "Median instructions per sample (run 1); native / ioctl; spread = (max − min) / min of \
         the run medians over both runs, the largest over the paths.\n"
    );
    let _ = writeln!(
        s,
        "| op | ioctl | legacy | shim | native | native / ioctl | spread |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    let mut worst: f64 = 0.0;
    for o in &first.ops {
        let Some(op) = Op::parse(&o.op).and_then(|v| v.first().copied()) else {
            continue;
        };
        if matches!(op, Op::StateStep { .. }) {
            // Their own table (sync_steps).
            continue;
        }
        let sp = PATHS
            .iter()
            .filter_map(|&p| spread(&vm.medians(op, p)))
            .fold(None::<f64>, |a, x| Some(a.map_or(x, |a| a.max(x))));
        if let Some(x) = sp {
            worst = worst.max(x);
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            o.op,
            cell(vm.median(op, PathKind::Ioctl)),
            cell(vm.median(op, PathKind::Legacy)),
            cell(vm.median(op, PathKind::Shim)),
            cell(vm.median(op, PathKind::Native)),
            native_ratio(vm, op).map_or("-".into(), |r| format!("{r:.2}")),
            sp.map_or("-".into(), pct)
        );
    }
    let _ = writeln!(
        s,
        "\nThe largest spread between the two runs: {}.\n",
        pct(worst)
    );

    let _ = writeln!(s, "Against the issue's targets (reported, not asserted):\n");
    let _ = writeln!(
        s,
        "| op | what | ioctl | native | native / ioctl | target | |\n|---|---|---:|---:|---:|---:|---|"
    );
    for (op, target, what) in TARGETS {
        let r = native_ratio(vm, op);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | ≤ {:.2} | {} |",
            op.name(),
            what,
            cell(vm.median(op, PathKind::Ioctl)),
            cell(vm.median(op, PathKind::Native)),
            r.map_or("-".into(), |r| format!("{r:.2}")),
            target,
            match r {
                Some(r) if r <= target => "met",
                Some(_) => "missed",
                None => "not measured",
            }
        );
    }
    let _ = writeln!(s);
    s.push_str(&shim_targets(vm));
    s.push_str(&sync_steps(vm));
    s.push_str(&breakdown(vm));
    s.push_str(&delivery(vm));
    s.push_str(&crate::workload::render(&vm.workload));
    s
}

/// Where the instructions go, from the sub-operations.
fn breakdown(vm: &VmBench) -> String {
    let mut s = String::new();
    let m = |op, p| vm.median(op, p);
    let (
        Some(floor),
        Some(empty_i),
        Some(empty_n),
        Some(ce_i),
        Some(ce_n),
        Some(rej_i),
        Some(rej_n),
    ) = (
        m(Op::Getppid, PathKind::Ioctl),
        m(Op::EmptyCall, PathKind::Ioctl),
        m(Op::EmptyCall, PathKind::Native),
        m(Op::CheckExtension, PathKind::Ioctl),
        m(Op::CheckExtension, PathKind::Native),
        m(Op::VcpuReject, PathKind::Ioctl),
        m(Op::VcpuReject, PathKind::Native),
    )
    else {
        let _ = writeln!(
            s,
            "The sub-operations (getppid, empty-call, check-extension, vcpu-reject) were not \
             measured on both the ioctl and native paths: no breakdown.\n"
        );
        return s;
    };
    let dispatch = empty_i - floor;
    let vcpu_fixed = rej_i - floor;
    let batch_fixed = rej_n - floor;
    let _ = writeln!(
        s,
        "Where the instructions go, from the sub-operations (medians, run 1):\n\n\
         | part | instructions | measured as |\n|---|---:|---|\n\
         | F: entering and leaving the kernel | {} | getppid |\n\
         | D: an ioctl's dispatch (fd lookup, LSM hook, vfs_ioctl, KVM's switch) | {} | empty-call ioctl (KVM_GET_API_VERSION) − F |\n\
         | a kvmng call up to its flag check | {} | empty-call native (kvmng_run(~0)) − F |\n\
         | V: a vCPU ioctl's fixed cost (D, the vCPU mutex, vcpu_load/vcpu_put) | {} | vcpu-reject ioctl (unknown vCPU ioctl) − F |\n\
         | B: a batched call's own work (the binding, entries copied in (onto the stack, up to 8) and checked, results written back in one user access window) | {} | vcpu-reject native (one entry of kind 0) − F |\n\
         | the same VM-level KVM work reached by fd | {} | check-extension ioctl |\n\
         | ... reached by the binding (kvmng_control) | {} | check-extension native |\n",
        fmt_insns(floor),
        fmt_insns(dispatch),
        signed(empty_n - floor),
        fmt_insns(vcpu_fixed),
        fmt_insns(batch_fixed),
        fmt_insns(ce_i),
        fmt_insns(ce_n),
    );
    let _ = writeln!(
        s,
        "A kvmng call does not go through the fd lookup and ioctl dispatch (D: {} \
         instructions for an empty ioctl) but, for vCPU state, pays B. The kernel's \
         kvmng_vcpu_state (kernel-patch/series, patch 5) makes the vCPU ioctl's checks, \
         takes the vCPU mutex and loads the vCPU once per batch (V − D = {}: the mutex, \
         vcpu_load and vcpu_put), then calls each entry's KVM handler directly, without \
         the load each ioctl makes (x86's kvm_vcpu_ioctl_x86_*_loaded() handlers for \
         regs, sregs, fpu and mp_state, regs and mp_state on the stack; the other kinds \
         through kvm_vcpu_ioctl_x86_loaded), so an entry saves the fd lookup, vfs_ioctl, KVM's \
         switch, the mutex and the load, but still pays the LSM hook on its ioctl command \
         (part of D, which kvmng_vcpu_state runs for every entry), kvmng's loop over the \
         entries, and the work of the ioctl. The model below charges a batch one V − D, \
         as if its entries were ioctls without their dispatch, mutex and load: the \
         difference to the measured count is what the direct call saves beyond that \
         (negative) or costs that the model does not count (positive), the LSM hook and \
         the loop included; `make vm-trace` counts both paths function by function \
         (\"Where the native path's instructions go\", below). Per target:\n",
        fmt_insns(dispatch),
        fmt_insns(vcpu_fixed - dispatch),
    );
    for (op, target, _) in TARGETS {
        let (Some(i), Some(n)) = (m(op, PathKind::Ioctl), m(op, PathKind::Native)) else {
            continue;
        };
        let k: f64 = match op {
            Op::StatePut => 8.0,
            Op::StateGet => 9.0,
            _ => 1.0,
        };
        if op == Op::RunPio {
            let _ = writeln!(
                s,
                "* {}: ioctl {}, native {} ({:.2}, target ≤ {:.2}, {}). kvmng_run calls the \
                 vCPU file's unlocked_ioctl(KVM_RUN), so it can save at most the dispatch D: \
                 {} saved of D = {}. The rest, {} of the ioctl's {}, is KVM_RUN itself \
                 (vcpu_load, entering and leaving the guest, the PIO exit); the target needs \
                 {} saved.",
                op.name(),
                fmt_insns(i),
                fmt_insns(n),
                n / i,
                target,
                if n / i <= target { "met" } else { "missed" },
                fmt_insns(i - n),
                fmt_insns(dispatch),
                fmt_insns(i - floor - dispatch),
                fmt_insns(i),
                fmt_insns(i * (1.0 - target)),
            );
            continue;
        }
        // ioctl: k × (F + V) + W; native: F + B + (V − D) + W.
        let work = i - k * (floor + vcpu_fixed);
        let model = floor + batch_fixed + (vcpu_fixed - dispatch) + work;
        let _ = writeln!(
            s,
            "* {}: ioctl {} = {k} × (F + V) + W, with W = {} the state work proper; native {} \
             ({:.2}, target ≤ {:.2}, {}). The model F + B + (V − D) + W gives {}; \
             measured {}, {} ({} per entry). {}{}",
            op.name(),
            fmt_insns(i),
            fmt_insns(work),
            fmt_insns(n),
            n / i,
            target,
            if n / i <= target { "met" } else { "missed" },
            fmt_insns(model),
            fmt_insns(n),
            signed(n - model),
            signed((n - model) / k),
            if k == 1.0 {
                format!(
                    "For one entry the batch's own work B ({}) is {} the dispatch D ({}) it \
                     replaces. ",
                    fmt_insns(batch_fixed),
                    if batch_fixed > 1.2 * dispatch {
                        "more than"
                    } else if batch_fixed < 0.8 * dispatch {
                        "less than"
                    } else {
                        "about as much as"
                    },
                    fmt_insns(dispatch)
                )
            } else {
                String::new()
            },
            if n / i > target {
                format!(
                    "The target needs {} or fewer; W alone is {:.2} of the ioctls{}.",
                    fmt_insns(target * i),
                    work / i,
                    if work / i > target {
                        ": more than the target, whatever the call's interface saves; it \
                         needs KVM itself to do less per entry"
                    } else {
                        ""
                    }
                )
            } else {
                "Within the target.".into()
            }
        );
    }
    if let (Some(i), Some(n), Some(c)) = (
        m(Op::RegsGet, PathKind::Ioctl),
        m(Op::RegsGet, PathKind::Native),
        m(Op::RegsGetControl, PathKind::Native),
    ) {
        let _ = writeln!(
            s,
            "* regs-get-control: the same register read through kvmng_control's vCPU scope, \
             which hands the ioctl to the bound vCPU without a batch: {} instructions, {:.2} \
             of the ioctl: the binding saves {} against the fd path, and the one-entry batch \
             costs {} against this handoff (copying the entry in, checking it, writing its \
             result back; against the handoff's ioctl entry, its mutex and KVM_GET_REGS's \
             allocation).",
            fmt_insns(c),
            c / i,
            fmt_insns(i - c),
            signed(n - c)
        );
    }
    let _ = writeln!(s);
    s
}

fn signed(x: f64) -> String {
    if x < 0.0 {
        format!("−{}", fmt_insns(-x))
    } else {
        format!("+{}", fmt_insns(x))
    }
}

/// The mmio-delivery rows of the first run.
fn delivery(vm: &VmBench) -> String {
    let mut s = String::new();
    let Some(d) = &vm.runs[0].mmio_delivery else {
        return s;
    };
    if let Some(e) = &d.error {
        let _ = writeln!(
            s,
            "MMIO delivery (mmio-delivery) in the guest: not measured: {e}.\n"
        );
        return s;
    }
    let _ = writeln!(
        s,
        "MMIO delivery in the guest ({} backend; instructions per access, median of the \
         batches; spread over the two runs):\n",
        d.backend
    );
    let _ = writeln!(
        s,
        "| way | instructions per access | ratio to mmio-exit | spread |\n|---|---:|---:|---:|"
    );
    let base = d
        .rows
        .iter()
        .find(|r| r.way == crate::delivery::BASELINE_WAY)
        .map(|r| r.summary.median);
    for r in &d.rows {
        let all: Vec<f64> = vm
            .runs
            .iter()
            .filter_map(|run| run.mmio_delivery.as_ref())
            .filter_map(|d| d.rows.iter().find(|x| x.way == r.way))
            .map(|x| x.summary.median)
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.way,
            fmt_insns(r.summary.median),
            base.map_or("-".into(), |b| format!("{:.2}", r.summary.median / b)),
            spread(&all).map_or("-".into(), pct)
        );
    }
    for (way, why) in &d.unavailable {
        let _ = writeln!(s, "| {way} | {why} | | |");
    }
    let _ = writeln!(s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-run file whose ops are `ops`, each (op, ioctl, native, shim).
    fn vm_bench(ops: &[(Op, f64, f64, f64)]) -> VmBench {
        use crate::doc::tests::{report, result};
        let mut r = report();
        r.ops = ops
            .iter()
            .map(|&(op, i, n, h)| crate::report::OpResult {
                op: op.name(),
                description: op.describe(),
                iterations: 10,
                rounds: 1,
                results: vec![
                    result(PathKind::Ioctl, i, None),
                    result(PathKind::Shim, h, Some(h / i)),
                    result(PathKind::Native, n, Some(n / i)),
                ],
            })
            .collect();
        VmBench {
            date: "2026-01-01 00:00 UTC".into(),
            kernel: "6.12".into(),
            kernel_dir: "k".into(),
            qemu: "QEMU".into(),
            qemu_command: "qemu".into(),
            guest_command: "kvmng bench".into(),
            seconds: 1.0,
            runs: vec![r],
            workload: Vec::new(),
        }
    }

    #[test]
    fn sync_steps_get_their_own_table_with_sums() {
        let mut ops = vec![(Op::StatePut, 8000.0, 6000.0, 9000.0)];
        for (i, op) in Op::state_steps().into_iter().enumerate() {
            let Op::StateStep { put: true, .. } = op else {
                continue;
            };
            ops.push((op, 1000.0, 1000.0 + i as f64, 1100.0 + i as f64));
        }
        let vm = vm_bench(&ops);
        let doc = render(&vm);
        // Not in the main table (rows there start with the op's name).
        assert!(!doc.contains("\n| state-put-3 |"), "{doc}");
        assert!(
            doc.contains("| state-put-3 KVM_SET_XSAVE | 1000 | 1002 | 1102 | +2 | +100 |"),
            "{doc}"
        );
        // 8 steps: 8000 ioctl, 8000 + 0+1+..+7 = 8028 native, 8828 shim.
        assert!(
            doc.contains("| state-put summed | 8000 | 8028 | 8828 | +28 | +800 |"),
            "{doc}"
        );
        assert!(
            doc.contains(
                "| state-put measured whole (native: one batch of 8 entries) | 8000 | 6000 | 9000 | −2000 | +3000 |"
            ),
            "{doc}"
        );
        // The get's steps were not measured: no rows, no sums for it.
        assert!(!doc.contains("state-get-1"), "{doc}");
        assert!(!doc.contains("state-get summed"), "{doc}");
    }

    #[test]
    fn no_step_table_without_steps() {
        let vm = vm_bench(&[(Op::StatePut, 8000.0, 6000.0, 9000.0)]);
        assert!(!render(&vm).contains("one ioctl at a time"));
    }

    #[test]
    fn spread_of_runs() {
        assert_eq!(spread(&[100.0, 101.0]), Some(0.01));
        assert_eq!(spread(&[100.0]), None);
        assert_eq!(pct(0.0), "0");
        assert_eq!(pct(0.0123), "1.23%");
    }
}
