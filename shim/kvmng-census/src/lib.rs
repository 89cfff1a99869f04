//! The census libkvmshim.so writes with `KVMNG_STATS=FILE`: one JSON
//! object per process, appended at exit (docs/shim.md):
//!
//! ```json
//! {"pid":1,"exe":"/usr/bin/qemu-system-x86_64","mode":"auto","backend":"legacy",
//!  "commands":[{"name":"KVM_RUN","count":9,"translated":9,"fallback":0,
//!   "passthrough":0,"errors":0,"time_ns":1234,"fallback_reasons":{"r":0}}]}
//! ```
//!
//! The one reader of those lines, for `kvmng stats`, `kvmng bench` and
//! `kvmng-compat`. Every field is required except `fallback_reasons`;
//! unknown fields are ignored (a newer shim may add some).

pub mod json;

use json::{Error, Json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One process's line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessStats {
    /// Its pid.
    pub pid: u64,
    /// Its program.
    pub exe: String,
    /// `KVMNG_MODE`.
    pub mode: String,
    /// The kvmng backend it used (`legacy`, `native`, `none`).
    pub backend: String,
    /// Per command.
    pub commands: Vec<CommandStats>,
    /// Per thread that issued vCPU ioctls (absent in older lines).
    pub threads: Vec<ThreadStats>,
}

/// Calls of one kind by how they were carried out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PathCounts {
    pub translated: u64,
    pub fallback: u64,
    pub passthrough: u64,
}

impl PathCounts {
    /// Every call.
    pub fn total(&self) -> u64 {
        self.translated + self.fallback + self.passthrough
    }
}

/// One thread's vCPU ioctls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThreadStats {
    /// Its kernel tid.
    pub tid: u64,
    /// The vCPU of its last KVM_RUN (None: it ran none).
    pub vcpu: Option<u64>,
    /// Its KVM_RUN calls.
    pub run: PathCounts,
    /// Its other vCPU ioctls before its first KVM_RUN (the shim binds a
    /// thread at its first KVM_RUN: these fall back by design).
    pub setup: PathCounts,
    /// Its other vCPU ioctls after its first KVM_RUN.
    pub other: PathCounts,
}

impl ThreadStats {
    /// A vCPU thread: one that ran a vCPU.
    pub fn is_vcpu_thread(&self) -> bool {
        self.run.total() > 0
    }

    /// Its hot calls (KVM_RUN, and vCPU ioctls after the first KVM_RUN)
    /// that were not translated.
    pub fn hot_untranslated(&self) -> u64 {
        self.run.fallback + self.run.passthrough + self.other.fallback + self.other.passthrough
    }
}

/// One command's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandStats {
    /// The ioctl's name (`KVM_RUN`).
    pub name: String,
    /// Calls.
    pub count: u64,
    /// Carried out through the kvmng API.
    pub translated: u64,
    /// Passed to the kernel for a reason.
    pub fallback: u64,
    /// Passed to the kernel in passthrough mode.
    pub passthrough: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Time in the calls.
    pub time_ns: u64,
    /// Fallbacks by reason.
    pub fallback_reasons: BTreeMap<String, u64>,
}

impl CommandStats {
    /// Adds `o`'s counters (the name stays).
    pub fn add(&mut self, o: &CommandStats) {
        self.count += o.count;
        self.translated += o.translated;
        self.fallback += o.fallback;
        self.passthrough += o.passthrough;
        self.errors += o.errors;
        self.time_ns += o.time_ns;
        for (r, n) in &o.fallback_reasons {
            *self.fallback_reasons.entry(r.clone()).or_default() += n;
        }
    }
}

fn command(c: &Json) -> Result<CommandStats, Error> {
    let mut f = CommandStats {
        name: c.str("name")?.to_string(),
        count: c.u64("count")?,
        translated: c.u64("translated")?,
        fallback: c.u64("fallback")?,
        passthrough: c.u64("passthrough")?,
        errors: c.u64("errors")?,
        time_ns: c.u64("time_ns")?,
        fallback_reasons: BTreeMap::new(),
    };
    if let Some(Json::Obj(reasons)) = c.get("fallback_reasons") {
        for (reason, n) in reasons {
            if let Json::Num(n) = n {
                f.fallback_reasons.insert(reason.clone(), *n as u64);
            }
        }
    }
    Ok(f)
}

fn path_counts(t: &Json, key: &str) -> Result<PathCounts, Error> {
    let Some(c) = t.get(key) else {
        return Err(Error(format!("thread without \"{key}\"")));
    };
    Ok(PathCounts {
        translated: c.u64("translated")?,
        fallback: c.u64("fallback")?,
        passthrough: c.u64("passthrough")?,
    })
}

fn thread(t: &Json) -> Result<ThreadStats, Error> {
    Ok(ThreadStats {
        tid: t.u64("tid")?,
        vcpu: match t.get("vcpu") {
            Some(Json::Num(n)) => Some(*n as u64),
            _ => None,
        },
        run: path_counts(t, "run")?,
        setup: path_counts(t, "setup")?,
        other: path_counts(t, "other")?,
    })
}

/// Reads one census line.
pub fn parse_line(line: &str) -> Result<ProcessStats, Error> {
    let v = json::parse(line)?;
    let Some(Json::Arr(commands)) = v.get("commands") else {
        return Err(Error("no \"commands\" array".into()));
    };
    Ok(ProcessStats {
        pid: v.u64("pid")?,
        exe: v.str("exe")?.to_string(),
        mode: v.str("mode")?.to_string(),
        backend: v.str("backend")?.to_string(),
        commands: commands.iter().map(command).collect::<Result<_, _>>()?,
        threads: match v.get("threads") {
            Some(Json::Arr(threads)) => threads.iter().map(thread).collect::<Result<_, _>>()?,
            _ => Vec::new(),
        },
    })
}

/// What a census file held: its lines, and those that were not census
/// lines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    /// The processes, in file order.
    pub processes: Vec<ProcessStats>,
    /// Lines that were not a census line: "line N: why".
    pub bad_lines: Vec<String>,
}

impl FileStats {
    /// The first bad line, as an error: "line N is not a kvmshim census
    /// line: why".
    pub fn strict(self) -> Result<Vec<ProcessStats>, Error> {
        match self.bad_lines.first() {
            None => Ok(self.processes),
            Some(bad) => {
                let (at, why) = bad.split_once(": ").unwrap_or((bad, ""));
                Err(Error(format!("{at} is not a kvmshim census line: {why}")))
            }
        }
    }
}

/// Reads a census file's text; blank lines are skipped.
pub fn parse(text: &str) -> FileStats {
    let mut out = FileStats::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(p) => out.processes.push(p),
            Err(e) => out.bad_lines.push(format!("line {}: {e}", i + 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"pid":7,"exe":"/bin/q","mode":"auto","backend":"legacy","commands":[{"name":"KVM_RUN","count":10,"translated":8,"fallback":2,"passthrough":0,"errors":1,"time_ns":5000,"fallback_reasons":{"r":2}},{"name":"KVM_CREATE_VM","count":1,"translated":1,"fallback":0,"passthrough":0,"errors":0,"time_ns":100}],"new_field":[1]}"#;

    #[test]
    fn a_line_reads_into_its_records() {
        let p = parse_line(LINE).unwrap();
        assert_eq!(
            (p.pid, p.mode.as_str(), p.backend.as_str()),
            (7, "auto", "legacy")
        );
        assert_eq!(p.commands.len(), 2);
        assert_eq!(p.commands[0].fallback_reasons["r"], 2);
        assert!(p.commands[1].fallback_reasons.is_empty());
        let mut sum = p.commands[0].clone();
        sum.add(&p.commands[0]);
        assert_eq!((sum.count, sum.fallback_reasons["r"]), (20, 4));
    }

    #[test]
    fn threads_read_into_their_records() {
        let line = r#"{"pid":7,"exe":"/bin/q","mode":"auto","backend":"legacy","commands":[],"threads":[{"tid":9,"vcpu":1,"run":{"translated":5,"fallback":0,"passthrough":0},"setup":{"translated":0,"fallback":4,"passthrough":0},"other":{"translated":2,"fallback":1,"passthrough":0}},{"tid":8,"vcpu":null,"run":{"translated":0,"fallback":0,"passthrough":0},"setup":{"translated":0,"fallback":3,"passthrough":0},"other":{"translated":0,"fallback":0,"passthrough":0}}],"threads_uncounted":0}"#;
        let p = parse_line(line).unwrap();
        assert_eq!(p.threads.len(), 2);
        assert_eq!((p.threads[0].tid, p.threads[0].vcpu), (9, Some(1)));
        assert!(p.threads[0].is_vcpu_thread());
        assert_eq!(
            (p.threads[0].setup.fallback, p.threads[0].other.fallback),
            (4, 1)
        );
        assert_eq!(p.threads[0].hot_untranslated(), 1);
        assert_eq!(p.threads[1].vcpu, None);
        assert!(!p.threads[1].is_vcpu_thread());
        assert!(
            parse_line(LINE).unwrap().threads.is_empty(),
            "older lines have none"
        );
    }

    #[test]
    fn bad_lines_are_kept_apart_and_named() {
        let f = parse(&format!("{LINE}\n\n{{\"pid\":1}}\nnot json\n"));
        assert_eq!(f.processes.len(), 1);
        assert_eq!(f.bad_lines.len(), 2);
        assert!(f.bad_lines[0].starts_with("line 3: "), "{:?}", f.bad_lines);
        let e = f.strict().unwrap_err();
        assert!(
            e.0.starts_with("line 3 is not a kvmshim census line: "),
            "{e}"
        );
        assert_eq!(parse(LINE).strict().unwrap().len(), 1);
    }
}

/// The census of a file: processes and per-command figures, summed over
/// processes (`kvmng stats`, `kvmng bench`'s check run).
#[derive(Debug, Default)]
pub struct Census {
    /// (pid, exe, mode, backend) of each line.
    pub processes: Vec<(u64, String, String, String)>,
    /// Figures by command name.
    pub commands: BTreeMap<String, CommandStats>,
    /// (pid, thread) of every thread that ran a vCPU.
    pub vcpu_threads: Vec<(u64, ThreadStats)>,
}

impl Census {
    /// Reads census lines (any line that is not one is an error).
    pub fn read(text: &str) -> Result<Census, Error> {
        let mut census = Census::default();
        for p in parse(text).strict()? {
            for c in &p.commands {
                census
                    .commands
                    .entry(c.name.clone())
                    .or_insert_with(|| CommandStats {
                        name: c.name.clone(),
                        ..CommandStats::default()
                    })
                    .add(c);
            }
            for t in p.threads.iter().filter(|t| t.is_vcpu_thread()) {
                census.vcpu_threads.push((p.pid, t.clone()));
            }
            census.processes.push((p.pid, p.exe, p.mode, p.backend));
        }
        Ok(census)
    }
}
