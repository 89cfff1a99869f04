//! The legacy backend: every kvmng call carried out with classic KVM
//! ioctls, issued as raw syscalls, with the semantics of docs/api.md
//! (section 6 lists where the emulation differs and why).

pub mod binding;
pub mod fdkind;
pub mod gate;
pub mod ioregion;
pub mod memmap;
pub mod sigmask;
pub mod state;
pub mod usermem;

use super::{Backend, BackendKind};
use crate::errno::{Errno, SysResult};
use crate::sys::{close, ioctl};
use fdkind::FdKind;
use kvm_bindings::{
    kvm_interrupt, kvm_irq_level, kvm_userspace_memory_region, kvm_userspace_memory_region2,
};
use kvmng_abi::ioctls::*;
use kvmng_abi::*;

/// The emulation. All its state is process-wide (see [`binding`]), so any
/// number of `Legacy` values share it.
#[derive(Debug, Clone, Copy)]
pub struct Legacy(());

impl Legacy {
    /// Prepares the process-wide state (pthread key, fork handler, kick
    /// signal handler). Call from ordinary code before any call may come
    /// from a signal handler: afterwards no call allocates.
    pub fn new() -> Legacy {
        binding::init();
        gate::install_kick_handler();
        Legacy(())
    }
}

impl Default for Legacy {
    fn default() -> Self {
        Legacy::new()
    }
}

fn einval() -> Errno {
    Errno(libc::EINVAL)
}

/// EBADF / wrong kind (EINVAL) / other mm (EIO) checks of the bind calls;
/// the kind.
fn check_bindable(fd: i32, want_vm: bool) -> Result<FdKind, Errno> {
    let kind = fdkind::classify(fd)?;
    let right = matches!(
        (kind, want_vm),
        (FdKind::Vm, true) | (FdKind::Vcpu(_), false)
    );
    if !right {
        return Err(einval());
    }
    if !fdkind::belongs_to_this_mm(fd) {
        return Err(Errno(libc::EIO));
    }
    Ok(kind)
}

fn bind_current_thread(vcpu_fd: i32, vcpu_id: u32) -> Result<(), Errno> {
    let private = binding::private_dup(vcpu_fd)?;
    binding::set_current(private, vcpu_id).inspect_err(|_| {
        let _ = close(private);
    })
}

/// Records a slot change made with `KVM_SET_USER_MEMORY_REGION(2)` through
/// `kvmng_control`, so that a later failed `kvmng_memory_map` restores it.
/// The v1 struct is a prefix of v2 (no guest_memfd). Out of line: the
/// VM scope's short path calls it for these two requests only.
#[cold]
#[inline(never)]
fn note_slot_change(cmd: u64, arg: u64) {
    let region = match cmd {
        KVM_SET_USER_MEMORY_REGION2 => usermem::read_value::<kvm_userspace_memory_region2>(arg),
        KVM_SET_USER_MEMORY_REGION => usermem::read_value::<kvm_userspace_memory_region>(arg)
            .map(|v1| memmap::region2_of_v1(&v1)),
        _ => return,
    };
    if let Ok(region) = region {
        memmap::note_control_update(&region);
    }
}

/// A call on the bound VM failed: if the program has closed the binding's
/// private fd, the binding is gone, and the answer is `EUNATCH`, as if it
/// had never been (api.md section 6). Checked only on the errnos a closed
/// or reused fd gives, out of line: a call that succeeds pays a test.
#[inline]
fn vm_checked(r: SysResult) -> SysResult {
    r.or_else(vm_failed)
}

#[cold]
#[inline(never)]
fn vm_failed(errno: Errno) -> SysResult {
    match errno {
        Errno(libc::EBADF | libc::ENOTTY) if binding::vm_binding_lost() => {
            vm_binding_changed();
            Err(Errno(libc::EUNATCH))
        }
        Errno(libc::EIO) if binding::forked_without_handlers() => Err(Errno(libc::EUNATCH)),
        other => Err(other),
    }
}

/// As [`vm_checked`] for the calling thread's vCPU binding: `ESRCH`.
#[inline]
fn vcpu_checked(r: SysResult) -> SysResult {
    r.or_else(vcpu_failed)
}

#[cold]
#[inline(never)]
fn vcpu_failed(errno: Errno) -> SysResult {
    match errno {
        Errno(libc::EBADF | libc::ENOTTY) if binding::vcpu_binding_lost() => {
            Err(Errno(libc::ESRCH))
        }
        other => Err(other),
    }
}

/// The VM bound to the mm changed: what the emulation kept for the old one
/// (its slot table, its I/O regions) is dropped.
fn vm_binding_changed() {
    memmap::forget_slots();
    ioregion::forget_regions();
}

/// `kvmng_control()` of the system and vCPU scopes (and unknown ones),
/// `flags` already checked.
///
/// # Safety
/// As [`Backend::control`].
#[inline(never)]
unsafe fn control_system_or_vcpu(scope: u32, cmd: u64, arg: u64) -> SysResult {
    let fd = match scope {
        KVMNG_SCOPE_SYSTEM => {
            binding::vm_fd()?;
            binding::kvm_device_fd_or_open()?
        }
        KVMNG_SCOPE_VCPU => {
            let me = binding::current()?;
            let fd = me.fd.load(core::sync::atomic::Ordering::SeqCst);
            match cmd {
                KVM_RUN => return vcpu_checked(gate::run(me, fd)),
                KVM_SET_SIGNAL_MASK => return vcpu_checked(sigmask::set(fd, arg, Some(me))),
                _ => {}
            }
            // SAFETY: the caller vouches that `arg` is what `cmd` expects.
            return vcpu_checked(unsafe { ioctl(fd, cmd, arg) });
        }
        _ => return Err(einval()),
    };
    // SAFETY: as above.
    unsafe { ioctl(fd, cmd, arg) }
}

impl Backend for Legacy {
    fn kind(&self) -> BackendKind {
        BackendKind::Legacy
    }

    fn create_vm(&self, kvm_fd: i32, vm_type: u64, flags: u32) -> SysResult {
        if flags != 0 {
            return Err(einval());
        }
        let open_flags = fdkind::open_flags(kvm_fd)?;
        if !fdkind::is_kvm_device(kvm_fd)? {
            return Err(Errno(libc::ENODEV));
        }
        if open_flags as i32 & libc::O_ACCMODE != libc::O_RDWR {
            return Err(Errno(libc::EACCES));
        }
        binding::forked_without_handlers();
        if binding::vm_fd().is_ok() {
            if !binding::vm_binding_lost() {
                return Err(Errno(libc::EEXIST));
            }
            vm_binding_changed();
        }
        // The private duplicate's fd first: with a full fd table nothing
        // is created (api.md section 6).
        let reserved = binding::reserve_private(kvm_fd)?;
        // SAFETY: KVM_CREATE_VM takes an integer argument.
        let vm_fd = match unsafe { ioctl(kvm_fd, KVM_CREATE_VM, vm_type) } {
            Ok(fd) => fd as i32,
            Err(e) => {
                let _ = close(reserved);
                return Err(e);
            }
        };
        let bound = binding::fill_reserved(reserved, vm_fd).and_then(|private| {
            binding::set_vm(private).inspect_err(|_| {
                let _ = close(private);
            })
        });
        if let Err(errno) = bound {
            let _ = close(vm_fd);
            return Err(errno);
        }
        vm_binding_changed();
        binding::remember_kvm_device(kvm_fd);
        Ok(i64::from(vm_fd))
    }

    fn bind_vm(&self, vm_fd: i32, flags: u32) -> SysResult {
        if flags != 0 {
            return Err(einval());
        }
        let _guard = binding::ChangeGuard::lock();
        if vm_fd == KVMNG_UNBIND {
            if binding::clear_vm() {
                vm_binding_changed();
            }
            return Ok(0);
        }
        check_bindable(vm_fd, true)?;
        binding::forked_without_handlers();
        if binding::vm_fd().is_ok() && binding::vm_binding_lost() {
            vm_binding_changed();
        }
        if let Ok(bound) = binding::vm_fd() {
            return if fdkind::same_file(bound, vm_fd) {
                Ok(0)
            } else {
                Err(Errno(libc::EEXIST))
            };
        }
        let private = binding::private_dup(vm_fd)?;
        binding::set_vm(private).inspect_err(|_| {
            let _ = close(private);
        })?;
        vm_binding_changed();
        Ok(0)
    }

    fn create_vcpu(&self, id: u64, flags: u32) -> SysResult {
        if flags & !KVMNG_CREATE_VCPU_FLAGS != 0 {
            return Err(einval());
        }
        let vm_fd = binding::vm_fd()?;
        let bind = flags & KVMNG_CREATE_VCPU_BIND != 0;
        let _guard = bind.then(binding::ChangeGuard::lock);
        if bind && binding::current().is_ok() {
            return Err(Errno(libc::EBUSY));
        }
        if !bind {
            // SAFETY: KVM_CREATE_VCPU takes an integer argument.
            return vm_checked(unsafe { ioctl(vm_fd, KVM_CREATE_VCPU, id) });
        }
        // The private duplicate's fd first: KVM cannot destroy a vCPU, so
        // none may be created that the binding then fails to hold.
        let reserved = vm_checked(binding::reserve_private(vm_fd).map(i64::from))? as i32;
        // SAFETY: KVM_CREATE_VCPU takes an integer argument.
        let vcpu_fd = match vm_checked(unsafe { ioctl(vm_fd, KVM_CREATE_VCPU, id) }) {
            Ok(fd) => fd as i32,
            Err(e) => {
                let _ = close(reserved);
                return Err(e);
            }
        };
        let bound = binding::fill_reserved(reserved, vcpu_fd).and_then(|private| {
            binding::set_current(private, id as u32).inspect_err(|_| {
                let _ = close(private);
            })
        });
        if let Err(errno) = bound {
            let _ = close(vcpu_fd);
            return Err(errno);
        }
        Ok(i64::from(vcpu_fd))
    }

    fn bind_vcpu(&self, vcpu_fd: i32, flags: u32) -> SysResult {
        if flags != 0 {
            return Err(einval());
        }
        let _guard = binding::ChangeGuard::lock();
        if vcpu_fd == KVMNG_UNBIND {
            binding::clear_current();
            return Ok(0);
        }
        let FdKind::Vcpu(vcpu_id) = check_bindable(vcpu_fd, false)? else {
            return Err(einval());
        };
        if let Ok(mine) = binding::current_vcpu_fd() {
            if fdkind::same_file(mine, vcpu_fd) {
                return Ok(0);
            }
        }
        if binding::bound_elsewhere(vcpu_fd, crate::sys::gettid()) {
            return Err(Errno(libc::EBUSY));
        }
        bind_current_thread(vcpu_fd, vcpu_id)?;
        Ok(0)
    }

    fn run(&self, flags: u32) -> SysResult {
        if flags != 0 {
            return Err(einval());
        }
        let me = binding::current()?;
        vcpu_checked(gate::run(
            me,
            me.fd.load(core::sync::atomic::Ordering::SeqCst),
        ))
    }

    unsafe fn vcpu_state(
        &self,
        entries: *mut kvmng_state_entry,
        count: u32,
        flags: u32,
    ) -> SysResult {
        vcpu_checked(state::vcpu_state(entries as u64, count, flags))
    }

    unsafe fn vcpu_state_entries(
        &self,
        entries: &mut [kvmng_state_entry],
        flags: u32,
    ) -> SysResult {
        vcpu_checked(state::vcpu_state_in_place(entries, flags))
    }

    fn irq(&self, kind: u32, nr: u32, level: u32, flags: u32) -> SysResult {
        if flags != 0 {
            return Err(einval());
        }
        match kind {
            KVMNG_IRQ_LINE => {
                let vm_fd = binding::vm_fd()?;
                let line = kvm_irq_level {
                    __bindgen_anon_1: kvm_bindings::kvm_irq_level__bindgen_ty_1 { irq: nr },
                    level,
                };
                // SAFETY: the ioctl reads one kvm_irq_level from our stack.
                vm_checked(unsafe { ioctl(vm_fd, KVM_IRQ_LINE, &line as *const _ as u64) })
            }
            KVMNG_IRQ_INTERRUPT => {
                if level != 0 {
                    return Err(einval());
                }
                let fd = binding::current_vcpu_fd()?;
                let interrupt = kvm_interrupt { irq: nr };
                // SAFETY: the ioctl reads one kvm_interrupt from our stack.
                vcpu_checked(unsafe { ioctl(fd, KVM_INTERRUPT, &interrupt as *const _ as u64) })
            }
            KVMNG_IRQ_NMI | KVMNG_IRQ_SMI => {
                if nr != 0 || level != 0 {
                    return Err(einval());
                }
                let fd = binding::current_vcpu_fd()?;
                let cmd = if kind == KVMNG_IRQ_NMI {
                    KVM_NMI
                } else {
                    KVM_SMI
                };
                // SAFETY: KVM_NMI and KVM_SMI take no argument.
                vcpu_checked(unsafe { ioctl(fd, cmd, 0) })
            }
            _ => Err(einval()),
        }
    }

    unsafe fn memory_map(
        &self,
        regions: *const kvm_userspace_memory_region2,
        count: u32,
        flags: u32,
    ) -> SysResult {
        vm_checked(memmap::memory_map(regions as u64, count, flags))
    }

    unsafe fn memory_map_regions(
        &self,
        regions: &[kvm_userspace_memory_region2],
        flags: u32,
    ) -> SysResult {
        vm_checked(memmap::memory_map_in_place(regions, flags))
    }

    unsafe fn control(&self, scope: u32, cmd: u32, arg: u64, flags: u32) -> SysResult {
        if flags != 0 {
            return Err(einval());
        }
        let cmd = u64::from(cmd);
        if scope == KVMNG_SCOPE_VM {
            // The VM scope on its own, short path: the preload shim's
            // KVM_IRQ_LINE and KVM_CHECK_EXTENSION come this way, once per
            // call. `arg` goes to the ioctl as the caller gave it: KVM's
            // own copy checks a pointer in it (EFAULT).
            let fd = binding::vm_fd()?;
            // SAFETY: the caller vouches that `arg` is what `cmd` expects.
            let result = unsafe { ioctl(fd, cmd, arg) };
            if result.is_ok()
                && matches!(
                    cmd,
                    KVM_SET_USER_MEMORY_REGION | KVM_SET_USER_MEMORY_REGION2
                )
            {
                note_slot_change(cmd, arg);
            }
            return vm_checked(result);
        }
        // SAFETY: forwarded.
        unsafe { control_system_or_vcpu(scope, cmd, arg) }
    }

    unsafe fn ioregion(&self, op: u32, region: *const kvmng_ioregion, flags: u32) -> SysResult {
        ioregion::ioregion(op, region as u64, flags)
    }
}
