//! `kvmng ab`: a real program, run alternately in two modes.
//!
//! On a stock kernel the modes are the shim's passthrough (every KVM ioctl
//! goes to the kernel, observed) and auto (carried out through the kvmng
//! API: the emulation); on a kvmng kernel, passthrough and syscall (the
//! real syscalls). The runs alternate A B, B A, A B, ... so that a drift
//! of the machine (another job starting) hits both modes alike. Compared:
//! the wall time of each run, and every figure the program prints as
//! `<label>: <number><unit>` or `<label> took <number><unit>` with a time
//! unit (s, ms, us, ns; compared in seconds) or a rate unit (anything with
//! a `/`, e.g. `pgs/sec`) — what the KVM selftests' perf tests print
//! ("Populate memory time: 0.123s", "Iteration 1 dirty memory time: ...").
//! Each comparison is the ratio of the medians B/A with a bootstrap 95%
//! interval over the (paired) runs.

use crate::report::{fmt_ratio, Machine};
use crate::stats::{self, Bootstrap, Estimate, Summary};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A way of running the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No shim at all.
    Native,
    /// The shim preloaded, `KVMNG_MODE=passthrough`: ioctls go to the
    /// kernel, observed (the interposition cost without translation).
    Passthrough,
    /// The shim, `KVMNG_MODE=auto`: ioctls through the kvmng API.
    Auto,
    /// The shim, `KVMNG_MODE=syscall`: the kernel's kvmng syscalls.
    Syscall,
}

impl Mode {
    /// The name on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Passthrough => "passthrough",
            Mode::Auto => "auto",
            Mode::Syscall => "syscall",
        }
    }

    /// The mode of a name (`ioctl` is passthrough: the ioctls reach the
    /// kernel unchanged, with the shim loaded as on the other side).
    pub fn parse(name: &str) -> Option<Mode> {
        match name {
            "native" => Some(Mode::Native),
            "passthrough" | "ioctl" => Some(Mode::Passthrough),
            "auto" => Some(Mode::Auto),
            "syscall" => Some(Mode::Syscall),
            _ => None,
        }
    }

    /// `KVMNG_MODE` of this mode (None: no shim).
    const fn shim_mode(self) -> Option<&'static str> {
        match self {
            Mode::Native => None,
            Mode::Passthrough => Some("passthrough"),
            Mode::Auto => Some("auto"),
            Mode::Syscall => Some("syscall"),
        }
    }
}

/// The default pair: passthrough against auto on a stock kernel, against
/// syscall on a kvmng kernel.
pub fn default_modes(kernel_has_kvmng: bool) -> [Mode; 2] {
    if kernel_has_kvmng {
        [Mode::Passthrough, Mode::Syscall]
    } else {
        [Mode::Passthrough, Mode::Auto]
    }
}

/// Parses `--modes A,B`.
pub fn parse_modes(text: &str) -> Result<[Mode; 2], String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [a, b] = parts[..] else {
        return Err(format!(
            "--modes {text:?}: give two modes, A,B (e.g. passthrough,auto)"
        ));
    };
    let parse = |m: &str| {
        Mode::parse(m).ok_or_else(|| {
            format!(
                "unknown mode {m:?}; the modes are native, passthrough (or ioctl), auto, syscall"
            )
        })
    };
    let modes = [parse(a)?, parse(b)?];
    if modes[0] == modes[1] {
        return Err(format!("--modes {text:?}: the two modes are the same"));
    }
    Ok(modes)
}

/// A figure a program printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The text before the colon (or "took"), with " #2"... for repeats.
    pub label: String,
    /// The value, in seconds for times.
    pub value: f64,
    /// `s`, or the rate unit as printed.
    pub unit: String,
}

/// Splits `text` into a leading number and the unit right after it.
fn number_and_unit(text: &str) -> Option<(f64, String, &str)> {
    let text = text.trim_start();
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || ((c == '-' || c == '+') && (i == 0 || text[..i].ends_with(['e', 'E'])))
                || ((c == 'e' || c == 'E') && i > 0))
        })
        .map_or(text.len(), |(i, _)| i);
    let mut num_text = &text[..end];
    // A trailing 'e' belongs to the unit, not the number.
    while num_text.ends_with(['e', 'E', '+', '-']) {
        num_text = &num_text[..num_text.len() - 1];
    }
    if !num_text.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: f64 = num_text.parse().ok()?;
    let rest = &text[num_text.len()..];
    let spaced = rest.starts_with(' ');
    let unit_text = rest.trim_start_matches(' ');
    let unit_end = unit_text
        .char_indices()
        .find(|&(_, c)| c.is_whitespace() || matches!(c, ',' | ';' | ')' | '(' | '.'))
        .map_or(unit_text.len(), |(i, _)| i);
    let unit = &unit_text[..unit_end];
    let after = &unit_text[unit_end..];
    let seconds = match unit {
        "s" | "sec" | "secs" | "seconds" => Some(1.0),
        "ms" => Some(1e-3),
        "us" | "µs" => Some(1e-6),
        "ns" => Some(1e-9),
        _ => None,
    };
    match seconds {
        // A time unit is written right after the number ("0.12s") or
        // after one space ("0.12 s").
        Some(scale) => Some((value * scale, "s".to_string(), after)),
        None if unit.contains('/') && (spaced || !unit.is_empty()) => {
            Some((value, unit.to_string(), after))
        }
        None => None,
    }
}

/// Every figure of a program's output, in order.
pub fn parse_figures(output: &str) -> Vec<Figure> {
    let mut figures: Vec<Figure> = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        let mut found = None;
        // "<label>: <number><unit>": the first colon followed by a figure.
        for (i, _) in line.match_indices(':') {
            if let Some((value, unit, _)) = number_and_unit(&line[i + 1..]) {
                let label = line[..i].trim();
                if !label.is_empty() {
                    found = Some((label.to_string(), value, unit));
                }
                break;
            }
        }
        // "<label> took <number><unit>".
        if found.is_none() {
            if let Some(i) = line.find(" took ") {
                if let Some((value, unit, _)) = number_and_unit(&line[i + 6..]) {
                    found = Some((line[..i].trim().to_string(), value, unit));
                }
            }
        }
        if let Some((label, value, unit)) = found {
            let repeats = figures
                .iter()
                .filter(|f| f.label == label || f.label.starts_with(&format!("{label} #")))
                .count();
            let label = if repeats == 0 {
                label
            } else {
                format!("{label} #{}", repeats + 1)
            };
            figures.push(Figure { label, value, unit });
        }
    }
    figures
}

/// One run of the program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Its mode.
    pub mode: Mode,
    /// Its place in the sequence (0-based).
    pub index: usize,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Exit code, or -signal.
    pub status: i32,
    /// Ended by the timeout.
    pub timed_out: bool,
    /// The figures it printed: (label, value, unit).
    pub figures: Vec<(String, f64, String)>,
}

/// One compared quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// "wall time", or the program's label.
    pub label: String,
    /// "s" or a rate unit.
    pub unit: String,
    /// Mode A's runs.
    pub a: Summary,
    /// Mode B's runs.
    pub b: Summary,
    /// median(B) / median(A), with its interval.
    pub ratio: Estimate,
}

/// What `kvmng ab` produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbReport {
    /// `kvmng ab`.
    pub tool: String,
    /// The exact command line.
    pub command: String,
    /// The program and its arguments.
    pub program: Vec<String>,
    /// A and B.
    pub modes: [Mode; 2],
    /// Runs per mode.
    pub runs: usize,
    /// When (UTC).
    pub date: String,
    /// Where.
    pub machine: Machine,
    /// The bootstrap.
    pub bootstrap: Bootstrap,
    /// Wall time first, then the program's figures.
    pub comparisons: Vec<Comparison>,
    /// Every run.
    pub all_runs: Vec<Run>,
    /// Runs that did not exit 0 (left out of the comparisons).
    pub failures: Vec<String>,
}

/// The options of `kvmng ab`.
#[derive(clap::Args, Debug)]
pub struct AbArgs {
    /// Runs per mode.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// The two modes, A,B: native, passthrough (alias ioctl), auto,
    /// syscall [default: passthrough,auto; passthrough,syscall on a kvmng
    /// kernel].
    #[arg(long, value_name = "A,B")]
    pub modes: Option<String>,
    /// Seconds before a run is killed.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the results as a markdown section.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 2000)]
    pub bootstrap: usize,
    /// The program and its arguments (after --).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Runs `program` once in `mode`; its output goes to `output`.
fn run_once(
    command: &[OsString],
    mode: Mode,
    shim: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<(f64, i32, bool, String)> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    for var in [
        "LD_PRELOAD",
        "KVMNG_MODE",
        "KVMNG_STATS",
        "KVMNG_TRACE",
        "KVMNG_SHIM",
    ] {
        cmd.env_remove(var);
    }
    if let Some(m) = mode.shim_mode() {
        let lib = shim.context("the shim library is needed for this mode")?;
        cmd.env("LD_PRELOAD", lib).env("KVMNG_MODE", m);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", command[0].to_string_lossy()))?;
    let pid = child.id() as i32;
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut pipe| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.read_to_end(&mut v);
            v
        })
    })
    .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send((status, Instant::now()));
    });
    let (status, end, timed_out) = match rx.recv_timeout(timeout) {
        Ok((status, end)) => (status, end, false),
        Err(_) => {
            // SAFETY: signalling the process group this function created.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let (status, end) = rx.recv().context("the program's waiter is gone")?;
            (status, end, true)
        }
    };
    let status = status.context("waiting for the program")?;
    let mut output = String::new();
    for r in readers {
        output.push_str(&String::from_utf8_lossy(&r.join().unwrap_or_default()));
    }
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0));
    Ok((
        end.duration_since(start).as_secs_f64(),
        code,
        timed_out,
        output,
    ))
}

/// The comparisons of a set of runs: wall time, then each figure present
/// in at least half the good runs of both modes, in first-seen order.
pub fn compare(runs: &[Run], modes: [Mode; 2], bootstrap: &Bootstrap) -> Vec<Comparison> {
    let good = |m: Mode| -> Vec<&Run> {
        runs.iter()
            .filter(|r| r.mode == m && r.status == 0 && !r.timed_out)
            .collect()
    };
    let (a_runs, b_runs) = (good(modes[0]), good(modes[1]));
    if a_runs.is_empty() || b_runs.is_empty() {
        return Vec::new();
    }
    let paired = a_runs.len() == b_runs.len();
    let mut out = Vec::new();
    let mut push = |label: &str, unit: &str, a: Vec<f64>, b: Vec<f64>| {
        if a.is_empty() || b.is_empty() {
            return;
        }
        let both_paired = paired && a.len() == b.len();
        out.push(Comparison {
            label: label.to_string(),
            unit: unit.to_string(),
            a: stats::summarize(&a),
            b: stats::summarize(&b),
            ratio: stats::ratio_of_run_medians(&b, &a, both_paired, bootstrap),
        });
    };
    push(
        "wall time",
        "s",
        a_runs.iter().map(|r| r.wall_s).collect(),
        b_runs.iter().map(|r| r.wall_s).collect(),
    );
    let mut labels: Vec<(String, String)> = Vec::new();
    for r in a_runs.iter().chain(&b_runs) {
        for (label, _, unit) in &r.figures {
            if !labels.iter().any(|(l, _)| l == label) {
                labels.push((label.clone(), unit.clone()));
            }
        }
    }
    let values = |set: &[&Run], label: &str| -> Vec<f64> {
        set.iter()
            .filter_map(|r| r.figures.iter().find(|f| f.0 == label).map(|f| f.1))
            .collect()
    };
    for (label, unit) in labels {
        let a = values(&a_runs, &label);
        let b = values(&b_runs, &label);
        if a.len() * 2 >= a_runs.len() && b.len() * 2 >= b_runs.len() {
            push(&label, &unit, a, b);
        }
    }
    out
}

/// A value for a table whose unit is in its own column (times are
/// written with their own unit).
fn fmt_value(v: f64, unit: &str) -> String {
    if unit == "s" {
        crate::report::fmt_ns(v * 1e9)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The results as a markdown section (no heading).
pub fn render_markdown(r: &AbReport) -> String {
    let mut s = String::new();
    let (a, b) = (r.modes[0].name(), r.modes[1].name());
    let _ = writeln!(s, "Command: `{}`\n", r.command);
    let _ = writeln!(
        s,
        "{} runs per mode, alternating ({a} then {b}, then {b} then {a}, ...), on {} ({}). \
         Ratio = median {b} / median {a}, with a paired bootstrap 95% interval \
         ({} resamples).\n",
        r.runs, r.date, r.machine.kernel, r.bootstrap.resamples
    );
    let _ = writeln!(
        s,
        "| quantity | unit | median {a} | median {b} | ratio {b}/{a} [95% CI] | runs |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
    for c in &r.comparisons {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} + {} |",
            c.label,
            c.unit,
            fmt_value(c.a.median, &c.unit),
            fmt_value(c.b.median, &c.unit),
            fmt_ratio(&c.ratio),
            c.a.n,
            c.b.n
        );
    }
    if !r.failures.is_empty() {
        let _ = writeln!(s, "\nRuns left out (they did not exit 0):\n");
        for f in &r.failures {
            let _ = writeln!(s, "* {f}");
        }
    }
    s
}

/// Quotes an argument for a shell command line when needed.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+%@".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// This process's command line, as typed (the program name without its
/// directory).
pub fn this_command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        if let Some(name) = Path::new(first.as_str()).file_name() {
            *first = name.to_string_lossy().into_owned();
        }
    }
    args.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `kvmng ab`.
pub fn run(args: &AbArgs) -> anyhow::Result<()> {
    let load_at_start = crate::report::loadavg();
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let has_kvmng = kvmng::select::kernel_has_kvmng();
    let modes = match &args.modes {
        Some(text) => parse_modes(text).map_err(anyhow::Error::msg)?,
        None => default_modes(has_kvmng),
    };
    if modes.contains(&Mode::Syscall) && !has_kvmng {
        bail!(
            "the syscall mode needs a kernel with the kvmng syscalls, and this one has none \
             (kvmng_run(~0) answered ENOSYS); on a stock kernel compare passthrough,auto"
        );
    }
    let shim = if modes.iter().any(|m| m.shim_mode().is_some()) {
        Some(crate::locate::shim_library()?)
    } else {
        None
    };
    let Some(program) = args.command.first() else {
        bail!("no command given: use `kvmng ab [OPTIONS] -- COMMAND [ARGS...]`");
    };
    let bootstrap = Bootstrap {
        resamples: args.bootstrap.max(100),
        ..Bootstrap::default()
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some((2 * args.runs) as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} ab [{bar:30}] {pos}/{len} runs {elapsed_precise} (eta {eta}) {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let timeout = Duration::from_secs(args.timeout.max(1));
    let mut all_runs = Vec::new();
    let mut failures = Vec::new();
    for i in 0..args.runs {
        let order = if i % 2 == 0 {
            [modes[0], modes[1]]
        } else {
            [modes[1], modes[0]]
        };
        for mode in order {
            bar.set_message(format!("{} (run {} of {})", mode.name(), i + 1, args.runs));
            let (wall_s, status, timed_out, output) =
                run_once(&args.command, mode, shim.as_deref(), timeout)?;
            let figures = parse_figures(&output)
                .into_iter()
                .map(|f| (f.label, f.value, f.unit))
                .collect();
            let run = Run {
                mode,
                index: all_runs.len(),
                wall_s,
                status,
                timed_out,
                figures,
            };
            if status != 0 || timed_out {
                let tail: Vec<&str> = output.lines().rev().take(3).collect();
                failures.push(format!(
                    "{} run {}: {}; output ends with: {}",
                    mode.name(),
                    i + 1,
                    if timed_out {
                        format!("killed after {} s", args.timeout)
                    } else if status < 0 {
                        format!("signal {}", -status)
                    } else {
                        format!("exit status {status}")
                    },
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ));
            }
            all_runs.push(run);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let report = AbReport {
        tool: "kvmng ab".into(),
        command: this_command_line(),
        program: args
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        modes,
        runs: args.runs,
        date: crate::report::utc_now(),
        machine: {
            let mut m = Machine::detect();
            m.load.end = std::mem::replace(&mut m.load.start, load_at_start);
            m
        },
        bootstrap,
        comparisons: compare(&all_runs, modes, &bootstrap),
        all_runs,
        failures,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, render_markdown(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let (a, b) = (modes[0].name(), modes[1].name());
    println!(
        "kvmng ab: {} — {} runs per mode ({a} vs {b})",
        program.to_string_lossy(),
        args.runs
    );
    println!(
        "{:<40} {:>13} {:>12} {:>12}  ratio {b}/{a} [95% CI]",
        "quantity", "unit", a, b
    );
    for c in &report.comparisons {
        println!(
            "{:<40} {:>13} {:>12} {:>12}  {}",
            c.label,
            c.unit,
            fmt_value(c.a.median, &c.unit),
            fmt_value(c.b.median, &c.unit),
            fmt_ratio(&c.ratio)
        );
    }
    for f in &report.failures {
        println!("left out: {f}");
    }
    if report.comparisons.is_empty() {
        bail!(
            "no run of one of the modes exited 0, so nothing could be compared{}",
            report
                .failures
                .first()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRTY_LOG: &str = "\
Test iterations: 2
Testing guest mode: PA-bits:ANY, VA-bits:48,  4K pages
guest physical test memory: [0x7fbffe00000, 0x7fbfffe00000)
Populate memory time: 0.123456789s
Enabling dirty logging time: 0.000123000s

Iteration 1 dirty memory time: 0.012s
Iteration 1 get dirty log time: 0.000011s
Iteration 2 dirty memory time: 0.013s
Disabling dirty logging time: 0.0005s
Get dirty log over 2 iterations took 0.000022s. (Avg 0.000011s/iteration)
Total guest execution time:\t1.5s
Overall demand paging rate:\t12345.678901 pgs/sec
Random seed: 12345
";

    #[test]
    fn figures_of_the_perf_tests() {
        let f = parse_figures(DIRTY_LOG);
        let get = |label: &str| {
            f.iter()
                .find(|x| x.label == label)
                .map(|x| (x.value, x.unit.as_str()))
        };
        assert_eq!(get("Populate memory time"), Some((0.123456789, "s")));
        assert_eq!(get("Enabling dirty logging time"), Some((0.000123, "s")));
        assert_eq!(get("Iteration 2 dirty memory time"), Some((0.013, "s")));
        assert_eq!(
            get("Get dirty log over 2 iterations"),
            Some((0.000022, "s"))
        );
        assert_eq!(get("Total guest execution time"), Some((1.5, "s")));
        assert_eq!(
            get("Overall demand paging rate"),
            Some((12345.678901, "pgs/sec"))
        );
        // Counts without a unit, and colons followed by text, are not figures.
        assert_eq!(get("Test iterations"), None);
        assert_eq!(get("Random seed"), None);
        assert!(f.iter().all(|x| !x.label.starts_with("Testing guest mode")));
        assert_eq!(f.len(), 9, "{f:?}");
    }

    #[test]
    fn units_and_repeats() {
        let f = parse_figures("a: 5ms\nb: 7 us\nc: 2ns\nd: 3e-3s\na: 6ms\nvCPU 0 time: 1.0 s\n");
        let vals: Vec<(&str, f64)> = f.iter().map(|x| (x.label.as_str(), x.value)).collect();
        let close = |x: f64, y: f64| (x - y).abs() < 1e-15;
        assert_eq!(vals[0].0, "a");
        assert!(close(vals[0].1, 0.005));
        assert!(close(vals[1].1, 7e-6));
        assert!(close(vals[2].1, 2e-9));
        assert_eq!(vals[3].0, "d");
        assert!(close(vals[3].1, 0.003));
        assert_eq!(vals[4].0, "a #2");
        assert_eq!(vals[5], ("vCPU 0 time", 1.0));
        assert!(parse_figures("time: 5\nx: 3 apples\nsecond: s\n").is_empty());
    }

    #[test]
    fn modes_parse() {
        assert_eq!(
            parse_modes("passthrough,auto").unwrap(),
            [Mode::Passthrough, Mode::Auto]
        );
        assert_eq!(
            parse_modes("ioctl, syscall").unwrap(),
            [Mode::Passthrough, Mode::Syscall]
        );
        assert!(parse_modes("auto").is_err());
        assert!(parse_modes("auto,auto").is_err());
        assert!(parse_modes("auto,fast")
            .unwrap_err()
            .contains("unknown mode"));
        assert_eq!(default_modes(false), [Mode::Passthrough, Mode::Auto]);
        assert_eq!(default_modes(true), [Mode::Passthrough, Mode::Syscall]);
    }

    fn run(mode: Mode, wall: f64, fig: f64, status: i32) -> Run {
        Run {
            mode,
            index: 0,
            wall_s: wall,
            status,
            timed_out: false,
            figures: vec![("Populate memory time".into(), fig, "s".into())],
        }
    }

    #[test]
    fn comparisons_and_markdown() {
        let runs = vec![
            run(Mode::Passthrough, 1.0, 0.10, 0),
            run(Mode::Auto, 1.2, 0.12, 0),
            run(Mode::Auto, 1.2, 0.12, 0),
            run(Mode::Passthrough, 1.0, 0.10, 0),
            run(Mode::Passthrough, 9.0, 0.9, 1),
        ];
        let modes = [Mode::Passthrough, Mode::Auto];
        let c = compare(&runs, modes, &Bootstrap::default());
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].label, "wall time");
        assert_eq!((c[0].a.n, c[0].b.n), (2, 2));
        assert!((c[0].ratio.value - 1.2).abs() < 1e-12);
        assert!((c[1].ratio.value - 1.2).abs() < 1e-12);
        let report = AbReport {
            tool: "kvmng ab".into(),
            command: "kvmng ab --runs 2 -- ./demand_paging_test -b 16M".into(),
            program: vec!["./demand_paging_test".into()],
            modes,
            runs: 2,
            date: "2026-01-01 00:00 UTC".into(),
            machine: crate::report::Machine {
                cpu_model: "x".into(),
                cpus: 2,
                cpu_mhz: 0.0,
                memory_gib: 1.0,
                kernel: "6.18".into(),
                kvm: "PVM".into(),
                kvmng_syscalls: false,
                load: crate::report::Load::default(),
            },
            bootstrap: Bootstrap::default(),
            comparisons: c,
            all_runs: runs,
            failures: vec!["passthrough run 3: exit status 1".into()],
        };
        let md = render_markdown(&report);
        assert!(
            md.contains("| wall time | s | 1.00 s | 1.20 s | 1.20 [1.20, 1.20] | 2 + 2 |"),
            "{md}"
        );
        assert!(
            md.contains("| Populate memory time | s | 100.00 ms | 120.00 ms |"),
            "{md}"
        );
        assert!(md.contains("* passthrough run 3: exit status 1"), "{md}");
        let json = serde_json::to_string(&report).unwrap();
        let back: AbReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("-b"), "-b");
        assert_eq!(shell_quote("16M"), "16M");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
