//! The emulated bindings: the VM bound to this process (the mm), and the
//! vCPU bound to each thread.
//!
//! Each binding holds a private close-on-exec duplicate of the object's fd,
//! which keeps the KVM object alive exactly as the kernel's reference would.
//! The state is in statics of fixed size: reading a binding (every run or
//! state call, possibly in a SIGSYS handler) takes no lock and allocates
//! nothing. Changing one (bind/unbind, rare) takes a spin lock.
//!
//! Thread exit is seen through a pthread key destructor; fork() through a
//! pthread_atfork child handler, which drops every binding in the child (a
//! new mm has no bound VM and its one thread no bound vCPU).

use super::ioregion::{self, VcpuIo};
use crate::errno::Errno;
use crate::sys::{close, fcntl, gettid};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::Once;

/// The most threads that can be bound to vCPUs at once (KVM_MAX_VCPUS).
pub const MAX_BOUND_THREADS: usize = 1024;

/// Private duplicates are placed at or above this fd number when possible,
/// out of the way of the program's own low fds.
const PRIVATE_FD_FLOOR: u64 = 512;

/// One thread's binding to a vCPU.
pub struct ThreadBinding {
    /// Kernel tid of the bound thread; 0 when the slot is free.
    pub tid: AtomicI32,
    /// Private duplicate of the vCPU fd; -1 when free.
    pub fd: AtomicI32,
    /// 1 while the thread is inside KVM_RUN (the memory-map gate reads it).
    pub in_run: AtomicU32,
    /// 1 once a memory-map update sent the thread a kick that the run loop
    /// has not yet taken (see [`super::gate`]).
    pub kicked: AtomicU32,
    /// I/O regions: the run area mapping, the pending access, the reply
    /// hand-over (see [`ioregion`]).
    pub io: VcpuIo,
}

impl ThreadBinding {
    const fn free() -> ThreadBinding {
        ThreadBinding {
            tid: AtomicI32::new(0),
            fd: AtomicI32::new(-1),
            in_run: AtomicU32::new(0),
            kicked: AtomicU32::new(0),
            io: VcpuIo::new(),
        }
    }
}

/// Every thread binding of the process.
pub static THREADS: [ThreadBinding; MAX_BOUND_THREADS] =
    [const { ThreadBinding::free() }; MAX_BOUND_THREADS];

/// One more than the highest index of [`THREADS`] ever used: scans of the
/// bindings stop there.
static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);

/// The number of [`THREADS`] entries that may be in use.
pub fn high_water() -> usize {
    HIGH_WATER.load(SeqCst)
}

/// Private duplicate of the bound VM's fd, or -1.
static VM_FD: AtomicI32 = AtomicI32::new(-1);
/// Private duplicate of a /dev/kvm fd (for system-scope control), or -1.
static KVM_FD: AtomicI32 = AtomicI32::new(-1);

/// The process the bindings belong to: a child made by a raw fork (no
/// fork handlers ran) sees another pid, and has no bindings.
static OWNER_PID: AtomicI32 = AtomicI32::new(0);

/// Serializes changes of bindings (never taken on run or state paths).
static CHANGE_LOCK: AtomicBool = AtomicBool::new(false);

/// The pthread key whose value is (index in THREADS + 1) for bound threads.
static KEY: AtomicU32 = AtomicU32::new(0);
static KEY_ONCE: Once = Once::new();

/// Holds [`CHANGE_LOCK`] for its lifetime.
pub struct ChangeGuard(());

impl ChangeGuard {
    /// Spins until the lock is free. Changes are short and never block.
    pub fn lock() -> ChangeGuard {
        while CHANGE_LOCK
            .compare_exchange_weak(false, true, SeqCst, SeqCst)
            .is_err()
        {
            core::hint::spin_loop();
        }
        ChangeGuard(())
    }
}

impl Drop for ChangeGuard {
    fn drop(&mut self) {
        CHANGE_LOCK.store(false, SeqCst);
    }
}

/// Runs once per process, before the first binding: creates the pthread
/// key and registers the fork handler. Must not be called first from a
/// signal handler; [`crate::backend::legacy::Legacy::new`] calls it.
pub fn init() {
    KEY_ONCE.call_once(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor is an
        // extern "C" fn that never unwinds.
        let r = unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) };
        assert_eq!(r, 0, "pthread_key_create failed: {r}");
        KEY.store(key, SeqCst);
        // SAFETY: registers a child handler that never unwinds.
        let r = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        assert_eq!(r, 0, "pthread_atfork failed: {r}");
        OWNER_PID.store(crate::sys::getpid(), SeqCst);
    });
}

/// Duplicates `fd` as a private close-on-exec fd.
pub fn private_dup(fd: i32) -> Result<i32, Errno> {
    match fcntl(fd, libc::F_DUPFD_CLOEXEC, PRIVATE_FD_FLOOR) {
        Err(Errno(libc::EINVAL)) => fcntl(fd, libc::F_DUPFD_CLOEXEC, 3).map(|f| f as i32),
        other => other.map(|f| f as i32),
    }
}

/// Reserves the fd number of a private duplicate before the object to
/// duplicate exists: a placeholder duplicate of `any_fd`, which
/// [`fill_reserved`] turns into the duplicate. A call that creates an
/// object and binds it reserves first, so that a full fd table fails it
/// with `EMFILE` before anything is created.
pub fn reserve_private(any_fd: i32) -> Result<i32, Errno> {
    private_dup(any_fd)
}

/// Makes the reserved fd `reserved` a private duplicate of `fd`; on failure
/// the reservation is closed.
pub fn fill_reserved(reserved: i32, fd: i32) -> Result<i32, Errno> {
    crate::sys::dup3_cloexec(fd, reserved)
        .map(|_| reserved)
        .inspect_err(|_| {
            let _ = close(reserved);
        })
}

/// The bound VM's private fd, or `EUNATCH`.
pub fn vm_fd() -> Result<i32, Errno> {
    match VM_FD.load(SeqCst) {
        -1 => Err(Errno(libc::EUNATCH)),
        fd => Ok(fd),
    }
}

/// Binds `private_fd` (already duplicated) as the process's VM unless one is
/// bound; on `EEXIST` the caller still owns `private_fd`.
pub fn set_vm(private_fd: i32) -> Result<(), Errno> {
    VM_FD
        .compare_exchange(-1, private_fd, SeqCst, SeqCst)
        .map(|_| ())
        .map_err(|_| Errno(libc::EEXIST))
}

/// True when private fd `fd` is no longer what the binding put there (the
/// program closed it, and the number may have gone to another file): a
/// VM fd (`want_vm`) or a vCPU fd. Asked only after a call on it failed,
/// and before `kvmng_create_vm` answers `EEXIST`.
fn lost(fd: i32, want_vm: bool) -> bool {
    use super::fdkind::{classify, FdKind};
    !matches!(
        (classify(fd), want_vm),
        (Ok(FdKind::Vm), true) | (Ok(FdKind::Vcpu(_)), false)
    )
}

/// The VM binding's private fd was closed by the program (api.md section
/// 6, "EBADF vs. fd numbers"): the binding is gone. Forgets it without
/// closing the number (it is not ours any more). Returns whether it was
/// lost.
pub fn vm_binding_lost() -> bool {
    let fd = VM_FD.load(SeqCst);
    if fd < 0 || !lost(fd, true) {
        return false;
    }
    VM_FD.compare_exchange(fd, -1, SeqCst, SeqCst).is_ok()
}

/// As [`vm_binding_lost`] for the calling thread's vCPU binding.
pub fn vcpu_binding_lost() -> bool {
    let Ok(slot) = current() else {
        return false;
    };
    let fd = slot.fd.load(SeqCst);
    if fd < 0 || !lost(fd, false) {
        return false;
    }
    // The number is not ours: detach without closing it.
    let _ = slot.fd.compare_exchange(fd, -1, SeqCst, SeqCst);
    release(slot, false);
    set_key(None);
    true
}

/// Drops the VM binding (and its private fd). Returns whether one existed.
pub fn clear_vm() -> bool {
    let old = VM_FD.swap(-1, SeqCst);
    if old >= 0 {
        let _ = close(old);
    }
    old >= 0
}

/// Remembers a /dev/kvm fd for system-scope control (first one wins).
pub fn remember_kvm_device(fd: i32) {
    if KVM_FD.load(SeqCst) >= 0 {
        return;
    }
    if let Ok(private) = private_dup(fd) {
        if KVM_FD
            .compare_exchange(-1, private, SeqCst, SeqCst)
            .is_err()
        {
            let _ = close(private);
        }
    }
}

/// A /dev/kvm fd for system-scope control, if one is known.
pub fn kvm_device_fd() -> Option<i32> {
    match KVM_FD.load(SeqCst) {
        -1 => None,
        fd => Some(fd),
    }
}

/// A /dev/kvm fd for system-scope control: the remembered one, or
/// /dev/kvm opened read-write now (a VM bound with `kvmng_bind_vm` may
/// never have passed one through `kvmng_create_vm`).
pub fn kvm_device_fd_or_open() -> Result<i32, Errno> {
    if let Some(fd) = kvm_device_fd() {
        return Ok(fd);
    }
    let fd = crate::sys::open(c"/dev/kvm", libc::O_RDWR | libc::O_CLOEXEC)?;
    remember_kvm_device(fd);
    let _ = close(fd);
    kvm_device_fd().ok_or(Errno(libc::EMFILE))
}

fn key() -> libc::pthread_key_t {
    KEY.load(SeqCst)
}

/// The calling thread's binding, or `ESRCH`.
///
/// The pthread key finds it without a search. A thread made with a raw
/// `clone(CLONE_VM)` shares its parent's thread descriptor, and so its
/// key: when the key does not lead to the caller's own slot, the slots are
/// searched by tid (only then, and on the `ESRCH` path).
pub fn current() -> Result<&'static ThreadBinding, Errno> {
    // SAFETY: reading a pthread key created in init(); for keys below
    // PTHREAD_KEY_2NDLEVEL_SIZE glibc reads an array inside the thread
    // descriptor: no lock, no allocation.
    let value = unsafe { libc::pthread_getspecific(key()) } as usize;
    let me = gettid();
    if let Some(slot) = value.checked_sub(1).and_then(|i| THREADS.get(i)) {
        if slot.tid.load(SeqCst) == me {
            return Ok(slot);
        }
    }
    THREADS[..high_water()]
        .iter()
        .find(|slot| slot.tid.load(SeqCst) == me)
        .ok_or(Errno(libc::ESRCH))
}

/// Points the key at slot `index` (or at none), unless it leads to the
/// live slot of another thread that shares this thread descriptor (a raw
/// `clone(CLONE_VM)` child and its parent): that thread finds its slot
/// through the key, the caller by search.
fn set_key(index: Option<usize>) {
    // SAFETY: as in `current`.
    let value = unsafe { libc::pthread_getspecific(key()) } as usize;
    let me = gettid();
    if let Some(slot) = value.checked_sub(1).and_then(|i| THREADS.get(i)) {
        let owner = slot.tid.load(SeqCst);
        if owner != 0 && owner != me {
            return;
        }
    }
    let new = index.map_or(0, |i| i + 1);
    // SAFETY: setting this thread's value of our key; glibc stores it in
    // the thread descriptor (keys < 32): no allocation.
    unsafe { libc::pthread_setspecific(key(), new as *const libc::c_void) };
}

/// The calling thread's bound vCPU fd, or `ESRCH`.
pub fn current_vcpu_fd() -> Result<i32, Errno> {
    current().map(|b| b.fd.load(SeqCst))
}

/// True when some thread other than the caller is bound to the vCPU of `fd`.
/// Call with the change lock held.
pub fn bound_elsewhere(fd: i32, me: i32) -> bool {
    THREADS.iter().any(|b| {
        let tid = b.tid.load(SeqCst);
        tid != 0 && tid != me && super::fdkind::same_file(b.fd.load(SeqCst), fd)
    })
}

/// Binds the calling thread to `private_fd` (already duplicated; vCPU
/// `vcpu_id`), replacing its previous binding. Call with the change lock
/// held. On failure the caller still owns `private_fd`.
pub fn set_current(private_fd: i32, vcpu_id: u32) -> Result<(), Errno> {
    let me = gettid();
    if let Ok(slot) = current() {
        let run = ioregion::map_run(private_fd)?;
        let old = slot.fd.swap(private_fd, SeqCst);
        ioregion::detach(&slot.io, old, false);
        ioregion::install(&slot.io, run, private_fd, vcpu_id);
        return Ok(());
    }
    let (index, slot) = THREADS
        .iter()
        .enumerate()
        .find(|(_, b)| b.tid.compare_exchange(0, me, SeqCst, SeqCst).is_ok())
        .ok_or(Errno(libc::ENOMEM))?;
    HIGH_WATER.fetch_max(index + 1, SeqCst);
    let run = match ioregion::map_run(private_fd) {
        Ok(run) => run,
        Err(e) => {
            slot.tid.store(0, SeqCst);
            return Err(e);
        }
    };
    ioregion::install(&slot.io, run, private_fd, vcpu_id);
    slot.fd.store(private_fd, SeqCst);
    set_key(Some(index));
    Ok(())
}

/// Drops the calling thread's binding, if any.
pub fn clear_current() {
    if let Ok(slot) = current() {
        release(slot, false);
        set_key(None);
    }
}

/// Drops a binding: on its own thread (or with the change lock held by
/// its exiting thread), or `in_fork_child`.
fn release(slot: &ThreadBinding, in_fork_child: bool) {
    let fd = slot.fd.swap(-1, SeqCst);
    ioregion::detach(&slot.io, fd, in_fork_child);
    slot.in_run.store(0, SeqCst);
    slot.kicked.store(0, SeqCst);
    slot.tid.store(0, SeqCst);
}

/// pthread key destructor: the thread is exiting.
extern "C" fn thread_exit(value: *mut libc::c_void) {
    let index = value as usize;
    if index == 0 || index > MAX_BOUND_THREADS {
        return;
    }
    let _guard = ChangeGuard::lock();
    release(&THREADS[index - 1], false);
}

/// After a call on the bound VM failed with `EIO` (KVM's answer to a VM of
/// another mm): true, with every binding dropped as in a fork child, when
/// this is a child made by a raw fork, which ran no fork handler (api.md
/// section 2: a child has no bound VM).
pub fn forked_without_handlers() -> bool {
    let owner = OWNER_PID.load(SeqCst);
    if owner == 0 || owner == crate::sys::getpid() {
        return false;
    }
    after_fork_in_child();
    true
}

/// fork() child: a new mm, one thread, no bindings. The private fds were
/// inherited and are closed here; the parent keeps its own.
extern "C" fn after_fork_in_child() {
    OWNER_PID.store(crate::sys::getpid(), SeqCst);
    // The lock may have been held by another parent thread at fork time:
    // in the child that thread does not exist, so the lock is reset.
    CHANGE_LOCK.store(false, SeqCst);
    for slot in THREADS.iter() {
        if slot.tid.load(SeqCst) != 0 {
            release(slot, true);
        }
    }
    clear_vm();
    ioregion::after_fork_in_child();
    let kvm = KVM_FD.swap(-1, SeqCst);
    if kvm >= 0 {
        let _ = close(kvm);
    }
    // SAFETY: as in set_current.
    unsafe { libc::pthread_setspecific(key(), core::ptr::null()) };
    super::memmap::forget_slots();
}
