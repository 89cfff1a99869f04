//! Runs every guest of kvmng-guests on the real /dev/kvm through the
//! kvm-ioctls crate (deliberately not through any kvmng library) and checks
//! the exact sequence of exits.
//!
//! If /dev/kvm cannot be opened, each test prints
//! `SKIPPED: /dev/kvm not available: <error>` to stderr and returns.
//!
//! Every vCPU runs on its own thread; each request to it goes through a
//! watchdog ([`WATCHDOG`]) so that a guest that never exits (e.g. blocked in
//! HLT with the in-kernel irqchip) fails the test instead of hanging it. A
//! vCPU thread stuck that way is left behind; the test process ends anyway.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use kvm_bindings::{kvm_interrupt, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use kvmng_guests::long_mode::{long_mode_sregs, write_identity_page_tables};
use kvmng_guests::*;

/// How long one request to a vCPU thread may take.
const WATCHDOG: Duration = Duration::from_secs(10);
/// Data the host returns for every MMIO read (truncated to the access size).
const MMIO_READ_DATA: u64 = 0xCAFE_BABE;
/// `_IOW(KVMIO, 0x86, struct kvm_interrupt)`; kvm-ioctls has no wrapper.
const KVM_INTERRUPT: u64 = 0x4004_AE86;

// ---------------------------------------------------------------- helpers

/// Opens /dev/kvm, or says loudly why the test is skipped.
fn kvm_or_skip(test: &str) -> Option<Kvm> {
    match Kvm::new() {
        Ok(kvm) => Some(kvm),
        Err(e) => {
            // Straight to the stderr handle, so libtest's output capture
            // cannot hide it.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: /dev/kvm not available: {e} (test {test})"
            );
            None
        }
    }
}

/// Anonymous host memory backing guest memory. It is never unmapped: a vCPU
/// thread abandoned by the watchdog may still be running in it, and the
/// test process ends soon anyway.
#[derive(Clone, Copy)]
struct GuestMem {
    host: usize,
    gpa: u64,
    len: usize,
}

impl GuestMem {
    fn new(gpa: u64, len: usize) -> Self {
        // SAFETY: anonymous private mapping at a kernel-chosen address; no
        // existing memory is affected. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap {len:#x} bytes");
        GuestMem {
            host: p as usize,
            gpa,
            len,
        }
    }

    fn ptr(&self, gpa: u64, len: usize) -> *mut u8 {
        assert!(
            gpa >= self.gpa && (gpa - self.gpa) as usize + len <= self.len,
            "GPA {gpa:#x}+{len:#x} outside [{:#x}, +{:#x})",
            self.gpa,
            self.len
        );
        (self.host + (gpa - self.gpa) as usize) as *mut u8
    }

    fn write(&self, gpa: u64, data: &[u8]) {
        let dst = self.ptr(gpa, data.len());
        // SAFETY: `ptr` checked that [dst, dst+len) lies in our live mapping
        // (never unmapped); `data` is a distinct Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) }
    }

    /// The qword at `gpa` as an atomic (the guest may access it concurrently).
    fn qword(&self, gpa: u64) -> &'static AtomicU64 {
        assert_eq!(gpa % 8, 0);
        let p = self.ptr(gpa, 8).cast::<u64>();
        // SAFETY: `p` is 8-aligned (mmap is page-aligned, gpa % 8 == 0),
        // inside a mapping that is never unmapped (so 'static is fine), and
        // only ever accessed atomically by the host.
        unsafe { AtomicU64::from_ptr(p) }
    }

    fn with_slice(&self, f: impl FnOnce(&mut [u8])) {
        // SAFETY: the mapping is live and `len` bytes long; no vCPU runs yet
        // when this is called (setup only), so nothing else accesses it.
        let s = unsafe { std::slice::from_raw_parts_mut(self.host as *mut u8, self.len) };
        f(s)
    }

    fn map(&self, vm: &VmFd, slot: u32) {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: self.gpa,
            memory_size: self.len as u64,
            userspace_addr: self.host as u64,
        };
        // SAFETY: the region describes our own mapping, which stays valid
        // for the rest of the process (never unmapped).
        unsafe { vm.set_user_memory_region(region) }
            .unwrap_or_else(|e| panic!("KVM_SET_USER_MEMORY_REGION slot {slot}: {e}"));
    }
}

/// One vCPU exit, owned (so it can cross threads and be compared).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Exit {
    Out(u16, Vec<u8>),
    In(u16, usize),
    MmioWrite(u64, Vec<u8>),
    /// Answered with the low bytes of [`MMIO_READ_DATA`].
    MmioRead(u64, usize),
    Hlt,
    IrqWindowOpen,
    Other(String),
}

fn out8(port: u16, v: u8) -> Exit {
    Exit::Out(port, vec![v])
}

fn out32(port: u16, v: u32) -> Exit {
    Exit::Out(port, v.to_le_bytes().to_vec())
}

/// One KVM_RUN.
fn run_once(vcpu: &mut VcpuFd) -> Exit {
    match vcpu.run() {
        Ok(VcpuExit::IoOut(port, data)) => Exit::Out(port, data.to_vec()),
        Ok(VcpuExit::IoIn(port, data)) => {
            data.fill(0);
            Exit::In(port, data.len())
        }
        Ok(VcpuExit::MmioWrite(addr, data)) => Exit::MmioWrite(addr, data.to_vec()),
        Ok(VcpuExit::MmioRead(addr, data)) => {
            let len = data.len();
            data.copy_from_slice(&MMIO_READ_DATA.to_le_bytes()[..len]);
            Exit::MmioRead(addr, len)
        }
        Ok(VcpuExit::Hlt) => Exit::Hlt,
        Ok(VcpuExit::IrqWindowOpen) => Exit::IrqWindowOpen,
        Ok(other) => {
            let s = format!("{other:?}");
            let regs = vcpu.get_regs();
            Exit::Other(format!("{s}; regs {regs:x?}"))
        }
        Err(e) => Exit::Other(format!("KVM_RUN error: {e}")),
    }
}

/// Runs until HLT (inclusive), at most `max` exits.
fn run_to_hlt(vcpu: &mut VcpuFd, max: usize) -> Vec<Exit> {
    let mut exits = Vec::new();
    for _ in 0..max {
        let e = run_once(vcpu);
        let stop = matches!(e, Exit::Hlt | Exit::Other(_));
        exits.push(e);
        if stop {
            break;
        }
    }
    exits
}

type Job = Box<dyn FnOnce(&mut VcpuFd) + Send>;

/// A vCPU owned by its own thread; requests run there under the watchdog.
struct VcpuThread {
    jobs: Sender<Job>,
}

/// The result of a request still running on a vCPU thread.
struct Pending<T> {
    what: String,
    rx: Receiver<thread::Result<T>>,
}

impl<T> Pending<T> {
    fn wait(self) -> T {
        match self.rx.recv_timeout(WATCHDOG) {
            Ok(Ok(v)) => v,
            Ok(Err(p)) => panic::resume_unwind(p),
            Err(RecvTimeoutError::Timeout) => panic!(
                "watchdog: `{}` did not finish within {WATCHDOG:?}: the vCPU is stuck \
                 (no exit to userspace); its thread is abandoned",
                self.what
            ),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("`{}`: vCPU thread went away", self.what)
            }
        }
    }
}

impl VcpuThread {
    fn spawn(vcpu: VcpuFd) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("vcpu0".into())
            .spawn(move || {
                let mut vcpu = vcpu;
                for job in rx {
                    job(&mut vcpu);
                }
            })
            .expect("spawn vCPU thread");
        VcpuThread { jobs }
    }

    fn start<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce(&mut VcpuFd) -> T + Send + 'static,
    ) -> Pending<T> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move |vcpu: &mut VcpuFd| {
                let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(|| f(vcpu))));
            }))
            .expect("vCPU thread alive");
        Pending {
            what: what.to_string(),
            rx,
        }
    }

    fn call<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce(&mut VcpuFd) -> T + Send + 'static,
    ) -> T {
        self.start(what, f).wait()
    }
}

struct TestVm {
    vm: VmFd,
    low: GuestMem,
    vcpu: VcpuThread,
}

/// Creates a VM with the low memory slot (slot 0, `[0, LOW_MEM_SIZE)`)
/// holding `guest` at LOAD_ADDR, an in-kernel irqchip if the guest wants
/// one, and vCPU 0 set up for the guest's mode; `extra` runs before the
/// vCPU is created (e.g. to add memslots).
fn setup(kvm: &Kvm, guest: &Guest, extra: impl FnOnce(&VmFd)) -> TestVm {
    let vm = kvm.create_vm().expect("KVM_CREATE_VM");
    if guest.irqchip {
        vm.create_irq_chip().expect("KVM_CREATE_IRQCHIP");
    }
    let low = GuestMem::new(0, LOW_MEM_SIZE as usize);
    low.write(LOAD_ADDR, guest.code);
    if guest.mode == Mode::Long {
        low.with_slice(|mem| write_identity_page_tables(mem, 0));
    }
    low.map(&vm, 0);
    extra(&vm);

    let vcpu = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
    let mut sregs = vcpu.get_sregs().expect("KVM_GET_SREGS");
    match guest.mode {
        Mode::Real => real_mode_sregs(&mut sregs),
        Mode::Long => long_mode_sregs(&mut sregs),
    }
    vcpu.set_sregs(&sregs).expect("KVM_SET_SREGS");
    vcpu.set_regs(&initial_regs(LOAD_ADDR))
        .expect("KVM_SET_REGS");
    TestVm {
        vm,
        low,
        vcpu: VcpuThread::spawn(vcpu),
    }
}

/// Expected exits for console text.
fn console(text: &str) -> Vec<Exit> {
    text.bytes().map(|b| out8(CONSOLE_PORT, b)).collect()
}

/// KVM_INTERRUPT (userspace irqchip).
fn inject_interrupt(vcpu: &VcpuFd, vector: u8) {
    let irq = kvm_interrupt { irq: vector.into() };
    // SAFETY: KVM_INTERRUPT reads one `struct kvm_interrupt`, which `irq`
    // is, from a live vCPU fd; it does not retain the pointer.
    let r = unsafe { libc::ioctl(vcpu.as_raw_fd(), KVM_INTERRUPT as _, &irq) };
    assert_eq!(
        r,
        0,
        "KVM_INTERRUPT {vector:#x}: {}",
        std::io::Error::last_os_error()
    );
}

// ------------------------------------------------------------------ tests

#[test]
fn real_pio() {
    let Some(kvm) = kvm_or_skip("real_pio") else {
        return;
    };
    let t = setup(&kvm, by_name("real_pio").unwrap(), |_| {});
    let exits = t.vcpu.call("real_pio", |v| run_to_hlt(v, 100));
    let mut want = console(REAL_PIO_TEXT);
    want.push(out32(REPORT_PORT, REAL_PIO_REPORT));
    want.push(Exit::Hlt);
    assert_eq!(exits, want);
}

#[test]
fn real_mmio() {
    let Some(kvm) = kvm_or_skip("real_mmio") else {
        return;
    };
    let t = setup(&kvm, by_name("real_mmio").unwrap(), |_| {});
    let exits = t.vcpu.call("real_mmio", |v| run_to_hlt(v, 100));
    assert_eq!(
        exits,
        vec![
            Exit::MmioWrite(MMIO_REAL, REAL_MMIO_WRITE.to_le_bytes().to_vec()),
            Exit::MmioRead(MMIO_REAL + MMIO_READ_OFFSET, 4),
            out32(REPORT_PORT, MMIO_READ_DATA as u32),
            Exit::Hlt,
        ]
    );
}

#[test]
fn long_pio() {
    let Some(kvm) = kvm_or_skip("long_pio") else {
        return;
    };
    let t = setup(&kvm, by_name("long_pio").unwrap(), |_| {});
    let exits = t.vcpu.call("long_pio", |v| run_to_hlt(v, 100));
    let mut want = console(LONG_PIO_TEXT);
    want.push(out32(REPORT_PORT, LONG_PIO_REPORT));
    want.push(Exit::Hlt);
    assert_eq!(exits, want);
}

#[test]
fn long_mmio() {
    let Some(kvm) = kvm_or_skip("long_mmio") else {
        return;
    };
    let t = setup(&kvm, by_name("long_mmio").unwrap(), |_| {});
    let exits = t.vcpu.call("long_mmio", |v| run_to_hlt(v, 100));
    assert_eq!(
        exits,
        vec![
            Exit::MmioWrite(MMIO_LONG, LONG_MMIO_WRITE.to_le_bytes().to_vec()),
            Exit::MmioRead(MMIO_LONG + MMIO_READ_OFFSET, 4),
            out32(REPORT_PORT, MMIO_READ_DATA as u32),
            Exit::Hlt,
        ]
    );
}

#[test]
fn pio_loop() {
    let Some(kvm) = kvm_or_skip("pio_loop") else {
        return;
    };
    let t = setup(&kvm, by_name("pio_loop").unwrap(), |_| {});
    let exits = t.vcpu.call("pio_loop", |v| {
        (0..100).map(|_| run_once(v)).collect::<Vec<_>>()
    });
    let want: Vec<Exit> = (0..100).map(|i| out32(REPORT_PORT, i)).collect();
    assert_eq!(exits, want);
}

#[test]
fn mmio_loop() {
    let Some(kvm) = kvm_or_skip("mmio_loop") else {
        return;
    };
    let t = setup(&kvm, by_name("mmio_loop").unwrap(), |_| {});
    let exits = t.vcpu.call("mmio_loop", |v| {
        (0..100).map(|_| run_once(v)).collect::<Vec<_>>()
    });
    let want: Vec<Exit> = (0..100u32)
        .map(|i| Exit::MmioWrite(MMIO_REAL, i.to_le_bytes().to_vec()))
        .collect();
    assert_eq!(exits, want);
}

#[test]
fn map_check() {
    let Some(kvm) = kvm_or_skip("map_check") else {
        return;
    };
    const PATTERN: u64 = 0x0123_4567_89AB_CDEF;
    let slot_a = GuestMem::new(SLOT_A_GPA, SLOT_SIZE as usize);
    let slot_b = GuestMem::new(SLOT_B_GPA, SLOT_SIZE as usize);
    slot_a.write(SLOT_A_GPA, &PATTERN.to_le_bytes());
    slot_b.write(SLOT_B_GPA, &PATTERN.to_le_bytes());
    let t = setup(&kvm, by_name("map_check").unwrap(), |vm| {
        slot_a.map(vm, 1);
        slot_b.map(vm, 2);
    });
    // Anything but DONE ends the run: FAIL, an MMIO exit at A or B (a slot
    // seen unbacked), or anything unexpected.
    let pending = t.vcpu.start("map_check", |v| {
        let mut exits = Vec::new();
        loop {
            let e = run_once(v);
            exits.push(e.clone());
            if !matches!(e, Exit::Out(FAIL_PORT, _)) || exits.len() > 10 {
                return exits;
            }
        }
    });
    thread::sleep(Duration::from_millis(50));
    t.low.qword(STOP_FLAG_GPA).store(1, Ordering::SeqCst);
    let exits = pending.wait();
    let counter = t.low.qword(COUNTER_GPA).load(Ordering::SeqCst);
    eprintln!("map_check: {counter} iterations in ~50 ms");
    assert!(counter > 0);
    assert_eq!(exits, vec![out32(DONE_PORT, counter as u32)]);
    assert_eq!(
        t.vcpu.call("map_check hlt", |v| run_to_hlt(v, 10)),
        vec![Exit::Hlt]
    );
}

#[test]
fn irq_real() {
    let Some(kvm) = kvm_or_skip("irq_real") else {
        return;
    };
    let t = setup(&kvm, by_name("irq_real").unwrap(), |_| {});
    assert_eq!(
        t.vcpu.call("irq_real ready", run_once),
        out32(REPORT_PORT, IRQ_READY)
    );

    // Wait for an interrupt window (the guest does `sti; hlt`).
    let window_exits = t.vcpu.call("irq_real window", |v| {
        let mut exits = Vec::new();
        loop {
            let run = v.get_kvm_run();
            if run.ready_for_interrupt_injection != 0 && run.if_flag != 0 {
                run.request_interrupt_window = 0;
                return exits;
            }
            assert!(exits.len() < 10, "no interrupt window: {exits:?}");
            run.request_interrupt_window = 1;
            exits.push(run_once(v));
        }
    });
    for e in &window_exits {
        assert!(
            matches!(e, Exit::IrqWindowOpen | Exit::Hlt),
            "while waiting for the interrupt window: {window_exits:?}"
        );
    }
    eprintln!("irq_real: exits while opening the window: {window_exits:?}");

    let exits = t.vcpu.call("irq_real interrupt", |v| {
        inject_interrupt(v, IRQ_REAL_VECTOR);
        run_to_hlt(v, 10)
    });
    assert_eq!(exits, vec![out8(IRQ_PORT, IRQ_REAL_VECTOR), Exit::Hlt]);

    let exits = t.vcpu.call("irq_real nmi", |v| {
        v.nmi().expect("KVM_NMI");
        run_to_hlt(v, 10)
    });
    assert_eq!(exits, vec![out8(NMI_PORT, 2), Exit::Hlt]);
}

#[test]
fn irq_pic() {
    let Some(kvm) = kvm_or_skip("irq_pic") else {
        return;
    };
    let guest = by_name("irq_pic").unwrap();
    assert!(guest.irqchip);
    let t = setup(&kvm, guest, |_| {});
    assert_eq!(
        t.vcpu.call("irq_pic ready", run_once),
        out32(REPORT_PORT, IRQ_READY)
    );
    // Twice: the second interrupt also checks that the handler's EOI
    // reached the in-kernel PIC. After the last one the vCPU is not run
    // again (it would block in HLT in the kernel forever).
    for round in 1..=2 {
        let pending = t
            .vcpu
            .start(&format!("irq_pic interrupt {round}"), run_once);
        t.vm.set_irq_line(IRQ_PIC_GSI, true)
            .expect("KVM_IRQ_LINE level 1");
        t.vm.set_irq_line(IRQ_PIC_GSI, false)
            .expect("KVM_IRQ_LINE level 0");
        assert_eq!(
            pending.wait(),
            out8(IRQ_PORT, IRQ_PIC_VECTOR),
            "round {round}"
        );
    }
}

/// Sets general registers of the vCPU on its thread (the guests that take
/// arguments in registers).
fn set_args(t: &TestVm, f: impl FnOnce(&mut kvm_bindings::kvm_regs) + Send + 'static) {
    t.vcpu.call("set registers", |v| {
        let mut regs = v.get_regs().expect("KVM_GET_REGS");
        f(&mut regs);
        v.set_regs(&regs).expect("KVM_SET_REGS");
    });
}

fn mmio_write(addr: u64, value: u64, len: usize) -> Exit {
    Exit::MmioWrite(addr, value.to_le_bytes()[..len].to_vec())
}

#[test]
fn ioregion_regs() {
    let Some(kvm) = kvm_or_skip("ioregion_regs") else {
        return;
    };
    // Without a device every access is an exit, and reads get
    // MMIO_READ_DATA (0 for port reads).
    let t = setup(&kvm, by_name("ioregion_regs").unwrap(), |_| {});
    let exits = t.vcpu.call("ioregion_regs", |v| run_to_hlt(v, 100));
    let data = MMIO_READ_DATA;
    assert_eq!(
        exits,
        vec![
            mmio_write(MMIO_LONG, 0x11, 1),
            mmio_write(MMIO_LONG + 8, 0x2222, 2),
            mmio_write(MMIO_LONG + 16, 0x3333_3333, 4),
            mmio_write(MMIO_LONG + 24, 0x4444_4444_5555_5555, 8),
            Exit::MmioRead(MMIO_LONG, 1),
            out32(REPORT_PORT, data as u32 & 0xFF),
            Exit::MmioRead(MMIO_LONG + 8, 2),
            out32(REPORT_PORT, data as u32 & 0xFFFF),
            Exit::MmioRead(MMIO_LONG + 16, 4),
            out32(REPORT_PORT, data as u32),
            Exit::MmioRead(MMIO_LONG + 24, 8),
            out32(REPORT_PORT, data as u32),
            out32(REPORT_PORT, (data >> 32) as u32),
            out32(IOREGION_PORT, 0x6666_6666),
            Exit::In(IOREGION_PORT + 2, 2),
            out32(REPORT_PORT, 0),
            out32(DONE_PORT, 0),
            Exit::Hlt,
        ]
    );
}

#[test]
fn ioregion_smp() {
    let Some(kvm) = kvm_or_skip("ioregion_smp") else {
        return;
    };
    // vCPU index 1, two iterations: the host answers the read-back with
    // MMIO_READ_DATA, a mismatch, so the guest reports FAIL at once.
    let t = setup(&kvm, by_name("ioregion_smp").unwrap(), |_| {});
    set_args(&t, |r| {
        r.rbx = 1;
        r.rcx = 2;
    });
    let exits = t.vcpu.call("ioregion_smp", |v| run_to_hlt(v, 100));
    assert_eq!(
        exits,
        vec![
            mmio_write(MMIO_LONG + 8, 1 << 32, 8),
            Exit::MmioRead(MMIO_LONG + 8, 8),
            out32(FAIL_PORT, MMIO_READ_DATA as u32),
            Exit::Hlt,
        ]
    );
}

#[test]
fn mmio_bench() {
    let Some(kvm) = kvm_or_skip("mmio_bench") else {
        return;
    };
    let t = setup(&kvm, by_name("mmio_bench").unwrap(), |_| {});
    set_args(&t, |r| {
        r.rsi = MMIO_LONG + 0x40;
        r.rcx = 3;
        r.rdi = 0;
    });
    let exits = t.vcpu.call("mmio_bench writes", |v| run_to_hlt(v, 100));
    let mut want: Vec<Exit> = (0..3).map(|i| mmio_write(MMIO_LONG + 0x40, i, 4)).collect();
    want.extend([out32(DONE_PORT, 3), Exit::Hlt]);
    assert_eq!(exits, want);

    set_args(&t, |r| {
        r.rip = LOAD_ADDR;
        r.rsi = MMIO_LONG;
        r.rcx = 2;
        r.rdi = 1;
    });
    let exits = t.vcpu.call("mmio_bench reads", |v| run_to_hlt(v, 100));
    assert_eq!(
        exits,
        vec![
            Exit::MmioRead(MMIO_LONG, 4),
            Exit::MmioRead(MMIO_LONG, 4),
            out32(DONE_PORT, MMIO_READ_DATA as u32),
            Exit::Hlt,
        ]
    );
}
