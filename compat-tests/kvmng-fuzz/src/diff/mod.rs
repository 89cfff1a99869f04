//! `kvmng-fuzz --differential`: the kernel's kvmng syscalls against the
//! library's emulation of them (docs/reliability.md, "Differential").
//!
//! A round is a seeded sequence of operations (ops.rs): the set-up of a
//! VM, then random kvmng calls of every kind, from three threads and from
//! fork children, with bad pointers, guard pages, unknown flags and
//! boundary counts, and a guest that makes port, MMIO, string and HLT
//! exits, some served by device threads over I/O regions. The supervisor
//! forks one process per side (side.rs); each makes the whole round
//! through its backend and records every outcome (rc, errno, every output
//! byte, the guest's exits, the bytes its devices received) in a trace;
//! the supervisor compares the traces record by record. The generator
//! feeds only on outcomes, so both sides draw the same operations until
//! they first differ. The differences docs/api.md lists are masked
//! exactly (mask6.rs); anything else is a divergence.

pub mod device;
pub mod guest;
pub mod mask6;
pub mod ops;
pub mod side;
pub mod trace;

use crate::mask;
use kvmng::backend::BackendKind;
use side::{Mem, Side};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use trace::{Rec, Trace};

pub struct Args {
    pub execs: u64,
    pub seconds: u64,
    pub seed: u64,
    pub ops: u64,
    pub round: Option<u64>,
    pub verbose: bool,
    pub regressions: bool,
    pub sides: [BackendKind; 2],
    pub report: Option<String>,
    /// No I/O region over the guest's string port: the known kernel bug
    /// of docs/reliability.md (string OUT not sent) is not hit again.
    pub known_kernel_bugs: bool,
    /// Stop after this many divergences, crashes and hangs.
    pub max_divergences: usize,
}

/// The errno values docs/api.md documents per syscall (its tables), which
/// the census must show reached, or name.
const DOCUMENTED: [&[i32]; 10] = [
    &[
        libc::EINVAL,
        libc::EBADF,
        libc::ENODEV,
        libc::EACCES,
        libc::EEXIST,
        libc::EMFILE,
    ],
    &[
        libc::EINVAL,
        libc::EBADF,
        libc::EIO,
        libc::EEXIST,
        libc::EMFILE,
    ],
    &[
        libc::EINVAL,
        libc::EUNATCH,
        libc::EBUSY,
        libc::EEXIST,
        libc::EMFILE,
    ],
    &[
        libc::EINVAL,
        libc::EBADF,
        libc::EIO,
        libc::EBUSY,
        libc::EMFILE,
    ],
    &[
        libc::EINVAL,
        libc::ESRCH,
        libc::EINTR,
        libc::EFAULT,
        // Not ENOEXEC: api.md names it among KVM_RUN's errnos, but x86's
        // KVM_RUN never returns it (arm64's does, for a vCPU never
        // initialized).
        libc::EIO,
        libc::EPIPE,
        libc::EBADMSG,
    ],
    &[libc::EINVAL, libc::ESRCH, libc::E2BIG, libc::EFAULT],
    &[libc::EINVAL, libc::EUNATCH, libc::ESRCH, libc::ENXIO],
    &[
        libc::EINVAL,
        libc::EUNATCH,
        libc::E2BIG,
        libc::EFAULT,
        libc::EEXIST,
        libc::ENOMEM,
    ],
    &[
        libc::EINVAL,
        libc::EUNATCH,
        libc::ESRCH,
        libc::ENOTTY,
        libc::EFAULT,
    ],
    &[
        libc::EINVAL,
        libc::EUNATCH,
        libc::EFAULT,
        libc::E2BIG,
        libc::EBADF,
        libc::ENOTSOCK,
        libc::EAFNOSUPPORT,
        libc::EPROTOTYPE,
        libc::ENOTCONN,
        libc::EEXIST,
        libc::ENOSPC,
        libc::ENOENT,
        libc::ENOMEM,
        libc::EMFILE,
    ],
];

fn errname(e: i32) -> String {
    if e == 0 {
        "ok".into()
    } else {
        kvmng::Errno(e).name().to_string()
    }
}

/// The supervisor's totals.
#[derive(Default)]
struct Totals {
    rounds: u64,
    execs: u64,
    /// [syscall][errno] -> count (native side; the same on the other up to
    /// the masked differences).
    census: BTreeMap<(u8, i32), u64>,
    masked: BTreeMap<&'static str, u64>,
    ended_by: BTreeMap<&'static str, u64>,
    divergences: Vec<String>,
    failures: Vec<String>,
    /// Divergences by syscall, outcomes and what differed.
    signatures: BTreeMap<String, u64>,
}

/// Compares two records; None when they are the same (or differ exactly
/// as a §6 passage allows: then Some(Ok(hint name))).
fn compare(a: &Rec, b: &Rec) -> Option<Result<&'static str, String>> {
    let mut oa = a.out.clone();
    let mut ob = b.out.clone();
    if !a.xsave.is_empty()
        && a.xsave == b.xsave
        && oa.starts_with(b"arena*")
        && ob.starts_with(b"arena*")
    {
        for &x in &a.xsave {
            let p = 6 + x as usize;
            if p < oa.len() && p < ob.len() {
                let (ea, eb) = (oa.len(), ob.len());
                mask::xsave_pair(
                    kvmng_abi::ioctls::KVM_GET_XSAVE,
                    &mut oa[p..ea.min(p + 4096)],
                    &mut ob[p..eb.min(p + 4096)],
                );
            }
        }
    }
    if a.sys == b.sys
        && a.hint == b.hint
        && a.ret == b.ret
        && a.errno == b.errno
        && oa == ob
        && a.idx == b.idx
    {
        return None;
    }
    if let Some(h) = mask6::allowed(a, b) {
        return Some(Ok(match h {
            mask6::Hint::CapKvmng => {
                "api.md §4 Capability: KVM_CAP_KVMNG reads 0 under the emulation"
            }
            mask6::Hint::EmfileTwo => "api.md §6 The emulation needs fds (two for create)",
            mask6::Hint::EmfileOne => "api.md §6 The emulation needs fds (one for bind/ADD)",
            mask6::Hint::EmfileBeforeEexist => "api.md §6 The emulation needs fds (EMFILE before the kernel's EEXIST)",
            mask6::Hint::DeadBind => "api.md §6 A dead VM: the emulation's bind answers EIO",
            mask6::Hint::ForeignRun => "api.md §6 Regions belong to the bound VM: another VM's vCPU served by the bound VM's regions",
            mask6::Hint::RollbackForgotten => "api.md §6 Rollback: a multi-region map after a binding change, refused up front (EINVAL) by the kernel only",
            mask6::Hint::SocketOtherVm => "api.md §6 Region sockets: a fork child's ADD on the parent's socket, EBUSY by the kernel only",
            mask6::Hint::RetriedAfterIoctl => "api.md §6 The retried access is read from kvm_run: sent again after a KVM_RUN ioctl that returned EINTR",
            _ => "?",
        }));
    }
    let show = |r: &Rec| {
        if r.errno != 0 {
            format!("-1 {}", errname(r.errno))
        } else {
            r.ret.to_string()
        }
    };
    let mut s = format!(
        "op {}{}: {}\n    native/A: {}   legacy/B: {}",
        a.idx & 0x7fff_ffff,
        if a.idx & 0x8000_0000 != 0 {
            " (fork child)"
        } else {
            ""
        },
        a.what,
        show(a),
        show(b)
    );
    if a.what != b.what {
        s += &format!("\n    B's operation: {}", b.what);
    }
    for (side, r) in [("A", a), ("B", b)] {
        let e = exit_summary(&r.out);
        if !e.is_empty() || !r.diag.is_empty() {
            s += &format!("\n    {side} after it: {e} {}", r.diag);
        }
    }
    if oa != ob {
        let at = oa
            .iter()
            .zip(&ob)
            .position(|(x, y)| x != y)
            .unwrap_or(oa.len().min(ob.len()));
        let ctx = |o: &[u8]| -> String {
            let lo = at.saturating_sub(8);
            let hi = (at + 24).min(o.len());
            let txt = String::from_utf8_lossy(&o[..o.len().min(40)])
                .replace(|c: char| !c.is_ascii_graphic(), ".");
            format!(
                "{} bytes, head \"{txt}\", at {at}: {}",
                o.len(),
                o.get(lo..hi)
                    .map(|b| b
                        .iter()
                        .map(|x| format!("{x:02x}"))
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default()
            )
        };
        s += &format!(
            "\n    output differs at byte {at}:\n      A {}\n      B {}",
            ctx(&oa),
            ctx(&ob)
        );
    }
    Some(Err(s))
}

fn backend(k: BackendKind) -> &'static dyn kvmng::Backend {
    kvmng::select::backend(k)
}

struct Shared {
    progress: [AtomicU64; 2],
}

fn shared() -> &'static Shared {
    // SAFETY: a fresh shared anonymous mapping, zeroed, inherited by the
    // side processes; only accessed atomically.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert!(p != libc::MAP_FAILED);
    // SAFETY: zeroed memory is two valid AtomicU64, for the process's life.
    unsafe { &*(p as *const Shared) }
}

/// Forks the side `i` of round `seed`: returns its pid.
/// What a round runs: seeded random operations, or regression case n.
#[derive(Clone, Copy)]
enum Plan {
    Seeded(u64),
    Case(usize),
}

/// Forks the side `i` of a round: returns its pid.
#[allow(clippy::too_many_arguments)]
fn fork_side(
    i: usize,
    kind: BackendKind,
    mem: Mem,
    trace: &Trace,
    plan: Plan,
    ops: u64,
    sh: &'static Shared,
    avoid: bool,
) -> libc::pid_t {
    trace.clear();
    // SAFETY: the child runs the round and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let t = Trace::clone_of(trace);
        let mut side = Side::new(backend(kind), mem, t);
        match plan {
            Plan::Seeded(seed) => side::round(&mut side, seed, ops, &sh.progress[i], avoid),
            Plan::Case(n) => {
                let (_, irqchip, list) = &regress_cases()[n];
                side::fixed(&mut side, *irqchip, list, &sh.progress[i])
            }
        };
        // SAFETY: leaves at once: nothing of the supervisor's runs twice.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn round_seed(seed: u64, r: u64) -> u64 {
    crate::supervise::round_seed(seed, r) ^ 0xd1ff
}

/// Runs one round on both sides; its records, or the failure.
fn one_round(
    a: &Args,
    mem: Mem,
    traces: &[Trace; 2],
    sh: &'static Shared,
    r: u64,
    hang: Duration,
) -> Result<(Vec<Rec>, Vec<Rec>), String> {
    run_plan(
        a,
        mem,
        traces,
        sh,
        r,
        Plan::Seeded(round_seed(a.seed, r)),
        hang,
    )
}

#[allow(clippy::needless_range_loop)]
fn run_plan(
    a: &Args,
    mem: Mem,
    traces: &[Trace; 2],
    sh: &'static Shared,
    r: u64,
    plan: Plan,
    hang: Duration,
) -> Result<(Vec<Rec>, Vec<Rec>), String> {
    let seed = match plan {
        Plan::Seeded(s) => s,
        Plan::Case(n) => n as u64,
    };
    let mut pids = [0; 2];
    for i in 0..2 {
        sh.progress[i].store(0, Ordering::Relaxed);
        pids[i] = fork_side(
            i,
            a.sides[i],
            mem,
            &traces[i],
            plan,
            a.ops,
            sh,
            a.known_kernel_bugs,
        );
    }
    let t0 = Instant::now();
    let mut status = [None, None];
    let mut err = None;
    while status.iter().any(Option::is_none) {
        for i in 0..2 {
            if status[i].is_some() {
                continue;
            }
            let mut st = 0;
            // SAFETY: our child, not blocking.
            let p = unsafe { libc::waitpid(pids[i], &mut st, libc::WNOHANG) };
            if p == pids[i] {
                status[i] = Some(st);
            }
        }
        if status.iter().any(Option::is_none) {
            if t0.elapsed() > hang && err.is_none() {
                // Name every side still running: both may hang at once.
                let mut hung = Vec::new();
                for i in 0..2 {
                    if status[i].is_none() {
                        hung.push(format!(
                            "side {} ({}) at op {}",
                            i,
                            a.sides[i].name(),
                            sh.progress[i].load(Ordering::Relaxed)
                        ));
                        // SAFETY: our child.
                        unsafe { libc::kill(pids[i], libc::SIGKILL) };
                    }
                }
                err = Some(format!(
                    "round {r} (seed {seed:#x}): {} HUNG for {} s; reproduce: kvmng-fuzz --differential --seed {} --round {r} -v",
                    hung.join(" and "),
                    hang.as_secs(),
                    a.seed
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if let Some(e) = err {
        if a.verbose {
            // What both sides did up to the hang: the operations to narrow
            // it down with (the records of the hung side end at its last
            // finished operation).
            let recs = [traces[0].records(), traces[1].records()];
            tally(&mut Totals::default(), r, seed, &recs[0], &recs[1], true);
            for (i, rs) in recs.iter().enumerate() {
                for x in rs.iter().skip(recs[1 - i].len()) {
                    println!(
                        "  {:>4} side {i} only: {} = {} {}; {}",
                        x.idx,
                        x.what,
                        x.ret,
                        errname(x.errno),
                        exit_summary(&x.out)
                    );
                }
            }
        }
        return Err(e);
    }
    for i in 0..2 {
        let st = status[i].expect("reaped");
        if !(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0) {
            return Err(format!(
                "round {r} (seed {seed:#x}): side {i} ({}) CRASHED (status {st:#x}) at op {}; reproduce: kvmng-fuzz --differential --seed {} --round {r} -v",
                a.sides[i].name(), sh.progress[i].load(Ordering::Relaxed), a.seed
            ));
        }
    }
    Ok((traces[0].records(), traces[1].records()))
}

/// Compares a round's records into the totals; the first divergence ends
/// the comparison of the round.
fn tally(t: &mut Totals, r: u64, seed: u64, ra: &[Rec], rb: &[Rec], verbose: bool) {
    let n = ra.len().max(rb.len());
    for i in 0..n {
        let (Some(x), Some(y)) = (ra.get(i), rb.get(i)) else {
            t.divergences.push(format!(
                "round {r} (seed {seed:#x}): side A made {} operations, side B {}",
                ra.len(),
                rb.len()
            ));
            return;
        };
        if verbose {
            println!(
                "{:>5} {:<14} A {:>4} {:<8} B {:>4} {:<8} {}",
                x.idx & 0x7fff_ffff,
                ops::SYSCALL_NAMES[x.sys as usize % 11].trim_start_matches("kvmng_"),
                x.ret,
                errname(x.errno),
                y.ret,
                errname(y.errno),
                x.what.chars().take(150).collect::<String>()
            );
        }
        if verbose {
            for (side, r) in [("A", x), ("B", y)] {
                let e = exit_summary(&r.out);
                if !e.is_empty() {
                    println!("        {side}: {e}");
                }
            }
        }
        t.execs += 1;
        *t.census.entry((x.sys, x.errno)).or_default() += 1;
        match compare(x, y) {
            None => {}
            Some(Ok(why)) => {
                *t.masked.entry(why).or_default() += 1;
            }
            Some(Err(d)) => {
                let what = if x.errno != y.errno || x.ret != y.ret {
                    "rc/errno"
                } else {
                    "output bytes"
                };
                let sig = format!(
                    "{}: A {} / B {} ({what})",
                    ops::SYSCALL_NAMES[x.sys as usize % 11],
                    if x.errno != 0 {
                        errname(x.errno)
                    } else {
                        x.ret.to_string()
                    },
                    if y.errno != 0 {
                        errname(y.errno)
                    } else {
                        y.ret.to_string()
                    },
                );
                *t.signatures.entry(sig).or_default() += 1;
                t.divergences
                    .push(format!("DIVERGENCE in round {r} (seed {seed:#x}), {d}"));
                return;
            }
        }
        if x.hint != 0 && i + 1 == n {
            let why = match x.hint {
                2 | 3 | 11 => "§6 The emulation needs fds (an EMFILE case)",
                4 => "§6 Regions belong to the bound VM (binding changed with regions)",
                5 => "§6 A dead VM (KVM killed a VM: EIO)",
                6 => "§6 Regions belong to the bound VM (a run of another VM's vCPU)",
                7 => "§6 Rollback (a multi-region map after the binding changed)",
                8 => "§6 Region sockets (a fork child's ADD on the parent's socket)",
                10 => "§6 The retried access is read from kvm_run (a run after a KVM_RUN ioctl's EINTR)",
                _ => "other",
            };
            *t.ended_by.entry(why).or_default() += 1;
        }
    }
}

/// For -v: the exit a run record shows (`kvm_run`'s reason and its
/// access) and how many bytes each device received. A run the watchdog
/// kicked records its message, not the run page: there is no exit to show.
fn exit_summary(out: &[u8]) -> String {
    if out == side::KICKED {
        return "kicked by the watchdog (no exit: the run page was not read)".to_string();
    }
    let mut s = String::new();
    let find = |pat: &[u8]| out.windows(pat.len()).position(|w| w == pat);
    if let Some(p) = find(b"run:") {
        let page = &out[p + 4..];
        let u32_at = |o: usize| {
            page.get(o..o + 4)
                .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4")))
        };
        let u64_at = |o: usize| {
            page.get(o..o + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8")))
        };
        let reason = u32_at(8);
        s += &format!("exit {reason}");
        match reason {
            2 => {
                s += &format!(
                    " io {} port {:#x} size {} count {}",
                    if page.get(32) == Some(&1) {
                        "out"
                    } else {
                        "in"
                    },
                    u32_at(34) & 0xffff,
                    page.get(33).copied().unwrap_or(0),
                    u32_at(36)
                )
            }
            6 => {
                s += &format!(
                    " mmio {} {:#x} len {} data {:#x}",
                    if page.get(52) == Some(&1) {
                        "write"
                    } else {
                        "read"
                    },
                    u64_at(32),
                    u32_at(48),
                    u64_at(40)
                )
            }
            _ => {}
        }
        s += &format!(" flags {:#x} apic_base {:#x}", u32_at(12) >> 16, u64_at(24));
    }
    for d in [b"dev0:", b"dev1:"] {
        if let Some(p) = find(d) {
            s += &format!(" {}{} bytes", String::from_utf8_lossy(d), out.len() - p - 5);
        }
    }
    s
}

pub fn main(a: Args) -> i32 {
    let has = kvmng::select::kernel_has_kvmng();
    if a.sides.contains(&BackendKind::Native) && !has {
        eprintln!("!!! kvmng-fuzz --differential: this kernel has no kvmng syscalls (kvmng_run(~0) answers ENOSYS), so there is no native side to compare: FAILED, 0 executions.");
        eprintln!("!!! Run it in the guest of make vm-fuzz / make vm-test (the patched kernel), or use --sides legacy,legacy to check the fuzzer itself.");
        return 2;
    }
    // SAFETY: access() on a NUL-terminated path.
    if unsafe { libc::access(c"/dev/kvm".as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
        eprintln!("!!! kvmng-fuzz --differential: /dev/kvm is not usable: FAILED, 0 executions");
        return 2;
    }
    if a.verbose && a.round.is_some() {
        // The sides print each operation before they make it (side.rs),
        // so that a hang names the operation it hangs in.
        std::env::set_var("KVMNG_FUZZ_TRACE_OPS", "1");
    }
    let mem = Mem::new();
    let traces = [Trace::new(), Trace::new()];
    let sh = shared();
    let hang = Duration::from_secs(120);
    let mut t = Totals::default();
    let t0 = Instant::now();
    if a.regressions {
        return regressions(&a, mem, &traces, sh);
    }
    let rounds: Box<dyn Iterator<Item = u64>> = match a.round {
        Some(r) => Box::new(std::iter::once(r)),
        None => Box::new(0..),
    };
    let mut last = Instant::now();
    for r in rounds {
        if a.round.is_none() && (t.execs >= a.execs || t0.elapsed().as_secs() >= a.seconds) {
            break;
        }
        match one_round(&a, mem, &traces, sh, r, hang) {
            Ok((ra, rb)) => {
                t.rounds += 1;
                tally(&mut t, r, round_seed(a.seed, r), &ra, &rb, a.verbose);
            }
            Err(e) => t.failures.push(e),
        }
        if t.divergences.len() + t.failures.len() >= a.max_divergences {
            break;
        }
        if last.elapsed() > Duration::from_secs(30) {
            last = Instant::now();
            eprintln!(
                "  ... {} executions, {} rounds in {:.0} s, {} divergences",
                t.execs,
                t.rounds,
                t0.elapsed().as_secs_f64(),
                t.divergences.len() + t.failures.len()
            );
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let report = render(&a, &t, secs, has);
    print!("{report}");
    if let Some(p) = &a.report {
        if let Some(d) = std::path::Path::new(p).parent() {
            let _ = std::fs::create_dir_all(d);
        }
        if let Err(e) = std::fs::write(p, &report) {
            eprintln!("kvmng-fuzz: cannot write {p}: {e}");
        }
    }
    i32::from(!t.divergences.is_empty() || !t.failures.is_empty())
}

fn render(a: &Args, t: &Totals, secs: f64, has: bool) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kvmng-fuzz --differential: {} (side A) against {}; kernel kvmng syscalls: {}",
        a.sides[0].name(),
        a.sides[1].name(),
        if has { "present" } else { "absent (ENOSYS)" }
    );
    for d in t.divergences.iter().chain(&t.failures) {
        let _ = writeln!(s, "{d}");
    }
    let _ = writeln!(
        s,
        "kvmng-fuzz --differential: {} executions (each: the same operation on both sides) in {} rounds, {:.1} s ({:.0}/s), seed {}, {} divergences, {} crashes/hangs",
        t.execs, t.rounds, secs, t.execs as f64 / secs.max(1e-9), a.seed, t.divergences.len(), t.failures.len()
    );
    if !t.signatures.is_empty() {
        let _ = writeln!(s, "divergences by signature:");
        for (sig, n) in &t.signatures {
            let _ = writeln!(s, "  {n:>5}  {sig}");
        }
    }
    for (why, n) in &t.masked {
        let _ = writeln!(s, "  masked ({why}): {n}");
    }
    for (why, n) in &t.ended_by {
        let _ = writeln!(s, "  rounds ended by {why}: {n}");
    }
    if a.known_kernel_bugs {
        let _ = writeln!(s, "  --known-kernel-bugs: no I/O region over the string port 0x704 (the kernel does not send a string OUT: docs/reliability.md)");
    }
    let _ = writeln!(s, "census of calls (side A), per syscall and errno:");
    let mut unreached = Vec::new();
    for (sys, name) in ops::SYSCALL_NAMES.iter().enumerate() {
        let row: Vec<(i32, u64)> = t
            .census
            .iter()
            .filter(|((x, _), _)| *x as usize == sys)
            .map(|((_, e), n)| (*e, *n))
            .collect();
        let total: u64 = row.iter().map(|r| r.1).sum();
        let cells: Vec<String> = row
            .iter()
            .map(|(e, n)| format!("{} {n}", errname(*e)))
            .collect();
        let _ = writeln!(s, "  {name:<16} {total:>9}  {}", cells.join(", "));
        if sys < 10 {
            if total == 0 {
                unreached.push(format!("{name} (never called)"));
            }
            if !row.iter().any(|r| r.0 == 0) {
                unreached.push(format!("{name}: success"));
            }
            for e in DOCUMENTED[sys] {
                if !row.iter().any(|r| r.0 == *e) {
                    let why = match (sys, *e) {
                        (1 | 3 | 9, libc::EMFILE) => {
                            " (the kernel needs no new fd there: EMFILE is the emulation's, api.md §6)"
                        }
                        (0, libc::EMFILE) => {
                            " (only with no VM bound, else EEXIST comes first, and no fd free)"
                        }
                        (_, libc::ENOMEM) => " (needs the kernel out of memory)",
                        _ => "",
                    };
                    unreached.push(format!("{name}: {}{why}", errname(*e)));
                }
            }
        }
    }
    if unreached.is_empty() {
        let _ = writeln!(s, "every syscall and every documented errno was reached");
    } else {
        let _ = writeln!(
            s,
            "NOT reached ({}): {}",
            unreached.len(),
            unreached.join("; ")
        );
    }
    s
}

/// The divergences found so far, as fixed lists of operations after the
/// set-up: each must give the same records on both sides.
fn regressions(a: &Args, mem: Mem, traces: &[Trace; 2], sh: &'static Shared) -> i32 {
    let cases = regress_cases();
    let mut failed = 0;
    for (n, (what, _, _)) in cases.iter().enumerate() {
        let mut t = Totals::default();
        match run_plan(
            a,
            mem,
            traces,
            sh,
            n as u64,
            Plan::Case(n),
            Duration::from_secs(120),
        ) {
            Ok((ra, rb)) => tally(&mut t, n as u64, n as u64, &ra, &rb, a.verbose),
            Err(e) => t.failures.push(e),
        }
        if t.divergences.is_empty() && t.failures.is_empty() {
            let masked: u64 = t.masked.values().sum();
            println!(
                "  ok    {what} ({} executions{})",
                t.execs,
                if masked > 0 {
                    format!(", {masked} masked")
                } else {
                    String::new()
                }
            );
        } else {
            failed += 1;
            println!(
                "  FAIL  {what}: {}",
                t.divergences.iter().chain(&t.failures).next().expect("one")
            );
        }
    }
    println!(
        "kvmng-fuzz --differential --regressions: {} cases, {failed} failed",
        cases.len()
    );
    i32::from(failed > 0)
}

/// (what it was, in-kernel irqchip, the operations after the set-up).
fn regress_cases() -> Vec<(&'static str, bool, Vec<ops::Op>)> {
    use kvmng_abi::*;
    use ops::{Call, FdSel, Op, Ptr, Th};
    let main = |call| Op { th: Th::Main, call };
    let smi = || {
        main(Call::Irq {
            kind: KVMNG_IRQ_SMI,
            nr: 0,
            level: 0,
            flags: 0,
        })
    };
    let run = || {
        main(Call::Run {
            flags: 0,
            imm: false,
            fill: 0,
            control: false,
        })
    };
    let runs = |n| (0..n).map(|_| run()).collect::<Vec<_>>();
    let add = main(ops::ioregion_add(
        ops::PIO_BASE,
        4,
        KVMNG_IOREGION_PIO,
        1,
        0,
    ));
    let slot = |slot, flags, gpa, size| ops::Region {
        slot,
        flags,
        gpa,
        size,
        pool: 0x40000,
        gmem_fd: 0,
    };
    // A GET whose buffer takes 8192 bytes of the arena (its size), so
    // that the next buffer starts that far on.
    let spacer = || ops::Entry {
        kind: KVMNG_STATE_MP_STATE,
        op: KVMNG_STATE_GET,
        size: 8192,
        at: Ptr::Arena(0),
        data: vec![0; 4],
    };
    let memmap = |regions: Vec<ops::Region>| {
        main(Call::MemMap {
            count: regions.len() as u32,
            regions,
            at: Ptr::Arena(0),
            flags: 0,
        })
    };

    vec![
        (
            "the guest's exits through both run paths, no region",
            false,
            runs(12),
        ),
        (
            "regions served by an answering device: port and MMIO, posted and not",
            false,
            vec![
                add.clone(),
                main(ops::ioregion_add(ops::MMIO_BASE, 16, KVMNG_IOREGION_POSTED, 2, 1)),
            ].into_iter().chain(runs(8)).collect::<Vec<_>>(),
        ),
        (
            // Seed 1 round 5 of the first vm-fuzz: an SMI into a VM whose
            // SMRAM (0x30000) has no memory kills it (KVM's enter_smm
            // calls kvm_vm_dead); the kernel's ADD answered EIO, the
            // emulation's succeeded. Fixed in the emulation (5.10: EIO).
            "a dead VM: kvmng_ioregion ADD answers EIO",
            false,
            vec![smi(), run(), add.clone()],
        ),
        (
            // Seed 1 round 12: bind_vcpu on a dead VM's vCPU, native 0,
            // emulation EIO: api.md §6 "A dead VM", masked.
            "a dead VM: bind_vcpu (the §6 difference, masked exactly)",
            false,
            vec![
                smi(),
                run(),
                main(Call::BindVcpu {
                    fd: FdSel::Vcpu(1),
                    flags: 0,
                }),
            ],
        ),
        (
            // vCPU 0 has an access pending on a dead device (EPIPE); vCPU 1
            // (another thread) takes an SMI, which kills the VM; vCPU 0
            // runs again: both implementations send the pending access
            // again first (EPIPE), checked in the guest at 02:18.
            "a dead VM: a run with an access pending sends it again first (EPIPE)",
            false,
            vec![
                add.clone(),
                main(Call::Device {
                    dev: 0,
                    mode: ops::DevMode::Die,
                }),
                run(),
                run(),
                Op {
                    th: Th::W1,
                    call: Call::BindVcpu {
                        fd: FdSel::Vcpu(1),
                        flags: 0,
                    },
                },
                Op {
                    th: Th::W1,
                    call: Call::Reset,
                },
                Op {
                    th: Th::W1,
                    call: Call::Irq {
                        kind: KVMNG_IRQ_SMI,
                        nr: 0,
                        level: 0,
                        flags: 0,
                    },
                },
                Op {
                    th: Th::W1,
                    call: Call::Run {
                        flags: 0,
                        imm: false,
                        fill: 0,
                        control: false,
                    },
                },
                run(),
            ],
        ),
        (
            // Seed 7 rounds 82 and 99 of vm-fuzz: a region over port 0x704;
            // the guest's `rep outsb` there (an OUT that KVM emulates) comes
            // back from kvmng_run as KVM_EXIT_IO on the kernel, is sent to
            // the device by the emulation (api.md 5.10: sent, one request
            // per element). The kernel's capture read vcpu->arch.pio.count,
            // which x86_emulate_instruction clears for an emulated OUT; fixed
            // in patch 0010 (vcpu->arch.kvmng_out_count).
            "5.10: a string OUT to a port region is sent, one request per element",
            false,
            vec![
                main(ops::ioregion_add(ops::PIO_BASE, 8, KVMNG_IOREGION_PIO, 3, 0)),
            ].into_iter().chain(runs(7)).collect::<Vec<_>>(),
        ),
        (
            // Seed 101 rounds 4, 19, 26, 56, 80, 82 of vm-fuzz (03:52): a
            // fork child created its own VM and added a region on a device
            // socket that served the parent's VM: the kernel EBUSY (5.10, a
            // socket serves one VM only), the emulation 0. api.md §6
            // "Region sockets", masked exactly; the child's calls end.
            "§6 Region sockets: a fork child's ADD on the parent's socket (masked)",
            false,
            vec![
                add.clone(),
                main(Call::Fork(vec![
                    Call::CreateVm {
                        kvm: FdSel::Kvm,
                        ty: 0,
                        flags: 0,
                    },
                    add.call.clone(),
                    add.call.clone(),
                ])),
                run(),
            ],
        ),
        (
            // Seed 101 rounds 2, 44, 51: a multi-region map whose region
            // other than the last changed a dirty-logged slot: the kernel
            // refused it up front (EINVAL, 5.8), the emulation applied it
            // (2) or failed later (EEXIST). Fixed in the emulation.
            "5.8: a dirty-logged slot changed by a region other than the last: EINVAL, nothing applied",
            false,
            vec![
                memmap(vec![slot(1, 1, 0x20000, 0x10000)]),
                memmap(vec![slot(1, 0, 0x20000, 0), slot(2, 0, 0x30000, 0x10000)]),
                memmap(vec![slot(2, 0, 0x30000, 0x10000), slot(1, 0, 0x20000, 0)]),
                memmap(vec![slot(2, 0, 0x30000, 0x10000), slot(1, 1, 0x20000, 0x10000)]),
            ].into_iter().chain(runs(15)).collect::<Vec<_>>(),
        ),
        (
            // The same after a binding change: the emulation's slot table
            // is emptied (api.md §6 "Rollback"), so it cannot refuse the
            // map; masked exactly, the round ends.
            "§6 Rollback: after a binding change, a dirty-logged slot it forgot (masked)",
            false,
            vec![
                memmap(vec![slot(1, 1, 0x20000, 0x10000)]),
                main(Call::BindVm {
                    fd: FdSel::Minus1,
                    flags: 0,
                }),
                main(Call::BindVm {
                    fd: FdSel::Vm(0),
                    flags: 0,
                }),
                memmap(vec![slot(1, 0, 0x20000, 0), slot(2, 0, 0x30000, 0x10000)]),
            ],
        ),
        (
            // Seed 102 round 15 of vm-fuzz (04:05), narrowed down in the
            // guest: a port OUT to a stalled device left pending (EINTR),
            // then the KVM_RUN ioctl with immediate_exit, which completes
            // it (KVM's complete_userspace_io runs before the check) and
            // returns EINTR with kvm_run unchanged; the next kvmng_run:
            // the kernel just runs (api.md 5.10 "Completed by the ioctl"),
            // the emulation, which reads the access from kvm_run, sends
            // it again. api.md §6 "The retried access is read from
            // kvm_run", masked; the round ends.
            "§6 The retried access is read from kvm_run: a KVM_RUN ioctl's EINTR (masked)",
            false,
            vec![
                add.clone(),
                main(Call::Device {
                    dev: 0,
                    mode: ops::DevMode::Stall,
                }),
                run(),
                main(Call::Device {
                    dev: 0,
                    mode: ops::DevMode::Answer,
                }),
                // Any SET makes the vCPU dirty: the raw run then sets
                // immediate_exit (side.rs, RawRun).
                main(Call::State {
                    entries: vec![ops::Entry {
                        kind: KVMNG_STATE_MP_STATE,
                        op: KVMNG_STATE_SET,
                        size: 4,
                        at: Ptr::Arena(0),
                        data: vec![0; 4],
                    }],
                    count: 1,
                    at: Ptr::Arena(0),
                    flags: 0,
                }),
                main(Call::RawRun { vcpu: 0, fill: 0 }),
                run(),
            ],
        ),
        (
            // Seed 179655579965 round 3 of a vm-test smoke, once the
            // kernel told an identical new access from its pending one
            // (0010): a port OUT to a dead device left pending (EPIPE),
            // the registers set again, and a KVM_RUN ioctl that completes
            // the access and stops at the same OUT again, whose exit it
            // returns. The next kvmng_run: the kernel completes that exit
            // as the caller left it and runs on to the next OUT (api.md
            // 5.10 "Completed by the ioctl"); the emulation takes it for
            // its pending access and sends it again. api.md §6 "The
            // retried access is read from kvm_run", masked; the round ends.
            "§6 The retried access is read from kvm_run: an ioctl's identical new exit (masked)",
            false,
            vec![
                add.clone(),
                main(Call::Device {
                    dev: 0,
                    mode: ops::DevMode::Die,
                }),
                run(),
                main(Call::Reset),
                run(),
                main(Call::State {
                    entries: vec![],
                    count: 0,
                    at: Ptr::Arena(0),
                    flags: 0,
                }),
                main(Call::RawRun { vcpu: 0, fill: 0 }),
                run(),
            ],
        ),
        (
            // Seed 20261209 round 1209 of vm-fuzz: a create of a vCPU whose
            // id is in use, with no fd free: the kernel EEXIST (it checks
            // the id before it takes its one fd), the emulation EMFILE
            // (its two fds come first). api.md §6 "The emulation needs
            // fds", masked exactly; the round ends.
            "§6 The emulation needs fds: a create with no fd free and its id in use (masked)",
            false,
            vec![Op {
                th: Th::W1,
                call: Call::FdLimit {
                    free: 0,
                    call: Box::new(Call::CreateVcpu {
                        id: 0,
                        flags: KVMNG_CREATE_VCPU_BIND,
                    }),
                },
            }],
        ),
        (
            // Seed 101 round 74: the guest stopped at its `rep insb` (an IN
            // the emulator carries out), the registers were set again, and
            // a kvmng_run with immediate_exit entered KVM_RUN, whose
            // completion of the IN made a new exit: the kernel answered
            // EINTR (it checks immediate_exit before it looks for the
            // access's region), the emulation returned the exit, which no
            // region contains (api.md 5.5). A kernel bug, fixed in patch
            // 0010 (kvmng_ioregion_run() claims an exit only when a region
            // contains it); until then this case failed on the kernel.
            "5.5: immediate_exit and a new exit outside every region: returned with 0",
            false,
            [main(ops::ioregion_add(0x900, 1, KVMNG_IOREGION_PIO, 1, 0))]
            .into_iter()
            .chain((0..14).map(|_| run()))
            .chain([
                main(Call::Reset),
                main(Call::Run {
                    flags: 0,
                    imm: true,
                    fill: 0x1234,
                    control: false,
                }),
                run(),
            ])
            .collect(),
        ),
        (
            // Seed 20261207 round 4269 of vm-fuzz: the entry array at the
            // arena's end, the buffers from its start, so the last GET
            // (4096 bytes of XSAVE) runs over the array. The kernel writes
            // back each entry's result alone (api.md 5.6), the emulation
            // wrote whole entries back over the GET's bytes. Fixed in the
            // emulation.
            "5.6: a GET buffer over the entry array: only the results are written back",
            false,
            vec![main(Call::State {
                entries: vec![
                    spacer(),
                    spacer(),
                    ops::Entry {
                        kind: KVMNG_STATE_XSAVE,
                        op: KVMNG_STATE_GET,
                        size: 4096,
                        at: Ptr::Arena(0),
                        data: vec![0; 4096],
                    },
                ],
                count: 3,
                at: Ptr::Arena(ops::ARENA - 3 * 24),
                flags: 0,
            })],
        ),
        (
            // Seed 20261213 round 1039 of vm-fuzz: a kernel helper shared
            // by kvmng_irq and kvmng_control took a NULL KVM_IRQ_LINE
            // argument for "no argument" and ran the line from an
            // uninitialized struct (ENXIO here, no irqchip); the ioctl,
            // and the emulation, read the argument first: EFAULT. Fixed
            // in the kernel (patch 0005).
            "5.9: KVM_IRQ_LINE through kvmng_control with a NULL argument: EFAULT",
            false,
            vec![main(Call::Control {
                scope: KVMNG_SCOPE_VM,
                cmd: kvmng_abi::ioctls::KVM_IRQ_LINE as u32,
                arg: ops::CtlArg::Ptr(Ptr::Null),
                flags: 0,
            })],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::exit_summary;

    #[test]
    fn a_kicked_run_shows_no_exit_fields() {
        let e = exit_summary(super::side::KICKED);
        assert!(e.starts_with("kicked by the watchdog"), "{e}");
        assert!(!e.contains("apic_base"), "{e}");
    }

    #[test]
    fn a_run_page_shows_its_exit() {
        let mut out = b"run:".to_vec();
        let mut page = vec![0u8; 64];
        page[8..12].copy_from_slice(&2u32.to_le_bytes()); // KVM_EXIT_IO
        page[32] = 1; // out
        page[33] = 4; // size
        page[34..36].copy_from_slice(&0x700u16.to_le_bytes());
        page[36..40].copy_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&page);
        let e = exit_summary(&out);
        assert!(
            e.starts_with("exit 2 io out port 0x700 size 4 count 1"),
            "{e}"
        );
    }
}
