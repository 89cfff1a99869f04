//! `kvmng_vcpu_state()` emulated: a batch of legacy state ioctls.
//!
//! Each entry's buffer goes to its ioctl as the caller gave it: the
//! kernel's own copy checks the address (`EFAULT`), so the emulation never
//! reads or writes it, except the element count of an MSR or CPUID buffer,
//! which the call checks against `size` before the ioctl (api.md 5.6) and
//! reads with `process_vm_readv`. The entries themselves are the call's,
//! not an ioctl's: [`vcpu_state`] copies them in with `process_vm_readv`
//! and writes each `result` back with `process_vm_writev` (the raw call,
//! whose address may be bad: the trap's callers); [`vcpu_state_in_place`] works on a slice
//! its caller holds (the library's typed API, the preload shim's one entry
//! on its stack), with no copy and the same checks in the same order.

use super::{binding, usermem};
use crate::errno::{Errno, SysResult};
use crate::state_kinds::{self, StateKind};
use crate::sys::ioctl;
use kvmng_abi::ioctls::KVM_CHECK_EXTENSION;
use kvmng_abi::*;

/// `KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)`: the size of the guest's xsave
/// state now (at least 4096). Asked every time: it grows when the process
/// gains permission for more guest state (e.g. AMX).
fn xsave2_size() -> u64 {
    let ask = |fd: i32| {
        // SAFETY: KVM_CHECK_EXTENSION takes an integer argument.
        unsafe {
            ioctl(
                fd,
                KVM_CHECK_EXTENSION,
                u64::from(kvm_bindings::KVM_CAP_XSAVE2),
            )
        }
        .ok()
    };
    let asked = binding::vm_fd()
        .ok()
        .or_else(binding::kvm_device_fd)
        .and_then(ask)
        .unwrap_or(0);
    (asked as u64).max(core::mem::size_of::<kvm_bindings::kvm_xsave>() as u64)
}

/// Reads the element count at the start of a variable-size buffer
/// (`nmsrs` of kvm_msrs, `nent` of kvm_cpuid2) and checks that the buffer
/// holds that many elements.
fn check_variable_size(entry: &kvmng_state_entry, element: u64) -> Result<(), Errno> {
    let count: u32 = usermem::read_value(entry.addr)?;
    let needed = 8 + element * u64::from(count);
    if u64::from(entry.size) < needed {
        return Err(Errno(libc::EINVAL));
    }
    Ok(())
}

fn execute(vcpu_fd: i32, entry: &kvmng_state_entry, kind: StateKind) -> SysResult {
    match entry.kind {
        KVMNG_STATE_MSRS => check_variable_size(entry, 16)?,
        KVMNG_STATE_CPUID => check_variable_size(entry, 40)?,
        KVMNG_STATE_XSAVE2 if u64::from(entry.size) < xsave2_size() => {
            return Err(Errno(libc::EINVAL));
        }
        _ => {}
    }
    let cmd = if entry.op == KVMNG_STATE_GET {
        kind.get
    } else {
        kind.set
    };
    // SAFETY: `cmd` is the legacy ioctl of this kind, and `entry.addr`
    // the caller's buffer of at least the struct's size (validated); the
    // kernel checks the address itself and answers EFAULT for a bad one.
    unsafe { ioctl(vcpu_fd, cmd, entry.addr) }
}

/// The checks before any entry is read, in the kernel's order: `flags`,
/// the calling thread's binding (`ESRCH`), `count`; the vCPU's fd.
fn begin(count: u32, flags: u32) -> Result<i32, Errno> {
    if flags != 0 {
        return Err(Errno(libc::EINVAL));
    }
    let vcpu_fd = binding::current_vcpu_fd()?;
    if count > KVMNG_STATE_MAX_ENTRIES {
        return Err(Errno(libc::E2BIG));
    }
    Ok(vcpu_fd)
}

/// `kvmng_vcpu_state(entries, count, flags)` with `entries` at an address
/// that may be bad: the entries are copied in, and the results out, with
/// `process_vm_readv`/`process_vm_writev`, so that a bad address is
/// `EFAULT` (nothing executed when it cannot be read).
pub fn vcpu_state(entries_addr: u64, count: u32, flags: u32) -> SysResult {
    let vcpu_fd = begin(count, flags)?;
    if count == 0 {
        return Ok(0);
    }
    let mut entries = [kvmng_state_entry::default(); KVMNG_STATE_MAX_ENTRIES as usize];
    let entries = &mut entries[..count as usize];
    usermem::read_slice(entries_addr, entries)?;
    let outcome = batch(vcpu_fd, entries);
    write_results(entries_addr, entries)?;
    outcome
}

/// Writes each entry's `result` back to the caller's array, and nothing
/// else of it: an entry's buffer may overlap the array (api.md 5.6: only
/// `result` is written), as the kernel writes the results alone.
fn write_results(entries_addr: u64, entries: &[kvmng_state_entry]) -> Result<(), Errno> {
    // One strided write must be able to carry a full batch's results.
    const _: () = assert!(crate::sys::STRIDED_PIECES_MAX >= KVMNG_STATE_MAX_ENTRIES as usize);
    const STRIDE: usize = core::mem::size_of::<kvmng_state_entry>();
    const RESULT: usize = core::mem::offset_of!(kvmng_state_entry, result);
    let mut results = [0u8; 4 * KVMNG_STATE_MAX_ENTRIES as usize];
    for (chunk, e) in results.chunks_exact_mut(4).zip(entries) {
        chunk.copy_from_slice(&e.result.to_ne_bytes());
    }
    usermem::write_strided(
        entries_addr + RESULT as u64,
        STRIDE as u64,
        &results[..4 * entries.len()],
        4,
    )
}

/// `kvmng_vcpu_state()` on entries the caller holds (a slice, valid by
/// construction): the same checks and results, the entries read and their
/// results written in place, with no copy. The entries' buffers are still
/// the caller's addresses, handed to the ioctls as they are in
/// [`vcpu_state`].
pub fn vcpu_state_in_place(entries: &mut [kvmng_state_entry], flags: u32) -> SysResult {
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    let vcpu_fd = begin(count, flags)?;
    if count == 0 {
        return Ok(0);
    }
    batch(vcpu_fd, entries)
}

/// A batch that has been read: every entry validated before any runs
/// (api.md 5.6), then each executed in order until one fails; every
/// entry's `result` set.
fn batch(vcpu_fd: i32, entries: &mut [kvmng_state_entry]) -> SysResult {
    if let Some(bad) = entries
        .iter()
        .position(|e| state_kinds::validate(e).is_none())
    {
        for (i, e) in entries.iter_mut().enumerate() {
            e.result = if i == bad {
                -libc::EINVAL
            } else {
                KVMNG_STATE_NOT_DONE
            };
        }
        return Err(Errno(libc::EINVAL));
    }
    let mut outcome: SysResult = Ok(entries.len() as i64);
    for entry in entries.iter_mut() {
        if outcome.is_err() {
            entry.result = KVMNG_STATE_NOT_DONE;
            continue;
        }
        let Some(kind) = state_kinds::validate(entry) else {
            // Validated above; unreachable.
            entry.result = -libc::EINVAL;
            outcome = Err(Errno(libc::EINVAL));
            continue;
        };
        match execute(vcpu_fd, entry, kind) {
            Ok(value) => entry.result = value as i32,
            Err(errno) => {
                entry.result = -errno.0;
                outcome = Err(errno);
            }
        }
    }
    outcome
}
