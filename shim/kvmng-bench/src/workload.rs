//! One real workload, A/B end to end (`make vm-bench`): Debian's QEMU,
//! unmodified, boots the nested Linux to its marker inside the `-icount`
//! guest, once on the KVM ioctls and once through libkvmshim.so on the
//! kvmng syscalls, with one and with two vCPUs.
//!
//! `kvmng bench --child-cost F -- COMMAND` runs one boot and writes what
//! it cost ([`ChildCost`]): the CPU time of the process and all its
//! threads, from `wait4`'s rusage, which the kernel computes from the
//! scheduler's nanosecond runtime (so it counts, at microsecond
//! resolution, every instruction the guest machine executed for that
//! process: QEMU's own, the kernel's on its behalf, and the nested guest's
//! while QEMU's vCPU threads were in KVM_RUN), and the TSC ticks from start
//! to exit (the same plus the time the machine sat idle, which `-icount
//! sleep=off` skips to the next timer). bench-guest.sh adds the vCPU count,
//! the path, the marker line and the shim's census; bench.sh puts the
//! boots into vm-bench.json as `workload`; [`render`] makes the table.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

/// Instructions, with a unit that keeps billions readable.
fn fmt_count(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.3} G", n / 1e9)
    } else {
        crate::report::fmt_insns(n)
    }
}

/// What one command cost, as `--child-cost` writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildCost {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Its exit status, or `None` when a signal ended it.
    pub exit_status: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// User CPU time of the process and its threads, nanoseconds.
    pub user_ns: u64,
    /// System CPU time, nanoseconds.
    pub system_ns: u64,
    /// TSC ticks from the spawn to the end of the wait.
    pub tsc_ticks: u64,
}

impl ChildCost {
    /// User and system CPU time together.
    pub fn cpu_ns(&self) -> u64 {
        self.user_ns + self.system_ns
    }
}

/// One boot of the workload (bench-guest.sh: a [`ChildCost`] and what the
/// script adds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootRun {
    /// `ioctl` (QEMU alone) or `shim` (under `kvmng exec --mode syscall`).
    pub path: String,
    /// The nested guest's vCPUs (`-smp`).
    pub smp: u32,
    /// The nested guest's `kvmng-nested-ok` line, if it printed one.
    pub marker: Option<String>,
    /// KVM ioctls the shim saw (its census; shim path only).
    pub kvm_calls: Option<u64>,
    /// Of those, carried out as kvmng syscalls.
    pub translated: Option<u64>,
    /// What the boot cost.
    pub cost: ChildCost,
}

fn timeval_ns(tv: libc::timeval) -> u64 {
    (tv.tv_sec as u64) * 1_000_000_000 + (tv.tv_usec as u64) * 1000
}

/// Runs `command` to its end and measures it.
pub fn measure(command: &[OsString]) -> anyhow::Result<ChildCost> {
    let Some((program, args)) = command.split_first() else {
        bail!("--child-cost needs a command after --, e.g. kvmng bench --child-cost F -- true");
    };
    let start = crate::clock::rdtsc();
    let child = std::process::Command::new(program)
        .args(args)
        .spawn()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: all-zero is a valid rusage, which wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = loop {
        // SAFETY: waits for our own child, whose status and usage go to
        // the locals; `child` is not waited for again (dropping it does
        // not wait).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break r;
        }
    };
    let tsc_ticks = crate::clock::rdtsc().wrapping_sub(start);
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context("wait4");
    }
    let exit = std::process::ExitStatus::from_raw(status);
    Ok(ChildCost {
        command: command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        exit_status: exit.code(),
        signal: exit.signal(),
        user_ns: timeval_ns(usage.ru_utime),
        system_ns: timeval_ns(usage.ru_stime),
        tsc_ticks,
    })
}

/// `kvmng bench --child-cost F -- COMMAND`: measures, writes F, and
/// fails as the command failed (after writing F).
pub fn child_cost(out: &Path, command: &[OsString]) -> anyhow::Result<()> {
    let cost = measure(command)?;
    let text = serde_json::to_string_pretty(&cost)?;
    std::fs::write(out, text + "\n").with_context(|| format!("cannot write {}", out.display()))?;
    match (cost.exit_status, cost.signal) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => bail!("{} exited with status {code}", cost.command[0]),
        (None, Some(sig)) => bail!("{} was killed by signal {sig}", cost.command[0]),
        (None, None) => bail!("{} ended without a status", cost.command[0]),
    }
}

/// The target: the shim's boot at most this many times the
/// native one.
pub const TARGET: f64 = 1.00;

/// The markdown section of the workload (empty without boots).
pub fn render(boots: &[BootRun]) -> String {
    let mut s = String::new();
    if boots.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "One real workload, end to end: Debian's QEMU, unmodified, boots the nested Linux (the \
         same kernel, kernel-patch/vm-test/nested-init) to its `kvmng-nested-ok` marker inside \
         this guest, with `-accel kvm -cpu max,-svm -m 256`, on the KVM ioctls (QEMU alone) and \
         on the kvmng syscalls (`kvmng exec --mode syscall`). Instructions are the CPU time of \
         QEMU's process and all its threads (`wait4`'s rusage, one instruction per nanosecond \
         under `-icount shift=0`, microsecond resolution): QEMU's, the guest kernel's on its \
         behalf, and the nested guest's in KVM_RUN. Wall is the TSC from start to exit, the \
         same plus the time the machine sat idle (skipped to the next timer by `sleep=off`).\n"
    );
    let _ = writeln!(
        s,
        "| vCPUs | ioctl | shim | shim / ioctl | wall ioctl | wall shim | KVM calls (shim) | translated | (shim − ioctl) per call | target ≤ {TARGET:.2} |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let mut smps: Vec<u32> = boots.iter().map(|b| b.smp).collect();
    smps.sort_unstable();
    smps.dedup();
    for smp in smps {
        let of = |path: &str| boots.iter().find(|b| b.smp == smp && b.path == path);
        let (Some(ioctl), Some(shim)) = (of("ioctl"), of("shim")) else {
            let _ = writeln!(s, "| {smp} | (a boot is missing) | | | | | | | | |");
            continue;
        };
        let (i, h) = (ioctl.cost.cpu_ns() as f64, shim.cost.cpu_ns() as f64);
        let ratio = h / i;
        let calls = shim.kvm_calls.unwrap_or(0);
        let per_call = if calls > 0 {
            format!("{:.0}", (h - i) / calls as f64)
        } else {
            "-".into()
        };
        let ok = ioctl.marker.is_some() && shim.marker.is_some();
        let verdict = match (ok, ratio <= TARGET) {
            (false, _) => "no marker: not comparable",
            (true, true) => "met",
            (true, false) => "missed",
        };
        let _ = writeln!(
            s,
            "| {smp} | {} | {} | {ratio:.4} | {} | {} | {calls} | {} | {per_call} | {verdict} |",
            fmt_count(i),
            fmt_count(h),
            fmt_count(ioctl.cost.tsc_ticks as f64),
            fmt_count(shim.cost.tsc_ticks as f64),
            shim.translated.map_or("-".into(), |t| t.to_string()),
        );
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_measured_and_its_failure_reported() {
        let cost = measure(&[
            "sh".into(),
            "-c".into(),
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done".into(),
        ])
        .unwrap();
        assert_eq!(cost.exit_status, Some(0));
        assert!(cost.cpu_ns() > 0, "{cost:?}");
        assert!(cost.tsc_ticks > 0);
        let cost = measure(&["sh".into(), "-c".into(), "exit 3".into()]).unwrap();
        assert_eq!(cost.exit_status, Some(3));
        let dir = std::env::temp_dir().join(format!("child-cost-{}", std::process::id()));
        let err = child_cost(&dir, &["false".into()]).unwrap_err();
        assert!(
            format!("{err:#}").contains("exited with status 1"),
            "{err:#}"
        );
        let _ = std::fs::remove_file(&dir);
        assert!(measure(&[]).is_err());
        assert!(measure(&["/nonexistent/program".into()]).is_err());
    }

    fn boot(path: &str, smp: u32, cpu: u64, calls: Option<u64>) -> BootRun {
        BootRun {
            path: path.into(),
            smp,
            marker: Some("kvmng-nested-ok".into()),
            kvm_calls: calls,
            translated: calls,
            cost: ChildCost {
                command: vec!["qemu".into()],
                exit_status: Some(33),
                signal: None,
                user_ns: cpu,
                system_ns: 0,
                tsc_ticks: cpu * 2,
            },
        }
    }

    #[test]
    fn the_table_compares_each_vcpu_count() {
        let t = render(&[
            boot("ioctl", 1, 1_000_000, None),
            boot("shim", 1, 999_000, Some(1000)),
            boot("ioctl", 2, 2_000_000, None),
            boot("shim", 2, 2_010_000, Some(100)),
        ]);
        assert!(t.contains("| 1 | 1.00 M | 999.0 k | 0.9990 |"), "{t}");
        assert!(t.contains("| -1 | met |"), "{t}");
        assert!(t.contains("| 100 | 100 | 100 | missed |"), "{t}");
        assert!(render(&[]).is_empty());
    }
}
