//! Typed items of a `kvmng_vcpu_state()` batch.

use crate::backend::Backend;
use crate::errno::Errno;
use kvm_bindings::*;
use kvmng_abi::*;

/// One piece of vCPU state, borrowed for a batched get or set.
pub enum StateItem<'a> {
    /// `struct kvm_regs`.
    Regs(&'a mut kvm_regs),
    /// `struct kvm_sregs`.
    Sregs(&'a mut kvm_sregs),
    /// `struct kvm_sregs2`.
    Sregs2(&'a mut kvm_sregs2),
    /// `struct kvm_fpu`.
    Fpu(&'a mut kvm_fpu),
    /// `struct kvm_xsave` (4096 bytes).
    Xsave(&'a mut kvm_xsave),
    /// `struct kvm_xcrs`.
    Xcrs(&'a mut kvm_xcrs),
    /// `struct kvm_msrs` with entries.
    Msrs(&'a mut Msrs),
    /// `struct kvm_lapic_state`.
    Lapic(&'a mut kvm_lapic_state),
    /// `struct kvm_vcpu_events`.
    Events(&'a mut kvm_vcpu_events),
    /// `struct kvm_mp_state`.
    MpState(&'a mut kvm_mp_state),
    /// `struct kvm_debugregs`.
    Debugregs(&'a mut kvm_debugregs),
    /// `struct kvm_cpuid2` with entries.
    Cpuid(&'a mut CpuId),
    /// `struct kvm_one_reg`.
    OneReg(&'a mut kvm_one_reg),
}

fn addr_of<T>(value: &mut T) -> u64 {
    value as *mut T as u64
}

impl StateItem<'_> {
    /// (kind, address, size) of the item's buffer.
    pub fn raw(&mut self) -> (u32, u64, u32) {
        fn sized<T>(kind: u32, v: &mut T) -> (u32, u64, u32) {
            (kind, addr_of(v), core::mem::size_of::<T>() as u32)
        }
        match self {
            StateItem::Regs(v) => sized(KVMNG_STATE_REGS, *v),
            StateItem::Sregs(v) => sized(KVMNG_STATE_SREGS, *v),
            StateItem::Sregs2(v) => sized(KVMNG_STATE_SREGS2, *v),
            StateItem::Fpu(v) => sized(KVMNG_STATE_FPU, *v),
            StateItem::Xsave(v) => sized(KVMNG_STATE_XSAVE, *v),
            StateItem::Xcrs(v) => sized(KVMNG_STATE_XCRS, *v),
            StateItem::Lapic(v) => sized(KVMNG_STATE_LAPIC, *v),
            StateItem::Events(v) => sized(KVMNG_STATE_EVENTS, *v),
            StateItem::MpState(v) => sized(KVMNG_STATE_MP_STATE, *v),
            StateItem::Debugregs(v) => sized(KVMNG_STATE_DEBUGREGS, *v),
            StateItem::OneReg(v) => sized(KVMNG_STATE_ONE_REG, *v),
            StateItem::Msrs(v) => {
                let size = 8 + 16 * v.as_slice().len();
                (
                    KVMNG_STATE_MSRS,
                    v.as_mut_fam_struct_ptr() as u64,
                    size as u32,
                )
            }
            StateItem::Cpuid(v) => {
                let size = 8 + 40 * v.as_slice().len();
                (
                    KVMNG_STATE_CPUID,
                    v.as_mut_fam_struct_ptr() as u64,
                    size as u32,
                )
            }
        }
    }
}

/// Runs one batch with `op` for every item; the per-item results, or the
/// index of the failing item and its errno.
pub fn execute(
    backend: &dyn Backend,
    op: u32,
    items: &mut [StateItem<'_>],
) -> Result<Vec<i32>, (usize, Errno)> {
    let mut entries: Vec<kvmng_state_entry> = items
        .iter_mut()
        .map(|item| {
            let (kind, addr, size) = item.raw();
            kvmng_state_entry {
                kind,
                op,
                addr,
                size,
                result: 0,
            }
        })
        .collect();
    // SAFETY: every item buffer is live and exclusively borrowed for the
    // call, and none is inside `entries`.
    match unsafe { backend.vcpu_state_entries(&mut entries, 0) } {
        Ok(_) => Ok(entries.iter().map(|e| e.result).collect()),
        Err(errno) => {
            let index = entries
                .iter()
                .position(|e| e.result < 0 && e.result != KVMNG_STATE_NOT_DONE);
            Err((index.unwrap_or(0), errno))
        }
    }
}
