//! The two implementations of the kvmng calls.
//!
//! [`Backend`] mirrors the syscalls of docs/api.md one for one: same
//! arguments, same results, same errno values in the same order of checks.
//! [`native::Native`] issues the syscalls; [`legacy::Legacy`] carries them
//! out with classic KVM ioctls on any kernel.

pub mod legacy;
pub mod native;

use crate::errno::SysResult;
use kvm_bindings::kvm_userspace_memory_region2;
use kvmng_abi::{kvmng_ioregion, kvmng_state_entry};

/// Which implementation carries out the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The kvmng syscalls of a patched kernel.
    Native,
    /// Classic KVM ioctls: the emulation for stock kernels.
    Legacy,
}

impl BackendKind {
    /// A short name for messages and traces.
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::Native => "native",
            BackendKind::Legacy => "legacy",
        }
    }
}

/// The kvmng calls. Each method is the syscall of the same name.
///
/// The methods taking user addresses are `unsafe`: the kernel (or the
/// emulation) writes through them, so they must be valid for the writes the
/// call makes, or invalid on purpose to get `EFAULT`. An address that is
/// not mapped never crashes: the call reports `EFAULT`.
pub trait Backend: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// `kvmng_create_vm(kvm_fd, type, flags)`: a new VM fd.
    fn create_vm(&self, kvm_fd: i32, vm_type: u64, flags: u32) -> SysResult;

    /// `kvmng_bind_vm(vm_fd, flags)`.
    fn bind_vm(&self, vm_fd: i32, flags: u32) -> SysResult;

    /// `kvmng_create_vcpu(id, flags)`: a new vCPU fd.
    fn create_vcpu(&self, id: u64, flags: u32) -> SysResult;

    /// `kvmng_bind_vcpu(vcpu_fd, flags)`.
    fn bind_vcpu(&self, vcpu_fd: i32, flags: u32) -> SysResult;

    /// `kvmng_run(flags)`.
    fn run(&self, flags: u32) -> SysResult;

    /// `kvmng_vcpu_state(entries, count, flags)`.
    ///
    /// # Safety
    /// `entries` (for `count` entries) and every entry's buffer must be
    /// valid for the reads and writes the call makes, or unmapped, or (for
    /// a write) not writable: the call then fails with `EFAULT`.
    unsafe fn vcpu_state(
        &self,
        entries: *mut kvmng_state_entry,
        count: u32,
        flags: u32,
    ) -> SysResult;

    /// `kvmng_vcpu_state()` on an array the caller holds: the same call as
    /// [`Backend::vcpu_state`] on `entries.as_mut_ptr()` and
    /// `entries.len()`, for callers whose array is a Rust slice, valid by
    /// construction. The emulation then works on the entries in place
    /// instead of copying them in and the results out with
    /// `process_vm_readv`/`process_vm_writev` (which it needs for an
    /// address that may be bad); the entries' buffers are the caller's
    /// addresses either way, handed to the ioctls, whose own copies check
    /// them. A slice longer than `u32::MAX` entries is `E2BIG`, as a
    /// `count` above `KVMNG_STATE_MAX_ENTRIES` is.
    ///
    /// # Safety
    /// Every entry's buffer must be valid for the reads and writes the
    /// call makes, or unmapped, and must not overlap `entries`.
    unsafe fn vcpu_state_entries(
        &self,
        entries: &mut [kvmng_state_entry],
        flags: u32,
    ) -> SysResult {
        let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        // SAFETY: `entries` is a live array of at least `count` entries (a
        // longer one is refused before any entry is read); the caller
        // vouches for the buffers.
        unsafe { self.vcpu_state(entries.as_mut_ptr(), count, flags) }
    }

    /// `kvmng_irq(kind, nr, level, flags)`.
    fn irq(&self, kind: u32, nr: u32, level: u32, flags: u32) -> SysResult;

    /// `kvmng_memory_map(regions, count, flags)`.
    ///
    /// # Safety
    /// `regions` must be readable for `count` entries or unmapped, and the
    /// regions must map memory the caller is prepared to hand to a guest.
    unsafe fn memory_map(
        &self,
        regions: *const kvm_userspace_memory_region2,
        count: u32,
        flags: u32,
    ) -> SysResult;

    /// `kvmng_memory_map()` of regions the caller holds: the same call as
    /// [`Backend::memory_map`] on `regions.as_ptr()` and `regions.len()`,
    /// for callers whose regions are a Rust slice, valid by construction:
    /// the emulation reads them in place instead of copying them with
    /// `process_vm_readv`. A slice longer than `u32::MAX` regions is
    /// `E2BIG`, as a `count` above `KVMNG_MEMORY_MAP_MAX` is.
    ///
    /// # Safety
    /// The regions must map memory the caller is prepared to hand to a
    /// guest.
    unsafe fn memory_map_regions(
        &self,
        regions: &[kvm_userspace_memory_region2],
        flags: u32,
    ) -> SysResult {
        let count = u32::try_from(regions.len()).unwrap_or(u32::MAX);
        // SAFETY: `regions` is a live array of at least `count` regions (a
        // longer one is refused before any region is read); the caller
        // vouches for the memory they map.
        unsafe { self.memory_map(regions.as_ptr(), count, flags) }
    }

    /// `kvmng_control(scope, cmd, arg, flags)`.
    ///
    /// # Safety
    /// `arg` must be what the ioctl `cmd` expects.
    unsafe fn control(&self, scope: u32, cmd: u32, arg: u64, flags: u32) -> SysResult;

    /// `kvmng_ioregion(op, region, flags)`.
    ///
    /// # Safety
    /// `region` must be readable for one `struct kvmng_ioregion`, or
    /// unmapped.
    unsafe fn ioregion(&self, op: u32, region: *const kvmng_ioregion, flags: u32) -> SysResult;
}
