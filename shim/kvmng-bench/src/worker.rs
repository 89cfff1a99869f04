//! Worker processes: each path is measured in a process of its own (the
//! kvmng binary re-executed with [`WORKER_ENV`] set), so that the shim can
//! be preloaded where a path needs it and each process has its one bound
//! VM. The parent sends one JSON request per line on the worker's stdin;
//! the worker answers one JSON line, prefixed with [`REPLY_TAG`], on its
//! stdout.

use crate::calls::Api;
use crate::fixture::Fixture;
use crate::ops::{Op, PathKind};
use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};

/// Set to a path name, this variable makes `kvmng` a bench worker.
pub const WORKER_ENV: &str = "KVMNG_BENCH_WORKER";
/// Prefix of the worker's reply lines (anything else on stdout is ignored).
pub const REPLY_TAG: &str = "KVMNG-BENCH ";
/// The CPU a worker pins itself to (unset: no pinning).
pub const CPU_ENV: &str = "KVMNG_BENCH_CPU";

/// Pins the calling thread (and so the single-threaded worker) to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside
    // it (cpu is checked against its size); sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        if cpu >= 8 * core::mem::size_of::<libc::cpu_set_t>() {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The lowest CPU this process may run on.
pub fn first_allowed_cpu() -> Option<usize> {
    // SAFETY: sched_getaffinity writes into a zeroed cpu_set_t of the size
    // given; CPU_ISSET reads it.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        if libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        (0..8 * core::mem::size_of::<libc::cpu_set_t>()).find(|&c| libc::CPU_ISSET(c, &set))
    }
}

/// A request to a worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// Build the fixture of `op` and run `warmup` untimed samples.
    Setup {
        /// The operation.
        op: Op,
        /// Untimed samples after set-up.
        warmup: usize,
    },
    /// Run `warmup` untimed samples, then `iters` timed ones.
    Batch {
        /// Timed samples.
        iters: usize,
        /// Untimed samples first.
        warmup: usize,
    },
    /// Release the fixture.
    Teardown,
    /// The MMIO delivery harness (`crate::dispatch::ioregion_dispatch`,
    /// the ioregion work's four ways) once: `batches` batches of
    /// `accesses` accesses per way, on a VM of its own.
    Dispatch {
        /// Accesses per batch.
        accesses: u64,
        /// Batches per way.
        batches: usize,
    },
    /// Exit.
    Quit,
}

/// A worker's answer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    /// The request was carried out.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Timed samples, ns.
    pub samples: Vec<u64>,
    /// Calls the shim's SIGSYS handler emulated during the request
    /// (`kvmshim_trapped_calls()`), when the shim is loaded.
    pub trapped: Option<u64>,
    /// A note for the report (set-up; the backend of a dispatch run).
    pub info: Option<String>,
    /// Named series (dispatch: ns per access, per batch, for each way).
    #[serde(default)]
    pub series: NamedSeries,
    /// Dispatch: the ways not measured, with the reason.
    #[serde(default)]
    pub unavailable: Vec<(String, String)>,
}

/// Named series of samples.
pub type NamedSeries = Vec<(String, Vec<f64>)>;

/// One run of the MMIO delivery harness of the ioregion work, through the
/// backend the kernel calls for: ns per access of each way, per batch.
fn dispatch(accesses: u64, batches: usize) -> Result<Dispatched, String> {
    let kvm = kvmng::Kvmng::open().map_err(|e| e.to_string())?;
    let d = crate::dispatch::ioregion_dispatch_with(&kvm, accesses, batches, crate::clock::now)?;
    Ok(Dispatched {
        backend: d.backend.to_string(),
        series: d
            .series
            .iter()
            .map(|s| (s.way.name().to_string(), s.ns_per_access.clone()))
            .collect(),
        unavailable: d
            .unavailable
            .iter()
            .map(|(w, why)| (w.name().to_string(), why.clone()))
            .collect(),
    })
}

/// What one run of the delivery harness gave.
struct Dispatched {
    backend: String,
    series: NamedSeries,
    unavailable: Vec<(String, String)>,
}

/// `kvmshim_trapped_calls()` of a preloaded shim, if there is one.
fn trapped_calls() -> Option<u64> {
    // SAFETY: dlsym with a NUL-terminated name; the symbol, when present,
    // is the shim's `extern "C" fn() -> u64`.
    unsafe {
        let sym = libc::dlsym(libc::RTLD_DEFAULT, c"kvmshim_trapped_calls".as_ptr());
        if sym.is_null() {
            return None;
        }
        let f: extern "C" fn() -> u64 = core::mem::transmute(sym);
        Some(f())
    }
}

/// The worker's main loop: `kvmng` with [`WORKER_ENV`] set.
pub fn main(path: &str) -> ExitCode {
    let Some(path) = PathKind::parse(path) else {
        eprintln!("kvmng bench worker: unknown path {path:?}");
        return ExitCode::from(2);
    };
    crate::clock::use_tsc(std::env::var(crate::clock::CLOCK_ENV).as_deref() == Ok("tsc"));
    if let Some(cpu) = std::env::var(CPU_ENV)
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
    {
        if let Err(e) = pin_to_cpu(cpu) {
            eprintln!("kvmng bench worker: cannot pin to CPU {cpu}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let kvm = match kvm_ioctls::Kvm::new() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("kvmng bench worker: /dev/kvm: {e}");
            return ExitCode::FAILURE;
        }
    };
    let api = Api::of(path);
    let mut fixture: Option<Fixture> = None;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("kvmng bench worker: bad request {line:?}: {e}");
                return ExitCode::from(2);
            }
        };
        let before = trapped_calls();
        let mut reply = Reply {
            ok: true,
            ..Reply::default()
        };
        let result: Result<(), String> = match request {
            Request::Quit => break,
            Request::Setup { op, warmup } => {
                if let Some(f) = fixture.take() {
                    f.destroy(&api);
                }
                Fixture::new(op, &api, &kvm).and_then(|(mut f, info)| {
                    reply.info = Some(info).filter(|i| !i.is_empty());
                    let warmed = (0..warmup).try_for_each(|_| f.sample(&api, &kvm).map(|_| ()));
                    match warmed {
                        Ok(()) => {
                            fixture = Some(f);
                            Ok(())
                        }
                        Err(e) => {
                            f.destroy(&api);
                            Err(e)
                        }
                    }
                })
            }
            Request::Batch { iters, warmup } => match fixture.as_mut() {
                None => Err("no fixture: send setup first".into()),
                Some(f) => (|| {
                    for _ in 0..warmup {
                        f.sample(&api, &kvm)?;
                    }
                    reply.samples.reserve(iters);
                    for _ in 0..iters {
                        reply.samples.push(f.sample(&api, &kvm)?);
                    }
                    Ok(())
                })(),
            },
            Request::Teardown => {
                if let Some(f) = fixture.take() {
                    f.destroy(&api);
                }
                Ok(())
            }
            Request::Dispatch { accesses, batches } => {
                if let Some(f) = fixture.take() {
                    f.destroy(&api);
                }
                dispatch(accesses, batches).map(|d| {
                    reply.info = Some(d.backend);
                    reply.series = d.series;
                    reply.unavailable = d.unavailable;
                })
            }
        };
        if let Err(e) = result {
            reply.ok = false;
            reply.error = Some(e);
            reply.samples.clear();
        }
        reply.trapped = match (before, trapped_calls()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let text = serde_json::to_string(&reply).expect("a reply serializes");
        if writeln!(out, "{REPLY_TAG}{text}")
            .and_then(|_| out.flush())
            .is_err()
        {
            break;
        }
    }
    if let Some(f) = fixture.take() {
        f.destroy(&api);
    }
    ExitCode::SUCCESS
}

/// The parent's handle on a worker.
pub struct Worker {
    /// The path it measures.
    pub path: PathKind,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// Variables a worker must not inherit from the parent.
const SCRUBBED: [&str; 7] = [
    "LD_PRELOAD",
    "KVMNG_MODE",
    "KVMNG_STATS",
    "KVMNG_TRACE",
    "KVMNG_SHIM",
    "KVMNG_BACKEND",
    "KVMNG_KICK_SIGNAL",
];

impl Worker {
    /// Starts the worker of `path`; `shim` is the library to preload for
    /// the shim and trap paths; `cpu` the CPU to pin it to; `env` adds
    /// variables (e.g. KVMNG_STATS).
    pub fn spawn(
        path: PathKind,
        shim: Option<&Path>,
        cpu: Option<usize>,
        env: &[(&str, OsString)],
    ) -> anyhow::Result<Worker> {
        let exe = std::env::current_exe().context("cannot find the kvmng program's own path")?;
        let mut cmd = Command::new(exe);
        for var in SCRUBBED {
            cmd.env_remove(var);
        }
        cmd.env(WORKER_ENV, path.name()).env_remove(CPU_ENV);
        if crate::clock::is_tsc() {
            cmd.env(crate::clock::CLOCK_ENV, "tsc");
        } else {
            cmd.env_remove(crate::clock::CLOCK_ENV);
        }
        if let Some(cpu) = cpu {
            cmd.env(CPU_ENV, cpu.to_string());
        }
        if matches!(path, PathKind::Shim | PathKind::Trap) {
            let lib =
                shim.ok_or_else(|| anyhow!("the {} path needs libkvmshim.so", path.name()))?;
            cmd.env("LD_PRELOAD", lib).env("KVMNG_MODE", "auto");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start the {} worker", path.name()))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut err_pipe = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().expect("not poisoned");
                s.extend_from_slice(&buf[..n]);
                let len = s.len();
                if len > 16384 {
                    s.drain(..len - 16384);
                }
            }
        });
        Ok(Worker {
            path,
            child,
            stdin,
            stdout,
            stderr,
        })
    }

    /// What the worker wrote on stderr (the last 16 KiB).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("not poisoned")).into_owned()
    }

    /// Sends a request and reads the reply. An error means the worker is
    /// gone (it died, or answered nonsense): respawn it.
    pub fn request(&mut self, request: &Request) -> anyhow::Result<Reply> {
        let text = serde_json::to_string(request)?;
        writeln!(self.stdin, "{text}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| self.gone(&format!("cannot write to it: {e}")))?;
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .stdout
                .read_line(&mut line)
                .map_err(|e| self.gone(&format!("cannot read from it: {e}")))?;
            if n == 0 {
                return Err(self.gone("it closed its output"));
            }
            if let Some(json) = line.trim_end().strip_prefix(REPLY_TAG) {
                return serde_json::from_str(json)
                    .map_err(|e| self.gone(&format!("bad reply {json:?}: {e}")));
            }
        }
    }

    fn gone(&mut self, what: &str) -> anyhow::Error {
        let status = self
            .child
            .try_wait()
            .ok()
            .flatten()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let stderr = self.stderr_text();
        let tail: String = stderr
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        anyhow!(
            "the {} worker failed{status}: {what}{}",
            self.path.name(),
            if tail.is_empty() {
                String::new()
            } else {
                format!("; its stderr ends with:\n{tail}")
            }
        )
    }

    /// Asks the worker to exit and waits for it.
    pub fn quit(mut self) -> anyhow::Result<()> {
        let _ = writeln!(self.stdin, "{}", serde_json::to_string(&Request::Quit)?);
        let _ = self.stdin.flush();
        let status = self.child.wait()?;
        if !status.success() {
            bail!(
                "the {} worker exited with {status}: {}",
                self.path.name(),
                self.stderr_text()
            );
        }
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
