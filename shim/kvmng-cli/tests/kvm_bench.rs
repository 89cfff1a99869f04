//! `kvmng bench` on /dev/kvm with tiny iteration counts: every operation
//! on every path this machine has ends up in the JSON, measured, and the
//! markdown and charts are written. Nothing here looks at a figure: the
//! machine is shared, and timing is not what a test can assert.

mod support;

use serde_json::Value;

const OPS: [&str; 18] = [
    "vm-create",
    "vcpu-create",
    "run-pio",
    "run-mmio",
    "regs-get",
    "regs-set",
    "regs-get-control",
    "state-put",
    "state-get",
    "irq-line",
    "memory-map-1",
    "memory-map-4",
    "memory-map-16",
    "memory-map-64",
    "getppid",
    "empty-call",
    "check-extension",
    "vcpu-reject",
];

#[test]
fn every_op_on_every_path_here() {
    let dir = support::scratch("bench");
    let json = dir.join("bench.json");
    let md = dir.join("bench.md");
    let svg = dir.join("svg");
    let out = support::kvmng()
        .args([
            "bench",
            "--iters",
            "8",
            "--rounds",
            "2",
            "--bootstrap",
            "200",
            "--json",
        ])
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .arg("--svg-dir")
        .arg(&svg)
        .output()
        .expect("run kvmng bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kvmng bench failed:\n{stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    // The paths this machine has: ioctl, legacy and the shim everywhere
    // (the library is built); the trap on a stock kernel, native on a
    // kvmng kernel.
    let native = kvmng::select::kernel_has_kvmng();
    let mut expected = vec!["ioctl", "legacy", "shim"];
    expected.push(if native { "native" } else { "trap" });
    let available: Vec<&str> = report["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["available"] == true)
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(available, expected, "{}", report["paths"]);

    let ops = report["ops"].as_array().unwrap();
    let names: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(names, OPS);
    for op in ops {
        let name = op["op"].as_str().unwrap();
        for path in &expected {
            let r = op["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["path"] == *path)
                .unwrap_or_else(|| panic!("{name}: no {path} result"));
            assert_eq!(r["status"], "ok", "{name} on {path}: {r}");
            let n = r["summary"]["n"].as_u64().unwrap();
            assert!(n >= 2, "{name} on {path}: {n} samples");
            for key in ["min", "median", "p99"] {
                assert!(
                    r["summary"][key].as_f64().unwrap() > 0.0,
                    "{name} on {path}: {key}"
                );
            }
            if *path != "ioctl" {
                let ratio = &r["ratio_to_ioctl"];
                assert!(ratio["value"].as_f64().unwrap() > 0.0, "{name} {path}");
                assert!(
                    ratio["low"].as_f64().unwrap() <= ratio["high"].as_f64().unwrap(),
                    "{name} {path}: {ratio}"
                );
            }
        }
        // The trap path went through the SIGSYS handler; the shim path did
        // not, and its census says the ioctls were translated. (getppid
        // is no KVM call, vcpu-reject's unknown ioctl is passed to the
        // kernel as it is.)
        if name == "getppid" || name == "vcpu-reject" {
            continue;
        }
        for r in op["results"].as_array().unwrap() {
            if r["path"] == "trap" {
                assert!(
                    r["trapped_per_sample"].as_f64().unwrap() >= 1.0,
                    "{name}: {r}"
                );
            }
            if r["path"] == "shim" {
                assert_eq!(
                    r["trapped_per_sample"].as_f64().unwrap(),
                    0.0,
                    "{name}: {r}"
                );
                let census = r["census"].as_array().unwrap();
                assert!(!census.is_empty(), "{name}: no census: {r}");
                for row in census {
                    assert_eq!(row["fallback"], 0, "{name}: {row}");
                    assert_eq!(row["translated"], row["count"], "{name}: {row}");
                }
            }
        }
    }
    // mmio-delivery: the ioregion harness's four ways, not per path.
    let d = &report["mmio_delivery"];
    assert!(d["error"].is_null(), "mmio-delivery: {d}");
    let ways: Vec<&str> = d["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["way"].as_str().unwrap())
        .collect();
    assert_eq!(
        ways,
        [
            "mmio-exit",
            "ioeventfd",
            "ioregion-posted-write",
            "ioregion-sync-read"
        ]
    );
    for r in d["rows"].as_array().unwrap() {
        assert!(r["summary"]["median"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["ratio_to_exit"].is_null(), r["way"] == "mmio-exit", "{r}");
    }

    let text = std::fs::read_to_string(&md).unwrap();
    for op in OPS {
        assert!(
            text.contains(&format!("### {op}\n")),
            "{op} missing in the markdown"
        );
        assert!(svg.join(format!("{op}.svg")).exists(), "{op}.svg missing");
    }
    assert!(
        text.contains("### mmio-delivery\n"),
        "mmio-delivery missing in the markdown"
    );
    assert!(svg.join("mmio-delivery.svg").exists());
    assert!(text.contains("](svg/ratios.svg)"), "{text}");
    assert!(svg.join("ratios.svg").exists());
    // A new page gets the generated blocks alone, each under its markers.
    assert!(text.contains("<!-- BEGIN generated: vm-bench -->\nNo `make vm-bench` result"));

    // The same document again from the JSON alone, measuring nothing
    // (the charts rewritten where they were).
    let again = dir.join("again.md");
    let out = support::kvmng()
        .arg("bench")
        .arg("--from-json")
        .arg(&json)
        .arg("--markdown")
        .arg(&again)
        .arg("--svg-dir")
        .arg(&svg)
        .output()
        .expect("run kvmng bench --from-json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&again).unwrap(), text);
}

#[test]
fn from_json_refuses_a_file_that_is_not_a_bench_report() {
    let dir = support::scratch("from-json");
    let bogus = dir.join("bogus.json");
    std::fs::write(&bogus, "{\"runs\": []}").unwrap();
    let out = support::kvmng()
        .arg("bench")
        .arg("--from-json")
        .arg(&bogus)
        .output()
        .expect("run kvmng bench --from-json");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is not a `kvmng bench --json` file"),
        "{stderr}"
    );
    let out = support::kvmng()
        .args(["bench", "--from-json", "/nonexistent/bench.json"])
        .output()
        .expect("run kvmng bench --from-json");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/bench.json"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_subset_of_ops_and_paths() {
    let dir = support::scratch("subset");
    let json = dir.join("bench.json");
    let out = support::kvmng()
        .args([
            "bench",
            "--ops",
            "irq-line",
            "--paths",
            "legacy",
            "--iters",
            "4",
            "--rounds",
            "2",
            "--no-census",
            "--cpu",
            "none",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run kvmng bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ops = report["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["op"], "irq-line");
    // The baseline is always measured; the other paths were not asked for.
    let paths: Vec<&str> = ops[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["ioctl", "legacy"]);
    assert!(report["mmio_delivery"].is_null());
    assert!(report["settings"]["cpu"].is_null());
}
