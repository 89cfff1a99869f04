//! fd knowledge stays true: dup'd fds, fd numbers reused after close, a
//! new VM once the first is gone, a second live VM.

mod support;

use support::{count, same_as_native, Run};

#[test]
fn dups_and_reused_numbers() {
    if !support::kvm("dups_and_reused_numbers") {
        return;
    }
    let file = support::guest_file("real_pio");
    let stats = support::temp_file("reuse.stats");
    let out = same_as_native(
        &["reuse", file.to_str().unwrap()],
        Run::shim("auto").with("KVMNG_STATS", &stats),
    );
    assert!(out.contains("reused numbers: 1 1"), "{out}");
    assert!(out.contains("KVM_RUN on reused fd = -1 ENOTTY"), "{out}");
    let line = &support::census(&stats)[0];
    // The run through the dup and the second VM: all translated.
    assert_eq!(count(line, "KVM_CREATE_VM", "translated"), 2, "{line}");
    assert_eq!(count(line, "KVM_RUN", "translated"), 36, "{line}");
    assert_eq!(count(line, "KVM_GET_REGS", "translated"), 2, "{line}");
}

#[test]
fn a_second_live_vm_falls_back() {
    if !support::kvm("a_second_live_vm_falls_back") {
        return;
    }
    let file = support::guest_file("real_pio");
    let stats = support::temp_file("twovms.stats");
    let out = same_as_native(
        &["twovms", file.to_str().unwrap()],
        Run::shim("auto").with("KVMNG_STATS", &stats),
    );
    assert_eq!(out.matches("hlt after 18 exits").count(), 2, "{out}");
    let line = &support::census(&stats)[0];
    assert_eq!(count(line, "KVM_CREATE_VM", "translated"), 1, "{line}");
    assert_eq!(count(line, "KVM_CREATE_VM", "fallback"), 1, "{line}");
    assert!(line.contains("\"second live VM\":1"), "{line}");
    assert_eq!(count(line, "KVM_RUN", "translated"), 18, "{line}");
    assert_eq!(count(line, "KVM_RUN", "fallback"), 18, "{line}");
}
