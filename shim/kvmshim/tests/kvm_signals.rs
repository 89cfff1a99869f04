//! Signals interrupting KVM_RUN (EINTR, KVM_EXIT_INTR) and immediate_exit,
//! natively and through the shim, with the kvm_run page mmap()ed from the
//! vCPU fd.

mod support;

use support::{count, same_as_native, Run};

#[test]
fn signals_interrupt_kvm_run_as_natively() {
    if !support::kvm("signals_interrupt_kvm_run_as_natively") {
        return;
    }
    let stats = support::temp_file("signal.stats");
    let out = same_as_native(&["signal"], Run::shim("auto").with("KVMNG_STATS", &stats));
    assert!(
        out.contains("run 0: EINTR exit_reason 10 alarm seen 1"),
        "{out}"
    );
    assert!(
        out.contains("KVM_RUN with immediate_exit = -1 EINTR"),
        "{out}"
    );
    let line = &support::census(&stats)[0];
    assert_eq!(count(line, "KVM_RUN", "translated"), 4, "{line}");
    assert_eq!(count(line, "KVM_RUN", "errors"), 4, "{line}");
}
