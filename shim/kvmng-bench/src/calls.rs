//! How each path asks KVM: the calls a sample times.
//!
//! Two shapes of API cover the five paths: [`Api::Ioctl`] issues legacy
//! ioctls (as a raw syscall for the `ioctl` path, through glibc's
//! `ioctl()` for the `shim` path, where libkvmshim.so interposes it), and
//! [`Api::Kvmng`] calls a [`Backend`] of the kvmng library (the legacy
//! backend for `legacy`, the native one, i.e. the kvmng syscall
//! instruction, for `trap` and `native`). Everything else a fixture does
//! goes through kvm-ioctls ([`crate::fixture`]).

use crate::ops::{Op, PathKind};
use kvm_bindings::*;
use kvmng::{Backend, BackendKind, Errno};
use kvmng_abi::ioctls::*;
use kvmng_abi::*;

/// `KVM_CAP_USER_MEMORY`: the capability check-extension asks for.
const KVM_CAP_USER_MEMORY: u64 = 3;
/// `_IO(KVMIO, 0xff)`: no KVM ioctl has this number.
const UNKNOWN_VCPU_IOCTL: u64 = 0xae_ff;

/// How a path asks KVM.
#[derive(Clone, Copy)]
pub enum Api {
    /// Legacy ioctls: raw syscalls, or glibc's `ioctl()` (`glibc`).
    Ioctl {
        /// Through glibc (the shim path).
        glibc: bool,
    },
    /// kvmng calls through a backend.
    Kvmng(&'static dyn Backend),
}

impl Api {
    /// The API a path uses.
    pub fn of(path: PathKind) -> Api {
        match path {
            PathKind::Ioctl => Api::Ioctl { glibc: false },
            PathKind::Shim => Api::Ioctl { glibc: true },
            PathKind::Legacy => Api::Kvmng(kvmng::select::backend(BackendKind::Legacy)),
            PathKind::Trap | PathKind::Native => {
                Api::Kvmng(kvmng::select::backend(BackendKind::Native))
            }
        }
    }

    /// `ioctl(fd, cmd, arg)` the way this API issues ioctls (raw for the
    /// kvmng APIs, which use it for set-up only).
    ///
    /// # Safety
    /// `arg` must be what `cmd` expects.
    #[inline]
    pub(crate) unsafe fn ioctl(&self, fd: i32, cmd: u64, arg: u64) -> Result<i64, Errno> {
        match self {
            Api::Ioctl { glibc: true } => {
                // SAFETY: forwarded; the caller vouches for `arg`.
                let r = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) };
                if r < 0 {
                    Err(Errno(
                        std::io::Error::last_os_error()
                            .raw_os_error()
                            .unwrap_or(libc::EIO),
                    ))
                } else {
                    Ok(i64::from(r))
                }
            }
            // SAFETY: forwarded; the caller vouches for `arg`.
            _ => unsafe { kvmng::sys::ioctl(fd, cmd, arg) },
        }
    }

    pub(crate) fn create_vm(&self, kvm_fd: i32) -> Result<i32, Errno> {
        match self {
            // SAFETY: KVM_CREATE_VM takes an integer.
            Api::Ioctl { .. } => unsafe { self.ioctl(kvm_fd, KVM_CREATE_VM, 0) }.map(|f| f as i32),
            Api::Kvmng(b) => b.create_vm(kvm_fd, 0, 0).map(|f| f as i32),
        }
    }

    /// Unbinds the VM (kvmng APIs) and closes its fd.
    pub(crate) fn drop_vm_fd(&self, vm_fd: i32) -> Result<(), Errno> {
        let unbound = match self {
            Api::Ioctl { .. } => Ok(0),
            Api::Kvmng(b) => b.bind_vm(KVMNG_UNBIND, 0),
        };
        close(vm_fd);
        unbound.map(|_| ())
    }

    pub(crate) fn create_vcpu(&self, vm_fd: i32, id: u64, bind: bool) -> Result<i32, Errno> {
        match self {
            Api::Ioctl { .. } => {
                // SAFETY: KVM_CREATE_VCPU takes an integer.
                unsafe { self.ioctl(vm_fd, KVM_CREATE_VCPU, id) }.map(|f| f as i32)
            }
            Api::Kvmng(b) => {
                let flags = if bind { KVMNG_CREATE_VCPU_BIND } else { 0 };
                b.create_vcpu(id, flags).map(|f| f as i32)
            }
        }
    }

    pub(crate) fn create_irqchip(&self, vm_fd: i32) -> Result<(), Errno> {
        match self {
            // SAFETY: KVM_CREATE_IRQCHIP takes no argument.
            Api::Ioctl { .. } => unsafe { self.ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) }.map(|_| ()),
            Api::Kvmng(b) => {
                // SAFETY: as above, through the VM-scope control call.
                unsafe { b.control(KVMNG_SCOPE_VM, KVM_CREATE_IRQCHIP as u32, 0, 0) }.map(|_| ())
            }
        }
    }

    /// Applies `regions`: one ioctl each (v1 structs), or one memory-map
    /// call (v2 structs). Both slices describe the same regions.
    #[inline]
    pub(crate) fn set_memory(
        &self,
        vm_fd: i32,
        v1: &[kvm_userspace_memory_region],
        v2: &[kvm_userspace_memory_region2],
    ) -> Result<(), Errno> {
        match self {
            Api::Ioctl { .. } => {
                for r in v1 {
                    // SAFETY: the ioctl reads one live region struct.
                    unsafe { self.ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, r as *const _ as u64) }?;
                }
                Ok(())
            }
            // SAFETY: `v2` holds regions mapping memory this fixture owns
            // for the VM's lifetime. The slice form, as in `vcpu_state`.
            Api::Kvmng(b) => unsafe { b.memory_map_regions(v2, 0) }.map(|_| ()),
        }
    }

    #[inline]
    pub(crate) fn run(&self, vcpu_fd: i32) -> Result<(), Errno> {
        match self {
            // SAFETY: KVM_RUN takes no argument.
            Api::Ioctl { .. } => unsafe { self.ioctl(vcpu_fd, KVM_RUN, 0) }.map(|_| ()),
            Api::Kvmng(b) => b.run(0).map(|_| ()),
        }
    }

    /// One of the breakdown calls ([`Op::BREAKDOWN`]).
    #[inline]
    pub(crate) fn breakdown_call(
        &self,
        op: Op,
        kvm_fd: i32,
        vm_fd: i32,
        vcpu_fd: i32,
    ) -> Result<(), Errno> {
        match (op, self) {
            (Op::Getppid, Api::Ioctl { glibc: true }) => {
                // SAFETY: getppid has no arguments and cannot fail.
                unsafe { libc::getppid() };
                Ok(())
            }
            (Op::Getppid, _) => kvmng::sys::getppid().map(|_| ()),
            (Op::EmptyCall, Api::Ioctl { .. }) => {
                // SAFETY: KVM_GET_API_VERSION takes no argument.
                match unsafe { self.ioctl(kvm_fd, KVM_GET_API_VERSION, 0) } {
                    Ok(12) => Ok(()),
                    Ok(_) => Err(Errno(libc::EPROTO)),
                    Err(e) => Err(e),
                }
            }
            (Op::EmptyCall, Api::Kvmng(b)) => match b.run(u32::MAX) {
                Err(Errno(libc::EINVAL)) => Ok(()),
                Err(e) => Err(e),
                Ok(_) => Err(Errno(libc::EPROTO)),
            },
            (Op::CheckExtension, Api::Ioctl { .. }) => {
                // SAFETY: KVM_CHECK_EXTENSION takes an integer.
                match unsafe { self.ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) } {
                    Ok(1) => Ok(()),
                    Ok(_) => Err(Errno(libc::EPROTO)),
                    Err(e) => Err(e),
                }
            }
            (Op::CheckExtension, Api::Kvmng(b)) => {
                // SAFETY: as above, through the VM-scope control call.
                let r = unsafe {
                    b.control(
                        KVMNG_SCOPE_VM,
                        KVM_CHECK_EXTENSION as u32,
                        KVM_CAP_USER_MEMORY,
                        0,
                    )
                };
                match r {
                    Ok(1) => Ok(()),
                    Ok(_) => Err(Errno(libc::EPROTO)),
                    Err(e) => Err(e),
                }
            }
            (Op::VcpuReject, Api::Ioctl { .. }) => {
                // SAFETY: a command KVM does not know; no argument is read.
                match unsafe { self.ioctl(vcpu_fd, UNKNOWN_VCPU_IOCTL, 0) } {
                    Err(Errno(libc::EINVAL)) => Ok(()),
                    Err(e) => Err(e),
                    Ok(_) => Err(Errno(libc::EPROTO)),
                }
            }
            (Op::VcpuReject, Api::Kvmng(b)) => {
                let mut entry = kvmng_state_entry::default();
                // SAFETY: one entry on the stack; kind 0 is rejected before
                // any buffer is touched.
                match unsafe { b.vcpu_state_entries(core::slice::from_mut(&mut entry), 0) } {
                    Err(Errno(libc::EINVAL)) => Ok(()),
                    Err(e) => Err(e),
                    Ok(_) => Err(Errno(libc::EPROTO)),
                }
            }
            _ => Err(Errno(libc::EINVAL)),
        }
    }

    #[inline]
    pub(crate) fn irq_line(&self, vm_fd: i32, gsi: u32, level: u32) -> Result<(), Errno> {
        match self {
            Api::Ioctl { .. } => {
                let line = kvm_irq_level {
                    __bindgen_anon_1: kvm_irq_level__bindgen_ty_1 { irq: gsi },
                    level,
                };
                // SAFETY: the ioctl reads one kvm_irq_level from the stack.
                unsafe { self.ioctl(vm_fd, KVM_IRQ_LINE, &line as *const _ as u64) }.map(|_| ())
            }
            Api::Kvmng(b) => b.irq(KVMNG_IRQ_LINE, gsi, level, 0).map(|_| ()),
        }
    }
}

/// glibc's close(): the shim interposes it to keep its fd table true.
pub(crate) fn close(fd: i32) {
    // SAFETY: closing an fd this fixture owns.
    unsafe { libc::close(fd) };
}

/// Formats a failed call for the worker's reply.
pub(crate) fn e(what: &str) -> impl Fn(Errno) -> String + '_ {
    move |errno| format!("{what}: {errno}")
}
