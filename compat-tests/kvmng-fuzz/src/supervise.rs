//! Rounds in child processes: a crash or a hang of one is caught, named by
//! its seed and operation index, and the run goes on to report it.

use crate::round;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a run did.
#[derive(Default)]
pub struct Totals {
    pub rounds: u64,
    pub ops: u64,
    pub failures: Vec<String>,
}

/// A round's seed within a run.
pub fn round_seed(seed: u64, round: u64) -> u64 {
    seed.wrapping_mul(0x1000_0000_01b3).wrapping_add(round)
}

struct Child {
    pid: libc::pid_t,
    round: u64,
    slot: usize,
    started: Instant,
    killed: bool,
}

/// Shared progress counters, one per job slot.
struct Slots(*mut AtomicU64, usize);

impl Slots {
    fn new(n: usize) -> Slots {
        // SAFETY: a fresh shared anonymous mapping, inherited by children.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                n * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap of the progress slots");
        Slots(p.cast(), n)
    }
    fn get(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.1);
        // SAFETY: slot i of the mapping, zero-initialised, 8-aligned; only
        // accessed atomically.
        unsafe { &*self.0.add(i) }
    }
}

/// Runs rounds of `ops` operations, `jobs` at a time, until `max_ops`
/// operations are done or `seconds` have passed; a round taking longer than
/// `hang` is killed and reported.
pub fn run(seed: u64, ops: u64, max_ops: u64, seconds: u64, jobs: usize, hang: Duration) -> Totals {
    let slots = Slots::new(jobs);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(seconds);
    let mut totals = Totals::default();
    let mut running: Vec<Child> = Vec::new();
    let mut next_round = 0u64;
    let mut last_report = Instant::now();
    loop {
        while running.len() < jobs
            && next_round * ops < max_ops
            && Instant::now() < deadline
            && totals.failures.is_empty()
        {
            let slot = (0..jobs)
                .find(|s| !running.iter().any(|c| c.slot == *s))
                .expect("a free slot");
            slots.get(slot).store(0, Ordering::Relaxed);
            let round = next_round;
            next_round += 1;
            // SAFETY: the child runs one round and leaves with _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let code = match round::run(round_seed(seed, round), ops, slots.get(slot), false) {
                    Ok(_) => 0,
                    Err(e) => {
                        eprintln!("{e}");
                        eprintln!("  reproduce: kvmng-fuzz --seed {seed} --round {round} -v");
                        3
                    }
                };
                // SAFETY: leaves the child at once (no destructors of the
                // parent's state run twice); the shim writes its census.
                unsafe { libc::_exit(code) };
            }
            running.push(Child {
                pid,
                round,
                slot,
                started: Instant::now(),
                killed: false,
            });
        }
        if running.is_empty() {
            break;
        }
        let mut status = 0;
        // SAFETY: reaps any child without blocking.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            if let Some(i) = running.iter().position(|c| c.pid == pid) {
                let c = running.swap_remove(i);
                let at = slots.get(c.slot).load(Ordering::Relaxed);
                if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                    totals.rounds += 1;
                    totals.ops += ops;
                } else if c.killed {
                    totals.ops += at;
                } else if libc::WIFSIGNALED(status) {
                    totals.failures.push(format!(
                        "round {} (seed {:#x}) CRASHED with signal {} at op {at}; reproduce: kvmng-fuzz --seed {seed} --round {} -v",
                        c.round,
                        round_seed(seed, c.round),
                        libc::WTERMSIG(status),
                        c.round
                    ));
                    totals.ops += at;
                } else {
                    totals.failures.push(format!(
                        "round {} (seed {:#x}) failed (exit {}) at op {at}",
                        c.round,
                        round_seed(seed, c.round),
                        libc::WEXITSTATUS(status)
                    ));
                    totals.ops += at;
                }
            }
            continue;
        }
        for c in &mut running {
            if !c.killed && c.started.elapsed() > hang {
                c.killed = true;
                let at = slots.get(c.slot).load(Ordering::Relaxed);
                totals.failures.push(format!(
                    "round {} (seed {:#x}) HUNG for {} s at op {at}; reproduce: kvmng-fuzz --seed {seed} --round {} -v",
                    c.round,
                    round_seed(seed, c.round),
                    hang.as_secs(),
                    c.round
                ));
                // SAFETY: our child; reaped by the loop.
                unsafe { libc::kill(c.pid, libc::SIGKILL) };
            }
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "  ... {} executions in {:.0} s",
                totals.ops,
                t0.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    totals
}
