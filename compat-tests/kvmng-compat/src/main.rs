//! kvmng-compat: the compatibility runner (see `kvmng-compat --help` and
//! docs/compat.md).

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kvmng_compat::report::{fmt_secs, SuiteReport};
use kvmng_compat::selftests::{self, BinaryRunner};
use kvmng_compat::stats::ModeStats;
use kvmng_compat::testlist::{self, TestList};
use kvmng_compat::{
    find_shim, host_kernel, normalize_modes, qemu, update_doc, utc_now, workspace_root, Mode,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "kvmng-compat",
    version,
    about = "Run the Linux 6.12 KVM selftests and unmodified QEMU natively and under libkvmshim.so, and compare"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the KVM selftests (if needed), run each natively and under the
    /// shim, compare outcomes. Exits 1 when a shim mode really differs.
    Selftests(SelftestsArgs),
    /// Run Debian's qemu-system-x86_64 -accel kvm on SeaBIOS and on our own
    /// guest, natively and under the shim, and compare output and exit status.
    Qemu(QemuArgs),
    /// Copy the summary of each results section of a full report (`make
    /// compat` writes one to target/kvmng-compat/compat.md) into a
    /// committed page (docs/compat.md): its result line and tables, not
    /// the run's log.
    Brief {
        /// The full report.
        #[arg(long)]
        from: PathBuf,
        /// The page whose marked sections are replaced.
        #[arg(long)]
        into: PathBuf,
    },
}

#[derive(Args)]
struct SelftestsArgs {
    /// Modes to run (repeatable). Native always runs: it is the reference.
    #[arg(long = "mode", value_enum, default_values_t = [Mode::Native, Mode::Auto, Mode::Passthrough])]
    modes: Vec<Mode>,
    /// Test list (`name`, or `!name -- reason` to exclude).
    /// [default: compat-tests/selftests/quick.list]
    #[arg(long, conflicts_with = "all")]
    list: Option<PathBuf>,
    /// Run every x86_64 test of the selftests Makefile (ignore the list).
    #[arg(long)]
    all: bool,
    /// Run only these tests (repeatable; names as in the Makefile,
    /// e.g. x86_64/cpuid_test).
    #[arg(long = "test")]
    tests: Vec<String>,
    /// Per-run timeout in seconds (the process group is killed then).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Tests run at the same time (each test's modes run one after another).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// make -j for building the selftests.
    #[arg(long, default_value_t = 2)]
    build_jobs: usize,
    /// Skip `make` (use the binaries already in --build-dir).
    #[arg(long)]
    no_build: bool,
    /// Linux source tree [default: $KVMNG_LINUX_SRC, else ~/.cache/kvmng/linux-source-6.12].
    #[arg(long)]
    src: Option<PathBuf>,
    /// Where the selftests are built (out of tree) [default: ~/.cache/kvmng/selftests-build].
    #[arg(long)]
    build_dir: Option<PathBuf>,
    /// Logs and per-run stats files [default: target/kvmng-compat/selftests].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// libkvmshim.so [default: $KVMNG_SHIM, else target/release, else target/debug].
    #[arg(long)]
    shim: Option<PathBuf>,
    /// Also set KVMNG_TRACE (one trace file per run, next to the logs).
    #[arg(long)]
    trace: bool,
    /// Write/refresh the results section of this Markdown file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The marked section of --report to write (`<!-- BEGIN name -->`).
    #[arg(long, default_value = "kvmng-compat selftests")]
    section: String,
    /// Write the full results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Notes on native failures (`name -- why`) [default: compat-tests/selftests/notes.list].
    #[arg(long)]
    notes: Option<PathBuf>,
    /// Write a list file from this run's native times: tests at or under
    /// --max-secs are included, slower ones excluded with the time measured.
    #[arg(long)]
    suggest_list: Option<PathBuf>,
    /// Threshold for --suggest-list, in seconds.
    #[arg(long, default_value_t = 20.0)]
    max_secs: f64,
}

#[derive(Args)]
struct QemuArgs {
    /// Shim modes to compare with native (repeatable).
    #[arg(long = "mode", value_enum, default_values_t = [Mode::Auto])]
    modes: Vec<Mode>,
    /// Run only these scenarios (repeatable; see `kvmng-compat qemu --list`).
    #[arg(long = "scenario")]
    scenarios: Vec<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// The QEMU binaries (repeatable: every scenario runs with each).
    #[arg(long = "qemu", default_values_os_t = [PathBuf::from("qemu-system-x86_64")])]
    qemus: Vec<PathBuf>,
    /// compat-tests/kvmng-krun's launcher (libkrun): runs the libkrun scenarios
    /// (`make krun` builds it into ~/.cache/kvmng/krun-target/release/kvmng-krun).
    #[arg(long)]
    krun: Option<PathBuf>,
    /// libkvmshim.so [default: $KVMNG_SHIM, else target/release, else target/debug].
    #[arg(long)]
    shim: Option<PathBuf>,
    /// Per-run timeout in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Guest files [default: target/kvmng-compat/qemu].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Fail when a shim run wrote no statistics (i.e. the shim did nothing).
    #[arg(long)]
    require_stats: bool,
    /// Write/refresh the QEMU section of this Markdown file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Selftests(a) => cmd_selftests(a),
        Cmd::Qemu(a) => cmd_qemu(a),
        Cmd::Brief { from, into } => cmd_brief(&from, &into),
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kvmng-compat: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn cmd_brief(from: &Path, into: &Path) -> Result<bool> {
    let full =
        std::fs::read_to_string(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut found = false;
    for name in kvmng_compat::RESULT_SECTIONS {
        if let Some(body) = kvmng_compat::section(&full, name) {
            update_doc(
                into,
                name,
                &kvmng_compat::brief(body, &from.display().to_string()),
            )?;
            found = true;
        }
    }
    if !found {
        bail!("{} has no results section", from.display());
    }
    eprintln!("report: {}", into.display());
    Ok(true)
}

fn cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("KVMNG_CACHE") {
        return PathBuf::from(c);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/kvmng")
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

fn shim_for(modes: &[Mode], explicit: Option<&Path>) -> Result<Option<PathBuf>> {
    if modes.iter().any(|m| m.is_shim()) {
        Ok(Some(find_shim(explicit)?))
    } else {
        Ok(None)
    }
}

fn cmd_selftests(a: SelftestsArgs) -> Result<bool> {
    let root = workspace_root();
    let modes = normalize_modes(&a.modes);
    let shim = shim_for(&modes, a.shim.as_deref())?;
    let src = match a
        .src
        .clone()
        .or_else(|| std::env::var_os("KVMNG_LINUX_SRC").map(PathBuf::from))
    {
        Some(s) => s,
        None => cache_dir().join("linux-source-6.12"),
    };
    let build_dir = absolute(
        &a.build_dir
            .clone()
            .unwrap_or_else(|| cache_dir().join("selftests-build")),
    )?;
    let work_dir = absolute(
        &a.work_dir
            .clone()
            .unwrap_or_else(|| root.join("target/kvmng-compat/selftests")),
    )?;
    let kvm_dir = src.join("tools/testing/selftests/kvm");
    if a.no_build {
        if !build_dir.is_dir() {
            bail!(
                "--no-build, but {} does not exist: drop --no-build to build the selftests",
                build_dir.display()
            );
        }
    } else {
        selftests::build(&src, &build_dir, a.build_jobs)?;
    }
    let all = testlist::x86_64_programs_in(&kvm_dir)?;

    // Which tests.
    let default_list = root.join("compat-tests/selftests/quick.list");
    let (mut tests, excluded, selection) = if a.all {
        (
            all.clone(),
            Vec::new(),
            format!("all {} x86_64 tests of the Makefile", all.len()),
        )
    } else {
        let path = a.list.clone().unwrap_or_else(|| default_list.clone());
        let list = TestList::load(&path)?;
        let problems = list.check_against(&all);
        let is_default = a.list.is_none();
        for p in &problems {
            eprintln!("kvmng-compat: {}: {p}", path.display());
        }
        if is_default && !problems.is_empty() {
            bail!(
                "{} is out of step with the selftests Makefile ({} problem(s) above): list every test, or exclude it with `!name -- reason`",
                path.display(),
                problems.len()
            );
        }
        let name = path
            .file_name()
            .map_or("list".into(), |n| n.to_string_lossy().into_owned());
        let sel = format!(
            "{name}: {} of the {} x86_64 tests",
            list.include.len(),
            all.len()
        );
        (list.include, list.exclude, sel)
    };
    if !a.tests.is_empty() {
        for t in &a.tests {
            if !all.contains(t) {
                bail!(
                    "--test {t}: no such x86_64 test in {}/Makefile",
                    kvm_dir.display()
                );
            }
        }
        tests = a.tests.clone();
    }
    let notes_path = a
        .notes
        .clone()
        .unwrap_or_else(|| root.join("compat-tests/selftests/notes.list"));
    let notes = std::fs::read_to_string(&notes_path)
        .map(|t| testlist::parse_notes(&t))
        .unwrap_or_default();

    eprintln!(
        "kvmng-compat selftests: {} tests x {} modes ({}), timeout {} s, {} job(s); logs in {}",
        tests.len(),
        modes.len(),
        modes
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        a.timeout,
        a.jobs,
        work_dir.display()
    );
    if let Some(s) = &shim {
        eprintln!("shim: {}", s.display());
    }
    let runner = BinaryRunner {
        build_dir: build_dir.clone(),
        work_dir: work_dir.clone(),
        shim: shim.clone(),
        timeout: Duration::from_secs(a.timeout),
        trace: a.trace,
    };
    let pb = ProgressBar::with_draw_target(Some(tests.len() as u64), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let results = selftests::run_suite(&runner, &tests, &modes, a.jobs, &pb)?;
    pb.finish_and_clear();

    let mut stats: BTreeMap<Mode, ModeStats> = BTreeMap::new();
    for t in &results {
        for (m, r) in t.runs.iter().chain(t.reruns.iter()) {
            if m.is_shim() {
                stats.entry(*m).or_default().add_run(r.stats.as_ref());
            }
        }
    }
    let report = SuiteReport {
        generated: utc_now(),
        host_kernel: host_kernel(),
        shim: shim.as_deref().map(kvmng_compat::shown_path),
        selection,
        timeout_secs: a.timeout,
        jobs: a.jobs,
        modes: modes.clone(),
        wall_secs: started.elapsed().as_secs_f64(),
        tests: results,
        excluded,
        notes,
        stats,
    };

    // Summary on stdout.
    for &m in &modes {
        let t = report.totals(m);
        let counts: Vec<String> = kvmng_compat::outcome::Kind::ALL
            .iter()
            .map(|k| format!("{} {}", k.as_str(), t.counts.get(k).copied().unwrap_or(0)))
            .collect();
        println!(
            "{:<12} {}  ({})",
            m.as_str(),
            counts.join(", "),
            fmt_secs(t.secs)
        );
    }
    for (t, m) in report.flaky() {
        println!(
            "FLAKY {} under {m} (re-runs agree; does not fail the run)",
            t.name
        );
    }
    for (t, m) in report.differences() {
        println!(
            "DIFFERS {} under {m}: {}",
            t.name,
            kvmng_compat::report::compare_line(t, m)
        );
    }
    for (m, st) in &report.stats {
        let total = st.total();
        println!(
            "shim stats {m}: {} of {} runs wrote stats; {} calls, {} translated, {} fallback, {} passthrough, {} errors",
            st.runs_with_stats, st.runs, total.count, total.translated, total.fallback, total.passthrough, total.errors
        );
    }
    println!("wall time {}", fmt_secs(report.wall_secs));

    if let Some(path) = &a.report {
        update_doc(path, &a.section, &report.markdown())?;
        eprintln!("report: {}", path.display());
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("json: {}", path.display());
    }
    if let Some(path) = &a.suggest_list {
        std::fs::write(path, suggest_list(&report, &all, a.max_secs))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("suggested list: {}", path.display());
    }
    let ok = report.ok();
    println!(
        "{}",
        if ok {
            "selftests: native and shim outcomes match"
        } else {
            "selftests: FAILED: the shim changed the outcome of some tests (see DIFFERS above)"
        }
    );
    Ok(ok)
}

fn suggest_list(report: &SuiteReport, all: &[String], max_secs: f64) -> String {
    let mut out = format!(
        "# Generated by `kvmng-compat selftests --suggest-list` on {} (host kernel {}):\n# tests whose native run took at most {max_secs} s; slower ones are excluded with the time measured.\n",
        report.generated, report.host_kernel
    );
    for name in all {
        let native = report
            .tests
            .iter()
            .find(|t| &t.name == name)
            .and_then(|t| t.native());
        match native {
            Some(r) if r.secs <= max_secs => out.push_str(&format!("{name}\n")),
            Some(r) => out.push_str(&format!(
                "!{name} -- native run {} here ({}), over the {max_secs} s budget per test\n",
                fmt_secs(r.secs),
                r.outcome.short()
            )),
            None => out.push_str(&format!("# {name}: not run\n")),
        }
    }
    out
}

fn cmd_qemu(a: QemuArgs) -> Result<bool> {
    let root = workspace_root();
    if a.list {
        for sc in qemu::scenarios(&[]) {
            println!(
                "{:<26} -M {} -smp {}: {}",
                sc.name, sc.machine, sc.smp, sc.what
            );
        }
        return Ok(true);
    }
    let modes = normalize_modes(&a.modes);
    let shim = shim_for(&modes, a.shim.as_deref())?;
    let mut qemus = Vec::new();
    for q in &a.qemus {
        let bin = which(q).with_context(|| {
            format!("{} not found: install Debian's QEMU with `apt-get install qemu-system-x86` (or `make deps`; `make qemu-backports` for QEMU 10)", q.display())
        })?;
        let version = qemu::qemu_version(&bin);
        qemus.push((bin, version));
    }
    if !Path::new("/dev/kvm").exists() {
        bail!("/dev/kvm is missing: these scenarios need KVM");
    }
    let work_dir = absolute(
        &a.work_dir
            .clone()
            .unwrap_or_else(|| root.join("target/kvmng-compat/qemu")),
    )?;
    let qdir = root.join("compat-tests/qemu");
    let mut guests = BTreeMap::new();
    for g in qemu::Guest::ALL {
        guests.insert(g, qemu::build_guest(&qdir, &work_dir.join("guest"), g)?);
    }
    let expected = qemu::read_expected(&qdir.join("devices.expected"))?;
    let mut scenarios = qemu::scenarios(&expected);
    if !a.scenarios.is_empty() {
        for s in &a.scenarios {
            if !scenarios.iter().any(|x| x.name == s) {
                bail!(
                    "--scenario {s}: no such scenario ({})",
                    qemu::scenario_names().join(", ")
                );
            }
        }
        scenarios.retain(|x| a.scenarios.iter().any(|s| s == x.name));
    }
    // Each QEMU version's files in its own directory (by major version).
    let mut plan: Vec<(qemu::QemuConfig, String, Vec<qemu::Scenario>)> = Vec::new();
    let mut skipped: Vec<(String, String, String)> = Vec::new();
    for (bin, version) in &qemus {
        let major = qemu::qemu_major(version);
        let dir = work_dir.join(format!(
            "qemu-{}",
            major.map_or("unknown".to_string(), |m| m.to_string())
        ));
        let mut these = Vec::new();
        for sc in scenarios.iter().filter(|s| s.vmm == qemu::Vmm::Qemu) {
            match sc.skip_reason(major) {
                Some(why) => skipped.push((version.clone(), sc.name.to_string(), why)),
                None => these.push(sc.clone()),
            }
        }
        let cfg = qemu::QemuConfig {
            qemu: bin.clone(),
            shim: shim.clone(),
            work_dir: dir,
            guests: guests.clone(),
            timeout: Duration::from_secs(a.timeout),
        };
        plan.push((cfg, version.clone(), these));
    }
    let krun_scenarios: Vec<qemu::Scenario> = scenarios
        .iter()
        .filter(|s| s.vmm == qemu::Vmm::Krun)
        .cloned()
        .collect();
    match &a.krun {
        Some(k) if !krun_scenarios.is_empty() => {
            let bin = absolute(k)?;
            if !bin.is_file() {
                bail!("--krun {}: no such file (make krun builds it)", k.display());
            }
            let cfg = qemu::QemuConfig {
                qemu: bin,
                shim: shim.clone(),
                work_dir: work_dir.join("krun"),
                guests: guests.clone(),
                timeout: Duration::from_secs(a.timeout),
            };
            plan.push((cfg, qemu::KRUN_LABEL.to_string(), krun_scenarios));
        }
        _ => {
            for sc in &krun_scenarios {
                skipped.push((
                    qemu::KRUN_LABEL.to_string(),
                    sc.name.to_string(),
                    "no --krun launcher given".to_string(),
                ));
            }
        }
    }
    let total: usize = plan.iter().map(|p| p.2.len() * modes.len()).sum();
    eprintln!(
        "kvmng-compat qemu: {}; {total} runs ({} modes); files in {}",
        qemus
            .iter()
            .map(|q| q.1.as_str())
            .collect::<Vec<_>>()
            .join(" and "),
        modes.len(),
        work_dir.display()
    );
    let pb = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut results = Vec::new();
    let mut ok = true;
    for (cfg, version, these) in &plan {
        let short = if version == qemu::KRUN_LABEL {
            "krun".to_string()
        } else {
            version
                .split_whitespace()
                .skip_while(|w| *w != "version")
                .nth(1)
                .unwrap_or("?")
                .to_string()
        };
        for sc in these {
            let mut res = qemu::run_scenario(sc, &modes, |m, rerun| {
                pb.set_message(format!(
                    "{short} {} {m}{}",
                    sc.name,
                    if rerun { " (re-run)" } else { "" }
                ));
                if rerun {
                    pb.inc_length(1);
                }
                let r = qemu::run_one(cfg, sc, m, rerun);
                pb.inc(1);
                r
            })?;
            res.qemu = version.clone();
            for r in res.runs.iter().filter(|r| r.mode.is_shim()) {
                let wrote = r.stats.as_ref().is_some_and(|s| !s.processes.is_empty());
                if !wrote {
                    let msg = format!(
                        "{}: the shim wrote no statistics (is libkvmshim.so the real shim?)",
                        r.mode
                    );
                    if a.require_stats {
                        res.problems.push(msg);
                    } else {
                        pb.suspend(|| eprintln!("warning: {}: {msg}", sc.name));
                    }
                }
            }
            ok &= res.problems.is_empty();
            let verdict = if !res.problems.is_empty() {
                format!("PROBLEMS: {}", res.problems.join("; "))
            } else if !res.flaky.is_empty() {
                format!("same on re-run (FLAKY at first: {})", res.flaky.join("; "))
            } else {
                "same".to_string()
            };
            let line = format!(
                "{short:<7} {:<26} {}  {verdict}",
                sc.name,
                res.runs
                    .iter()
                    .map(|r| match (r.mode.is_shim(), qemu::ratio(&res, r)) {
                        (true, Some(x)) => {
                            format!("{} {} {:.2}s {x:.2}x", r.mode, r.ending(), r.secs)
                        }
                        _ => format!("{} {} {:.2}s", r.mode, r.ending(), r.secs),
                    })
                    .collect::<Vec<_>>()
                    .join(" | "),
            );
            pb.suspend(|| println!("{line}"));
            results.push(res);
        }
    }
    pb.finish_and_clear();
    for (_, version, _) in &plan {
        let rs: Vec<&qemu::ScenarioResult> =
            results.iter().filter(|r| &r.qemu == version).collect();
        let totals = qemu::mode_totals(&rs);
        println!(
            "summed over {} scenarios with {version}: {}",
            rs.len(),
            totals
                .iter()
                .map(|(m, t, x)| match x {
                    Some(x) => format!("{m} {t:.2}s {x:.2}x"),
                    None => format!("{m} {t:.2}s"),
                })
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    for (v, name, why) in &skipped {
        println!("skipped: {name} with {v}: {why}");
    }

    // Per-command summary of what went through the shim.
    for r in &results {
        for run in r.runs.iter().filter(|x| x.mode.is_shim()) {
            let mut st = ModeStats::default();
            st.add_run(run.stats.as_ref());
            println!(
                "--- shim statistics: {} ({}, {}) --- threads {}",
                r.scenario.name,
                r.qemu,
                run.mode,
                qemu::run_threads_summary(r.scenario.smp, run)
            );
            if st.commands.is_empty() {
                println!("  (none written)");
            }
            for c in st.commands.values() {
                println!(
                    "  {:<28} calls {:>7}  translated {:>7}  fallback {:>5}  passthrough {:>5}  errors {:>3}{}",
                    c.name,
                    c.count,
                    c.translated,
                    c.fallback,
                    c.passthrough,
                    c.errors,
                    if c.fallback_reasons.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", c.fallback_reasons.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))
                    }
                );
            }
        }
    }
    if let Some(path) = &a.report {
        let md = qemu::markdown(
            &results,
            &utc_now(),
            &host_kernel(),
            &skipped,
            shim.as_deref(),
        );
        update_doc(path, "kvmng-compat qemu", &md)?;
        eprintln!("report: {}", path.display());
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "{} ({} runs in {})",
        if ok {
            "qemu: native and shim runs match"
        } else {
            "qemu: FAILED (see PROBLEMS above)"
        },
        results.iter().map(|r| r.runs.len()).sum::<usize>(),
        fmt_secs(started.elapsed().as_secs_f64())
    );
    Ok(ok)
}

fn which(p: &Path) -> Option<PathBuf> {
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(p))
            .find(|c| c.is_file())
    })
}
