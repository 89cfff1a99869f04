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
