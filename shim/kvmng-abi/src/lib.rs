//! The kvmng ABI, mirrored from the uapi header
//! `kernel-patch/include/uapi/linux/kvmng.h`, which is the one source of
//! truth: `tests/c_header_agreement.rs` compiles a C program against that
//! header and checks every number, size, offset and constant here.
//!
//! The legacy KVM structs come from `kvm-bindings`; the legacy ioctl numbers
//! live in [`ioctls`].

pub mod ioctls;
pub mod syscalls;
pub mod uapi;

pub use kvm_bindings;
pub use syscalls::Syscall;
pub use uapi::*;

/// The vCPU state kinds of docs/api.md 5.6, by their kvmng.h names, in the
/// order of their numbers (1 to `KVMNG_STATE_KIND_MAX`): for the programs
/// that go through every kind (the fuzzer, the header agreement test).
pub const STATE_KINDS: [(&str, u32); KVMNG_STATE_KIND_MAX as usize] = [
    ("KVMNG_STATE_REGS", KVMNG_STATE_REGS),
    ("KVMNG_STATE_SREGS", KVMNG_STATE_SREGS),
    ("KVMNG_STATE_SREGS2", KVMNG_STATE_SREGS2),
    ("KVMNG_STATE_FPU", KVMNG_STATE_FPU),
    ("KVMNG_STATE_XSAVE", KVMNG_STATE_XSAVE),
    ("KVMNG_STATE_XSAVE2", KVMNG_STATE_XSAVE2),
    ("KVMNG_STATE_XCRS", KVMNG_STATE_XCRS),
    ("KVMNG_STATE_MSRS", KVMNG_STATE_MSRS),
    ("KVMNG_STATE_LAPIC", KVMNG_STATE_LAPIC),
    ("KVMNG_STATE_EVENTS", KVMNG_STATE_EVENTS),
    ("KVMNG_STATE_MP_STATE", KVMNG_STATE_MP_STATE),
    ("KVMNG_STATE_DEBUGREGS", KVMNG_STATE_DEBUGREGS),
    ("KVMNG_STATE_CPUID", KVMNG_STATE_CPUID),
    ("KVMNG_STATE_ONE_REG", KVMNG_STATE_ONE_REG),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_kinds_are_every_kind_in_order() {
        for (i, (_, kind)) in STATE_KINDS.iter().enumerate() {
            assert_eq!(*kind as usize, i + 1);
        }
    }
}
