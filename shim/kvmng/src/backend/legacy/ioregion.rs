//! `kvmng_ioregion` in the emulation (docs/api.md 5.10 and 6): guest MMIO
//! and port accesses to registered ranges are sent to a device over an
//! `AF_UNIX` `SOCK_SEQPACKET` socket by the run loop, which re-enters the
//! guest without returning to the caller of `kvmng_run`.
//!
//! # State
//!
//! * [`REGIONS`]: a fixed table of [`KVMNG_IOREGION_MAX`] regions. Writers
//!   (ADD, DEL, VM binding changes) are serialized by a spin lock; the run
//!   path reads an entry under its sequence counter, without a lock.
//! * [`SOCKETS`]: one entry per open socket (regions sharing a socket share
//!   the entry, found with `kcmp`), holding a private duplicate of the fd,
//!   a reference count (one per live region, one per vCPU using it right
//!   now), the receive role and the range of request ids sent on it.
//! * [`VcpuIo`], one per thread binding: the thread's mapping of its vCPU's
//!   `kvm_run`, the pending access, and the slot through which a reply is
//!   handed to it.
//!
//! # Demultiplexing
//!
//! Several vCPUs may wait on one socket at once. Whoever takes the
//! socket's receive role (a CAS) reads replies and hands each to the vCPU
//! whose request id it carries (a CAS on that vCPU's `wait_id`, then a
//! write to its eventfd); when it has its own reply it gives the role up
//! and wakes the other waiters so that one of them takes it over. Every
//! wait is a `ppoll` that atomically restores the caller's signal mask
//! (signals are blocked between the last check and the wait), so a signal
//! always ends the wait: no uninterruptible sleep, no lost wake-up.
//!
//! Nothing here allocates; the run path takes no lock (ADD and DEL take
//! the registration spin lock).

use super::binding::{self, ThreadBinding, THREADS};
use super::usermem;
use crate::errno::{Errno, SysResult};
use crate::sys::{self, close, gettid, syscall6};
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use kvm_bindings::{kvm_run, KVM_EXIT_IO, KVM_EXIT_IO_OUT, KVM_EXIT_MMIO};
use kvmng_abi::*;

const MAX_REGIONS: usize = KVMNG_IOREGION_MAX as usize;
/// How much of a vCPU's mmap area the emulation maps: the `kvm_run` page
/// and the port I/O data page after it (`KVM_PIO_PAGE_OFFSET` = 1 on x86).
pub const RUN_MAP_LEN: usize = 2 * 4096;
/// `wait_id` while a receiver is handing a reply over.
const DELIVERING: u64 = u64::MAX;
/// How long a waiter sleeps before it checks that the receive role is not
/// held by a thread that left without giving it up (a longjmp out of a
/// signal handler); it is woken at once in every other case.
const ORPHAN_CHECK_NS: i64 = 50_000_000;

fn einval() -> Errno {
    Errno(libc::EINVAL)
}

// ------------------------------------------------------------------ tables

/// One registered region. Its fields are written only under [`REG_LOCK`],
/// inside an odd `seq`; readers retry while `seq` is odd or changed.
struct Region {
    seq: AtomicU32,
    live: AtomicU32,
    flags: AtomicU32,
    sock: AtomicU32,
    addr: AtomicU64,
    size: AtomicU64,
    user_data: AtomicU64,
}

impl Region {
    const fn new() -> Region {
        Region {
            seq: AtomicU32::new(0),
            live: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            sock: AtomicU32::new(0),
            addr: AtomicU64::new(0),
            size: AtomicU64::new(0),
            user_data: AtomicU64::new(0),
        }
    }
}

/// One socket of one or more regions.
struct Socket {
    /// Live regions using it plus vCPUs using its fd right now; 0 = free
    /// (once `fd` is -1 again).
    refs: AtomicU32,
    /// Private close-on-exec duplicate of the registered fd, or -1.
    fd: AtomicI32,
    /// Tid of the thread holding the receive role, or 0.
    rx: AtomicI32,
    /// 1 once end of file was read: the device closed its end.
    dead: AtomicU32,
    /// The lowest and highest request ids sent on the socket (`u64::MAX`
    /// and 0 before the first): a reply in that range that nobody waits
    /// for answers an abandoned or posted request, and is dropped.
    first_id: AtomicU64,
    last_id: AtomicU64,
}

impl Socket {
    const fn new() -> Socket {
        Socket {
            refs: AtomicU32::new(0),
            fd: AtomicI32::new(-1),
            rx: AtomicI32::new(0),
            dead: AtomicU32::new(0),
            first_id: AtomicU64::new(u64::MAX),
            last_id: AtomicU64::new(0),
        }
    }

    /// Notes that request `id` is about to be sent (before it is sent, so
    /// that no reply can come first).
    fn note_sent(&self, id: u64) {
        self.first_id.fetch_min(id, SeqCst);
        self.last_id.fetch_max(id, SeqCst);
    }

    /// True when `id` was sent on the socket (it is stale if nobody waits
    /// for it).
    fn was_sent(&self, id: u64) -> bool {
        self.first_id.load(SeqCst) <= id && id <= self.last_id.load(SeqCst)
    }

    fn reset(&self) {
        self.dead.store(0, SeqCst);
        self.rx.store(0, SeqCst);
        self.first_id.store(u64::MAX, SeqCst);
        self.last_id.store(0, SeqCst);
    }
}

static REGIONS: [Region; MAX_REGIONS] = [const { Region::new() }; MAX_REGIONS];
static SOCKETS: [Socket; MAX_REGIONS] = [const { Socket::new() }; MAX_REGIONS];
/// Live regions: the run path does nothing while it is 0.
static LIVE: AtomicU32 = AtomicU32::new(0);
/// One more than the highest index of [`REGIONS`] in use: lookups stop
/// there (slots are taken lowest first). Lowered only when no region is
/// live.
static HIGH: AtomicUsize = AtomicUsize::new(0);
/// Serializes ADD, DEL and the VM binding changes.
static REG_LOCK: AtomicBool = AtomicBool::new(false);
/// Request ids: unique in the process, never 0.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct RegGuard(());

impl RegGuard {
    fn lock() -> RegGuard {
        while REG_LOCK
            .compare_exchange_weak(false, true, SeqCst, SeqCst)
            .is_err()
        {
            core::hint::spin_loop();
        }
        RegGuard(())
    }
}

impl Drop for RegGuard {
    fn drop(&mut self) {
        REG_LOCK.store(false, SeqCst);
    }
}

/// A vCPU whose binding was dropped while an access was pending: its
/// private fd and where the access had got to, until a thread binds it.
struct Parked {
    fd: AtomicI32,
    index: AtomicU32,
    /// The access's identity ([`Access::identity`]).
    identity: [AtomicU64; 2],
}

const MAX_PARKED: usize = 16;
static PARKED: [Parked; MAX_PARKED] = [const {
    Parked {
        fd: AtomicI32::new(-1),
        index: AtomicU32::new(0),
        identity: [AtomicU64::new(0), AtomicU64::new(0)],
    }
}; MAX_PARKED];

// -------------------------------------------------------- per-vCPU state

/// The I/O-region state of one thread binding.
pub struct VcpuIo {
    /// Address of this binding's own mapping of the vCPU's `kvm_run` area
    /// ([`RUN_MAP_LEN`] bytes), or 0.
    pub run: AtomicU64,
    /// The vCPU's id.
    pub vcpu_id: AtomicU32,
    /// 1 while an access to a region is pending (not yet completed).
    pending: AtomicU32,
    /// The next element of a pending string port access.
    pending_index: AtomicU32,
    /// The pending access's identity ([`Access::identity`]): when the
    /// exit in `kvm_run` is another, a `KVM_RUN` ioctl completed it.
    pending_identity: [AtomicU64; 2],
    /// Socket entry this thread waits on for a reply, or -1.
    sock: AtomicI32,
    /// Id of the request waited for, 0, or [`DELIVERING`].
    wait_id: AtomicU64,
    /// Id of the last reply handed over; `data` and `err` belong to it.
    done_id: AtomicU64,
    data: AtomicU64,
    err: AtomicI32,
    /// 1 when the request waited for is a write (its reply has no data).
    is_write: AtomicU32,
    /// Eventfd through which a receiver wakes this thread, or -1.
    efd: AtomicI32,
    /// The signal mask of `KVM_SET_SIGNAL_MASK`, applied while waiting.
    sigmask: AtomicU64,
    sigmask_set: AtomicU32,
}

impl VcpuIo {
    /// The state of a free binding slot.
    pub const fn new() -> VcpuIo {
        VcpuIo {
            run: AtomicU64::new(0),
            vcpu_id: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            pending_index: AtomicU32::new(0),
            pending_identity: [AtomicU64::new(0), AtomicU64::new(0)],
            sock: AtomicI32::new(-1),
            wait_id: AtomicU64::new(0),
            done_id: AtomicU64::new(0),
            data: AtomicU64::new(0),
            err: AtomicI32::new(0),
            is_write: AtomicU32::new(0),
            efd: AtomicI32::new(-1),
            sigmask: AtomicU64::new(0),
            sigmask_set: AtomicU32::new(0),
        }
    }

    /// True while an access to a region is pending.
    pub fn pending(&self) -> bool {
        self.pending.load(Relaxed) != 0
    }

    /// True when the program gave this vCPU a signal mask for KVM_RUN
    /// (`KVM_SET_SIGNAL_MASK` through the library, while this binding).
    pub fn kvm_mask_set(&self) -> bool {
        self.sigmask_set.load(SeqCst) != 0
    }

    /// Records the mask of a successful `KVM_SET_SIGNAL_MASK` (`None`: no
    /// mask, as when the ioctl is given a null pointer).
    pub fn set_sigmask(&self, mask: Option<u64>) {
        self.sigmask.store(mask.unwrap_or(0), SeqCst);
        self.sigmask_set.store(u32::from(mask.is_some()), SeqCst);
    }
}

impl Default for VcpuIo {
    fn default() -> Self {
        VcpuIo::new()
    }
}

/// Maps the `kvm_run` area of vCPU fd `fd` for a binding ([`RUN_MAP_LEN`]
/// bytes); the address, for [`install`].
pub fn map_run(fd: i32) -> Result<u64, Errno> {
    // SAFETY: a new shared mapping of the vCPU fd at an address of the
    // kernel's choosing; no existing memory is affected.
    let addr = unsafe {
        syscall6(
            libc::SYS_mmap,
            0,
            RUN_MAP_LEN as u64,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            libc::MAP_SHARED as u64,
            fd as u64,
            0,
        )
    }?;
    Ok(addr as u64)
}

/// Sets a detached binding up for `private_fd` (vCPU `vcpu_id`), whose run
/// area is mapped at `run`, and adopts an access left pending by an
/// earlier binding of the same vCPU. Call with the binding change lock
/// held.
pub fn install(io: &VcpuIo, run: u64, private_fd: i32, vcpu_id: u32) {
    io.run.store(run, SeqCst);
    io.vcpu_id.store(vcpu_id, SeqCst);
    io.pending.store(0, SeqCst);
    io.pending_index.store(0, SeqCst);
    io.set_sigmask(None);
    for parked in PARKED.iter() {
        let fd = parked.fd.load(SeqCst);
        if fd >= 0 && super::fdkind::same_file(fd, private_fd) {
            io.pending_index.store(parked.index.load(SeqCst), SeqCst);
            for (mine, its) in io.pending_identity.iter().zip(&parked.identity) {
                mine.store(its.load(SeqCst), SeqCst);
            }
            io.pending.store(1, SeqCst);
            parked.fd.store(-1, SeqCst);
            let _ = close(fd);
            break;
        }
    }
}

/// Takes a binding down: unmaps its run area, closes its eventfd, and
/// closes `fd` (the binding's private vCPU fd) or, when an access is
/// pending, parks it for the next binding of the vCPU. Call with the
/// binding change lock held (or in a fork child).
pub fn detach(io: &VcpuIo, fd: i32) {
    let run = io.run.swap(0, SeqCst);
    if run != 0 {
        // SAFETY: unmapping the area `attach` mapped; nothing else uses it
        // (the binding is being dropped by its own thread, or in a fork
        // child).
        let _ = unsafe { syscall6(libc::SYS_munmap, run, RUN_MAP_LEN as u64, 0, 0, 0, 0) };
    }
    let efd = io.efd.swap(-1, SeqCst);
    if efd >= 0 {
        let _ = close(efd);
    }
    let mut fd_kept = false;
    if io.pending.swap(0, SeqCst) != 0 && fd >= 0 {
        let index = io.pending_index.load(SeqCst);
        for parked in PARKED.iter() {
            if parked.fd.compare_exchange(-1, fd, SeqCst, SeqCst).is_ok() {
                parked.index.store(index, SeqCst);
                for (its, mine) in parked.identity.iter().zip(&io.pending_identity) {
                    its.store(mine.load(SeqCst), SeqCst);
                }
                fd_kept = true;
                break;
            }
        }
    }
    if !fd_kept && fd >= 0 {
        let _ = close(fd);
    }
    io.sock.store(-1, SeqCst);
    io.wait_id.store(0, SeqCst);
    io.set_sigmask(None);
}

// ----------------------------------------------------------- registration

/// `kvmng_ioregion(op, region, flags)` of the emulation.
pub fn ioregion(op: u32, region: u64, flags: u32) -> SysResult {
    if flags != 0 {
        return Err(einval());
    }
    if op != KVMNG_IOREGION_ADD && op != KVMNG_IOREGION_DEL {
        return Err(einval());
    }
    let vm_fd = binding::vm_fd()?;
    // A VM that KVM has marked dead answers EIO, as its VM ioctls do and
    // as the kernel's kvmng_ioregion does (api.md 5.10): any VM ioctl
    // tells (the mm is ours: it is the bound VM).
    // SAFETY: KVM_CHECK_EXTENSION takes an integer argument.
    let probe = unsafe { crate::sys::ioctl(vm_fd, kvmng_abi::ioctls::KVM_CHECK_EXTENSION, 0) };
    if probe == Err(Errno(libc::EIO)) {
        return Err(Errno(libc::EIO));
    }
    let r: kvmng_ioregion = usermem::read_value(region)?;
    if r.flags & !KVMNG_IOREGION_FLAGS != 0 || r.reserved != [0; 4] {
        return Err(einval());
    }
    if r.size == 0 {
        return Err(einval());
    }
    if r.size > KVMNG_IOREGION_MAX_SIZE {
        return Err(Errno(libc::E2BIG));
    }
    let pio = r.flags & KVMNG_IOREGION_PIO != 0;
    let end = r.addr.checked_add(r.size).ok_or_else(einval)?;
    if pio && end > KVMNG_IOREGION_PIO_END {
        return Err(einval());
    }
    if op == KVMNG_IOREGION_ADD {
        add(&r)
    } else {
        del(&r)
    }
}

fn getsockopt_int(fd: i32, opt: i32) -> Result<i32, Errno> {
    let mut value: i32 = 0;
    let mut len: u32 = 4;
    // SAFETY: getsockopt writes at most `len` (4) bytes into `value` and
    // the length into `len`, both on this frame.
    unsafe {
        syscall6(
            libc::SYS_getsockopt,
            fd as u64,
            libc::SOL_SOCKET as u64,
            opt as u64,
            &mut value as *mut i32 as u64,
            &mut len as *mut u32 as u64,
            0,
        )
    }?;
    Ok(value)
}

/// The fd checks of ADD, in the order of api.md.
fn check_socket(fd: i32) -> Result<(), Errno> {
    if fd < 0 {
        return Err(Errno(libc::EBADF));
    }
    // EBADF for a closed fd, ENOTSOCK for anything but a socket.
    if getsockopt_int(fd, libc::SO_DOMAIN)? != libc::AF_UNIX {
        return Err(Errno(libc::EAFNOSUPPORT));
    }
    if getsockopt_int(fd, libc::SO_TYPE)? != libc::SOCK_SEQPACKET {
        return Err(Errno(libc::EPROTOTYPE));
    }
    let mut addr = [0u8; 128];
    let mut len: u32 = addr.len() as u32;
    // SAFETY: getpeername writes at most `len` bytes into `addr` and the
    // length into `len`, both on this frame.
    unsafe {
        syscall6(
            libc::SYS_getpeername,
            fd as u64,
            addr.as_mut_ptr() as u64,
            &mut len as *mut u32 as u64,
            0,
            0,
            0,
        )
    }?;
    Ok(())
}

/// Takes a reference on socket entry `i` unless it is free.
fn get_socket(i: usize) -> bool {
    let refs = &SOCKETS[i].refs;
    let mut n = refs.load(SeqCst);
    while n != 0 {
        match refs.compare_exchange_weak(n, n + 1, SeqCst, SeqCst) {
            Ok(_) => return true,
            Err(now) => n = now,
        }
    }
    false
}

/// Drops a reference on socket entry `i`; the last one closes the fd.
fn put_socket(i: usize) {
    let s = &SOCKETS[i];
    if s.refs.fetch_sub(1, SeqCst) == 1 {
        s.reset();
        let fd = s.fd.load(SeqCst);
        if fd >= 0 {
            let _ = close(fd);
        }
        s.fd.store(-1, SeqCst);
    }
}

/// A socket entry for `fd` with one reference taken: the entry of the same
/// open socket if one exists, else a new one. Call with [`REG_LOCK`].
fn socket_for(fd: i32) -> Result<usize, Errno> {
    for (i, s) in SOCKETS.iter().enumerate() {
        if get_socket(i) {
            if super::fdkind::same_file(s.fd.load(SeqCst), fd) {
                return Ok(i);
            }
            put_socket(i);
        }
    }
    let i = (0..MAX_REGIONS)
        .find(|&i| SOCKETS[i].refs.load(SeqCst) == 0 && SOCKETS[i].fd.load(SeqCst) == -1)
        .ok_or(Errno(libc::ENOSPC))?;
    let private = binding::private_dup(fd)?;
    let s = &SOCKETS[i];
    s.reset();
    s.fd.store(private, SeqCst);
    s.refs.store(1, SeqCst);
    Ok(i)
}

fn write_region(i: usize, live: bool, r: &kvmng_ioregion, sock: usize) {
    let e = &REGIONS[i];
    e.seq.fetch_add(1, SeqCst);
    e.addr.store(r.addr, SeqCst);
    e.size.store(r.size, SeqCst);
    e.flags.store(r.flags, SeqCst);
    e.user_data.store(r.user_data, SeqCst);
    e.sock.store(sock as u32, SeqCst);
    e.live.store(u32::from(live), SeqCst);
    e.seq.fetch_add(1, SeqCst);
}

fn add(r: &kvmng_ioregion) -> SysResult {
    check_socket(r.fd)?;
    let pio = r.flags & KVMNG_IOREGION_PIO;
    let _guard = RegGuard::lock();
    let overlaps = REGIONS.iter().any(|e| {
        e.live.load(SeqCst) != 0
            && e.flags.load(SeqCst) & KVMNG_IOREGION_PIO == pio
            && r.addr < e.addr.load(SeqCst) + e.size.load(SeqCst)
            && e.addr.load(SeqCst) < r.addr + r.size
    });
    if overlaps {
        return Err(Errno(libc::EEXIST));
    }
    let slot = (0..MAX_REGIONS)
        .find(|&i| REGIONS[i].live.load(SeqCst) == 0)
        .ok_or(Errno(libc::ENOSPC))?;
    let sock = socket_for(r.fd)?;
    HIGH.fetch_max(slot + 1, SeqCst);
    write_region(slot, true, r, sock);
    LIVE.fetch_add(1, SeqCst);
    Ok(0)
}

fn del(r: &kvmng_ioregion) -> SysResult {
    let pio = r.flags & KVMNG_IOREGION_PIO;
    let _guard = RegGuard::lock();
    let slot = (0..MAX_REGIONS)
        .find(|&i| {
            let e = &REGIONS[i];
            e.live.load(SeqCst) != 0
                && e.flags.load(SeqCst) & KVMNG_IOREGION_PIO == pio
                && e.addr.load(SeqCst) == r.addr
                && e.size.load(SeqCst) == r.size
        })
        .ok_or(Errno(libc::ENOENT))?;
    remove(slot);
    Ok(0)
}

/// Removes live region `i`. Call with [`REG_LOCK`].
fn remove(i: usize) {
    let e = &REGIONS[i];
    let sock = e.sock.load(SeqCst) as usize;
    e.seq.fetch_add(1, SeqCst);
    e.live.store(0, SeqCst);
    e.seq.fetch_add(1, SeqCst);
    if LIVE.fetch_sub(1, SeqCst) == 1 {
        HIGH.store(0, SeqCst);
    }
    put_socket(sock);
}

/// Drops every region: the VM binding of the mm changed (regions belong
/// to the bound VM). vCPUs in the middle of a round trip finish it.
pub fn forget_regions() {
    forget_parked();
    if LIVE.load(SeqCst) == 0 {
        return;
    }
    let _guard = RegGuard::lock();
    for (i, e) in REGIONS.iter().enumerate() {
        if e.live.load(SeqCst) != 0 {
            remove(i);
        }
    }
}

/// Drops the parked vCPUs: their accesses were to regions of the VM that
/// is no longer bound, which the emulation no longer serves, and their
/// private fds must not keep that VM alive (api.md section 2). Such a
/// vCPU's next run completes the access from `kvm_run`, as the KVM_RUN
/// ioctl would.
fn forget_parked() {
    for p in PARKED.iter() {
        let fd = p.fd.swap(-1, SeqCst);
        if fd >= 0 {
            let _ = close(fd);
        }
    }
}

/// fork() child: no regions, no sockets, no parked vCPUs; the inherited
/// private fds are closed (the parent keeps its own).
pub fn after_fork_in_child() {
    REG_LOCK.store(false, SeqCst);
    for e in REGIONS.iter() {
        e.live.store(0, SeqCst);
        e.seq.store(0, SeqCst);
    }
    LIVE.store(0, SeqCst);
    HIGH.store(0, SeqCst);
    for s in SOCKETS.iter() {
        let fd = s.fd.swap(-1, SeqCst);
        if fd >= 0 {
            let _ = close(fd);
        }
        s.refs.store(0, SeqCst);
        s.reset();
    }
    forget_parked();
}

// --------------------------------------------------------------- run path

/// One guest access, as KVM described it in `kvm_run`.
#[derive(Clone, Copy)]
struct Access {
    pio: bool,
    write: bool,
    addr: u64,
    len: u8,
    /// Elements of a string port access (1 otherwise).
    count: u32,
    /// The data of element 0 inside the binding's mapping; element `i` is
    /// `len * i` bytes further (port I/O).
    data: *mut u8,
}

impl Access {
    /// What tells this access from the next exit: its space, direction,
    /// address, size, element count and data offset.
    fn identity(&self, run: u64) -> [u64; 2] {
        let offset = (self.data as u64).wrapping_sub(run) & 0xffff;
        let shape = u64::from(self.pio) << 63
            | u64::from(self.write) << 62
            | u64::from(self.len) << 48
            | u64::from(self.count) << 16
            | offset;
        [self.addr, shape]
    }
}

/// The access the exit in the binding's `kvm_run` describes, if it is an
/// MMIO or port access the emulation can serve.
fn decode(io: &VcpuIo) -> Option<Access> {
    let run = io.run.load(SeqCst) as *mut kvm_run;
    if run.is_null() {
        return None;
    }
    // SAFETY: `run` is this binding's live mapping of RUN_MAP_LEN bytes
    // (kvm_run fits in the first page), and the vCPU is not in KVM_RUN:
    // the kernel does not write it now. Fields are read with volatile
    // loads, through raw pointers, because the program may write the
    // same page (immediate_exit) from a signal handler.
    unsafe {
        match core::ptr::addr_of!((*run).exit_reason).read_volatile() {
            KVM_EXIT_MMIO => {
                let mmio = core::ptr::addr_of_mut!((*run).__bindgen_anon_1.mmio);
                let len = core::ptr::addr_of!((*mmio).len).read_volatile();
                if !(1..=8).contains(&len) {
                    return None;
                }
                Some(Access {
                    pio: false,
                    write: core::ptr::addr_of!((*mmio).is_write).read_volatile() != 0,
                    addr: core::ptr::addr_of!((*mmio).phys_addr).read_volatile(),
                    len: len as u8,
                    count: 1,
                    data: core::ptr::addr_of_mut!((*mmio).data).cast::<u8>(),
                })
            }
            KVM_EXIT_IO => {
                let port_io = core::ptr::addr_of!((*run).__bindgen_anon_1.io);
                let size = core::ptr::addr_of!((*port_io).size).read_volatile();
                let count = core::ptr::addr_of!((*port_io).count).read_volatile();
                let offset = core::ptr::addr_of!((*port_io).data_offset).read_volatile();
                let bytes = u64::from(size) * u64::from(count);
                if !matches!(size, 1 | 2 | 4)
                    || count == 0
                    || offset.checked_add(bytes)? > RUN_MAP_LEN as u64
                {
                    return None;
                }
                Some(Access {
                    pio: true,
                    write: u32::from(core::ptr::addr_of!((*port_io).direction).read_volatile())
                        == KVM_EXIT_IO_OUT,
                    addr: u64::from(core::ptr::addr_of!((*port_io).port).read_volatile()),
                    len: size,
                    count,
                    data: run.cast::<u8>().add(offset as usize),
                })
            }
            _ => None,
        }
    }
}

fn immediate_exit(io: &VcpuIo) -> bool {
    let run = io.run.load(SeqCst) as *const kvm_run;
    // SAFETY: as in `decode`: the binding's live mapping, read volatile.
    !run.is_null() && unsafe { core::ptr::addr_of!((*run).immediate_exit).read_volatile() } != 0
}

/// A region an access hit, as read under its sequence counter.
#[derive(Clone, Copy)]
struct Hit {
    index: usize,
    seq: u32,
    offset: u64,
    user_data: u64,
    posted: bool,
    sock: usize,
}

/// The live region of the space that wholly contains `[addr, addr + len)`.
fn find(pio: bool, addr: u64, len: u64) -> Option<Hit> {
    let space = if pio { KVMNG_IOREGION_PIO } else { 0 };
    let high = HIGH.load(SeqCst).min(MAX_REGIONS);
    for (index, e) in REGIONS[..high].iter().enumerate() {
        loop {
            let seq = e.seq.load(SeqCst);
            if seq & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let live = e.live.load(SeqCst);
            let flags = e.flags.load(SeqCst);
            let start = e.addr.load(SeqCst);
            let size = e.size.load(SeqCst);
            let user_data = e.user_data.load(SeqCst);
            let sock = e.sock.load(SeqCst) as usize;
            if e.seq.load(SeqCst) != seq {
                continue;
            }
            let hit = live != 0
                && flags & KVMNG_IOREGION_PIO == space
                && addr >= start
                && u128::from(addr) + u128::from(len) <= u128::from(start) + u128::from(size);
            if hit {
                return Some(Hit {
                    index,
                    seq,
                    offset: addr - start,
                    user_data,
                    posted: flags & KVMNG_IOREGION_POSTED != 0,
                    sock,
                });
            }
            break;
        }
    }
    None
}

/// [`find`], with a reference taken on the region's socket (the region is
/// checked to be still the same after taking it).
fn acquire(pio: bool, addr: u64, len: u64) -> Option<Hit> {
    loop {
        let hit = find(pio, addr, len)?;
        if get_socket(hit.sock) {
            if REGIONS[hit.index].seq.load(SeqCst) == hit.seq {
                return Some(hit);
            }
            put_socket(hit.sock);
        }
        core::hint::spin_loop();
    }
}

/// After KVM_RUN returned an exit: true when it is an access to a region.
/// The access is then pending and the run loop serves it ([`resume`]).
pub fn claim_exit(me: &ThreadBinding) -> bool {
    if LIVE.load(SeqCst) == 0 {
        return false;
    }
    let Some(access) = decode(&me.io) else {
        return false;
    };
    if find(access.pio, access.addr, u64::from(access.len)).is_none() {
        return false;
    }
    let run = me.io.run.load(SeqCst);
    for (word, value) in me.io.pending_identity.iter().zip(access.identity(run)) {
        word.store(value, SeqCst);
    }
    me.io.pending_index.store(0, SeqCst);
    me.io.pending.store(1, SeqCst);
    true
}

/// What became of a pending access.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Completed: enter the guest again.
    Done,
    /// Its region is gone: the exit goes to the caller as it is.
    Unclaimed,
    /// It stays pending; `kvmng_run` fails with this errno.
    Failed(Errno),
}

fn read_le(p: *const u8, len: u8) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate().take(usize::from(len)) {
        // SAFETY: `p` points at `len` (<= 8) bytes inside the binding's
        // mapping (checked by `decode`).
        *b = unsafe { p.add(i).read_volatile() };
    }
    u64::from_le_bytes(bytes)
}

fn write_le(p: *mut u8, len: u8, value: u64) {
    for (i, b) in value
        .to_le_bytes()
        .iter()
        .enumerate()
        .take(usize::from(len))
    {
        // SAFETY: as in `read_le`.
        unsafe { p.add(i).write_volatile(*b) };
    }
}

/// Carries out the pending access of `me` (from where it had got to).
pub fn resume(me: &ThreadBinding) -> Resume {
    let io = &me.io;
    let run = io.run.load(SeqCst);
    let same = decode(io).filter(|access| {
        io.pending_identity
            .iter()
            .zip(access.identity(run))
            .all(|(word, value)| word.load(SeqCst) == value)
    });
    let Some(access) = same else {
        // `kvm_run` describes another exit: a KVM_RUN ioctl on the vCPU fd
        // completed the access and reported the guest's next exit (api.md
        // 5.10): just run.
        io.pending.store(0, SeqCst);
        return Resume::Done;
    };
    if immediate_exit(io) {
        return Resume::Failed(Errno(libc::EINTR));
    }
    let mut index = io.pending_index.load(SeqCst);
    while index < access.count {
        let Some(hit) = acquire(access.pio, access.addr, u64::from(access.len)) else {
            io.pending.store(0, SeqCst);
            return Resume::Unclaimed;
        };
        // SAFETY: element `index` of a port access lies inside the mapping
        // (`decode` checked `data_offset + size * count`).
        let element = unsafe { access.data.add(usize::from(access.len) * index as usize) };
        let mut flags = 0;
        if access.pio {
            flags |= KVMNG_IOREGION_REQ_PIO;
        }
        let posted = access.write && hit.posted;
        if posted {
            flags |= KVMNG_IOREGION_REQ_POSTED;
        }
        let request = kvmng_ioregion_request {
            id: NEXT_ID.fetch_add(1, SeqCst),
            offset: hit.offset,
            data: if access.write {
                read_le(element, access.len)
            } else {
                0
            },
            user_data: hit.user_data,
            vcpu_id: io.vcpu_id.load(SeqCst),
            len: access.len,
            dir: if access.write {
                KVMNG_IOREGION_WRITE as u8
            } else {
                KVMNG_IOREGION_READ as u8
            },
            flags: flags as u8,
            pad: 0,
        };
        let result = exchange(me, hit.sock, &request, posted);
        put_socket(hit.sock);
        match result {
            Ok(value) => {
                if !access.write {
                    write_le(element, access.len, value);
                }
            }
            Err(e) => return Resume::Failed(e),
        }
        index += 1;
        io.pending_index.store(index, SeqCst);
    }
    io.pending.store(0, SeqCst);
    Resume::Done
}

// ------------------------------------------------------- socket round trip

/// What a wait may be interrupted by: `ppoll`'s mask, and a signalfd that
/// reports (without taking them) the signals that end the wait but stay
/// pending, or -1.
#[derive(Clone, Copy)]
struct WaitMask {
    ppoll: u64,
    pending_fd: i32,
}

/// Signals blocked for the guard's life; `mask` is what a wait unblocks.
struct Blocked {
    old: u64,
    mask: WaitMask,
}

impl Blocked {
    fn new(io: &VcpuIo) -> Blocked {
        let all: u64 = !0;
        let mut old: u64 = 0;
        // SAFETY: rt_sigprocmask reads `all` and writes `old` (8 bytes
        // each, the kernel's sigset size), both on this frame. It cannot
        // fail with these arguments.
        let _ = unsafe {
            syscall6(
                libc::SYS_rt_sigprocmask,
                libc::SIG_BLOCK as u64,
                &all as *const u64 as u64,
                &mut old as *mut u64 as u64,
                8,
                0,
                0,
            )
        };
        let mut mask = WaitMask {
            ppoll: old,
            pending_fd: -1,
        };
        if io.sigmask_set.load(SeqCst) != 0 {
            // As in KVM_RUN: a signal the KVM mask allows ends the wait. One
            // the thread does not block is handled (ppoll); one the thread
            // blocks stays pending, as KVM leaves it (the signalfd sees it).
            let kvm = io.sigmask.load(SeqCst);
            let stays_pending = !kvm & old;
            mask.ppoll = kvm | old;
            if stays_pending != 0 {
                match sys::signalfd(stays_pending) {
                    Ok(fd) => mask.pending_fd = fd,
                    // No fd for it: such a signal is handled in the wait.
                    Err(_) => mask.ppoll = kvm,
                }
            }
        }
        Blocked { old, mask }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if self.mask.pending_fd >= 0 {
            let _ = close(self.mask.pending_fd);
        }
        // SAFETY: restores the mask saved by `new` from this value.
        let _ = unsafe {
            syscall6(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK as u64,
                &self.old as *const u64 as u64,
                0,
                8,
                0,
                0,
            )
        };
    }
}

/// `ppoll` on `fd` with the wait's signal mask. `Err(EINTR)` when a signal
/// was handled, or one that stays pending came; `Ok(revents)` otherwise (0
/// on timeout).
fn wait(fd: i32, events: i16, mask: WaitMask, timeout_ns: Option<i64>) -> Result<i16, Errno> {
    let mut pfd = [
        libc::pollfd {
            fd,
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: mask.pending_fd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let nfds = if mask.pending_fd >= 0 { 2 } else { 1 };
    let ts = timeout_ns.map(|ns| libc::timespec {
        tv_sec: ns / 1_000_000_000,
        tv_nsec: ns % 1_000_000_000,
    });
    let ts_ptr = ts.as_ref().map_or(0, |t| t as *const libc::timespec as u64);
    // SAFETY: ppoll reads and writes `nfds` pollfds, reads the timespec
    // (if any) and the 8-byte mask, all on this frame.
    unsafe {
        syscall6(
            libc::SYS_ppoll,
            pfd.as_mut_ptr() as u64,
            nfds,
            ts_ptr,
            &mask.ppoll as *const u64 as u64,
            8,
            0,
        )
    }?;
    if pfd[1].revents != 0 {
        return Err(Errno(libc::EINTR));
    }
    Ok(pfd[0].revents)
}

fn send(fd: i32, request: &kvmng_ioregion_request) -> SysResult {
    // SAFETY: sendto reads the request (on the caller's frame); no address.
    unsafe {
        syscall6(
            libc::SYS_sendto,
            fd as u64,
            request as *const kvmng_ioregion_request as u64,
            core::mem::size_of::<kvmng_ioregion_request>() as u64,
            (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as u64,
            0,
            0,
        )
    }
}

/// The errno a socket error means for the guest's access.
fn socket_errno(e: Errno) -> Errno {
    match e.0 {
        libc::ECONNRESET | libc::ENOTCONN => Errno(libc::EPIPE),
        _ => e,
    }
}

fn wake(efd: i32) {
    if efd < 0 {
        return;
    }
    let one: u64 = 1;
    // SAFETY: write reads 8 bytes from `one`, on this frame.
    let _ = unsafe {
        syscall6(
            libc::SYS_write,
            efd as u64,
            &one as *const u64 as u64,
            8,
            0,
            0,
            0,
        )
    };
}

fn drain(efd: i32) {
    let mut value: u64 = 0;
    // SAFETY: read writes at most 8 bytes into `value`, on this frame.
    let _ = unsafe {
        syscall6(
            libc::SYS_read,
            efd as u64,
            &mut value as *mut u64 as u64,
            8,
            0,
            0,
            0,
        )
    };
}

/// The binding's eventfd, created on first need.
fn eventfd(io: &VcpuIo) -> Result<i32, Errno> {
    let fd = io.efd.load(SeqCst);
    if fd >= 0 {
        return Ok(fd);
    }
    // SAFETY: eventfd2 takes integers only.
    let fd = unsafe {
        syscall6(
            libc::SYS_eventfd2,
            0,
            (libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) as u64,
            0,
            0,
            0,
            0,
        )
    }? as i32;
    io.efd.store(fd, SeqCst);
    Ok(fd)
}

/// The generation of the memory-map gate: a wait interrupted while it
/// moved may have been the gate's kick, and goes on.
fn generation() -> u32 {
    super::gate::generation()
}

/// Sends `request` on socket entry `sock` and, unless `posted`, waits for
/// its reply: the value read (0 for a write).
fn exchange(
    me: &ThreadBinding,
    sock: usize,
    request: &kvmng_ioregion_request,
    posted: bool,
) -> Result<u64, Errno> {
    let io = &me.io;
    let s = &SOCKETS[sock];
    let fd = s.fd.load(SeqCst);
    let id = request.id;
    if !posted {
        eventfd(io)?;
        io.is_write.store(
            u32::from(u32::from(request.dir) == KVMNG_IOREGION_WRITE),
            SeqCst,
        );
        io.sock.store(sock as i32, SeqCst);
        io.wait_id.store(id, SeqCst);
    }
    s.note_sent(id);
    let unregister = |io: &VcpuIo| {
        io.wait_id.store(0, SeqCst);
        io.sock.store(-1, SeqCst);
    };
    // Send; a full socket is waited for like a reply (interruptibly).
    let mut blocked: Option<Blocked> = None;
    loop {
        match send(fd, request) {
            Ok(_) => break,
            Err(Errno(libc::EAGAIN)) => {
                let b = blocked.get_or_insert_with(|| Blocked::new(io));
                if immediate_exit(io) {
                    unregister(io);
                    return Err(Errno(libc::EINTR));
                }
                let before = generation();
                match wait(fd, libc::POLLOUT, b.mask, None) {
                    Err(Errno(libc::EINTR)) if generation() == before => {
                        unregister(io);
                        return Err(Errno(libc::EINTR));
                    }
                    _ => continue,
                }
            }
            Err(e) => {
                unregister(io);
                return Err(socket_errno(e));
            }
        }
    }
    if posted {
        return Ok(0);
    }
    let blocked = blocked.unwrap_or_else(|| Blocked::new(io));
    let result = wait_reply(me, sock, id, blocked.mask);
    drop(blocked);
    result
}

/// Hands the reply's result to the waiter, and forgets the request.
fn take_result(io: &VcpuIo) -> Result<u64, Errno> {
    let err = io.err.load(SeqCst);
    let data = io.data.load(SeqCst);
    io.wait_id.store(0, SeqCst);
    io.sock.store(-1, SeqCst);
    if err != 0 {
        Err(Errno(err))
    } else {
        Ok(data)
    }
}

/// Gives the request up with `e`, unless its reply is being handed over
/// (then the reply wins). Its late reply will be dropped: its id was sent
/// on the socket and nobody waits for it any more.
fn abandon(io: &VcpuIo, id: u64, e: Errno) -> Result<u64, Errno> {
    if io.wait_id.compare_exchange(id, 0, SeqCst, SeqCst).is_ok() {
        io.sock.store(-1, SeqCst);
        return Err(e);
    }
    while io.done_id.load(SeqCst) != id {
        core::hint::spin_loop();
    }
    take_result(io)
}

/// Why the receive role ended without this thread's reply.
enum RxEnd {
    /// A signal was handled while waiting.
    Interrupted,
    /// Any other failure: the errno for the waiter.
    Failed(Errno),
}

fn wait_reply(me: &ThreadBinding, sock: usize, id: u64, mask: WaitMask) -> Result<u64, Errno> {
    let io = &me.io;
    let s = &SOCKETS[sock];
    let tid = gettid();
    let efd = io.efd.load(SeqCst);
    loop {
        if io.done_id.load(SeqCst) == id {
            return take_result(io);
        }
        if s.dead.load(SeqCst) != 0 {
            return abandon(io, id, Errno(libc::EPIPE));
        }
        if immediate_exit(io) {
            return abandon(io, id, Errno(libc::EINTR));
        }
        let before = generation();
        if s.rx.compare_exchange(0, tid, SeqCst, SeqCst).is_ok() {
            let end = receive(me, sock, id, mask);
            s.rx.store(0, SeqCst);
            wake_waiters(sock, io);
            match end {
                Ok(()) => continue,
                Err(RxEnd::Interrupted) if generation() != before => continue,
                Err(RxEnd::Interrupted) => return abandon(io, id, Errno(libc::EINTR)),
                Err(RxEnd::Failed(e)) => return abandon(io, id, e),
            }
        }
        match wait(efd, libc::POLLIN, mask, Some(ORPHAN_CHECK_NS)) {
            Ok(0) => release_orphaned_receiver(sock),
            Ok(_) => drain(efd),
            Err(Errno(libc::EINTR)) if generation() != before => {}
            Err(Errno(libc::EINTR)) => return abandon(io, id, Errno(libc::EINTR)),
            Err(e) => return abandon(io, id, e),
        }
    }
}

/// Frees the receive role of `sock` if its holder is no longer waiting on
/// it (it left `kvmng_run` without giving the role up).
fn release_orphaned_receiver(sock: usize) {
    let s = &SOCKETS[sock];
    let holder = s.rx.load(SeqCst);
    if holder == 0 {
        return;
    }
    let waiting = THREADS[..binding::high_water()]
        .iter()
        .any(|t| t.tid.load(SeqCst) == holder && t.io.sock.load(SeqCst) == sock as i32);
    if !waiting {
        let _ = s.rx.compare_exchange(holder, 0, SeqCst, SeqCst);
    }
}

/// Wakes every other thread waiting on `sock`, so that one takes the
/// receive role over.
fn wake_waiters(sock: usize, me: &VcpuIo) {
    for t in THREADS[..binding::high_water()].iter() {
        let io = &t.io;
        if core::ptr::eq(io, me) {
            continue;
        }
        if io.sock.load(SeqCst) == sock as i32 && io.wait_id.load(SeqCst) != 0 {
            wake(io.efd.load(SeqCst));
        }
    }
}

/// True when the peer has closed its end.
fn hung_up(fd: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: poll reads and writes one pollfd on this frame; no timeout.
    let r = unsafe {
        syscall6(
            libc::SYS_poll,
            &mut pfd as *mut libc::pollfd as u64,
            1,
            0,
            0,
            0,
            0,
        )
    };
    r.is_ok() && pfd.revents & (libc::POLLHUP | libc::POLLRDHUP) != 0
}

/// The receive role: reads replies and hands them to their waiters until
/// this thread's own reply (`id`) is handed over.
fn receive(me: &ThreadBinding, sock: usize, id: u64, mask: WaitMask) -> Result<(), RxEnd> {
    let io = &me.io;
    let s = &SOCKETS[sock];
    let fd = s.fd.load(SeqCst);
    const REPLY: usize = core::mem::size_of::<kvmng_ioregion_reply>();
    loop {
        if io.done_id.load(SeqCst) == id {
            return Ok(());
        }
        let mut buf = [0u8; REPLY + 8];
        // SAFETY: recvfrom writes at most buf.len() bytes into `buf`; with
        // MSG_TRUNC it returns the message's real length.
        let n = unsafe {
            syscall6(
                libc::SYS_recvfrom,
                fd as u64,
                buf.as_mut_ptr() as u64,
                buf.len() as u64,
                (libc::MSG_DONTWAIT | libc::MSG_TRUNC) as u64,
                0,
                0,
            )
        };
        match n {
            Ok(0) => {
                if hung_up(fd) {
                    s.dead.store(1, SeqCst);
                    return Err(RxEnd::Failed(Errno(libc::EPIPE)));
                }
                return Err(RxEnd::Failed(Errno(libc::EBADMSG)));
            }
            Ok(n) if n as usize == REPLY => {
                let reply_id = u64::from_ne_bytes(buf[..8].try_into().expect("8 bytes"));
                let data = u64::from_ne_bytes(buf[8..16].try_into().expect("8 bytes"));
                deliver(sock, reply_id, data, io).map_err(RxEnd::Failed)?;
            }
            Ok(_) => return Err(RxEnd::Failed(Errno(libc::EBADMSG))),
            Err(Errno(libc::EAGAIN)) => match wait(fd, libc::POLLIN, mask, None) {
                Err(Errno(libc::EINTR)) => return Err(RxEnd::Interrupted),
                Err(e) => return Err(RxEnd::Failed(e)),
                Ok(_) => {}
            },
            Err(e) => {
                let e = socket_errno(e);
                if e == Errno(libc::EPIPE) {
                    s.dead.store(1, SeqCst);
                }
                return Err(RxEnd::Failed(e));
            }
        }
    }
}

/// Hands reply `id` to the thread waiting for it on `sock`, or drops it if
/// it is stale (sent on the socket, awaited by nobody: an abandoned or
/// posted request, or one answered already); otherwise it is malformed
/// (`EBADMSG` for the receiver).
fn deliver(sock: usize, id: u64, data: u64, me: &VcpuIo) -> Result<(), Errno> {
    if id == 0 || id == DELIVERING {
        return Err(Errno(libc::EBADMSG));
    }
    for t in THREADS[..binding::high_water()].iter() {
        let io = &t.io;
        if io.sock.load(SeqCst) != sock as i32 {
            continue;
        }
        if io
            .wait_id
            .compare_exchange(id, DELIVERING, SeqCst, SeqCst)
            .is_ok()
        {
            let malformed = io.is_write.load(SeqCst) != 0 && data != 0;
            io.data.store(data, SeqCst);
            io.err
                .store(if malformed { libc::EBADMSG } else { 0 }, SeqCst);
            io.done_id.store(id, SeqCst);
            if !core::ptr::eq(io, me) {
                wake(io.efd.load(SeqCst));
            }
            return Ok(());
        }
    }
    if SOCKETS[sock].was_sent(id) {
        return Ok(());
    }
    Err(Errno(libc::EBADMSG))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sent_on_a_socket_form_its_stale_range() {
        let s = Socket::new();
        assert!(!s.was_sent(0) && !s.was_sent(1) && !s.was_sent(u64::MAX));
        // Sent out of order by two threads: the range still covers both.
        s.note_sent(12);
        s.note_sent(10);
        assert!(s.was_sent(10) && s.was_sent(11) && s.was_sent(12));
        assert!(!s.was_sent(9) && !s.was_sent(13) && !s.was_sent(0));
        s.reset();
        assert!(!s.was_sent(10));
    }

    #[test]
    fn little_endian_data_of_each_length() {
        let mut bytes = [0xAAu8; 8];
        write_le(bytes.as_mut_ptr(), 2, 0x1234_5678);
        assert_eq!(bytes, [0x78, 0x56, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA]);
        assert_eq!(read_le(bytes.as_ptr(), 2), 0x5678);
        assert_eq!(read_le(bytes.as_ptr(), 3), 0xAA_5678);
        write_le(bytes.as_mut_ptr(), 8, u64::MAX - 1);
        assert_eq!(read_le(bytes.as_ptr(), 8), u64::MAX - 1);
    }
}
