//! The kinds of vCPU state a `kvmng_vcpu_state()` entry can carry: the
//! legacy struct, its minimum size and the legacy ioctls of each kind
//! (docs/api.md section 5.6).

use core::mem::size_of;
use kvm_bindings::*;
use kvmng_abi::ioctls::*;
use kvmng_abi::*;

/// One kind of vCPU state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateKind {
    /// `KVMNG_STATE_*`.
    pub kind: u32,
    /// Name for traces.
    pub name: &'static str,
    /// Smallest `size` accepted at validation.
    pub min_size: u32,
    /// The legacy GET ioctl.
    pub get: u64,
    /// The legacy SET ioctl.
    pub set: u64,
}

const fn kind(kind: u32, name: &'static str, min_size: usize, get: u64, set: u64) -> StateKind {
    StateKind {
        kind,
        name,
        min_size: min_size as u32,
        get,
        set,
    }
}

/// Every kind, indexed by `kind - 1`.
pub const KINDS: [StateKind; KVMNG_STATE_KIND_MAX as usize] = [
    kind(
        KVMNG_STATE_REGS,
        "regs",
        size_of::<kvm_regs>(),
        KVM_GET_REGS,
        KVM_SET_REGS,
    ),
    kind(
        KVMNG_STATE_SREGS,
        "sregs",
        size_of::<kvm_sregs>(),
        KVM_GET_SREGS,
        KVM_SET_SREGS,
    ),
    kind(
        KVMNG_STATE_SREGS2,
        "sregs2",
        size_of::<kvm_sregs2>(),
        KVM_GET_SREGS2,
        KVM_SET_SREGS2,
    ),
    kind(
        KVMNG_STATE_FPU,
        "fpu",
        size_of::<kvm_fpu>(),
        KVM_GET_FPU,
        KVM_SET_FPU,
    ),
    kind(
        KVMNG_STATE_XSAVE,
        "xsave",
        size_of::<kvm_xsave>(),
        KVM_GET_XSAVE,
        KVM_SET_XSAVE,
    ),
    kind(
        KVMNG_STATE_XSAVE2,
        "xsave2",
        size_of::<kvm_xsave>(),
        KVM_GET_XSAVE2,
        KVM_SET_XSAVE,
    ),
    kind(
        KVMNG_STATE_XCRS,
        "xcrs",
        size_of::<kvm_xcrs>(),
        KVM_GET_XCRS,
        KVM_SET_XCRS,
    ),
    kind(KVMNG_STATE_MSRS, "msrs", 8, KVM_GET_MSRS, KVM_SET_MSRS),
    kind(
        KVMNG_STATE_LAPIC,
        "lapic",
        size_of::<kvm_lapic_state>(),
        KVM_GET_LAPIC,
        KVM_SET_LAPIC,
    ),
    kind(
        KVMNG_STATE_EVENTS,
        "events",
        size_of::<kvm_vcpu_events>(),
        KVM_GET_VCPU_EVENTS,
        KVM_SET_VCPU_EVENTS,
    ),
    kind(
        KVMNG_STATE_MP_STATE,
        "mp_state",
        size_of::<kvm_mp_state>(),
        KVM_GET_MP_STATE,
        KVM_SET_MP_STATE,
    ),
    kind(
        KVMNG_STATE_DEBUGREGS,
        "debugregs",
        size_of::<kvm_debugregs>(),
        KVM_GET_DEBUGREGS,
        KVM_SET_DEBUGREGS,
    ),
    kind(
        KVMNG_STATE_CPUID,
        "cpuid",
        8,
        KVM_GET_CPUID2,
        KVM_SET_CPUID2,
    ),
    kind(
        KVMNG_STATE_ONE_REG,
        "one_reg",
        size_of::<kvm_one_reg>(),
        KVM_GET_ONE_REG,
        KVM_SET_ONE_REG,
    ),
];

/// The kind of an entry, if the entry passes validation: kind known, op
/// GET or SET, size at least the static minimum.
pub fn validate(entry: &kvmng_state_entry) -> Option<StateKind> {
    let k = *KINDS.get((entry.kind as usize).checked_sub(1)?)?;
    let op_ok = entry.op == KVMNG_STATE_GET || entry.op == KVMNG_STATE_SET;
    (op_ok && entry.size >= k.min_size).then_some(k)
}

/// The kind for a legacy state ioctl, with its op: the translation the
/// shim makes.
pub fn for_ioctl(cmd: u64) -> Option<(StateKind, u32)> {
    KINDS.iter().find_map(|k| {
        if k.get == cmd {
            Some((*k, KVMNG_STATE_GET))
        } else if k.set == cmd && k.kind != KVMNG_STATE_XSAVE2 {
            Some((*k, KVMNG_STATE_SET))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_indexed_by_their_number_and_map_back_from_ioctls() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(k.kind as usize, i + 1, "{}", k.name);
            let (got, op) = for_ioctl(k.get).unwrap();
            assert_eq!((got.kind, op), (k.kind, KVMNG_STATE_GET));
        }
        assert_eq!(for_ioctl(KVM_SET_XSAVE).unwrap().0.kind, KVMNG_STATE_XSAVE);
        assert_eq!(for_ioctl(KVM_RUN), None);
    }

    #[test]
    fn validation_checks_kind_op_and_size() {
        let good = kvmng_state_entry {
            kind: KVMNG_STATE_REGS,
            op: KVMNG_STATE_GET,
            size: 144,
            ..Default::default()
        };
        assert!(validate(&good).is_some());
        assert!(validate(&kvmng_state_entry { kind: 0, ..good }).is_none());
        assert!(validate(&kvmng_state_entry {
            kind: KVMNG_STATE_KIND_MAX + 1,
            ..good
        })
        .is_none());
        assert!(validate(&kvmng_state_entry { op: 0, ..good }).is_none());
        assert!(validate(&kvmng_state_entry { op: 3, ..good }).is_none());
        assert!(validate(&kvmng_state_entry { size: 143, ..good }).is_none());
        assert!(validate(&kvmng_state_entry { size: 4096, ..good }).is_some());
    }

    #[test]
    fn minimum_sizes_match_the_spec_table() {
        let sizes: Vec<u32> = KINDS.iter().map(|k| k.min_size).collect();
        assert_eq!(
            sizes,
            [144, 312, 320, 416, 4096, 4096, 392, 8, 1024, 64, 4, 128, 8, 16]
        );
    }
}
