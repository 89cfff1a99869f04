//! Each KVM ioctl in its new-API form (docs/api.md section 7), or the
//! reason it cannot be: then the caller passes it to the kernel unchanged.
//!
//! Every path returns exactly what the ioctl returns natively: the value,
//! or the errno. A pointer the kvmng call carries (a state entry's buffer,
//! `kvmng_control`'s `arg`) is handed on, and the kernel's own copy checks
//! it; the few structs the shim must read itself (a memory region, the
//! vector of KVM_INTERRUPT, the count of a CPUID buffer) are
//! copied with `process_vm_readv`. Either way a bad pointer is `EFAULT`,
//! never a crash.

use super::binding;
use super::cmdindex;
use super::fdtable::{Entry, Kind};
use super::reason::Reason;
use kvm_bindings::{
    kvm_userspace_memory_region, kvm_userspace_memory_region2, KVM_MEM_LOG_DIRTY_PAGES,
    KVM_MEM_READONLY,
};
use kvmng::backend::legacy::{fdkind, memmap, sigmask, usermem};
use kvmng::{Backend, BackendKind, Errno, SysResult};
use kvmng_abi::ioctls::{self, FdClass, NewApiForm, KVM_IOCTLS};
use kvmng_abi::*;

/// What became of a call that was translated, or why it was not.
pub type Translation = Result<SysResult, Reason>;

/// Carries out request `cmd` with `arg` on `fd` (whose entry is `entry`)
/// through `backend`. The row of the mapping table is `row`.
///
/// # Safety
/// `arg` is the caller's ioctl argument, passed on as the ioctl would pass
/// it; pointers in it are only read through `usermem` or handed to the
/// backend, which checks them as the kernel does.
pub unsafe fn carry_out(
    fd: i32,
    cmd: u64,
    arg: u64,
    entry: Entry,
    row: Option<usize>,
    backend: &dyn Backend,
) -> Translation {
    let Some(class) = entry.class() else {
        return Err(Reason::NotKvmFd);
    };
    let Some(row) = row else {
        return Err(Reason::NotInTable);
    };
    if matches!(entry.kind(), Kind::Vm | Kind::Vcpu) && !super::fdtable::in_table(fd) {
        return Err(Reason::FdBeyondTable);
    }
    let form = KVM_IOCTLS[row].form_on(class);
    let translated = match (form, class) {
        (NewApiForm::NotApplicable(_), FdClass::Device) => Err(Reason::DeviceFd),
        (NewApiForm::NotApplicable(_), _) => Err(Reason::NotInTable),
        (NewApiForm::CreateVm, _) => create_vm(fd, arg, backend),
        (NewApiForm::Control, FdClass::System) => system(cmd, arg, backend),
        (_, FdClass::Vm) => {
            if !binding::of_bound_vm(entry) {
                return Err(binding::not_bound_reason(entry));
            }
            // SAFETY: forwarded.
            unsafe { vm(form, cmd, arg, entry, backend) }
        }
        (_, FdClass::Vcpu)
            if cmd == ioctls::KVM_SET_SIGNAL_MASK && backend.kind() == BackendKind::Legacy =>
        {
            // Whoever issues it, bound or not: the emulation's kick must
            // get through the mask KVM applies in KVM_RUN (api.md 6).
            Ok(sigmask::set_on_fd(fd, arg))
        }
        (_, FdClass::Vcpu) => {
            binding::acquire(fd, entry, form == NewApiForm::Run, backend)?;
            // SAFETY: forwarded.
            unsafe { vcpu(form, cmd, arg, backend) }
        }
        (_, _) => Err(Reason::NotInTable),
    }?;
    settle(translated)
}

/// The answer of a translated call: EUNATCH and ESRCH never come from an
/// ioctl: the backend's bindings are not what the shim recorded. Nothing
/// was done; the kernel answers.
#[inline]
pub fn settle(translated: SysResult) -> Translation {
    match translated {
        Err(Errno(libc::EUNATCH)) => {
            binding::vm_binding_lost();
            Err(Reason::BindingLost)
        }
        Err(Errno(libc::ESRCH)) => {
            binding::thread_binding_lost();
            Err(Reason::BindingLost)
        }
        other => Ok(other),
    }
}

/// KVM_CREATE_VM: `kvmng_create_vm(kvm_fd, type, 0)`, which binds the VM.
fn create_vm(fd: i32, vm_type: u64, backend: &dyn Backend) -> Translation {
    if binding::bound_serial() != 0 {
        return Err(Reason::SecondVm);
    }
    // kvmng_create_vm wants read-write access; the ioctl does not check.
    match fdkind::open_flags(fd) {
        Ok(flags) if flags as i32 & libc::O_ACCMODE == libc::O_RDWR => {}
        Ok(_) => return Err(Reason::KvmFdNotReadWrite),
        Err(e) => return Ok(Err(e)),
    }
    match backend.create_vm(fd, vm_type, 0) {
        Ok(vm_fd) => {
            binding::vm_created(vm_fd as i32);
            Ok(Ok(vm_fd))
        }
        // Another VM is bound (through the new API directly).
        Err(Errno(libc::EEXIST)) => Err(Reason::SecondVm),
        Err(e) => Ok(Err(e)),
    }
}

/// A /dev/kvm ioctl: `kvmng_control(KVMNG_SCOPE_SYSTEM, cmd, arg, 0)`,
/// which needs a bound VM.
fn system(cmd: u64, arg: u64, backend: &dyn Backend) -> Translation {
    if binding::bound_serial() == 0 {
        return Err(Reason::NoBoundVm);
    }
    // SAFETY: `arg` is the caller's argument for `cmd`, handed on.
    Ok(unsafe { backend.control(KVMNG_SCOPE_SYSTEM, cmd as u32, arg, 0) })
}

/// An ioctl of the bound VM.
unsafe fn vm(
    form: NewApiForm,
    cmd: u64,
    arg: u64,
    entry: Entry,
    backend: &dyn Backend,
) -> Translation {
    Ok(match form {
        NewApiForm::CreateVcpu => backend.create_vcpu(arg, 0).inspect(|&vcpu_fd| {
            binding::vcpu_created(vcpu_fd as i32, entry.serial(), arg as u16);
        }),
        NewApiForm::MemoryMap => {
            let region = match memory_region(cmd, arg)? {
                Ok(region) => region,
                Err(e) => return Ok(Err(e)),
            };
            // SAFETY: one region on this frame; the memory it maps is the
            // caller's, as with the ioctl.
            unsafe { backend.memory_map_regions(core::slice::from_ref(&region), 0) }.map(|_| 0)
        }
        // SAFETY: `arg` is the caller's argument for `cmd`, handed on.
        _ => unsafe { backend.control(KVMNG_SCOPE_VM, cmd as u32, arg, 0) },
    })
}

/// The region of KVM_SET_USER_MEMORY_REGION(2) as a region2: the v1 struct
/// is a prefix of v2, zero-extended.
fn memory_region(
    cmd: u64,
    arg: u64,
) -> Result<Result<kvm_userspace_memory_region2, Errno>, Reason> {
    if cmd == ioctls::KVM_SET_USER_MEMORY_REGION2 {
        return Ok(usermem::read_value::<kvm_userspace_memory_region2>(arg));
    }
    let v1 = match usermem::read_value::<kvm_userspace_memory_region>(arg) {
        Ok(v1) => v1,
        Err(e) => return Ok(Err(e)),
    };
    // The v1 ioctl refuses flags beyond these (guest_memfd is v2 only).
    if v1.flags & !(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY) != 0 {
        return Err(Reason::V1Flags);
    }
    Ok(Ok(memmap::region2_of_v1(&v1)))
}

/// An ioctl of the calling thread's (now bound) vCPU.
unsafe fn vcpu(form: NewApiForm, cmd: u64, arg: u64, backend: &dyn Backend) -> Translation {
    Ok(match form {
        // KVM_RUN takes no argument: the ioctl refuses one with EINVAL
        // before it runs (found by kvmng-fuzz, docs/reliability.md).
        NewApiForm::Run if arg != 0 => Err(Errno(libc::EINVAL)),
        NewApiForm::Run => backend.run(0),
        NewApiForm::VcpuState { kind, op } => {
            let size = match state_size(kind, op, cmd, arg)? {
                Ok(size) => size,
                Err(e) => return Ok(Err(e)),
            };
            // SAFETY: forwarded.
            return state_result(kind, size, unsafe {
                state_entry(kind, op, arg, size, backend)
            });
        }
        NewApiForm::Irq {
            kind: KVMNG_IRQ_INTERRUPT,
        } => match usermem::read_value::<u32>(arg) {
            Ok(vector) => backend.irq(KVMNG_IRQ_INTERRUPT, vector, 0, 0),
            Err(e) => Err(e),
        },
        NewApiForm::Irq { kind } => backend.irq(kind, 0, 0, 0),
        // SAFETY: `arg` is the caller's argument for `cmd`, handed on.
        _ => unsafe { backend.control(KVMNG_SCOPE_VCPU, cmd as u32, arg, 0) },
    })
}

/// One `kvmng_vcpu_state()` entry standing for a state ioctl on `arg`.
///
/// # Safety
/// `arg` is the caller's ioctl argument; the backend reads and writes the
/// buffer as the ioctl would (EFAULT when it is not the caller's).
#[inline(always)]
pub unsafe fn state_entry<B: Backend + ?Sized>(
    kind: u32,
    op: u32,
    arg: u64,
    size: u32,
    backend: &B,
) -> SysResult {
    let mut entry = kvmng_state_entry {
        kind,
        op,
        addr: arg,
        size,
        result: 0,
    };
    // SAFETY: one entry on this frame; its buffer is the caller's, which
    // the backend reads and writes as the ioctl would.
    unsafe { backend.vcpu_state_entries(core::slice::from_mut(&mut entry), 0) }
        .map(|_| i64::from(entry.result))
}

/// The `size` the shim gives a state entry whose ioctl carries no size of
/// its own (KVM_GET/SET_MSRS, KVM_GET_XSAVE2, KVM_SET_XSAVE): as large as a
/// size can be. An entry's buffer is only read or written as the ioctl
/// reads or writes it (api.md 5.6), so the kernel (or the emulation) reads
/// `nmsrs` and the `KVM_CAP_XSAVE2` size itself, as the ioctl does, and
/// the shim reads nothing first. The size check of the call then fails only
/// for an MSR count whose buffer would not fit in a 32-bit size (`nmsrs` ≥
/// 2^28), which the ioctl answers with `E2BIG`: see [`state_result`].
pub const UNBOUNDED: u32 = u32::MAX;

/// The `size` of the state entry standing for state ioctl `cmd` (of
/// `kind` and `op`) when it does not depend on the caller's buffer: the
/// ioctl's size field, or [`UNBOUNDED`]. `None` for CPUID, whose size the
/// shim computes from `nent` ([`state_size`]): KVM_SET_CPUID2 can itself
/// fail with `EINVAL`, so an unbounded entry's `EINVAL` would not say
/// which check failed. CPUID is set once, not per exit.
pub const fn fixed_state_size(kind: u32, op: u32, cmd: u64) -> Option<u32> {
    match (kind, op) {
        (KVMNG_STATE_CPUID, _) => None,
        (KVMNG_STATE_MSRS, _)
        | (KVMNG_STATE_XSAVE2, KVMNG_STATE_GET)
        | (KVMNG_STATE_XSAVE, KVMNG_STATE_SET) => Some(UNBOUNDED),
        _ => Some(ioctls::ioc_size(cmd) as u32),
    }
}

/// What the ioctl answers, from the result of the state entry of `kind`
/// and `size` that stood for it: the result itself, except for an
/// [`UNBOUNDED`] MSR entry's `EINVAL`. For MSRs that can only be the
/// call's check of `nmsrs` against the size (KVM_GET/SET_MSRS never
/// answer `EINVAL`), made before the ioctl: nothing was done, and the
/// kernel's ioctl answers (`E2BIG`) instead.
fn state_result(kind: u32, size: u32, result: SysResult) -> Translation {
    match result {
        Err(Errno(libc::EINVAL)) if kind == KVMNG_STATE_MSRS && size == UNBOUNDED => {
            Err(Reason::CountTooLarge)
        }
        other => Ok(other),
    }
}

/// The `size` of the state entry standing for the ioctl: as
/// [`fixed_state_size`], or for CPUID what the kernel will transfer.
fn state_size(kind: u32, op: u32, cmd: u64, arg: u64) -> Result<Result<u32, Errno>, Reason> {
    if let Some(size) = fixed_state_size(kind, op, cmd) {
        return Ok(Ok(size));
    }
    // The header's count (nent), read as the ioctl reads it: an
    // unreadable header is EFAULT.
    let count: u32 = match usermem::read_value(arg) {
        Ok(count) => count,
        Err(e) => return Ok(Err(e)),
    };
    u32::try_from(8 + 40 * u64::from(count))
        .map(Ok)
        .map_err(|_| Reason::CountTooLarge)
}

/// Records the fds a call made (whatever path it took), so that their
/// class is known: KVM_CREATE_VM and KVM_CREATE_VCPU outside translation
/// (their VM is not bound), KVM_CREATE_DEVICE, and the fds without ioctls.
pub fn note_new_fds(translated: bool, cmd: u64, arg: u64, entry: Entry, result: &SysResult) {
    let Ok(value) = *result else { return };
    let new_fd = value as i32;
    match (cmd, entry.kind()) {
        (ioctls::KVM_CREATE_VM, Kind::System) if !translated => {
            binding::register(new_fd, Entry::made(Kind::Vm, 0, 0, false));
        }
        (ioctls::KVM_CREATE_VCPU, Kind::Vm) if !translated => {
            binding::register(new_fd, Entry::made(Kind::Vcpu, 0, arg as u16, false));
        }
        (ioctls::KVM_CREATE_DEVICE, Kind::Vm) => {
            // struct kvm_create_device { __u32 type; __u32 fd; __u32 flags; }
            if let Ok(device) = usermem::read_value::<kvm_bindings::kvm_create_device>(arg) {
                binding::register(device.fd as i32, Entry::of(Kind::Device));
            }
        }
        (ioctls::KVM_GET_STATS_FD, Kind::Vm | Kind::Vcpu)
        | (ioctls::KVM_CREATE_GUEST_MEMFD, Kind::Vm) => {
            binding::register(new_fd, Entry::of(Kind::Other));
        }
        _ => {}
    }
}

/// The row of `cmd` on the class of `entry`.
#[inline]
pub fn row_of(cmd: u64, entry: Entry) -> Option<usize> {
    entry.class().and_then(|class| cmdindex::find(cmd, class))
}
