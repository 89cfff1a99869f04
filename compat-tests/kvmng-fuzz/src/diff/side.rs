//! One side of a differential round: a process that makes the round's
//! operations through one backend (kvmng::backend::native or ::legacy)
//! and records every outcome in its trace.
//!
//! Each side is its own forked process: the native backend's bindings are
//! the kernel's (per mm and task) and the legacy backend's are the
//! library's statics, so both could share one process; but they would
//! share the fd table too (the emulation's private duplicates and
//! eventfds, the fd numbers a call returns, RLIMIT_NOFILE for the EMFILE
//! cases) and a fork child would inherit both. Apart, each side sees
//! exactly what a program using only that backend sees.

use super::device::{self, Device};
use super::mask6::Hint;
use super::ops::*;
use super::trace::{Rec, Trace};
use crate::mask;
use crate::rng::Rng;
use kvm_bindings::kvm_userspace_memory_region2;
use kvmng::backend::Backend;
use kvmng::errno::SysResult;
use kvmng_abi::ioctls;
use kvmng_abi::*;
use std::sync::mpsc;

type Job = Box<dyn FnOnce() -> SysResult + Send>;

struct Worker {
    tx: mpsc::Sender<Job>,
    rx: mpsc::Receiver<SysResult>,
    handle: std::thread::JoinHandle<()>,
}

impl Worker {
    fn new() -> Worker {
        let (tx, jrx) = mpsc::channel::<Job>();
        let (rtx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            while let Ok(job) = jrx.recv() {
                if rtx.send(job()).is_err() {
                    break;
                }
            }
        });
        Worker { tx, rx, handle }
    }
}

struct Vcpu {
    fd: i32,
    run: u64,
}

/// The output of a run the watchdog had to kick (device.rs).
pub(crate) const KICKED: &[u8] = b"run: kicked by the watchdog after 10 s";

/// What `prepare_run` leaves in `kvm_run.apic_base` ("KVMNG" and 1).
const RUN_SENTINEL: u64 = 0x4b56_4d4e_4700_0001;

/// The memory the operations point into: mapped by the supervisor before
/// it forks the sides, so that every address is the same on both.
#[derive(Clone, Copy)]
pub struct Mem {
    pub arena: u64,
    pub pool: u64,
}

impl Mem {
    pub fn new() -> Mem {
        // SAFETY: fresh private anonymous mappings.
        let arena = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ARENA + 4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(arena != libc::MAP_FAILED);
        // SAFETY: the guard page of the arena just mapped.
        let r =
            unsafe { libc::mprotect(arena.cast::<u8>().add(ARENA).cast(), 4096, libc::PROT_NONE) };
        assert_eq!(r, 0);
        // SAFETY: as above.
        let pool = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                POOL,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(pool != libc::MAP_FAILED);
        Mem {
            arena: arena as u64,
            pool: pool as u64,
        }
    }
}

/// The registers of the guest's start: regs, sregs, and the in-kernel
/// LAPIC when there is one.
type Sane = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

pub struct Side {
    be: &'static dyn Backend,
    mem: Mem,
    kvm: i32,
    kvm_ro: i32,
    devnull: i32,
    evfd: i32,
    stream: i32,
    dgram: i32,
    unconn: i32,
    inet: i32,
    devs: [Option<Device>; 2],
    vms: Vec<i32>,
    vcpus: Vec<Vcpu>,
    workers: [Option<Worker>; 2],
    run_size: usize,
    sane: Option<Sane>,
    pub model: Model,
    trace: Trace,
    image: Vec<u8>,
    in_child: bool,
    /// A regression case: it goes on after a dead VM (that is its point).
    fixed: bool,
    /// Per vCPU (index as in `vcpus`): what the model knows of an access
    /// its last kvmng_run may have left pending.
    pending: Vec<PendingAccess>,
}

/// What the model knows of the access a vCPU's failed kvmng_run may have
/// left pending, for api.md §6 "The retried access is read from kvm_run".
#[derive(Clone, Debug, Default, PartialEq)]
struct PendingAccess {
    /// The last kvmng_run failed while the VM had regions, with a port or
    /// MMIO exit in `kvm_run`: an access may be pending.
    pending: bool,
    /// A `KVM_RUN` ioctl since then left `kvm_run` showing an access like
    /// the pending one (or returned EINTR with it as it was).
    alike: bool,
    /// How `kvm_run` described the pending access (`access_key`).
    key: Option<Vec<u8>>,
}

impl PendingAccess {
    /// Whether the next kvmng_run may take `kvm_run`'s exit for its
    /// pending access.
    fn retried(&self) -> bool {
        self.pending && self.alike
    }

    /// Learns from `call` (a run of this vCPU) returning `r`, with
    /// `kvm_run` recorded in `out`; `regions`: the VM has I/O regions.
    fn after(&mut self, call: &Call, r: Result<i64, kvmng::Errno>, out: &[u8], regions: bool) {
        match (call, r) {
            (Call::Run { .. }, Ok(_)) => *self = PendingAccess::default(),
            // A run refused before it looked at the vCPU (no vCPU bound,
            // bad flags) leaves a pending access as it was.
            (Call::Run { .. }, Err(e)) if [libc::ESRCH, libc::EINVAL].contains(&e.0) => {}
            (Call::Run { .. }, Err(_)) => {
                // An access can be pending only when kvm_run shows a port
                // or MMIO exit; one pending before stays pending through
                // failed runs even when its regions are gone
                // (immediate_exit and signals are checked first).
                let access = matches!(run_exit(out), Some(2 | 6));
                self.pending = access && (regions || self.pending);
                self.alike &= access;
                self.key = if self.pending { access_key(out) } else { None };
            }
            // The emulation keeps its pending access until the next
            // kvmng_run on the vCPU, and then takes kvm_run's exit for it
            // when the two are alike. So after any KVM_RUN ioctl that
            // completed it (returning an exit, or EINTR with kvm_run as it
            // was), what counts is whether kvm_run now shows an identical
            // access: the guest's loop came round to it again, perhaps
            // after other exits and other ioctls (seed 20261208, round
            // 124).
            (Call::RawRun { .. }, Ok(_) | Err(kvmng::Errno(libc::EINTR))) if self.pending => {
                self.alike = self.key.is_some() && access_key(out) == self.key;
            }
            _ => {}
        }
    }
}

fn open(p: &std::ffi::CStr, flags: i32) -> i32 {
    // SAFETY: a NUL-terminated path.
    unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) }
}

fn sock(domain: i32, ty: i32) -> i32 {
    // SAFETY: plain socket().
    unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) }
}

extern "C" fn on_usr1(_: i32) {}

fn split(r: SysResult) -> (i64, i32) {
    match r {
        Ok(v) => (v, 0),
        Err(e) => (-1, e.0),
    }
}

/// What an fd is, instead of its number: its /proc link and its flags.
fn fd_info(fd: i32) -> Vec<u8> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Anon inodes are named, sockets and files are numbered: keep the name.
    let link = match link.find(":[") {
        Some(i) => link[..i].to_string(),
        None => link,
    };
    // SAFETY: plain fcntl on an fd this call returned.
    let (fdf, fl) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFD),
            libc::fcntl(fd, libc::F_GETFL),
        )
    };
    let mut v = format!("fd:{link}:{fdf}:{fl:#x};").into_bytes();
    v.push(0);
    v
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h = (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl Side {
    pub fn new(be: &'static dyn Backend, mem: Mem, trace: Trace) -> Side {
        // SAFETY: installs a handler that does nothing, without SA_RESTART:
        // it only ends waits (the stalling device's signal).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_usr1 as extern "C" fn(i32) as usize;
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        }
        let kvm = open(c"/dev/kvm", libc::O_RDWR);
        let kvm_ro = open(c"/dev/kvm", libc::O_RDONLY);
        let devnull = open(c"/dev/null", libc::O_RDWR);
        // SAFETY: plain eventfd().
        let evfd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        let mut sv = [0i32; 2];
        // SAFETY: writes two fds.
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        };
        let stream = sv[0];
        let dgram = sock(libc::AF_UNIX, libc::SOCK_DGRAM);
        let unconn = sock(libc::AF_UNIX, libc::SOCK_SEQPACKET);
        let inet = sock(libc::AF_INET, libc::SOCK_STREAM);
        // SAFETY: an integer argument.
        let run_size =
            unsafe { libc::syscall(libc::SYS_ioctl, kvm, ioctls::KVM_GET_VCPU_MMAP_SIZE, 0) }
                .max(8192) as usize;
        Side {
            be,
            mem,
            kvm,
            kvm_ro,
            devnull,
            evfd,
            stream,
            dgram,
            unconn,
            inet,
            devs: [Some(Device::new()), Some(Device::new())],
            vms: Vec::new(),
            vcpus: Vec::new(),
            workers: [None, None],
            run_size,
            sane: None,
            model: Model::default(),
            trace,
            image: vec![0; ARENA],
            in_child: false,
            fixed: false,
            pending: Vec::new(),
        }
    }

    fn fd(&self, s: FdSel) -> i32 {
        match s {
            FdSel::Kvm => self.kvm,
            FdSel::KvmReadOnly => self.kvm_ro,
            FdSel::DevNull => self.devnull,
            FdSel::Eventfd => self.evfd,
            FdSel::Vm(i) if !self.vms.is_empty() => self.vms[i as usize % self.vms.len()],
            FdSel::Vcpu(i) if !self.vcpus.is_empty() => {
                self.vcpus[i as usize % self.vcpus.len()].fd
            }
            FdSel::Vm(_) | FdSel::Vcpu(_) => 300,
            FdSel::Dev(i) => self.devs[i as usize % 2].as_ref().map_or(300, |d| d.fd),
            FdSel::StreamSock => self.stream,
            FdSel::DgramSock => self.dgram,
            FdSel::UnconnectedSeqpacket => self.unconn,
            FdSel::InetSock => self.inet,
            FdSel::Closed => 300,
            FdSel::Minus1 => -1,
        }
    }

    fn addr(&self, p: Ptr) -> u64 {
        match p {
            Ptr::Arena(o) => self.mem.arena + o as u64,
            Ptr::Guard(o) => self.mem.arena + (ARENA + o) as u64,
            Ptr::Null => 0,
            Ptr::Kernel => 0xffff_8000_0000_0000,
        }
    }

    fn arena(&mut self) -> &mut [u8] {
        // SAFETY: ARENA bytes mapped read-write for the process's life.
        unsafe { std::slice::from_raw_parts_mut(self.mem.arena as *mut u8, ARENA) }
    }

    fn pool(&mut self) -> &mut [u8] {
        // SAFETY: POOL bytes mapped read-write for the process's life; the
        // guests see them through the slots, which is the point.
        unsafe { std::slice::from_raw_parts_mut(self.mem.pool as *mut u8, POOL) }
    }

    /// Writes `data` at arena offset `off` (cut at the guard page) in the
    /// image of the call's input.
    fn put(&mut self, off: usize, data: &[u8]) {
        if off < ARENA {
            let n = data.len().min(ARENA - off);
            self.image[off..off + n].copy_from_slice(&data[..n]);
        }
    }

    /// Runs `f` on thread `th` of this side.
    fn on(&mut self, th: Th, f: impl FnOnce() -> SysResult + Send + 'static) -> SysResult {
        if th == Th::Main || self.in_child {
            return f();
        }
        let w = self.workers[th.index() - 1].get_or_insert_with(Worker::new);
        w.tx.send(Box::new(f)).expect("worker alive");
        w.rx.recv().expect("worker answers")
    }

    fn map_run(&self, fd: i32) -> u64 {
        // SAFETY: maps a vCPU fd's kvm_run area, as KVM programs do.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                self.run_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            0
        } else {
            p as u64
        }
    }

    fn region2(&self, r: &Region) -> kvm_userspace_memory_region2 {
        kvm_userspace_memory_region2 {
            slot: r.slot,
            flags: r.flags,
            guest_phys_addr: r.gpa,
            memory_size: r.size,
            userspace_addr: if r.pool == u64::MAX {
                0xdead_0000_0000
            } else {
                self.mem.pool + r.pool
            },
            guest_memfd_offset: 0,
            guest_memfd: r.gmem_fd,
            ..Default::default()
        }
    }

    /// The guest: the program and the IVT in slot 0's memory.
    pub fn load_guest(&mut self, irqchip: bool) {
        let pool = self.pool();
        pool[..SLOT0].fill(0);
        for v in 0..256 {
            pool[4 * v..4 * v + 4].copy_from_slice(&[0x00, 0x1f, 0, 0]);
        }
        pool[0x1f00..0x1f03].copy_from_slice(&super::guest::HANDLER);
        pool[0x1000..0x1000 + super::guest::CODE.len()].copy_from_slice(&super::guest::CODE);
        pool[0x1800..0x1803].copy_from_slice(b"abc");
        pool[0x8010] = u8::from(irqchip);
        // Slots the fuzzer makes: a recognizable pattern per 64 KiB.
        for (i, chunk) in pool[SLOT0..].chunks_mut(0x10000).enumerate() {
            for (j, b) in chunk.iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(31) ^ (j as u8);
            }
        }
    }

    /// Runs `op` and records it; true when the round must end after it
    /// (a §6 difference that leaves the two sides' state different).
    pub fn exec(&mut self, idx: u32, op: &Op) -> bool {
        self.image.fill(0);
        let mut rec = Rec {
            idx,
            sys: syscall_of(&op.call),
            hint: 0,
            ret: 0,
            errno: 0,
            xsave: Vec::new(),
            out: Vec::new(),
            what: describe(op),
            diag: String::new(),
        };
        if std::env::var_os("KVMNG_FUZZ_TRACE_OPS").is_some() {
            // -v: the operation before it runs, so that a hang names it.
            eprintln!("  [{}] op {idx}: {}", self.be.kind().name(), rec.what);
        }
        let vm_bound_before = self.model.vm_bound;
        let regions_before = self.model.regions;
        // §6 "A dead VM": a bind once a VM of this mm died.
        let dead_bind = self.model.dead_seen
            && matches!(op.call, Call::BindVm { fd, .. } | Call::BindVcpu { fd, .. } if fd != FdSel::Minus1);
        // §6 "Regions belong to the bound VM": a run of another VM's vCPU
        // while the bound VM has regions.
        let foreign_run = matches!(op.call, Call::Run { .. })
            && self.model.regions != 0
            && self.model.bound[op.th.index()].is_some_and(|v| {
                self.model.vcpu_vm.get(v).copied().flatten() != self.model.bound_vm
            });
        // §6 "Region sockets": a fork child's ADD on a socket that served
        // the parent's VM (which the kernel refuses, EBUSY).
        let socket_other_vm = self.in_child
            && match &op.call {
                Call::Ioregion {
                    op: KVMNG_IOREGION_ADD,
                    fd: FdSel::Dev(i),
                    ..
                } => self.model.parent_dev_regions[*i as usize % 2],
                Call::FdLimit { call, .. } => matches!(**call, Call::Ioregion {
                    op: KVMNG_IOREGION_ADD,
                    fd: FdSel::Dev(i),
                    ..
                } if self.model.parent_dev_regions[i as usize % 2]),
                _ => false,
            };
        // §6 "The retried access is read from kvm_run": a run of a vCPU
        // whose access may be pending, after a KVM_RUN ioctl on it that
        // returned EINTR (having completed the access, or not).
        let run_vcpu = match op.call {
            Call::Run { .. } => self.model.bound[op.th.index()],
            Call::RawRun { vcpu, .. } if !self.vcpus.is_empty() => {
                Some(vcpu as usize % self.vcpus.len())
            }
            _ => None,
        };
        if let Some(v) = run_vcpu {
            if self.pending.len() <= v {
                self.pending.resize(v + 1, PendingAccess::default());
            }
        }
        let retried_after_ioctl = matches!(op.call, Call::Run { .. })
            && run_vcpu.is_some_and(|v| self.pending[v].retried());
        let t0 = std::time::Instant::now();
        let r = self.call(op.th, &op.call, &mut rec);
        if t0.elapsed() > std::time::Duration::from_secs(5) {
            eprintln!(
                "kvmng-fuzz: slow operation ({:.1} s, {r:?}): op {idx}: {}",
                t0.elapsed().as_secs_f64(),
                rec.what
            );
        }
        let (ret, errno) = split(r);
        rec.ret = ret;
        rec.errno = errno;
        let mut end = super::mask6::ends_round(&op.call) || rec.out == KICKED;
        if end {
            rec.hint = rec.hint.max(super::mask6::hint_of(&op.call) as u8);
        }
        learn(&mut self.model, op, r.is_ok());
        if r == Err(kvmng::Errno(libc::EIO)) && !self.in_child {
            self.model.dead_seen = true;
        }
        if r == Err(kvmng::Errno(libc::EIO)) && !self.in_child && !self.fixed {
            // §6 "A dead VM": KVM killed a VM of this mm (every object here
            // is this mm's, so EIO says so); from here the two
            // implementations may order their checks differently against
            // it (bind, the buffer reads of a state batch): the round ends.
            self.model.dead_seen = true;
            rec.hint = Hint::DeadBind as u8;
            end = true;
        }
        let regions_n = match &op.call {
            Call::MemMap { count, regions, .. } => (*count).min(regions.len() as u32),
            _ => 0,
        };
        // Whatever its outcome: the kernel may refuse such a map up front
        // (EINVAL, 5.8) for a slot the emulation no longer knows.
        if regions_n >= 2 && self.model.rebound {
            rec.hint = Hint::RollbackForgotten as u8;
            end = true;
        }
        if foreign_run {
            rec.hint = Hint::ForeignRun as u8;
            end = true;
        }
        if dead_bind {
            rec.hint = Hint::DeadBind as u8;
            end = true;
        }
        if socket_other_vm {
            rec.hint = Hint::SocketOtherVm as u8;
            end = true;
        }
        if let Some(v) = run_vcpu {
            let regions = self.model.regions != 0;
            self.pending[v].after(&op.call, r, &rec.out, regions);
        }
        if retried_after_ioctl {
            rec.hint = Hint::RetriedAfterIoctl as u8;
            end = true;
        }
        // §6 "Regions belong to the bound VM": once the mm's binding
        // changed with regions registered, the emulation has forgotten
        // them and the kernel has not; the round ends there.
        if r.is_ok()
            && regions_before != 0
            && matches!(op.call, Call::CreateVm { .. } | Call::BindVm { .. })
            && (vm_bound_before != self.model.vm_bound || matches!(op.call, Call::CreateVm { .. }))
        {
            rec.hint = Hint::RegionsRebind as u8;
            end = true;
        }
        if !self.trace.push(&rec) {
            return true;
        }
        end
    }

    fn finish_arena(&mut self, rec: &mut Rec, masks: &[(usize, u64, i64)]) {
        let img = std::mem::take(&mut self.image);
        let a = self.arena();
        for &(off, cmd, ret) in masks {
            if off < ARENA {
                mask::apply(cmd, ret, &mut a[off..]);
            }
        }
        let first = a.iter().zip(&img).position(|(x, y)| x != y);
        if let Some(f) = first {
            let last = ARENA
                - a.iter()
                    .rev()
                    .zip(img.iter().rev())
                    .position(|(x, y)| x != y)
                    .expect("a difference");
            if !rec.xsave.is_empty() {
                rec.out.extend_from_slice(b"arena*");
                rec.out.extend_from_slice(a);
            } else {
                rec.out.extend_from_slice(format!("arena@{f}:").as_bytes());
                rec.out.extend_from_slice(&a[f..last]);
            }
        }
        self.image = img;
    }

    fn load_arena(&mut self) {
        let img = std::mem::take(&mut self.image);
        self.arena().copy_from_slice(&img);
        self.image = img;
    }

    fn call(&mut self, th: Th, c: &Call, rec: &mut Rec) -> SysResult {
        let be = self.be;
        match c {
            Call::CreateVm { kvm, ty, flags } => {
                let (k, ty, fl) = (self.fd(*kvm), *ty, *flags);
                let r = self.on(th, move || be.create_vm(k, ty, fl));
                if let Ok(fd) = r {
                    rec.out.extend(fd_info(fd as i32));
                    self.vms.push(fd as i32);
                    return Ok(0);
                }
                r
            }
            Call::BindVm { fd, flags } => {
                let (f, fl) = (self.fd(*fd), *flags);
                self.on(th, move || be.bind_vm(f, fl))
            }
            Call::CreateVcpu { id, flags } => {
                let (id, fl) = (*id, *flags);
                let r = self.on(th, move || be.create_vcpu(id, fl));
                if let Ok(fd) = r {
                    rec.out.extend(fd_info(fd as i32));
                    let run = self.map_run(fd as i32);
                    self.vcpus.push(Vcpu { fd: fd as i32, run });
                    return Ok(0);
                }
                r
            }
            Call::BindVcpu { fd, flags } => {
                let (f, fl) = (self.fd(*fd), *flags);
                self.on(th, move || be.bind_vcpu(f, fl))
            }
            Call::Run {
                flags,
                imm,
                fill,
                control,
            } => {
                let run = self.model.bound[th.index()]
                    .and_then(|v| self.vcpus.get(v))
                    .map_or(0, |v| v.run);
                let vcpu_fd = self.model.bound[th.index()]
                    .and_then(|v| self.vcpus.get(v))
                    .map(|v| v.fd);
                self.prepare_run(run, *imm, *fill);
                let (fl, control) = (*flags, *control);
                let r = self.on(th, move || {
                    device::run_begin(run);
                    let r = if control {
                        // SAFETY: KVM_RUN takes no argument.
                        unsafe { be.control(KVMNG_SCOPE_VCPU, ioctls::KVM_RUN as u32, 0, fl) }
                    } else {
                        be.run(fl)
                    };
                    device::run_end();
                    r
                });
                self.observe_run(run, rec);
                if let Some(fd) = vcpu_fd {
                    self.run_diag(fd, rec);
                }
                if device::take_kicked() {
                    // The guest ran for seconds with every exit served by
                    // a region (or halted): how far it got is the host's
                    // timing, so only the kick is compared (both sides
                    // must have needed it) and the round ends.
                    rec.out = KICKED.to_vec();
                }
                r
            }
            Call::RawRun { vcpu, fill } => {
                let Some(v) = (!self.vcpus.is_empty())
                    .then(|| &self.vcpus[*vcpu as usize % self.vcpus.len()])
                else {
                    return Err(kvmng::Errno(libc::EBADF));
                };
                let (fd, run) = (v.fd, v.run);
                let dirty = self
                    .model
                    .dirty
                    .get(*vcpu as usize % self.vcpus.len())
                    .copied()
                    .unwrap_or(true)
                    || self.model.vm_dirty;
                self.prepare_run(run, dirty, *fill);
                // SAFETY: KVM_RUN takes no argument.
                let r = self.on(th, move || unsafe {
                    kvmng::sys::ioctl(fd, ioctls::KVM_RUN, 0)
                });
                self.observe_run(run, rec);
                self.run_diag(fd, rec);
                r
            }
            Call::State {
                entries,
                count,
                at,
                flags,
            } => {
                let mut raw = Vec::with_capacity(entries.len() * 24);
                // Per entry: the arena offset of its buffer, if there.
                let mut bufs: Vec<Option<usize>> = Vec::new();
                // Buffers after the entry array, 8-aligned.
                let base = match at {
                    Ptr::Arena(o) if *o < ARENA / 2 => (*o + entries.len() * 24 + 7) & !7,
                    _ => 0,
                };
                let mut next = base;
                for e in entries {
                    let (addr, off) = match e.at {
                        Ptr::Arena(_) if next + e.data.len() <= ARENA => {
                            let o = next;
                            next = (next + e.data.len().max(e.size.min(8192) as usize) + 7) & !7;
                            (self.mem.arena + o as u64, Some(o))
                        }
                        Ptr::Arena(_) => (self.addr(Ptr::Guard(0)), None),
                        p => (self.addr(p), None),
                    };
                    if let Some(o) = off {
                        self.put(o, &e.data);
                        if e.op == KVMNG_STATE_GET
                            && matches!(e.kind, KVMNG_STATE_XSAVE | KVMNG_STATE_XSAVE2)
                        {
                            rec.xsave.push(o as u32);
                        }
                    }
                    bufs.push(off);
                    raw.extend_from_slice(&e.kind.to_le_bytes());
                    raw.extend_from_slice(&e.op.to_le_bytes());
                    raw.extend_from_slice(&addr.to_le_bytes());
                    raw.extend_from_slice(&e.size.to_le_bytes());
                    raw.extend_from_slice(&0x5a5a_5a5au32.to_le_bytes());
                }
                if let Ptr::Arena(o) = at {
                    self.put(*o, &raw);
                }
                self.load_arena();
                let (p, n, fl) = (self.addr(*at), *count, *flags);
                // SAFETY: the entries and buffers are in the arena, in the
                // guard page or unmapped on purpose.
                let r = self.on(th, move || unsafe {
                    be.vcpu_state(p as *mut kvmng_state_entry, n, fl)
                });
                // The time-dependent fields of GET outputs (mask.rs); for
                // MSRS among the entries the call processed (its result).
                let mut masks = Vec::new();
                for (i, (e, off)) in entries.iter().zip(&bufs).enumerate() {
                    let (Some(o), cmd) = (off, state_get_cmd(e.kind)) else {
                        continue;
                    };
                    if e.op != KVMNG_STATE_GET || cmd == 0 {
                        continue;
                    }
                    let res = match at {
                        Ptr::Arena(a) => {
                            let p = a + 24 * i + 20;
                            self.arena().get(p..p + 4).map_or(-1, |b| {
                                i64::from(i32::from_le_bytes(b.try_into().expect("4")))
                            })
                        }
                        _ => -1,
                    };
                    masks.push((
                        *o,
                        cmd,
                        if e.kind == KVMNG_STATE_MSRS {
                            res
                        } else {
                            i64::MAX
                        },
                    ));
                }
                self.finish_arena(rec, &masks);
                if r.is_ok() {
                    // GET outputs (their time fields blanked by the masks
                    // above): the input of later SETs. The generator must
                    // feed only on what both sides have alike.
                    for (e, off) in entries.iter().zip(&bufs) {
                        if let (Some(o), KVMNG_STATE_GET) = (off, e.op) {
                            let len = e.data.len().min(ARENA - o);
                            let mut v = self.arena()[*o..*o + len].to_vec();
                            if matches!(e.kind, KVMNG_STATE_XSAVE | KVMNG_STATE_XSAVE2) {
                                // x87 and SSE state differ by timing
                                // (mask::xsave_pair): not learned.
                                for r in [0..24, 32..416] {
                                    if r.end <= v.len() {
                                        v[r].fill(0);
                                    }
                                }
                                if v.len() > 512 {
                                    v[512] &= !0b11;
                                }
                            }
                            self.model.outputs.insert(e.kind, v);
                        }
                    }
                }
                r
            }
            Call::Reset => {
                if self.sane.is_none() {
                    let irqchip = self.pool()[0x8010] != 0;
                    let mut sregs = vec![0u8; 312];
                    let mut lapic = vec![0u8; 1024];
                    let mut e = [
                        kvmng_state_entry {
                            kind: KVMNG_STATE_SREGS,
                            op: KVMNG_STATE_GET,
                            addr: sregs.as_mut_ptr() as u64,
                            size: 312,
                            result: 0,
                        },
                        kvmng_state_entry {
                            kind: KVMNG_STATE_LAPIC,
                            op: KVMNG_STATE_GET,
                            addr: lapic.as_mut_ptr() as u64,
                            size: 1024,
                            result: 0,
                        },
                    ];
                    let ep = e.as_mut_ptr() as u64;
                    let n = if irqchip { 2 } else { 1 };
                    // SAFETY: the entries and their buffers, on this
                    // side's heap and stack, alive until the call returns.
                    let r = self.on(th, move || unsafe {
                        be.vcpu_state(ep as *mut kvmng_state_entry, n, 0)
                    });
                    rec.out
                        .extend_from_slice(format!("get-sane:{r:?};").as_bytes());
                    r?;
                    // cs: selector 0, base 0 (real mode at 0:0x1000).
                    sregs[0..8].fill(0);
                    sregs[12..14].fill(0);
                    let mut regs = vec![0u8; 144];
                    regs[128..136].copy_from_slice(&0x1000u64.to_le_bytes()); // rip
                    regs[136..144].copy_from_slice(&2u64.to_le_bytes()); // rflags
                    regs[48..56].copy_from_slice(&0x1000u64.to_le_bytes()); // rsp
                                                                            // The timer's current count moves: the mask's field.
                    mask::apply(ioctls::KVM_GET_LAPIC, 0, &mut lapic);
                    self.sane = Some((regs, sregs, irqchip.then_some(lapic)));
                }
                let (regs, sregs, lapic) = self.sane.clone().expect("sane");
                // struct kvm_vcpu_events, all clear, with the NMI and SMM
                // fields valid (flags at 20): no NMI, SMI or SMM pending.
                let mut events = vec![0u8; 64];
                events[20..24].copy_from_slice(&9u32.to_le_bytes());
                let mut entries = vec![
                    Entry {
                        kind: KVMNG_STATE_SREGS,
                        op: KVMNG_STATE_SET,
                        size: 312,
                        at: Ptr::Arena(0),
                        data: sregs,
                    },
                    Entry {
                        kind: KVMNG_STATE_REGS,
                        op: KVMNG_STATE_SET,
                        size: 144,
                        at: Ptr::Arena(0),
                        data: regs,
                    },
                    Entry {
                        kind: KVMNG_STATE_MP_STATE,
                        op: KVMNG_STATE_SET,
                        size: 4,
                        at: Ptr::Arena(0),
                        data: vec![0; 4],
                    },
                    Entry {
                        kind: KVMNG_STATE_EVENTS,
                        op: KVMNG_STATE_SET,
                        size: 64,
                        at: Ptr::Arena(0),
                        data: events,
                    },
                ];
                if let Some(l) = lapic {
                    // The in-kernel LAPIC as at the start: no timer armed.
                    entries.push(Entry {
                        kind: KVMNG_STATE_LAPIC,
                        op: KVMNG_STATE_SET,
                        size: 1024,
                        at: Ptr::Arena(0),
                        data: l,
                    });
                }
                let n = entries.len() as u32;
                self.call(
                    th,
                    &Call::State {
                        entries,
                        count: n,
                        at: Ptr::Arena(0),
                        flags: 0,
                    },
                    rec,
                )
            }
            Call::Irq {
                kind,
                nr,
                level,
                flags,
            } => {
                let (k, n, l, f) = (*kind, *nr, *level, *flags);
                self.on(th, move || be.irq(k, n, l, f))
            }
            Call::MemMap {
                regions,
                count,
                at,
                flags,
            } => {
                let mut raw = Vec::with_capacity(regions.len() * 64);
                for r in regions {
                    let r2 = self.region2(r);
                    // SAFETY: a plain C struct viewed as its bytes.
                    raw.extend_from_slice(unsafe {
                        std::slice::from_raw_parts(
                            &r2 as *const _ as *const u8,
                            std::mem::size_of::<kvm_userspace_memory_region2>(),
                        )
                    });
                }
                if let Ptr::Arena(o) = at {
                    self.put(*o, &raw);
                }
                self.load_arena();
                let (p, n, f) = (self.addr(*at), *count, *flags);
                // SAFETY: regions in the arena (or not readable on purpose),
                // naming the pool's memory.
                let r = self.on(th, move || unsafe {
                    be.memory_map(p as *const kvm_userspace_memory_region2, n, f)
                });
                self.finish_arena(rec, &[]);
                r
            }
            Call::Control {
                scope,
                cmd,
                arg,
                flags,
            } => self.control(th, *scope, *cmd, arg, *flags, rec),
            Call::Ioregion {
                op,
                region,
                fd,
                at,
                flags,
            } => {
                let mut reg = *region;
                reg.fd = self.fd(*fd);
                // SAFETY: the struct viewed as its 64 bytes.
                let raw = unsafe { std::slice::from_raw_parts(&reg as *const _ as *const u8, 64) }
                    .to_vec();
                if let Ptr::Arena(o) = at {
                    self.put(*o, &raw);
                }
                self.load_arena();
                let (o, p, f) = (*op, self.addr(*at), *flags);
                // SAFETY: the region struct in the arena, or not readable.
                let r = self.on(th, move || unsafe {
                    be.ioregion(o, p as *const kvmng_ioregion, f)
                });
                self.finish_arena(rec, &[]);
                r
            }
            Call::IoregionFill => {
                let dev = self.fd(FdSel::Dev(0));
                let mut added = Vec::new();
                let mut last = Ok(0);
                for i in 0..=KVMNG_IOREGION_MAX as u64 {
                    let reg = kvmng_ioregion {
                        addr: 0x8000 + i,
                        size: 1,
                        fd: dev,
                        flags: KVMNG_IOREGION_PIO,
                        user_data: i,
                        reserved: [0; 4],
                    };
                    // SAFETY: the struct on this stack.
                    let r = unsafe { be.ioregion(KVMNG_IOREGION_ADD, &reg, 0) };
                    rec.out.extend_from_slice(&split(r).1.to_le_bytes());
                    if r.is_ok() {
                        added.push(reg);
                    } else {
                        last = r;
                        break;
                    }
                }
                for reg in added {
                    // SAFETY: as above.
                    let r = unsafe { be.ioregion(KVMNG_IOREGION_DEL, &reg, 0) };
                    rec.out.extend_from_slice(&split(r).1.to_le_bytes());
                }
                last
            }
            Call::Device { dev, mode } => {
                if let Some(d) = &self.devs[*dev as usize % 2] {
                    d.set_mode(*mode);
                }
                Ok(0)
            }
            Call::NewDevice { dev } => {
                let i = *dev as usize % 2;
                if let Some(d) = self.devs[i].take() {
                    rec.out.extend(d.drain());
                }
                self.devs[i] = Some(Device::new());
                Ok(0)
            }
            Call::ExitThread(w) => {
                if let Some(wk) = self.workers[w.index() - 1].take() {
                    drop(wk.tx);
                    let _ = wk.handle.join();
                    drop(wk.rx);
                }
                Ok(0)
            }
            Call::Fork(calls) => self.fork(calls, rec),
            Call::FdLimit { free, call } => self.with_fd_limit(*free, th, call, rec),
        }
    }

    fn prepare_run(&mut self, run: u64, imm: bool, fill: u64) {
        if run == 0 {
            return;
        }
        let p = run as *mut u8;
        // SAFETY: the vCPU's mapped kvm_run (run_size bytes): exit_reason
        // at 8, the io exit at 32 (direction u8, size u8, port u16, count
        // u32, data_offset u64), the mmio exit at 32 (phys_addr u64,
        // data [u8; 8], len u32, is_write u8).
        unsafe {
            let reason = p.add(8).cast::<u32>().read_volatile();
            if reason == 2 && p.add(32).read_volatile() == 0 {
                let size = usize::from(p.add(33).read_volatile());
                let count = p.add(36).cast::<u32>().read_volatile() as usize;
                let off = p.add(40).cast::<u64>().read_volatile() as usize;
                let n = (size * count).min(256);
                if off + n <= self.run_size {
                    let bytes = fill.to_le_bytes();
                    for i in 0..n {
                        p.add(off + i).write_volatile(bytes[i % 8] ^ (i as u8));
                    }
                }
            }
            if reason == 6 && p.add(52).read_volatile() == 0 {
                p.add(40).cast::<u64>().write_volatile(fill);
            }
            p.add(1).write_volatile(u8::from(imm));
            // `apic_base` (at 24) is written by every KVM_RUN that gets
            // past its argument checks (post_kvm_run_save), and read by
            // nothing: a sentinel there tells whether a run entered
            // KVM_RUN at all, which api.md decides (5.10).
            p.add(24).cast::<u64>().write_volatile(RUN_SENTINEL);
        }
    }

    /// For the report only (`Rec::diag`, never compared): the vCPU's
    /// rip, rflags and rsp after a run, and the 16 bytes under the guest's
    /// real-mode stack top (0x1000 in slot 0's pool), where an interrupt or
    /// exception pushes IP, CS and FLAGS. A divergence in a run then shows
    /// where each guest was, and whether an event reached it.
    fn run_diag(&mut self, fd: i32, rec: &mut Rec) {
        let mut regs = [0u64; 18];
        // SAFETY: KVM_GET_REGS writes one struct kvm_regs (18 u64) into
        // `regs`, on this side's stack for the call.
        let r = unsafe { kvmng::sys::ioctl(fd, ioctls::KVM_GET_REGS, regs.as_mut_ptr() as u64) };
        let stack = &self.pool()[0xff0..0x1000];
        let stack: String = stack.iter().map(|b| format!("{b:02x}")).collect();
        rec.diag = match r {
            Ok(_) => format!(
                "[rip {:#x} rflags {:#x} rsp {:#x}; stack 0xff0.. {stack}]",
                regs[16], regs[17], regs[6]
            ),
            Err(e) => format!("[KVM_GET_REGS: {e:?}; stack 0xff0.. {stack}]"),
        };
    }

    fn observe_run(&mut self, run: u64, rec: &mut Rec) {
        if run != 0 {
            let p = run as *mut u8;
            // Bytes the host's timing decides are zeroed in the page
            // itself, not only in what is recorded: KVM leaves them alone
            // on a later exit that does not write them (an MMIO read's
            // `data` lies over `fail_entry.cpu`), so the next run would
            // report them again.
            // SAFETY: as in prepare_run; the device may have set
            // immediate_exit: it is the fuzzer's input, cleared here.
            let page = unsafe {
                p.add(1).write_volatile(0);
                let head = std::slice::from_raw_parts(p, 48);
                let timing = if head[8..12] == 9u32.to_le_bytes() {
                    // KVM_EXIT_FAIL_ENTRY: `fail_entry.cpu` (at 40) is the
                    // host CPU the entry failed on, which the scheduler
                    // picks.
                    40..44
                } else if head[8..12] == 17u32.to_le_bytes() && head[32..36] == 1u32.to_le_bytes() {
                    // KVM_EXIT_INTERNAL_ERROR, KVM_INTERNAL_ERROR_EMULATION:
                    // after the flags (data[0]) and the instruction bytes
                    // (two words, when flag 1 says so), five words of the
                    // last hardware exit's information (reason, info1/2,
                    // interrupt info, error code). An exit the host took
                    // in between (an interrupt) changes them: host timing.
                    let start = 1 + if head[40] & 1 != 0 { 2 } else { 0 };
                    40 + 8 * start..40 + 8 * (start + 5)
                } else {
                    0..0
                };
                for i in timing {
                    p.add(i).write_volatile(0);
                }
                std::slice::from_raw_parts(p, 288).to_vec()
            };
            rec.out.extend_from_slice(b"run:");
            rec.out.extend_from_slice(&page);
            // SAFETY: as above.
            unsafe {
                if p.add(8).cast::<u32>().read_volatile() == 2 {
                    let size = usize::from(p.add(33).read_volatile());
                    let count = p.add(36).cast::<u32>().read_volatile() as usize;
                    let off = p.add(40).cast::<u64>().read_volatile() as usize;
                    let n = (size * count).min(256);
                    if off + n <= self.run_size {
                        rec.out
                            .extend_from_slice(std::slice::from_raw_parts(p.add(off), n));
                    }
                }
            }
            // What the guest wrote: its stack and the INSB buffer.
            let pool = self.pool();
            let h = fnv(&pool[0xf00..0x1000]) ^ fnv(&pool[0x1900..0x1910]).rotate_left(1);
            rec.out.extend_from_slice(&h.to_le_bytes());
        }
        self.device_logs(rec);
    }

    fn device_logs(&mut self, rec: &mut Rec) {
        // A fork child has no device threads (they stayed in the parent).
        if self.in_child {
            return;
        }
        for (i, d) in self.devs.iter().enumerate() {
            if let Some(d) = d {
                let log = d.drain();
                if !log.is_empty() {
                    rec.out.extend_from_slice(format!("dev{i}:").as_bytes());
                    rec.out.extend(log);
                }
            }
        }
    }

    fn control(
        &mut self,
        th: Th,
        scope: u32,
        cmd: u32,
        arg: &CtlArg,
        flags: u32,
        rec: &mut Rec,
    ) -> SysResult {
        let be = self.be;
        let mut masks = Vec::new();
        let a = match arg {
            CtlArg::Int(v) => *v,
            CtlArg::Ptr(p) => self.addr(*p),
            CtlArg::Buf { off, data } => {
                self.put(*off, data);
                masks.push((*off, u64::from(cmd), i64::MAX));
                if matches!(
                    u64::from(cmd),
                    ioctls::KVM_GET_XSAVE | ioctls::KVM_GET_XSAVE2
                ) {
                    rec.xsave.push(*off as u32);
                }
                self.mem.arena + *off as u64
            }
            CtlArg::Region(r) => {
                let r2 = self.region2(r);
                // SAFETY: the struct as bytes.
                let raw = unsafe {
                    std::slice::from_raw_parts(
                        &r2 as *const _ as *const u8,
                        std::mem::size_of::<kvm_userspace_memory_region2>(),
                    )
                }
                .to_vec();
                self.put(0, &raw);
                self.mem.arena
            }
            CtlArg::Region1(r) => {
                let r2 = self.region2(r);
                // SAFETY: the v1 struct is the first 32 bytes of v2.
                let raw = unsafe { std::slice::from_raw_parts(&r2 as *const _ as *const u8, 32) }
                    .to_vec();
                self.put(0, &raw);
                self.mem.arena
            }
        };
        self.load_arena();
        // SAFETY: the argument is an integer or points into the arena (or
        // at nothing readable, on purpose).
        let r = self.on(th, move || unsafe { be.control(scope, cmd, a, flags) });
        let c = u64::from(cmd);
        if let Ok(v) = r {
            for m in &mut masks {
                m.2 = v;
            }
        }
        let mut r = r;
        if let Ok(v) = r {
            let fd_returning = matches!(
                c,
                ioctls::KVM_CREATE_VM
                    | ioctls::KVM_CREATE_VCPU
                    | ioctls::KVM_GET_STATS_FD
                    | ioctls::KVM_CREATE_GUEST_MEMFD
            );
            if fd_returning && v >= 0 {
                rec.out.extend(fd_info(v as i32));
                match c {
                    ioctls::KVM_CREATE_VM => self.vms.push(v as i32),
                    ioctls::KVM_CREATE_VCPU => {
                        let run = self.map_run(v as i32);
                        self.vcpus.push(Vcpu { fd: v as i32, run });
                    }
                    // SAFETY: an fd this call made.
                    _ => unsafe {
                        libc::close(v as i32);
                    },
                }
                r = Ok(0);
            }
            if c == ioctls::KVM_CREATE_DEVICE {
                if let CtlArg::Buf { off, .. } = arg {
                    if off + 8 <= ARENA {
                        let b = &mut self.arena()[off + 4..off + 8];
                        let fd = i32::from_le_bytes(b.try_into().expect("4"));
                        b.fill(0);
                        rec.out.extend(fd_info(fd));
                        // SAFETY: the device fd this call made.
                        unsafe { libc::close(fd) };
                    }
                }
            }
            if c == ioctls::KVM_CREATE_IRQCHIP {
                self.pool()[0x8010] = 1;
            }
        }
        self.finish_arena(rec, &masks);
        if matches!(c, ioctls::KVM_CHECK_EXTENSION) && a == u64::from(KVM_CAP_KVMNG) {
            rec.hint = Hint::CapKvmng as u8;
        }
        r
    }

    fn fork(&mut self, calls: &[Call], rec: &mut Rec) -> SysResult {
        // SAFETY: the child makes raw calls and leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            self.in_child = true;
            self.model.vm_bound = false;
            self.model.bound_vm = None;
            self.model.bound = [None; 3];
            self.model.parent_dev_regions = self.model.dev_regions;
            self.model.dev_regions = [false; 2];
            // The child has no bound VM, so none with regions.
            self.model.regions = 0;
            for (i, c) in calls.iter().enumerate() {
                let op = Op {
                    th: Th::Main,
                    call: c.clone(),
                };
                // A masked §6 difference leaves the child's states apart.
                if self.exec(0x8000_0000 | i as u32, &op) {
                    break;
                }
            }
            // SAFETY: leaves the child at once.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            return Err(kvmng::Errno(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        let mut status = 0;
        // SAFETY: our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        rec.out
            .extend_from_slice(format!("child status {status}").as_bytes());
        Ok(0)
    }

    fn with_fd_limit(&mut self, free: u8, th: Th, call: &Call, rec: &mut Rec) -> SysResult {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: reads the limit into `old`.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) };
        let mut seen = 0;
        let mut limit = 0u64;
        for n in 0..old.rlim_cur.min(65536) as i32 {
            // SAFETY: F_GETFD on any number.
            if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
                if seen == free {
                    limit = n as u64;
                    break;
                }
                seen += 1;
            }
        }
        let new = libc::rlimit {
            rlim_cur: limit,
            rlim_max: old.rlim_max,
        };
        // SAFETY: sets the soft limit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) };
        let r = self.call(th, call, rec);
        // SAFETY: restores it.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) };
        r
    }
}

/// The operation on one line (without the bulk of its buffers).
pub fn describe(op: &Op) -> String {
    let c = match &op.call {
        Call::State {
            entries,
            count,
            at,
            flags,
        } => {
            let e: Vec<String> = entries
                .iter()
                .map(|e| {
                    format!(
                        "{{kind {} op {} size {} at {:?} {} bytes}}",
                        e.kind,
                        e.op,
                        e.size,
                        e.at,
                        e.data.len()
                    )
                })
                .collect();
            format!(
                "kvmng_vcpu_state([{}], count {count}, at {at:?}, flags {flags:#x})",
                e.join(", ")
            )
        }
        Call::Control {
            scope,
            cmd,
            arg,
            flags,
        } => {
            let a = match arg {
                CtlArg::Buf { off, data } => {
                    format!("buffer at arena+{off:#x}, {} bytes", data.len())
                }
                other => format!("{other:?}"),
            };
            format!(
                "kvmng_control(scope {scope}, {} ({cmd:#x}), {a}, flags {flags:#x})",
                crate::gen::cmd_name(u64::from(*cmd))
            )
        }
        Call::Fork(calls) => format!("fork, the child makes {} calls", calls.len()),
        other => {
            let mut s = format!("{other:?}");
            s.truncate(600);
            s
        }
    };
    format!("[{:?}] {c}", op.th)
}

/// A round's operations: the set-up, then `ops` drawn from `seed`; each
/// side calls this with its own backend. Returns how many were made.
pub fn round(
    side: &mut Side,
    seed: u64,
    ops: u64,
    progress: &std::sync::atomic::AtomicU64,
    avoid: bool,
) -> u64 {
    let mut rng = Rng::new(seed);
    side.model.avoid_string_port = avoid;
    let irqchip = rng.chance(30);
    side.load_guest(irqchip);
    side.model.msr_indices = msr_indices(side.kvm);
    let mut idx = 0u32;
    for op in setup(irqchip) {
        progress.store(u64::from(idx), std::sync::atomic::Ordering::Relaxed);
        let end = side.exec(idx, &op);
        idx += 1;
        if end {
            return u64::from(idx);
        }
    }
    // The set-up mapped slot 0 itself: the guest's memory is sane.
    side.model.vm_dirty = false;
    for _ in 0..ops {
        progress.store(u64::from(idx), std::sync::atomic::Ordering::Relaxed);
        let o = op(&mut rng, &side.model);
        let end = side.exec(idx, &o);
        idx += 1;
        if end {
            break;
        }
    }
    u64::from(idx)
}

/// A fixed list of operations after the set-up (a regression case).
pub fn fixed(
    side: &mut Side,
    irqchip: bool,
    list: &[Op],
    progress: &std::sync::atomic::AtomicU64,
) -> u64 {
    side.load_guest(irqchip);
    side.fixed = true;
    let mut idx = 0u32;
    for op in setup(irqchip).iter().chain(list) {
        progress.store(u64::from(idx), std::sync::atomic::Ordering::Relaxed);
        let end = side.exec(idx, op);
        idx += 1;
        if end {
            break;
        }
    }
    u64::from(idx)
}

/// The set-up of every round, itself made of compared calls.
pub fn setup(irqchip: bool) -> Vec<Op> {
    let main = |call| Op { th: Th::Main, call };
    let mut v = vec![
        main(Call::CreateVm {
            kvm: FdSel::Kvm,
            ty: 0,
            flags: 0,
        }),
        main(Call::Control {
            scope: KVMNG_SCOPE_VM,
            cmd: ioctls::KVM_SET_TSS_ADDR as u32,
            arg: CtlArg::Int(0xfffb_d000),
            flags: 0,
        }),
    ];
    if irqchip {
        v.push(main(Call::Control {
            scope: KVMNG_SCOPE_VM,
            cmd: ioctls::KVM_CREATE_IRQCHIP as u32,
            arg: CtlArg::Int(0),
            flags: 0,
        }));
    }
    v.push(main(Call::MemMap {
        regions: vec![Region {
            slot: 0,
            flags: 0,
            gpa: 0,
            size: SLOT0 as u64,
            pool: 0,
            gmem_fd: 0,
        }],
        count: 1,
        at: Ptr::Arena(0),
        flags: 0,
    }));
    v.push(main(Call::CreateVcpu {
        id: 0,
        flags: KVMNG_CREATE_VCPU_BIND,
    }));
    v.push(main(Call::CreateVcpu { id: 1, flags: 0 }));
    v.push(main(Call::Reset));
    v
}

fn msr_indices(kvm: i32) -> Vec<u32> {
    let mut buf = vec![0u32; 1 + 1024];
    buf[0] = 1024;
    // SAFETY: a struct kvm_msr_list with room for 1024 indices.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            kvm,
            ioctls::KVM_GET_MSR_INDEX_LIST,
            buf.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Vec::new();
    }
    let n = (buf[0] as usize).min(1024);
    buf[1..1 + n].to_vec()
}

/// The exit reason in a run record's `kvm_run`; None for other records.
fn run_exit(out: &[u8]) -> Option<u32> {
    let reason = out.strip_prefix(b"run:".as_slice())?.get(8..12)?;
    Some(u32::from_le_bytes(reason.try_into().expect("4 bytes")))
}

/// What the emulation recognizes its pending access by in a run record's
/// `kvm_run` (api.md §6 "The retried access is read from kvm_run"):
/// space, direction, address, size, element count and data offset; not
/// the data of an MMIO write. None for other exits.
fn access_key(out: &[u8]) -> Option<Vec<u8>> {
    let page = out.strip_prefix(b"run:".as_slice())?;
    match run_exit(out)? {
        2 => Some(page.get(32..48)?.to_vec()),
        6 => {
            let mut k = page.get(32..40)?.to_vec();
            k.extend_from_slice(page.get(48..53)?);
            Some(k)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kvm_run` as the trace records it, with exit `reason` and the
    /// port-I/O fields (direction, size, port, count, offset) set to `io`.
    fn run_page(reason: u32, io: u8) -> Vec<u8> {
        let mut page = vec![0u8; 64];
        page[8..12].copy_from_slice(&reason.to_le_bytes());
        page[32..48].fill(io);
        [b"run:".as_slice(), &page].concat()
    }

    fn kvmng_run() -> Call {
        Call::Run {
            flags: 0,
            imm: false,
            fill: 0,
            control: false,
        }
    }

    fn ioctl_run() -> Call {
        Call::RawRun { vcpu: 0, fill: 0 }
    }

    /// Seed 20261208, round 124: a kvmng_run fails with an OUT pending; a
    /// KVM_RUN ioctl completes it and stops at another exit; a second one
    /// comes back to an identical OUT. The next kvmng_run may take that
    /// exit for its pending access, so the model must still know it.
    #[test]
    fn a_pending_access_outlives_an_ioctl_that_stopped_elsewhere() {
        let eintr = Err(kvmng::Errno(libc::EINTR));
        let mut p = PendingAccess::default();
        p.after(&kvmng_run(), eintr, &run_page(2, 7), true);
        assert!(p.pending && !p.retried());
        p.after(&ioctl_run(), Ok(0), &run_page(5, 0), true);
        assert!(!p.retried(), "a HLT exit is not the pending OUT");
        p.after(&ioctl_run(), Ok(0), &run_page(2, 7), true);
        assert!(p.retried(), "the identical OUT again");
        p.after(&ioctl_run(), Ok(0), &run_page(2, 8), true);
        assert!(!p.retried(), "another OUT");
        p.after(&kvmng_run(), Ok(0), &run_page(2, 7), true);
        assert_eq!(p, PendingAccess::default(), "a kvmng_run that returned");
    }

    /// The other transitions: an ioctl's EINTR with `kvm_run` as it was,
    /// an ioctl's other error, a refused run (EINVAL), an MMIO access, and
    /// a failed run that shows no access.
    #[test]
    fn each_transition_of_the_pending_access() {
        let eintr = || Err(kvmng::Errno(libc::EINTR));
        let mut p = PendingAccess::default();
        p.after(&kvmng_run(), eintr(), &run_page(6, 3), true);
        assert!(p.pending && p.key.is_some(), "an MMIO access pending");
        p.after(&ioctl_run(), eintr(), &run_page(6, 3), true);
        assert!(p.retried(), "EINTR with kvm_run as it was");
        p.after(
            &ioctl_run(),
            Err(kvmng::Errno(libc::EFAULT)),
            &run_page(5, 0),
            true,
        );
        assert!(p.retried(), "another error changes nothing");
        p.after(
            &kvmng_run(),
            Err(kvmng::Errno(libc::EINVAL)),
            &run_page(5, 0),
            true,
        );
        assert!(p.retried(), "a refused run changes nothing");
        p.after(&kvmng_run(), eintr(), &run_page(5, 0), false);
        assert_eq!(
            p,
            PendingAccess {
                pending: false,
                alike: false,
                key: None
            }
        );
        p.after(&kvmng_run(), eintr(), &run_page(2, 7), true);
        p.after(&kvmng_run(), eintr(), &run_page(2, 7), false);
        assert!(p.pending, "a pending access outlives its regions");
    }

    /// Without regions, no access can be left pending; a refused run
    /// (no vCPU bound) leaves one as it was.
    #[test]
    fn no_pending_access_without_regions_and_none_lost_to_a_refused_run() {
        let mut p = PendingAccess::default();
        p.after(
            &kvmng_run(),
            Err(kvmng::Errno(libc::EINTR)),
            &run_page(2, 7),
            false,
        );
        assert!(!p.pending);
        p.after(
            &kvmng_run(),
            Err(kvmng::Errno(libc::EINTR)),
            &run_page(2, 7),
            true,
        );
        p.after(
            &kvmng_run(),
            Err(kvmng::Errno(libc::ESRCH)),
            &run_page(5, 0),
            true,
        );
        assert!(p.pending);
    }
}
