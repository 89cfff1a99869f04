//! What one side did, op by op, in memory shared with the supervisor: each
//! side of a round appends one record per operation; the supervisor
//! compares the two sides' records once both have finished.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of one side's trace.
pub const TRACE_BYTES: usize = 64 << 20;

/// One operation's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub idx: u32,
    /// The syscall (ops::SYSCALL_NAMES).
    pub sys: u8,
    /// A §6 difference this operation may show (mask::Hint), else 0.
    pub hint: u8,
    pub ret: i64,
    pub errno: i32,
    /// Offsets in `out` of KVM_GET_XSAVE(2) outputs (4096 bytes each),
    /// for mask::xsave_pair.
    pub xsave: Vec<u32>,
    /// Every output byte, normalized (fd numbers replaced by what the fd
    /// is, request ids by their order).
    pub out: Vec<u8>,
    /// The operation, described (for the report).
    pub what: String,
    /// What the side saw besides its outputs, never compared: for a run,
    /// the guest's registers and real-mode stack afterwards, so that a
    /// divergence shows where each guest was (for the report).
    pub diag: String,
}

/// A trace in shared memory: [used: u64][records...].
pub struct Trace {
    base: *mut u8,
}

// SAFETY: the mapping is shared memory that only one process writes at a
// time (a side, or its fork child while the side waits for it).
unsafe impl Send for Trace {}

impl Trace {
    /// Maps a trace shared with the children forked afterwards.
    pub fn new() -> Trace {
        // SAFETY: a fresh shared anonymous mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                TRACE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap of a trace");
        Trace { base: p.cast() }
    }

    /// The same mapping, for a forked child (which writes it while its
    /// parent only waits).
    pub fn clone_of(t: &Trace) -> Trace {
        Trace { base: t.base }
    }

    fn used(&self) -> &AtomicU64 {
        // SAFETY: the first 8 bytes of the mapping, 8-aligned.
        unsafe { &*(self.base as *const AtomicU64) }
    }

    pub fn clear(&self) {
        self.used().store(8, Ordering::SeqCst);
    }

    /// Appends `r`; false when the trace is full.
    pub fn push(&self, r: &Rec) -> bool {
        let what = r.what.as_bytes();
        let diag = r.diag.as_bytes();
        let len = 4
            + 4
            + 1
            + 1
            + 8
            + 4
            + 4
            + 4 * r.xsave.len()
            + 4
            + r.out.len()
            + 4
            + what.len()
            + 4
            + diag.len();
        let at = self.used().load(Ordering::SeqCst) as usize;
        if at + len > TRACE_BYTES {
            return false;
        }
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(&r.idx.to_le_bytes());
        b.push(r.sys);
        b.push(r.hint);
        b.extend_from_slice(&r.ret.to_le_bytes());
        b.extend_from_slice(&r.errno.to_le_bytes());
        b.extend_from_slice(&(r.xsave.len() as u32).to_le_bytes());
        for x in &r.xsave {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.extend_from_slice(&(r.out.len() as u32).to_le_bytes());
        b.extend_from_slice(&r.out);
        b.extend_from_slice(&(what.len() as u32).to_le_bytes());
        b.extend_from_slice(what);
        b.extend_from_slice(&(diag.len() as u32).to_le_bytes());
        b.extend_from_slice(diag);
        // SAFETY: `len` bytes at `at` are inside the mapping (checked above).
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), self.base.add(at), len) };
        self.used().store((at + len) as u64, Ordering::SeqCst);
        true
    }

    /// Every record.
    pub fn records(&self) -> Vec<Rec> {
        let used = (self.used().load(Ordering::SeqCst) as usize).min(TRACE_BYTES);
        // SAFETY: the written part of the mapping.
        let all = unsafe { std::slice::from_raw_parts(self.base, used) };
        let mut at = 8;
        let mut v = Vec::new();
        let u32_at = |p: usize| u32::from_le_bytes(all[p..p + 4].try_into().expect("4"));
        while at + 4 <= used {
            let len = u32_at(at) as usize;
            if len == 0 || at + len > used {
                break;
            }
            let mut p = at + 4;
            let idx = u32_at(p);
            p += 4;
            let sys = all[p];
            let hint = all[p + 1];
            p += 2;
            let ret = i64::from_le_bytes(all[p..p + 8].try_into().expect("8"));
            p += 8;
            let errno = u32_at(p) as i32;
            p += 4;
            let nx = u32_at(p) as usize;
            p += 4;
            let xsave = (0..nx).map(|i| u32_at(p + 4 * i)).collect();
            p += 4 * nx;
            let no = u32_at(p) as usize;
            p += 4;
            let out = all[p..p + no].to_vec();
            p += no;
            let nw = u32_at(p) as usize;
            p += 4;
            let what = String::from_utf8_lossy(&all[p..p + nw]).into_owned();
            p += nw;
            let nd = u32_at(p) as usize;
            p += 4;
            let diag = String::from_utf8_lossy(&all[p..p + nd]).into_owned();
            v.push(Rec {
                idx,
                sys,
                hint,
                ret,
                errno,
                xsave,
                out,
                what,
                diag,
            });
            at += len;
        }
        v
    }
}
