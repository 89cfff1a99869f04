//! The hot-call path: the calls a VMM makes per exit
//! (KVM_RUN, the fixed-size register ioctls on the calling thread's vCPU,
//! KVM_CHECK_EXTENSION and KVM_IRQ_LINE on the bound VM), carried out with
//! one load of the fd table, one of the thread's binding and a `match` on
//! the request, instead of the general path's classification, mapping
//! table look-up and census.
//!
//! KVM_CHECK_EXTENSION and KVM_IRQ_LINE are `kvmng_control(KVMNG_SCOPE_VM,
//! cmd, arg)`: the argument is handed on, so KVM_IRQ_LINE's struct is read
//! (and a bad pointer answered with EFAULT) by the ioctl itself, in the
//! kernel or in the emulation's ioctl.
//!
//! It answers only what the general path ([`super::dispatch`]) would answer
//! the same way, with the same kvmng call: the fd's cached entry already
//! says vCPU of the bound VM held by this thread (or the bound VM), no
//! census or trace is kept, and the mode translates. Anything else —
//! unknown fds, another thread's vCPU, the first KVM_RUN that binds, a
//! census on — returns `None` and takes the general path. A unit test
//! checks that each request here has, in the mapping table, the form it
//! is given here.

use super::binding;
use super::cabi::raw_ioctl;
use super::config;
use super::fdtable::{self, Kind};
use super::translate::{self, state_entry};
use kvmng::{Backend, Errno, SysResult};
use kvmng_abi::ioctls::*;
use kvmng_abi::*;

/// The kvmng form of a hot vCPU ioctl: `kvmng_run`, or one state entry of
/// a fixed size (the ioctl's size field: the kinds whose size the general
/// path computes otherwise are not here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VcpuHot {
    Run,
    State { kind: u32, op: u32 },
}

/// The hot vCPU requests and their forms.
#[inline]
pub(crate) const fn vcpu_form(cmd: u64) -> Option<VcpuHot> {
    const G: u32 = KVMNG_STATE_GET;
    const S: u32 = KVMNG_STATE_SET;
    let (kind, op) = match cmd {
        KVM_RUN => return Some(VcpuHot::Run),
        KVM_GET_REGS => (KVMNG_STATE_REGS, G),
        KVM_SET_REGS => (KVMNG_STATE_REGS, S),
        KVM_GET_SREGS => (KVMNG_STATE_SREGS, G),
        KVM_SET_SREGS => (KVMNG_STATE_SREGS, S),
        KVM_GET_FPU => (KVMNG_STATE_FPU, G),
        KVM_SET_FPU => (KVMNG_STATE_FPU, S),
        KVM_GET_LAPIC => (KVMNG_STATE_LAPIC, G),
        KVM_SET_LAPIC => (KVMNG_STATE_LAPIC, S),
        KVM_GET_MP_STATE => (KVMNG_STATE_MP_STATE, G),
        KVM_SET_MP_STATE => (KVMNG_STATE_MP_STATE, S),
        KVM_GET_VCPU_EVENTS => (KVMNG_STATE_EVENTS, G),
        KVM_SET_VCPU_EVENTS => (KVMNG_STATE_EVENTS, S),
        KVM_GET_DEBUGREGS => (KVMNG_STATE_DEBUGREGS, G),
        KVM_SET_DEBUGREGS => (KVMNG_STATE_DEBUGREGS, S),
        KVM_GET_XCRS => (KVMNG_STATE_XCRS, G),
        KVM_SET_XCRS => (KVMNG_STATE_XCRS, S),
        _ => return None,
    };
    Some(VcpuHot::State { kind, op })
}

/// Carries out `cmd` when it is one of the hot calls and this path
/// answers as the general path would; `None` otherwise (nothing was done).
///
/// # Safety
/// `arg` is the caller's ioctl argument.
#[inline]
pub unsafe fn try_call(fd: i32, cmd: u64, arg: u64) -> Option<SysResult> {
    let backend = config::fast_backend()?;
    let entry = fdtable::get(fd);
    let translated = match entry.kind() {
        Kind::Vcpu => {
            let form = vcpu_form(cmd)?;
            if !binding::holds(entry) {
                return None;
            }
            // SAFETY: forwarded.
            unsafe { vcpu(form, cmd, arg, backend) }
        }
        Kind::Vm if binding::of_bound_vm(entry) => match cmd {
            // SAFETY: KVM_CHECK_EXTENSION takes an integer; KVM_IRQ_LINE's
            // struct is read by the ioctl, which answers EFAULT for a bad
            // pointer.
            KVM_CHECK_EXTENSION | KVM_IRQ_LINE => unsafe {
                backend.control(KVMNG_SCOPE_VM, cmd as u32, arg, 0)
            },
            _ => return None,
        },
        _ => return None,
    };
    Some(match translate::settle(translated) {
        Ok(result) => result,
        // SAFETY: the caller's own arguments, passed on (the general path's
        // fallback for a lost binding).
        Err(_) => unsafe { raw_ioctl(fd, cmd, arg) },
    })
}

/// A hot call on the calling thread's vCPU.
///
/// # Safety
/// As [`try_call`].
#[inline]
unsafe fn vcpu(form: VcpuHot, cmd: u64, arg: u64, backend: &dyn Backend) -> SysResult {
    match form {
        // KVM_RUN takes no argument: the ioctl refuses one with EINVAL.
        VcpuHot::Run if arg != 0 => Err(Errno(libc::EINVAL)),
        VcpuHot::Run => backend.run(0),
        // SAFETY: forwarded; the size is the ioctl's own (fits in 14 bits).
        VcpuHot::State { kind, op } => unsafe {
            state_entry(kind, op, arg, ioc_size(cmd) as u32, backend)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpose::cmdindex;

    #[test]
    fn the_forms_are_the_mapping_tables() {
        let mut hot = 0;
        for info in KVM_IOCTLS {
            let Some(fast) = vcpu_form(info.cmd) else {
                continue;
            };
            hot += 1;
            let row = cmdindex::find(info.cmd, FdClass::Vcpu).expect("a vCPU ioctl");
            let form = KVM_IOCTLS[row].form_on(FdClass::Vcpu);
            match (fast, form) {
                (VcpuHot::Run, NewApiForm::Run) => {}
                (VcpuHot::State { kind, op }, NewApiForm::VcpuState { kind: k, op: o }) => {
                    assert_eq!((kind, op), (k, o), "{}", info.name);
                    // Not a kind whose entry size is computed.
                    assert!(![
                        KVMNG_STATE_MSRS,
                        KVMNG_STATE_CPUID,
                        KVMNG_STATE_XSAVE,
                        KVMNG_STATE_XSAVE2
                    ]
                    .contains(&kind));
                }
                other => panic!("{}: {other:?}", info.name),
            }
        }
        assert_eq!(hot, 17);
        for cmd in [KVM_CHECK_EXTENSION, KVM_IRQ_LINE] {
            let row = cmdindex::find(cmd, FdClass::Vm).unwrap();
            assert_eq!(KVM_IOCTLS[row].form_on(FdClass::Vm), NewApiForm::Control);
        }
        assert_eq!(vcpu_form(KVM_SET_SIGNAL_MASK), None);
    }
}
