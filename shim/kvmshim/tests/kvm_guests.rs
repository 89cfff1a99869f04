//! Guests through the shim give exactly the native results, and the census
//! and trace say how each call went.

mod support;

use support::{count, same_as_native, total, Run};

fn guest(name: &str, mode: &str) {
    let test = format!("guest_{name}");
    if !support::kvm(&test) {
        return;
    }
    let file = support::guest_file(name);
    let file = file.to_str().unwrap();
    let stats = support::temp_file(&format!("{name}.stats"));
    let out = same_as_native(
        &["guest", file, mode],
        Run::shim("auto").with("KVMNG_STATS", &stats),
    );
    assert!(out.contains("hlt after"), "{out}");
    let lines = support::census(&stats);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    for cmd in [
        "KVM_CREATE_VM",
        "KVM_CREATE_VCPU",
        "KVM_SET_USER_MEMORY_REGION",
        "KVM_RUN",
        "KVM_GET_REGS",
        "KVM_GET_MSRS",
        "KVM_SET_MSRS",
        "KVM_GET_XSAVE2",
        "KVM_GET_CPUID2",
        "KVM_NMI",
        "KVM_INTERRUPT",
        "KVM_IRQ_LINE",
        "KVM_SET_USER_MEMORY_REGION2",
        "KVM_GET_SUPPORTED_CPUID",
    ] {
        assert!(
            count(line, cmd, "translated") >= 1,
            "{cmd} not translated: {line}"
        );
    }
    assert_eq!(
        count(line, "KVM_RUN", "translated"),
        count(line, "KVM_RUN", "count"),
        "{line}"
    );
    assert!(line.contains("\"mode\":\"auto\""), "{line}");
}

#[test]
fn real_pio() {
    guest("real_pio", "real");
}

#[test]
fn real_mmio() {
    guest("real_mmio", "real");
}

#[test]
fn long_pio() {
    guest("long_pio", "long");
}

#[test]
fn long_mmio() {
    guest("long_mmio", "long");
}

#[test]
fn passthrough_translates_nothing_and_counts_everything() {
    if !support::kvm("passthrough_translates_nothing_and_counts_everything") {
        return;
    }
    let file = support::guest_file("real_pio");
    let stats = support::temp_file("passthrough.stats");
    same_as_native(
        &["guest", file.to_str().unwrap(), "real"],
        Run::shim("passthrough").with("KVMNG_STATS", &stats),
    );
    let lines = support::census(&stats);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(
        line.contains("\"mode\":\"passthrough\",\"backend\":\"none\""),
        "{line}"
    );
    assert_eq!(total(line, "translated"), 0, "{line}");
    assert_eq!(total(line, "fallback"), 0, "{line}");
    assert_eq!(count(line, "KVM_RUN", "passthrough"), 18, "{line}");
    assert!(total(line, "passthrough") > 30, "{line}");
}

#[test]
fn trace_lines_decode_every_call() {
    if !support::kvm("trace_lines_decode_every_call") {
        return;
    }
    let file = support::guest_file("real_pio");
    let trace = support::temp_file("guest.trace");
    let stats = support::temp_file("guest.stats");
    support::Run::shim("auto")
        .with("KVMNG_TRACE", &trace)
        .with("KVMNG_STATS", &stats)
        .probe(&["guest", file.to_str().unwrap(), "real"]);
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let line = &support::census(&stats)[0];
    assert_eq!(
        lines.len() as u64,
        total(line, "count"),
        "one trace line per call"
    );
    let first = lines[0];
    assert!(first.starts_with("pid="), "{first}");
    assert!(
        first.contains(" cmd=KVM_GET_API_VERSION fd=")
            && first.contains(" class=system ret=12 ns=")
            && first.ends_with(" path=fallback reason=\"system ioctl before a VM is bound\""),
        "{first}"
    );
    let run = lines
        .iter()
        .find(|l| l.contains(" cmd=KVM_RUN "))
        .expect("a KVM_RUN line");
    assert!(
        run.contains(" class=vcpu ret=0 ") && run.ends_with(" path=translated"),
        "{run}"
    );
    let lapic = lines
        .iter()
        .find(|l| l.contains(" cmd=KVM_GET_LAPIC "))
        .expect("a KVM_GET_LAPIC line");
    assert!(lapic.contains(" ret=-1 errno=EINVAL "), "{lapic}");
    for l in &lines {
        let ns: u64 = l
            .split(" ns=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no duration in {l}"));
        assert!(ns < 10_000_000_000, "{l}");
    }
}
