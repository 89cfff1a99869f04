//! The counters of the census: per row of the mapping table (and one slot
//! for KVMIO requests in no row), how often each path was taken, errors,
//! time, and fallback reasons. Static atomic arrays: no allocation, no
//! lock.
//!
//! Time stamps cost more than the rest of the bookkeeping together (two
//! TSC reads are about 28 ns on the reference machine), so the time of a
//! command is measured exactly for its first [`EXACT`] calls and then on
//! every [`SAMPLE`]th call, from which the rest is estimated. With a trace
//! file every call is timed.

use super::cmdindex::SLOTS;
use super::reason::Reason;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Calls of each command timed exactly before sampling starts.
pub const EXACT: u64 = 64;
/// After that, one call in this many is timed.
pub const SAMPLE: u64 = 16;

/// How a call was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Through the new API.
    Translated,
    /// To the kernel unchanged, for a documented reason.
    Fallback(Reason),
    /// To the kernel unchanged because the mode is passthrough.
    Passthrough,
}

impl Path {
    /// The name in traces.
    pub const fn name(self) -> &'static str {
        match self {
            Path::Translated => "translated",
            Path::Fallback(_) => "fallback",
            Path::Passthrough => "passthrough",
        }
    }
}

/// The counters of one command.
pub struct Counters {
    /// Calls begun in auto and syscall mode (for sampling only).
    tickets: AtomicU64,
    /// Calls carried out through the new API.
    translated: AtomicU64,
    /// Calls passed to the kernel for a reason.
    fallback: AtomicU64,
    /// Calls passed to the kernel in passthrough mode (counted as they
    /// begin: this is also their ticket).
    passthrough: AtomicU64,
    /// Calls that returned -1.
    errors: AtomicU64,
    /// Calls timed exactly, and their TSC ticks.
    exact_calls: AtomicU64,
    exact_ticks: AtomicU64,
    /// Calls timed as samples, and their TSC ticks.
    sampled_calls: AtomicU64,
    sampled_ticks: AtomicU64,
    /// Fallbacks by reason.
    reasons: [AtomicU64; Reason::COUNT],
}

impl Counters {
    const fn new() -> Counters {
        Counters {
            tickets: AtomicU64::new(0),
            translated: AtomicU64::new(0),
            fallback: AtomicU64::new(0),
            passthrough: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            exact_calls: AtomicU64::new(0),
            exact_ticks: AtomicU64::new(0),
            sampled_calls: AtomicU64::new(0),
            sampled_ticks: AtomicU64::new(0),
            reasons: [const { AtomicU64::new(0) }; Reason::COUNT],
        }
    }
}

/// Every command's counters, by census slot.
static COMMANDS: [Counters; SLOTS] = [const { Counters::new() }; SLOTS];

/// A call being counted: when it started, if it is timed.
#[derive(Debug, Clone, Copy)]
pub struct Begun {
    slot: usize,
    start: u64,
    timing: Timing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timing {
    None,
    Exact,
    Sampled,
}

/// Starts counting a call of `slot`. In passthrough mode the call is
/// counted now; `time_all`: a trace line needs its duration.
#[inline]
pub fn begin(slot: usize, passthrough: bool, time_all: bool) -> Begun {
    let c = &COMMANDS[slot.min(SLOTS - 1)];
    let ticket = if passthrough {
        c.passthrough.fetch_add(1, Relaxed)
    } else {
        c.tickets.fetch_add(1, Relaxed)
    };
    let timing = if time_all || c.exact_calls.load(Relaxed) < EXACT {
        Timing::Exact
    } else if ticket % SAMPLE == 0 {
        Timing::Sampled
    } else {
        Timing::None
    };
    let start = if timing == Timing::None {
        0
    } else {
        super::clock::ticks()
    };
    Begun {
        slot: slot.min(SLOTS - 1),
        start,
        timing,
    }
}

/// Ends counting a call; returns its duration in TSC ticks if timed.
#[inline]
pub fn end(begun: Begun, path: Path, failed: bool) -> Option<u64> {
    let c = &COMMANDS[begun.slot];
    match path {
        Path::Translated => {
            c.translated.fetch_add(1, Relaxed);
        }
        Path::Fallback(reason) => {
            c.reasons[reason as usize].fetch_add(1, Relaxed);
            c.fallback.fetch_add(1, Relaxed);
        }
        Path::Passthrough => {}
    }
    if failed {
        c.errors.fetch_add(1, Relaxed);
    }
    let (calls, ticks) = match begun.timing {
        Timing::None => return None,
        Timing::Exact => (&c.exact_calls, &c.exact_ticks),
        Timing::Sampled => (&c.sampled_calls, &c.sampled_ticks),
    };
    let elapsed = super::clock::ticks().wrapping_sub(begun.start);
    calls.fetch_add(1, Relaxed);
    ticks.fetch_add(elapsed, Relaxed);
    Some(elapsed)
}

/// A command's counters taken out (and zeroed) for a census line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Calls carried out through the new API.
    pub translated: u64,
    /// Calls passed to the kernel for a reason.
    pub fallback: u64,
    /// Calls passed to the kernel in passthrough mode.
    pub passthrough: u64,
    /// Calls that returned -1.
    pub errors: u64,
    /// Calls timed exactly and their ticks.
    pub exact_calls: u64,
    /// See `exact_calls`.
    pub exact_ticks: u64,
    /// Calls timed as samples and their ticks.
    pub sampled_calls: u64,
    /// See `sampled_calls`.
    pub sampled_ticks: u64,
    /// Fallbacks by reason.
    pub reasons: [u64; Reason::COUNT],
}

impl Taken {
    /// All calls.
    pub fn count(&self) -> u64 {
        self.translated + self.fallback + self.passthrough
    }

    /// Total time in TSC ticks: the exactly timed calls, plus the others
    /// estimated from the samples.
    pub fn ticks(&self) -> u64 {
        let untimed = self.count().saturating_sub(self.exact_calls);
        let estimated = if self.sampled_calls == 0 {
            0
        } else {
            (u128::from(self.sampled_ticks) * u128::from(untimed) / u128::from(self.sampled_calls))
                as u64
        };
        self.exact_ticks + estimated
    }
}

/// Takes slot `slot`'s counters, leaving zeros: a call counted meanwhile
/// lands in this census line or the next, never in both.
pub fn take(slot: usize) -> Taken {
    let c = &COMMANDS[slot];
    c.tickets.swap(0, Relaxed);
    let mut t = Taken {
        translated: c.translated.swap(0, Relaxed),
        fallback: c.fallback.swap(0, Relaxed),
        passthrough: c.passthrough.swap(0, Relaxed),
        errors: c.errors.swap(0, Relaxed),
        exact_calls: c.exact_calls.swap(0, Relaxed),
        exact_ticks: c.exact_ticks.swap(0, Relaxed),
        sampled_calls: c.sampled_calls.swap(0, Relaxed),
        sampled_ticks: c.sampled_ticks.swap(0, Relaxed),
        reasons: [0; Reason::COUNT],
    };
    for (i, r) in c.reasons.iter().enumerate() {
        t.reasons[i] = r.swap(0, Relaxed);
    }
    t
}

/// Whether any call was counted since the last census line.
pub fn any() -> bool {
    COMMANDS.iter().any(|c| {
        c.translated.load(Relaxed) + c.fallback.load(Relaxed) + c.passthrough.load(Relaxed) != 0
    })
}

/// Zeroes everything (a fork child counts its own calls only).
pub fn reset() {
    for slot in 0..SLOTS {
        take(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_exact_then_estimated_from_samples() {
        let t = Taken {
            translated: 64 + 160,
            exact_calls: 64,
            exact_ticks: 6400,
            sampled_calls: 10,
            sampled_ticks: 2000,
            ..Default::default()
        };
        // 160 untimed-exactly calls at 200 ticks each (the samples' mean).
        assert_eq!(t.ticks(), 6400 + 160 * 200);
        let exact_only = Taken {
            passthrough: 3,
            exact_calls: 3,
            exact_ticks: 30,
            ..Default::default()
        };
        assert_eq!(exact_only.ticks(), 30);
    }
}
