//! `kvmng exec` runs a program with the shim and the settings asked for;
//! `kvmng stats` reads the census back. (Builds the kvmng program with
//! cargo first, as `cargo nextest` builds test targets only.)

mod support;

use std::process::Command;

fn kvmng() -> std::path::PathBuf {
    support::cargo_build("kvmng-cli");
    support::profile_dir().join("kvmng")
}

#[test]
fn exec_then_stats() {
    if !support::kvm("exec_then_stats") {
        return;
    }
    let kvmng = kvmng();
    let file = support::guest_file("real_pio");
    let stats = support::temp_file("cli.stats");
    let trace = support::temp_file("cli.trace");
    let out = Command::new(&kvmng)
        .arg("exec")
        .arg("--stats")
        .arg(&stats)
        .arg("--trace")
        .arg(&trace)
        .arg("--")
        .arg(support::probe())
        .args(["guest", file.to_str().unwrap(), "real"])
        .env_remove("LD_PRELOAD")
        .env("KVMNG_SHIM_LIB", support::shim_lib())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hlt after 18 exits"));
    assert!(std::fs::read_to_string(&trace)
        .unwrap()
        .contains(" cmd=KVM_RUN "));

    let report = Command::new(&kvmng)
        .arg("stats")
        .arg(&stats)
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains("1 census line(s); modes: auto; backends: "),
        "{text}"
    );
    let run = text
        .lines()
        .find(|l| l.starts_with("KVM_RUN "))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = run.split_whitespace().collect();
    assert_eq!(&cols[1..6], ["18", "18", "0", "0", "0"], "{run}");
    assert!(text.contains("fallback reasons"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("total")), "{text}");
}

#[test]
fn exec_passes_the_exit_status_and_names_errors() {
    let kvmng = kvmng();
    let status = Command::new(&kvmng)
        .args(["exec", "--", "sh", "-c", "exit 7"])
        .env("KVMNG_SHIM_LIB", support::shim_lib())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));
    let bad = Command::new(&kvmng)
        .args(["exec", "--mode", "fast", "--", "true"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a mode"));
    let missing = Command::new(&kvmng)
        .args(["stats", "/nonexistent/census"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("kvmng exec --stats"));
}
