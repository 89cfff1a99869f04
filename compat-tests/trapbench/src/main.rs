//! trapbench: what one cheap kvmng call costs three ways, in one run.
//!
//! 1. `ioctl(KVM_GET_MP_STATE)` on the vCPU fd (raw syscall): the kernel's
//!    own cost, the floor of any emulation;
//! 2. `Backend::vcpu_state` with one `KVMNG_STATE_MP_STATE` GET entry,
//!    called directly on the legacy backend: the emulation without the trap;
//! 3. `syscall(__NR_kvmng_vcpu_state, ...)` with the same entry: through the
//!    seccomp trap and the SIGSYS handler when libkvmshim.so is preloaded
//!    on a stock kernel (or native on a kvmng kernel).
//!
//! Run: `LD_PRELOAD=target/release/libkvmshim.so target/release/trapbench
//! [ITERATIONS]` (`make trapbench`). Prints min/median/p99 ns of each and
//! the ratios. A measurement, not a timed test: nothing fails on a number.

use kvm_bindings::kvm_mp_state;
use kvmng::sys::{ioctl, raw6};
use kvmng::{Backend, BackendKind};
use kvmng_abi::ioctls::KVM_GET_MP_STATE;
use kvmng_abi::*;
use std::time::Instant;

#[derive(Clone, Copy)]
struct Stats {
    min: u64,
    median: u64,
    p99: u64,
}

fn measure(n: usize, mut op: impl FnMut() -> bool) -> Stats {
    for _ in 0..n / 10 {
        op();
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let ok = op();
        samples.push(t0.elapsed().as_nanos() as u64);
        assert!(ok, "the measured operation failed");
    }
    samples.sort_unstable();
    Stats {
        min: samples[0],
        median: samples[n / 2],
        p99: samples[n * 99 / 100],
    }
}

fn mp_entry(mp: &mut kvm_mp_state) -> kvmng_state_entry {
    kvmng_state_entry {
        kind: KVMNG_STATE_MP_STATE,
        op: KVMNG_STATE_GET,
        addr: mp as *mut kvm_mp_state as u64,
        size: core::mem::size_of::<kvm_mp_state>() as u32,
        result: 0,
    }
}

/// The kvmng syscall `nr` (trapped, or native).
fn kvmng_syscall(call: Syscall, a0: u64, a1: u64, a2: u64) -> i64 {
    // SAFETY: the arguments are what the call expects (checked by callers).
    unsafe { raw6(call.nr(), a0, a1, a2, 0, 0, 0) }
}

fn seccomp_mode() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000)
        .max(100);
    let kvm = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(f) => f,
        Err(e) => {
            println!("trapbench: SKIPPED: /dev/kvm: {e}");
            return;
        }
    };
    use std::os::fd::AsRawFd;
    let kvm_fd = kvm.as_raw_fd();

    // 1 and 2: this binary's own copy of the library, legacy backend.
    let legacy: &dyn Backend = kvmng::select::backend(BackendKind::Legacy);
    legacy.create_vm(kvm_fd, 0, 0).expect("legacy create_vm");
    let vcpu_fd = legacy
        .create_vcpu(0, KVMNG_CREATE_VCPU_BIND)
        .expect("legacy create_vcpu") as i32;
    let mut mp = kvm_mp_state::default();
    let ioctl_stats = measure(n, || {
        // SAFETY: KVM_GET_MP_STATE writes one kvm_mp_state into `mp`.
        unsafe { ioctl(vcpu_fd, KVM_GET_MP_STATE, &mut mp as *mut _ as u64) }.is_ok()
    });
    let mut entry = mp_entry(&mut mp);
    let library_stats = measure(n, || {
        // SAFETY: one entry whose buffer is `mp`, both live.
        let r = unsafe { legacy.vcpu_state(&mut entry, 1, 0) };
        r == Ok(1)
    });

    // 3: the syscall. Without a kvmng kernel and without the shim it
    // answers ENOSYS.
    let probe = kvmng_syscall(Syscall::Run, u64::from(u32::MAX), 0, 0);
    let mode = seccomp_mode();
    let path = if probe != -i64::from(libc::EINVAL) {
        None
    } else if mode == "2" {
        Some("trapped (seccomp + SIGSYS)")
    } else {
        Some("native")
    };
    let syscall_stats = path.map(|_| {
        // The shim's library is another copy with its own bindings: give
        // it its own VM and vCPU, through the syscalls.
        let vm = kvmng_syscall(Syscall::CreateVm, kvm_fd as u64, 0, 0);
        assert!(vm >= 0, "kvmng_create_vm: {vm}");
        let vcpu = kvmng_syscall(Syscall::CreateVcpu, 0, u64::from(KVMNG_CREATE_VCPU_BIND), 0);
        assert!(vcpu >= 0, "kvmng_create_vcpu: {vcpu}");
        let mut mp2 = kvm_mp_state::default();
        let mut entry2 = mp_entry(&mut mp2);
        let addr = &mut entry2 as *mut kvmng_state_entry as u64;
        measure(n, || kvmng_syscall(Syscall::VcpuState, addr, 1, 0) == 1)
    });
    let probe_stats = path.map(|_| {
        measure(n, || {
            kvmng_syscall(Syscall::Run, u64::from(u32::MAX), 0, 0) == -i64::from(libc::EINVAL)
        })
    });
    let getpid_stats = measure(n, || {
        // SAFETY: getpid takes no arguments.
        unsafe { raw6(libc::SYS_getpid, 0, 0, 0, 0, 0, 0) > 0 }
    });

    println!("# trapbench: {n} calls each, ns per call; one MP_STATE GET each way");
    println!(
        "# kvmng syscalls: {}",
        path.unwrap_or("ABSENT (ENOSYS): preload libkvmshim.so to measure the trap")
    );
    println!(
        "{:<52} {:>8} {:>8} {:>8}",
        "operation", "min", "median", "p99"
    );
    let row = |name: &str, s: Stats| {
        println!("{name:<52} {:>8} {:>8} {:>8}", s.min, s.median, s.p99);
    };
    row("ioctl(KVM_GET_MP_STATE), raw syscall", ioctl_stats);
    row(
        "library: Backend::vcpu_state (legacy, direct)",
        library_stats,
    );
    if let Some(s) = syscall_stats {
        row("syscall kvmng_vcpu_state", s);
    }
    if let Some(s) = probe_stats {
        row("syscall kvmng_run(~0) -> EINVAL (no work)", s);
    }
    row("getpid(), raw syscall", getpid_stats);
    let ratio = |a: Stats, b: Stats| a.median as f64 / b.median as f64;
    println!(
        "ratio library/ioctl (median): {:.2}",
        ratio(library_stats, ioctl_stats)
    );
    if let Some(s) = syscall_stats {
        println!("ratio syscall/ioctl (median): {:.2}", ratio(s, ioctl_stats));
        println!(
            "ratio syscall/library (median): {:.2}",
            ratio(s, library_stats)
        );
        println!(
            "the trap adds (syscall - library, median): {} ns per call",
            s.median as i64 - library_stats.median as i64
        );
    }
}
