//! Waits that a signal always ends: every signal is blocked from the last
//! check until `ppoll` atomically installs the mask of the wait.

use super::vcpu::VcpuIo;
use crate::errno::Errno;
use crate::sys::{self, close};
use core::sync::atomic::Ordering::SeqCst;

/// What a wait may be interrupted by: `ppoll`'s mask, and a signalfd that
/// reports (without taking them) the signals that end the wait but stay
/// pending, or -1.
#[derive(Clone, Copy)]
pub(super) struct WaitMask {
    ppoll: u64,
    pending_fd: i32,
}

/// Signals blocked for the guard's life; `mask` is what a wait unblocks.
pub(super) struct Blocked {
    old: u64,
    pub(super) mask: WaitMask,
}

impl Blocked {
    pub(super) fn new(io: &VcpuIo) -> Blocked {
        let all: u64 = !0;
        // rt_sigprocmask cannot fail with these arguments.
        let old = sys::sigprocmask(libc::SIG_BLOCK, all).unwrap_or(0);
        let mut mask = WaitMask {
            ppoll: old,
            pending_fd: -1,
        };
        if io.sigmask_set.load(SeqCst) != 0 {
            // As in KVM_RUN: a signal the KVM mask allows ends the wait. One
            // the thread does not block is handled (ppoll); one the thread
            // blocks stays pending, as KVM leaves it (the signalfd sees it).
            let kvm = io.sigmask.load(SeqCst);
            let stays_pending = !kvm & old;
            mask.ppoll = kvm | old;
            if stays_pending != 0 {
                match sys::signalfd(stays_pending) {
                    Ok(fd) => mask.pending_fd = fd,
                    // No fd for it: such a signal is handled in the wait.
                    Err(_) => mask.ppoll = kvm,
                }
            }
        }
        Blocked { old, mask }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if self.mask.pending_fd >= 0 {
            let _ = close(self.mask.pending_fd);
        }
        // Restores the mask saved by `new`.
        let _ = sys::sigprocmask(libc::SIG_SETMASK, self.old);
    }
}

/// `ppoll` on `fd` with the wait's signal mask. `Err(EINTR)` when a signal
/// was handled, or one that stays pending came; `Ok(revents)` otherwise (0
/// on timeout).
pub(super) fn wait(
    fd: i32,
    events: i16,
    mask: WaitMask,
    timeout_ns: Option<i64>,
) -> Result<i16, Errno> {
    wait_or_woken(fd, events, -1, mask, timeout_ns).map(|(revents, _)| revents)
}

/// [`wait`] on `fd` that eventfd `efd` (-1: none) ends too: `Ok((revents,
/// woken))`, `woken` when `efd` is readable (its count is left as it is).
pub(super) fn wait_or_woken(
    fd: i32,
    events: i16,
    efd: i32,
    mask: WaitMask,
    timeout_ns: Option<i64>,
) -> Result<(i16, bool), Errno> {
    // ppoll ignores an entry whose fd is negative (its revents stay 0).
    let mut pfd = [
        libc::pollfd {
            fd,
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: efd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: mask.pending_fd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ts = timeout_ns.map(|ns| libc::timespec {
        tv_sec: ns / 1_000_000_000,
        tv_nsec: ns % 1_000_000_000,
    });
    sys::ppoll(&mut pfd, ts.as_ref(), mask.ppoll)?;
    if pfd[2].revents != 0 {
        return Err(Errno(libc::EINTR));
    }
    Ok((pfd[0].revents, pfd[1].revents != 0))
}

/// Empties eventfd `efd` (`eventfd_read`; it is non-blocking).
pub(super) fn drain(efd: i32) {
    let _ = sys::eventfd_read(efd);
}
