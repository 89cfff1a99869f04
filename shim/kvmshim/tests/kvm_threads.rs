//! vCPUs made and set up on one thread and run on others: the shim binds
//! each running thread lazily at its first KVM_RUN.

mod support;

use support::{count, same_as_native, Run};

#[test]
fn vcpus_created_on_main_run_on_their_own_threads() {
    if !support::kvm("vcpus_created_on_main_run_on_their_own_threads") {
        return;
    }
    let file = support::guest_file("real_pio");
    let stats = support::temp_file("threads.stats");
    let out = same_as_native(
        &["threads", file.to_str().unwrap(), "4"],
        Run::shim("auto").with("KVMNG_STATS", &stats),
    );
    assert_eq!(out.matches("hlt after 18 exits").count(), 5, "{out}");
    let line = &support::census(&stats)[0];
    // Every KVM_RUN, from the four threads and then from main, translated.
    assert_eq!(count(line, "KVM_RUN", "count"), 5 * 18, "{line}");
    assert_eq!(count(line, "KVM_RUN", "translated"), 5 * 18, "{line}");
    // The workers' KVM_GET_REGS after their runs: translated.
    assert_eq!(count(line, "KVM_GET_REGS", "translated"), 4, "{line}");
    // Set-up before any thread ran the vCPU waits for KVM_RUN (documented).
    assert!(
        line.contains("\"vCPU binds at its first KVM_RUN\""),
        "{line}"
    );
    assert_eq!(count(line, "KVM_CREATE_VCPU", "translated"), 4, "{line}");
}
