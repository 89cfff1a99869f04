//! The MMIO dispatch A/B (issue 6; `kvmng bench` calls it, issue 7): the
//! same guest loop of 4-byte MMIO accesses (`mmio_bench`) timed four ways.
//!
//! | way | what serves an access | the vCPU thread |
//! |---|---|---|
//! | [`Way::MmioExit`] | the vCPU thread itself: `KVM_EXIT_MMIO`, then `kvmng_run` again | leaves `kvmng_run` for every access |
//! | [`Way::Ioeventfd`] | KVM: `KVM_IOEVENTFD` bumps an eventfd counter | stays in the guest |
//! | [`Way::PostedWrite`] | a device thread, over a `kvmng_ioregion` socket, no reply | sends one message per access |
//! | [`Way::SyncRead`] | a device thread, over the same socket, with a reply | waits for the reply of every access |
//!
//! Each way runs `batches` batches of `accesses` accesses (after one
//! warm-up batch that is not counted); a batch's time is the wall time of
//! the run from the first access to the guest's DONE, divided by the
//! number of accesses. The result is the per-batch figures and their
//! median. On a stock kernel the socket ways go through the emulation
//! (the exit still happens inside `kvmng_run`, but returns to no caller);
//! on a kvmng kernel through the kernel.

use kvmng::ioregion::{self, IoRegion};
use kvmng::{BoundVcpu, Kvmng, VcpuExit};
use kvmng_guests::boot::GuestVm;
use kvmng_guests::{by_name, long_mode, DONE_PORT, LOAD_ADDR, MMIO_LONG};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

/// Where each way's accesses go (all unbacked, inside the identity map).
const EXIT_ADDR: u64 = MMIO_LONG;
const EVENTFD_ADDR: u64 = MMIO_LONG + 0x1000;
const REGION_ADDR: u64 = MMIO_LONG + 0x2000;
/// ENOSYS on x86_64 (this crate does not link libc).
const ENOSYS: i32 = 38;
/// What the device answers to every read.
const READ_VALUE: u64 = 0x5A5A_5A5A;

/// One of the four ways of serving an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// `KVM_EXIT_MMIO` handled in the vCPU thread.
    MmioExit,
    /// `KVM_IOEVENTFD` (write only, no exit).
    Ioeventfd,
    /// A posted write over a `kvmng_ioregion` socket.
    PostedWrite,
    /// A read over a `kvmng_ioregion` socket (a round trip).
    SyncRead,
}

impl Way {
    /// Every way, in the order measured.
    pub const ALL: [Way; 4] = [
        Way::MmioExit,
        Way::Ioeventfd,
        Way::PostedWrite,
        Way::SyncRead,
    ];

    /// A short name for tables and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Way::MmioExit => "mmio-exit",
            Way::Ioeventfd => "ioeventfd",
            Way::PostedWrite => "ioregion-posted-write",
            Way::SyncRead => "ioregion-sync-read",
        }
    }

    fn target(self) -> (u64, bool) {
        match self {
            Way::MmioExit => (EXIT_ADDR, false),
            Way::Ioeventfd => (EVENTFD_ADDR, false),
            Way::PostedWrite => (REGION_ADDR, false),
            Way::SyncRead => (REGION_ADDR, true),
        }
    }
}

/// The figures of one way.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The way measured.
    pub way: Way,
    /// Nanoseconds per access, one figure per batch, in run order.
    pub ns_per_access: Vec<f64>,
    /// Exits the program saw per batch (besides DONE and HLT): `accesses`
    /// for [`Way::MmioExit`], 0 for the others.
    pub exits_per_batch: u64,
}

impl Series {
    /// The median of the per-batch figures.
    pub fn median(&self) -> f64 {
        let mut v = self.ns_per_access.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// The smallest per-batch figure.
    pub fn min(&self) -> f64 {
        self.ns_per_access
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }
}

/// The result of [`ioregion_dispatch`].
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchBench {
    /// Ways that could not be measured, with the reason (the socket ways
    /// on a kvmng kernel without `kvmng_ioregion`, which answers ENOSYS).
    pub unavailable: Vec<(Way, String)>,
    /// Accesses per batch.
    pub accesses: u64,
    /// Batches per way (warm-up not counted).
    pub batches: usize,
    /// One series per way measured, in [`Way::ALL`] order.
    pub series: Vec<Series>,
    /// The backend that ran it ("native" or "legacy").
    pub backend: &'static str,
}

impl DispatchBench {
    /// The series of `way`.
    pub fn of(&self, way: Way) -> &Series {
        self.series
            .iter()
            .find(|s| s.way == way)
            .expect("the way was measured")
    }
}

impl std::fmt::Display for DispatchBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "MMIO dispatch, {} backend: {} batches x {} accesses (ns per access)",
            self.backend, self.batches, self.accesses
        )?;
        writeln!(f, "{:<24} {:>10} {:>10}", "way", "min", "median")?;
        for s in &self.series {
            writeln!(
                f,
                "{:<24} {:>10.0} {:>10.0}",
                s.way.name(),
                s.min(),
                s.median()
            )?;
        }
        Ok(())
    }
}

/// Nanoseconds of the monotonic clock: the default clock of
/// [`ioregion_dispatch_with`].
pub fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Runs the guest loop once from the start: `accesses` accesses to `addr`
/// (reads if `read`). Returns the elapsed ticks of `now` and the exits
/// seen besides DONE.
fn run_batch(
    vcpu: &mut BoundVcpu<'_>,
    addr: u64,
    read: bool,
    accesses: u64,
    now: fn() -> u64,
) -> Result<(u64, u64), String> {
    let mut regs = long_mode::initial_regs(LOAD_ADDR);
    regs.rsi = addr;
    regs.rcx = accesses;
    regs.rdi = u64::from(read);
    vcpu.set_regs(&regs)
        .map_err(|e| format!("set registers: {e}"))?;
    let mut exits = 0;
    let start = now();
    loop {
        match vcpu.run().map_err(|e| format!("kvmng_run: {e}"))? {
            VcpuExit::IoOut { port, .. } if port == DONE_PORT => break,
            VcpuExit::MmioWrite { .. } => exits += 1,
            VcpuExit::MmioRead { data, .. } => {
                data.fill(0);
                exits += 1;
            }
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    Ok((now().wrapping_sub(start), exits))
}

/// Times `accesses` 4-byte MMIO accesses served each of the four ways,
/// `batches` times (plus one warm-up batch per way), on a VM of its own.
/// The caller's thread becomes the vCPU thread; a device thread serves the
/// socket. Errors say what failed.
pub fn ioregion_dispatch(
    kvm: &Kvmng,
    accesses: u64,
    batches: usize,
) -> Result<DispatchBench, String> {
    ioregion_dispatch_with(kvm, accesses, batches, monotonic_ns)
}

/// [`ioregion_dispatch`] timed with the clock `now` (e.g. the TSC, which
/// counts instructions under QEMU's `-icount shift=0`); the figures are
/// then its ticks per access. When the kernel has no `kvmng_ioregion`
/// (ENOSYS from the native backend) the socket ways are listed in
/// `unavailable` and the other two are still measured.
pub fn ioregion_dispatch_with(
    kvm: &Kvmng,
    accesses: u64,
    batches: usize,
    now: fn() -> u64,
) -> Result<DispatchBench, String> {
    if accesses == 0 || batches == 0 {
        return Err("accesses and batches must be at least 1".into());
    }
    let guest = by_name("mmio_bench").expect("the mmio_bench guest");
    let gvm = GuestVm::new(kvm, guest).map_err(|e| format!("VM: {e}"))?;
    let eventfd = gvm
        .vm
        .ioeventfd(EVENTFD_ADDR, 4)
        .map_err(|e| format!("KVM_IOEVENTFD: {e}"))?;
    let (vmm_end, device_end) = ioregion::socket_pair().map_err(|e| format!("socketpair: {e}"))?;
    let region = IoRegion::mmio(REGION_ADDR, 0x1000, vmm_end.as_raw_fd()).posted();
    let mut unavailable = Vec::new();
    let device = match gvm.vm.ioregion_add(&region) {
        Ok(()) => Some(std::thread::spawn(move || {
            ioregion::serve(device_end.as_fd(), |r| if r.write { 0 } else { READ_VALUE })
        })),
        Err(e) if e.0 == ENOSYS => {
            let why = format!(
                "not in this kernel: kvmng_ioregion (1009) answered ENOSYS ({} backend)",
                gvm.vm.backend().kind().name()
            );
            unavailable.push((Way::PostedWrite, why.clone()));
            unavailable.push((Way::SyncRead, why));
            None
        }
        Err(e) => return Err(format!("kvmng_ioregion ADD: {e}")),
    };
    let ways: Vec<Way> = Way::ALL
        .into_iter()
        .filter(|w| !unavailable.iter().any(|(u, _)| u == w))
        .collect();

    let result = (|| {
        // GuestVm sets KVM's supported CPUID before the long-mode
        // registers, as a VMM does (SVM refuses them without it).
        let mut vcpu = gvm.boot_vcpu().map_err(|e| format!("vCPU 0: {e}"))?;
        let mut series = Vec::new();
        for &way in &ways {
            let (addr, read) = way.target();
            run_batch(&mut vcpu, addr, read, accesses, now)?;
            let mut figures = Vec::with_capacity(batches);
            let mut exits_per_batch = 0;
            for _ in 0..batches {
                let (ns, exits) = run_batch(&mut vcpu, addr, read, accesses, now)?;
                figures.push(ns as f64 / accesses as f64);
                exits_per_batch = exits;
            }
            series.push(Series {
                way,
                ns_per_access: figures,
                exits_per_batch,
            });
        }
        Ok::<_, String>(series)
    })();
    let backend = gvm.vm.backend().kind().name();
    // Taking the region and the VM down closes the socket's VM side: the
    // device sees end of file.
    if device.is_some() {
        let _ = gvm.vm.ioregion_del(&region);
    }
    drop(gvm);
    drop(vmm_end);
    let served = match device {
        Some(d) => d
            .join()
            .map_err(|_| "the device thread panicked".to_string())?
            .map_err(|e| format!("device: {e}"))?,
        None => 0,
    };
    let series = result?;

    // Sanity: each way was served where it should have been.
    let runs = (batches as u64 + 1) * accesses;
    let mut counter = [0u8; 8];
    let counted = match std::fs::File::from(eventfd).read(&mut counter) {
        Ok(8) => u64::from_ne_bytes(counter),
        _ => 0,
    };
    if counted != runs {
        return Err(format!(
            "the ioeventfd counted {counted} writes, expected {runs}"
        ));
    }
    let socket_ways = ways
        .iter()
        .filter(|w| matches!(w, Way::PostedWrite | Way::SyncRead))
        .count() as u64;
    if served != socket_ways * runs {
        return Err(format!(
            "the device served {served} requests, expected {}",
            socket_ways * runs
        ));
    }
    for s in &series {
        let want = if s.way == Way::MmioExit { accesses } else { 0 };
        if s.exits_per_batch != want {
            return Err(format!(
                "{}: {} exits per batch, expected {want}",
                s.way.name(),
                s.exits_per_batch
            ));
        }
    }
    Ok(DispatchBench {
        unavailable,
        accesses,
        batches,
        series,
        backend,
    })
}
