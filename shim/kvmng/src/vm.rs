//! The typed API: `/dev/kvm`, a VM bound to this process, its vCPUs.

use crate::backend::{Backend, BackendKind};
use crate::errno::{Errno, SysResult};
use crate::ioregion::IoRegion;
use crate::memory::GuestMemory;
use crate::select::{self, SelectError};
use crate::vcpu::{BoundVcpu, Vcpu};
use kvm_bindings::{kvm_userspace_memory_region2, CpuId, KVM_MAX_CPUID_ENTRIES};
use kvmng_abi::ioctls::*;
use kvmng_abi::*;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Why kvmng could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// /dev/kvm could not be opened.
    #[error(
        "cannot open /dev/kvm read-write: {0}; check that the kvm module is loaded \
         and that you are in the group owning /dev/kvm"
    )]
    Device(std::io::Error),
    /// The backend request could not be met.
    #[error(transparent)]
    Backend(#[from] SelectError),
}

/// An open /dev/kvm and the backend that carries out the calls.
pub struct Kvmng {
    kvm: OwnedFd,
    backend: &'static dyn Backend,
}

impl Kvmng {
    /// Opens /dev/kvm and chooses the backend from `KVMNG_BACKEND` and the
    /// running kernel.
    pub fn open() -> Result<Kvmng, OpenError> {
        let backend = select::from_env()?;
        Kvmng::open_with(backend)
    }

    /// Opens /dev/kvm with the given backend.
    pub fn open_with(backend: &'static dyn Backend) -> Result<Kvmng, OpenError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map_err(OpenError::Device)?;
        Ok(Kvmng {
            kvm: file.into(),
            backend,
        })
    }

    /// Which backend is in use.
    pub fn backend_kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// The backend, for the raw calls.
    pub fn backend(&self) -> &'static dyn Backend {
        self.backend
    }

    /// The /dev/kvm fd.
    pub fn kvm_fd(&self) -> i32 {
        self.kvm.as_raw_fd()
    }

    /// `kvmng_create_vm()`: a default-type VM, bound to this process.
    pub fn create_vm(&self) -> Result<Vm<'_>, Errno> {
        let fd = self.backend.create_vm(self.kvm.as_raw_fd(), 0, 0)? as i32;
        // SAFETY: the call returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Vm { kvm: self, fd })
    }
}

/// A region of guest-physical memory for [`Vm::memory_map`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Slot number (`as_id << 16 | id`).
    pub slot: u32,
    /// `KVM_MEM_*` flags.
    pub flags: u32,
    /// Guest-physical start.
    pub guest_phys_addr: u64,
    /// Size in bytes; 0 deletes the slot.
    pub memory_size: u64,
    /// Host virtual address of the backing memory.
    pub userspace_addr: u64,
}

impl MemoryRegion {
    /// A slot mapping all of `memory` at `guest_phys_addr`.
    pub fn of(slot: u32, guest_phys_addr: u64, memory: &GuestMemory) -> MemoryRegion {
        MemoryRegion {
            slot,
            flags: 0,
            guest_phys_addr,
            memory_size: memory.len() as u64,
            userspace_addr: memory.host_addr(),
        }
    }

    /// The region that deletes `slot`.
    pub fn delete(slot: u32) -> MemoryRegion {
        MemoryRegion {
            slot,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: 0,
            userspace_addr: 0,
        }
    }

    /// The legacy struct.
    pub fn to_kvm(self) -> kvm_userspace_memory_region2 {
        kvm_userspace_memory_region2 {
            slot: self.slot,
            flags: self.flags,
            guest_phys_addr: self.guest_phys_addr,
            memory_size: self.memory_size,
            userspace_addr: self.userspace_addr,
            ..Default::default()
        }
    }
}

/// A VM, bound to this process while it lives (unbound on drop).
pub struct Vm<'k> {
    kvm: &'k Kvmng,
    fd: OwnedFd,
}

impl<'k> Vm<'k> {
    /// The VM fd (the dual interface: every legacy ioctl works on it).
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The backend in use.
    pub fn backend(&self) -> &'static dyn Backend {
        self.kvm.backend
    }

    /// `kvmng_create_vcpu(id, 0)`: a vCPU not bound to any thread.
    pub fn create_vcpu(&self, id: u64) -> Result<Vcpu<'_>, Errno> {
        let fd = self.backend().create_vcpu(id, 0)? as i32;
        Vcpu::from_fd(self, id, fd)
    }

    /// `kvmng_create_vcpu(id, KVMNG_CREATE_VCPU_BIND)`: a vCPU bound to the
    /// calling thread.
    pub fn create_bound_vcpu(&self, id: u64) -> Result<BoundVcpu<'_>, Errno> {
        let fd = self.backend().create_vcpu(id, KVMNG_CREATE_VCPU_BIND)? as i32;
        let vcpu = Vcpu::from_fd(self, id, fd)?;
        Ok(BoundVcpu::already_bound(vcpu))
    }

    /// `kvmng_memory_map()`: applies all regions atomically.
    pub fn memory_map(&self, regions: &[MemoryRegion]) -> Result<usize, Errno> {
        let raw: Vec<kvm_userspace_memory_region2> = regions.iter().map(|r| r.to_kvm()).collect();
        // SAFETY: the regions map memory the caller chose to give the guest.
        unsafe { self.backend().memory_map_regions(&raw, 0) }.map(|n| n as usize)
    }

    /// `kvmng_ioregion(KVMNG_IOREGION_ADD, region)`: accesses to the range
    /// go to the device on the other end of `region.fd`.
    pub fn ioregion_add(&self, region: &IoRegion) -> Result<(), Errno> {
        self.ioregion(KVMNG_IOREGION_ADD, region)
    }

    /// `kvmng_ioregion(KVMNG_IOREGION_DEL, region)`: the region with exactly
    /// this space, address and size is removed.
    pub fn ioregion_del(&self, region: &IoRegion) -> Result<(), Errno> {
        self.ioregion(KVMNG_IOREGION_DEL, region)
    }

    fn ioregion(&self, op: u32, region: &IoRegion) -> Result<(), Errno> {
        let raw = region.to_abi();
        // SAFETY: `raw` is a live struct for the duration of the call.
        unsafe { self.backend().ioregion(op, &raw, 0) }.map(|_| ())
    }

    /// `KVM_IOEVENTFD` through `kvmng_control(KVMNG_SCOPE_VM)`: a new eventfd
    /// whose counter the kernel increments for every `len`-byte MMIO write
    /// to `addr` (any value), without an exit.
    pub fn ioeventfd(&self, addr: u64, len: u32) -> Result<OwnedFd, Errno> {
        // SAFETY: eventfd takes integers only.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(Errno(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EMFILE),
            ));
        }
        // SAFETY: a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let ioeventfd = kvm_bindings::kvm_ioeventfd {
            addr,
            len,
            fd: fd.as_raw_fd(),
            ..Default::default()
        };
        // SAFETY: KVM_IOEVENTFD reads one kvm_ioeventfd, live for the call.
        unsafe {
            self.backend().control(
                KVMNG_SCOPE_VM,
                KVM_IOEVENTFD as u32,
                &ioeventfd as *const kvm_bindings::kvm_ioeventfd as u64,
                0,
            )
        }?;
        Ok(fd)
    }

    /// `kvmng_irq(KVMNG_IRQ_LINE, gsi, level)`.
    pub fn irq_line(&self, gsi: u32, level: bool) -> Result<(), Errno> {
        self.backend()
            .irq(KVMNG_IRQ_LINE, gsi, u32::from(level), 0)
            .map(|_| ())
    }

    /// `kvmng_control(KVMNG_SCOPE_VM, cmd, arg)` for an integer argument.
    pub fn control(&self, cmd: u64, arg: u64) -> SysResult {
        assert_eq!(
            ioc_size(cmd),
            0,
            "control() is for ioctls without a struct argument"
        );
        // SAFETY: the ioctl takes no pointer (its size field is 0).
        unsafe { self.backend().control(KVMNG_SCOPE_VM, cmd as u32, arg, 0) }
    }

    /// `KVM_CHECK_EXTENSION` on the VM, through the control call.
    pub fn check_extension(&self, cap: u32) -> SysResult {
        self.control(KVM_CHECK_EXTENSION, u64::from(cap))
    }

    /// `KVM_CREATE_IRQCHIP`, through the control call.
    pub fn create_irqchip(&self) -> Result<(), Errno> {
        self.control(KVM_CREATE_IRQCHIP, 0).map(|_| ())
    }

    /// `KVM_GET_SUPPORTED_CPUID`, through the system-scope control call:
    /// the CPUID a vCPU can be given (`StateItem::Cpuid`). Long-mode
    /// segment registers are refused on some hosts (AMD, nested SVM) until
    /// the vCPU has a CPUID, as every VMM gives it.
    pub fn supported_cpuid(&self) -> Result<CpuId, Errno> {
        let mut cpuid = CpuId::new(KVM_MAX_CPUID_ENTRIES).map_err(|_| Errno(libc::ENOMEM))?;
        // SAFETY: the pointer is the kvm_cpuid2 header of a buffer of
        // KVM_MAX_CPUID_ENTRIES entries, which nent says; KVM writes at
        // most nent entries and then nent itself.
        unsafe {
            self.backend().control(
                KVMNG_SCOPE_SYSTEM,
                KVM_GET_SUPPORTED_CPUID as u32,
                cpuid.as_mut_fam_struct_ptr() as u64,
                0,
            )
        }?;
        Ok(cpuid)
    }

    /// `KVM_GET_VCPU_MMAP_SIZE`, through the system-scope control call.
    pub fn vcpu_mmap_size(&self) -> Result<usize, Errno> {
        // SAFETY: integer ioctl.
        unsafe {
            self.backend()
                .control(KVMNG_SCOPE_SYSTEM, KVM_GET_VCPU_MMAP_SIZE as u32, 0, 0)
        }
        .map(|n| n as usize)
    }
}

impl Drop for Vm<'_> {
    fn drop(&mut self) {
        // Unbind only if this VM is the bound one (binding it again is a
        // no-op that tells us so).
        if self.backend().bind_vm(self.fd.as_raw_fd(), 0) == Ok(0) {
            let _ = self.backend().bind_vm(KVMNG_UNBIND, 0);
        }
    }
}
