//! The selftests report: a Markdown section for docs/compat.md and JSON.

use crate::outcome::Kind;
use crate::selftests::{TestResult, Verdict};
use crate::stats::ModeStats;
use crate::Mode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Everything one `kvmng-compat selftests` invocation found.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteReport {
    pub generated: String,
    pub host_kernel: String,
    pub shim: Option<String>,
    /// Which tests: "quick.list (N of M)" or "all".
    pub selection: String,
    pub timeout_secs: u64,
    pub jobs: usize,
    pub modes: Vec<Mode>,
    pub wall_secs: f64,
    pub tests: Vec<TestResult>,
    /// Tests the list leaves out, with the reason.
    pub excluded: Vec<(String, String)>,
    /// Hand-written notes per test (why it fails or skips natively here).
    pub notes: BTreeMap<String, String>,
    pub stats: BTreeMap<Mode, ModeStats>,
}

/// Outcome counts and summed time of one mode.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub counts: BTreeMap<Kind, usize>,
    pub secs: f64,
}

impl SuiteReport {
    pub fn totals(&self, mode: Mode) -> Totals {
        let mut t = Totals::default();
        for r in self.tests.iter().filter_map(|t| t.runs.get(&mode)) {
            *t.counts.entry(r.outcome.kind).or_default() += 1;
            t.secs += r.secs;
        }
        t
    }

    /// (test, mode) pairs whose difference from native is real.
    pub fn differences(&self) -> Vec<(&TestResult, Mode)> {
        self.with_verdict(Verdict::Differs)
    }

    pub fn flaky(&self) -> Vec<(&TestResult, Mode)> {
        self.with_verdict(Verdict::Flaky)
    }

    fn with_verdict(&self, v: Verdict) -> Vec<(&TestResult, Mode)> {
        self.tests
            .iter()
            .flat_map(|t| {
                t.verdicts
                    .iter()
                    .filter(move |(_, x)| **x == v)
                    .map(move |(m, _)| (t, *m))
            })
            .collect()
    }

    /// The run passes when no shim mode really differs from native.
    pub fn ok(&self) -> bool {
        self.differences().is_empty()
    }

    /// The Markdown section for docs/compat.md.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let shim_modes: Vec<Mode> = self.modes.iter().copied().filter(|m| m.is_shim()).collect();
        let _ = writeln!(
            s,
            "Run of {} on host kernel {}: {} tests ({}), modes {}, timeout {} s per run, {} job(s), wall time {}.\n",
            self.generated,
            self.host_kernel,
            self.tests.len(),
            self.selection,
            self.modes.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "),
            self.timeout_secs,
            self.jobs,
            fmt_secs(self.wall_secs),
        );
        if let Some(shim) = &self.shim {
            let _ = writeln!(s, "Shim: `{shim}`.\n");
        }
        let verdict_line =
            if self.ok() {
                if shim_modes.is_empty() {
                    "**Result: native only (nothing compared).**".to_string()
                } else {
                    format!(
                    "**Result: every test ended the same way natively and under the shim ({}){}.**",
                    shim_modes.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "),
                    if self.flaky().is_empty() { "" } else { ", after re-running the flaky ones" }
                )
                }
            } else {
                format!(
                    "**Result: {} real difference(s) between native and the shim (see below).**",
                    self.differences().len()
                )
            };
        let _ = writeln!(s, "{verdict_line}\n");

        // Totals.
        let _ = writeln!(
            s,
            "| mode | PASS | SKIP | FAIL | TIMEOUT | CRASH | total time |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
        for &m in &self.modes {
            let t = self.totals(m);
            let c = |k| t.counts.get(&k).copied().unwrap_or(0);
            let _ = writeln!(
                s,
                "| {m} | {} | {} | {} | {} | {} | {} |",
                c(Kind::Pass),
                c(Kind::Skip),
                c(Kind::Fail),
                c(Kind::Timeout),
                c(Kind::Crash),
                fmt_secs(t.secs)
            );
        }
        s.push('\n');

        // Differences and flaky tests.
        let diffs = self.differences();
        if !diffs.is_empty() {
            let _ = writeln!(s, "### Differences (these fail the run)\n");
            for (t, m) in &diffs {
                let _ = writeln!(s, "- `{}` under {m}: {}", t.name, compare_line(t, *m));
            }
            s.push('\n');
        }
        let flaky = self.flaky();
        let _ = writeln!(s, "### Flaky\n");
        if flaky.is_empty() {
            let _ = writeln!(s, "None: no difference went away on re-running.\n");
        } else {
            let _ = writeln!(
                s,
                "These differed from native at first. Re-run once natively and once in the differing mode, they ended the same way, or the shim only ended in ways native also did (in its first run, its re-run or up to three more native runs); so they do not fail the run.\n"
            );
            for (t, m) in &flaky {
                let _ = writeln!(s, "- `{}` under {m}: {}", t.name, compare_line(t, *m));
            }
            s.push('\n');
        }

        // The table.
        let _ = writeln!(s, "### Per test\n");
        let mut header = "| test |".to_string();
        let mut rule = "|---|".to_string();
        for m in &self.modes {
            let _ = write!(header, " {m} |");
            rule.push_str("---|");
        }
        let _ = writeln!(s, "{header}\n{rule}");
        for t in &self.tests {
            let mut row = format!("| `{}` |", t.name);
            for m in &self.modes {
                let cell = match t.runs.get(m) {
                    Some(r) => {
                        let mark = match t.verdicts.get(m) {
                            Some(Verdict::Differs) => " **≠**",
                            Some(Verdict::Flaky) => " (flaky)",
                            _ => "",
                        };
                        format!("{} {}{mark}", r.outcome.short(), fmt_secs(r.secs))
                    }
                    None => "–".to_string(),
                };
                let _ = write!(row, " {cell} |");
            }
            let _ = writeln!(s, "{row}");
        }
        s.push('\n');

        // Native failures and skips, with what identifies them.
        let mut fails = String::new();
        let mut skips: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for t in &self.tests {
            let Some(n) = t.native() else { continue };
            match n.outcome.kind {
                Kind::Pass => {}
                Kind::Skip => skips
                    .entry(
                        n.outcome
                            .detail
                            .clone()
                            .unwrap_or_else(|| "(no reason printed)".into()),
                    )
                    .or_default()
                    .push(&t.name),
                _ => {
                    let note = self
                        .notes
                        .get(&t.name)
                        .map(|n| format!(" — {n}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        fails,
                        "- `{}`: {}{}{note}",
                        t.name,
                        n.outcome.short(),
                        n.outcome
                            .detail
                            .as_ref()
                            .map(|d| format!(" at `{d}`"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        let _ = writeln!(s, "### Native failures here\n");
        if fails.is_empty() {
            let _ = writeln!(s, "None.\n");
        } else {
            let _ = writeln!(s, "{fails}");
        }
        let _ = writeln!(s, "### Native skips here (the reason each test printed)\n");
        if skips.is_empty() {
            let _ = writeln!(s, "None.\n");
        } else {
            for (reason, tests) in &skips {
                let names: Vec<String> = tests.iter().map(|t| format!("`{t}`")).collect();
                let _ = writeln!(s, "- {reason}: {}", names.join(", "));
            }
            s.push('\n');
        }

        if !self.excluded.is_empty() {
            let _ = writeln!(
                s,
                "### Not in this run (excluded by the list; `make compat-full` runs them)\n"
            );
            for (t, why) in &self.excluded {
                let _ = writeln!(s, "- `{t}`: {why}");
            }
            s.push('\n');
        }

        if !shim_modes.is_empty() {
            let _ = writeln!(s, "### Shim statistics\n");
            for m in &shim_modes {
                let st = self.stats.get(m).cloned().unwrap_or_default();
                s.push_str(&st.markdown(m.as_str()));
            }
        }
        s
    }
}

/// How mode `m` and native ended in their runs: the first, the re-run and
/// any extra native runs.
pub fn compare_line(t: &TestResult, m: Mode) -> String {
    let sig = |map: &BTreeMap<Mode, crate::selftests::Run>, mode| {
        map.get(&mode)
            .map_or("–".to_string(), |r| r.outcome.signature())
    };
    let mut line = format!(
        "first native {} vs {m} {}; re-run native {} vs {m} {}",
        sig(&t.runs, Mode::Native),
        sig(&t.runs, m),
        sig(&t.reruns, Mode::Native),
        sig(&t.reruns, m)
    );
    if !t.native_samples.is_empty() {
        let samples: Vec<String> = t
            .native_samples
            .iter()
            .map(|r| r.outcome.signature())
            .collect();
        line.push_str(&format!("; more native runs: {}", samples.join(", ")));
    }
    line
}

/// `0.4 s`, `12.3 s`, `3 min 05 s`.
pub fn fmt_secs(s: f64) -> String {
    if s < 100.0 {
        format!("{s:.1} s")
    } else {
        let whole = s.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Outcome, Termination};
    use crate::selftests::Run;
    use std::path::PathBuf;

    fn run(mode: Mode, t: Termination, log: &str, secs: f64) -> Run {
        Run {
            mode,
            outcome: Outcome::new(t, log),
            secs,
            log: PathBuf::from("x"),
            stats: None,
        }
    }

    fn result(
        name: &str,
        runs: Vec<Run>,
        reruns: Vec<Run>,
        verdicts: &[(Mode, Verdict)],
    ) -> TestResult {
        TestResult {
            name: name.into(),
            runs: runs.into_iter().map(|r| (r.mode, r)).collect(),
            reruns: reruns.into_iter().map(|r| (r.mode, r)).collect(),
            native_samples: Vec::new(),
            verdicts: verdicts.iter().copied().collect(),
        }
    }

    fn report(tests: Vec<TestResult>) -> SuiteReport {
        SuiteReport {
            generated: "2026-01-01 00:00 UTC".into(),
            host_kernel: "6.18".into(),
            shim: Some("/t/libkvmshim.so".into()),
            selection: "quick.list (3 of 4)".into(),
            timeout_secs: 120,
            jobs: 1,
            modes: vec![Mode::Native, Mode::Auto],
            wall_secs: 130.0,
            tests,
            excluded: vec![("slow_test".into(), "95 s natively".into())],
            notes: [(
                "x86_64/cpuid_test".to_string(),
                "PVM has fewer leaves".to_string(),
            )]
            .into(),
            stats: BTreeMap::new(),
        }
    }

    const FAIL: &str = "==== Test Assertion Failure ====\n  x86_64/cpuid_test.c:78: a == b\n";
    const SKIP: &str = "1..0 # SKIP - Requirement not met: kvm_cpu_has(X86_FEATURE_VMX)\n";

    #[test]
    fn all_same_report() {
        use Termination::Exited;
        let r = report(vec![
            result(
                "a_test",
                vec![
                    run(Mode::Native, Exited(0), "", 1.5),
                    run(Mode::Auto, Exited(0), "", 1.6),
                ],
                vec![],
                &[(Mode::Auto, Verdict::Same)],
            ),
            result(
                "x86_64/cpuid_test",
                vec![
                    run(Mode::Native, Exited(254), FAIL, 0.0),
                    run(Mode::Auto, Exited(254), FAIL, 0.0),
                ],
                vec![],
                &[(Mode::Auto, Verdict::Same)],
            ),
            result(
                "x86_64/vmx_x",
                vec![
                    run(Mode::Native, Exited(4), SKIP, 0.0),
                    run(Mode::Auto, Exited(4), SKIP, 0.0),
                ],
                vec![],
                &[(Mode::Auto, Verdict::Same)],
            ),
        ]);
        assert!(r.ok());
        let t = r.totals(Mode::Native);
        assert_eq!(t.counts[&Kind::Pass], 1);
        assert_eq!(t.counts[&Kind::Fail], 1);
        assert_eq!(t.counts[&Kind::Skip], 1);
        assert!((t.secs - 1.5).abs() < 1e-9);
        let md = r.markdown();
        assert!(
            md.contains(
                "**Result: every test ended the same way natively and under the shim (auto).**"
            ),
            "{md}"
        );
        assert!(
            md.contains("| native | 1 | 1 | 1 | 0 | 0 | 1.5 s |"),
            "{md}"
        );
        assert!(
            md.contains("| `x86_64/cpuid_test` | FAIL(254) 0.0 s | FAIL(254) 0.0 s |"),
            "{md}"
        );
        assert!(md.contains("- `x86_64/cpuid_test`: FAIL(254) at `x86_64/cpuid_test.c:78` — PVM has fewer leaves"), "{md}");
        assert!(
            md.contains("- Requirement not met: kvm_cpu_has(X86_FEATURE_VMX): `x86_64/vmx_x`"),
            "{md}"
        );
        assert!(md.contains("- `slow_test`: 95 s natively"), "{md}");
        assert!(
            md.contains("None: no difference went away on re-running."),
            "{md}"
        );
        assert!(md.contains("No command statistics"), "{md}");
        assert!(md.contains("wall time 2 min 10 s"), "{md}");
    }

    #[test]
    fn differences_and_flaky_are_reported() {
        use Termination::{Exited, Signaled};
        let r = report(vec![
            result(
                "crashy",
                vec![
                    run(Mode::Native, Exited(0), "", 1.0),
                    run(Mode::Auto, Signaled(11), "", 0.2),
                ],
                vec![
                    run(Mode::Native, Exited(0), "", 1.0),
                    run(Mode::Auto, Signaled(11), "", 0.2),
                ],
                &[(Mode::Auto, Verdict::Differs)],
            ),
            result(
                "timing",
                vec![
                    run(Mode::Native, Exited(0), "", 1.0),
                    run(Mode::Auto, Exited(1), "", 1.0),
                ],
                vec![
                    run(Mode::Native, Exited(0), "", 1.0),
                    run(Mode::Auto, Exited(0), "", 1.0),
                ],
                &[(Mode::Auto, Verdict::Flaky)],
            ),
        ]);
        assert!(!r.ok());
        assert_eq!(r.differences().len(), 1);
        assert_eq!(r.flaky().len(), 1);
        let md = r.markdown();
        assert!(md.contains("**Result: 1 real difference(s)"), "{md}");
        assert!(md.contains("- `crashy` under auto: first native PASS vs auto CRASH(SIGSEGV); re-run native PASS vs auto CRASH(SIGSEGV)"), "{md}");
        assert!(md.contains("- `timing` under auto: first native PASS vs auto FAIL(1); re-run native PASS vs auto PASS"), "{md}");
        assert!(
            md.contains("| `crashy` | PASS 1.0 s | CRASH(SIGSEGV) 0.2 s **≠** |"),
            "{md}"
        );
        assert!(
            md.contains("| `timing` | PASS 1.0 s | FAIL(1) 1.0 s (flaky) |"),
            "{md}"
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains("\"verdicts\":{\"auto\":\"differs\"}"),
            "{json}"
        );
    }

    #[test]
    fn seconds_format() {
        assert_eq!(fmt_secs(0.04), "0.0 s");
        assert_eq!(fmt_secs(99.94), "99.9 s");
        assert_eq!(fmt_secs(185.0), "3 min 05 s");
    }
}
