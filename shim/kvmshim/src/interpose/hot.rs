//! The hot-call path: the calls a VMM makes per exit
//! (KVM_RUN, the state ioctls of a register sync on the calling thread's
//! vCPU, the MSR ones through [`try_msrs`],
//! KVM_CHECK_EXTENSION and KVM_IRQ_LINE on the bound VM), carried out with
//! one load of the fd table, one of the thread's binding and a table
//! look-up of the request, instead of the general path's classification,
//! mapping table look-up and census.
//!
//! It answers only what the general path ([`super::dispatch`]) would answer
//! the same way, with the same kvmng call: the fd's cached entry already
//! says vCPU of the bound VM held by this thread (or the bound VM), no
//! census or trace is kept, and the mode translates. Anything else —
//! unknown fds, another thread's vCPU, the first KVM_RUN that binds, a
//! census on — returns `None` and takes the general path. A unit test
//! checks that each request here has, in the mapping table, the form it
//! is given here.
//!
//! KVM_CHECK_EXTENSION and KVM_IRQ_LINE are `kvmng_control(KVMNG_SCOPE_VM,
//! cmd, arg)`: the argument is handed on, so KVM_IRQ_LINE's struct is read
//! (and a bad pointer answered with EFAULT) by the ioctl itself, in the
//! kernel or in the emulation's ioctl.

use super::binding;
use super::cabi::raw_ioctl;
use super::config::{self, Hot};
use super::fdtable::{self, Kind};
use super::translate;
use kvmng::backend::native::Native;
use kvmng::{Backend, Errno, SysResult};
use kvmng_abi::ioctls::*;
use kvmng_abi::*;

/// The kvmng form of a hot vCPU ioctl: `kvmng_run`, or one state entry of
/// a size that does not depend on the caller's buffer
/// ([`translate::fixed_state_size`]: CPUID, whose size does, is not here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VcpuHot {
    Run,
    State { kind: u32, op: u32, size: u32 },
}

/// One request of [`VCPU_HOT`]: the full request number, and the state
/// entry's kind (0: KVM_RUN), op and size.
#[derive(Clone, Copy)]
struct HotRow {
    cmd: u32,
    kind: u8,
    op: u8,
    /// The entry's size, sign-extended: [`translate::UNBOUNDED`] is -1
    /// (the fixed sizes are below 2^15), so that a row stays 8 bytes.
    size: i16,
}

impl HotRow {
    /// A free row. Its `cmd` is KVM_RUN's number byte alone, whose row is
    /// KVM_RUN's (checked when the table is built): a request that equals
    /// it is looked up there, so no request matches a free row.
    const NONE: HotRow = HotRow {
        cmd: ioc_nr(KVM_RUN) as u32,
        kind: 0,
        op: 0,
        size: 0,
    };
}

/// The hot vCPU requests and their state kinds (`(cmd, kind, op)`; kind 0
/// is KVM_RUN): KVM_RUN and the state ioctls of a register sync (QEMU's
/// runtime put and get: REGS, SREGS or SREGS2, XSAVE or XSAVE2, XCRS,
/// EVENTS, MP_STATE, LAPIC, DEBUGREGS; FPU for the VMMs that use it).
/// KVM_GET_MSRS and KVM_SET_MSRS are hot too, but not in this table: an
/// MSR entry's `EINVAL` calls for the general path's fallback
/// (`state_result` in translate.rs), and deciding that after the syscall
/// here kept three more registers across it on every hot call (about 16
/// instructions per call in the `make vm-bench` guest). Two other ways
/// were measured and cost every hot call too: the MSR rows in this table
/// with a form of their own, carried out by a function of theirs that
/// [`call`] calls (9 to 12 instructions), and [`call`] calling out for
/// them only when this table has no row (3). The general path tries
/// [`try_msrs`] first, when [`try_call`] has answered `None`: the table's
/// calls are unchanged.
const VCPU_HOT_LIST: [(u64, u32, u32); 22] = {
    const G: u32 = KVMNG_STATE_GET;
    const S: u32 = KVMNG_STATE_SET;
    [
        (KVM_RUN, 0, 0),
        (KVM_GET_REGS, KVMNG_STATE_REGS, G),
        (KVM_SET_REGS, KVMNG_STATE_REGS, S),
        (KVM_GET_SREGS, KVMNG_STATE_SREGS, G),
        (KVM_SET_SREGS, KVMNG_STATE_SREGS, S),
        (KVM_GET_SREGS2, KVMNG_STATE_SREGS2, G),
        (KVM_SET_SREGS2, KVMNG_STATE_SREGS2, S),
        (KVM_GET_XSAVE, KVMNG_STATE_XSAVE, G),
        (KVM_GET_XSAVE2, KVMNG_STATE_XSAVE2, G),
        (KVM_SET_XSAVE, KVMNG_STATE_XSAVE, S),
        (KVM_GET_FPU, KVMNG_STATE_FPU, G),
        (KVM_SET_FPU, KVMNG_STATE_FPU, S),
        (KVM_GET_LAPIC, KVMNG_STATE_LAPIC, G),
        (KVM_SET_LAPIC, KVMNG_STATE_LAPIC, S),
        (KVM_GET_MP_STATE, KVMNG_STATE_MP_STATE, G),
        (KVM_SET_MP_STATE, KVMNG_STATE_MP_STATE, S),
        (KVM_GET_VCPU_EVENTS, KVMNG_STATE_EVENTS, G),
        (KVM_SET_VCPU_EVENTS, KVMNG_STATE_EVENTS, S),
        (KVM_GET_DEBUGREGS, KVMNG_STATE_DEBUGREGS, G),
        (KVM_SET_DEBUGREGS, KVMNG_STATE_DEBUGREGS, S),
        (KVM_GET_XCRS, KVMNG_STATE_XCRS, G),
        (KVM_SET_XCRS, KVMNG_STATE_XCRS, S),
    ]
};

/// [`VCPU_HOT_LIST`] indexed by the request's number byte (`_IOC_NR`):
/// the hot requests have distinct numbers (checked here, at compile time),
/// so a look-up is one load and one compare of the full request.
static VCPU_HOT: [HotRow; 256] = {
    let mut table = [HotRow::NONE; 256];
    let mut i = 0;
    while i < VCPU_HOT_LIST.len() {
        let (cmd, kind, op) = VCPU_HOT_LIST[i];
        let nr = ioc_nr(cmd) as usize;
        assert!(
            table[nr].cmd == HotRow::NONE.cmd,
            "two hot requests share a number"
        );
        assert!(cmd <= u32::MAX as u64 && kind <= u8::MAX as u32 && op <= u8::MAX as u32);
        let size = match translate::fixed_state_size(kind, op, cmd) {
            Some(size) => size,
            None => panic!("a hot state request whose size depends on its buffer"),
        };
        assert!(size == translate::UNBOUNDED || size < 1 << 15);
        table[nr] = HotRow {
            cmd: cmd as u32,
            kind: kind as u8,
            op: op as u8,
            size: size as i16,
        };
        i += 1;
    }
    assert!(table[HotRow::NONE.cmd as usize].cmd == KVM_RUN as u32);
    table
};

/// The hot vCPU requests and their forms.
#[inline]
pub(crate) fn vcpu_form(cmd: u64) -> Option<VcpuHot> {
    let row = VCPU_HOT[ioc_nr(cmd) as usize];
    if u64::from(row.cmd) != cmd {
        return None;
    }
    Some(match row.kind {
        0 => VcpuHot::Run,
        kind => VcpuHot::State {
            kind: u32::from(kind),
            op: u32::from(row.op),
            size: row.size as i32 as u32,
        },
    })
}

/// Carries out `cmd` when it is one of the hot calls and this path
/// answers as the general path would; `None` otherwise (nothing was done).
///
/// # Safety
/// `arg` is the caller's ioctl argument.
#[inline]
pub unsafe fn try_call(fd: i32, cmd: u64, arg: u64) -> Option<SysResult> {
    match config::hot() {
        // The native backend's methods are one syscall each: called
        // directly, they are inlined here.
        // SAFETY: forwarded.
        Hot::Native => unsafe { call(fd, cmd, arg, &Native) },
        // SAFETY: forwarded.
        Hot::Other => unsafe { call(fd, cmd, arg, config::chosen_backend()?) },
        Hot::Off => None,
    }
}

/// [`try_call`] on `backend`.
///
/// # Safety
/// As [`try_call`].
#[inline(always)]
unsafe fn call<B: Backend + ?Sized>(fd: i32, cmd: u64, arg: u64, backend: &B) -> Option<SysResult> {
    let entry = fdtable::get(fd);
    let translated = match entry.kind() {
        Kind::Vcpu => {
            let form = vcpu_form(cmd)?;
            if !binding::holds(entry) {
                return None;
            }
            // SAFETY: forwarded.
            unsafe { vcpu(form, arg, backend) }
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

/// KVM_GET_MSRS or KVM_SET_MSRS on a vCPU the calling thread holds, when
/// the hot path is on (as [`try_call`]): one unbounded MSR entry, as the
/// general path makes it; `None` for any other request or fd, and nothing
/// done. The entry's `EINVAL` can only be the call's check of `nmsrs`
/// against the size (2^28 MSRs or more), made before anything was done:
/// the ioctl goes to the kernel unchanged, which answers `E2BIG`, as on
/// the general path (whose fallback would record why, but the hot path is
/// off whenever a census or trace is kept).
///
/// # Safety
/// As [`try_call`].
#[inline(never)]
pub unsafe fn try_msrs(fd: i32, cmd: u64, arg: u64) -> Option<SysResult> {
    let op = match cmd {
        KVM_GET_MSRS => KVMNG_STATE_GET,
        KVM_SET_MSRS => KVMNG_STATE_SET,
        _ => return None,
    };
    match config::hot() {
        // SAFETY: forwarded.
        Hot::Native => unsafe { msrs(fd, cmd, arg, op, &Native) },
        // SAFETY: forwarded.
        Hot::Other => unsafe { msrs(fd, cmd, arg, op, config::chosen_backend()?) },
        Hot::Off => None,
    }
}

/// [`try_msrs`] on `backend`, for `op`.
///
/// # Safety
/// As [`try_call`].
#[inline(always)]
unsafe fn msrs<B: Backend + ?Sized>(
    fd: i32,
    cmd: u64,
    arg: u64,
    op: u32,
    backend: &B,
) -> Option<SysResult> {
    let entry = fdtable::get(fd);
    if entry.kind() != Kind::Vcpu || !binding::holds(entry) {
        return None;
    }
    // SAFETY: the caller's argument, read and written by the kernel (or
    // the emulation's ioctl) as the ioctl would.
    let r =
        unsafe { translate::state_entry(KVMNG_STATE_MSRS, op, arg, translate::UNBOUNDED, backend) };
    if r == Err(Errno(libc::EINVAL)) {
        // SAFETY: the caller's own arguments, passed on (the general
        // path's fallback for `entry count too large`).
        return Some(unsafe { raw_ioctl(fd, cmd, arg) });
    }
    Some(match translate::settle(r) {
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
#[inline(always)]
unsafe fn vcpu<B: Backend + ?Sized>(form: VcpuHot, arg: u64, backend: &B) -> SysResult {
    match form {
        // KVM_RUN takes no argument: the ioctl refuses one with EINVAL.
        VcpuHot::Run if arg != 0 => Err(Errno(libc::EINVAL)),
        VcpuHot::Run => backend.run(0),
        // SAFETY: the caller's argument, read and written by the kernel
        // (or the emulation's ioctl) as the ioctl would, EFAULT when it is
        // not the caller's.
        VcpuHot::State { kind, op, size } => unsafe {
            translate::state_entry(kind, op, arg, size, backend)
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
                (VcpuHot::State { kind, op, size }, NewApiForm::VcpuState { kind: k, op: o }) => {
                    assert_eq!((kind, op), (k, o), "{}", info.name);
                    // The entry's size is the general path's: the ioctl's
                    // size field, or unbounded for the MSR and XSAVE kinds
                    // the kernel sizes itself.
                    let expected = if kind == KVMNG_STATE_MSRS
                        || (kind, op) == (KVMNG_STATE_XSAVE2, KVMNG_STATE_GET)
                        || (kind, op) == (KVMNG_STATE_XSAVE, KVMNG_STATE_SET)
                    {
                        u64::from(translate::UNBOUNDED)
                    } else {
                        ioc_size(info.cmd)
                    };
                    assert_eq!(u64::from(size), expected, "{}", info.name);
                    assert_ne!(kind, KVMNG_STATE_CPUID, "{}", info.name);
                }
                other => panic!("{}: {other:?}", info.name),
            }
        }
        assert_eq!(hot, VCPU_HOT_LIST.len());
        // The MSR requests, hot through `try_msrs`: the general path's form,
        // with the unbounded size.
        for cmd in [KVM_GET_MSRS, KVM_SET_MSRS] {
            assert_eq!(vcpu_form(cmd), None);
            let row = cmdindex::find(cmd, FdClass::Vcpu).unwrap();
            let op = if cmd == KVM_GET_MSRS {
                KVMNG_STATE_GET
            } else {
                KVMNG_STATE_SET
            };
            assert_eq!(
                KVM_IOCTLS[row].form_on(FdClass::Vcpu),
                NewApiForm::VcpuState {
                    kind: KVMNG_STATE_MSRS,
                    op
                }
            );
            assert_eq!(
                translate::fixed_state_size(KVMNG_STATE_MSRS, op, cmd),
                Some(translate::UNBOUNDED)
            );
        }
        for cmd in [KVM_CHECK_EXTENSION, KVM_IRQ_LINE] {
            let row = cmdindex::find(cmd, FdClass::Vm).unwrap();
            assert_eq!(KVM_IOCTLS[row].form_on(FdClass::Vm), NewApiForm::Control);
        }
        assert_eq!(vcpu_form(KVM_SET_SIGNAL_MASK), None);
        // A request with a hot number byte but another size or direction
        // is not hot.
        assert_eq!(vcpu_form(KVM_GET_REGS ^ (1 << 16)), None);
        assert_eq!(vcpu_form(ioc_nr(KVM_GET_REGS)), None);
        for cmd in [0, HotRow::NONE.cmd.into(), 0xffff_ffff, 0xae00, 0xaeff] {
            assert_eq!(vcpu_form(cmd), None, "{cmd:#x}");
        }
    }
}
