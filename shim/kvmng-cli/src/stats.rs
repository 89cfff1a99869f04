//! `kvmng stats FILE`: the census that libkvmshim.so wrote (one JSON line
//! per process, docs/shim.md; read by `kvmng_census`), as a table per
//! command with totals, and the fallback reasons.

use anyhow::{bail, Context};
use std::fmt::Write as _;
use std::path::Path;

/// One command's figures, summed over processes.
pub type Figures = kvmng_census::CommandStats;
/// The census of a file, summed per command.
pub use kvmng_census::Census;

/// Reads census lines (any line that is not one is an error).
pub fn read(text: &str) -> anyhow::Result<Census> {
    Census::read(text).map_err(|e| anyhow::anyhow!("{e}"))
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

fn avg_us(f: &Figures) -> String {
    if f.count == 0 {
        "-".into()
    } else {
        format!("{:.2}", f.time_ns as f64 / f.count as f64 / 1e3)
    }
}

/// The report of a census.
pub fn render(census: &Census) -> String {
    let mut out = String::new();
    let distinct = |pick: fn(&(u64, String, String, String)) -> &String| {
        let mut v: Vec<&String> = census.processes.iter().map(pick).collect();
        v.sort();
        v.dedup();
        v.into_iter().cloned().collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(
        out,
        "{} census line(s); modes: {}; backends: {}",
        census.processes.len(),
        distinct(|p| &p.2),
        distinct(|p| &p.3)
    );
    for (pid, exe, mode, backend) in &census.processes {
        let _ = writeln!(out, "  pid {pid:<8} {mode:<11} {backend:<7} {exe}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<32} {:>10} {:>10} {:>9} {:>11} {:>8} {:>11} {:>10}",
        "command", "count", "translated", "fallback", "passthrough", "errors", "time ms", "avg us"
    );
    let mut rows: Vec<(&String, &Figures)> = census.commands.iter().collect();
    rows.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    let mut total = Figures::default();
    for (name, f) in &rows {
        total.add(f);
        let _ = writeln!(
            out,
            "{:<32} {:>10} {:>10} {:>9} {:>11} {:>8} {:>11} {:>10}",
            name,
            f.count,
            f.translated,
            f.fallback,
            f.passthrough,
            f.errors,
            ms(f.time_ns),
            avg_us(f)
        );
    }
    let _ = writeln!(
        out,
        "{:<32} {:>10} {:>10} {:>9} {:>11} {:>8} {:>11} {:>10}",
        "total",
        total.count,
        total.translated,
        total.fallback,
        total.passthrough,
        total.errors,
        ms(total.time_ns),
        avg_us(&total)
    );
    if total.count > 0 {
        let _ = writeln!(
            out,
            "\ntranslated {:.1}% of {} KVM ioctls",
            100.0 * total.translated as f64 / total.count as f64,
            total.count
        );
    }
    if !census.vcpu_threads.is_empty() {
        let _ = writeln!(
            out,
            "\nvCPU threads (translated/fallback/passthrough of KVM_RUN, of the vCPU ioctls \
             before the thread's first KVM_RUN, and after it):"
        );
        for (pid, t) in &census.vcpu_threads {
            let _ = writeln!(
                out,
                "  pid {pid:<8} tid {:<8} vCPU {:<4} run {}/{}/{}  setup {}/{}/{}  after {}/{}/{}",
                t.tid,
                t.vcpu.map_or("-".to_string(), |v| v.to_string()),
                t.run.translated,
                t.run.fallback,
                t.run.passthrough,
                t.setup.translated,
                t.setup.fallback,
                t.setup.passthrough,
                t.other.translated,
                t.other.fallback,
                t.other.passthrough
            );
        }
    }
    if !total.fallback_reasons.is_empty() {
        let _ = writeln!(out, "\nfallback reasons (docs/shim.md explains each):");
        let mut reasons: Vec<(&String, &u64)> = total.fallback_reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (reason, n) in reasons {
            let commands: Vec<String> = rows
                .iter()
                .filter_map(|(name, f)| {
                    f.fallback_reasons
                        .get(reason)
                        .map(|k| format!("{name} {k}"))
                })
                .collect();
            let _ = writeln!(out, "  {n:>8}  {reason}: {}", commands.join(", "));
        }
    }
    out
}

/// `kvmng stats FILE`.
pub fn run(file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "cannot read {}; write a census with `kvmng exec --stats {} -- PROGRAM` \
             (or KVMNG_STATS={} with the shim preloaded)",
            file.display(),
            file.display(),
            file.display()
        )
    })?;
    let census = read(&text).with_context(|| format!("reading {}", file.display()))?;
    if census.processes.is_empty() {
        bail!(
            "{} has no census lines: no process under the shim made a KVM ioctl (a line is \
             written when such a process exits or execs)",
            file.display()
        );
    }
    print!("{}", render(&census));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE1: &str = r#"{"pid":7,"exe":"/bin/q\u00e9mu","mode":"auto","backend":"legacy","commands":[{"name":"KVM_RUN","count":10,"translated":8,"fallback":2,"passthrough":0,"errors":1,"time_ns":5000,"fallback_reasons":{"vCPU bound to another thread":2}},{"name":"KVM_CREATE_VM","count":1,"translated":1,"fallback":0,"passthrough":0,"errors":0,"time_ns":100,"fallback_reasons":{}}]}"#;
    const LINE2: &str = r#"{"pid":8,"exe":"/bin/q","mode":"passthrough","backend":"none","commands":[{"name":"KVM_RUN","count":5,"translated":0,"fallback":0,"passthrough":5,"errors":0,"time_ns":1000,"fallback_reasons":{}}]}"#;

    // The JSON reader's own tests are in kvmng-census (shim/kvmng-census).

    #[test]
    fn lines_sum_per_command() {
        let census = read(&format!("{LINE1}\n{LINE2}\n")).unwrap();
        assert_eq!(census.processes.len(), 2);
        assert_eq!(
            census.processes[0].1,
            "/bin/q\u{e9}mu".replace('\u{e9}', "\u{fffd}")
        );
        let run = &census.commands["KVM_RUN"];
        assert_eq!(
            (run.count, run.translated, run.fallback, run.passthrough),
            (15, 8, 2, 5)
        );
        assert_eq!(run.time_ns, 6000);
        assert_eq!(run.fallback_reasons["vCPU bound to another thread"], 2);
        let report = render(&census);
        assert!(
            report.contains("2 census line(s); modes: auto, passthrough"),
            "{report}"
        );
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("KVM_RUN") && l.contains(" 15 ")),
            "{report}"
        );
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("total") && l.contains(" 16 ")),
            "{report}"
        );
        assert!(
            report.contains("2  vCPU bound to another thread: KVM_RUN 2"),
            "{report}"
        );
        assert!(
            report.contains("translated 56.2% of 16 KVM ioctls"),
            "{report}"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let e = read("{\"pid\":1}\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("line 1 is not a kvmshim census line"),
            "{e:#}"
        );
    }
}
