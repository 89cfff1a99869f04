//! The census per thread: for every thread that issued vCPU ioctls, which
//! vCPU it ran and how its KVM_RUN and other vCPU calls were carried out,
//! the other calls split at the thread's first KVM_RUN (`setup` before it:
//! the shim binds a thread at its first KVM_RUN, so these fall back by
//! design; `other` after it: the register syncs of a running VMM). A VMM's
//! vCPU threads are the threads with KVM_RUN calls: the census line shows
//! that the hot calls of each were translated, not one thread's share of a
//! process-wide total.
//!
//! A fixed table, a row claimed by compare-and-swap of the tid and cached
//! in a thread-local: no allocation, no lock.

use super::census::Path;
use core::cell::Cell;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

/// Threads counted per process; later ones are counted in [`OVERFLOW`].
pub const MAX_THREADS: usize = 1024;

/// Counters of one kind of call by path: translated, fallback, passthrough.
#[derive(Default)]
pub struct ByPath {
    pub translated: u64,
    pub fallback: u64,
    pub passthrough: u64,
}

impl ByPath {
    fn total(&self) -> u64 {
        self.translated + self.fallback + self.passthrough
    }
}

struct Row {
    tid: AtomicI32,
    /// The vCPU id of its last KVM_RUN, plus one; 0 before any.
    vcpu: AtomicU32,
    run: [AtomicU64; 3],
    setup: [AtomicU64; 3],
    other: [AtomicU64; 3],
}

static ROWS: [Row; MAX_THREADS] = [const {
    Row {
        tid: AtomicI32::new(0),
        vcpu: AtomicU32::new(0),
        run: [const { AtomicU64::new(0) }; 3],
        setup: [const { AtomicU64::new(0) }; 3],
        other: [const { AtomicU64::new(0) }; 3],
    }
}; MAX_THREADS];

/// Threads that found the table full.
static OVERFLOW: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Index of this thread's row plus one; 0 before its first vCPU call.
    static MINE: Cell<usize> = const { Cell::new(0) };
}

fn column(path: Path) -> usize {
    match path {
        Path::Translated => 0,
        Path::Fallback(_) => 1,
        Path::Passthrough => 2,
    }
}

fn my_row(tid: i32) -> Option<&'static Row> {
    let cached = MINE.try_with(Cell::get).unwrap_or(0);
    if cached != 0 && ROWS[cached - 1].tid.load(Relaxed) == tid {
        return Some(&ROWS[cached - 1]);
    }
    let index = ROWS.iter().position(|r| {
        r.tid.load(Relaxed) == tid || r.tid.compare_exchange(0, tid, Relaxed, Relaxed).is_ok()
    });
    match index {
        Some(i) => {
            let _ = MINE.try_with(|m| m.set(i + 1));
            Some(&ROWS[i])
        }
        None => {
            OVERFLOW.fetch_add(1, Relaxed);
            None
        }
    }
}

/// Counts one vCPU ioctl of the calling thread (`tid`) on vCPU `vcpu_id`.
pub fn record(tid: i32, vcpu_id: u16, is_run: bool, path: Path) {
    let Some(row) = my_row(tid) else { return };
    let counters = if is_run {
        row.vcpu.store(u32::from(vcpu_id) + 1, Relaxed);
        &row.run
    } else if row.vcpu.load(Relaxed) == 0 {
        &row.setup
    } else {
        &row.other
    };
    counters[column(path)].fetch_add(1, Relaxed);
}

/// One thread's figures, for the census line.
pub struct Taken {
    pub tid: i32,
    /// The vCPU of its last KVM_RUN, if it ran one.
    pub vcpu: Option<u32>,
    pub run: ByPath,
    pub setup: ByPath,
    pub other: ByPath,
}

fn take_counters(c: &[AtomicU64; 3]) -> ByPath {
    ByPath {
        translated: c[0].swap(0, Relaxed),
        fallback: c[1].swap(0, Relaxed),
        passthrough: c[2].swap(0, Relaxed),
    }
}

/// Takes the figures of row `i` (None when the row is unused or has no
/// calls since the last take).
pub fn take(i: usize) -> Option<Taken> {
    let row = &ROWS[i];
    let tid = row.tid.load(Relaxed);
    if tid == 0 {
        return None;
    }
    let run = take_counters(&row.run);
    let setup = take_counters(&row.setup);
    let other = take_counters(&row.other);
    if [&run, &setup, &other].iter().all(|p| p.total() == 0) {
        return None;
    }
    let vcpu = row.vcpu.load(Relaxed);
    Some(Taken {
        tid,
        vcpu: vcpu.checked_sub(1),
        run,
        setup,
        other,
    })
}

/// Threads that could not be counted (more than [`MAX_THREADS`]).
pub fn overflow() -> u64 {
    OVERFLOW.load(Relaxed)
}

/// Forgets every row (fork child: the parent's threads do not exist).
pub fn reset() {
    for row in ROWS.iter() {
        row.tid.store(0, Relaxed);
        row.vcpu.store(0, Relaxed);
        for c in row.run.iter().chain(&row.setup).chain(&row.other) {
            c.store(0, Relaxed);
        }
    }
    OVERFLOW.store(0, Relaxed);
    let _ = MINE.try_with(|m| m.set(0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpose::reason::Reason;

    #[test]
    fn a_thread_row_counts_its_runs_and_other_calls_by_path() {
        let tid = -7; // never a real tid: no other test's row
        record(tid, 3, false, Path::Fallback(Reason::NotKvmFd));
        record(tid, 3, true, Path::Translated);
        record(tid, 3, true, Path::Translated);
        record(tid, 3, false, Path::Fallback(Reason::NotKvmFd));
        let i = ROWS
            .iter()
            .position(|r| r.tid.load(Relaxed) == tid)
            .unwrap();
        let t = take(i).unwrap();
        assert_eq!((t.tid, t.vcpu), (tid, Some(3)));
        assert_eq!((t.run.translated, t.run.fallback), (2, 0));
        assert_eq!((t.setup.fallback, t.other.fallback), (1, 1));
        assert!(take(i).is_none(), "taken counters start again at 0");
    }
}
