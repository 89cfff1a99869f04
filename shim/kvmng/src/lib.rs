//! kvmng: KVM driven by system calls.
//!
//! One typed API over the kvmng calls of docs/api.md, with two backends
//! chosen at run time: [`backend::native::Native`] issues the syscalls of a
//! patched kernel; [`backend::legacy::Legacy`] carries them out with classic
//! KVM ioctls on any kernel, with the same semantics. [`select`] probes
//! which one the running kernel needs.

pub mod backend;
pub mod errno;
pub mod select;
pub mod state_kinds;
pub mod sys;

pub use backend::{Backend, BackendKind};
pub use errno::{Errno, SysResult};

pub mod exit;
pub mod ioregion;
pub mod memory;
pub mod state;
pub mod vcpu;
pub mod vm;

pub use exit::VcpuExit;
pub use ioregion::IoRegion;
pub use memory::GuestMemory;
pub use state::StateItem;
pub use vcpu::{BoundVcpu, Vcpu};
pub use vm::{Kvmng, MemoryRegion, OpenError, Vm};
