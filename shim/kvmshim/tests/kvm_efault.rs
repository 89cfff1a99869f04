//! Bad pointers and bad counts give the native errno (EFAULT, E2BIG,
//! EINVAL, ENOTTY, ...) and never crash, in auto and passthrough mode.

mod support;

use support::{count, same_as_native, Run};

#[test]
fn bad_pointers_give_the_native_errors() {
    if !support::kvm("bad_pointers_give_the_native_errors") {
        return;
    }
    let stats = support::temp_file("efault.stats");
    let out = same_as_native(&["efault"], Run::shim("auto").with("KVMNG_STATS", &stats));
    for expected in [
        "KVM_GET_REGS bad = -1 EFAULT",
        "KVM_GET_MSRS bad header = -1 EFAULT",
        "KVM_GET_MSRS nmsrs 1000 = -1 E2BIG",
        "KVM_GET_MSRS nmsrs 2^28-1 = -1 E2BIG",
        "KVM_GET_MSRS nmsrs 2^28 = -1 E2BIG",
        "KVM_SET_MSRS nmsrs 2^32-1 = -1 E2BIG",
        "KVM_SET_USER_MEMORY_REGION bad = -1 EFAULT",
        "KVM_IRQ_LINE bad = -1 EFAULT",
        "KVM_INTERRUPT bad = -1 EFAULT",
        "KVM_RUN on the VM fd = -1 ENOTTY",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let line = &support::census(&stats)[0];
    // The bad-pointer calls on the bound VM's fds were translated.
    assert!(count(line, "KVM_GET_REGS", "translated") >= 1, "{line}");
    assert!(count(line, "KVM_GET_MSRS", "translated") >= 2, "{line}");
    assert!(
        count(line, "KVM_SET_USER_MEMORY_REGION2", "translated") >= 1,
        "{line}"
    );
    // KVM_IRQ_LINE is kvmng_control(KVMNG_SCOPE_VM, ...): the pointer goes
    // to the ioctl, whose own copy answers EFAULT.
    assert!(count(line, "KVM_IRQ_LINE", "translated") >= 1, "{line}");
    assert!(line.contains("\"not a KVM fd\""), "{line}");
    assert!(line.contains("\"entry count too large\""), "{line}");
}

/// Without a census or trace, the calls the hot-call path answers
/// (KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_GET_XSAVE,
/// KVM_GET_VCPU_EVENTS, KVM_GET_MP_STATE on the bound vCPU, KVM_IRQ_LINE
/// on the bound VM) take it: with a bad pointer they answer EFAULT too, and
/// nothing crashes. So do the MSR calls, hot too, with an unbounded entry:
/// an MSR count too large for an entry's size is handed to the general
/// path, whose fallback gives the ioctl's answer, E2BIG.
#[test]
fn bad_pointers_on_the_hot_path() {
    if !support::kvm("bad_pointers_on_the_hot_path") {
        return;
    }
    let out = same_as_native(&["efault"], Run::shim("auto"));
    for expected in [
        "KVM_IRQ_LINE bad = -1 EFAULT",
        "KVM_GET_REGS bad = -1 EFAULT",
        "KVM_SET_REGS bad = -1 EFAULT",
        "KVM_GET_MP_STATE bad = -1 EFAULT",
        "KVM_GET_MSRS bad header = -1 EFAULT",
        "KVM_GET_MSRS nmsrs 2^28-1 = -1 E2BIG",
        "KVM_GET_MSRS nmsrs 2^28 = -1 E2BIG",
        "KVM_SET_MSRS nmsrs 2^32-1 = -1 E2BIG",
        "KVM_GET_XSAVE bad = -1 EFAULT",
        "KVM_SET_MSRS 0x174=0x10 = 1",
        "KVM_GET_MSRS 0x174 = 1",
        "msr 0x174 = 0x10",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn bad_pointers_in_passthrough() {
    if !support::kvm("bad_pointers_in_passthrough") {
        return;
    }
    same_as_native(&["efault"], Run::shim("passthrough"));
}
