//! `kvmng stats FILE`: the census that libkvmshim.so wrote (one JSON line
//! per process, docs/shim.md), as a table per command with totals, and the
//! fallback reasons.

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// A JSON value (the census needs no more than this).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn u64(&self, key: &str) -> anyhow::Result<u64> {
        match self.get(key) {
            Some(Json::Num(n)) if *n >= 0.0 => Ok(*n as u64),
            _ => bail!("no number \"{key}\""),
        }
    }

    fn str(&self, key: &str) -> anyhow::Result<&str> {
        match self.get(key) {
            Some(Json::Str(s)) => Ok(s),
            _ => bail!("no string \"{key}\""),
        }
    }
}

/// Parses one JSON text.
pub fn parse(text: &str) -> anyhow::Result<Json> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        bail!("unexpected text at byte {}", p.i);
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> anyhow::Result<()> {
        self.ws();
        if self.s.get(self.i) != Some(&b) {
            bail!("expected '{}' at byte {}", b as char, self.i);
        }
        self.i += 1;
        Ok(())
    }

    fn value(&mut self) -> anyhow::Result<Json> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(members));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.eat(b':')?;
                    members.push((key, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(members));
                        }
                        _ => bail!("expected ',' or '}}' at byte {}", self.i),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => bail!("expected ',' or ']' at byte {}", self.i),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Json::Bool(true))
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Json::Bool(false))
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Json::Null)
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i])?;
                Ok(Json::Num(
                    text.parse()
                        .with_context(|| format!("bad number {text:?}"))?,
                ))
            }
            _ => bail!("unexpected character at byte {}", self.i),
        }
    }

    fn string(&mut self) -> anyhow::Result<String> {
        if self.s.get(self.i) != Some(&b'"') {
            bail!("expected a string at byte {}", self.i);
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                bail!("unterminated string");
            };
            self.i += 1;
            match b {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        bail!("unterminated escape");
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).context("short \\u escape")?;
                            self.i += 4;
                            let code = u32::from_str_radix(std::str::from_utf8(hex)?, 16)?;
                            // The shim escapes raw bytes of paths as \u00XX.
                            if code < 0x100 {
                                out.push(code as u8);
                            } else {
                                let c = char::from_u32(code).unwrap_or('\u{fffd}');
                                out.extend_from_slice(c.to_string().as_bytes());
                            }
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }
}

/// One command's figures, summed over processes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Figures {
    /// Calls.
    pub count: u64,
    /// Through the new API.
    pub translated: u64,
    /// To the kernel for a reason.
    pub fallback: u64,
    /// To the kernel in passthrough mode.
    pub passthrough: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Time in the calls.
    pub time_ns: u64,
    /// Fallbacks by reason.
    pub reasons: BTreeMap<String, u64>,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        self.count += other.count;
        self.translated += other.translated;
        self.fallback += other.fallback;
        self.passthrough += other.passthrough;
        self.errors += other.errors;
        self.time_ns += other.time_ns;
        for (reason, n) in &other.reasons {
            *self.reasons.entry(reason.clone()).or_default() += n;
        }
    }
}

/// The census of a file: processes and per-command figures.
#[derive(Debug, Default)]
pub struct Census {
    /// (pid, exe, mode, backend) of each line.
    pub processes: Vec<(u64, String, String, String)>,
    /// Figures by command name.
    pub commands: BTreeMap<String, Figures>,
}

/// Reads census lines.
pub fn read(text: &str) -> anyhow::Result<Census> {
    let mut census = Census::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = (|| -> anyhow::Result<()> {
            let v = parse(line)?;
            census.processes.push((
                v.u64("pid")?,
                v.str("exe")?.to_string(),
                v.str("mode")?.to_string(),
                v.str("backend")?.to_string(),
            ));
            let Some(Json::Arr(commands)) = v.get("commands") else {
                bail!("no \"commands\" array");
            };
            for c in commands {
                let mut f = Figures {
                    count: c.u64("count")?,
                    translated: c.u64("translated")?,
                    fallback: c.u64("fallback")?,
                    passthrough: c.u64("passthrough")?,
                    errors: c.u64("errors")?,
                    time_ns: c.u64("time_ns")?,
                    reasons: BTreeMap::new(),
                };
                if let Some(Json::Obj(reasons)) = c.get("fallback_reasons") {
                    for (reason, n) in reasons {
                        if let Json::Num(n) = n {
                            f.reasons.insert(reason.clone(), *n as u64);
                        }
                    }
                }
                census
                    .commands
                    .entry(c.str("name")?.to_string())
                    .or_default()
                    .add(&f);
            }
            Ok(())
        })();
        parsed.with_context(|| format!("line {} is not a kvmshim census line", n + 1))?;
    }
    Ok(census)
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
    if !total.reasons.is_empty() {
        let _ = writeln!(out, "\nfallback reasons (docs/shim.md explains each):");
        let mut reasons: Vec<(&String, &u64)> = total.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (reason, n) in reasons {
            let commands: Vec<String> = rows
                .iter()
                .filter_map(|(name, f)| f.reasons.get(reason).map(|k| format!("{name} {k}")))
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

    #[test]
    fn json_values() {
        assert_eq!(
            parse(r#" {"a":[1,-2.5e1,"x\"y",true,false,null],"b":{}} "#).unwrap(),
            Json::Obj(vec![
                (
                    "a".into(),
                    Json::Arr(vec![
                        Json::Num(1.0),
                        Json::Num(-25.0),
                        Json::Str("x\"y".into()),
                        Json::Bool(true),
                        Json::Bool(false),
                        Json::Null
                    ])
                ),
                ("b".into(), Json::Obj(vec![]))
            ])
        );
        assert!(parse("{\"a\":1").is_err());
        assert!(parse("{} x").is_err());
    }

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
        assert_eq!(run.reasons["vCPU bound to another thread"], 2);
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
