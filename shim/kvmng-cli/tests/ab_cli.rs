//! `kvmng ab` on a stand-in program (a shell printing figures the way the
//! KVM selftests do): runs alternate, figures are parsed, the ratio and its
//! interval land in the JSON and the markdown. No /dev/kvm needed.

mod support;

use serde_json::Value;

#[test]
fn ab_compares_wall_time_and_printed_figures() {
    let dir = support::scratch("ab");
    let json = dir.join("ab.json");
    let md = dir.join("ab.md");
    let out = support::kvmng()
        .args([
            "ab",
            "--runs",
            "3",
            "--modes",
            "native,passthrough",
            "--json",
        ])
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo 'Populate memory time: 0.25s'; echo 'Iteration 1 dirty memory time: 0.125s'; \
             echo \"mode: ${KVMNG_MODE:-none}\"",
        ])
        .output()
        .expect("run kvmng ab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        report["modes"],
        serde_json::json!(["native", "passthrough"])
    );
    let runs = report["all_runs"].as_array().unwrap();
    let order: Vec<&str> = runs.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        [
            "native",
            "passthrough",
            "passthrough",
            "native",
            "native",
            "passthrough"
        ]
    );
    let labels: Vec<&str> = report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "wall time",
            "Populate memory time",
            "Iteration 1 dirty memory time"
        ]
    );
    let populate = &report["comparisons"][1];
    assert_eq!(populate["a"]["median"], 0.25);
    assert_eq!(populate["ratio"]["value"], 1.0);
    assert_eq!(populate["ratio"]["low"], 1.0);
    assert!(report["failures"].as_array().unwrap().is_empty());
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.contains(
            "| Populate memory time | s | 250.00 ms | 250.00 ms | 1.00 [1.00, 1.00] | 3 + 3 |"
        ),
        "{text}"
    );
}

#[test]
fn failing_runs_are_left_out_and_said() {
    let dir = support::scratch("abfail");
    let json = dir.join("ab.json");
    let out = support::kvmng()
        .args([
            "ab",
            "--runs",
            "2",
            "--modes",
            "native,passthrough",
            "--json",
        ])
        .arg(&json)
        .args(["--", "/bin/sh", "-c", "echo 'x time: 1s'; exit 3"])
        .output()
        .expect("run kvmng ab");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing could be compared"), "{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["failures"].as_array().unwrap().len(), 4);
    assert!(report["failures"][0]
        .as_str()
        .unwrap()
        .contains("exit status 3"));
}

#[test]
fn bad_arguments_are_named() {
    let out = support::kvmng()
        .args(["ab", "--modes", "auto", "--", "/bin/true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give two modes"));
    let out = support::kvmng()
        .args(["bench", "--ops", "warp-drive"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown op \"warp-drive\""));
}
