//! The tables shared by registration and the run path: regions, the
//! sockets they use, and the vCPUs parked with an access pending.

use super::MAX_REGIONS;
use crate::sys::close;
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst,
};

/// One registered region. Its fields are written only under [`REG_LOCK`],
/// inside an odd `seq`; readers retry while `seq` is odd or changed.
pub(super) struct Region {
    pub(super) seq: AtomicU32,
    pub(super) live: AtomicU32,
    pub(super) flags: AtomicU32,
    pub(super) sock: AtomicU32,
    pub(super) addr: AtomicU64,
    pub(super) size: AtomicU64,
    pub(super) user_data: AtomicU64,
}

impl Region {
    const fn new() -> Region {
        Region {
            seq: AtomicU32::new(0),
            live: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            sock: AtomicU32::new(0),
            addr: AtomicU64::new(0),
            size: AtomicU64::new(0),
            user_data: AtomicU64::new(0),
        }
    }
}

/// One socket of one or more regions.
pub(super) struct Socket {
    /// Live regions using it plus vCPUs using its fd right now; 0 = free
    /// (once `fd` is -1 again).
    pub(super) refs: AtomicU32,
    /// Private close-on-exec duplicate of the registered fd, or -1.
    pub(super) fd: AtomicI32,
    /// The receive role (`receive.rs`): the holder's tid in the low 32
    /// bits (0: free) and a generation in the high 32 bits that every
    /// change of the word moves on.
    pub(super) rx: AtomicU64,
    /// 1 once end of file was read: the device closed its end.
    pub(super) dead: AtomicU32,
    /// The lowest and highest request ids sent on the socket (`u64::MAX`
    /// and 0 before the first): a reply in that range that nobody waits
    /// for answers an abandoned or posted request, and is dropped.
    first_id: AtomicU64,
    last_id: AtomicU64,
}

impl Socket {
    const fn new() -> Socket {
        Socket {
            refs: AtomicU32::new(0),
            fd: AtomicI32::new(-1),
            rx: AtomicU64::new(0),
            dead: AtomicU32::new(0),
            first_id: AtomicU64::new(u64::MAX),
            last_id: AtomicU64::new(0),
        }
    }

    /// Notes that request `id` is about to be sent (before it is sent, so
    /// that no reply can come first).
    pub(super) fn note_sent(&self, id: u64) {
        self.first_id.fetch_min(id, SeqCst);
        self.last_id.fetch_max(id, SeqCst);
    }

    /// True when `id` was sent on the socket (it is stale if nobody waits
    /// for it).
    pub(super) fn was_sent(&self, id: u64) -> bool {
        self.first_id.load(SeqCst) <= id && id <= self.last_id.load(SeqCst)
    }

    pub(super) fn reset(&self) {
        self.dead.store(0, SeqCst);
        self.rx.store(0, SeqCst);
        self.first_id.store(u64::MAX, SeqCst);
        self.last_id.store(0, SeqCst);
    }
}

pub(super) static REGIONS: [Region; MAX_REGIONS] = [const { Region::new() }; MAX_REGIONS];
pub(super) static SOCKETS: [Socket; MAX_REGIONS] = [const { Socket::new() }; MAX_REGIONS];
/// Live regions: the run path does nothing while it is 0.
pub(super) static LIVE: AtomicU32 = AtomicU32::new(0);
/// One more than the highest index of [`REGIONS`] in use: lookups stop
/// there (slots are taken lowest first). Lowered only when no region is
/// live.
pub(super) static HIGH: AtomicUsize = AtomicUsize::new(0);
/// Serializes ADD, DEL and the VM binding changes.
pub(super) static REG_LOCK: AtomicBool = AtomicBool::new(false);
/// Request ids: unique in the process, never 0.
pub(super) static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(super) struct RegGuard(());

impl RegGuard {
    pub(super) fn lock() -> RegGuard {
        while REG_LOCK
            .compare_exchange_weak(false, true, SeqCst, SeqCst)
            .is_err()
        {
            core::hint::spin_loop();
        }
        RegGuard(())
    }
}

impl Drop for RegGuard {
    fn drop(&mut self) {
        REG_LOCK.store(false, SeqCst);
    }
}

/// A vCPU whose binding was dropped while an access was pending: its
/// private fd and where the access had got to, until a thread binds it.
pub(super) struct Parked {
    pub(super) fd: AtomicI32,
    pub(super) index: AtomicU32,
    /// The access's identity (`access::Access::identity`).
    pub(super) identity: [AtomicU64; 2],
}

const MAX_PARKED: usize = 16;
pub(super) static PARKED: [Parked; MAX_PARKED] = [const {
    Parked {
        fd: AtomicI32::new(-1),
        index: AtomicU32::new(0),
        identity: [AtomicU64::new(0), AtomicU64::new(0)],
    }
}; MAX_PARKED];

/// Takes a reference on socket entry `i` unless it is free.
pub(super) fn get_socket(i: usize) -> bool {
    let refs = &SOCKETS[i].refs;
    let mut n = refs.load(SeqCst);
    while n != 0 {
        match refs.compare_exchange_weak(n, n + 1, SeqCst, SeqCst) {
            Ok(_) => return true,
            Err(now) => n = now,
        }
    }
    false
}

/// Drops a reference on socket entry `i`; the last one closes the fd.
pub(super) fn put_socket(i: usize) {
    let s = &SOCKETS[i];
    if s.refs.fetch_sub(1, SeqCst) == 1 {
        s.reset();
        let fd = s.fd.load(SeqCst);
        if fd >= 0 {
            let _ = close(fd);
        }
        s.fd.store(-1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sent_on_a_socket_form_its_stale_range() {
        let s = Socket::new();
        assert!(!s.was_sent(0) && !s.was_sent(1) && !s.was_sent(u64::MAX));
        // Sent out of order by two threads: the range still covers both.
        s.note_sent(12);
        s.note_sent(10);
        assert!(s.was_sent(10) && s.was_sent(11) && s.was_sent(12));
        assert!(!s.was_sent(9) && !s.was_sent(13) && !s.was_sent(0));
        s.reset();
        assert!(!s.was_sent(10));
    }
}
