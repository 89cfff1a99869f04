//! The receive role of a socket: its holder reads the replies and hands
//! each to the vCPU whose request id it carries, until its own arrives.

use super::exchange::socket_errno;
use super::table::SOCKETS;
use super::vcpu::VcpuIo;
use super::wait::{wait, WaitMask};
use super::DELIVERING;
use crate::backend::legacy::binding::{self, ThreadBinding, THREADS};
use crate::errno::Errno;
use crate::sys;
use core::sync::atomic::Ordering::SeqCst;
use kvmng_abi::*;

/// Why the receive role ended without this thread's reply.
pub(super) enum RxEnd {
    /// A signal was handled while waiting.
    Interrupted,
    /// Any other failure: the errno for the waiter.
    Failed(Errno),
}

/// Frees the receive role of `sock` if its holder is no longer waiting on
/// it (it left `kvmng_run` without giving the role up).
pub(super) fn release_orphaned_receiver(sock: usize) {
    let s = &SOCKETS[sock];
    let holder = s.rx.load(SeqCst);
    if holder == 0 {
        return;
    }
    let waiting = THREADS[..binding::high_water()]
        .iter()
        .any(|t| t.tid.load(SeqCst) == holder && t.io.sock.load(SeqCst) == sock as i32);
    if !waiting {
        let _ = s.rx.compare_exchange(holder, 0, SeqCst, SeqCst);
    }
}

fn wake(efd: i32) {
    if efd < 0 {
        return;
    }
    let _ = sys::eventfd_write(efd, 1);
}

/// Wakes every other thread waiting on `sock`, so that one takes the
/// receive role over.
pub(super) fn wake_waiters(sock: usize, me: &VcpuIo) {
    for t in THREADS[..binding::high_water()].iter() {
        let io = &t.io;
        if core::ptr::eq(io, me) {
            continue;
        }
        if io.sock.load(SeqCst) == sock as i32 && io.wait_id.load(SeqCst) != 0 {
            wake(io.efd.load(SeqCst));
        }
    }
}

/// True when the peer has closed its end.
fn hung_up(fd: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // A timeout of 0: it does not wait.
    let r = sys::poll(core::slice::from_mut(&mut pfd), 0);
    r.is_ok() && pfd.revents & (libc::POLLHUP | libc::POLLRDHUP) != 0
}

/// The receive role: reads replies and hands them to their waiters until
/// this thread's own reply (`id`) is handed over.
pub(super) fn receive(
    me: &ThreadBinding,
    sock: usize,
    id: u64,
    mask: WaitMask,
) -> Result<(), RxEnd> {
    let io = &me.io;
    let s = &SOCKETS[sock];
    let fd = s.fd.load(SeqCst);
    const REPLY: usize = core::mem::size_of::<kvmng_ioregion_reply>();
    loop {
        if io.done_id.load(SeqCst) == id {
            return Ok(());
        }
        let mut buf = [0u8; REPLY + 8];
        // With MSG_TRUNC it returns the message's real length.
        let n = sys::recv(fd, &mut buf, libc::MSG_DONTWAIT | libc::MSG_TRUNC);
        match n {
            Ok(0) => {
                if hung_up(fd) {
                    s.dead.store(1, SeqCst);
                    return Err(RxEnd::Failed(Errno(libc::EPIPE)));
                }
                return Err(RxEnd::Failed(Errno(libc::EBADMSG)));
            }
            Ok(n) if n as usize == REPLY => {
                let reply_id = u64::from_ne_bytes(buf[..8].try_into().expect("8 bytes"));
                let data = u64::from_ne_bytes(buf[8..16].try_into().expect("8 bytes"));
                deliver(sock, reply_id, data, io).map_err(RxEnd::Failed)?;
            }
            Ok(_) => return Err(RxEnd::Failed(Errno(libc::EBADMSG))),
            Err(Errno(libc::EAGAIN)) => match wait(fd, libc::POLLIN, mask, None) {
                Err(Errno(libc::EINTR)) => return Err(RxEnd::Interrupted),
                Err(e) => return Err(RxEnd::Failed(e)),
                Ok(_) => {}
            },
            Err(e) => {
                let e = socket_errno(e);
                if e == Errno(libc::EPIPE) {
                    s.dead.store(1, SeqCst);
                }
                return Err(RxEnd::Failed(e));
            }
        }
    }
}

/// Hands reply `id` to the thread waiting for it on `sock`, or drops it if
/// it is stale (sent on the socket, awaited by nobody: an abandoned or
/// posted request, or one answered already); otherwise it is malformed
/// (`EBADMSG` for the receiver).
fn deliver(sock: usize, id: u64, data: u64, me: &VcpuIo) -> Result<(), Errno> {
    if id == 0 || id == DELIVERING {
        return Err(Errno(libc::EBADMSG));
    }
    for t in THREADS[..binding::high_water()].iter() {
        let io = &t.io;
        if io.sock.load(SeqCst) != sock as i32 {
            continue;
        }
        if io
            .wait_id
            .compare_exchange(id, DELIVERING, SeqCst, SeqCst)
            .is_ok()
        {
            let malformed = io.is_write.load(SeqCst) != 0 && data != 0;
            io.data.store(data, SeqCst);
            io.err
                .store(if malformed { libc::EBADMSG } else { 0 }, SeqCst);
            io.done_id.store(id, SeqCst);
            if !core::ptr::eq(io, me) {
                wake(io.efd.load(SeqCst));
            }
            return Ok(());
        }
    }
    if SOCKETS[sock].was_sent(id) {
        return Ok(());
    }
    Err(Errno(libc::EBADMSG))
}
