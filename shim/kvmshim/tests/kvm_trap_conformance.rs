//! The C conformance suite (compat-tests/conformance, `make conformance`)
//! run through the trap: every documented result and errno of the nine
//! syscalls, with libkvmshim.so preloaded on a stock kernel.

mod trap_support;

use trap_support::*;

#[test]
fn the_conformance_suite_passes_through_the_trap() {
    if skip("conformance") {
        return;
    }
    let root = root();
    let status = std::process::Command::new("make")
        .args(["-s", "-C"])
        .arg(&root)
        .arg("conformance")
        .status()
        .expect("make (install make)");
    assert!(status.success(), "make conformance failed");
    let out = run_with_shim(&root.join("build/conformance/conformance"), &[]);
    let text = stdout(&out);
    let summary = text
        .lines()
        .find(|l| l.starts_with("conformance: "))
        .unwrap_or("(no summary)");
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("not ok") || l.starts_with("#   at"))
        .collect();
    assert!(
        out.status.success(),
        "{summary}\n{}\nstderr: {}",
        failures.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.contains(" 0 failed"), "{summary}");
    eprintln!("{summary}");
}
