//! What happens across exec once the kvmng filter is in (docs/trap.md,
//! "Fork and exec"): the filter is inherited, the handler is not.
//!
//! | the new image                                   | a kvmng syscall in it |
//! |-------------------------------------------------|-----------------------|
//! | dynamic, LD_PRELOAD kept (libc execve)          | emulated, no second filter |
//! | dynamic, shim kept but KVMNG_SHIM=off           | ENOSYS                |
//! | dynamic, shim kept, KVMNG_MODE=passthrough      | ENOSYS                |
//! | dynamic, LD_PRELOAD dropped (raw execve)        | killed by SIGSYS      |
//! | static binary (any exec)                        | killed by SIGSYS      |
//! | unprivileged parent (no_new_privs set)          | emulated; NoNewPrivs 1 |

mod trap_support;

use trap_support::*;

fn child_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("probe="))
        .unwrap_or("(no child output)")
}

fn parent(way: &str, child: &std::path::Path, args: &[&str]) -> String {
    let program = build("exec_parent");
    let mut all = vec![way, child.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run_with_shim(&program, &all);
    assert!(out.status.success(), "exec_parent {way}: {}", stdout(&out));
    stdout(&out)
}

#[test]
fn exec_with_the_shim_kept_emulates_and_does_not_stack_filters() {
    if skip("exec libc") {
        return;
    }
    let child = build("exec_probe");
    let text = parent("libc", &child, &[]);
    assert!(text.contains("libc: exited 0"), "{text}");
    assert!(
        child_line(&text).starts_with("probe=EINVAL filters=1 ")
            && child_line(&text).ends_with("vm=ok"),
        "{text}"
    );
    // Three execs deep, still one filter.
    let text = parent("libc", &child, &["3"]);
    assert!(
        child_line(&text).starts_with("probe=EINVAL filters=1 "),
        "{text}"
    );
}

#[test]
fn exec_of_an_opted_out_image_answers_enosys() {
    if skip("exec off") {
        return;
    }
    let child = build("exec_probe");
    for way in ["off", "passthrough"] {
        let text = parent(way, &child, &[]);
        assert!(text.contains(&format!("{way}: exited 0")), "{text}");
        assert!(
            child_line(&text).starts_with("probe=ENOSYS filters=1 ")
                && child_line(&text).ends_with("vm=ENOSYS"),
            "{way}: {text}"
        );
    }
}

#[test]
fn exec_without_the_shim_dies_of_sigsys_at_its_first_kvmng_syscall() {
    if skip("exec raw") {
        return;
    }
    let child = build("exec_probe");
    let text = parent("raw-noshim", &child, &[]);
    assert!(
        text.contains(&format!("raw-noshim: killed by signal {}", libc::SIGSYS)),
        "{text}"
    );
}

#[test]
fn exec_of_a_static_binary_dies_of_sigsys_at_its_first_kvmng_syscall() {
    if skip("exec static") {
        return;
    }
    let Some(child) = try_build("exec_probe", "exec_probe_static", &["-static"]) else {
        eprintln!("SKIPPED: no static libc here (cc -static failed; Debian: libc6-dev)");
        return;
    };
    for way in ["libc", "off"] {
        let text = parent(way, &child, &[]);
        assert!(
            text.contains(&format!("{way}: killed by signal {}", libc::SIGSYS)),
            "{way}: {text}"
        );
    }
    // Without the filter the same binary gets ENOSYS.
    let out = run_plain(&child, &[]);
    assert!(
        stdout(&out).starts_with("probe=ENOSYS filters=0"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_unprivileged_process_sets_no_new_privs_and_is_emulated() {
    if skip("exec unprivileged") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("SKIPPED: needs root and setpriv to drop to an unprivileged user");
        return;
    }
    let child = build("exec_probe");
    // The helper dir must be reachable by the unprivileged user.
    let out = std::process::Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/env",
        ])
        .arg(format!("LD_PRELOAD={}", shim().display()))
        .arg(&child)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("setpriv");
    let text = stdout(&out);
    if text.is_empty() {
        eprintln!(
            "SKIPPED: the helper is not reachable by uid 65534: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    // /dev/kvm is root's: the VM fails with EACCES, but the probe is
    // emulated, and no_new_privs was set to install the filter.
    assert!(
        text.starts_with("probe=EINVAL filters=1 nnp=1 vm=EACCES"),
        "{text}"
    );
}
