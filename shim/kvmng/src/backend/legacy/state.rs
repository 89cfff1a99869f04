//! `kvmng_vcpu_state()` emulated: a batch of legacy state ioctls.

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

/// `kvmng_vcpu_state(entries, count, flags)`.
pub fn vcpu_state(entries_addr: u64, count: u32, flags: u32) -> SysResult {
    if flags != 0 {
        return Err(Errno(libc::EINVAL));
    }
    let vcpu_fd = binding::current_vcpu_fd()?;
    if count > KVMNG_STATE_MAX_ENTRIES {
        return Err(Errno(libc::E2BIG));
    }
    if count == 0 {
        return Ok(0);
    }
    let mut entries = [kvmng_state_entry::default(); KVMNG_STATE_MAX_ENTRIES as usize];
    let entries = &mut entries[..count as usize];
    usermem::read_slice(entries_addr, entries)?;

    let mut outcome: SysResult = Ok(i64::from(count));
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
        outcome = Err(Errno(libc::EINVAL));
    } else {
        for entry in entries.iter_mut() {
            if outcome.is_err() {
                entry.result = KVMNG_STATE_NOT_DONE;
                continue;
            }
            let kind = state_kinds::validate(entry).expect("validated above");
            match execute(vcpu_fd, entry, kind) {
                Ok(value) => entry.result = value as i32,
                Err(errno) => {
                    entry.result = -errno.0;
                    outcome = Err(errno);
                }
            }
        }
    }
    usermem::write_slice(entries_addr, entries)?;
    outcome
}
