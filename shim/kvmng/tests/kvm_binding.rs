//! The binding rules of docs/api.md section 2, and the permission checks
//! of kvmng_create_vm, through the raw backend calls.

mod support;

use kvmng_abi::*;
use std::os::fd::AsRawFd;
use support::errno;

const EUNATCH: i32 = libc::EUNATCH;

#[test]
fn vm_scope_calls_without_a_bound_vm_fail_with_eunatch() {
    let Some(env) = support::env("vm_scope_calls_without_a_bound_vm_fail_with_eunatch") else {
        return;
    };
    let b = env.kvm.backend();
    assert_eq!(errno(b.create_vcpu(0, 0)), EUNATCH);
    assert_eq!(errno(b.irq(KVMNG_IRQ_LINE, 0, 1, 0)), EUNATCH);
    // SAFETY: count 0 regions; nothing is read.
    let mapped = unsafe { b.memory_map(core::ptr::null(), 0, 0) };
    assert_eq!(errno(mapped), EUNATCH);
    // SAFETY: integer ioctls.
    unsafe {
        assert_eq!(
            errno(b.control(KVMNG_SCOPE_VM, ioctls::KVM_CHECK_EXTENSION as u32, 1, 0)),
            EUNATCH
        );
        assert_eq!(
            errno(b.control(KVMNG_SCOPE_SYSTEM, ioctls::KVM_GET_API_VERSION as u32, 0, 0)),
            EUNATCH
        );
    }
}

#[test]
fn vcpu_scope_calls_without_a_bound_vcpu_fail_with_esrch() {
    let Some(env) = support::env("vcpu_scope_calls_without_a_bound_vcpu_fail_with_esrch") else {
        return;
    };
    let vm = env.kvm.create_vm().unwrap();
    let _unbound = vm.create_vcpu(0).unwrap();
    let b = env.kvm.backend();
    assert_eq!(errno(b.run(0)), libc::ESRCH);
    assert_eq!(errno(b.irq(KVMNG_IRQ_NMI, 0, 0, 0)), libc::ESRCH);
    assert_eq!(errno(b.irq(KVMNG_IRQ_INTERRUPT, 32, 0, 0)), libc::ESRCH);
    let mut regs = kvm_bindings::kvm_regs::default();
    let mut entry = kvmng_state_entry {
        kind: KVMNG_STATE_REGS,
        op: KVMNG_STATE_GET,
        addr: &mut regs as *mut _ as u64,
        size: 144,
        result: 0,
    };
    // SAFETY: one live entry and its buffer.
    let state = unsafe { b.vcpu_state(&mut entry, 1, 0) };
    assert_eq!(errno(state), libc::ESRCH);
    // SAFETY: integer ioctl.
    let run = unsafe { b.control(KVMNG_SCOPE_VCPU, ioctls::KVM_RUN as u32, 0, 0) };
    assert_eq!(errno(run), libc::ESRCH);
}

#[test]
fn one_bound_vm_per_process_and_rebinding_rules() {
    let Some(env) = support::env("one_bound_vm_per_process_and_rebinding_rules") else {
        return;
    };
    let b = env.kvm.backend();
    let vm = env.kvm.create_vm().unwrap();
    assert_eq!(
        errno(b.create_vm(env.kvm.kvm_fd(), 0, 0)),
        libc::EEXIST,
        "second create_vm"
    );
    // A second VM made with the legacy ioctl exists beside it but cannot be
    // bound while the first is.
    // SAFETY: integer ioctl on our /dev/kvm fd.
    let second =
        unsafe { kvmng::sys::ioctl(env.kvm.kvm_fd(), ioctls::KVM_CREATE_VM, 0) }.unwrap() as i32;
    assert_eq!(errno(b.bind_vm(second, 0)), libc::EEXIST);
    assert_eq!(
        b.bind_vm(vm.fd(), 0),
        Ok(0),
        "binding the bound VM again is a no-op"
    );
    assert_eq!(b.bind_vm(KVMNG_UNBIND, 0), Ok(0));
    assert_eq!(
        b.bind_vm(KVMNG_UNBIND, 0),
        Ok(0),
        "unbinding twice is a no-op"
    );
    assert_eq!(errno(b.create_vcpu(0, 0)), EUNATCH);
    assert_eq!(b.bind_vm(second, 0), Ok(0), "now the second VM binds");
    let vcpu_fd = b.create_vcpu(3, 0).unwrap() as i32;
    assert_eq!(
        std::fs::read_link(format!("/proc/self/fd/{vcpu_fd}"))
            .unwrap()
            .to_str(),
        Some("anon_inode:kvm-vcpu:3")
    );
    assert_eq!(b.bind_vm(KVMNG_UNBIND, 0), Ok(0));
    kvmng::sys::close(vcpu_fd).unwrap();
    kvmng::sys::close(second).unwrap();
    assert_eq!(b.bind_vm(vm.fd(), 0), Ok(0));
}

#[test]
fn a_vcpu_is_bound_to_one_thread_at_a_time() {
    let Some(env) = support::env("a_vcpu_is_bound_to_one_thread_at_a_time") else {
        return;
    };
    let b = env.kvm.backend();
    let vm = env.kvm.create_vm().unwrap();
    let bound = vm.create_bound_vcpu(0).unwrap();
    let fd = bound.fd();
    assert_eq!(
        errno(b.create_vcpu(1, KVMNG_CREATE_VCPU_BIND)),
        libc::EBUSY,
        "caller already bound"
    );
    assert_eq!(
        b.bind_vcpu(fd, 0),
        Ok(0),
        "binding one's own vCPU again is a no-op"
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(
                errno(b.bind_vcpu(fd, 0)),
                libc::EBUSY,
                "held by the main thread"
            );
            assert_eq!(
                errno(b.run(0)),
                libc::ESRCH,
                "the other thread is not bound"
            );
        });
    });
    let vcpu = bound.unbind().unwrap();
    // A plain spawned thread, joined with pthread_join: it has fully exited
    // (and its binding is gone) when join returns. Scoped threads report
    // completion before the OS thread exits, so they would race here.
    std::thread::spawn(move || {
        assert_eq!(b.bind_vcpu(fd, 0), Ok(0), "free after unbind");
        // The thread exits still bound: its binding goes with it.
    })
    .join()
    .unwrap();
    assert_eq!(
        b.bind_vcpu(fd, 0),
        Ok(0),
        "free again after the thread exited"
    );
    // Rebinding to another vCPU replaces the binding.
    let other = vm.create_vcpu(1).unwrap();
    assert_eq!(b.bind_vcpu(other.fd(), 0), Ok(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(
                b.bind_vcpu(fd, 0),
                Ok(0),
                "vCPU 0 was released by the rebind"
            )
        });
    });
    assert_eq!(b.bind_vcpu(KVMNG_UNBIND, 0), Ok(0));
    drop(vcpu);
}

#[test]
fn bind_calls_reject_fds_of_the_wrong_kind() {
    let Some(env) = support::env("bind_calls_reject_fds_of_the_wrong_kind") else {
        return;
    };
    let b = env.kvm.backend();
    let vm = env.kvm.create_vm().unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    let file = std::fs::File::open("/proc/self/status").unwrap();
    assert_eq!(
        errno(b.bind_vcpu(vm.fd(), 0)),
        libc::EINVAL,
        "a VM fd is not a vCPU"
    );
    assert_eq!(errno(b.bind_vcpu(file.as_raw_fd(), 0)), libc::EINVAL);
    assert_eq!(errno(b.bind_vcpu(env.kvm.kvm_fd(), 0)), libc::EINVAL);
    assert_eq!(
        errno(b.bind_vm(vcpu.fd(), 0)),
        libc::EINVAL,
        "a vCPU fd is not a VM"
    );
    assert_eq!(errno(b.bind_vm(file.as_raw_fd(), 0)), libc::EINVAL);
    assert_eq!(errno(b.bind_vm(9999, 0)), libc::EBADF);
    assert_eq!(errno(b.bind_vcpu(9999, 0)), libc::EBADF);
    assert_eq!(errno(b.bind_vcpu(-2, 0)), libc::EBADF);
}

#[test]
fn create_vm_needs_dev_kvm_opened_read_write() {
    let Some(env) = support::env("create_vm_needs_dev_kvm_opened_read_write") else {
        return;
    };
    let b = env.kvm.backend();
    let read_only = std::fs::File::open("/dev/kvm").unwrap();
    assert_eq!(
        errno(b.create_vm(read_only.as_raw_fd(), 0, 0)),
        libc::EACCES
    );
    let not_kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .unwrap();
    assert_eq!(errno(b.create_vm(not_kvm.as_raw_fd(), 0, 0)), libc::ENODEV);
    assert_eq!(errno(b.create_vm(9999, 0, 0)), libc::EBADF);
    assert_eq!(errno(b.create_vm(-1, 0, 0)), libc::EBADF);
    assert_eq!(
        errno(b.create_vm(env.kvm.kvm_fd(), 0xdead, 0)),
        libc::EINVAL,
        "KVM's own answer to a bad type"
    );
    // Nothing was bound by the failures.
    assert_eq!(errno(b.create_vcpu(0, 0)), EUNATCH);
}

/// Runs `child` in a forked child and returns its exit status.
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: fork in a test process; the child only makes raw syscalls and
    // then _exit()s, never returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(99);
        // SAFETY: leaving the child without running the parent's atexit.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    libc::WEXITSTATUS(status)
}

#[test]
fn a_forked_child_reaches_nothing_of_the_parents_vm() {
    let Some(env) = support::env("a_forked_child_reaches_nothing_of_the_parents_vm") else {
        return;
    };
    let b = env.kvm.backend();
    let vm = env.kvm.create_vm().unwrap();
    let vcpu = vm.create_bound_vcpu(0).unwrap();
    let (vm_fd, vcpu_fd, kvm_fd) = (vm.fd(), vcpu.fd(), env.kvm.kvm_fd());
    let code = in_child(|| {
        // The child's mm has no bound VM, its thread no bound vCPU.
        let checks = [
            (b.create_vcpu(1, 0), EUNATCH),
            (b.run(0), libc::ESRCH),
            (b.irq(KVMNG_IRQ_LINE, 0, 1, 0), EUNATCH),
            // The inherited fds belong to another mm: EIO, as KVM's ioctls.
            (b.bind_vm(vm_fd, 0), libc::EIO),
            (b.bind_vcpu(vcpu_fd, 0), libc::EIO),
        ];
        for (i, (got, want)) in checks.iter().enumerate() {
            if *got != Err(kvmng::Errno(*want)) {
                eprintln!("child check {i}: got {got:?}, want errno {want}");
                return 10 + i as i32;
            }
        }
        // The child may create a VM of its own.
        match b.create_vm(kvm_fd, 0, 0) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("child create_vm: {e}");
                20
            }
        }
    });
    assert_eq!(code, 0);
    // The parent's bindings are untouched.
    assert_eq!(b.bind_vcpu(vcpu_fd, 0), Ok(0));
    assert_eq!(b.bind_vm(vm_fd, 0), Ok(0));
}

#[test]
fn closing_fds_keeps_the_vm_alive_through_its_binding() {
    let Some(env) = support::env("closing_fds_keeps_the_vm_alive_through_its_binding") else {
        return;
    };
    let b = env.kvm.backend();
    let vm_fd = b.create_vm(env.kvm.kvm_fd(), 0, 0).unwrap() as i32;
    kvmng::sys::close(vm_fd).unwrap();
    // The VM lives on through the binding: vCPUs can still be created.
    let vcpu_fd = b.create_vcpu(0, KVMNG_CREATE_VCPU_BIND).unwrap() as i32;
    kvmng::sys::close(vcpu_fd).unwrap();
    let mut mp = kvm_bindings::kvm_mp_state::default();
    let mut entry = kvmng_state_entry {
        kind: KVMNG_STATE_MP_STATE,
        op: KVMNG_STATE_GET,
        addr: &mut mp as *mut _ as u64,
        size: 4,
        result: -1,
    };
    // SAFETY: one live entry and its buffer.
    let state = unsafe { b.vcpu_state(&mut entry, 1, 0) };
    assert_eq!(state, Ok(1), "the bound vCPU works with its fd closed");
    assert_eq!(entry.result, 0);
    assert_eq!(b.bind_vcpu(KVMNG_UNBIND, 0), Ok(0));
    assert_eq!(b.bind_vm(KVMNG_UNBIND, 0), Ok(0));
    assert_eq!(errno(b.create_vcpu(1, 0)), EUNATCH);
}

#[test]
fn system_scope_reaches_dev_kvm_for_a_vm_bound_after_the_ioctl_created_it() {
    // Regression: the emulation used to send system-scope commands to the
    // VM fd when the VM was bound with kvmng_bind_vm (no /dev/kvm fd known).
    let Some(env) =
        support::env("system_scope_reaches_dev_kvm_for_a_vm_bound_after_the_ioctl_created_it")
    else {
        return;
    };
    let b = env.kvm.backend();
    // SAFETY: integer ioctl on our /dev/kvm fd.
    let vm_fd =
        unsafe { kvmng::sys::ioctl(env.kvm.kvm_fd(), ioctls::KVM_CREATE_VM, 0) }.unwrap() as i32;
    assert_eq!(b.bind_vm(vm_fd, 0), Ok(0));
    // SAFETY: integer ioctls.
    let version =
        unsafe { b.control(KVMNG_SCOPE_SYSTEM, ioctls::KVM_GET_API_VERSION as u32, 0, 0) };
    assert_eq!(version, Ok(12));
    // SAFETY: integer ioctl.
    let size = unsafe {
        b.control(
            KVMNG_SCOPE_SYSTEM,
            ioctls::KVM_GET_VCPU_MMAP_SIZE as u32,
            0,
            0,
        )
    };
    assert!(size.unwrap() >= 4096);
    assert_eq!(b.bind_vm(KVMNG_UNBIND, 0), Ok(0));
    kvmng::sys::close(vm_fd).unwrap();
}
