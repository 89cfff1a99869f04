//! Building the KVM selftests, running each in every mode, and comparing.
//!
//! Each test runs once per mode (native first). When a shim mode ends
//! differently from native, the test is run once more natively and once more
//! in that mode, and natively up to [`NATIVE_SAMPLES`] more times while the
//! shim has an outcome native has not shown. The test is FLAKY (reported,
//! and not failing the run) only when every way the shim ended is a way
//! native also ended: a test that flips natively, like dirty_log_test here,
//! would otherwise fail the run about half the time. A shim outcome native
//! never produced fails the run even when the shim's re-run passes: a
//! re-run that passes does not make a crash or a hang of ours go away.

use crate::exec;
use crate::outcome::Outcome;
use crate::stats::{self, FileStats};
use crate::{flat_name, Mode};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Builds the KVM selftests of `src` into `build_dir` (incremental: make
/// does nothing when they are up to date). Returns the kvm selftests dir.
pub fn build(src: &Path, build_dir: &Path, jobs: usize) -> Result<PathBuf> {
    let kvm_dir = src.join("tools/testing/selftests/kvm");
    if !kvm_dir.join("Makefile").is_file() {
        bail!(
            "{} has no tools/testing/selftests/kvm/Makefile: set KVMNG_LINUX_SRC to a Linux 6.12 tree (`make linux-source` extracts Debian's into ~/.cache/kvmng)",
            src.display()
        );
    }
    if !src.join("usr/include/linux/kvm.h").is_file() {
        bail!(
            "{}/usr/include/linux/kvm.h is missing: install the uapi headers first with `make -C {} headers` (or `make linux-source`)",
            src.display(),
            src.display()
        );
    }
    std::fs::create_dir_all(build_dir)
        .with_context(|| format!("cannot create {}", build_dir.display()))?;
    let build_dir = std::fs::canonicalize(build_dir)?;
    let log_path = build_dir.join("kvmng-build.log");
    let log = std::fs::File::create(&log_path)?;
    let started = Instant::now();
    let status = std::process::Command::new("make")
        .arg("-C")
        .arg(&kvm_dir)
        .arg(format!("OUTPUT={}", build_dir.display()))
        .arg(format!("-j{}", jobs.max(1)))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("cannot run make (install it with `apt-get install make gcc`)")?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "building the KVM selftests failed ({status}); full log: {}\n{}",
            log_path.display(),
            tail.join("\n")
        );
    }
    eprintln!(
        "selftests built in {} ({:.1} s; log {})",
        build_dir.display(),
        started.elapsed().as_secs_f64(),
        log_path.display()
    );
    Ok(kvm_dir)
}

/// One run of one test in one mode.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    pub mode: Mode,
    pub outcome: Outcome,
    pub secs: f64,
    pub log: PathBuf,
    #[serde(skip)]
    pub stats: Option<FileStats>,
}

/// First run or re-run (files of re-runs get their own names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    First,
    Rerun,
    /// The n-th extra native run (from 1) taken before a difference is
    /// called real.
    Sample(usize),
}

/// Extra native runs taken when a shim mode ended twice in a way the two
/// native runs did not: the difference is real only if native never ends
/// that way in these runs either. Tests that fail now and then natively
/// (dirty_log_test's dirty-ring mode on this host's KVM) otherwise show up
/// as differences whenever native happened to pass twice; a shim that
/// changes an outcome for real costs this many extra native runs, once.
pub const NATIVE_SAMPLES: usize = 3;

/// Runs one test in one mode. The real one runs the binary; tests use fakes.
pub trait RunOne: Sync {
    fn run(&self, test: &str, mode: Mode, attempt: Attempt) -> Result<Run>;
}

/// How a shim mode compares with native for one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Ended the same way as native.
    Same,
    /// Differed, but the shim only ever ended in ways native also ended (in
    /// its first run, its re-run or up to [`NATIVE_SAMPLES`] more).
    Flaky,
    /// The shim ended, in its first run or its re-run, in a way native did
    /// not in 2 + [`NATIVE_SAMPLES`] runs: a real difference.
    Differs,
}

/// Everything about one test.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestResult {
    pub name: String,
    /// First run in each mode.
    pub runs: BTreeMap<Mode, Run>,
    /// Re-runs (native and each mode that differed at first).
    pub reruns: BTreeMap<Mode, Run>,
    /// Extra native runs, taken only when a difference survived its re-run.
    #[serde(default)]
    pub native_samples: Vec<Run>,
    /// Per shim mode.
    pub verdicts: BTreeMap<Mode, Verdict>,
}

impl TestResult {
    pub fn native(&self) -> Option<&Run> {
        self.runs.get(&Mode::Native)
    }
}

/// Runs one test in `modes` (native first) and compares, re-running once
/// when a shim mode differs from native.
pub fn test_one(runner: &dyn RunOne, test: &str, modes: &[Mode]) -> Result<TestResult> {
    let mut runs = BTreeMap::new();
    for &m in modes {
        runs.insert(m, runner.run(test, m, Attempt::First)?);
    }
    let mut reruns = BTreeMap::new();
    let mut native_samples = Vec::new();
    let mut verdicts = BTreeMap::new();
    let Some(native_sig) = runs.get(&Mode::Native).map(|r: &Run| r.outcome.signature()) else {
        return Ok(TestResult {
            name: test.into(),
            runs,
            reruns,
            native_samples: Vec::new(),
            verdicts,
        });
    };
    for &m in modes.iter().filter(|m| m.is_shim()) {
        if runs[&m].outcome.signature() == native_sig {
            verdicts.insert(m, Verdict::Same);
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = reruns.entry(Mode::Native) {
            e.insert(runner.run(test, Mode::Native, Attempt::Rerun)?);
        }
        let again = runner.run(test, m, Attempt::Rerun)?;
        let native_rerun_sig = reruns[&Mode::Native].outcome.signature();
        let shim_seen = [runs[&m].outcome.signature(), again.outcome.signature()];
        let mut native_seen = vec![native_sig.clone(), native_rerun_sig.clone()];
        native_seen.extend(native_samples.iter().map(|r: &Run| r.outcome.signature()));
        let same = loop {
            if shim_seen.iter().all(|x| native_seen.contains(x)) {
                break true;
            }
            if native_samples.len() == NATIVE_SAMPLES {
                break false;
            }
            let sample = runner.run(
                test,
                Mode::Native,
                Attempt::Sample(native_samples.len() + 1),
            )?;
            native_seen.push(sample.outcome.signature());
            native_samples.push(sample);
        };
        reruns.insert(m, again);
        verdicts.insert(
            m,
            if same {
                Verdict::Flaky
            } else {
                Verdict::Differs
            },
        );
    }
    Ok(TestResult {
        name: test.into(),
        runs,
        reruns,
        native_samples,
        verdicts,
    })
}

/// Runs every test with up to `jobs` tests at a time (each test's modes run
/// one after the other, so they see the same machine load). Results come
/// back in the order of `tests`.
pub fn run_suite(
    runner: &dyn RunOne,
    tests: &[String],
    modes: &[Mode],
    jobs: usize,
    progress: &ProgressBar,
) -> Result<Vec<TestResult>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let slots: Mutex<Vec<Option<TestResult>>> = Mutex::new(vec![None; tests.len()]);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let running: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, tests.len().max(1)) {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(test) = tests.get(i) else { return };
                {
                    let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                    r.push(test.clone());
                    progress.set_message(r.join(" "));
                }
                let res = test_one(runner, test, modes);
                {
                    let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                    r.retain(|t| t != test);
                    progress.set_message(r.join(" "));
                }
                match res {
                    Ok(tr) => {
                        let line = progress_line(&tr);
                        if progress.is_hidden() {
                            // No bar off a terminal (make test | tee, a VM's
                            // log): a counter on every line instead.
                            eprintln!(
                                "[{}/{}] {line}",
                                progress.position() + 1,
                                progress.length().unwrap_or(0)
                            );
                        } else {
                            progress.println(line);
                        }
                        progress.inc(1);
                        slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(tr);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e.context(format!("while running {test}")));
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(slots
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect())
}

fn progress_line(t: &TestResult) -> String {
    let cells: Vec<String> = t
        .runs
        .iter()
        .map(|(m, r)| format!("{m} {} {:.1}s", r.outcome.short(), r.secs))
        .collect();
    let mark = if t.verdicts.values().any(|v| *v == Verdict::Differs) {
        "  <== DIFFERS"
    } else if t.verdicts.values().any(|v| *v == Verdict::Flaky) {
        "  (flaky)"
    } else {
        ""
    };
    format!("{:<45} {}{mark}", t.name, cells.join(" | "))
}

/// Runs the built selftest binaries.
pub struct BinaryRunner {
    pub build_dir: PathBuf,
    pub work_dir: PathBuf,
    pub shim: Option<PathBuf>,
    pub timeout: Duration,
    pub trace: bool,
}

impl RunOne for BinaryRunner {
    fn run(&self, test: &str, mode: Mode, attempt: Attempt) -> Result<Run> {
        let dir = self.work_dir.join(mode.as_str());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let suffix = match attempt {
            Attempt::First => String::new(),
            Attempt::Rerun => ".rerun".to_string(),
            Attempt::Sample(n) => format!(".sample{n}"),
        };
        let base = format!("{}{suffix}", flat_name(test));
        let log = dir.join(format!("{base}.log"));
        let stats_path = dir.join(format!("{base}.stats.jsonl"));
        let trace_path = dir.join(format!("{base}.trace"));
        for p in [&stats_path, &trace_path] {
            let _ = std::fs::remove_file(p);
        }
        let program = self.build_dir.join(test);
        if !program.is_file() {
            bail!(
                "{} is missing: the selftests build did not produce it (see {}/kvmng-build.log)",
                program.display(),
                self.build_dir.display()
            );
        }
        let env = mode.env(
            self.shim.as_deref(),
            &stats_path,
            self.trace.then_some(trace_path.as_path()),
        )?;
        let ended = exec::run(&exec::Spec {
            program,
            args: Vec::new(),
            cwd: self.build_dir.clone(),
            env,
            log: log.clone(),
            timeout: self.timeout,
            stop_when: None,
        })?;
        let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
        Ok(Run {
            mode,
            outcome: Outcome::new(ended.termination, &text),
            secs: ended.elapsed.as_secs_f64(),
            log,
            stats: if mode.is_shim() {
                stats::read(&stats_path)
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A scripted runner for unit tests.
    use super::*;
    use crate::outcome::Termination;

    /// Scripted terminations per (test, mode): first run, then re-run.
    pub struct Scripted {
        pub script: BTreeMap<(String, Mode), Vec<Termination>>,
        pub calls: Mutex<Vec<(String, Mode, Attempt)>>,
    }

    impl Scripted {
        pub fn new(entries: &[(&str, Mode, &[Termination])]) -> Scripted {
            Scripted {
                script: entries
                    .iter()
                    .map(|(t, m, v)| ((t.to_string(), *m), v.to_vec()))
                    .collect(),
                calls: Mutex::new(Vec::new()),
            }
        }
    }

    impl RunOne for Scripted {
        fn run(&self, test: &str, mode: Mode, attempt: Attempt) -> Result<Run> {
            self.calls
                .lock()
                .unwrap()
                .push((test.to_string(), mode, attempt));
            let seq = self
                .script
                .get(&(test.to_string(), mode))
                .context("not scripted")?;
            let i = match attempt {
                Attempt::First => 0,
                Attempt::Rerun => 1,
                Attempt::Sample(n) => 1 + n,
            }
            .min(seq.len() - 1);
            Ok(Run {
                mode,
                outcome: Outcome::new(seq[i], ""),
                secs: 1.0,
                log: PathBuf::from(format!("{test}.{mode}.log")),
                stats: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Scripted;
    use super::*;
    use crate::outcome::Termination::{Exited, Signaled, TimedOut};

    const ALL: [Mode; 3] = [Mode::Native, Mode::Auto, Mode::Passthrough];

    #[test]
    fn same_outcomes_need_no_rerun() {
        let f = Scripted::new(&[
            ("t", Mode::Native, &[Exited(254)]),
            ("t", Mode::Auto, &[Exited(254)]),
            ("t", Mode::Passthrough, &[Exited(254)]),
        ]);
        let r = test_one(&f, "t", &ALL).unwrap();
        assert_eq!(r.verdicts[&Mode::Auto], Verdict::Same);
        assert_eq!(r.verdicts[&Mode::Passthrough], Verdict::Same);
        assert!(r.reruns.is_empty());
        assert_eq!(f.calls.lock().unwrap().len(), 3);
    }

    #[test]
    fn difference_confirmed_by_rerun_is_real() {
        let f = Scripted::new(&[
            ("t", Mode::Native, &[Exited(0), Exited(0)]),
            (
                "t",
                Mode::Auto,
                &[Signaled(libc::SIGSEGV), Signaled(libc::SIGSEGV)],
            ),
            ("t", Mode::Passthrough, &[Exited(0)]),
        ]);
        let r = test_one(&f, "t", &ALL).unwrap();
        assert_eq!(r.verdicts[&Mode::Auto], Verdict::Differs);
        assert_eq!(r.verdicts[&Mode::Passthrough], Verdict::Same);
        assert_eq!(
            r.reruns.keys().copied().collect::<Vec<_>>(),
            vec![Mode::Native, Mode::Auto]
        );
    }

    #[test]
    fn difference_gone_on_rerun_still_differs() {
        // A hang and a failure native never had: real, though the shim's
        // re-runs passed.
        let f = Scripted::new(&[
            ("t", Mode::Native, &[Exited(0), Exited(0)]),
            ("t", Mode::Auto, &[TimedOut, Exited(0)]),
            ("t", Mode::Passthrough, &[Exited(1), Exited(0)]),
        ]);
        let r = test_one(&f, "t", &ALL).unwrap();
        assert_eq!(r.verdicts[&Mode::Auto], Verdict::Differs);
        assert_eq!(r.verdicts[&Mode::Passthrough], Verdict::Differs);
        // Native is re-run once, not once per differing mode.
        let calls = f.calls.lock().unwrap();
        let native_reruns = calls
            .iter()
            .filter(|c| c.1 == Mode::Native && c.2 == Attempt::Rerun)
            .count();
        assert_eq!(native_reruns, 1);
    }

    #[test]
    fn native_flip_covering_the_shim_outcomes_is_flaky() {
        // dirty_log_test here: native FAIL then PASS, shim PASS then FAIL.
        let f = Scripted::new(&[
            ("t", Mode::Native, &[Exited(254), Exited(0)]),
            ("t", Mode::Passthrough, &[Exited(0), Exited(254)]),
        ]);
        let r = test_one(&f, "t", &[Mode::Native, Mode::Passthrough]).unwrap();
        assert_eq!(r.verdicts[&Mode::Passthrough], Verdict::Flaky);
        // Native flips, but the shim crashes twice: real.
        let f = Scripted::new(&[
            ("t", Mode::Native, &[Exited(254), Exited(0)]),
            (
                "t",
                Mode::Auto,
                &[Signaled(libc::SIGABRT), Signaled(libc::SIGABRT)],
            ),
        ]);
        let r = test_one(&f, "t", &[Mode::Native, Mode::Auto]).unwrap();
        assert_eq!(r.verdicts[&Mode::Auto], Verdict::Differs);
        // Native steady, shim flips away from it and back to something new: real.
        let f = Scripted::new(&[
            ("t", Mode::Native, &[Exited(0), Exited(0)]),
            ("t", Mode::Auto, &[Exited(1), TimedOut]),
        ]);
        let r = test_one(&f, "t", &[Mode::Native, Mode::Auto]).unwrap();
        assert_eq!(r.verdicts[&Mode::Auto], Verdict::Differs);
    }

    #[test]
    fn native_samples_decide_a_difference_that_survived_its_rerun() {
        // dirty_log_test here: native passed twice, the shim failed twice
        // at the same line; native fails there too on its second sample.
        let f = Scripted::new(&[
            (
                "t",
                Mode::Native,
                &[Exited(0), Exited(0), Exited(0), Exited(254)],
            ),
            ("t", Mode::Auto, &[Exited(254), Exited(254)]),
            ("t", Mode::Passthrough, &[Exited(254), Exited(254)]),
        ]);
        let r = test_one(&f, "t", &ALL).unwrap();
        assert_eq!(r.verdicts[&Mode::Auto], Verdict::Flaky);
        assert_eq!(r.verdicts[&Mode::Passthrough], Verdict::Flaky);
        // Two samples, shared by both modes.
        assert_eq!(r.native_samples.len(), 2);
        // A shim crash native never has: every sample taken, then real.
        let f = Scripted::new(&[
            ("t", Mode::Native, &[Exited(0), Exited(254)]),
            (
                "t",
                Mode::Auto,
                &[Signaled(libc::SIGSEGV), Signaled(libc::SIGSEGV)],
            ),
        ]);
        let r = test_one(&f, "t", &[Mode::Native, Mode::Auto]).unwrap();
        assert_eq!(r.verdicts[&Mode::Auto], Verdict::Differs);
        assert_eq!(r.native_samples.len(), NATIVE_SAMPLES);
        let calls = f.calls.lock().unwrap();
        assert!(calls.contains(&(
            "t".to_string(),
            Mode::Native,
            Attempt::Sample(NATIVE_SAMPLES)
        )));
        assert!(!calls.contains(&(
            "t".to_string(),
            Mode::Native,
            Attempt::Sample(NATIVE_SAMPLES + 1)
        )));
    }

    #[test]
    fn native_flakiness_counts_too() {
        // Native failed the first time only: the shim's pass is re-checked
        // against a native re-run, which now passes as well.
        let f = Scripted::new(&[
            ("t", Mode::Native, &[Exited(1), Exited(0)]),
            ("t", Mode::Auto, &[Exited(0), Exited(0)]),
        ]);
        let r = test_one(&f, "t", &[Mode::Native, Mode::Auto]).unwrap();
        assert_eq!(r.verdicts[&Mode::Auto], Verdict::Flaky);
    }

    #[test]
    fn suite_keeps_order_with_parallel_jobs() {
        let names: Vec<String> = (0..7).map(|i| format!("t{i}")).collect();
        let mut entries: Vec<(&str, Mode, &[crate::outcome::Termination])> = Vec::new();
        for n in &names {
            entries.push((n.as_str(), Mode::Native, &[Exited(0)]));
            entries.push((n.as_str(), Mode::Auto, &[Exited(0)]));
        }
        let f = Scripted::new(&entries);
        let pb = ProgressBar::hidden();
        let r = run_suite(&f, &names, &[Mode::Native, Mode::Auto], 3, &pb).unwrap();
        assert_eq!(r.iter().map(|t| t.name.clone()).collect::<Vec<_>>(), names);
        // An unscripted test is an error that names the test.
        let err = run_suite(&f, &["nope".to_string()], &[Mode::Native], 1, &pb).unwrap_err();
        assert!(format!("{err:#}").contains("nope"));
    }
}
