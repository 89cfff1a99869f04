//! `KVM_SET_SIGNAL_MASK` under the emulation: the mask reaches KVM with
//! the kick signal let through (so that a multi-slot memory map can always
//! hold the vCPU, see [`super::gate`]), and the program's own mask is
//! recorded in the binding of the thread bound to that vCPU, for the
//! waits of the I/O-region run loop (api.md 5.10, section 6).

use super::binding::{self, ThreadBinding};
use super::{fdkind, gate, usermem};
use crate::errno::SysResult;
use crate::sys::ioctl;
use kvmng_abi::ioctls::KVM_SET_SIGNAL_MASK;

/// `struct kvm_signal_mask` with the one length KVM accepts on x86_64.
#[derive(Clone, Copy, Default)]
#[repr(C, packed)]
struct SignalMask {
    len: u32,
    sigset: u64,
}

/// `KVM_SET_SIGNAL_MASK(arg)` on vCPU fd `fd`, whose binding (the calling
/// thread's) is `me` if the caller knows it. An argument KVM would refuse
/// (unreadable, a length other than 8) is passed on unchanged, so the
/// errno is KVM's own.
pub fn set(fd: i32, arg: u64, me: Option<&ThreadBinding>) -> SysResult {
    let program = (arg != 0)
        .then(|| usermem::read_value::<SignalMask>(arg).ok())
        .flatten()
        .filter(|m| m.len == 8);
    let result = match program {
        Some(m) => {
            let ours = SignalMask {
                len: 8,
                sigset: gate::kvm_mask_without_kick(m.sigset),
            };
            // SAFETY: the ioctl reads the mask from this frame.
            unsafe { ioctl(fd, KVM_SET_SIGNAL_MASK, &ours as *const SignalMask as u64) }
        }
        // SAFETY: the program's argument, which KVM checks.
        None => unsafe { ioctl(fd, KVM_SET_SIGNAL_MASK, arg) },
    };
    if let (Ok(_), Some(me)) = (result, me) {
        me.io.set_sigmask(program.map(|m| m.sigset));
    }
    result
}

/// `ioctl(fd, KVM_SET_SIGNAL_MASK, arg)` as a program issues it on any vCPU
/// fd (the preload shim sends every one here, bound or not): as [`set`],
/// recorded if the calling thread is bound to that vCPU.
pub fn set_on_fd(fd: i32, arg: u64) -> SysResult {
    let me = binding::current()
        .ok()
        .filter(|me| fdkind::same_file(me.fd.load(core::sync::atomic::Ordering::SeqCst), fd));
    set(fd, arg, me)
}
