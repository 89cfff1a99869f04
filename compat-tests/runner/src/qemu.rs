//! Unmodified QEMU (Debian's qemu-system-x86_64, -accel kvm), natively and
//! preloaded with the shim, on scenarios whose output must be identical:
//!
//! * `seabios`: the firmware alone, through to "No bootable device." (its
//!   full log on the debug console, port 0x402); QEMU then idles, so the run
//!   is ended with SIGTERM (QEMU exits cleanly, so the shim writes its stats);
//! * `devices`: our multiboot guest (compat-tests/qemu/devices.S): serial,
//!   CMOS, PIT and RTC interrupts through the 8259s, HPET and VGA MMIO; it
//!   exits through isa-debug-exit with status 33;
//! * `devices-userspace-irqchip`: the same guest with kernel-irqchip=off, so
//!   the PIC, PIT and local APIC are QEMU's and interrupts are injected from
//!   userspace (KVM_INTERRUPT, interrupt windows).

use crate::exec;
use crate::outcome::Termination;
use crate::stats::{self, FileStats, ModeStats};
use crate::Mode;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The exit status of the devices guest on success: isa-debug-exit turns a
/// write of 0x10 into exit((0x10 << 1) | 1).
pub const GUEST_EXIT_OK: i32 = 33;
/// The line SeaBIOS prints last when nothing boots.
pub const SEABIOS_LAST: &str = "No bootable device.";

/// What a scenario compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The debug console (port 0x402): SeaBIOS's log.
    Debugcon,
    /// COM1.
    Serial,
}

/// One QEMU scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    /// -machine value.
    pub machine: &'static str,
    /// Boot our devices guest with -kernel.
    pub guest: bool,
    /// End the run with SIGTERM when this appears on `channel`.
    pub stop_marker: Option<&'static str>,
    /// Required QEMU exit status.
    pub expect_exit: Option<i32>,
    pub channel: Channel,
    /// Lines that must appear, in this order, as whole lines of `channel`.
    pub expected: Vec<String>,
    /// Whether the order of output lines must match too. SeaBIOS runs its
    /// device probes as cooperative threads, so the order of their messages
    /// depends on timing; its log is compared as a multiset of lines.
    pub ordered: bool,
}

/// The scenarios, with the guest's expected lines from `devices.expected`.
pub fn scenarios(devices_expected: &[String]) -> Vec<Scenario> {
    vec![
        Scenario {
            name: "seabios",
            what: "SeaBIOS alone, through to \"No bootable device.\" (its debug-console log compared line by line, in any order)",
            machine: "pc",
            guest: false,
            stop_marker: Some(SEABIOS_LAST),
            expect_exit: None,
            channel: Channel::Debugcon,
            expected: vec![SEABIOS_LAST.to_string()],
            ordered: false,
        },
        Scenario {
            name: "devices",
            what: "our multiboot guest: serial, CMOS, PIT/RTC interrupts via the 8259s, HPET and VGA MMIO (in-kernel irqchip)",
            machine: "pc",
            guest: true,
            stop_marker: None,
            expect_exit: Some(GUEST_EXIT_OK),
            channel: Channel::Serial,
            expected: devices_expected.to_vec(),
            ordered: true,
        },
        Scenario {
            name: "devices-userspace-irqchip",
            what: "the same guest with kernel-irqchip=off: QEMU's PIC, PIT and APIC, interrupts injected from userspace",
            machine: "pc,kernel-irqchip=off",
            guest: true,
            stop_marker: None,
            expect_exit: Some(GUEST_EXIT_OK),
            channel: Channel::Serial,
            expected: devices_expected.to_vec(),
            ordered: true,
        },
    ]
}

/// Assembles and links compat-tests/qemu/devices.S into `out_dir`.
pub fn build_guest(src_dir: &Path, out_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir)?;
    let src = src_dir.join("devices.S");
    let obj = out_dir.join("devices.o");
    let elf = out_dir.join("devices.elf");
    let steps: [(&str, Vec<String>); 2] = [
        (
            "gcc",
            vec![
                "-m32".into(),
                "-c".into(),
                "-nostdinc".into(),
                "-o".into(),
                path_arg(&obj),
                path_arg(&src),
            ],
        ),
        (
            "ld",
            [
                "-m",
                "elf_i386",
                "-nostdlib",
                "-Ttext-segment=0x100000",
                "-e",
                "_start",
                "--build-id=none",
                "-z",
                "noexecstack",
                "-z",
                "noseparate-code",
                "-z",
                "max-page-size=0x1000",
                "-o",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([path_arg(&elf), path_arg(&obj)])
            .collect(),
        ),
    ];
    for (tool, args) in steps {
        let out = std::process::Command::new(tool)
            .args(&args)
            .output()
            .with_context(|| {
                format!(
                    "cannot run {tool} (install gcc and binutils: `apt-get install gcc binutils`)"
                )
            })?;
        if !out.status.success() {
            bail!(
                "{tool} {} failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(elf)
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// Reads an expected-output file: the non-empty lines that are not `#`
/// comments.
pub fn read_expected(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// Checks that `expected` appear in `text` as whole lines, in order.
/// Returns the first one missing.
pub fn missing_line<'a>(text: &str, expected: &'a [String]) -> Option<&'a str> {
    let mut lines = text.lines();
    expected
        .iter()
        .find(|e| !lines.any(|l| l.trim_end() == e.trim_end()))
        .map(String::as_str)
}

/// The text compared between native and shim runs: the output with the
/// host's CPU frequency (SeaBIOS's kvmclock lines) masked, since that is a
/// property of the host and not of how KVM is driven.
pub fn normalize(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.contains("MHz") || l.contains("Mhz") {
                l.chars()
                    .map(|c| if c.is_ascii_digit() { '#' } else { c })
                    .collect()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<String>>()
        .join("\n")
}

/// The first line where two outputs differ: (line number, a, b).
pub fn first_difference(a: &str, b: &str) -> Option<(usize, String, String)> {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i).copied(), lb.get(i).copied());
        if x != y {
            return Some((
                i + 1,
                x.unwrap_or("<end of output>").to_string(),
                y.unwrap_or("<end of output>").to_string(),
            ));
        }
    }
    None
}

/// Compares two outputs as multisets of lines; says which lines only one
/// of them has (up to three of each).
pub fn unordered_difference(native: &str, shim: &str) -> Option<String> {
    let mut a: Vec<&str> = native.lines().collect();
    let mut b: Vec<&str> = shim.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    if a == b {
        return None;
    }
    let only = |x: &[&str], y: &[&str]| -> Vec<String> {
        let mut y: Vec<&str> = y.to_vec();
        let mut out = Vec::new();
        for l in x {
            match y.iter().position(|m| m == l) {
                Some(i) => {
                    y.remove(i);
                }
                None => out.push(format!("\"{l}\"")),
            }
        }
        out
    };
    let (na, nb) = (only(&a, &b), only(&b, &a));
    Some(format!(
        "lines only natively: {} ({}); lines only under the shim: {} ({})",
        na.len(),
        na.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
        nb.len(),
        nb.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
    ))
}

/// One QEMU run.
#[derive(Clone, Debug, Serialize)]
pub struct QemuRun {
    pub mode: Mode,
    pub termination: Termination,
    pub stopped_on_marker: bool,
    pub secs: f64,
    pub output: String,
    pub log: PathBuf,
    pub stats: Option<FileStats>,
}

impl QemuRun {
    pub fn ending(&self) -> String {
        match (self.stopped_on_marker, self.termination) {
            (true, _) => "stopped after the marker".to_string(),
            (false, Termination::Exited(c)) => format!("exit {c}"),
            (false, Termination::Signaled(s)) => {
                format!("killed by {}", crate::outcome::signal_name(s))
            }
            (false, Termination::TimedOut) => "TIMEOUT".to_string(),
        }
    }
}

/// A scenario's runs and what went wrong.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    /// The runs the verdict rests on (the re-runs, when there were any).
    pub runs: Vec<QemuRun>,
    /// What still fails the scenario.
    pub problems: Vec<String>,
    /// Problems of a first round that a complete re-run did not show again
    /// (flaky: reported, not failing).
    pub flaky: Vec<String>,
}

/// Runs every mode of a scenario (native first) and checks; when that finds
/// problems, runs every mode once more: problems that do not come back are
/// flaky, the others fail the scenario.
pub fn run_scenario(
    sc: &Scenario,
    modes: &[Mode],
    mut run: impl FnMut(Mode, bool) -> Result<QemuRun>,
) -> Result<ScenarioResult> {
    let first: Vec<QemuRun> = modes
        .iter()
        .map(|&m| run(m, false))
        .collect::<Result<_>>()?;
    let problems = check(sc, &first);
    if problems.is_empty() {
        return Ok(ScenarioResult {
            scenario: sc.clone(),
            runs: first,
            problems,
            flaky: Vec::new(),
        });
    }
    let again: Vec<QemuRun> = modes.iter().map(|&m| run(m, true)).collect::<Result<_>>()?;
    let again_problems = check(sc, &again);
    if again_problems.is_empty() {
        return Ok(ScenarioResult {
            scenario: sc.clone(),
            runs: again,
            problems: Vec::new(),
            flaky: problems,
        });
    }
    let all = problems
        .iter()
        .map(|p| format!("first run: {p}"))
        .chain(again_problems.iter().map(|p| format!("re-run: {p}")))
        .collect();
    Ok(ScenarioResult {
        scenario: sc.clone(),
        runs: again,
        problems: all,
        flaky: Vec::new(),
    })
}

/// Checks one scenario's runs (native first): each run on its own, then each
/// shim run against native.
pub fn check(scenario: &Scenario, runs: &[QemuRun]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in runs {
        let m = r.mode;
        if let Some(marker) = scenario.stop_marker {
            if !r.stopped_on_marker {
                problems.push(format!("{m}: \"{marker}\" did not appear ({})", r.ending()));
            }
        }
        if let Some(code) = scenario.expect_exit {
            if r.stopped_on_marker || r.termination != Termination::Exited(code) {
                problems.push(format!(
                    "{m}: expected exit status {code}, got {}",
                    r.ending()
                ));
            }
        }
        if let Some(line) = missing_line(&r.output, &scenario.expected) {
            problems.push(format!(
                "{m}: expected line missing from the output: \"{line}\""
            ));
        }
    }
    let Some(native) = runs.iter().find(|r| r.mode == Mode::Native) else {
        return problems;
    };
    for r in runs.iter().filter(|r| r.mode.is_shim()) {
        if r.ending() != native.ending() {
            problems.push(format!(
                "{}: ended with {}, native with {}",
                r.mode,
                r.ending(),
                native.ending()
            ));
        }
        let (a, b) = (normalize(&native.output), normalize(&r.output));
        if scenario.ordered {
            if let Some((n, a, b)) = first_difference(&a, &b) {
                problems.push(format!(
                    "{}: output differs from native at line {n}: native \"{a}\", shim \"{b}\"",
                    r.mode
                ));
            }
        } else if let Some(d) = unordered_difference(&a, &b) {
            problems.push(format!("{}: output differs from native: {d}", r.mode));
        }
    }
    problems
}

/// Where and how to run QEMU.
pub struct QemuConfig {
    pub qemu: PathBuf,
    pub shim: Option<PathBuf>,
    pub work_dir: PathBuf,
    pub guest_elf: PathBuf,
    pub timeout: Duration,
    pub trace: bool,
}

/// Runs one scenario in one mode.
pub fn run_one(cfg: &QemuConfig, sc: &Scenario, mode: Mode, rerun: bool) -> Result<QemuRun> {
    let sub = if rerun {
        format!("{mode}.rerun")
    } else {
        mode.to_string()
    };
    let dir = cfg.work_dir.join(sc.name).join(sub);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let serial = dir.join("serial.txt");
    let debugcon = dir.join("debugcon.txt");
    let log = dir.join("qemu.log");
    let stats_path = dir.join("stats.jsonl");
    let trace_path = dir.join("trace.txt");
    for p in [&serial, &debugcon, &stats_path, &trace_path] {
        let _ = std::fs::remove_file(p);
    }
    for p in [&serial, &debugcon] {
        if p.display().to_string().contains(',') {
            bail!(
                "QEMU cannot take a file name with a comma: {} (choose another --work-dir)",
                p.display()
            );
        }
    }
    let mut args: Vec<String> =
        "-nodefaults -accel kvm -cpu qemu64 -m 64 -display none -vga std -monitor none \
         -nic none -drive if=ide,index=2,media=cdrom -no-reboot"
            .split_whitespace()
            .map(String::from)
            .collect();
    args.push("-machine".into());
    args.push(sc.machine.into());
    args.push("-serial".into());
    args.push(format!("file:{}", serial.display()));
    args.push("-chardev".into());
    args.push(format!("file,id=kvmngdbg,path={}", debugcon.display()));
    args.push("-device".into());
    args.push("isa-debugcon,iobase=0x402,chardev=kvmngdbg".into());
    args.push("-device".into());
    args.push("isa-debug-exit,iobase=0xf4,iosize=0x04".into());
    if sc.guest {
        args.push("-kernel".into());
        args.push(cfg.guest_elf.display().to_string());
    }
    let channel_file = match sc.channel {
        Channel::Debugcon => debugcon.clone(),
        Channel::Serial => serial.clone(),
    };
    let env = mode.env(
        cfg.shim.as_deref(),
        &stats_path,
        cfg.trace.then_some(trace_path.as_path()),
    )?;
    let ended = exec::run(&exec::Spec {
        program: cfg.qemu.clone(),
        args,
        cwd: dir.clone(),
        env,
        log: log.clone(),
        timeout: cfg.timeout,
        stop_when: sc
            .stop_marker
            .map(|m| (channel_file.clone(), m.to_string())),
    })?;
    let output =
        String::from_utf8_lossy(&std::fs::read(&channel_file).unwrap_or_default()).into_owned();
    Ok(QemuRun {
        mode,
        termination: ended.termination,
        stopped_on_marker: ended.stopped_on_marker,
        secs: ended.elapsed.as_secs_f64(),
        output,
        log,
        stats: if mode.is_shim() {
            stats::read(&stats_path)
        } else {
            None
        },
    })
}

/// The Markdown section for docs/compat.md.
pub fn markdown(
    results: &[ScenarioResult],
    generated: &str,
    kernel: &str,
    qemu_version: &str,
    shim: Option<&Path>,
) -> String {
    let mut s = String::new();
    let ok = results.iter().all(|r| r.problems.is_empty());
    let _ = writeln!(
        s,
        "Run of {generated} on host kernel {kernel} with {qemu_version}{}.\n",
        shim.map(|p| format!(", shim `{}`", p.display()))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "{}\n",
        if ok {
            "**Result: every scenario ended the same way and printed the same output natively and under the shim.**"
        } else {
            "**Result: FAILED (problems listed below).**"
        }
    );
    let modes: Vec<Mode> = results
        .first()
        .map(|r| r.runs.iter().map(|x| x.mode).collect())
        .unwrap_or_default();
    let mut header = "| scenario |".to_string();
    let mut rule = "|---|".to_string();
    for m in &modes {
        let _ = write!(header, " {m} |");
        rule.push_str("---|");
    }
    let _ = writeln!(s, "{header} output lines | same output |\n{rule}---:|---|");
    for r in results {
        let mut row = format!("| `{}` |", r.scenario.name);
        for run in &r.runs {
            let _ = write!(row, " {}, {:.1} s |", run.ending(), run.secs);
        }
        let lines = r.runs.first().map_or(0, |x| x.output.lines().count());
        let same = match (r.problems.is_empty(), r.flaky.is_empty()) {
            (false, _) => "**no**",
            (true, true) => "yes",
            (true, false) => "yes (on re-run; flaky)",
        };
        let _ = writeln!(s, "{row} {lines} | {same} |");
    }
    s.push('\n');
    for r in results {
        let _ = writeln!(s, "- `{}`: {}", r.scenario.name, r.scenario.what);
        for p in &r.problems {
            let _ = writeln!(s, "  - PROBLEM: {p}");
        }
        for p in &r.flaky {
            let _ = writeln!(
                s,
                "  - flaky (gone when every mode ran again, so not failing): {p}"
            );
        }
    }
    s.push('\n');
    if let Some(dev) = results.iter().find(|r| r.scenario.guest) {
        if let Some(native) = dev.runs.first() {
            let _ = writeln!(s, "The guest's serial output (native; identical under the shim when the result says so):\n");
            let _ = writeln!(s, "```\n{}\n```\n", native.output.trim_end());
        }
    }
    let _ = writeln!(s, "Shim statistics, per scenario:\n");
    let mut per_mode: BTreeMap<Mode, ModeStats> = BTreeMap::new();
    for r in results {
        for run in r.runs.iter().filter(|x| x.mode.is_shim()) {
            let mut st = ModeStats::default();
            st.add_run(run.stats.as_ref());
            per_mode
                .entry(run.mode)
                .or_default()
                .add_run(run.stats.as_ref());
            let t = st.total();
            let _ = writeln!(
                s,
                "- `{}` ({}): {} process(es), {} calls: {} translated, {} fallback, {} passthrough, {} errors",
                r.scenario.name, run.mode, st.processes, t.count, t.translated, t.fallback, t.passthrough, t.errors
            );
        }
    }
    s.push('\n');
    let _ = writeln!(s, "Per command, all scenarios together:\n");
    for (m, st) in &per_mode {
        s.push_str(&st.markdown(m.as_str()));
    }
    s
}

/// `qemu-system-x86_64 --version`'s first line.
pub fn qemu_version(qemu: &Path) -> String {
    std::process::Command::new(qemu)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "QEMU (version unknown)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: Mode, t: Termination, marker: bool, out: &str) -> QemuRun {
        QemuRun {
            mode,
            termination: t,
            stopped_on_marker: marker,
            secs: 1.0,
            output: out.into(),
            log: "l".into(),
            stats: None,
        }
    }

    fn expected() -> Vec<String> {
        vec![
            "kvmng devices guest: start".into(),
            "kvmng devices guest: done".into(),
        ]
    }

    const GOOD: &str = "kvmng devices guest: start\nhpet: x\nkvmng devices guest: done\n";

    #[test]
    fn expected_lines_in_order() {
        let e = expected();
        assert_eq!(missing_line(GOOD, &e), None);
        assert_eq!(
            missing_line(
                "kvmng devices guest: done\nkvmng devices guest: start\n",
                &e
            ),
            Some("kvmng devices guest: done")
        );
        assert_eq!(
            missing_line("kvmng devices guest: start\n", &e),
            Some("kvmng devices guest: done")
        );
        // A whole line, not a substring.
        assert!(missing_line(
            "xx kvmng devices guest: start\nkvmng devices guest: done",
            &e
        )
        .is_some());
    }

    #[test]
    fn guest_scenario_checks() {
        let sc = &scenarios(&expected())[1];
        let ok = vec![
            run(Mode::Native, Termination::Exited(33), false, GOOD),
            run(Mode::Auto, Termination::Exited(33), false, GOOD),
        ];
        assert!(check(sc, &ok).is_empty());
        let bad_exit = vec![
            run(Mode::Native, Termination::Exited(33), false, GOOD),
            run(Mode::Auto, Termination::Exited(35), false, GOOD),
        ];
        let p = check(sc, &bad_exit);
        assert!(
            p.iter()
                .any(|x| x.contains("expected exit status 33, got exit 35")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|x| x.contains("ended with exit 35, native with exit 33")),
            "{p:?}"
        );
        let bad_out = vec![
            run(Mode::Native, Termination::Exited(33), false, GOOD),
            run(
                Mode::Auto,
                Termination::Exited(33),
                false,
                &GOOD.replace("hpet: x", "hpet: y"),
            ),
        ];
        let p = check(sc, &bad_out);
        assert_eq!(
            p,
            vec![
                "auto: output differs from native at line 2: native \"hpet: x\", shim \"hpet: y\""
                    .to_string()
            ]
        );
        // Both fail the same way: still a failure (the guest's own check).
        let both_bad = vec![
            run(
                Mode::Native,
                Termination::TimedOut,
                false,
                "kvmng devices guest: start\n",
            ),
            run(
                Mode::Auto,
                Termination::TimedOut,
                false,
                "kvmng devices guest: start\n",
            ),
        ];
        assert_eq!(check(sc, &both_bad).len(), 4);
    }

    #[test]
    fn seabios_scenario_checks() {
        let sc = &scenarios(&expected())[0];
        let log = "SeaBIOS (version 1.16.2)\nCPU Mhz=2600 (kvmclock)\nNo bootable device.\n";
        let ok = vec![
            run(Mode::Native, Termination::Exited(0), true, log),
            run(
                Mode::Auto,
                Termination::Exited(0),
                true,
                &log.replace("2600", "2599"),
            ),
        ];
        assert!(check(sc, &ok).is_empty(), "{:?}", check(sc, &ok));
        let reordered = vec![
            run(Mode::Native, Termination::Exited(0), true, log),
            run(
                Mode::Auto,
                Termination::Exited(0),
                true,
                "CPU Mhz=2600 (kvmclock)\nSeaBIOS (version 1.16.2)\nNo bootable device.\n",
            ),
        ];
        assert!(check(sc, &reordered).is_empty());
        let hung = vec![
            run(Mode::Native, Termination::Exited(0), true, log),
            run(
                Mode::Auto,
                Termination::TimedOut,
                false,
                "SeaBIOS (version 1.16.2)\n",
            ),
        ];
        let p = check(sc, &hung);
        assert!(
            p.iter()
                .any(|x| x.contains("\"No bootable device.\" did not appear (TIMEOUT)")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|x| x.contains("lines only natively: 2 (")
                && x.contains("lines only under the shim: 0 ()")),
            "{p:?}"
        );
    }

    #[test]
    fn scenario_rerun_tells_flaky_from_real() {
        let sc = &scenarios(&expected())[1];
        // Auto differs the first time only: flaky, and the re-runs are kept.
        let mut calls = 0;
        let r = run_scenario(sc, &[Mode::Native, Mode::Auto], |m, rerun| {
            calls += 1;
            let code = if m == Mode::Auto && !rerun { 35 } else { 33 };
            Ok(run(m, Termination::Exited(code), false, GOOD))
        })
        .unwrap();
        assert_eq!(calls, 4);
        assert!(r.problems.is_empty());
        assert!(!r.flaky.is_empty());
        assert!(r
            .runs
            .iter()
            .all(|x| x.termination == Termination::Exited(33)));
        // Auto differs both times: real.
        let r = run_scenario(sc, &[Mode::Native, Mode::Auto], |m, _| {
            Ok(run(
                m,
                Termination::Exited(if m == Mode::Auto { 35 } else { 33 }),
                false,
                GOOD,
            ))
        })
        .unwrap();
        assert!(r.problems.iter().any(|p| p.starts_with("first run:")));
        assert!(r.problems.iter().any(|p| p.starts_with("re-run:")));
        // All good: no re-run.
        let mut calls = 0;
        let r = run_scenario(sc, &[Mode::Native, Mode::Auto], |m, _| {
            calls += 1;
            Ok(run(m, Termination::Exited(33), false, GOOD))
        })
        .unwrap();
        assert_eq!((calls, r.problems.len(), r.flaky.len()), (2, 0, 0));
    }

    #[test]
    fn normalize_masks_only_frequencies() {
        assert_eq!(
            normalize("CPU Mhz=2600 (kvmclock)\nPCI 00:02.0"),
            "CPU Mhz=#### (kvmclock)\nPCI 00:02.0"
        );
        assert_eq!(first_difference("a\nb", "a\nb"), None);
        assert_eq!(
            first_difference("a", "a\nb"),
            Some((2, "<end of output>".into(), "b".into()))
        );
    }

    #[test]
    fn report_lists_problems() {
        let sc = scenarios(&expected()).remove(1);
        let runs = vec![
            run(Mode::Native, Termination::Exited(33), false, GOOD),
            run(Mode::Auto, Termination::Exited(33), false, GOOD),
        ];
        let good = ScenarioResult {
            problems: check(&sc, &runs),
            scenario: sc.clone(),
            runs: runs.clone(),
            flaky: Vec::new(),
        };
        let md = markdown(std::slice::from_ref(&good), "now", "6.18", "QEMU 7.2", None);
        assert!(
            md.contains("**Result: every scenario ended the same way"),
            "{md}"
        );
        assert!(
            md.contains("| `devices` | exit 33, 1.0 s | exit 33, 1.0 s | 3 | yes |"),
            "{md}"
        );
        assert!(md.contains("No command statistics"), "{md}");
        let bad = ScenarioResult {
            problems: vec!["auto: boom".into()],
            scenario: sc,
            runs,
            flaky: Vec::new(),
        };
        let md = markdown(&[bad], "now", "6.18", "QEMU 7.2", None);
        assert!(
            md.contains("FAILED") && md.contains("PROBLEM: auto: boom"),
            "{md}"
        );
    }
}
