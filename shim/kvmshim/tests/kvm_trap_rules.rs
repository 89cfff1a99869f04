//! The SIGSYS handler's rules (docs/trap.md), each checked by a C program
//! of compat-tests/conformance/trap run with libkvmshim.so preloaded on a
//! stock kernel.

mod trap_support;

use trap_support::*;

#[test]
fn a_program_with_its_own_sigsys_handler_keeps_both_working() {
    if skip("own_sigsys") {
        return;
    }
    let program = build("own_sigsys");
    let out = run_with_shim(&program, &[]);
    assert_passed("own_sigsys", &out);
    let text = stdout(&out);
    for check in [
        "raise(SIGSYS) reaches our handler",
        "our own filter's trap reaches our handler",
        "kvmng syscalls still emulated under our own filter too",
        "signal(SIGSYS) returns the previous handler",
        "kvmng syscalls work with every signal blocked",
        "a kvmng syscall inside a handler with a full sa_mask",
        "SIG_IGN: raise(SIGSYS) is ignored",
    ] {
        assert!(
            text.contains(&format!("ok: {check}")),
            "missing: {check}\n{text}"
        );
    }
}

#[test]
fn the_programs_default_and_one_shot_sigsys_actions_still_kill() {
    if skip("own_sigsys default") {
        return;
    }
    let program = build("own_sigsys");
    // SA_RESETHAND: the first raise reaches the handler, the second the
    // default action.
    let out = run_with_shim(&program, &["resethand"]);
    assert_eq!(killed_by(&out), Some(libc::SIGSYS), "{}", stdout(&out));
    assert!(stdout(&out).contains("ok: raise(SIGSYS) reaches our handler"));
    // A trap of the program's own filter with SIGSYS at SIG_DFL kills, as
    // it would without the shim.
    let out = run_with_shim(&program, &["default"]);
    assert_eq!(killed_by(&out), Some(libc::SIGSYS), "{}", stdout(&out));
}

#[test]
fn threads_created_before_the_shim_loaded_are_covered() {
    if skip("tsync_dlopen") {
        return;
    }
    let program = build("tsync_dlopen");
    let shim = shim();
    let out = run_plain(&program, &[shim.to_str().unwrap()]);
    assert_passed("tsync_dlopen", &out);
}

#[test]
fn errno_is_preserved_across_emulated_calls() {
    if skip("errno_keep") {
        return;
    }
    let program = build("errno_keep");
    let out = run_with_shim(&program, &[]);
    assert_passed("errno_keep", &out);
}

#[test]
fn the_seccomp_facts_the_design_rests_on() {
    if skip("seccomp_actions") {
        return;
    }
    let program = build("seccomp_actions");
    let out = run_plain(&program, &[]);
    let text = stdout(&out);
    let sigsys = format!("killed by signal {}", libc::SIGSYS);
    for line in [
        "notif-no-listener: ENOSYS".to_string(),
        "trace-no-tracer: ENOSYS".to_string(),
        "trap-beats-notif: SIGSYS handled".to_string(),
        format!("trap-no-handler: {sigsys}"),
        format!("trap-blocked: {sigsys}"),
        format!("trap-ignored: {sigsys}"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "expected `{line}`:\n{text}"
        );
    }
}
