//! The exported `ioctl`.
//!
//! `int ioctl(int fd, unsigned long request, ...)` is variadic in C; on
//! x86_64 its one optional argument arrives in the third argument register,
//! which is where a three-argument function finds it.
//!
//! The fast path: a request whose type field is not KVMIO (0xAE) goes to
//! the kernel as a raw syscall at once, touching no state of the shim. A
//! KVM request is offered to [`hot`] first, then to [`dispatch`].

use super::cabi::{abort_on_panic, c_ret, raw_ioctl};
use super::{dispatch, hot};
use core::ffi::{c_int, c_ulong, c_void};

/// The KVM ioctl type byte.
const KVMIO: c_ulong = 0xAE;

/// Interposed `ioctl`. `C-unwind`: an asynchronous `pthread_cancel` of a
/// thread blocked in KVM_RUN unwinds through this frame as through libc's
/// (a Rust panic aborts instead, see [`abort_on_panic`]).
///
/// # Safety
/// As ioctl(2): `arg` must be what `request` expects, or deliberately
/// invalid (the kernel, or the shim's checked copies, answer EFAULT).
#[no_mangle]
pub unsafe extern "C-unwind" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    if (request >> 8) & 0xff != KVMIO {
        // SAFETY: the caller's own arguments, handed to the kernel unchanged.
        return c_ret(unsafe { raw_ioctl(fd, request, arg as u64) });
    }
    // The kernel takes the request as a 32-bit number.
    let cmd = u64::from(request as u32);
    abort_on_panic(|| {
        // SAFETY: forwarded.
        match unsafe { hot::try_call(fd, cmd, arg as u64) } {
            Some(result) => c_ret(result),
            // SAFETY: forwarded.
            None => unsafe { dispatch::kvm_ioctl(fd, cmd, arg as u64) },
        }
    })
}
