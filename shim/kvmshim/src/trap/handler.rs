//! The SIGSYS handler: carries out a trapped kvmng syscall in the calling
//! thread, through the legacy backend, and hands every other SIGSYS to the
//! program's own action.
//!
//! Rules it keeps (docs/trap.md):
//! * acts only on `si_code == SYS_SECCOMP`, `si_arch == AUDIT_ARCH_X86_64`,
//!   a number in the kvmng block and `si_errno` == our filter's cookie;
//! * reads the arguments from the saved context (rdi, rsi, rdx, r10, r8,
//!   r9), truncated to the C prototype's types as the kernel does, and
//!   writes the kernel's return convention into RAX (value or -errno);
//! * keeps errno as it was;
//! * no allocation and no lock: the backend was built before the filter
//!   went in, and the emulation's run and state paths need neither;
//! * never unwinds: a panic (there should be none) becomes
//!   `-ENOTRECOVERABLE`.

use super::{chain, filter};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed, Ordering::SeqCst};
use kvmng::{Backend, Errno};
use kvmng_abi::{kvmng_state_entry, Syscall};
use std::sync::OnceLock;

/// `si_code` of a seccomp trap.
pub const SYS_SECCOMP: i32 = 1;

/// What the handler does with one of our traps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// No handler of ours is installed.
    None = 0,
    /// Installed for the load-time probe: a trap is recorded and answered
    /// with ENOSYS.
    Probe = 1,
    /// The filter is there (inherited) but emulation is off: ENOSYS.
    Enosys = 2,
    /// Trapped calls are carried out through the backend.
    Emulate = 3,
}

static STATE: AtomicU8 = AtomicU8::new(State::None as u8);
/// Set when the probe was trapped by our filter (inherited across exec).
static PROBE_TRAPPED: AtomicBool = AtomicBool::new(false);
/// The backend, built before the filter goes in.
static BACKEND: OnceLock<&'static dyn Backend> = OnceLock::new();
/// Our traps answered so far (see [`trapped_calls`]).
static TRAPPED_CALLS: AtomicU64 = AtomicU64::new(0);

/// How many of our traps the handler has answered in this image (in every
/// state: emulated, probe, ENOSYS).
pub fn trapped_calls() -> u64 {
    TRAPPED_CALLS.load(Relaxed)
}

/// The handler's current state.
pub fn state() -> State {
    match STATE.load(SeqCst) {
        1 => State::Probe,
        2 => State::Enosys,
        3 => State::Emulate,
        _ => State::None,
    }
}

/// Changes the state.
pub fn set_state(state: State) {
    STATE.store(state as u8, SeqCst);
}

/// True once the probe was answered by our handler.
pub fn probe_trapped() -> bool {
    PROBE_TRAPPED.load(SeqCst)
}

/// Gives the handler its backend. Call before [`State::Emulate`].
pub fn set_backend(backend: &'static dyn Backend) {
    let _ = BACKEND.set(backend);
}

/// The siginfo of a SIGSYS, as the kernel lays it out on x86_64.
#[repr(C)]
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: u64,
    syscall: i32,
    arch: u32,
}

/// The number, if this SIGSYS is one of our traps.
///
/// # Safety
/// `info` is null or the handler's siginfo from the kernel.
unsafe fn our_trap(info: *const libc::siginfo_t) -> Option<i64> {
    if info.is_null() {
        return None;
    }
    // SAFETY: the kernel's siginfo is 128 bytes; SigsysInfo covers its
    // first 32, laid out as the kernel's `_sigsys` member.
    let info = unsafe { &*info.cast::<SigsysInfo>() };
    let nr = i64::from(info.syscall);
    (info.signo == libc::SIGSYS
        && info.code == SYS_SECCOMP
        && info.arch == filter::AUDIT_ARCH_X86_64
        && filter::TRAPPED.contains(&nr)
        && info.errno as u32 == filter::TRAP_COOKIE)
        .then_some(nr)
}

/// The kernel's return value for a result.
fn raw_return(result: Result<i64, Errno>) -> i64 {
    match result {
        Ok(value) => value,
        Err(Errno(e)) => -i64::from(e),
    }
}

/// Carries out kvmng syscall `nr` with the raw register arguments, with the
/// kernel's truncation of each argument to its C type.
///
/// # Safety
/// The arguments are the program's: pointer arguments are handed to the
/// backend, which copies through them with EFAULT checks.
pub unsafe fn dispatch(backend: &dyn Backend, nr: i64, a: [u64; 6]) -> i64 {
    let Some(call) = Syscall::from_nr(nr) else {
        return -i64::from(libc::ENOSYS);
    };
    let result = match call {
        Syscall::CreateVm => backend.create_vm(a[0] as i32, a[1], a[2] as u32),
        Syscall::BindVm => backend.bind_vm(a[0] as i32, a[1] as u32),
        Syscall::CreateVcpu => backend.create_vcpu(a[0], a[1] as u32),
        Syscall::BindVcpu => backend.bind_vcpu(a[0] as i32, a[1] as u32),
        Syscall::Run => backend.run(a[0] as u32),
        // SAFETY: the backend reads and writes the program's memory with
        // process_vm_readv/writev: bad pointers give EFAULT.
        Syscall::VcpuState => unsafe {
            backend.vcpu_state(a[0] as *mut kvmng_state_entry, a[1] as u32, a[2] as u32)
        },
        Syscall::Irq => backend.irq(a[0] as u32, a[1] as u32, a[2] as u32, a[3] as u32),
        // SAFETY: as for VcpuState; the regions are the program's to map.
        Syscall::MemoryMap => unsafe {
            backend.memory_map(a[0] as *const _, a[1] as u32, a[2] as u32)
        },
        // SAFETY: the program vouches for `arg`, as with the ioctl.
        Syscall::Control => unsafe { backend.control(a[0] as u32, a[1] as u32, a[2], a[3] as u32) },
        // SAFETY: as for VcpuState: the region is read with EFAULT checks.
        Syscall::Ioregion => unsafe {
            backend.ioregion(a[0] as u32, a[1] as *const _, a[2] as u32)
        },
    };
    raw_return(result)
}

/// Answers one of our traps: the return value for RAX.
///
/// # Safety
/// As for [`dispatch`].
unsafe fn answer(nr: i64, args: [u64; 6]) -> i64 {
    let enosys = -i64::from(libc::ENOSYS);
    match state() {
        State::Probe => {
            PROBE_TRAPPED.store(true, SeqCst);
            enosys
        }
        State::Emulate => match BACKEND.get() {
            Some(backend) => {
                let backend: &dyn Backend = *backend;
                // SAFETY: forwarded; a panic is caught below and becomes an
                // error instead of unwinding out of the handler.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                    dispatch(backend, nr, args)
                }))
                .unwrap_or(-i64::from(libc::ENOTRECOVERABLE))
            }
            None => enosys,
        },
        State::Enosys | State::None => enosys,
    }
}

/// The SIGSYS handler (SA_SIGINFO | SA_NODEFER).
pub(crate) extern "C" fn on_sigsys(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: `info` is the kernel's siginfo for this signal.
    let Some(nr) = (unsafe { our_trap(info) }) else {
        // SAFETY: the kernel's arguments, passed on.
        unsafe { chain::forward(sig, info, ctx) };
        return;
    };
    TRAPPED_CALLS.fetch_add(1, Relaxed);
    if ctx.is_null() {
        return;
    }
    // SAFETY: __errno_location returns this thread's errno slot.
    let errno_slot = unsafe { libc::__errno_location() };
    // SAFETY: reading this thread's errno.
    let saved_errno = unsafe { *errno_slot };
    // SAFETY: for SA_SIGINFO handlers the third argument is the ucontext
    // the kernel saved on this thread's stack; sigreturn restores from it.
    let uc = unsafe { &mut *ctx.cast::<libc::ucontext_t>() };
    let g = &mut uc.uc_mcontext.gregs;
    let reg = |r: i32| g.get(r as usize).copied().unwrap_or(0) as u64;
    let args = [
        reg(libc::REG_RDI),
        reg(libc::REG_RSI),
        reg(libc::REG_RDX),
        reg(libc::REG_R10),
        reg(libc::REG_R8),
        reg(libc::REG_R9),
    ];
    // SAFETY: the arguments are the trapped syscall's.
    let ret = unsafe { answer(nr, args) };
    if let Some(rax) = g.get_mut(libc::REG_RAX as usize) {
        *rax = ret;
    }
    // SAFETY: restoring this thread's errno.
    unsafe { *errno_slot = saved_errno };
}
