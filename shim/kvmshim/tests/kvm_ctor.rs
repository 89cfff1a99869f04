//! Another library's constructor calls ioctl() before the shim's
//! constructor ran: terminal ioctls take the fast path, KVM ioctls set the
//! shim up early; the program then runs normally.

mod support;

use support::Run;

fn run_with_preload(order_first: bool) {
    let ctor = support::compile_c("ctor_ioctl", true);
    let shim = support::shim_lib();
    let preload = if order_first {
        format!("{} {}", ctor.display(), shim.display())
    } else {
        format!("{} {}", shim.display(), ctor.display())
    };
    let stats = support::temp_file("ctor.stats");
    let run = Run {
        preload: Some(preload),
        ..Run::default()
    }
    .with("KVMNG_STATS", &stats);
    let out = run.run(&support::probe(), &["nokvm"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ctor TCGETS ENOTTY"), "{stderr}");
    assert!(stderr.contains("ctor KVM_GET_API_VERSION 12"), "{stderr}");
    assert!(stderr.contains("ctor KVM_CREATE_VM ok"), "{stderr}");
    assert!(stderr.contains("ctor KVM_CHECK_EXTENSION 1"), "{stderr}");
    let native = Run::native().probe(&["nokvm"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), native);
    let line = &support::census(&stats)[0];
    assert_eq!(
        support::count(line, "KVM_CREATE_VM", "translated"),
        1,
        "{line}"
    );
}

#[test]
fn a_constructor_listed_before_the_shim() {
    if support::kvm("a_constructor_listed_before_the_shim") {
        run_with_preload(true);
    }
}

#[test]
fn a_constructor_listed_after_the_shim() {
    if support::kvm("a_constructor_listed_after_the_shim") {
        run_with_preload(false);
    }
}
