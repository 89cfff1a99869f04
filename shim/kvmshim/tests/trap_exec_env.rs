//! exec while the trap's seccomp filter is installed (docs/trap.md, "Fork
//! and exec"): the filter goes into the new image, so the shim's exec
//! hooks put the shim back into an environment that lacks it in
//! `LD_PRELOAD` (execve/execvpe/fexecve/execle with a custom envp, from
//! fork and vfork children, and execv/execl/execlp after the program
//! unset it), and the child's kvmng syscall is emulated instead of being
//! killed by SIGSYS. Needs no /dev/kvm: the probe `kvmng_run(~0)` is
//! answered EINVAL by the emulation.

mod support;

use std::process::Output;
use support::Run;

fn skip(test: &str) -> bool {
    if support::kernel_has_kvmng() {
        eprintln!("SKIPPED: {test}: the kernel has the kvmng syscalls: no filter to inherit");
        return true;
    }
    false
}

fn exec_env(run: &Run, way: &str) -> (String, Output) {
    let program = support::kvmng_c_program("exec_env");
    let out = run.run(&program, &[way]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exec_env {way}: {}\nstdout:\n{text}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out)
}

fn shim() -> String {
    support::shim_lib().to_str().unwrap().to_string()
}

/// Runs `way` with the filter installed in the parent; asserts the parent
/// is emulated and the child exited 0 and printed `child`.
fn expect_child(way: &str, child: &str) {
    let (text, _) = exec_env(&Run::shim("auto"), way);
    assert!(text.contains("parent: probe=EINVAL\n"), "{way}: {text}");
    assert!(
        text.contains(&format!("\n{child}\n")) && text.contains(&format!("\n{way}: exited 0\n")),
        "{way}: expected {child:?} and an exit status 0 in:\n{text}"
    );
    if way.starts_with("vfork") {
        // The hooks ran in the parent's memory and left nothing on its heap.
        assert!(
            text.contains(&format!("{way}: heap in use grew by 0 bytes\n")),
            "{way}: {text}"
        );
    }
}

#[test]
fn an_environment_without_ld_preload_gets_the_shim_back() {
    if skip("an_environment_without_ld_preload_gets_the_shim_back") {
        return;
    }
    let shim = shim();
    for way in [
        "execve",
        "execvpe",
        "fexecve",
        "execle",
        "vfork",
        "vfork-execle",
        "execv",
        "execl",
        "execlp",
    ] {
        expect_child(
            way,
            &format!("child: probe=EINVAL args={way} preload={shim}"),
        );
    }
}

#[test]
fn execle_with_arguments_on_the_stack() {
    if skip("execle_with_arguments_on_the_stack") {
        return;
    }
    // Five variadic pointers come in registers, the rest on the stack.
    expect_child(
        "many-args",
        &format!(
            "child: probe=EINVAL args=a1,a2,a3,a4,a5,a6,a7,a8,a9,a10 preload={}",
            shim()
        ),
    );
}

#[test]
fn an_opted_out_environment_still_gets_the_shim_which_answers_enosys() {
    if skip("an_opted_out_environment_still_gets_the_shim_which_answers_enosys") {
        return;
    }
    // KVMNG_SHIM=off: ENOSYS, as on a stock kernel, not death by SIGSYS.
    expect_child(
        "off",
        &format!("child: probe=ENOSYS args=off preload={}", shim()),
    );
}

#[test]
fn the_programs_own_preloads_follow_the_shim() {
    if skip("the_programs_own_preloads_follow_the_shim") {
        return;
    }
    expect_child(
        "other-preload",
        &format!(
            "child: probe=EINVAL args=other-preload preload={}:libm.so.6",
            shim()
        ),
    );
}

#[test]
fn an_environment_with_the_shim_is_passed_on_as_it_is() {
    if skip("an_environment_with_the_shim_is_passed_on_as_it_is") {
        return;
    }
    expect_child(
        "inherit",
        &format!("child: probe=EINVAL args=inherit preload={}", shim()),
    );
}

#[test]
fn an_environment_too_large_for_the_fixed_buffer_is_passed_on_unchanged_and_said() {
    if skip("an_environment_too_large_for_the_fixed_buffer_is_passed_on_unchanged_and_said") {
        return;
    }
    let (text, out) = exec_env(&Run::shim("auto"), "huge");
    assert!(
        text.contains(&format!("huge: killed by signal {}\n", libc::SIGSYS)),
        "{text}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kvmshim: exec: the environment does not fit"),
        "{stderr}"
    );
}

#[test]
fn without_the_filter_the_programs_environment_is_left_alone() {
    if skip("without_the_filter_the_programs_environment_is_left_alone") {
        return;
    }
    // Passthrough installs no filter: the stock kernel answers ENOSYS and
    // the child gets exactly the environment it was given.
    let (text, _) = exec_env(&Run::shim("passthrough"), "execve");
    assert!(
        text.contains(
            "parent: probe=ENOSYS\nchild: probe=ENOSYS args=execve preload=(none)\nexecve: exited 0\n"
        ),
        "{text}"
    );
}
