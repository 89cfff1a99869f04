//! How one run of a test ended, and what from its output identifies it.
//!
//! A selftest ends in one of five ways: PASS (exit 0), SKIP (exit 4,
//! `KSFT_SKIP`), FAIL (any other exit status), TIMEOUT (the runner killed it)
//! or CRASH (a signal). Two runs "end the same way" when their
//! [`Outcome::signature`]s are equal: same kind, same exit status or signal,
//! and the same identifying detail from the log (the assertion that failed,
//! the reason for a skip, the kselftest totals line of a pass).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Exit status of a kselftest that skipped (`KSFT_SKIP`).
pub const KSFT_SKIP: i32 = 4;

/// How the process ended, as the runner observed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal (not by the runner).
    Signaled(i32),
    /// Still running at the deadline; the runner killed its process group.
    TimedOut,
}

/// The five outcome classes of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    Pass,
    Skip,
    Fail,
    Timeout,
    Crash,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Pass,
        Kind::Skip,
        Kind::Fail,
        Kind::Timeout,
        Kind::Crash,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pass => "PASS",
            Kind::Skip => "SKIP",
            Kind::Fail => "FAIL",
            Kind::Timeout => "TIMEOUT",
            Kind::Crash => "CRASH",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies a termination: exit 0 PASS, exit 4 SKIP, other exits FAIL,
/// signals CRASH, the runner's deadline TIMEOUT.
pub fn classify(t: Termination) -> Kind {
    match t {
        Termination::Exited(0) => Kind::Pass,
        Termination::Exited(KSFT_SKIP) => Kind::Skip,
        Termination::Exited(_) => Kind::Fail,
        Termination::Signaled(_) => Kind::Crash,
        Termination::TimedOut => Kind::Timeout,
    }
}

/// One run's outcome: the class, the raw termination and the detail that
/// identifies it (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub kind: Kind,
    pub termination: Termination,
    pub detail: Option<String>,
}

impl Outcome {
    /// Builds the outcome of a run from how it ended and what it printed.
    pub fn new(termination: Termination, log: &str) -> Outcome {
        let kind = classify(termination);
        Outcome {
            kind,
            termination,
            detail: fingerprint(kind, log),
        }
    }

    /// Short form for tables: `PASS`, `FAIL(254)`, `CRASH(SIGSEGV)`.
    pub fn short(&self) -> String {
        match (self.kind, self.termination) {
            (Kind::Fail, Termination::Exited(c)) => format!("FAIL({c})"),
            (Kind::Crash, Termination::Signaled(s)) => format!("CRASH({})", signal_name(s)),
            (k, _) => k.as_str().to_string(),
        }
    }

    /// What must be equal for two runs to have ended the same way.
    pub fn signature(&self) -> String {
        match &self.detail {
            Some(d) => format!("{} [{d}]", self.short()),
            None => self.short(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.signature())
    }
}

/// The name of a signal number (`SIGSEGV`), or `SIG<n>`.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("SIG{sig}"),
    };
    name.to_string()
}

const ASSERT_BANNER: &str = "==== Test Assertion Failure ====";

/// Extracts what identifies a run from its log:
/// * FAIL / CRASH: the first failed assertion's `file:line`, or else the
///   kselftest `not ok` lines;
/// * SKIP: the reason after `# SKIP`;
/// * PASS: the kselftest `# Totals:` line, when the test prints one;
/// * TIMEOUT: nothing (where a killed test stopped is not stable).
pub fn fingerprint(kind: Kind, log: &str) -> Option<String> {
    match kind {
        Kind::Timeout => None,
        Kind::Pass => totals_line(log),
        Kind::Skip => skip_reason(log),
        Kind::Fail | Kind::Crash => assertion_site(log).or_else(|| not_ok_lines(log)),
    }
}

fn totals_line(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("# Totals:"))
        .map(|t| t.trim().to_string())
}

fn skip_reason(log: &str) -> Option<String> {
    let tagged = log.lines().find_map(|l| {
        let (_, rest) = l.split_once("# SKIP")?;
        let rest = rest.trim();
        let rest = rest.strip_prefix('-').unwrap_or(rest).trim();
        Some(rest.to_string())
    });
    // Tests that skip with print_skip() and exit(KSFT_SKIP) say why on
    // their last line ("MCG_CMCI_P is not supported, skipping test").
    tagged.or_else(|| {
        log.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.chars().take(160).collect())
    })
}

fn assertion_site(log: &str) -> Option<String> {
    // Threads print concurrently, so the banner may share its line with
    // other output, and the `file.c:NN:` site is taken from the first of the
    // next few lines that has one.
    let mut lines = log.lines();
    lines.find(|l| l.contains(ASSERT_BANNER))?;
    lines
        .take(4)
        .find_map(|l| l.split_whitespace().find_map(source_site))
}

/// `x86_64/cpuid_test.c:78:` -> `x86_64/cpuid_test.c:78`.
fn source_site(token: &str) -> Option<String> {
    let t = token.strip_suffix(':')?;
    let (file, line) = t.rsplit_once(':')?;
    let is_source = file.ends_with(".c") || file.ends_with(".h");
    (is_source && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()))
        .then(|| t.to_string())
}

fn not_ok_lines(log: &str) -> Option<String> {
    let v: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("not ok "))
        .collect();
    (!v.is_empty()).then(|| v.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_by_exit_status_signal_and_deadline() {
        assert_eq!(classify(Termination::Exited(0)), Kind::Pass);
        assert_eq!(classify(Termination::Exited(4)), Kind::Skip);
        assert_eq!(classify(Termination::Exited(1)), Kind::Fail);
        assert_eq!(classify(Termination::Exited(254)), Kind::Fail);
        assert_eq!(classify(Termination::Exited(255)), Kind::Fail);
        assert_eq!(classify(Termination::Signaled(libc::SIGSEGV)), Kind::Crash);
        assert_eq!(classify(Termination::Signaled(libc::SIGABRT)), Kind::Crash);
        assert_eq!(classify(Termination::TimedOut), Kind::Timeout);
    }

    const FAIL_LOG: &str = "Random seed: 0x6b8b4567\n==== Test Assertion Failure ====\n  x86_64/cpuid_test.c:78: cpuid1->nent == cpuid2->nent\n  pid=31900 tid=31900 errno=0 - Success\n  CPUID nent mismatch: 59 vs. 56\n";

    #[test]
    fn failure_is_identified_by_its_assertion_site() {
        let o = Outcome::new(Termination::Exited(254), FAIL_LOG);
        assert_eq!(o.kind, Kind::Fail);
        assert_eq!(o.detail.as_deref(), Some("x86_64/cpuid_test.c:78"));
        assert_eq!(o.signature(), "FAIL(254) [x86_64/cpuid_test.c:78]");
        // Same site, other pid and values: the same failure.
        let other = FAIL_LOG.replace("31900", "4242").replace("59 vs", "60 vs");
        assert_eq!(
            o.signature(),
            Outcome::new(Termination::Exited(254), &other).signature()
        );
        // Another site or status: a different failure.
        let moved = FAIL_LOG.replace(":78:", ":79:");
        assert_ne!(
            o.signature(),
            Outcome::new(Termination::Exited(254), &moved).signature()
        );
        assert_ne!(
            o.signature(),
            Outcome::new(Termination::Exited(1), FAIL_LOG).signature()
        );
    }

    #[test]
    fn assertion_site_survives_interleaved_thread_output() {
        let a = "Waiting for vCPUs to finish run 1...\n1 vCPUs haven't rendezvoused...==== Test Assertion Failure ====\n  lib/x86_64/processor.c:567: Unconditional guest failure\n  pid=2559 tid=2876 errno=4 - Interrupted system call\n";
        let b = "Waiting for vCPUs to finish run 1...\n==== Test Assertion Failure ====\n  lib/x86_64/processor.c:567: Unconditional guest failure\n  pid=3248 tid=3488 errno=4 - Interrupted system call\n1 vCPUs haven't rendezvoused...     1\t0x0000000000410261: assert_on_unhandled_exception at processor.c:611\n";
        let oa = Outcome::new(Termination::Exited(254), a);
        let ob = Outcome::new(Termination::Exited(254), b);
        assert_eq!(oa.detail.as_deref(), Some("lib/x86_64/processor.c:567"));
        assert_eq!(oa.signature(), ob.signature());
        let c = "==== Test Assertion Failure ====\nnoise  dirty_log_test.c:561: test_bit_le(page, bmap)\n";
        assert_eq!(
            Outcome::new(Termination::Exited(254), c).detail.as_deref(),
            Some("dirty_log_test.c:561")
        );
    }

    #[test]
    fn harness_failure_without_assertion_uses_not_ok_lines() {
        let log = "TAP version 13\n1..2\n# enable_quirk: Test terminated by timeout\nnot ok 1 fix_hypercall.enable_quirk\nok 2 fix_hypercall.disable_quirk\n# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0\n";
        let o = Outcome::new(Termination::Exited(1), log);
        assert_eq!(
            o.signature(),
            "FAIL(1) [not ok 1 fix_hypercall.enable_quirk]"
        );
    }

    #[test]
    fn skip_reason_and_pass_totals() {
        let skip = "Random seed: 0x6b8b4567\n1..0 # SKIP - Requirement not met: kvm_cpu_has(X86_FEATURE_VMX)\n";
        let o = Outcome::new(Termination::Exited(4), skip);
        assert_eq!(o.kind, Kind::Skip);
        assert_eq!(
            o.detail.as_deref(),
            Some("Requirement not met: kvm_cpu_has(X86_FEATURE_VMX)")
        );
        let pass = "ok 10 x\n# PASSED: 10 / 10 tests passed.\n# Totals: pass:10 fail:0 xfail:0 xpass:0 skip:0 error:0\n";
        let o = Outcome::new(Termination::Exited(0), pass);
        assert_eq!(
            o.signature(),
            "PASS [pass:10 fail:0 xfail:0 xpass:0 skip:0 error:0]"
        );
        // A pass whose subtests skipped under one mode is not the same pass.
        let other = pass.replace(
            "pass:10 fail:0 xfail:0 xpass:0 skip:0",
            "pass:9 fail:0 xfail:0 xpass:0 skip:1",
        );
        assert_ne!(
            o.signature(),
            Outcome::new(Termination::Exited(0), &other).signature()
        );
        assert_eq!(
            Outcome::new(Termination::Exited(0), "plain\n").signature(),
            "PASS"
        );
        let plain_skip = "Random seed: 0x6b8b4567\nMCG_CMCI_P is not supported, skipping test\n\n";
        assert_eq!(
            Outcome::new(Termination::Exited(4), plain_skip)
                .detail
                .as_deref(),
            Some("MCG_CMCI_P is not supported, skipping test")
        );
    }

    #[test]
    fn crash_and_timeout_forms() {
        let o = Outcome::new(Termination::Signaled(libc::SIGSEGV), "");
        assert_eq!(o.short(), "CRASH(SIGSEGV)");
        let o = Outcome::new(Termination::TimedOut, FAIL_LOG);
        assert_eq!(o.signature(), "TIMEOUT");
        assert_eq!(signal_name(64), "SIG64");
    }
}
