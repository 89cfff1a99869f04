//! The two halves in one process (docs/trap.md, "What happens at load";
//! docs/shim.md, "How an ioctl is carried out"): where the trap half's
//! seccomp filter is installed (auto mode on a kernel without kvmng), the
//! raw kvmng probe would be answered by the emulation (EINVAL) and select
//! the native backend, whose every call would then come back through the
//! trap. The interposition half asks `trap::kernel_has_kvmng()` instead:
//! its backend is the legacy one, and translated ioctls never reach the
//! SIGSYS handler (`kvmshim_trapped_calls()` stays put), while the
//! program's own kvmng syscall does.

mod support;

use support::{count, Run};

#[test]
fn under_the_filter_translated_ioctls_use_the_legacy_backend_not_the_trap() {
    if !support::kvm("under_the_filter_translated_ioctls_use_the_legacy_backend_not_the_trap") {
        return;
    }
    if support::kernel_has_kvmng() {
        eprintln!("SKIPPED: the kernel has the kvmng syscalls: no filter is installed");
        return;
    }
    let program = support::kvmng_c_program("trap_backend");
    // The backend is chosen at the first KVM ioctl, after the filter went
    // in; KVMNG_BACKEND=auto asks the probe explicitly.
    for backend in [None, Some("auto")] {
        let stats = support::temp_file("trap-backend.stats");
        let trace = support::temp_file("trap-backend.trace");
        let mut run = Run::shim("auto")
            .with("KVMNG_STATS", &stats)
            .with("KVMNG_TRACE", &trace);
        if let Some(b) = backend {
            run = run.with("KVMNG_BACKEND", b);
        }
        let out = run.run(&program, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(stderr.is_empty(), "{backend:?}: {stderr}");
        for expected in [
            "seccomp filters = 1\n",
            "KVM_CREATE_VM = ",
            "KVM_RUN = 0\n",
            "exit reason hlt = 1\n",
            "rip after hlt = 0x1001\n",
            "KVM_GET_MP_STATE = 0\n",
            // Translated ioctls went to the legacy backend directly...
            "trapped during the ioctls = 0\n",
            // ...while the filter is there and answers the program's own.
            "kvmng_run(~0) made by the program = -1 EINVAL\n",
            "trapped by that kvmng syscall = 1\n",
        ] {
            assert!(
                out.contains(expected),
                "{backend:?}: no {expected:?} in:\n{out}"
            );
        }
        let lines = support::census(&stats);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(
            line.contains("\"mode\":\"auto\",\"backend\":\"legacy\""),
            "{backend:?}: {line}"
        );
        for name in [
            "KVM_CREATE_VM",
            "KVM_SET_USER_MEMORY_REGION",
            "KVM_CREATE_VCPU",
            "KVM_RUN",
            "KVM_GET_MP_STATE",
        ] {
            assert_eq!(count(line, name, "translated"), 1, "{name}: {line}");
        }
        let trace = std::fs::read_to_string(&trace).expect("trace file");
        assert!(
            trace
                .lines()
                .any(|l| l.contains("cmd=KVM_RUN ") && l.contains("path=translated")),
            "{trace}"
        );
    }
}
