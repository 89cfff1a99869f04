//! File names from the environment, kept in fixed storage so that they can
//! be expanded (`%p` → pid) without allocating, even in a fork child.

use crate::interpose::fmtbuf::Buf;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// The longest file name kept (PATH_MAX).
pub const MAX: usize = 4096;

/// A file name template, set once at set-up.
pub struct PathTemplate {
    bytes: UnsafeCell<[u8; MAX]>,
    /// Length of the template; 0 when unset.
    len: AtomicUsize,
}

// SAFETY: `bytes` is written once, before `len` is published (SeqCst), and
// only read after `len` is seen nonzero.
unsafe impl Sync for PathTemplate {}

impl PathTemplate {
    /// An unset template.
    pub const fn new() -> PathTemplate {
        PathTemplate {
            bytes: UnsafeCell::new([0; MAX]),
            len: AtomicUsize::new(0),
        }
    }

    /// Keeps `value`; false if it is empty or too long.
    pub fn set(&self, value: &[u8]) -> bool {
        if value.is_empty() || value.len() >= MAX || self.len.load(SeqCst) != 0 {
            return false;
        }
        // SAFETY: set once at set-up, before any reader sees `len` nonzero.
        unsafe { (&mut *self.bytes.get())[..value.len()].copy_from_slice(value) };
        self.len.store(value.len(), SeqCst);
        true
    }

    /// Whether a template is set.
    pub fn is_set(&self) -> bool {
        self.len.load(SeqCst) != 0
    }

    /// Whether the template has `%p`.
    pub fn has_pid(&self) -> bool {
        self.template().windows(2).any(|w| w == b"%p")
    }

    fn template(&self) -> &[u8] {
        let len = self.len.load(SeqCst);
        // SAFETY: the first `len` bytes were written before `len` was set.
        unsafe { &(&*self.bytes.get())[..len] }
    }

    /// Writes the file name for process `pid` into `out`, NUL-terminated;
    /// returns false if unset or too long.
    pub fn expand(&self, pid: i32, out: &mut [u8; MAX]) -> bool {
        if !self.is_set() {
            return false;
        }
        let mut b = Buf::new(&mut out[..MAX - 1]);
        let t = self.template();
        let mut i = 0;
        while i < t.len() {
            if t[i] == b'%' && t.get(i + 1) == Some(&b'p') {
                b.u(pid as u64);
                i += 2;
            } else {
                b.raw(&t[i..i + 1]);
                i += 1;
            }
        }
        if b.overflow {
            return false;
        }
        let n = b.bytes().len();
        out[n] = 0;
        true
    }
}

impl Default for PathTemplate {
    fn default() -> Self {
        PathTemplate::new()
    }
}

/// Opens `path` (NUL-terminated) for appending, close-on-exec, creating it
/// with mode 0644: a raw syscall, never through the open hook.
pub fn open_append(path: &[u8; MAX]) -> Result<i32, kvmng::Errno> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC;
    // SAFETY: `path` is NUL-terminated (expand wrote the NUL).
    let r = unsafe { crate::raw::openat(libc::AT_FDCWD, path.as_ptr().cast(), flags, 0o644) }?;
    Ok(r as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_substituted() {
        let t = PathTemplate::new();
        let mut out = [0u8; MAX];
        assert!(!t.expand(1, &mut out));
        assert!(t.set(b"/tmp/trace.%p.log"));
        assert!(t.has_pid());
        assert!(t.expand(4321, &mut out));
        let end = out.iter().position(|&b| b == 0).unwrap();
        assert_eq!(&out[..end], b"/tmp/trace.4321.log");
        assert!(!t.set(b"again"));
    }
}
