//! fork and exec: a child's KVM ioctls on inherited fds fail as natively
//! (EIO), a child may make its own VM; exec starts the shim afresh, and
//! KVMNG_SHIM=off opts a process and its children out.

mod support;

use support::{count, same_as_native, Run};

#[test]
fn fork_child_gets_eio_on_inherited_fds_and_runs_its_own_vm() {
    if !support::kvm("fork_child_gets_eio_on_inherited_fds_and_runs_its_own_vm") {
        return;
    }
    let file = support::guest_file("real_pio");
    let stats = support::temp_file("fork.stats");
    let out = same_as_native(
        &["fork", file.to_str().unwrap()],
        Run::shim("auto").with("KVMNG_STATS", &stats),
    );
    assert!(out.contains("child KVM_RUN inherited = -1 EIO"), "{out}");
    assert!(out.contains("child status 0"), "{out}");
    let lines = support::census(&stats);
    assert_eq!(
        lines.len(),
        2,
        "a line for the child and the parent: {lines:?}"
    );
    let child = &lines[0];
    let parent = &lines[1];
    assert_ne!(support::field(child, "pid"), support::field(parent, "pid"));
    // The child's own VM is translated; the inherited fds fall back.
    assert_eq!(count(child, "KVM_CREATE_VM", "translated"), 1, "{child}");
    assert_eq!(count(child, "KVM_RUN", "translated"), 18, "{child}");
    assert!(
        child.contains("\"VM not bound in this process\""),
        "{child}"
    );
    // The parent's census has only its own calls.
    assert_eq!(count(parent, "KVM_RUN", "count"), 18, "{parent}");
}

#[test]
fn exec_starts_the_shim_afresh() {
    if !support::kvm("exec_starts_the_shim_afresh") {
        return;
    }
    let file = support::guest_file("real_pio");
    let probe = support::probe();
    let stats = support::temp_file("exec.stats");
    let out = same_as_native(
        &["exec", file.to_str().unwrap(), probe.to_str().unwrap()],
        Run::shim("auto").with("KVMNG_STATS", &stats),
    );
    assert!(
        out.contains("before exec:") && out.contains("KVM_GET_REGS = 0"),
        "{out}"
    );
    let lines = support::census(&stats);
    assert_eq!(lines.len(), 2, "before and after exec: {lines:?}");
    assert_eq!(
        support::field(&lines[0], "pid"),
        support::field(&lines[1], "pid")
    );
    assert_eq!(count(&lines[0], "KVM_RUN", "translated"), 18);
    assert_eq!(count(&lines[1], "KVM_RUN", "translated"), 18);
    assert!(count(&lines[1], "KVM_GET_MSRS", "translated") >= 1);
}

#[test]
fn shim_off_in_the_new_image_reports_nothing() {
    if !support::kvm("shim_off_in_the_new_image_reports_nothing") {
        return;
    }
    let file = support::guest_file("real_pio");
    let probe = support::probe();
    let stats = support::temp_file("exec-off.stats");
    same_as_native(
        &[
            "exec",
            file.to_str().unwrap(),
            probe.to_str().unwrap(),
            "off",
        ],
        Run::shim("auto").with("KVMNG_STATS", &stats),
    );
    let lines = support::census(&stats);
    assert_eq!(lines.len(), 1, "only the image before exec: {lines:?}");
}

#[test]
fn shim_off_opts_the_whole_process_out() {
    if !support::kvm("shim_off_opts_the_whole_process_out") {
        return;
    }
    let file = support::guest_file("real_pio");
    let stats = support::temp_file("off.stats");
    let trace = support::temp_file("off.trace");
    same_as_native(
        &["fork", file.to_str().unwrap()],
        Run::shim("auto")
            .with("KVMNG_SHIM", "off")
            .with("KVMNG_STATS", &stats)
            .with("KVMNG_TRACE", &trace),
    );
    assert!(!stats.exists(), "no census with KVMNG_SHIM=off");
    assert!(!trace.exists(), "no trace with KVMNG_SHIM=off");
}
