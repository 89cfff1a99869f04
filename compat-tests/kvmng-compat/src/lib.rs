//! kvmng-compat: runs the Linux 6.12 KVM selftests and unmodified QEMU
//! natively and under the kvmng shim (libkvmshim.so), and compares.
//!
//! * [`outcome`]: how a run ended (PASS/SKIP/FAIL/TIMEOUT/CRASH) and what
//!   identifies it;
//! * [`testlist`]: the tests the selftests Makefile defines, list files;
//! * [`exec`]: running one program with a deadline in its own process group;
//! * [`stats`]: the shim's per-process JSON statistics;
//! * [`selftests`]: building, running and comparing the selftests;
//! * [`report`]: the Markdown and JSON reports;
//! * [`qemu`]: the QEMU scenarios (SeaBIOS, our own guest).

pub mod exec;
pub mod outcome;
pub mod qemu;
pub mod report;
pub mod selftests;
pub mod stats;
pub mod testlist;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a program is run: natively, or preloaded with the shim in one of its
/// modes (`KVMNG_MODE`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No preload.
    Native,
    /// LD_PRELOAD=libkvmshim.so KVMNG_MODE=auto.
    Auto,
    /// LD_PRELOAD=libkvmshim.so KVMNG_MODE=passthrough.
    Passthrough,
    /// LD_PRELOAD=libkvmshim.so KVMNG_MODE=syscall.
    Syscall,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Auto => "auto",
            Mode::Passthrough => "passthrough",
            Mode::Syscall => "syscall",
        }
    }

    pub fn is_shim(self) -> bool {
        self != Mode::Native
    }

    /// The environment of a run in this mode (empty for native).
    pub fn env(
        self,
        shim: Option<&Path>,
        stats: &Path,
        trace: Option<&Path>,
    ) -> Result<Vec<(String, String)>> {
        if !self.is_shim() {
            return Ok(Vec::new());
        }
        let Some(shim) = shim else {
            bail!("mode {} needs the shim library (build it with `cargo build --release -p kvmshim`, or pass --shim)", self.as_str());
        };
        let mut env = vec![
            ("LD_PRELOAD".to_string(), shim.display().to_string()),
            ("KVMNG_MODE".to_string(), self.as_str().to_string()),
            ("KVMNG_STATS".to_string(), stats.display().to_string()),
        ];
        if let Some(t) = trace {
            env.push(("KVMNG_TRACE".to_string(), t.display().to_string()));
        }
        Ok(env)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sorted, deduplicated modes with native first (every comparison needs it).
pub fn normalize_modes(modes: &[Mode]) -> Vec<Mode> {
    let mut m: Vec<Mode> = modes.to_vec();
    m.push(Mode::Native);
    m.sort();
    m.dedup();
    m
}

/// The workspace root this binary was built from.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// Finds libkvmshim.so: `explicit`, else `$KVMNG_SHIM`, else the workspace's
/// target/release, else target/debug. The result is absolute (LD_PRELOAD
/// needs that when the program changes directory).
pub fn find_shim(explicit: Option<&Path>) -> Result<PathBuf> {
    let root = workspace_root();
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => match std::env::var_os("KVMNG_SHIM") {
            Some(p) => vec![PathBuf::from(p)],
            None => vec![
                root.join("target/release/libkvmshim.so"),
                root.join("target/debug/libkvmshim.so"),
            ],
        },
    };
    for c in &candidates {
        if c.is_file() {
            return Ok(std::fs::canonicalize(c)?);
        }
    }
    bail!(
        "libkvmshim.so not found (looked at {}): build it with `cargo build --release -p kvmshim`, or pass --shim PATH",
        candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// `uname -r` of this host.
pub fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Formats seconds since the epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Replaces the text between `<!-- BEGIN name -->` and `<!-- END name -->`
/// in `doc` with `body`; appends the marked section when it is missing.
pub fn replace_section(doc: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- BEGIN {name} -->");
    let end = format!("<!-- END {name} -->");
    let body = body.trim_end_matches('\n');
    if let (Some(b), Some(e)) = (doc.find(&begin), doc.find(&end)) {
        if b < e {
            return format!("{}{begin}\n{body}\n{}", &doc[..b], &doc[e..]);
        }
    }
    let mut out = doc.trim_end_matches('\n').to_string();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    format!("{out}{begin}\n{body}\n{end}\n")
}

/// The marked results sections of a report.
pub const RESULT_SECTIONS: [&str; 2] = ["kvmng-compat selftests", "kvmng-compat qemu"];

/// The text between `<!-- BEGIN name -->` and `<!-- END name -->`.
pub fn section<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let begin = format!("<!-- BEGIN {name} -->");
    let end = format!("<!-- END {name} -->");
    let b = doc.find(&begin)? + begin.len();
    let e = doc[b..].find(&end)? + b;
    Some(doc[b..e].trim_matches('\n'))
}

/// `path` as a report shows it: relative to the working directory (the
/// repository, under make) when it lies inside it, so a committed page
/// names `target/release/libkvmshim.so` and not the clone it ran in.
pub fn shown_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// The summary of a results section for the committed page: its lines up
/// to the end of its tables (the run line, the result, the tables), not
/// what follows them (per-test lists, skip reasons, outputs, the census),
/// then a pointer to `full`, where the rest is.
pub fn brief(body: &str, full: &str) -> String {
    let mut out = String::new();
    let mut seen_table = false;
    let mut cut = false;
    for line in body.lines() {
        let is_table = line.starts_with('|');
        let log = line.starts_with("### ") || line.starts_with("- ") || line.starts_with("```");
        cut |= seen_table && log;
        seen_table |= is_table;
        // After the cut only the problems stay (a failed run lists them).
        if !cut || line.trim_start().starts_with("- PROBLEM") {
            out.push_str(line);
            out.push('\n');
        }
    }
    let out = out.trim_end_matches('\n');
    format!(
        "{out}\n\nThe rest of this run's report (per-test outcomes, skip reasons, outputs, \
         the shim's census) is in `{full}`, written by `make compat`.\n"
    )
}

/// Writes `body` into the named section of the Markdown file at `path`.
pub fn update_doc(path: &Path, name: &str, body: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = replace_section(&old, name, body);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, new)
        .map_err(|e| anyhow::anyhow!("cannot write report {}: {e}", path.display()))
}

/// A file name for a test name (`x86_64/cpuid_test` -> `x86_64_cpuid_test`).
pub fn flat_name(test: &str) -> String {
    test.replace('/', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_always_include_native_first() {
        assert_eq!(
            normalize_modes(&[Mode::Passthrough, Mode::Auto, Mode::Auto]),
            vec![Mode::Native, Mode::Auto, Mode::Passthrough]
        );
        assert_eq!(normalize_modes(&[]), vec![Mode::Native]);
    }

    #[test]
    fn shim_env() {
        let shim = Path::new("/lib/libkvmshim.so");
        assert!(Mode::Native
            .env(None, Path::new("s"), None)
            .unwrap()
            .is_empty());
        let env = Mode::Passthrough
            .env(Some(shim), Path::new("/w/s.jsonl"), None)
            .unwrap();
        assert!(env.contains(&("KVMNG_MODE".into(), "passthrough".into())));
        assert!(env.contains(&("LD_PRELOAD".into(), "/lib/libkvmshim.so".into())));
        assert!(env.contains(&("KVMNG_STATS".into(), "/w/s.jsonl".into())));
        assert!(Mode::Auto.env(None, Path::new("s"), None).is_err());
    }

    #[test]
    fn a_shown_path_is_relative_inside_the_working_directory_only() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            shown_path(&cwd.join("target/release/libkvmshim.so")),
            "target/release/libkvmshim.so"
        );
        assert_eq!(
            shown_path(Path::new("/elsewhere/libkvmshim.so")),
            "/elsewhere/libkvmshim.so"
        );
    }

    #[test]
    fn a_brief_keeps_the_tables_and_drops_the_log() {
        let body = "Run of X.\n\n**Result: ok.**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n\
                    ### Per test\n\n| t | r |\n- detail\n  - PROBLEM (q): differs\n";
        let doc = replace_section("# Page\n", "s", body);
        let b = brief(section(&doc, "s").unwrap(), "target/r.md");
        assert!(
            b.starts_with("Run of X.\n\n**Result: ok.**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n")
        );
        assert!(!b.contains("Per test") && !b.contains("detail"), "{b}");
        assert!(b.contains("`target/r.md`"), "{b}");
        assert!(b.contains("  - PROBLEM (q): differs"), "{b}");
        assert_eq!(section("no markers", "s"), None);
    }

    #[test]
    fn sections_are_replaced_or_appended() {
        let doc = "# T\n\nintro\n\n<!-- BEGIN x -->\nold\n<!-- END x -->\n\ntail\n";
        let new = replace_section(doc, "x", "new\n");
        assert_eq!(
            new,
            "# T\n\nintro\n\n<!-- BEGIN x -->\nnew\n<!-- END x -->\n\ntail\n"
        );
        assert_eq!(replace_section(&new, "x", "new"), new);
        let appended = replace_section("# T\n", "y", "body");
        assert_eq!(appended, "# T\n\n<!-- BEGIN y -->\nbody\n<!-- END y -->\n");
        assert_eq!(
            replace_section("", "y", "b"),
            "<!-- BEGIN y -->\nb\n<!-- END y -->\n"
        );
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(
            format_utc(951_782_400 + 3_600 * 13 + 60 * 7),
            "2000-02-29 13:07 UTC"
        );
        assert_eq!(format_utc(1_767_225_600), "2026-01-01 00:00 UTC");
    }
}
