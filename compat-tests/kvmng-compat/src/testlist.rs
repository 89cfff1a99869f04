//! Which tests exist (the selftests Makefile) and which to run (list files).

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The x86_64 test programs the selftests Makefile builds (`TEST_GEN_PROGS`
/// for x86_64), in Makefile order. Understands `VAR = ...`, `VAR += ...`,
/// `VAR := ...`, backslash continuations and `$(VAR)` references to other
/// variables of the same file; that is all the 6.12 Makefile uses for them.
pub fn x86_64_programs(makefile_text: &str) -> Vec<String> {
    let vars = parse_make_vars(makefile_text);
    // 6.12: TEST_GEN_PROGS_x86_64; later trees split it into _x86 + _COMMON.
    for name in ["TEST_GEN_PROGS_x86_64", "TEST_GEN_PROGS_x86"] {
        if vars.contains_key(name) {
            let mut out = Vec::new();
            expand(&vars, name, &mut out, 0);
            let mut seen = BTreeSet::new();
            out.retain(|p| seen.insert(p.clone()));
            return out;
        }
    }
    Vec::new()
}

/// Reads `<kvm selftests dir>/Makefile` and returns its x86_64 programs.
pub fn x86_64_programs_in(kvm_dir: &Path) -> Result<Vec<String>> {
    let mk = kvm_dir.join("Makefile");
    let text = std::fs::read_to_string(&mk)
        .with_context(|| format!("cannot read {}: is KVMNG_LINUX_SRC a Linux source tree? (`make linux-source` extracts one)", mk.display()))?;
    let progs = x86_64_programs(&text);
    if progs.is_empty() {
        bail!(
            "found no TEST_GEN_PROGS_x86_64 in {}: not a 6.12-style KVM selftests Makefile",
            mk.display()
        );
    }
    Ok(progs)
}

fn parse_make_vars(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut vars: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("");
        if let Some(cont) = line.strip_suffix('\\') {
            logical.push_str(cont);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let l = std::mem::take(&mut logical);
        if l.starts_with(char::is_whitespace) {
            continue; // recipe lines and conditional bodies indented by tabs
        }
        let (name, append, value) = if let Some((n, v)) = l.split_once("+=") {
            (n, true, v)
        } else if let Some((n, v)) = l.split_once(":=") {
            (n, false, v)
        } else if let Some((n, v)) = l.split_once('=') {
            (n, false, v)
        } else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '$' || c == ':') {
            continue;
        }
        let words = value.split_whitespace().map(str::to_string);
        let entry = vars.entry(name.to_string()).or_default();
        if !append {
            entry.clear();
        }
        entry.extend(words);
    }
    vars
}

fn expand(vars: &BTreeMap<String, Vec<String>>, name: &str, out: &mut Vec<String>, depth: u32) {
    if depth > 8 {
        return;
    }
    for w in vars.get(name).into_iter().flatten() {
        if let Some(inner) = w.strip_prefix("$(").and_then(|r| r.strip_suffix(')')) {
            expand(vars, inner, out, depth + 1);
        } else if !w.contains('$') {
            out.push(w.clone());
        }
    }
}

/// A list file: the tests to run, and the tests deliberately left out with
/// the reason (so a test is never silently dropped).
///
/// ```text
/// # comment
/// x86_64/cpuid_test
/// !memslot_perf_test -- native run takes 95 s here (budget)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestList {
    pub include: Vec<String>,
    /// (test, reason)
    pub exclude: Vec<(String, String)>,
}

impl TestList {
    pub fn parse(text: &str) -> Result<TestList> {
        let mut list = TestList::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('!') {
                let (name, reason) = rest.split_once("--").with_context(|| {
                    format!(
                        "line {}: an excluded test needs a reason: `!name -- reason`",
                        i + 1
                    )
                })?;
                let (name, reason) = (name.trim(), reason.trim());
                if name.is_empty() || reason.is_empty() {
                    bail!(
                        "line {}: an excluded test needs a name and a reason: `!name -- reason`",
                        i + 1
                    );
                }
                list.exclude.push((name.to_string(), reason.to_string()));
            } else {
                let name = line.split_whitespace().next().unwrap_or(line);
                list.include.push(name.to_string());
            }
        }
        Ok(list)
    }

    pub fn load(path: &Path) -> Result<TestList> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read test list {}", path.display()))?;
        TestList::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Checks the list against the tests that exist: every listed name must
    /// exist, and every existing test must be either included or excluded
    /// with a reason. Returns the problems found.
    pub fn check_against(&self, all: &[String]) -> Vec<String> {
        let all_set: BTreeSet<&str> = all.iter().map(String::as_str).collect();
        let mut problems = Vec::new();
        let mut listed = BTreeSet::new();
        for n in self
            .include
            .iter()
            .chain(self.exclude.iter().map(|(n, _)| n))
        {
            if !all_set.contains(n.as_str()) {
                problems.push(format!(
                    "{n} is listed but the selftests Makefile has no such x86_64 test"
                ));
            }
            if !listed.insert(n.as_str()) {
                problems.push(format!("{n} is listed twice"));
            }
        }
        for t in all {
            if !listed.contains(t.as_str()) {
                problems.push(format!(
                    "{t} is neither included nor excluded (`!{t} -- reason`)"
                ));
            }
        }
        problems
    }
}

/// Notes on tests (why one fails or skips natively here): `name -- note`.
pub fn parse_notes(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once("--"))
        .map(|(n, note)| (n.trim().to_string(), note.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MK: &str = "\
LIBKVM += lib/assert.c
TEST_PROGS_x86_64 += x86_64/nx_huge_pages_test.sh

# Compiled test targets
TEST_GEN_PROGS_x86_64 = x86_64/cpuid_test
TEST_GEN_PROGS_x86_64 += x86_64/cr4_cpuid_sync_test
TEST_GEN_PROGS_x86_64 += demand_paging_test
TEST_GEN_PROGS_EXTENDED_x86_64 += x86_64/nx_huge_pages_test
TEST_GEN_PROGS_aarch64 += aarch64/aarch32_id_regs
TEST_GEN_PROGS_aarch64 += demand_paging_test
ifeq ($(ARCH),x86)
\tARCH_DIR := x86_64
endif
TEST_GEN_PROGS += $(TEST_GEN_PROGS_$(ARCH_DIR))
";

    #[test]
    fn makefile_x86_64_programs() {
        assert_eq!(
            x86_64_programs(MK),
            vec![
                "x86_64/cpuid_test",
                "x86_64/cr4_cpuid_sync_test",
                "demand_paging_test"
            ]
        );
    }

    #[test]
    fn makefile_split_layout_and_continuations() {
        let mk = "TEST_GEN_PROGS_COMMON = a \\\n  b\nTEST_GEN_PROGS_x86 = $(TEST_GEN_PROGS_COMMON)\nTEST_GEN_PROGS_x86 += x86/c\n";
        assert_eq!(x86_64_programs(mk), vec!["a", "b", "x86/c"]);
    }

    #[test]
    fn list_parse_and_check() {
        let l = TestList::parse("# c\nx86_64/cpuid_test\n\n!demand_paging_test -- 95 s natively\n")
            .unwrap();
        assert_eq!(l.include, vec!["x86_64/cpuid_test"]);
        assert_eq!(
            l.exclude,
            vec![(
                "demand_paging_test".to_string(),
                "95 s natively".to_string()
            )]
        );
        let all = x86_64_programs(MK);
        let problems = l.check_against(&all);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("x86_64/cr4_cpuid_sync_test"));
        assert!(TestList::parse("!x\n").is_err());
        assert!(TestList::parse("!x --\n").is_err());
        let dup = TestList::parse("a\n!a -- r\n").unwrap();
        assert!(dup
            .check_against(&["a".into()])
            .iter()
            .any(|p| p.contains("twice")));
    }

    #[test]
    fn notes() {
        let n = parse_notes("# x\nx86_64/cpuid_test -- PVM reports fewer CPUID leaves\nbad line\n");
        assert_eq!(n.len(), 1);
        assert_eq!(n["x86_64/cpuid_test"], "PVM reports fewer CPUID leaves");
    }
}
