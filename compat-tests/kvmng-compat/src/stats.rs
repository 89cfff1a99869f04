//! The shim's statistics: `KVMNG_STATS=FILE` makes libkvmshim.so append one
//! JSON object per process at exit:
//!
//! ```json
//! {"pid":1,"exe":"/usr/bin/qemu-system-x86_64","mode":"auto","backend":"legacy",
//!  "commands":[{"name":"KVM_RUN","count":9,"translated":9,"fallback":0,
//!   "passthrough":0,"errors":0,"time_ns":1234,"fallback_reasons":{"r":0}}]}
//! ```
//!
//! This module adds them up per mode. The lines are read by `kvmng_census`,
//! the one reader of the census (shared with `kvmng stats` and `kvmng
//! bench`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub use kvmng_census::{parse, CommandStats, FileStats, ProcessStats};

/// Reads a stats file; `None` when the shim wrote none.
pub fn read(path: &Path) -> Option<FileStats> {
    std::fs::read(path)
        .ok()
        .map(|b| parse(&String::from_utf8_lossy(&b)))
}

/// One fallback reason: (reason, calls, [(command, calls)] most first).
pub type ReasonRow = (String, u64, Vec<(String, u64)>);

/// The sum over all runs of one mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeStats {
    /// Runs in this mode.
    pub runs: u64,
    /// Runs whose stats file had at least one process line.
    pub runs_with_stats: u64,
    pub processes: u64,
    /// Processes per backend ("legacy", "native").
    pub backends: BTreeMap<String, u64>,
    /// Per command, summed.
    pub commands: BTreeMap<String, CommandStats>,
    pub bad_lines: u64,
}

impl ModeStats {
    /// Adds one run's stats (or its absence).
    pub fn add_run(&mut self, f: Option<&FileStats>) {
        self.runs += 1;
        let Some(f) = f else { return };
        if !f.processes.is_empty() {
            self.runs_with_stats += 1;
        }
        self.bad_lines += f.bad_lines.len() as u64;
        for p in &f.processes {
            self.processes += 1;
            let backend = if p.backend.is_empty() {
                "?"
            } else {
                p.backend.as_str()
            };
            *self.backends.entry(backend.to_string()).or_default() += 1;
            for c in &p.commands {
                self.commands
                    .entry(c.name.clone())
                    .or_insert_with(|| CommandStats {
                        name: c.name.clone(),
                        ..Default::default()
                    })
                    .add(c);
            }
        }
    }

    /// Totals over all commands.
    pub fn total(&self) -> CommandStats {
        let mut t = CommandStats {
            name: "all".into(),
            ..Default::default()
        };
        for c in self.commands.values() {
            t.add(c);
        }
        t
    }

    /// Fallback reasons, most frequent first: (reason, calls, [(command,
    /// calls)] most first).
    pub fn fallback_reasons(&self) -> Vec<ReasonRow> {
        let mut by_reason: BTreeMap<&str, Vec<(String, u64)>> = BTreeMap::new();
        for c in self.commands.values() {
            for (r, n) in &c.fallback_reasons {
                by_reason.entry(r).or_default().push((c.name.clone(), *n));
            }
        }
        let mut out: Vec<ReasonRow> = by_reason
            .into_iter()
            .map(|(r, mut cmds)| {
                cmds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                (r.to_string(), cmds.iter().map(|c| c.1).sum(), cmds)
            })
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// A Markdown summary: one row per command, then fallback reasons.
    pub fn markdown(&self, mode: &str) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let backends = if self.backends.is_empty() {
            "none".to_string()
        } else {
            self.backends
                .iter()
                .map(|(b, n)| format!("{b} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "Mode `{mode}`: {} runs, {} with shim statistics, {} processes (backend: {backends}){}.\n",
            self.runs,
            self.runs_with_stats,
            self.processes,
            if self.bad_lines > 0 {
                format!(", {} unreadable stats lines", self.bad_lines)
            } else {
                String::new()
            }
        );
        if self.commands.is_empty() {
            let _ = writeln!(
                s,
                "No command statistics: the preloaded library wrote none (an empty or older libkvmshim.so, or a shim that never saw a KVM fd).\n"
            );
            return s;
        }
        let _ = writeln!(
            s,
            "| command | calls | translated | fallback | passthrough | errors | time (ms) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
        let total = self.total();
        for c in self.commands.values().chain(std::iter::once(&total)) {
            let name = if c.name == "all" {
                "**all**".to_string()
            } else {
                format!("`{}`", c.name)
            };
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} | {:.1} |",
                c.count,
                c.translated,
                c.fallback,
                c.passthrough,
                c.errors,
                c.time_ns as f64 / 1e6
            );
        }
        let reasons = self.fallback_reasons();
        if !reasons.is_empty() {
            let _ = writeln!(s, "\n| fallback reason | calls | commands (most first) |");
            let _ = writeln!(s, "|---|---:|---|");
            for (reason, total, cmds) in &reasons {
                let mut list: Vec<String> = cmds
                    .iter()
                    .take(4)
                    .map(|(c, n)| format!("`{c}` {n}"))
                    .collect();
                if cmds.len() > 4 {
                    list.push(format!("{} more", cmds.len() - 4));
                }
                let _ = writeln!(s, "| {reason} | {total} | {} |", list.join(", "));
            }
        }
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE1: &str = r#"{"pid":10,"exe":"/x/cpuid_test","mode":"auto","backend":"legacy","commands":[{"name":"KVM_RUN","count":5,"translated":4,"fallback":1,"passthrough":0,"errors":0,"time_ns":2000000,"fallback_reasons":{"sync_regs":1}},{"name":"KVM_CREATE_VM","count":1,"translated":1,"fallback":0,"passthrough":0,"errors":0,"time_ns":100}]}"#;
    const LINE2: &str = r#"{"pid":11,"exe":"/x/y","mode":"auto","backend":"native","commands":[{"name":"KVM_RUN","count":3,"translated":3,"fallback":0,"passthrough":0,"errors":1,"time_ns":1000000,"fallback_reasons":{}}],"future_field":1}"#;

    #[test]
    fn parse_and_sum() {
        let f = parse(&format!("{LINE1}\n\n{LINE2}\nnot json\n"));
        assert_eq!(f.processes.len(), 2);
        assert_eq!(f.bad_lines.len(), 1);
        let mut m = ModeStats::default();
        m.add_run(Some(&f));
        m.add_run(None);
        m.add_run(Some(&parse("")));
        assert_eq!(
            (m.runs, m.runs_with_stats, m.processes, m.bad_lines),
            (3, 1, 2, 1)
        );
        assert_eq!(m.backends["legacy"], 1);
        assert_eq!(m.backends["native"], 1);
        let run = &m.commands["KVM_RUN"];
        assert_eq!(
            (run.count, run.translated, run.fallback, run.errors),
            (8, 7, 1, 1)
        );
        assert_eq!(run.fallback_reasons["sync_regs"], 1);
        let t = m.total();
        assert_eq!((t.count, t.translated), (9, 8));
        let md = m.markdown("auto");
        assert!(
            md.contains("| `KVM_RUN` | 8 | 7 | 1 | 0 | 1 | 3.0 |"),
            "{md}"
        );
        assert!(md.contains("| **all** | 9 | 8 |"), "{md}");
        assert!(md.contains("| sync_regs | 1 | `KVM_RUN` 1 |"), "{md}");
        assert!(md.contains("1 unreadable stats lines"), "{md}");
    }

    #[test]
    fn no_stats_is_said_plainly() {
        let mut m = ModeStats::default();
        m.add_run(None);
        assert!(m.markdown("auto").contains("No command statistics"));
    }
}
