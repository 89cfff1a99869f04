//! Which VM this process has bound and which vCPU each thread has bound,
//! as the shim arranged them through the backend.
//!
//! * **The VM.** KVM_CREATE_VM through the shim binds the new VM and gives
//!   it a *serial* (never reused in the process, nor across fork). Entries
//!   of its VM and vCPU fds carry the serial and are *counted*: when the
//!   program has closed the last of them, no ioctl can reach the VM any
//!   more, so the shim unbinds it (and the calling thread's vCPU binding
//!   to it), and the next KVM_CREATE_VM is translated again.
//! * **The vCPUs.** `OWNERS[id]` holds (serial, tid) of the thread bound to
//!   vCPU `id` of the bound VM; each thread caches its own binding in a
//!   thread-local, and a copy of it in an initial-exec TLS slot (HELD),
//!   so that a translated vCPU ioctl costs a table load, one `fs:` load
//!   and a compare. A thread binds to a vCPU only at its first KVM_RUN on it
//!   (taking over from the thread's previous vCPU if that one is free):
//!   the thread that runs a vCPU is the one that owns it, whichever thread
//!   created it or set it up (VMMs touch vCPUs from set-up and main threads
//!   before the vCPU thread first runs). Thread exit releases the vCPU.
//!
//! Changes take a spin lock; the run and state paths take none.

use super::fdtable::{self, Entry, Kind};
use super::reason::Reason;
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::SeqCst};
use kvmng::{Backend, Errno};

/// vCPU ids the tables cover (KVM's ids are below KVM_MAX_VCPU_IDS, 16384
/// on x86 since 6.x; the fd table keeps 16 bits).
const VCPU_IDS: usize = 1 << 16;

static LOCK: AtomicBool = AtomicBool::new(false);
static NEXT_SERIAL: AtomicU32 = AtomicU32::new(1);
/// Serial of the VM the shim bound; 0 when none.
static BOUND_SERIAL: AtomicU32 = AtomicU32::new(0);
/// Counted fd entries of the bound VM.
static REFS: AtomicU32 = AtomicU32::new(0);
/// (serial << 32 | tid) of the thread bound to each vCPU id; 0 free.
static OWNERS: [AtomicU64; VCPU_IDS] = [const { AtomicU64::new(0) }; VCPU_IDS];
/// The pid this state belongs to (see [`own_process`]).
static PID: AtomicI32 = AtomicI32::new(0);

const fn pack(serial: u32, low: u32) -> u64 {
    ((serial as u64) << 32) | low as u64
}
const fn serial_of(packed: u64) -> u32 {
    (packed >> 32) as u32
}

/// The calling thread's view: its tid and its binding.
struct ThreadState {
    tid: Cell<i32>,
    /// pack(serial, vcpu id + 1) of the vCPU the thread is bound to; 0 none.
    bound: Cell<u64>,
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // The thread exits: the kernel (or the emulation's key destructor)
        // drops its binding; make the vCPU free in the shim's view.
        let bound = self.bound.get();
        set_held(0);
        if bound != 0 {
            release_owner(bound, self.tid.get());
        }
    }
}

thread_local! {
    static THREAD: ThreadState = const {
        ThreadState { tid: Cell::new(0), bound: Cell::new(0) }
    };
}

/// The calling thread's kernel tid (cached).
pub fn tid() -> i32 {
    THREAD
        .try_with(|t| {
            let cached = t.tid.get();
            if cached != 0 {
                return cached;
            }
            let tid = kvmng::sys::gettid();
            t.tid.set(tid);
            tid
        })
        .unwrap_or_else(|_| kvmng::sys::gettid())
}

fn my_binding() -> u64 {
    THREAD.try_with(|t| t.bound.get()).unwrap_or(0)
}

fn set_my_binding(value: u64) {
    if THREAD.try_with(|t| t.bound.set(value)).is_ok() {
        set_held(held_of(value));
    }
}

/// What HELD holds for the binding `bound` (`pack(serial, vcpu id + 1)`,
/// 0 for none): the [`Entry::vcpu_bits`] of that vCPU's fd entries, so
/// that [`holds`] compares an entry's masked bits with it; 0 for none
/// (which no vCPU entry's bits are).
const fn held_of(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    Entry::vcpu_bits_of(serial_of(bound), (bound as u32).wrapping_sub(1) as u16)
}

// HELD: the thread's `bound`, as [`held_of`] puts it, for [`holds`], the test every
// translated vCPU call makes. The shim is a shared library, where a Rust
// thread-local is reached through `__tls_get_addr` (a call, about 20
// instructions with the state check); HELD is an 8-byte slot of the
// static TLS block (initial-exec model: the shim is loaded at start-up by
// LD_PRELOAD), read with one `fs:`-relative load. A new thread's slot is
// zero (`.tbss`). It is written wherever `bound` is, and zeroed when
// THREAD is destroyed, so it always equals `my_binding()`.
core::arch::global_asm!(
    ".section .tbss,\"awT\",@nobits",
    ".globl kvmshim_held_binding",
    ".hidden kvmshim_held_binding",
    ".type kvmshim_held_binding,@object",
    ".size kvmshim_held_binding,8",
    ".p2align 3",
    "kvmshim_held_binding:",
    ".zero 8",
    ".previous",
);

/// The calling thread's binding (HELD).
#[inline(always)]
fn held() -> u64 {
    let value: u64;
    // SAFETY: loads the offset of this thread's HELD slot from the GOT and
    // reads the slot: 8 bytes of the static TLS block, always mapped for a
    // running thread (signal handlers included).
    unsafe {
        core::arch::asm!(
            "mov {v}, qword ptr [rip + kvmshim_held_binding@GOTTPOFF]",
            "mov {v}, qword ptr fs:[{v}]",
            v = out(reg) value,
            options(nostack, readonly, preserves_flags),
        );
    }
    value
}

/// Sets HELD.
#[inline]
fn set_held(value: u64) {
    // SAFETY: as in [`held`]; writes this thread's own slot. `tp` is an
    // `out` operand, so it never shares a register with `value`.
    unsafe {
        core::arch::asm!(
            "mov {tp}, qword ptr [rip + kvmshim_held_binding@GOTTPOFF]",
            "mov qword ptr fs:[{tp}], {v}",
            tp = out(reg) _,
            v = in(reg) value,
            options(nostack, preserves_flags),
        );
    }
}

fn vcpu_key(serial: u32, id: u16) -> u64 {
    pack(serial, u32::from(id) + 1)
}

fn release_owner(bound: u64, tid: i32) {
    let id = (bound as u32).wrapping_sub(1) as usize;
    if let Some(owner) = OWNERS.get(id) {
        let _ = owner.compare_exchange(pack(serial_of(bound), tid as u32), 0, SeqCst, SeqCst);
    }
}

struct Locked(());

fn lock() -> Locked {
    let mut spins = 0u32;
    while LOCK
        .compare_exchange_weak(false, true, SeqCst, SeqCst)
        .is_err()
    {
        spins += 1;
        if spins > 64 {
            std::thread::yield_now();
        } else {
            core::hint::spin_loop();
        }
    }
    Locked(())
}

impl Drop for Locked {
    fn drop(&mut self) {
        LOCK.store(false, SeqCst);
    }
}

/// Records the pid the shim's state belongs to (set-up, fork child).
pub fn set_pid(pid: i32) {
    PID.store(pid, SeqCst);
}

/// False in a child that shares our memory without being this process
/// (vfork, clone without fork handlers): such a child must not change the
/// shim's state, which is its parent's. Costs a getpid, so it is asked
/// only on rare paths.
pub fn own_process() -> bool {
    PID.load(SeqCst) == kvmng::sys::getpid()
}

/// The serial of the VM the shim has bound, 0 if none.
#[inline]
pub fn bound_serial() -> u32 {
    BOUND_SERIAL.load(SeqCst)
}

/// Whether `entry` is a VM or vCPU fd of the bound VM.
#[inline]
pub fn of_bound_vm(entry: Entry) -> bool {
    entry.serial() != 0 && entry.serial() == bound_serial()
}

/// The reason a VM or vCPU entry is not of the bound VM.
pub fn not_bound_reason(entry: Entry) -> Reason {
    if entry.serial() != 0 || entry.known() {
        Reason::VmNotBound
    } else {
        Reason::UnknownOrigin
    }
}

/// Takes `fd`'s old entry out (the fd number now means something else),
/// unbinding the VM if that was its last counted fd. Lock held.
fn drop_entry_locked(fd: i32, replacement: Entry, backend: Option<&dyn Backend>) {
    let old = fdtable::swap(fd, replacement);
    if old.counted() && old.serial() == bound_serial() && old.serial() != 0 {
        let left = REFS.fetch_sub(1, SeqCst).saturating_sub(1);
        if left == 0 {
            unbind_vm_locked(old.serial(), backend);
        }
    }
}

fn unbind_vm_locked(serial: u32, backend: Option<&dyn Backend>) {
    BOUND_SERIAL.store(0, SeqCst);
    REFS.store(0, SeqCst);
    let Some(backend) = backend else { return };
    let _ = backend.bind_vm(kvmng_abi::KVMNG_UNBIND, 0);
    let mine = my_binding();
    if mine != 0 && serial_of(mine) == serial {
        let _ = backend.bind_vcpu(kvmng_abi::KVMNG_UNBIND, 0);
        release_owner(mine, tid());
        set_my_binding(0);
    }
}

/// Whether a change to `fd`'s entry must go through the lock.
fn needs_lock(old: Entry, new: Entry) -> bool {
    old.counted() || new.counted()
}

/// Sets `fd`'s entry, replacing (and accounting for) the old one.
pub fn register(fd: i32, entry: Entry) {
    let old = fdtable::get(fd);
    if old == Entry::EMPTY && entry == Entry::EMPTY {
        return;
    }
    if !own_process() {
        return;
    }
    if needs_lock(old, entry) {
        let _l = lock();
        let entry = count_if_bound(entry);
        drop_entry_locked(fd, entry, super::config::backend());
    } else {
        fdtable::swap(fd, entry);
    }
}

/// `entry`, counted if it is of the bound VM (REFS taken). Lock held.
fn count_if_bound(entry: Entry) -> Entry {
    if !entry.counted() {
        return entry;
    }
    if entry.serial() != 0 && entry.serial() == bound_serial() {
        REFS.fetch_add(1, SeqCst);
        entry
    } else {
        entry.uncounted()
    }
}

/// The fd number was closed or now names another file.
#[inline]
pub fn forget(fd: i32) {
    if fdtable::get(fd) != Entry::EMPTY {
        register(fd, Entry::EMPTY);
    }
}

/// `new` is now a duplicate of `old` (dup, dup2, dup3, F_DUPFD).
pub fn duplicate(old: i32, new: i32) {
    register(new, fdtable::get(old));
}

/// KVM_CREATE_VM through the shim returned `vm_fd`, now bound.
pub fn vm_created(vm_fd: i32) {
    if !own_process() {
        return;
    }
    let _l = lock();
    let serial = NEXT_SERIAL.fetch_add(1, SeqCst);
    BOUND_SERIAL.store(serial, SeqCst);
    REFS.store(0, SeqCst);
    let entry = count_if_bound(Entry::made(Kind::Vm, serial, 0, true));
    drop_entry_locked(vm_fd, entry, super::config::backend());
}

/// KVM_CREATE_VCPU through the shim returned `vcpu_fd` for vCPU `id` of the
/// VM with `serial`.
pub fn vcpu_created(vcpu_fd: i32, serial: u32, id: u16) {
    register(vcpu_fd, Entry::made(Kind::Vcpu, serial, id, true));
}

/// Whether the calling thread is bound, through the shim, to the vCPU of
/// `entry`: the hot path, no lock, no syscall.
#[inline]
pub fn holds(entry: Entry) -> bool {
    // A bound thread's HELD has its VM's serial, never 0, and the vCPU
    // kind: only a vCPU entry of the bound vCPU has the same bits.
    entry.kind() == Kind::Vcpu && entry.vcpu_bits() == held()
}

/// Makes sure the calling thread is bound to the vCPU behind `fd`
/// (`entry`), binding it if the rules allow; otherwise the reason for a
/// fallback. `is_run`: the call is KVM_RUN.
pub fn acquire(fd: i32, entry: Entry, is_run: bool, backend: &dyn Backend) -> Result<(), Reason> {
    if holds(entry) {
        return Ok(());
    }
    if !of_bound_vm(entry) {
        return Err(not_bound_reason(entry));
    }
    let serial = entry.serial();
    let id = entry.vcpu_id();
    let me = tid();
    let mine = my_binding();
    let bound_here = mine != 0 && serial_of(mine) == serial;
    if !is_run {
        return Err(if bound_here {
            Reason::ThreadBusy
        } else {
            Reason::BindsAtRun
        });
    }
    let owner = &OWNERS[usize::from(id)];
    let claim = pack(serial, me as u32);
    loop {
        let current = owner.load(SeqCst);
        let held = current != 0 && serial_of(current) == serial && current != claim;
        if held {
            return Err(Reason::VcpuBusy);
        }
        if owner
            .compare_exchange(current, claim, SeqCst, SeqCst)
            .is_ok()
        {
            break;
        }
    }
    match backend.bind_vcpu(fd, 0) {
        Ok(_) => {
            if mine != 0 {
                release_owner(mine, me);
            }
            set_my_binding(vcpu_key(serial, id));
            Ok(())
        }
        Err(Errno(e)) => {
            let _ = owner.compare_exchange(claim, 0, SeqCst, SeqCst);
            Err(if e == libc::EBUSY {
                Reason::VcpuBusy
            } else {
                Reason::BindFailed
            })
        }
    }
}

/// The backend said the thread has no binding (ESRCH) although the shim
/// recorded one: forget it.
pub fn thread_binding_lost() {
    let mine = my_binding();
    if mine != 0 {
        release_owner(mine, tid());
        set_my_binding(0);
    }
}

/// The backend said the process has no bound VM (EUNATCH) although the shim
/// recorded one: forget it (fd entries keep their serial, which no longer
/// matches, so their ioctls fall back).
pub fn vm_binding_lost() {
    let _l = lock();
    BOUND_SERIAL.store(0, SeqCst);
    REFS.store(0, SeqCst);
}

/// In the child after fork(): a new mm with no bound VM, one thread with no
/// bound vCPU (the backend's own fork handler drops its bindings). The
/// inherited fd entries keep the parent's serials, which this process never
/// binds, so their ioctls go to the kernel, which answers EIO as natively.
pub fn after_fork_child(pid: i32) {
    LOCK.store(false, SeqCst);
    PID.store(pid, SeqCst);
    BOUND_SERIAL.store(0, SeqCst);
    REFS.store(0, SeqCst);
    let _ = THREAD.try_with(|t| {
        t.tid.set(0);
        t.bound.set(0);
    });
    set_held(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_follows_the_binding_per_thread() {
        set_my_binding(vcpu_key(5, 2));
        assert_eq!(held(), held_of(my_binding()));
        assert_eq!(held(), Entry::made(Kind::Vcpu, 5, 2, true).vcpu_bits());
        assert!(holds(Entry::made(Kind::Vcpu, 5, 2, false)));
        assert!(!holds(Entry::made(Kind::Vcpu, 5, 3, false)));
        std::thread::spawn(|| {
            assert_eq!(held(), 0);
            assert!(!holds(Entry::made(Kind::Vcpu, 5, 2, false)));
        })
        .join()
        .unwrap();
        set_my_binding(0);
        assert_eq!(held(), 0);
        assert!(!holds(Entry::made(Kind::Vcpu, 5, 2, false)));
        // An unbound thread holds nothing, not even an empty entry.
        assert!(!holds(Entry::EMPTY));
        assert!(!holds(Entry::made(Kind::Vcpu, 0, 0, false)));
        // The flags do not matter; the VM and the kind do.
        set_my_binding(vcpu_key(5, 2));
        assert!(holds(Entry::made(Kind::Vcpu, 5, 2, true)));
        assert!(!holds(Entry::made(Kind::Vcpu, 6, 2, false)));
        assert!(!holds(Entry::made(Kind::Vm, 5, 2, false)));
        assert_eq!(
            held_of(vcpu_key(5, u16::MAX)),
            Entry::vcpu_bits_of(5, u16::MAX)
        );
        set_my_binding(0);
    }

    #[test]
    fn packing() {
        let key = vcpu_key(9, 0);
        assert_eq!(serial_of(key), 9);
        assert_eq!(key as u32, 1);
        assert_ne!(vcpu_key(9, 0), 0);
    }
}
