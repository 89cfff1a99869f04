//! The native backend: the kvmng syscalls of a patched kernel.

use super::{Backend, BackendKind};
use crate::errno::SysResult;
use crate::sys::kvmng;
use kvm_bindings::kvm_userspace_memory_region2;
use kvmng_abi::{kvmng_ioregion, kvmng_state_entry, Syscall};

/// Issues the kvmng syscalls. Stateless: the kernel holds the bindings.
#[derive(Debug, Default, Clone, Copy)]
pub struct Native;

impl Backend for Native {
    fn kind(&self) -> BackendKind {
        BackendKind::Native
    }

    fn create_vm(&self, kvm_fd: i32, vm_type: u64, flags: u32) -> SysResult {
        // SAFETY: integer arguments only.
        unsafe { kvmng(Syscall::CreateVm, kvm_fd as u64, vm_type, flags as u64, 0) }
    }

    fn bind_vm(&self, vm_fd: i32, flags: u32) -> SysResult {
        // SAFETY: integer arguments only.
        unsafe { kvmng(Syscall::BindVm, vm_fd as u64, flags as u64, 0, 0) }
    }

    fn create_vcpu(&self, id: u64, flags: u32) -> SysResult {
        // SAFETY: integer arguments only.
        unsafe { kvmng(Syscall::CreateVcpu, id, flags as u64, 0, 0) }
    }

    fn bind_vcpu(&self, vcpu_fd: i32, flags: u32) -> SysResult {
        // SAFETY: integer arguments only.
        unsafe { kvmng(Syscall::BindVcpu, vcpu_fd as u64, flags as u64, 0, 0) }
    }

    #[inline]
    fn run(&self, flags: u32) -> SysResult {
        // SAFETY: integer argument only; the kernel writes the kvm_run page
        // the caller mapped.
        unsafe { kvmng(Syscall::Run, flags as u64, 0, 0, 0) }
    }

    #[inline]
    unsafe fn vcpu_state(
        &self,
        entries: *mut kvmng_state_entry,
        count: u32,
        flags: u32,
    ) -> SysResult {
        // SAFETY: the caller vouches for `entries` and the buffers.
        unsafe {
            kvmng(
                Syscall::VcpuState,
                entries as u64,
                count as u64,
                flags as u64,
                0,
            )
        }
    }

    #[inline]
    fn irq(&self, kind: u32, nr: u32, level: u32, flags: u32) -> SysResult {
        // SAFETY: integer arguments only.
        unsafe {
            kvmng(
                Syscall::Irq,
                kind as u64,
                nr as u64,
                level as u64,
                flags as u64,
            )
        }
    }

    #[inline]
    unsafe fn memory_map(
        &self,
        regions: *const kvm_userspace_memory_region2,
        count: u32,
        flags: u32,
    ) -> SysResult {
        // SAFETY: the caller vouches for `regions`.
        unsafe {
            kvmng(
                Syscall::MemoryMap,
                regions as u64,
                count as u64,
                flags as u64,
                0,
            )
        }
    }

    #[inline]
    unsafe fn control(&self, scope: u32, cmd: u32, arg: u64, flags: u32) -> SysResult {
        // SAFETY: the caller vouches for `arg`.
        unsafe {
            kvmng(
                Syscall::Control,
                scope as u64,
                cmd as u64,
                arg,
                flags as u64,
            )
        }
    }

    unsafe fn ioregion(&self, op: u32, region: *const kvmng_ioregion, flags: u32) -> SysResult {
        // SAFETY: the caller vouches for `region`.
        unsafe { kvmng(Syscall::Ioregion, op as u64, region as u64, flags as u64, 0) }
    }
}
