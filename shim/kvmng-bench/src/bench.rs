//! `kvmng bench`: the cost of each KVM operation through each path, in
//! one run, with honest statistics.
//!
//! Each path runs in a worker process of its own ([`worker`]): the kvmng
//! binary re-executed, with libkvmshim.so preloaded for the shim and trap
//! paths. The parent sets every worker's fixture up for one operation,
//! then asks each for a batch of samples in turn, in rounds, rotating the
//! order every round, so that whatever else the machine does lands on all
//! paths alike. The raw ioctl is always measured: it is the baseline of
//! every ratio. Statistics are in [`stats`], outputs in [`report`] (JSON,
//! tables), [`doc`] (docs/bench.md) and [`svg`] (charts).

use crate::ops::{Op, PathKind};
use crate::report::{BenchReport, CensusRow, OpResult, PathInfo, PathResult, Settings};
use crate::stats::{self, Bootstrap};
use crate::worker::{Request, Worker};
use crate::{clock, delivery, doc, icount, ops, report, svg, worker};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use crate::worker::WORKER_ENV;

/// The options of `kvmng bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Operations, comma-separated: vm-create, vcpu-create, run-pio,
    /// run-mmio, regs-get, regs-set, state-put, state-get, irq-line,
    /// memory-map (every N) or memory-map-N, mmio-delivery; or all.
    /// mmio-delivery is the ioregion harness (four ways of delivering an
    /// MMIO access), run through the backend the kernel calls for. Not
    /// in all: state-put-N (1-8) and state-get-N (1-9), one step of the
    /// register sync alone, and state-steps for all 17.
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub ops: String,
    /// Paths, comma-separated: ioctl, legacy, shim, trap, native; or all
    /// (those this machine has). ioctl is always measured (the baseline).
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub paths: String,
    /// Samples per path and operation (the costly operations take a
    /// fraction: vm-create 1/10, vcpu-create 1/4, memory-map-4 1/4,
    /// memory-map-16 and -64 1/10).
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub iters: usize,
    /// Rounds the samples are spread over (paths interleaved per round).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Untimed samples after each set-up [default: iters/20, 5..=100].
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Bootstrap resamples for the intervals.
    #[arg(long, default_value_t = 2000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = Bootstrap::default().seed)]
    pub seed: u64,
    /// Write the results as JSON.
    #[arg(long, value_name = "F")]
    pub json: Option<PathBuf>,
    /// Write the results as a markdown document (docs/bench.md).
    #[arg(long, value_name = "F")]
    pub markdown: Option<PathBuf>,
    /// Write SVG charts into this directory.
    #[arg(long, value_name = "D")]
    pub svg_dir: Option<PathBuf>,
    /// Put this `kvmng ab --json` result into the markdown document.
    #[arg(long, value_name = "F")]
    pub ab_json: Option<PathBuf>,
    /// Skip the check run that reads the shim's census (whether the shim
    /// translated the measured ioctls).
    #[arg(long)]
    pub no_census: bool,
    /// Pin every worker to this CPU (`none`: no pinning) [default: the
    /// lowest CPU this process may use]. All paths run on the same CPU:
    /// otherwise where the scheduler puts each worker becomes part of its
    /// figures.
    #[arg(long, value_name = "N|none")]
    pub cpu: Option<String>,
    /// Count instructions instead of time: samples read the TSC, which
    /// under QEMU TCG with `-icount shift=0` advances once per guest
    /// instruction (`make vm-bench`). A calibration loop of known length
    /// checks it; elsewhere the figures are TSC ticks, and say so.
    #[arg(long)]
    pub instructions: bool,
    /// Print the in-guest instruction table of a `make vm-bench` JSON file
    /// (docs/bench/vm-bench.json) and exit, measuring nothing.
    #[arg(long, value_name = "F")]
    pub show_vm_bench: Option<PathBuf>,
    /// Put this `make vm-bench` JSON file's instruction table into the
    /// markdown document.
    #[arg(long, value_name = "F")]
    pub vm_bench_json: Option<PathBuf>,
    /// Measure nothing: read the results of an earlier run from this
    /// `--json` file and write the outputs asked for (text, --markdown,
    /// --svg-dir) from them, e.g. to put a new `make vm-bench` file into
    /// docs/bench.md without timing the host again.
    #[arg(long, value_name = "F", conflicts_with_all = ["ops", "paths", "iters", "rounds", "instructions"])]
    pub from_json: Option<PathBuf>,
    /// Measure nothing of KVM: run COMMAND (after `--`) to its end and
    /// write what it cost as JSON to F (its CPU time with all its
    /// threads, from wait4's rusage, and the TSC ticks to its exit); fails
    /// as COMMAND fails, after writing F. `make vm-bench` times QEMU
    /// booting a guest with it.
    #[arg(long, value_name = "F", requires = "command")]
    pub child_cost: Option<PathBuf>,
    /// The command of --child-cost.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Which paths can run here, and why not the others.
fn path_availability(has_kvmng: bool, shim: &Result<PathBuf, String>) -> Vec<PathInfo> {
    PathKind::ALL
        .into_iter()
        .map(|path| {
            let reason = match path {
                PathKind::Ioctl | PathKind::Legacy => None,
                PathKind::Shim => shim.as_ref().err().cloned(),
                PathKind::Trap => match (has_kvmng, shim) {
                    (true, _) => Some(
                        "this kernel has the kvmng syscalls: the shim installs no trap and the \
                         calls are native"
                            .to_string(),
                    ),
                    (false, Err(e)) => Some(e.clone()),
                    (false, Ok(_)) => None,
                },
                PathKind::Native => (!has_kvmng).then(|| {
                    "this kernel has no kvmng syscalls (kvmng_run(~0) answered ENOSYS): the \
                     native path runs on the patched kernel"
                        .to_string()
                }),
            };
            PathInfo {
                path,
                description: path.describe().to_string(),
                available: reason.is_none(),
                reason,
            }
        })
        .collect()
}

/// Samples of one path for one op: per round.
#[derive(Default)]
struct Collected {
    rounds: Vec<Vec<f64>>,
    error: Option<String>,
    trapped: u64,
    calls: u64,
    info: Option<String>,
}

fn progress(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} bench [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta}) {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

/// The samples of one op: (op, samples per path, per path).
type OpSamples = (Op, usize, BTreeMap<PathKind, Collected>);

/// Measures `ops` on `paths`: the samples per op and path.
#[allow(clippy::too_many_arguments)]
fn measure(
    ops: &[Op],
    paths: &[PathKind],
    shim: Option<&Path>,
    cpu: Option<usize>,
    iters: usize,
    rounds: usize,
    warmup: usize,
    batch_warmup: usize,
) -> anyhow::Result<Vec<OpSamples>> {
    let batches: usize = ops.len() * rounds * paths.len();
    let bar = progress((batches + ops.len() * paths.len()) as u64);
    let mut workers: BTreeMap<PathKind, Worker> = BTreeMap::new();
    let mut out = Vec::new();
    for &op in ops {
        let total = (iters / op.iteration_divisor()).max(rounds);
        let per_round = total.div_ceil(rounds);
        let mut collected: BTreeMap<PathKind, Collected> = BTreeMap::new();
        for &path in paths {
            let c = collected.entry(path).or_default();
            bar.set_message(format!("{} {}: set-up", op.name(), path.name()));
            if let std::collections::btree_map::Entry::Vacant(v) = workers.entry(path) {
                match Worker::spawn(path, shim, cpu, &[]) {
                    Ok(w) => {
                        v.insert(w);
                    }
                    Err(e) => {
                        c.error = Some(format!("{e:#}"));
                        bar.inc(1);
                        continue;
                    }
                }
            }
            let w = workers.get_mut(&path).expect("spawned");
            match w.request(&Request::Setup { op, warmup }) {
                Ok(r) if r.ok => c.info = r.info,
                Ok(r) => c.error = r.error.or(Some("set-up failed".into())),
                Err(e) => {
                    c.error = Some(format!("{e:#}"));
                    workers.remove(&path);
                }
            }
            c.rounds = vec![Vec::new(); rounds];
            bar.inc(1);
        }
        for round in 0..rounds {
            // Rotate the order every round: each path is first, second...
            // equally often.
            let order: Vec<PathKind> = (0..paths.len())
                .map(|i| paths[(i + round) % paths.len()])
                .collect();
            for path in order {
                let c = collected.get_mut(&path).expect("entry made above");
                bar.set_message(format!(
                    "{} {} (round {}/{rounds})",
                    op.name(),
                    path.name(),
                    round + 1
                ));
                if c.error.is_some() {
                    bar.inc(1);
                    continue;
                }
                let Some(w) = workers.get_mut(&path) else {
                    bar.inc(1);
                    continue;
                };
                match w.request(&Request::Batch {
                    iters: per_round,
                    warmup: batch_warmup,
                }) {
                    Ok(r) if r.ok => {
                        c.rounds[round] = r.samples.iter().map(|&ns| ns as f64).collect();
                        c.calls += (per_round + batch_warmup) as u64;
                        c.trapped += r.trapped.unwrap_or(0);
                    }
                    Ok(r) => c.error = r.error.or(Some("batch failed".into())),
                    Err(e) => {
                        c.error = Some(format!("{e:#}"));
                        workers.remove(&path);
                    }
                }
                bar.inc(1);
            }
        }
        for path in paths {
            if let Some(w) = workers.get_mut(path) {
                if let Err(e) = w.request(&Request::Teardown) {
                    let c = collected.get_mut(path).expect("entry made above");
                    c.error.get_or_insert(format!("teardown: {e:#}"));
                    workers.remove(path);
                }
            }
        }
        out.push((op, per_round * rounds, collected));
    }
    for (_, w) in workers {
        w.quit()?;
    }
    bar.finish_and_clear();
    Ok(out)
}

/// One check process: the shim path's worker with a census file, set up
/// for `op`, then `batch` samples (if any); its census.
fn census_run(
    op: Op,
    shim: &Path,
    cpu: Option<usize>,
    batch: usize,
) -> anyhow::Result<kvmng_census::Census> {
    let file = std::env::temp_dir().join(format!(
        "kvmng-bench-census.{}.{}.{batch}.jsonl",
        std::process::id(),
        op.name()
    ));
    let _ = std::fs::remove_file(&file);
    let mut w = Worker::spawn(
        PathKind::Shim,
        Some(shim),
        cpu,
        &[("KVMNG_STATS", OsString::from(&file))],
    )?;
    let mut outcome = w.request(&Request::Setup { op, warmup: 0 }).and_then(|r| {
        if !r.ok {
            bail!("set-up: {}", r.error.unwrap_or_default());
        }
        if batch > 0 {
            let r = w.request(&Request::Batch {
                iters: batch,
                warmup: 0,
            })?;
            if !r.ok {
                bail!("batch: {}", r.error.unwrap_or_default());
            }
        }
        w.request(&Request::Teardown).map(|_| ())
    });
    if let Err(e) = w.quit() {
        outcome = outcome.and(Err(e));
    }
    outcome?;
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    kvmng_census::Census::read(&text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The check run of the shim path: what the shim did with the op's own
/// ioctls. Two processes, one that only sets the fixture up and one that
/// also takes samples; the difference of their censuses is the samples'
/// (set-up ioctls may fall back, e.g. a vCPU's registers set before its
/// first KVM_RUN binds the thread; they are not what is measured).
fn shim_census(op: Op, shim: &Path, cpu: Option<usize>) -> anyhow::Result<Vec<CensusRow>> {
    const SAMPLES: usize = 4;
    let base = census_run(op, shim, cpu, 0)?;
    let with = census_run(op, shim, cpu, SAMPLES)?;
    let mut names: Vec<&str> = Vec::new();
    for &name in op.measured_commands() {
        // A sequence may issue a command twice (the put's KVM_SET_MSRS).
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names
        .into_iter()
        .filter_map(|name| {
            let f = with.commands.get(name)?;
            let zero = kvmng_census::CommandStats::default();
            let b = base.commands.get(name).unwrap_or(&zero);
            let d = |x: u64, y: u64| x.saturating_sub(y);
            let reasons = f
                .fallback_reasons
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        d(*v, b.fallback_reasons.get(k).copied().unwrap_or(0)),
                    )
                })
                .filter(|(_, v)| *v > 0)
                .collect();
            Some(CensusRow {
                command: name.to_string(),
                count: d(f.count, b.count),
                translated: d(f.translated, b.translated),
                fallback: d(f.fallback, b.fallback),
                reasons,
            })
        })
        .filter(|row| row.count > 0)
        .collect())
}

/// Turns the samples into the report's figures.
fn analyse(
    op: Op,
    iterations: usize,
    rounds: usize,
    collected: &BTreeMap<PathKind, Collected>,
    b: &Bootstrap,
) -> OpResult {
    let baseline = collected
        .get(&PathKind::Ioctl)
        .filter(|c| c.error.is_none() && c.rounds.iter().any(|r| !r.is_empty()));
    let results = collected
        .iter()
        .map(|(&path, c)| {
            let all: Vec<f64> = c.rounds.iter().flatten().copied().collect();
            if c.error.is_some() || all.is_empty() {
                return PathResult {
                    path,
                    status: "failed".into(),
                    error: c.error.clone().or(Some("no samples".into())),
                    summary: None,
                    median_ci: None,
                    ratio_to_ioctl: None,
                    round_medians: Vec::new(),
                    trapped_per_sample: None,
                    census: Vec::new(),
                    info: c.info.clone(),
                };
            }
            let ratio = match baseline {
                Some(base) if path != PathKind::Ioctl => {
                    Some(stats::ratio_of_medians_ci(&c.rounds, &base.rounds, b))
                }
                _ => None,
            };
            PathResult {
                path,
                status: "ok".into(),
                error: None,
                summary: Some(stats::summarize(&all)),
                median_ci: Some(stats::median_ci(&c.rounds, b)),
                ratio_to_ioctl: ratio,
                round_medians: c.rounds.iter().map(|r| stats::median(r)).collect(),
                trapped_per_sample: (matches!(path, PathKind::Shim | PathKind::Trap)
                    && c.calls > 0)
                    .then(|| c.trapped as f64 / c.calls as f64),
                census: Vec::new(),
                info: c.info.clone(),
            }
        })
        .collect();
    OpResult {
        op: op.name(),
        description: op.describe(),
        iterations,
        rounds,
        results,
    }
}

/// The relative path from the directory of `from_file` to `to_dir`, when
/// `to_dir` is inside it; else `to_dir` as given.
pub fn link_from(from_file: &Path, to_dir: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let base = abs(from_file.parent().unwrap_or(Path::new(".")));
    let target = abs(to_dir);
    match target.strip_prefix(&base) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => to_dir.to_string_lossy().into_owned(),
    }
}

/// `kvmng bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(f) = &args.child_cost {
        return crate::workload::child_cost(f, &args.command);
    }
    if !args.command.is_empty() {
        bail!("a command after -- is only for --child-cost F");
    }
    if let Some(f) = &args.show_vm_bench {
        let vm = icount::VmBench::read(f)?;
        print!("{}", icount::render(&vm));
        return Ok(());
    }
    if let Some(f) = &args.from_json {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let report: BenchReport = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a `kvmng bench --json` file; write one with kvmng bench --json F",
                f.display()
            )
        })?;
        return write_outputs(args, &report);
    }
    if args.iters == 0 || args.rounds == 0 {
        bail!("--iters and --rounds must be at least 1");
    }
    let mut machine = report::Machine::detect();
    clock::use_tsc(args.instructions);
    let calibration = args.instructions.then(|| {
        // The least of a few runs: one without a timer interrupt in it.
        let ticks = (0..9).map(|_| clock::calibrate()).min().unwrap_or(0);
        report::Calibration {
            instructions: clock::CALIBRATION_LOOPS * clock::CALIBRATION_PER_LOOP,
            ticks,
        }
    });
    let requested_ops = ops::parse_ops(&args.ops).map_err(anyhow::Error::msg)?;
    let requested_paths = ops::parse_paths(&args.paths).map_err(anyhow::Error::msg)?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .context("kvmng bench needs /dev/kvm, opened read-write")?;
    let has_kvmng = kvmng::select::kernel_has_kvmng();
    let shim = crate::locate::shim_library().map_err(|e| format!("{e:#}"));
    let mut infos = path_availability(has_kvmng, &shim);
    let explicit = args.paths.split(',').all(|p| p.trim() != "all");
    let mut paths: Vec<PathKind> = infos
        .iter()
        .filter(|i| i.available && (requested_paths.contains(&i.path) || i.path == PathKind::Ioctl))
        .map(|i| i.path)
        .collect();
    paths.sort();
    for i in infos.iter_mut() {
        if !requested_paths.contains(&i.path) && i.path != PathKind::Ioctl {
            i.available = false;
            i.reason
                .get_or_insert_with(|| "not asked for (--paths)".into());
        }
    }
    if explicit {
        for i in &infos {
            if requested_paths.contains(&i.path) && !paths.contains(&i.path) {
                eprintln!(
                    "kvmng bench: path {} is not measured: {}",
                    i.path.name(),
                    i.reason.as_deref().unwrap_or("unavailable")
                );
            }
        }
    }
    let delivery = requested_ops.contains(&Op::MmioDelivery);
    let measured: Vec<Op> = requested_ops
        .into_iter()
        .filter(|&o| o != Op::MmioDelivery)
        .collect();
    let warmup = args.warmup.unwrap_or((args.iters / 20).clamp(5, 100));
    let batch_warmup = 2;
    let bootstrap = Bootstrap {
        resamples: args.bootstrap.max(100),
        confidence: 0.95,
        seed: args.seed,
    };
    let cpu = match args.cpu.as_deref() {
        None => worker::first_allowed_cpu(),
        Some("none") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("--cpu {n:?}: give a CPU number or `none`"))?,
        ),
    };
    let shim_path = shim.as_ref().ok().map(PathBuf::as_path);
    let samples = measure(
        &measured,
        &paths,
        shim_path,
        cpu,
        args.iters,
        args.rounds,
        warmup,
        batch_warmup,
    )?;
    let mmio_delivery = delivery.then(|| {
        let bar = progress(args.rounds as u64);
        bar.set_message("mmio-delivery (the ioregion harness)");
        let d = delivery::measure(args.iters, args.rounds, cpu, &bootstrap, |_| bar.inc(1));
        bar.finish_and_clear();
        d
    });
    let mut results: Vec<OpResult> = samples
        .iter()
        .map(|(op, iterations, c)| analyse(*op, *iterations, args.rounds, c, &bootstrap))
        .collect();
    if !args.no_census && paths.contains(&PathKind::Shim) {
        if let Some(lib) = shim_path {
            let bar = progress(measured.len() as u64);
            bar.set_message("shim census check");
            for (op, r) in measured.iter().zip(results.iter_mut()) {
                let rows = shim_census(*op, lib, cpu);
                bar.inc(1);
                if let Some(pr) = r.results.iter_mut().find(|p| p.path == PathKind::Shim) {
                    match rows {
                        Ok(rows) => pr.census = rows,
                        Err(e) => {
                            pr.info = Some(format!("census check run failed: {e:#}"));
                        }
                    }
                }
            }
            bar.finish_and_clear();
        }
    }
    let report = BenchReport {
        tool: "kvmng bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        command: crate::ab::this_command_line(),
        date: report::utc_now(),
        machine: {
            machine.load.end = report::loadavg();
            machine
        },
        settings: Settings {
            iters: args.iters,
            rounds: args.rounds,
            warmup,
            batch_warmup,
            bootstrap,
            cpu,
            unit: if args.instructions {
                "instructions".into()
            } else {
                "ns".into()
            },
            calibration,
        },
        paths: infos,
        ops: results,
        mmio_delivery,
    };
    write_outputs(args, &report)
}

/// The text table on stdout, then the files the options ask for.
fn write_outputs(args: &BenchArgs, report: &BenchReport) -> anyhow::Result<()> {
    print!("{}", report::render_text(report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(dir) = &args.svg_dir {
        svg::write_all(report, dir)?;
        if let Some(f) = &args.vm_bench_json {
            let vm = icount::VmBench::read(f)?;
            svg::ratio_chart(&vm.runs[0], &dir.join(icount::RATIO_CHART))?;
        }
    }
    if let Some(path) = &args.markdown {
        let ab = match &args.ab_json {
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                Some(
                    serde_json::from_str::<crate::ab::AbReport>(&text).with_context(|| {
                        format!("{} is not a `kvmng ab --json` file", f.display())
                    })?,
                )
            }
            None => None,
        };
        let vm = args
            .vm_bench_json
            .as_deref()
            .map(icount::VmBench::read)
            .transpose()?;
        let svg_link = args.svg_dir.as_deref().map(|d| link_from(path, d));
        // The page is written by people; only its marked blocks are
        // generated (a missing page gets the blocks alone).
        let page = std::fs::read_to_string(path).unwrap_or_default();
        let blocks = doc::blocks(report, ab.as_ref(), svg_link.as_deref(), vm.as_ref());
        std::fs::write(path, doc::fill(&page, &blocks))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_on_each_kind_of_kernel() {
        let lib = Ok(PathBuf::from("/x/libkvmshim.so"));
        let stock = path_availability(false, &lib);
        let avail = |v: &[PathInfo]| -> Vec<&str> {
            v.iter()
                .filter(|i| i.available)
                .map(|i| i.path.name())
                .collect()
        };
        assert_eq!(avail(&stock), ["ioctl", "legacy", "shim", "trap"]);
        let patched = path_availability(true, &lib);
        assert_eq!(avail(&patched), ["ioctl", "legacy", "shim", "native"]);
        let nolib = path_availability(false, &Err("no shim".into()));
        assert_eq!(avail(&nolib), ["ioctl", "legacy"]);
        assert_eq!(nolib[2].reason.as_deref(), Some("no shim"));
    }

    #[test]
    fn svg_links_are_relative_to_the_document() {
        assert_eq!(
            link_from(Path::new("/r/docs/bench.md"), Path::new("/r/docs/bench")),
            "bench"
        );
        assert_eq!(
            link_from(Path::new("/r/docs/bench.md"), Path::new("/tmp/svg")),
            "/tmp/svg"
        );
    }

    #[test]
    fn analysis_gives_ratios_against_the_ioctl() {
        let mk = |m: f64| Collected {
            rounds: (0..4).map(|r| vec![m + r as f64; 25]).collect(),
            ..Collected::default()
        };
        let mut c = BTreeMap::new();
        c.insert(PathKind::Ioctl, mk(1000.0));
        c.insert(PathKind::Trap, mk(2000.0));
        c.insert(
            PathKind::Shim,
            Collected {
                error: Some("boom".into()),
                ..Collected::default()
            },
        );
        let r = analyse(Op::RegsGet, 100, 4, &c, &Bootstrap::default());
        assert_eq!(r.results.len(), 3);
        let trap = r.results.iter().find(|p| p.path == PathKind::Trap).unwrap();
        assert_eq!(trap.status, "ok");
        let ratio = trap.ratio_to_ioctl.unwrap();
        assert!((ratio.value - 2001.5 / 1001.5).abs() < 1e-9, "{ratio:?}");
        assert!(ratio.low <= ratio.value && ratio.value <= ratio.high);
        assert_eq!(trap.round_medians, vec![2000.0, 2001.0, 2002.0, 2003.0]);
        let shim = r.results.iter().find(|p| p.path == PathKind::Shim).unwrap();
        assert_eq!(shim.status, "failed");
        assert_eq!(shim.error.as_deref(), Some("boom"));
        let ioctl = r
            .results
            .iter()
            .find(|p| p.path == PathKind::Ioctl)
            .unwrap();
        assert!(ioctl.ratio_to_ioctl.is_none());
    }
}
