//! What needs no /dev/kvm: ordinary ioctls and fd calls pass through the
//! shim unchanged (errno included), and KVMNG_MODE=syscall stops a program
//! at start on a kernel without the kvmng syscalls.

mod support;

use support::{same_as_native, Run};

#[test]
fn ordinary_ioctls_and_fd_calls_are_untouched() {
    let stats = support::temp_file("nokvm.stats");
    let out = same_as_native(&["nokvm"], Run::shim("auto").with("KVMNG_STATS", &stats));
    assert!(
        out.contains("errno untouched by a successful ioctl = 1"),
        "{out}"
    );
    assert!(out.contains("FIONREAD bad pointer = -1 EFAULT"), "{out}");
    // Two KVMIO requests on non-KVM fds: counted as fallbacks.
    let line = &support::census(&stats)[0];
    assert!(line.contains("\"not a KVM fd\":1"), "{line}");
}

#[test]
fn syscall_mode_stops_the_program_on_a_kernel_without_kvmng() {
    if support::kernel_has_kvmng() {
        eprintln!("SKIPPED: this kernel has the kvmng syscalls");
        return;
    }
    let out = Run::shim("syscall").run(&support::probe(), &["nokvm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "the program must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("KVMNG_MODE=syscall") && stderr.contains("no kvmng syscalls"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_mode_is_named_and_auto_used() {
    let out = Run::shim("fastest").run(&support::probe(), &["nokvm"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("KVMNG_MODE=\"fastest\" is not a mode"),
        "{stderr}"
    );
}
