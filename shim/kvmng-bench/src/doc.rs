//! The generated blocks of docs/bench.md, from a bench report (and a
//! `kvmng ab` report, and `make vm-bench`'s): the machine, the commands,
//! the tables, the charts, the published figures next to ours, and what is
//! still pending. The page around them is written by people; only the
//! marked blocks are replaced ([`fill`]). Every number comes from the
//! reports, and every sentence about the machine from what the run
//! detected ([`crate::machine`]).

use crate::ab::AbReport;
use crate::delivery;
use crate::icount::VmBench;
use crate::machine::{Machine, Virt};
use crate::ops::{Op, PathKind};
use crate::report::{self, fmt_ns, fmt_ratio, BenchReport};
use std::fmt::Write as _;

fn ratio(r: &BenchReport, op: Op, path: PathKind) -> Option<String> {
    r.result(op, path)?.ratio_to_ioctl.as_ref().map(fmt_ratio)
}

fn median(r: &BenchReport, op: Op, path: PathKind) -> Option<f64> {
    Some(r.result(op, path)?.summary.as_ref()?.median)
}

fn or_not_measured(v: Option<String>) -> String {
    v.unwrap_or_else(|| "not measured in this run".into())
}

/// The headline table: one row per op, the ioctl median and each path's
/// ratio.
fn headline(r: &BenchReport) -> String {
    let paths: Vec<PathKind> = PathKind::ALL
        .into_iter()
        .filter(|&p| p != PathKind::Ioctl && r.ops.iter().any(|o| o.get(p).is_some()))
        .collect();
    let mut s = String::new();
    let _ = write!(s, "| op | ioctl median |");
    for p in &paths {
        let _ = write!(s, " {} / ioctl |", p.name());
    }
    let _ = write!(s, "\n|---|---:|");
    for _ in &paths {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s);
    for o in &r.ops {
        let base = o
            .get(PathKind::Ioctl)
            .and_then(|p| p.summary.as_ref())
            .map_or("-".into(), |sum| fmt_ns(sum.median));
        let _ = write!(s, "| {} | {} |", o.op, base);
        for &p in &paths {
            let cell = match o.get(p) {
                Some(pr) if pr.status == "ok" => {
                    pr.ratio_to_ioctl.as_ref().map_or("-".into(), fmt_ratio)
                }
                Some(pr) => pr.status.clone(),
                None => "-".into(),
            };
            let _ = write!(s, " {cell} |");
        }
        let _ = writeln!(s);
    }
    s
}

/// The issue's host targets (issue 18, item 4): legacy / ioctl at most
/// this on every op.
pub const LEGACY_TARGET: f64 = 1.05;

/// ... and shim / ioctl at most this on the hot ops.
pub const SHIM_HOT_TARGET: f64 = 1.10;

/// Each op's legacy and shim ratio (point estimates) against the host
/// targets, and a line of what was met.
fn host_targets(r: &BenchReport) -> String {
    let point =
        |op: Op, path: PathKind| r.result(op, path)?.ratio_to_ioctl.as_ref().map(|e| e.value);
    let verdict = |v: Option<f64>, target: f64| match v {
        Some(v) if v <= target => format!("{v:.2} met"),
        Some(v) => format!("{v:.2} **missed**"),
        None => "not measured".into(),
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nAgainst the issue's host targets (reported, not asserted; the ratios' point \
         estimates): legacy / ioctl ≤ {LEGACY_TARGET:.2} on every op, shim / ioctl ≤ \
         {SHIM_HOT_TARGET:.2} on the hot ops (those the shim's hot-call path carries: \
         KVM_RUN, the register sync, KVM_IRQ_LINE, KVM_CHECK_EXTENSION).\n\n\
         | op | legacy / ioctl ≤ {LEGACY_TARGET:.2} | shim / ioctl ≤ {SHIM_HOT_TARGET:.2} |\n\
         |---|---|---|"
    );
    let (mut legacy_missed, mut shim_missed) = (Vec::new(), Vec::new());
    let (mut legacy_n, mut shim_n) = (0, 0);
    for o in &r.ops {
        let Some(op) = Op::parse(&o.op).and_then(|v| v.first().copied()) else {
            continue;
        };
        let legacy = point(op, PathKind::Legacy);
        let hot = op.is_hot();
        let shim = point(op, PathKind::Shim);
        if let Some(v) = legacy {
            legacy_n += 1;
            if v > LEGACY_TARGET {
                legacy_missed.push(o.op.clone());
            }
        }
        if let (true, Some(v)) = (hot, shim) {
            shim_n += 1;
            if v > SHIM_HOT_TARGET {
                shim_missed.push(o.op.clone());
            }
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            o.op,
            verdict(legacy, LEGACY_TARGET),
            if hot {
                verdict(shim, SHIM_HOT_TARGET)
            } else {
                "not a hot op".into()
            }
        );
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let _ = writeln!(
        s,
        "\nlegacy: {} of {legacy_n} ops within the target (missed: {}); shim: {} of {shim_n} hot \
         ops within the target (missed: {}).",
        legacy_n - legacy_missed.len(),
        list(&legacy_missed),
        shim_n - shim_missed.len(),
        list(&shim_missed)
    );
    s
}

/// How far this machine's absolute times compare with published figures,
/// from the KVM the run detected.
fn machine_caveat(m: &Machine) -> String {
    match m.virt() {
        Virt::Pvm => format!(
            "The run detected {}: KVM in software, where every KVM operation costs several \
             times what it costs on VMX/SVM hardware, so absolute times are not comparable to \
             the published ones, and overheads that are a constant number of nanoseconds (the \
             shim, the trap) look smaller as ratios than they would on hardware.",
            m.kvm
        ),
        v if v.is_hardware() => format!(
            "The run detected {} ({}): absolute times can be set beside the published ones, \
             which were measured on other CPUs.",
            v.name(),
            m.kvm
        ),
        _ => format!(
            "The run could not tell which KVM this is ({}), so how far its absolute times \
             compare with the published ones is open.",
            m.kvm
        ),
    }
}

/// Whose cost a KVM_RUN round trip is, from the KVM the run detected.
fn whose_cost(m: &Machine) -> String {
    match m.virt() {
        Virt::Pvm => "That is the cost of KVM in software, not of VMX or SVM: the guest is run \
                      by software on page tables, so a hardware figure cannot be checked on \
                      this machine. "
            .to_string(),
        v if v.is_hardware() => format!("That is the cost on {}. ", v.name()),
        _ => String::new(),
    }
}

/// Where the native path (the patched kernel) can be timed, from what
/// this machine is.
fn where_native_is_timed(m: &Machine) -> String {
    if m.kvmng_syscalls {
        "this kernel has the kvmng syscalls.".to_string()
    } else if m.virt().is_hardware() {
        format!(
            "this host has {}: the patched kernel booted on it (`make kernel`) would time it.",
            m.virt().name()
        )
    } else {
        format!(
            "this host has {}, so the patched kernel runs here under QEMU TCG (`make \
             vm-bench`), counted in instructions, not timed; its times need it booted on a \
             host with VMX or SVM.",
            m.virt().name()
        )
    }
}

fn cycles(ns: f64, mhz: f64) -> Option<f64> {
    (mhz > 0.0).then(|| ns * mhz / 1000.0)
}

/// The published figures of the design brief next to ours.
fn published(r: &BenchReport) -> String {
    let mhz = r.machine.cpu_mhz;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "The design brief (`shared/DESIGN.md`) quotes these figures. Ours come from the \
         tables above; the sentences say how far each comparison carries. {}\n",
        machine_caveat(&r.machine)
    );

    // 1. QEMU's register sync.
    let _ = writeln!(
        s,
        "**QEMU 7.2 issues 8 ioctls for a runtime register put and 9 for a get.**"
    );
    match (
        median(r, Op::StatePut, PathKind::Ioctl),
        median(r, Op::StateGet, PathKind::Ioctl),
    ) {
        (Some(put), Some(get)) => {
            let _ = writeln!(
                s,
                "The same sequences as raw ioctls take {} (put, {} per ioctl) and {} (get, {} per \
                 ioctl) here. One batched `kvmng_vcpu_state` with the same entries, through the \
                 trap: put {}, get {} of the ioctls; through the library's legacy backend \
                 without the trap: put {}, get {}; the 8/9 ioctls translated one by one by the \
                 shim: put {}, get {}.",
                fmt_ns(put),
                fmt_ns(put / 8.0),
                fmt_ns(get),
                fmt_ns(get / 9.0),
                or_not_measured(ratio(r, Op::StatePut, PathKind::Trap)),
                or_not_measured(ratio(r, Op::StateGet, PathKind::Trap)),
                or_not_measured(ratio(r, Op::StatePut, PathKind::Legacy)),
                or_not_measured(ratio(r, Op::StateGet, PathKind::Legacy)),
                or_not_measured(ratio(r, Op::StatePut, PathKind::Shim)),
                or_not_measured(ratio(r, Op::StateGet, PathKind::Shim)),
            );
            if let (Some(t), Some(sh)) = (
                median(r, Op::StateGet, PathKind::Trap),
                median(r, Op::StateGet, PathKind::Shim),
            ) {
                let q = t / sh;
                let _ = writeln!(
                    s,
                    "{} one trapped call for the whole get costs {q:.2}× the 9 \
                     shim-translated ioctls (point estimate from the medians): the \
                     interposition and translation are paid once instead of 9 times.",
                    if q < 1.0 {
                        "Batching pays even through the emulation:"
                    } else {
                        "Batching does not pay through the emulation here:"
                    }
                );
            }
            match (
                ratio(r, Op::StatePut, PathKind::Native),
                ratio(r, Op::StateGet, PathKind::Native),
            ) {
                (Some(put), Some(get)) => {
                    let _ = writeln!(
                        s,
                        "Natively, on this kvmng kernel, the one batched call costs put {put}, \
                         get {get} of the ioctls: what batching saves (7 or 8 kernel entries, \
                         fd lookups and vCPU mutex round trips) against what the batch adds.\n"
                    );
                }
                _ => {
                    let _ = writeln!(
                        s,
                        "On a stock kernel the batch is carried out with the same 8 or 9 \
                         ioctls, so it cannot beat the raw ioctls: what batching saves — 7 or 8 \
                         kernel entries, fd lookups and vCPU mutex round trips — shows only on \
                         the patched kernel: see the instruction counts below.\n"
                    );
                }
            }
        }
        _ => {
            let _ = writeln!(s, "Not measured in this run (state-put, state-get).\n");
        }
    }

    // 2. Exit to userspace vs in kernel.
    let _ = writeln!(
        s,
        "**An exit to userspace costs about 13000 cycles, one handled in the kernel about 3300 \
         (kvm-unit-tests, 2012); the kernel/user transition itself was said to be under 100 \
         cycles.**"
    );
    match median(r, Op::RunPio, PathKind::Ioctl) {
        Some(pio) => {
            let c = cycles(pio, mhz)
                .map(|c| {
                    format!(" (about {c:.0} cycles at the {mhz:.0} MHz /proc/cpuinfo reports)")
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "Here a KVM_RUN round trip ending in a PIO exit to userspace takes {}{c}{}. \
                 {}The paths add to the round trip: trap {}, shim {}, legacy {}.",
                fmt_ns(pio),
                median(r, Op::RunMmio, PathKind::Ioctl)
                    .map(|m| format!("; with an MMIO exit {}", fmt_ns(m)))
                    .unwrap_or_default(),
                whose_cost(&r.machine),
                or_not_measured(ratio(r, Op::RunPio, PathKind::Trap)),
                or_not_measured(ratio(r, Op::RunPio, PathKind::Shim)),
                or_not_measured(ratio(r, Op::RunPio, PathKind::Legacy)),
            );
        }
        None => {
            let _ = writeln!(s, "The run round trips were not measured in this run.");
        }
    }
    let exit_vs_kernel = r.mmio_delivery.as_ref().and_then(|d| {
        let exit = delivery::row(d, delivery::BASELINE_WAY)?;
        let efd = delivery::row(d, "ioeventfd")?;
        Some((d, exit, efd))
    });
    match exit_vs_kernel {
        Some((d, exit, efd)) => {
            let cyc = |ns: f64| {
                cycles(ns, mhz)
                    .map(|c| format!(" (about {c:.0} cycles)"))
                    .unwrap_or_default()
            };
            let _ = writeln!(
                s,
                "The same question asked directly (`mmio-delivery`, one guest loop of MMIO \
                 writes): an access that exits to userspace and comes back costs {}{} per \
                 access, one the kernel completes itself through an ioeventfd {}{}: {} of the \
                 exit. The published ratio is 3300/13000 = 0.25: {}{}\n",
                fmt_ns(exit.median_ci.value),
                cyc(exit.median_ci.value),
                fmt_ns(efd.median_ci.value),
                cyc(efd.median_ci.value),
                efd.ratio_to_exit.as_ref().map_or("-".into(), fmt_ratio),
                match efd.ratio_to_exit {
                    Some(x) if x.high < 0.25 => {
                        "here keeping the access in the kernel saves a larger share than in 2012."
                    }
                    Some(x) if x.low > 0.25 => {
                        "here keeping the access in the kernel saves a smaller share than in 2012."
                    }
                    Some(_) => "here the share is the same within the interval.",
                    None => "",
                },
                match (
                    delivery::row(d, "ioregion-posted-write"),
                    delivery::row(d, "ioregion-sync-read")
                ) {
                    (Some(p), Some(q)) => format!(
                        " Over a `kvmng_ioregion` socket a posted write costs {} ({} of the \
                         exit) and a synchronous read {} ({}){}.",
                        fmt_ns(p.median_ci.value),
                        p.ratio_to_exit.as_ref().map_or("-".into(), fmt_ratio),
                        fmt_ns(q.median_ci.value),
                        q.ratio_to_exit.as_ref().map_or("-".into(), fmt_ratio),
                        if d.backend == "legacy" {
                            "; on this stock kernel both are the library's emulation, so they \
                             say what the protocol costs around an exit, not what the kernel \
                             implementation will"
                        } else {
                            ""
                        }
                    ),
                    _ => String::new(),
                }
            );
        }
        None => {
            let _ = writeln!(
                s,
                "The in-kernel side of the comparison (`mmio-delivery`) was not measured in \
                 this run.\n"
            );
        }
    }

    // 3. Trap costs.
    let _ = writeln!(
        s,
        "**Intercepting a syscall: seccomp TRAP + SIGSYS around 10 µs (getpid, one published \
         measurement); Syscall User Dispatch about 6000 cycles; binary rewriting (zpoline) \
         about 41 ns.**"
    );
    match (
        median(r, Op::RegsGetControl, PathKind::Trap),
        median(r, Op::RegsGetControl, PathKind::Legacy),
        median(r, Op::RegsGet, PathKind::Ioctl),
        median(r, Op::RegsGet, PathKind::Legacy),
    ) {
        (Some(t), Some(l), Some(i), Some(lr)) => {
            let d = t - l;
            let c = cycles(d, mhz)
                .map(|c| format!(" (about {c:.0} cycles)"))
                .unwrap_or_default();
            let published_seccomp = 10_000.0;
            let published_sud_cycles = 6000.0;
            let versus_sud = cycles(d, mhz)
                .map(|c| {
                    format!(
                        ", {:.2}× the published Syscall User Dispatch figure",
                        c / published_sud_cycles
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "The trap's own cost is the difference between the trapped kvmng call and the \
                 same call made on the library directly, with the same work on both sides: \
                 `kvmng_control(KVMNG_SCOPE_VCPU, KVM_GET_REGS)` (regs-get-control), whose \
                 pointer the emulation hands to the ioctl either way: {} − {} = {}{c} per call \
                 (medians). That is {:.2}× the published seccomp TRAP + SIGSYS \
                 figure{versus_sud}, and {:.0}× what zpoline-style rewriting costs (which \
                 rewrites the program's code instead). The emulation itself (library over raw \
                 ioctl) adds {} to the {} of KVM_GET_REGS (one REGS GET entry of \
                 `kvmng_vcpu_state`).",
                fmt_ns(t),
                fmt_ns(l),
                fmt_ns(d),
                d / published_seccomp,
                d / 41.0,
                fmt_ns(lr - i),
                fmt_ns(i)
            );
            if let Some(tr) = median(r, Op::RegsGet, PathKind::Trap) {
                let _ = writeln!(
                    s,
                    "A trapped `kvmng_vcpu_state` pays, besides, the emulation's checked copies \
                     of its entries in and out (`process_vm_readv`/`process_vm_writev`: the \
                     trapped program's address may be bad), which a caller of the library \
                     holding the entries in a slice does not: regs-get trap − legacy = {}.",
                    fmt_ns(tr - lr)
                );
            }
            if let Some(sh) = median(r, Op::RegsGet, PathKind::Shim) {
                let _ = writeln!(
                    s,
                    "The shim's interposition and translation of a legacy ioctl add {} \
                     (shim − ioctl, medians).",
                    fmt_ns(sh - i)
                );
            }
            let _ = writeln!(s);
        }
        _ => {
            let why = r
                .paths
                .iter()
                .find(|p| p.path == PathKind::Trap && !p.available)
                .and_then(|p| p.reason.clone());
            match why {
                Some(why) => {
                    let _ = writeln!(s, "The trap is not measured here: {why}.\n");
                }
                None => {
                    let _ = writeln!(
                        s,
                        "Not measured in this run (regs-get and regs-get-control on trap, \
                         legacy and ioctl).\n"
                    );
                }
            }
        }
    }
    s
}

/// The generated blocks of docs/bench.md, by name, in page order. The
/// page around them (headings, how the method works, how to run it) is
/// written by people in docs/bench.md itself; each block sits between
/// `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->`.
pub fn blocks(
    r: &BenchReport,
    ab: Option<&AbReport>,
    svg_link: Option<&str>,
    vm: Option<&VmBench>,
) -> Vec<(&'static str, String)> {
    vec![
        ("machine", machine_block(r)),
        ("method", method_block(r, ab)),
        ("headline", headline_block(r, svg_link)),
        ("published", published(r)),
        ("ab", ab_block(ab)),
        ("per-op", report::render_tables(r, svg_link)),
        ("vm-bench", vm_block(vm, svg_link)),
        ("pending", pending_block(r, vm)),
    ]
}

/// `page` with each block's marked region replaced by the block (a block
/// whose markers are missing is appended at the end).
pub fn fill(page: &str, blocks: &[(&'static str, String)]) -> String {
    let mut out = page.to_string();
    for (name, body) in blocks {
        let begin = format!("<!-- BEGIN generated: {name} -->");
        let end = format!("<!-- END generated: {name} -->");
        let body = body.trim_end_matches('\n');
        let spans = out
            .find(&begin)
            .and_then(|b| out[b..].find(&end).map(|e| (b, b + e)));
        out = match spans {
            Some((b, e)) => format!("{}{begin}\n{body}\n{}", &out[..b], &out[e..]),
            None => format!("{}\n\n{begin}\n{body}\n{end}\n", out.trim_end_matches('\n')),
        };
    }
    out
}

/// The blocks alone, each under its markers (what `fill` makes of an empty
/// page).
pub fn render_document(
    r: &BenchReport,
    ab: Option<&AbReport>,
    svg_link: Option<&str>,
    vm: Option<&VmBench>,
) -> String {
    fill("", &blocks(r, ab, svg_link, vm))
}

fn machine_block(r: &BenchReport) -> String {
    format!(
        "Measured by `make bench` on {}, on this machine (as the run detected it):\n\n{}",
        r.date,
        r.machine.markdown()
    )
}

fn method_block(r: &BenchReport, ab: Option<&AbReport>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Operations, per path (`kvmng bench`):\n\n```\n{}\n```\n",
        r.command
    );
    if let Some(ab) = ab {
        let _ = writeln!(
            s,
            "The real-program comparison (`kvmng ab`):\n\n```\n{}\n```\n",
            ab.command
        );
    }
    let _ = writeln!(
        s,
        "`make bench` runs both and writes this page, the JSON and the charts under \
         `docs/bench/`. Settings: `--iters {}` samples per path and operation (costly \
         operations take a fixed fraction, given per table), spread over {} rounds; {} \
         untimed samples after each set-up and {} at the start of every batch; intervals \
         from {} bootstrap resamples (seed {:#x}). {}\n",
        r.settings.iters,
        r.settings.rounds,
        r.settings.warmup,
        r.settings.batch_warmup,
        r.settings.bootstrap.resamples,
        r.settings.bootstrap.seed,
        match r.settings.cpu {
            Some(c) => format!(
                "Every worker is pinned to CPU {c}, so that all paths run on the same CPU: \
                 where the scheduler puts a process can change some figures many times over \
                 (memory-slot updates wait for an SRCU grace period, which takes a scheduler \
                 tick when the CPU's neighbour is busy)."
            ),
            None => "Workers are not pinned to a CPU (`--cpu none`).".into(),
        }
    );
    let _ = writeln!(
        s,
        "| path | what a sample goes through | here |\n|---|---|---|"
    );
    for p in &r.paths {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            p.path.name(),
            p.description,
            if p.available {
                "measured".to_string()
            } else {
                format!(
                    "not measured: {}",
                    p.reason.as_deref().unwrap_or("unavailable")
                )
            }
        );
    }
    s
}

fn headline_block(r: &BenchReport, svg_link: Option<&str>) -> String {
    let mut s = String::new();
    s.push_str(&headline(r));
    s.push_str(&host_targets(r));
    if let Some(native) = r
        .paths
        .iter()
        .find(|p| p.path == PathKind::Native && !p.available)
    {
        let _ = writeln!(
            s,
            "\nnative: not measured on this host: {}. Its figures are the instruction counts \
             below (*Instruction counts on the patched kernel*).",
            native.reason.as_deref().unwrap_or("unavailable")
        );
    }
    if let Some(dir) = svg_link {
        let _ = writeln!(s, "\n![ratio of each path to the ioctl]({dir}/ratios.svg)");
    }
    let _ = writeln!(s);

    s
}

fn ab_block(ab: Option<&AbReport>) -> String {
    let mut s = String::new();
    match ab {
        Some(ab) => {
            let _ = writeln!(
                s,
                "`{}` run alternately in the shim's {} and {} modes. {} The figures are the \
                 program's own (`<label>: <number>s` lines), compared per label.\n",
                ab.program
                    .first()
                    .map_or("?", |p| p.rsplit('/').next().unwrap_or(p)),
                ab.modes[0].name(),
                ab.modes[1].name(),
                if ab.modes == crate::ab::default_modes(false) {
                    "Passthrough sends every ioctl to the kernel (the interposition is paid, \
                     no translation); auto carries each through the kvmng API's emulation, so \
                     the ratio is the cost of translation on a real workload."
                } else if ab.modes == crate::ab::default_modes(true) {
                    "Passthrough sends every ioctl to the kernel (the interposition is paid, \
                     no translation); syscall carries each out as the kernel's kvmng syscalls, \
                     so the ratio is ioctl against syscall on a real workload."
                } else {
                    ""
                }
            );
            s.push_str(&crate::ab::render_markdown(ab));
            let _ = writeln!(s);
        }
        None => {
            let _ = writeln!(
                s,
                "Not run with this page (`kvmng ab --json F` and `--ab-json F`).\n"
            );
        }
    }

    s
}

fn vm_block(vm: Option<&VmBench>, svg_link: Option<&str>) -> String {
    let mut s = String::new();
    match vm {
        Some(vm) => {
            s.push_str(&crate::icount::render(vm));
            if let Some(dir) = svg_link {
                let _ = writeln!(
                    s,
                    "![instructions of each path against the ioctl, in the guest]({dir}/{})\n",
                    crate::icount::RATIO_CHART
                );
            }
        }
        None => {
            let _ = writeln!(
                s,
                "No `make vm-bench` result was given (`--vm-bench-json F`): run `make \
                 vm-bench`, which boots the patched kernel under QEMU TCG with `-icount \
                 shift=0` and writes docs/bench/vm-bench.json.\n"
            );
        }
    }
    s
}

fn pending_block(r: &BenchReport, vm: Option<&VmBench>) -> String {
    let mut s = String::new();
    match &r.mmio_delivery {
        Some(d) if d.error.is_some() => {
            let _ = writeln!(
                s,
                "* **mmio-delivery**: not measured: {}",
                d.error.as_deref().unwrap_or_default()
            );
        }
        Some(d) if d.backend == "legacy" => {
            let in_guest = vm
                .and_then(|v| v.runs.first())
                .and_then(|r| r.mmio_delivery.as_ref())
                .is_some_and(|g| g.rows.iter().any(|r| r.way.starts_with("ioregion")));
            let _ = writeln!(
                s,
                "* **mmio-delivery in the kernel, in time**: on this host the socket ways were \
                 measured through the library's emulation; {}",
                if in_guest {
                    format!(
                        "the kernel's own `kvmng_ioregion` is counted in instructions in the \
                         `make vm-bench` guest (above); {}",
                        where_native_is_timed(&r.machine)
                    )
                } else {
                    "the kernel's own `kvmng_ioregion` is measured the same way on the patched \
                     kernel."
                        .to_string()
                }
            );
        }
        Some(_) => {}
        None => {
            let _ = writeln!(s, "* **mmio-delivery**: not asked for in this run.");
        }
    }
    if let Some(native) = r
        .paths
        .iter()
        .find(|p| p.path == PathKind::Native && !p.available)
    {
        let _ = writeln!(
            s,
            "* **native path in time**: {}. `kvmng bench` measures it automatically where \
             `select::kernel_has_kvmng()` is true; {}",
            native.reason.as_deref().unwrap_or("unavailable"),
            where_native_is_timed(&r.machine)
        );
    }
    match vm
        .and_then(|v| v.runs.first())
        .and_then(|r| r.mmio_delivery.as_ref())
    {
        Some(d) if !d.unavailable.is_empty() => {
            let _ = writeln!(
                s,
                "* **kvmng_ioregion in the kernel**: in the `make vm-bench` guest {}: {}; the \
                 socket ways get instruction counts once the kernel there has it.",
                d.unavailable
                    .iter()
                    .map(|(w, _)| w.as_str())
                    .collect::<Vec<_>>()
                    .join(" and "),
                d.unavailable[0].1
            );
        }
        Some(d) if d.error.is_some() => {
            let _ = writeln!(
                s,
                "* **mmio-delivery in the guest**: not measured: {}",
                d.error.as_deref().unwrap_or_default()
            );
        }
        _ => {}
    }
    if vm.is_none() {
        let _ = writeln!(s, "* **instruction counts**: see the section above.");
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::*;
    use crate::stats::{Bootstrap, Estimate, Summary};

    pub(crate) fn result(path: PathKind, median: f64, ratio: Option<f64>) -> PathResult {
        PathResult {
            path,
            status: "ok".into(),
            error: None,
            summary: Some(Summary {
                n: 10,
                min: median,
                median,
                p99: median,
                mean: median,
                max: median,
            }),
            median_ci: Some(Estimate {
                value: median,
                low: median,
                high: median,
            }),
            ratio_to_ioctl: ratio.map(|v| Estimate {
                value: v,
                low: v - 0.01,
                high: v + 0.01,
            }),
            round_medians: vec![median],
            trapped_per_sample: None,
            census: Vec::new(),
            info: None,
        }
    }

    pub(crate) fn report() -> BenchReport {
        let op = |o: Op, base: f64| OpResult {
            op: o.name(),
            description: o.describe(),
            iterations: 10,
            rounds: 1,
            results: vec![
                result(PathKind::Ioctl, base, None),
                result(PathKind::Legacy, base * 1.1, Some(1.1)),
                result(PathKind::Shim, base * 1.2, Some(1.2)),
                result(PathKind::Trap, base * 1.3, Some(1.3)),
            ],
        };
        BenchReport {
            tool: "kvmng bench".into(),
            version: "0".into(),
            command: "kvmng bench --iters 10".into(),
            date: "2026-01-01 00:00 UTC".into(),
            machine: Machine {
                cpu_model: "Test".into(),
                cpus: 2,
                cpu_mhz: 1000.0,
                memory_gib: 24.0,
                kernel: "6.18".into(),
                kvm: "PVM".into(),
                kvmng_syscalls: false,
                load: Load::default(),
            },
            settings: Settings {
                iters: 10,
                rounds: 1,
                warmup: 1,
                batch_warmup: 1,
                bootstrap: Bootstrap::default(),
                cpu: Some(0),
                unit: "ns".into(),
                calibration: None,
            },
            paths: PathKind::ALL
                .into_iter()
                .map(|p| PathInfo {
                    path: p,
                    description: p.describe().into(),
                    available: p != PathKind::Native,
                    reason: (p == PathKind::Native).then(|| "no kvmng syscalls".into()),
                })
                .collect(),
            ops: vec![
                op(Op::RunPio, 20_000.0),
                op(Op::RegsGet, 5_000.0),
                op(Op::RegsGetControl, 5_000.0),
                op(Op::StatePut, 40_000.0),
                op(Op::StateGet, 45_000.0),
            ],
            mmio_delivery: Some(delivery::DeliveryResult {
                backend: "legacy".into(),
                accesses_per_batch: 100,
                batches_per_round: 1,
                rounds: 2,
                error: None,
                unavailable: Vec::new(),
                rows: delivery::analyse(
                    &[
                        ("mmio-exit".into(), vec![vec![8000.0], vec![8000.0]]),
                        ("ioeventfd".into(), vec![vec![2000.0], vec![2000.0]]),
                        (
                            "ioregion-posted-write".into(),
                            vec![vec![9000.0], vec![9000.0]],
                        ),
                        (
                            "ioregion-sync-read".into(),
                            vec![vec![12000.0], vec![12000.0]],
                        ),
                    ],
                    &Bootstrap::default(),
                ),
            }),
        }
    }

    #[test]
    fn the_host_targets_are_reported_met_or_missed() {
        // report(): legacy 1.1, shim 1.2 of the ioctl on every op.
        let mut r = report();
        let t = host_targets(&r);
        assert!(
            t.contains("| run-pio | 1.10 **missed** | 1.20 **missed** |"),
            "{t}"
        );
        assert!(t.contains("legacy: 0 of 5 ops within the target (missed: run-pio, regs-get, regs-get-control, state-put, state-get)"), "{t}");
        // Within both targets on one op; a non-hot op is not held to the shim's.
        for p in &mut r.ops[0].results {
            let v = match p.path {
                PathKind::Legacy => 1.05,
                PathKind::Shim => 1.10,
                _ => continue,
            };
            p.ratio_to_ioctl = Some(crate::stats::Estimate {
                value: v,
                low: v,
                high: v,
            });
        }
        r.ops.push(OpResult {
            op: Op::Getppid.name(),
            description: String::new(),
            iterations: 1,
            rounds: 1,
            results: vec![
                result(PathKind::Ioctl, 100.0, None),
                result(PathKind::Legacy, 100.0, Some(1.0)),
                result(PathKind::Shim, 130.0, Some(1.3)),
            ],
        });
        let t = host_targets(&r);
        assert!(t.contains("| run-pio | 1.05 met | 1.10 met |"), "{t}");
        assert!(t.contains("| getppid | 1.00 met | not a hot op |"), "{t}");
        assert!(t.contains("shim: 1 of 5 hot ops within the target"), "{t}");
    }

    #[test]
    fn sentences_about_the_machine_follow_what_the_run_detected() {
        let mut r = report();
        r.machine.kvm = crate::machine::kvm_flavour(&["kvm", "kvm_pvm"], "hypervisor");
        let pvm = render_document(&r, None, None, None);
        assert!(pvm.contains("KVM in software"), "{pvm}");
        assert!(!pvm.contains("That is the cost on VMX"));
        r.machine.kvm = crate::machine::kvm_flavour(&["kvm", "kvm_intel"], "vmx");
        let vmx = render_document(&r, None, None, None);
        assert!(vmx.contains("That is the cost on VMX hardware."), "{vmx}");
        assert!(!vmx.contains("software"), "{vmx}");
        assert!(!vmx.contains("PVM"), "{vmx}");
        r.machine.kvm = crate::machine::kvm_flavour(&["kvm", "kvm_amd"], "svm");
        let svm = render_document(&r, None, None, None);
        assert!(svm.contains("SVM hardware"), "{svm}");
        assert!(
            !svm.contains("PVM") && !svm.contains("VMX hardware"),
            "{svm}"
        );
    }

    #[test]
    fn the_document_has_every_section_and_figure() {
        let d = render_document(&report(), None, Some("bench"), None);
        for needle in [
            "| CPU | Test |",
            "```\nkvmng bench --iters 10\n```",
            "| op | ioctl median | legacy / ioctl | shim / ioctl | trap / ioctl |",
            "| run-pio | 20.00 µs | 1.10 [1.09, 1.11] | 1.20 [1.19, 1.21] | 1.30 [1.29, 1.31] |",
            "![ratio of each path to the ioctl](bench/ratios.svg)",
            "8 ioctls for a runtime register put",
            "13000",
            "about 20000 cycles",
            "10 µs",
            "6.50 µs − 5.50 µs = 1.00 µs (about 1000 cycles)",
            "regs-get trap − legacy = 1.00 µs.",
            "### state-get",
            "![state-get median per path](bench/state-get.svg)",
            "`make vm-bench`",
            "No `make vm-bench` result was given",
            "native: not measured on this host",
            "through an ioeventfd 2.00 µs (about 2000 cycles): 0.25 [0.25, 0.25] of the exit",
            "a posted write costs 9.00 µs (1.12 [1.12, 1.12] of the exit)",
            "### mmio-delivery",
            "![mmio-delivery median per way](bench/mmio-delivery.svg)",
            "* **mmio-delivery in the kernel, in time**",
            "* **native path in time**: no kvmng syscalls",
            "Not run with this page",
        ] {
            assert!(d.contains(needle), "missing {needle:?} in:\n{d}");
        }
        // Nothing unmeasured is presented as a figure.
        assert!(!d.contains("NaN"), "{d}");
    }

    #[test]
    fn only_the_marked_blocks_of_the_page_are_written() {
        let b = blocks(&report(), None, None, None);
        let page = "# Page\n\nby hand\n\n<!-- BEGIN generated: machine -->\nold\n\
                    <!-- END generated: machine -->\n\nmore by hand\n";
        let once = fill(page, &b);
        assert!(once.starts_with("# Page\n\nby hand\n\n<!-- BEGIN generated: machine -->\n"));
        assert!(once.contains("<!-- END generated: machine -->\n\nmore by hand\n"));
        assert!(!once.contains("\nold\n"), "{once}");
        assert!(once.contains("| CPU | Test |"), "{once}");
        // The other blocks had no markers: appended, each once.
        assert_eq!(once.matches("<!-- BEGIN generated: pending -->").count(), 1);
        assert_eq!(fill(&once, &b), once, "filling again changes nothing");
    }

    #[test]
    fn the_vm_bench_section_comes_from_its_json() {
        let mut guest = report();
        guest.settings.unit = "instructions".into();
        guest.settings.calibration = Some(Calibration {
            instructions: 100_000,
            ticks: 100_005,
        });
        let vm = VmBench {
            date: "2026-11-26 07:00 UTC".into(),
            kernel: "6.12.117 (y-x)".into(),
            kernel_dir: "/k".into(),
            qemu: "QEMU 7.2".into(),
            qemu_command: "qemu-system-x86_64 -icount shift=0".into(),
            guest_command: "kvmng bench --instructions".into(),
            seconds: 140.0,
            runs: vec![guest.clone(), guest],
            workload: Vec::new(),
        };
        let d = render_document(&report(), None, None, Some(&vm));
        for needle in [
            "From `make vm-bench` on 2026-11-26 07:00 UTC (2 runs",
            "kernel 6.12.117 (y-x)",
            "```\nqemu-system-x86_64 -icount shift=0\n```",
            "run 1: a loop of 100000 instructions read 100005 TSC ticks (1.00005 per instruction)",
            "| run-pio | 20.0 k | 22.0 k | 24.0 k | - | - | 0 |",
            "| run-pio | KVM_RUN round trip with a PIO exit | 20.0 k | - | - | ≤ 0.90 | not measured |",
            "| run-pio | 20.0 k | - | 24.0 k | - | ≤ 100 | not measured |",
            "no breakdown",
        ] {
            assert!(d.contains(needle), "missing {needle:?} in:\n{d}");
        }
        assert!(!d.contains("No `make vm-bench` result"), "{d}");
    }

    #[test]
    fn missing_ops_say_so() {
        let mut r = report();
        r.ops.clear();
        r.mmio_delivery = None;
        let d = render_document(&r, None, None, None);
        assert!(
            d.contains("Not measured in this run (state-put, state-get)."),
            "{d}"
        );
        assert!(
            d.contains("The run round trips were not measured in this run."),
            "{d}"
        );
        assert!(d.contains("(`mmio-delivery`) was not measured"), "{d}");
        assert!(!d.contains(".svg"), "{d}");
    }
}
