//! Unmodified QEMU (Debian 12's qemu-system-x86_64 7.2, and 10.0 from its
//! backports; -accel kvm), natively and preloaded with the shim, on
//! scenarios whose output must be identical:
//!
//! * `seabios`, `seabios-q35`: the firmware alone with -smp 2, through to
//!   "No bootable device." (its full log on the debug console, port 0x402);
//!   QEMU then idles, so the run is ended with SIGTERM (QEMU exits cleanly,
//!   so the shim writes its stats);
//! * `devices`: our multiboot guest (compat-tests/qemu/devices.S): serial,
//!   CMOS, PIT and RTC interrupts through the 8259s, HPET and VGA MMIO; it
//!   exits through isa-debug-exit with status 33;
//! * `devices-userspace-irqchip`: the same guest with kernel-irqchip=off, so
//!   the PIC, PIT and local APIC are QEMU's and interrupts are injected from
//!   userspace (KVM_INTERRUPT, interrupt windows); QEMU 7.2 only;
//! * `smp1`, `smp2`, `smp4`, `smp8`, `smp2-q35`, `smp2-microvm`, `smp4-microvm`: our
//!   SMP guest (compat-tests/qemu/smp.S): APs up with INIT/SIPI, a ring of
//!   IPIs, PIT and local APIC timer interrupts, every CPU printing;
//! * `krun-smp2`, `krun-smp4`, `krun-smp8`: a second real VMM, libkrun (crates.io),
//!   through compat-tests/kvmng-krun's launcher, booting the same guest built as
//!   an ELF64 (with --krun).
//!
//! In the shim modes the runs also write the shim's trace (one line per KVM
//! ioctl, with its thread), from which every thread's hot calls are checked:
//! translated in auto mode, passed through in passthrough mode, and one
//! thread running KVM_RUN per vCPU.

use crate::exec;
use crate::outcome::Termination;
use crate::stats::{self, FileStats, ModeStats};
use crate::Mode;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The exit status of our guests on success: isa-debug-exit turns a write
/// of 0x10 into exit((0x10 << 1) | 1).
pub const GUEST_EXIT_OK: i32 = 33;
/// How the libkrun scenarios' VMM is named in reports.
pub const KRUN_LABEL: &str = "libkrun 1.19.7 (crates.io) through compat-tests/kvmng-krun";
/// libkrun's exit status when the guest resets through the i8042.
pub const KRUN_EXIT_OK: i32 = 0;
/// The line SeaBIOS prints last when nothing boots.
pub const SEABIOS_LAST: &str = "No bootable device.";

/// What a scenario compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The debug console (port 0x402): SeaBIOS's log.
    Debugcon,
    /// COM1.
    Serial,
}

/// The guest a scenario boots with -kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guest {
    /// compat-tests/qemu/devices.S.
    Devices,
    /// compat-tests/qemu/smp.S.
    Smp,
    /// compat-tests/qemu/smp.S built with -DKRUN as an ELF64, for libkrun.
    SmpKrun,
}

impl Guest {
    pub const ALL: [Guest; 3] = [Guest::Devices, Guest::Smp, Guest::SmpKrun];

    /// The built file's base name.
    pub fn name(self) -> &'static str {
        match self {
            Guest::Devices => "devices",
            Guest::Smp => "smp",
            Guest::SmpKrun => "smp-krun",
        }
    }

    /// The source's base name in compat-tests/qemu.
    pub fn source(self) -> &'static str {
        match self {
            Guest::Devices => "devices",
            Guest::Smp | Guest::SmpKrun => "smp",
        }
    }
}

/// The VMM a scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vmm {
    /// qemu-system-x86_64 (each --qemu).
    Qemu,
    /// libkrun (crates.io), through compat-tests/kvmng-krun's launcher (--krun).
    Krun,
}

/// One QEMU scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub vmm: Vmm,
    /// -machine value.
    pub machine: &'static str,
    /// -smp value (vCPUs).
    pub smp: u32,
    /// The guest booted with -kernel (none: the firmware alone).
    pub guest: Option<Guest>,
    /// End the run with SIGTERM when this appears on `channel`.
    pub stop_marker: Option<&'static str>,
    /// Required QEMU exit status.
    pub expect_exit: Option<i32>,
    pub channel: Channel,
    /// Lines that must appear, in this order, as whole lines of `channel`.
    pub expected: Vec<String>,
    /// Whether the order of output lines must match too. SeaBIOS runs its
    /// device probes as cooperative threads, so the order of their messages
    /// depends on timing; its log is compared as a multiset of lines.
    pub ordered: bool,
    /// The newest QEMU major version the scenario applies to, and why not
    /// to newer ones.
    pub max_qemu: Option<(u32, &'static str)>,
}

impl Scenario {
    /// Why this scenario does not run with QEMU `major`, if it does not.
    pub fn skip_reason(&self, major: Option<u32>) -> Option<String> {
        match (self.max_qemu, major) {
            (Some((max, why)), Some(m)) if m > max => Some(format!("not run with QEMU {m}: {why}")),
            _ => None,
        }
    }
}

/// The lines the SMP guest prints with `n` CPUs, all of them, in order.
pub fn smp_expected(n: u32) -> Vec<String> {
    smp_expected_from(n, "fw_cfg")
}

/// The same, with the CPU count read from `source` (`fw_cfg` in QEMU,
/// `mp table` in libkrun).
pub fn smp_expected_from(n: u32, source: &str) -> Vec<String> {
    let mut v = vec![
        "kvmng smp guest: start".to_string(),
        format!("{source}: {n} cpus"),
        "cpu 0: bootstrap processor, apic id 0".to_string(),
    ];
    v.extend((1..n).map(|i| format!("cpu {i}: up after INIT/SIPI, apic id {i}")));
    v.push(format!("all {n} cpus up"));
    // The IPI ring: 0 -> 1 -> ... -> n-1 -> 0 (a self-IPI with one CPU).
    v.extend((1..=n).map(|i| format!("cpu {}: ipi 0x41 from cpu {}", i % n, i - 1)));
    v.push("cpu 0: pit irq0 via 8259: at least 10 interrupts".to_string());
    v.extend((0..n).map(|i| format!("cpu {i}: lapic timer: at least 5 interrupts")));
    v.push("kvmng smp guest: done".to_string());
    v
}

fn smp_scenario(name: &'static str, what: &'static str, machine: &'static str, n: u32) -> Scenario {
    Scenario {
        name,
        what,
        vmm: Vmm::Qemu,
        machine,
        smp: n,
        guest: Some(Guest::Smp),
        stop_marker: None,
        expect_exit: Some(GUEST_EXIT_OK),
        channel: Channel::Serial,
        expected: smp_expected(n),
        ordered: true,
        max_qemu: None,
    }
}

fn seabios_scenario(name: &'static str, what: &'static str, machine: &'static str) -> Scenario {
    Scenario {
        name,
        what,
        vmm: Vmm::Qemu,
        machine,
        smp: 2,
        guest: None,
        stop_marker: Some(SEABIOS_LAST),
        expect_exit: None,
        channel: Channel::Debugcon,
        expected: vec![SEABIOS_LAST.to_string()],
        ordered: false,
        max_qemu: None,
    }
}

/// The names of every scenario, in order.
pub fn scenario_names() -> Vec<&'static str> {
    scenarios(&[]).iter().map(|s| s.name).collect()
}

/// The scenarios, with the devices guest's expected lines from
/// `devices.expected` (the SMP guest's are made by [`smp_expected`]).
pub fn scenarios(devices_expected: &[String]) -> Vec<Scenario> {
    vec![
        seabios_scenario(
            "seabios",
            "SeaBIOS alone with -smp 2 (pc), through to \"No bootable device.\" (its debug-console log compared line by line, in any order)",
            "pc",
        ),
        Scenario {
            name: "devices",
            vmm: Vmm::Qemu,
            what: "our multiboot guest: serial, CMOS, PIT/RTC interrupts via the 8259s, HPET and VGA MMIO (in-kernel irqchip)",
            machine: "pc",
            smp: 1,
            guest: Some(Guest::Devices),
            stop_marker: None,
            expect_exit: Some(GUEST_EXIT_OK),
            channel: Channel::Serial,
            expected: devices_expected.to_vec(),
            ordered: true,
            max_qemu: None,
        },
        Scenario {
            name: "devices-userspace-irqchip",
            vmm: Vmm::Qemu,
            what: "the same guest with kernel-irqchip=off: QEMU's PIC, PIT and APIC, interrupts injected from userspace",
            machine: "pc,kernel-irqchip=off",
            smp: 1,
            guest: Some(Guest::Devices),
            stop_marker: None,
            expect_exit: Some(GUEST_EXIT_OK),
            channel: Channel::Serial,
            expected: devices_expected.to_vec(),
            ordered: true,
            max_qemu: Some((
                9,
                "QEMU 10 has no userspace local APIC with KVM (\"KVM does not support userspace APIC\")",
            )),
        },
        seabios_scenario(
            "seabios-q35",
            "SeaBIOS alone with -smp 2 on q35 (ICH9, PCIe, AHCI), through to \"No bootable device.\" (compared in any order)",
            "q35",
        ),
        smp_scenario(
            "smp1",
            "our SMP guest (smp.S) with -smp 1 on pc: a self-IPI, PIT via the 8259, the local APIC timer",
            "pc",
            1,
        ),
        smp_scenario(
            "smp2",
            "our SMP guest with -smp 2 on pc: the AP up with INIT/SIPI, the IPI ring, PIT and every CPU's local APIC timer",
            "pc",
            2,
        ),
        smp_scenario("smp4", "the same with -smp 4 on pc", "pc", 4),
        smp_scenario(
            "smp8",
            "the same with -smp 8 on pc: as many vCPUs as the guest takes, four threads per host core here",
            "pc",
            8,
        ),
        smp_scenario("smp2-q35", "the same with -smp 2 on q35", "q35", 2),
        smp_scenario(
            "smp2-microvm",
            "the same with -smp 2 on microvm (qboot, then the guest as a multiboot -kernel; no PCI, no SeaBIOS)",
            "microvm",
            2,
        ),
        smp_scenario("smp4-microvm", "the same with -smp 4 on microvm", "microvm", 4),
        Scenario {
            name: "krun-smp2",
            what: "libkrun (crates.io, the second VMM) with 2 vCPUs booting the SMP guest built for it (ELF64 entered in 64-bit mode; CPU count from the MP table; ends with an i8042 reset)",
            vmm: Vmm::Krun,
            machine: "libkrun",
            smp: 2,
            guest: Some(Guest::SmpKrun),
            stop_marker: None,
            expect_exit: Some(KRUN_EXIT_OK),
            channel: Channel::Serial,
            expected: smp_expected_from(2, "mp table"),
            ordered: true,
            max_qemu: None,
        },
        Scenario {
            name: "krun-smp4",
            what: "the same with 4 vCPUs",
            vmm: Vmm::Krun,
            machine: "libkrun",
            smp: 4,
            guest: Some(Guest::SmpKrun),
            stop_marker: None,
            expect_exit: Some(KRUN_EXIT_OK),
            channel: Channel::Serial,
            expected: smp_expected_from(4, "mp table"),
            ordered: true,
            max_qemu: None,
        },
        Scenario {
            name: "krun-smp8",
            what: "the same with 8 vCPUs",
            vmm: Vmm::Krun,
            machine: "libkrun",
            smp: 8,
            guest: Some(Guest::SmpKrun),
            stop_marker: None,
            expect_exit: Some(KRUN_EXIT_OK),
            channel: Channel::Serial,
            expected: smp_expected_from(8, "mp table"),
            ordered: true,
            max_qemu: None,
        },
    ]
}

/// Assembles and links a guest (compat-tests/qemu/SOURCE.S) into
/// `out_dir`/NAME.elf.
pub fn build_guest(src_dir: &Path, out_dir: &Path, guest: Guest) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir)?;
    let name = guest.name();
    let src = src_dir.join(format!("{}.S", guest.source()));
    let obj = out_dir.join(format!("{name}.o"));
    let elf = out_dir.join(format!("{name}.elf"));
    let (cflag, emulation) = match guest {
        Guest::SmpKrun => ("-DKRUN", "elf_x86_64"),
        _ => ("-m32", "elf_i386"),
    };
    let steps: [(&str, Vec<String>); 2] = [
        (
            "gcc",
            vec![
                cflag.into(),
                "-c".into(),
                "-nostdinc".into(),
                "-o".into(),
                path_arg(&obj),
                path_arg(&src),
            ],
        ),
        (
            "ld",
            [
                "-m",
                emulation,
                "-nostdlib",
                "-Ttext-segment=0x100000",
                "-e",
                "_start",
                "--build-id=none",
                "-z",
                "noexecstack",
                "-z",
                "noseparate-code",
                "-z",
                "max-page-size=0x1000",
                "-o",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([path_arg(&elf), path_arg(&obj)])
            .collect(),
        ),
    ];
    for (tool, args) in steps {
        let out = std::process::Command::new(tool)
            .args(&args)
            .output()
            .with_context(|| {
                format!(
                    "cannot run {tool} (install gcc and binutils: `apt-get install gcc binutils`)"
                )
            })?;
        if !out.status.success() {
            bail!(
                "{tool} {} failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(elf)
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// Reads an expected-output file: the non-empty lines that are not `#`
/// comments.
pub fn read_expected(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// Checks that `expected` appear in `text` as whole lines, in order.
/// Returns the first one missing.
pub fn missing_line<'a>(text: &str, expected: &'a [String]) -> Option<&'a str> {
    let mut lines = text.lines();
    expected
        .iter()
        .find(|e| !lines.any(|l| l.trim_end() == e.trim_end()))
        .map(String::as_str)
}

/// The text compared between native and shim runs: the output with the
/// host's CPU frequency (SeaBIOS's kvmclock lines) masked, since that is a
/// property of the host and not of how KVM is driven.
pub fn normalize(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.contains("MHz") || l.contains("Mhz") {
                l.chars()
                    .map(|c| if c.is_ascii_digit() { '#' } else { c })
                    .collect()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<String>>()
        .join("\n")
}

/// The first line where two outputs differ: (line number, a, b).
pub fn first_difference(a: &str, b: &str) -> Option<(usize, String, String)> {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i).copied(), lb.get(i).copied());
        if x != y {
            return Some((
                i + 1,
                x.unwrap_or("<end of output>").to_string(),
                y.unwrap_or("<end of output>").to_string(),
            ));
        }
    }
    None
}

/// Compares two outputs as multisets of lines; says which lines only one
/// of them has (up to three of each).
pub fn unordered_difference(native: &str, shim: &str) -> Option<String> {
    let mut a: Vec<&str> = native.lines().collect();
    let mut b: Vec<&str> = shim.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    if a == b {
        return None;
    }
    let only = |x: &[&str], y: &[&str]| -> Vec<String> {
        let mut y: Vec<&str> = y.to_vec();
        let mut out = Vec::new();
        for l in x {
            match y.iter().position(|m| m == l) {
                Some(i) => {
                    y.remove(i);
                }
                None => out.push(format!("\"{l}\"")),
            }
        }
        out
    };
    let (na, nb) = (only(&a, &b), only(&b, &a));
    Some(format!(
        "lines only natively: {} ({}); lines only under the shim: {} ({})",
        na.len(),
        na.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
        nb.len(),
        nb.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
    ))
}

/// The calls whose path is checked thread by thread: running the vCPU,
/// memory-map updates and interrupts.
pub const HOT_CALLS: &[&str] = &[
    "KVM_RUN",
    "KVM_SET_USER_MEMORY_REGION",
    "KVM_SET_USER_MEMORY_REGION2",
    "KVM_IRQ_LINE",
    "KVM_IRQ_LINE_STATUS",
    "KVM_SIGNAL_MSI",
    "KVM_IRQFD",
    "KVM_INTERRUPT",
    "KVM_NMI",
];

/// One thread's KVM ioctls, from the shim's trace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ThreadCalls {
    pub pid: u64,
    pub tid: u64,
    /// Command -> path (`translated`, `fallback`, `passthrough`) -> calls.
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
}

impl ThreadCalls {
    /// A vCPU thread: one that ran KVM_RUN.
    pub fn is_vcpu(&self) -> bool {
        self.calls.contains_key("KVM_RUN")
    }
}

/// Every thread's KVM ioctls, from the shim's trace (`KVMNG_TRACE`, whose
/// lines carry the thread id; the census of `KVMNG_STATS` is per process).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ThreadCensus {
    pub threads: Vec<ThreadCalls>,
    pub lines: u64,
    /// Lines without pid, tid, cmd and path.
    pub bad_lines: u64,
}

/// Reads trace lines (`pid=812 tid=815 cmd=KVM_RUN fd=12 class=vcpu ret=0
/// ns=2210 path=translated`, docs/shim.md).
pub fn parse_trace(text: &str) -> ThreadCensus {
    let mut by_thread: BTreeMap<(u64, u64), ThreadCalls> = BTreeMap::new();
    let mut census = ThreadCensus::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        census.lines += 1;
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|t| t.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
        };
        let (Some(pid), Some(tid), Some(cmd), Some(path)) = (
            field("pid").and_then(|v| v.parse::<u64>().ok()),
            field("tid").and_then(|v| v.parse::<u64>().ok()),
            field("cmd"),
            field("path"),
        ) else {
            census.bad_lines += 1;
            continue;
        };
        let t = by_thread.entry((pid, tid)).or_insert_with(|| ThreadCalls {
            pid,
            tid,
            ..Default::default()
        });
        *t.calls
            .entry(cmd.to_string())
            .or_default()
            .entry(path.to_string())
            .or_default() += 1;
    }
    census.threads = by_thread.into_values().collect();
    census
}

/// The path every hot call must take in `mode`.
pub fn hot_path(mode: Mode) -> &'static str {
    match mode {
        Mode::Passthrough => "passthrough",
        _ => "translated",
    }
}

/// Checks one shim run's threads: as many vCPU threads as vCPUs, and every
/// hot call of every thread on the mode's path.
pub fn check_threads(smp: u32, mode: Mode, census: Option<&ThreadCensus>) -> Vec<String> {
    let Some(c) = census else {
        return vec![format!("{mode}: the shim wrote no trace")];
    };
    let mut problems = Vec::new();
    if c.bad_lines > 0 {
        problems.push(format!("{mode}: {} trace lines unreadable", c.bad_lines));
    }
    let vcpus = c.threads.iter().filter(|t| t.is_vcpu()).count();
    if vcpus != smp as usize {
        problems.push(format!(
            "{mode}: {vcpus} threads ran KVM_RUN, expected one per vCPU ({smp})"
        ));
    }
    let want = hot_path(mode);
    for t in &c.threads {
        for cmd in HOT_CALLS {
            let Some(paths) = t.calls.get(*cmd) else {
                continue;
            };
            let off: Vec<String> = paths
                .iter()
                .filter(|(p, _)| p.as_str() != want)
                .map(|(p, n)| format!("{n} {p}"))
                .collect();
            if !off.is_empty() {
                problems.push(format!(
                    "{mode}: thread {}{}: {cmd} not {want}: {}",
                    t.tid,
                    if t.is_vcpu() { " (vCPU)" } else { "" },
                    off.join(", ")
                ));
            }
        }
    }
    problems
}

/// Checks one shim run's census rows per vCPU thread (`KVMNG_STATS`; a
/// shim older than those rows writes none, and then this checks nothing):
/// one thread per vCPU, vCPUs 0..smp, and each thread's hot calls (its
/// KVM_RUNs and its vCPU ioctls after the first) on the mode's path.
pub fn check_census_threads(smp: u32, mode: Mode, stats: Option<&FileStats>) -> Vec<String> {
    let Some(f) = stats else {
        return Vec::new();
    };
    let threads: Vec<&kvmng_census::ThreadStats> = f
        .processes
        .iter()
        .flat_map(|p| p.threads.iter())
        .filter(|t| t.is_vcpu_thread())
        .collect();
    if threads.is_empty() {
        return Vec::new();
    }
    let mut problems = Vec::new();
    let mut vcpus: Vec<u64> = threads.iter().filter_map(|t| t.vcpu).collect();
    vcpus.sort_unstable();
    if vcpus != (0..u64::from(smp)).collect::<Vec<_>>() {
        problems.push(format!(
            "{mode}: census: vCPU threads ran vCPUs {vcpus:?}, expected 0..{smp} one each"
        ));
    }
    for t in threads {
        let off = match mode {
            Mode::Passthrough => {
                t.run.total() - t.run.passthrough + t.other.total() - t.other.passthrough
            }
            _ => t.hot_untranslated(),
        };
        if off > 0 {
            problems.push(format!(
                "{mode}: census: thread {} (vCPU {}): {off} of its KVM_RUN and later vCPU calls not {}",
                t.tid,
                t.vcpu.map_or("?".to_string(), |v| v.to_string()),
                hot_path(mode)
            ));
        }
    }
    problems
}

/// The census's vCPU threads of one run (0 when it has no thread rows).
pub fn census_vcpu_threads(stats: Option<&FileStats>) -> usize {
    stats.map_or(0, |f| {
        f.processes
            .iter()
            .flat_map(|p| p.threads.iter())
            .filter(|t| t.is_vcpu_thread())
            .count()
    })
}

/// One QEMU run.
#[derive(Clone, Debug, Serialize)]
pub struct QemuRun {
    pub mode: Mode,
    pub termination: Termination,
    pub stopped_on_marker: bool,
    pub secs: f64,
    pub output: String,
    pub log: PathBuf,
    pub stats: Option<FileStats>,
    /// Per thread, from the trace (shim modes).
    pub threads: Option<ThreadCensus>,
}

impl QemuRun {
    pub fn ending(&self) -> String {
        match (self.stopped_on_marker, self.termination) {
            (true, _) => "stopped after the marker".to_string(),
            (false, Termination::Exited(c)) => format!("exit {c}"),
            (false, Termination::Signaled(s)) => {
                format!("killed by {}", crate::outcome::signal_name(s))
            }
            (false, Termination::TimedOut) => "TIMEOUT".to_string(),
        }
    }
}

/// A scenario's runs and what went wrong.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    /// `qemu-system-x86_64 --version`'s first line.
    pub qemu: String,
    pub scenario: Scenario,
    /// The runs the verdict rests on (the re-runs, when there were any).
    pub runs: Vec<QemuRun>,
    /// What still fails the scenario.
    pub problems: Vec<String>,
    /// Problems of a first round in which native itself failed its own
    /// checks: with no reference to compare with, every mode ran again and
    /// the verdict rests on that round (reported, not failing).
    pub flaky: Vec<String>,
}

/// Runs every mode of a scenario (native first) and checks. A problem of a
/// shim run fails the scenario at once: no re-run gets a chance to hide a
/// crash or a hang of ours. Only when native itself fails its own checks
/// (a guest that hangs below the shim, in QEMU or in the kernel under
/// test) is there nothing to compare with: then every mode runs once more,
/// and the verdict rests on that round.
pub fn run_scenario(
    sc: &Scenario,
    modes: &[Mode],
    mut run: impl FnMut(Mode, bool) -> Result<QemuRun>,
) -> Result<ScenarioResult> {
    let first: Vec<QemuRun> = modes
        .iter()
        .map(|&m| run(m, false))
        .collect::<Result<_>>()?;
    let problems = check(sc, &first);
    let native_failed = first
        .iter()
        .find(|r| r.mode == Mode::Native)
        .is_some_and(|n| !check(sc, std::slice::from_ref(n)).is_empty());
    if !native_failed {
        return Ok(ScenarioResult {
            qemu: String::new(),
            scenario: sc.clone(),
            runs: first,
            problems,
            flaky: Vec::new(),
        });
    }
    let again: Vec<QemuRun> = modes.iter().map(|&m| run(m, true)).collect::<Result<_>>()?;
    let again_problems = check(sc, &again);
    let (problems, flaky) = if again_problems.is_empty() {
        (Vec::new(), problems)
    } else {
        let all = problems
            .iter()
            .map(|p| format!("first run: {p}"))
            .chain(again_problems.iter().map(|p| format!("re-run: {p}")))
            .collect();
        (all, Vec::new())
    };
    Ok(ScenarioResult {
        qemu: String::new(),
        scenario: sc.clone(),
        runs: again,
        problems,
        flaky,
    })
}

/// Checks one scenario's runs (native first): each run on its own, then each
/// shim run against native.
pub fn check(scenario: &Scenario, runs: &[QemuRun]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in runs {
        let m = r.mode;
        if let Some(marker) = scenario.stop_marker {
            if !r.stopped_on_marker {
                problems.push(format!("{m}: \"{marker}\" did not appear ({})", r.ending()));
            }
        }
        if let Some(code) = scenario.expect_exit {
            if r.stopped_on_marker || r.termination != Termination::Exited(code) {
                problems.push(format!(
                    "{m}: expected exit status {code}, got {}",
                    r.ending()
                ));
            }
        }
        if let Some(line) = missing_line(&r.output, &scenario.expected) {
            problems.push(format!(
                "{m}: expected line missing from the output: \"{line}\""
            ));
        }
        if m.is_shim() {
            problems.extend(check_threads(scenario.smp, m, r.threads.as_ref()));
            problems.extend(check_census_threads(scenario.smp, m, r.stats.as_ref()));
        }
    }
    let Some(native) = runs.iter().find(|r| r.mode == Mode::Native) else {
        return problems;
    };
    for r in runs.iter().filter(|r| r.mode.is_shim()) {
        if r.ending() != native.ending() {
            problems.push(format!(
                "{}: ended with {}, native with {}",
                r.mode,
                r.ending(),
                native.ending()
            ));
        }
        let (a, b) = (normalize(&native.output), normalize(&r.output));
        if scenario.ordered {
            if let Some((n, a, b)) = first_difference(&a, &b) {
                problems.push(format!(
                    "{}: output differs from native at line {n}: native \"{a}\", shim \"{b}\"",
                    r.mode
                ));
            }
        } else if let Some(d) = unordered_difference(&a, &b) {
            problems.push(format!("{}: output differs from native: {d}", r.mode));
        }
    }
    problems
}

/// Where and how to run QEMU.
pub struct QemuConfig {
    pub qemu: PathBuf,
    pub shim: Option<PathBuf>,
    pub work_dir: PathBuf,
    /// The guests' ELF files.
    pub guests: BTreeMap<Guest, PathBuf>,
    pub timeout: Duration,
}

/// Runs one scenario in one mode.
pub fn run_one(cfg: &QemuConfig, sc: &Scenario, mode: Mode, rerun: bool) -> Result<QemuRun> {
    let sub = if rerun {
        format!("{mode}.rerun")
    } else {
        mode.to_string()
    };
    let dir = cfg.work_dir.join(sc.name).join(sub);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let serial = dir.join("serial.txt");
    let debugcon = dir.join("debugcon.txt");
    let log = dir.join("qemu.log");
    let stats_path = dir.join("stats.jsonl");
    let trace_path = dir.join("trace.txt");
    for p in [&serial, &debugcon, &stats_path, &trace_path] {
        let _ = std::fs::remove_file(p);
    }
    for p in [&serial, &debugcon] {
        if p.display().to_string().contains(',') {
            bail!(
                "QEMU cannot take a file name with a comma: {} (choose another --work-dir)",
                p.display()
            );
        }
    }
    if sc.vmm == Vmm::Krun {
        return run_krun(cfg, sc, mode, &dir, &serial, &log, &stats_path, &trace_path);
    }
    let mut args: Vec<String> =
        "-nodefaults -accel kvm -cpu qemu64 -m 64 -display none -monitor none -nic none -no-reboot"
            .split_whitespace()
            .map(String::from)
            .collect();
    // microvm has no PCI, so no VGA.
    if !sc.machine.starts_with("microvm") {
        args.extend(["-vga".to_string(), "std".to_string()]);
    }
    // An empty IDE CD-ROM on pc, for SeaBIOS's ATAPI probe. Not on q35,
    // where it is an AHCI drive: with QEMU 10 (SeaBIOS 1.16.3) "Booting
    // from DVD/CD..." on it never ends here, natively as under the shim.
    if sc.machine.starts_with("pc") {
        args.extend(
            "-drive if=ide,index=2,media=cdrom"
                .split_whitespace()
                .map(String::from),
        );
    }
    args.push("-machine".into());
    args.push(sc.machine.into());
    args.push("-smp".into());
    args.push(sc.smp.to_string());
    args.push("-serial".into());
    args.push(format!("file:{}", serial.display()));
    args.push("-chardev".into());
    args.push(format!("file,id=kvmngdbg,path={}", debugcon.display()));
    args.push("-device".into());
    args.push("isa-debugcon,iobase=0x402,chardev=kvmngdbg".into());
    args.push("-device".into());
    args.push("isa-debug-exit,iobase=0xf4,iosize=0x04".into());
    if let Some(g) = sc.guest {
        let elf = cfg
            .guests
            .get(&g)
            .with_context(|| format!("the {} guest was not built", g.name()))?;
        args.push("-kernel".into());
        args.push(elf.display().to_string());
    }
    let channel_file = match sc.channel {
        Channel::Debugcon => debugcon.clone(),
        Channel::Serial => serial.clone(),
    };
    // The trace (one line per KVM ioctl, with its thread) is what the
    // per-thread check reads; it costs a write(2) per call.
    let env = mode.env(cfg.shim.as_deref(), &stats_path, Some(trace_path.as_path()))?;
    let ended = exec::run(&exec::Spec {
        program: cfg.qemu.clone(),
        args,
        cwd: dir.clone(),
        env,
        log: log.clone(),
        timeout: cfg.timeout,
        stop_when: sc
            .stop_marker
            .map(|m| (channel_file.clone(), m.to_string())),
    })?;
    Ok(finished_run(
        mode,
        ended,
        &channel_file,
        log,
        &stats_path,
        &trace_path,
    ))
}

/// A run's record once its VMM has ended: what the guest printed in
/// `output` (the serial or debugcon file) and, for a shim mode, the census
/// in `stats_path` and the per-thread calls of the trace in `trace_path`.
fn finished_run(
    mode: Mode,
    ended: exec::Ended,
    output: &Path,
    log: PathBuf,
    stats_path: &Path,
    trace_path: &Path,
) -> QemuRun {
    QemuRun {
        mode,
        termination: ended.termination,
        stopped_on_marker: ended.stopped_on_marker,
        secs: ended.elapsed.as_secs_f64(),
        output: String::from_utf8_lossy(&std::fs::read(output).unwrap_or_default()).into_owned(),
        log,
        stats: if mode.is_shim() {
            stats::read(stats_path)
        } else {
            None
        },
        threads: if mode.is_shim() {
            std::fs::read(trace_path)
                .ok()
                .map(|b| parse_trace(&String::from_utf8_lossy(&b)))
        } else {
            None
        },
    }
}

/// Runs a libkrun scenario: cfg.qemu is compat-tests/kvmng-krun's launcher.
#[allow(clippy::too_many_arguments)]
fn run_krun(
    cfg: &QemuConfig,
    sc: &Scenario,
    mode: Mode,
    dir: &Path,
    serial: &Path,
    log: &Path,
    stats_path: &Path,
    trace_path: &Path,
) -> Result<QemuRun> {
    let elf = sc
        .guest
        .and_then(|g| cfg.guests.get(&g))
        .context("a libkrun scenario needs its guest")?;
    let args = vec![
        "--vcpus".to_string(),
        sc.smp.to_string(),
        "--mem".to_string(),
        "64".to_string(),
        "--serial".to_string(),
        serial.display().to_string(),
        elf.display().to_string(),
    ];
    let env = mode.env(cfg.shim.as_deref(), stats_path, Some(trace_path))?;
    let ended = exec::run(&exec::Spec {
        program: cfg.qemu.clone(),
        args,
        cwd: dir.to_path_buf(),
        env,
        log: log.to_path_buf(),
        timeout: cfg.timeout,
        stop_when: None,
    })?;
    Ok(finished_run(
        mode,
        ended,
        serial,
        log.to_path_buf(),
        stats_path,
        trace_path,
    ))
}

/// Per mode (in run order), the wall time summed over `results` and its
/// ratio to native's sum (shim modes): single runs are noisy on a loaded
/// host, the sum less so.
pub fn mode_totals(results: &[&ScenarioResult]) -> Vec<(Mode, f64, Option<f64>)> {
    let modes: Vec<Mode> = results
        .first()
        .map(|r| r.runs.iter().map(|x| x.mode).collect())
        .unwrap_or_default();
    let sum = |m: Mode| -> f64 {
        results
            .iter()
            .flat_map(|r| r.runs.iter().filter(move |x| x.mode == m))
            .map(|x| x.secs)
            .sum()
    };
    let native = sum(Mode::Native);
    modes
        .into_iter()
        .map(|m| {
            let t = sum(m);
            (m, t, (m.is_shim() && native > 0.0).then(|| t / native))
        })
        .collect()
}

/// A shim run's wall time over native's, in the same scenario.
pub fn ratio(r: &ScenarioResult, run: &QemuRun) -> Option<f64> {
    let native = r.runs.iter().find(|x| x.mode == Mode::Native)?;
    (native.secs > 0.0).then(|| run.secs / native.secs)
}

/// One cell of the table: how the run ended, its time and (shim modes) the
/// ratio to native.
pub fn cell(r: &ScenarioResult, run: &QemuRun) -> String {
    match (run.mode.is_shim(), ratio(r, run)) {
        (true, Some(x)) => format!("{}, {:.2} s ({x:.2}x)", run.ending(), run.secs),
        _ => format!("{}, {:.2} s", run.ending(), run.secs),
    }
}

/// One shim run's per-thread census, in a few words.
pub fn run_threads_summary(smp: u32, run: &QemuRun) -> String {
    match &run.threads {
        None => format!("{}: no trace", run.mode),
        Some(c) => {
            let vcpus = c.threads.iter().filter(|t| t.is_vcpu()).count();
            let bad = check_threads(smp, run.mode, Some(c)).len()
                + check_census_threads(smp, run.mode, run.stats.as_ref()).len();
            format!(
                "{}: {vcpus} vCPU threads of {} (census: {}), {}",
                run.mode,
                c.threads.len(),
                census_vcpu_threads(run.stats.as_ref()),
                if bad == 0 {
                    format!("hot calls all {}", hot_path(run.mode))
                } else {
                    format!("**{bad} problems**")
                }
            )
        }
    }
}

/// The per-thread census of a scenario's shim runs, in a few words.
pub fn threads_summary(r: &ScenarioResult) -> String {
    r.runs
        .iter()
        .filter(|x| x.mode.is_shim())
        .map(|run| run_threads_summary(r.scenario.smp, run))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The Markdown section for docs/compat.md: one table per QEMU version.
/// `skipped`: (QEMU version, scenario, why).
pub fn markdown(
    results: &[ScenarioResult],
    generated: &str,
    kernel: &str,
    skipped: &[(String, String, String)],
    shim: Option<&Path>,
) -> String {
    let mut s = String::new();
    let ok = results.iter().all(|r| r.problems.is_empty());
    let mut versions: Vec<&str> = Vec::new();
    for r in results {
        if !versions.contains(&r.qemu.as_str()) {
            versions.push(&r.qemu);
        }
    }
    let _ = writeln!(
        s,
        "Run of {generated} on host kernel {kernel} with {}{}.\n",
        versions.join(" and "),
        shim.map(|p| format!(", shim `{}`", crate::shown_path(p)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "{}\n",
        if ok {
            "**Result: every scenario ended the same way and printed the same output natively and under the shim.**"
        } else {
            "**Result: FAILED (problems listed below).**"
        }
    );
    let _ = writeln!(
        s,
        "Wall time of each run, and for the shim modes its ratio to native in the same scenario (runs of one scenario follow each other; other load on the host shifts all of them).\n"
    );
    for v in &versions {
        let rs: Vec<&ScenarioResult> = results.iter().filter(|r| r.qemu == *v).collect();
        let modes: Vec<Mode> = rs
            .first()
            .map(|r| r.runs.iter().map(|x| x.mode).collect())
            .unwrap_or_default();
        let _ = writeln!(s, "{v}:\n");
        let mut header = "| scenario | machine | vCPUs |".to_string();
        let mut rule = "|---|---|---:|".to_string();
        for m in &modes {
            let _ = write!(header, " {m} |");
            rule.push_str("---|");
        }
        let _ = writeln!(
            s,
            "{header} output lines | same output | per-thread census |\n{rule}---:|---|---|"
        );
        for r in &rs {
            let mut row = format!(
                "| `{}` | {} | {} |",
                r.scenario.name, r.scenario.machine, r.scenario.smp
            );
            for run in &r.runs {
                let _ = write!(row, " {} |", cell(r, run));
            }
            let lines = r.runs.first().map_or(0, |x| x.output.lines().count());
            let same = match (r.problems.is_empty(), r.flaky.is_empty()) {
                (false, _) => "**no**",
                (true, true) => "yes",
                (true, false) => "yes (on re-run; native failed at first)",
            };
            let _ = writeln!(s, "{row} {lines} | {same} | {} |", threads_summary(r));
        }
        let totals = mode_totals(&rs);
        let mut row = "| all, summed | | |".to_string();
        for (_, secs, ratio) in &totals {
            match ratio {
                Some(x) => {
                    let _ = write!(row, " {secs:.2} s ({x:.2}x) |");
                }
                None => {
                    let _ = write!(row, " {secs:.2} s |");
                }
            }
        }
        let _ = writeln!(s, "{row} | | |");
        for (_, name, why) in skipped.iter().filter(|x| x.0 == *v) {
            let _ = writeln!(s, "| `{name}` | | | {why} |");
        }
        s.push('\n');
    }
    let mut seen = Vec::new();
    for r in results {
        if !seen.contains(&r.scenario.name) {
            seen.push(r.scenario.name);
            let _ = writeln!(s, "- `{}`: {}", r.scenario.name, r.scenario.what);
        }
        for p in &r.problems {
            let _ = writeln!(s, "  - PROBLEM ({}): {p}", r.qemu);
        }
        for p in &r.flaky {
            let _ = writeln!(
                s,
                "  - native failed at first ({}; every mode ran again and passed, so not failing): {p}",
                r.qemu
            );
        }
    }
    s.push('\n');
    for g in Guest::ALL {
        let Some(dev) = results
            .iter()
            .filter(|r| r.scenario.guest == Some(g))
            .max_by_key(|r| r.scenario.smp)
        else {
            continue;
        };
        if let Some(native) = dev.runs.first() {
            let _ = writeln!(
                s,
                "The serial output of `{}` ({}, native; identical under the shim when the result says so):\n",
                dev.scenario.name, dev.qemu
            );
            let _ = writeln!(s, "```\n{}\n```\n", native.output.trim_end());
        }
    }
    let _ = writeln!(s, "Shim statistics, per scenario:\n");
    let mut per_mode: BTreeMap<Mode, ModeStats> = BTreeMap::new();
    for r in results {
        for run in r.runs.iter().filter(|x| x.mode.is_shim()) {
            let mut st = ModeStats::default();
            st.add_run(run.stats.as_ref());
            per_mode
                .entry(run.mode)
                .or_default()
                .add_run(run.stats.as_ref());
            let t = st.total();
            let _ = writeln!(
                s,
                "- `{}` ({}, {}): {} process(es), {} calls: {} translated, {} fallback, {} passthrough, {} errors",
                r.scenario.name, r.qemu, run.mode, st.processes, t.count, t.translated, t.fallback, t.passthrough, t.errors
            );
        }
    }
    s.push('\n');
    let _ = writeln!(s, "Per command, all scenarios together:\n");
    for (m, st) in &per_mode {
        s.push_str(&st.markdown(m.as_str()));
    }
    s
}

/// The major version in `qemu --version`'s first line ("QEMU emulator
/// version 10.0.2 (...)").
pub fn qemu_major(version: &str) -> Option<u32> {
    version
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
}

/// `qemu-system-x86_64 --version`'s first line.
pub fn qemu_version(qemu: &Path) -> String {
    std::process::Command::new(qemu)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "QEMU (version unknown)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trace of `vcpus` vCPU threads and a main thread, every call on
    /// `path`.
    fn trace(vcpus: u32, path: &str) -> String {
        let mut t = format!(
            "pid=7 tid=7 cmd=KVM_SET_USER_MEMORY_REGION fd=5 class=vm ret=0 ns=1 path={path}\n"
        );
        for i in 0..vcpus {
            let tid = 8 + i;
            t += &format!("pid=7 tid={tid} cmd=KVM_RUN fd=9 class=vcpu ret=0 ns=1 path={path}\n");
            t += &format!(
                "pid=7 tid={tid} cmd=KVM_IRQ_LINE_STATUS fd=5 class=vm ret=1 ns=1 path={path}\n"
            );
        }
        t
    }

    fn run(mode: Mode, t: Termination, marker: bool, out: &str) -> QemuRun {
        QemuRun {
            mode,
            termination: t,
            stopped_on_marker: marker,
            secs: 1.0,
            output: out.into(),
            log: "l".into(),
            stats: None,
            threads: mode
                .is_shim()
                .then(|| parse_trace(&trace(1, hot_path(mode)))),
        }
    }

    fn expected() -> Vec<String> {
        vec![
            "kvmng devices guest: start".into(),
            "kvmng devices guest: done".into(),
        ]
    }

    const GOOD: &str = "kvmng devices guest: start\nhpet: x\nkvmng devices guest: done\n";

    #[test]
    fn expected_lines_in_order() {
        let e = expected();
        assert_eq!(missing_line(GOOD, &e), None);
        assert_eq!(
            missing_line(
                "kvmng devices guest: done\nkvmng devices guest: start\n",
                &e
            ),
            Some("kvmng devices guest: done")
        );
        assert_eq!(
            missing_line("kvmng devices guest: start\n", &e),
            Some("kvmng devices guest: done")
        );
        // A whole line, not a substring.
        assert!(missing_line(
            "xx kvmng devices guest: start\nkvmng devices guest: done",
            &e
        )
        .is_some());
    }

    #[test]
    fn guest_scenario_checks() {
        let sc = &scenarios(&expected())[1];
        let ok = vec![
            run(Mode::Native, Termination::Exited(33), false, GOOD),
            run(Mode::Auto, Termination::Exited(33), false, GOOD),
        ];
        assert!(check(sc, &ok).is_empty());
        let bad_exit = vec![
            run(Mode::Native, Termination::Exited(33), false, GOOD),
            run(Mode::Auto, Termination::Exited(35), false, GOOD),
        ];
        let p = check(sc, &bad_exit);
        assert!(
            p.iter()
                .any(|x| x.contains("expected exit status 33, got exit 35")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|x| x.contains("ended with exit 35, native with exit 33")),
            "{p:?}"
        );
        let bad_out = vec![
            run(Mode::Native, Termination::Exited(33), false, GOOD),
            run(
                Mode::Auto,
                Termination::Exited(33),
                false,
                &GOOD.replace("hpet: x", "hpet: y"),
            ),
        ];
        let p = check(sc, &bad_out);
        assert_eq!(
            p,
            vec![
                "auto: output differs from native at line 2: native \"hpet: x\", shim \"hpet: y\""
                    .to_string()
            ]
        );
        // Both fail the same way: still a failure (the guest's own check).
        let both_bad = vec![
            run(
                Mode::Native,
                Termination::TimedOut,
                false,
                "kvmng devices guest: start\n",
            ),
            run(
                Mode::Auto,
                Termination::TimedOut,
                false,
                "kvmng devices guest: start\n",
            ),
        ];
        assert_eq!(check(sc, &both_bad).len(), 4);
    }

    #[test]
    fn seabios_scenario_checks() {
        let sc = &scenarios(&expected())[0];
        assert_eq!(sc.smp, 2);
        // Runs whose traces show the scenario's two vCPU threads.
        let run = |m: Mode, t: Termination, marker: bool, out: &str| QemuRun {
            threads: m.is_shim().then(|| parse_trace(&trace(2, hot_path(m)))),
            ..run(m, t, marker, out)
        };
        let log = "SeaBIOS (version 1.16.2)\nCPU Mhz=2600 (kvmclock)\nNo bootable device.\n";
        let ok = vec![
            run(Mode::Native, Termination::Exited(0), true, log),
            run(
                Mode::Auto,
                Termination::Exited(0),
                true,
                &log.replace("2600", "2599"),
            ),
        ];
        assert!(check(sc, &ok).is_empty(), "{:?}", check(sc, &ok));
        let reordered = vec![
            run(Mode::Native, Termination::Exited(0), true, log),
            run(
                Mode::Auto,
                Termination::Exited(0),
                true,
                "CPU Mhz=2600 (kvmclock)\nSeaBIOS (version 1.16.2)\nNo bootable device.\n",
            ),
        ];
        assert!(check(sc, &reordered).is_empty());
        let hung = vec![
            run(Mode::Native, Termination::Exited(0), true, log),
            run(
                Mode::Auto,
                Termination::TimedOut,
                false,
                "SeaBIOS (version 1.16.2)\n",
            ),
        ];
        let p = check(sc, &hung);
        assert!(
            p.iter()
                .any(|x| x.contains("\"No bootable device.\" did not appear (TIMEOUT)")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|x| x.contains("lines only natively: 2 (")
                && x.contains("lines only under the shim: 0 ()")),
            "{p:?}"
        );
    }

    #[test]
    fn scenario_rerun_only_when_native_failed() {
        let sc = &scenarios(&expected())[1];
        // Auto differs the first time: a problem at once, with no re-run
        // (the re-run would have passed and hidden it).
        let mut calls = 0;
        let r = run_scenario(sc, &[Mode::Native, Mode::Auto], |m, rerun| {
            calls += 1;
            let code = if m == Mode::Auto && !rerun { 35 } else { 33 };
            Ok(run(m, Termination::Exited(code), false, GOOD))
        })
        .unwrap();
        assert_eq!(calls, 2);
        assert!(!r.problems.is_empty());
        assert!(r.flaky.is_empty());
        // Native fails its own checks the first time: every mode runs
        // again, the re-runs decide, and the first round is reported.
        let mut calls = 0;
        let r = run_scenario(sc, &[Mode::Native, Mode::Auto], |m, rerun| {
            calls += 1;
            let t = if m == Mode::Native && !rerun {
                Termination::TimedOut
            } else {
                Termination::Exited(33)
            };
            Ok(run(m, t, false, GOOD))
        })
        .unwrap();
        assert_eq!(calls, 4);
        assert!(r.problems.is_empty());
        assert!(
            r.flaky.iter().any(|p| p.starts_with("native:")),
            "{:?}",
            r.flaky
        );
        assert!(r
            .runs
            .iter()
            .all(|x| x.termination == Termination::Exited(33)));
        // Native fails, and Auto differs on the re-run too: real.
        let r = run_scenario(sc, &[Mode::Native, Mode::Auto], |m, rerun| {
            let t = match (m, rerun) {
                (Mode::Native, false) => Termination::TimedOut,
                (Mode::Native, true) => Termination::Exited(33),
                _ => Termination::Exited(35),
            };
            Ok(run(m, t, false, GOOD))
        })
        .unwrap();
        assert!(r.problems.iter().any(|p| p.starts_with("first run:")));
        assert!(r.problems.iter().any(|p| p.starts_with("re-run:")));
        // All good: no re-run.
        let mut calls = 0;
        let r = run_scenario(sc, &[Mode::Native, Mode::Auto], |m, _| {
            calls += 1;
            Ok(run(m, Termination::Exited(33), false, GOOD))
        })
        .unwrap();
        assert_eq!((calls, r.problems.len(), r.flaky.len()), (2, 0, 0));
    }

    #[test]
    fn normalize_masks_only_frequencies() {
        assert_eq!(
            normalize("CPU Mhz=2600 (kvmclock)\nPCI 00:02.0"),
            "CPU Mhz=#### (kvmclock)\nPCI 00:02.0"
        );
        assert_eq!(first_difference("a\nb", "a\nb"), None);
        assert_eq!(
            first_difference("a", "a\nb"),
            Some((2, "<end of output>".into(), "b".into()))
        );
    }

    #[test]
    fn report_lists_problems() {
        let sc = scenarios(&expected()).remove(1);
        let runs = vec![
            run(Mode::Native, Termination::Exited(33), false, GOOD),
            run(Mode::Auto, Termination::Exited(33), false, GOOD),
        ];
        let good = ScenarioResult {
            qemu: "QEMU 7.2".into(),
            problems: check(&sc, &runs),
            scenario: sc.clone(),
            runs: runs.clone(),
            flaky: Vec::new(),
        };
        let md = markdown(std::slice::from_ref(&good), "now", "6.18", &[], None);
        assert!(
            md.contains("**Result: every scenario ended the same way"),
            "{md}"
        );
        assert!(
            md.contains("| `devices` | pc | 1 | exit 33, 1.00 s | exit 33, 1.00 s (1.00x) | 3 | yes | auto: 1 vCPU threads of 2 (census: 0), hot calls all translated |"),
            "{md}"
        );
        assert!(md.contains("No command statistics"), "{md}");
        assert!(
            md.contains("| all, summed | | | 1.00 s | 1.00 s (1.00x) | | |"),
            "{md}"
        );
        let bad = ScenarioResult {
            qemu: "QEMU 7.2".into(),
            problems: vec!["auto: boom".into()],
            scenario: sc,
            runs,
            flaky: Vec::new(),
        };
        let md = markdown(&[bad], "now", "6.18", &[], None);
        assert!(
            md.contains("FAILED") && md.contains("PROBLEM (QEMU 7.2): auto: boom"),
            "{md}"
        );
    }

    #[test]
    fn smp_guest_lines() {
        assert_eq!(
            smp_expected(1),
            vec![
                "kvmng smp guest: start",
                "fw_cfg: 1 cpus",
                "cpu 0: bootstrap processor, apic id 0",
                "all 1 cpus up",
                "cpu 0: ipi 0x41 from cpu 0",
                "cpu 0: pit irq0 via 8259: at least 10 interrupts",
                "cpu 0: lapic timer: at least 5 interrupts",
                "kvmng smp guest: done",
            ]
        );
        let four = smp_expected(4);
        assert_eq!(four.len(), 8 + 3 + 3 + 3);
        assert!(four.contains(&"cpu 3: up after INIT/SIPI, apic id 3".to_string()));
        let ring: Vec<&String> = four.iter().filter(|l| l.contains("ipi 0x41")).collect();
        assert_eq!(
            ring,
            vec![
                "cpu 1: ipi 0x41 from cpu 0",
                "cpu 2: ipi 0x41 from cpu 1",
                "cpu 3: ipi 0x41 from cpu 2",
                "cpu 0: ipi 0x41 from cpu 3"
            ]
        );
        // Every scenario name is unique; the SMP ones cover -smp 1, 2, 4 and
        // pc, q35, microvm.
        let all = scenarios(&expected());
        let mut names: Vec<&str> = all.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        let smp: Vec<&Scenario> = all.iter().filter(|s| s.guest == Some(Guest::Smp)).collect();
        for n in [1, 2, 4] {
            assert!(smp.iter().any(|s| s.smp == n), "-smp {n}");
        }
        for m in ["pc", "q35", "microvm"] {
            assert!(smp.iter().any(|s| s.machine == m), "-M {m}");
        }
        // libkrun: its own build of the guest, the count from the MP table.
        let krun: Vec<&Scenario> = all.iter().filter(|s| s.vmm == Vmm::Krun).collect();
        assert!(!krun.is_empty());
        for k in krun {
            assert_eq!(k.guest, Some(Guest::SmpKrun));
            assert_eq!(k.expected[1], format!("mp table: {} cpus", k.smp));
            assert_eq!(k.expected[2..], smp_expected(k.smp)[2..]);
        }
    }

    #[test]
    fn per_thread_census() {
        let c = parse_trace(&trace(2, "translated"));
        assert_eq!((c.lines, c.bad_lines, c.threads.len()), (5, 0, 3));
        assert!(check_threads(2, Mode::Auto, Some(&c)).is_empty());
        assert_eq!(
            check_threads(4, Mode::Auto, Some(&c)),
            vec!["auto: 2 threads ran KVM_RUN, expected one per vCPU (4)"]
        );
        let p = check_threads(2, Mode::Passthrough, Some(&c));
        assert!(
            p.iter()
                .any(|x| x == "passthrough: thread 8 (vCPU): KVM_RUN not passthrough: 1 translated"),
            "{p:?}"
        );
        // One vCPU thread's KVM_RUN fell back once: named, with its thread.
        let mixed = trace(2, "translated")
            + "pid=7 tid=9 cmd=KVM_RUN fd=10 class=vcpu ret=0 ns=1 path=fallback reason=\"x y\"\ngarbage\n";
        let c = parse_trace(&mixed);
        assert_eq!(c.bad_lines, 1);
        let p = check_threads(2, Mode::Auto, Some(&c));
        assert_eq!(
            p,
            vec![
                "auto: 1 trace lines unreadable",
                "auto: thread 9 (vCPU): KVM_RUN not translated: 1 fallback"
            ]
        );
        assert_eq!(
            check_threads(1, Mode::Auto, None),
            vec!["auto: the shim wrote no trace"]
        );
    }

    #[test]
    fn qemu_versions() {
        assert_eq!(
            qemu_major("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)"),
            Some(10)
        );
        assert_eq!(
            qemu_major("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"),
            Some(7)
        );
        assert_eq!(qemu_major("QEMU (version unknown)"), None);
        let all = scenarios(&expected());
        let uirq = all
            .iter()
            .find(|s| s.name == "devices-userspace-irqchip")
            .unwrap();
        assert!(uirq.skip_reason(Some(7)).is_none());
        assert!(uirq.skip_reason(None).is_none());
        assert!(uirq.skip_reason(Some(10)).unwrap().contains("QEMU 10"));
    }

    #[test]
    fn census_thread_rows() {
        let line = |mode: &str, rows: &[(u64, Option<u64>, &str, u64)]| {
            let threads: Vec<String> = rows
                .iter()
                .map(|(tid, vcpu, path, n)| {
                    let counts = |p: &str| {
                        format!(
                            "{{\"translated\":{},\"fallback\":{},\"passthrough\":{}}}",
                            if p == "translated" { *n } else { 0 },
                            if p == "fallback" { *n } else { 0 },
                            if p == "passthrough" { *n } else { 0 }
                        )
                    };
                    format!(
                        "{{\"tid\":{tid},\"vcpu\":{},\"run\":{},\"setup\":{},\"other\":{}}}",
                        vcpu.map_or("null".to_string(), |v| v.to_string()),
                        counts(path),
                        counts("fallback"),
                        counts(path)
                    )
                })
                .collect();
            crate::stats::parse(&format!(
                "{{\"pid\":7,\"exe\":\"/q\",\"mode\":\"{mode}\",\"backend\":\"legacy\",\"commands\":[],\"threads\":[{}],\"threads_uncounted\":0}}\n",
                threads.join(",")
            ))
        };
        let ok = line(
            "auto",
            &[(8, Some(0), "translated", 5), (9, Some(1), "translated", 3)],
        );
        assert_eq!(census_vcpu_threads(Some(&ok)), 2);
        assert!(check_census_threads(2, Mode::Auto, Some(&ok)).is_empty());
        assert_eq!(
            check_census_threads(4, Mode::Auto, Some(&ok)),
            vec!["auto: census: vCPU threads ran vCPUs [0, 1], expected 0..4 one each"]
        );
        let bad = line(
            "auto",
            &[(8, Some(0), "translated", 5), (9, Some(1), "fallback", 3)],
        );
        assert_eq!(
            check_census_threads(2, Mode::Auto, Some(&bad)),
            vec!["auto: census: thread 9 (vCPU 1): 6 of its KVM_RUN and later vCPU calls not translated"]
        );
        let pt = line("passthrough", &[(8, Some(0), "passthrough", 5)]);
        assert!(check_census_threads(1, Mode::Passthrough, Some(&pt)).is_empty());
        // No thread rows (an older shim): nothing to check here.
        let old = line("auto", &[]);
        assert!(check_census_threads(2, Mode::Auto, Some(&old)).is_empty());
        assert!(check_census_threads(2, Mode::Auto, None).is_empty());
    }
}
