//! One request's round trip on a region's socket, as its sender: send it
//! (waiting while the socket is full) and, unless it is posted, wait for
//! its reply, taking the receive role when nobody holds it.

use super::access::immediate_exit;
use super::receive::{
    give_up_role, receive, release_orphaned_receiver, take_role, wake_waiters, RxEnd,
};
use super::table::SOCKETS;
use super::vcpu::VcpuIo;
use super::wait::{drain, wait, Blocked, WaitMask};
use super::DELIVERING;
use crate::backend::legacy::binding::ThreadBinding;
use crate::backend::legacy::gate;
use crate::errno::{Errno, SysResult};
use crate::sys::{self, gettid};
use core::sync::atomic::Ordering::SeqCst;
use kvmng_abi::*;

/// How long a waiter sleeps before it checks that the receive role is not
/// held by a thread that left without giving it up (a longjmp out of a
/// signal handler); it is woken at once in every other case. Two checks
/// free such a role (receive.rs), so a waiter takes it over within 50 ms
/// (api.md section 6) of the socket having something to read.
const ORPHAN_CHECK_NS: i64 = 25_000_000;

// `send` relies on it: the request's fields fill it without padding.
const _: () = assert!(core::mem::size_of::<kvmng_ioregion_request>() == 4 * 8 + 4 + 4);

fn send(fd: i32, request: &kvmng_ioregion_request) -> SysResult {
    // SAFETY: the request, on the caller's frame, viewed as its bytes: a
    // repr(C) struct of four u64s, a u32 and four u8s has no padding, so
    // every byte is initialized.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            (request as *const kvmng_ioregion_request).cast::<u8>(),
            core::mem::size_of::<kvmng_ioregion_request>(),
        )
    };
    sys::send(fd, bytes, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
}

/// The errno a socket error means for the guest's access.
pub(super) fn socket_errno(e: Errno) -> Errno {
    match e.0 {
        libc::ECONNRESET | libc::ENOTCONN => Errno(libc::EPIPE),
        _ => e,
    }
}

/// The binding's eventfd, created on first need.
fn eventfd(io: &VcpuIo) -> Result<i32, Errno> {
    let fd = io.efd.load(SeqCst);
    if fd >= 0 {
        return Ok(fd);
    }
    let fd = sys::eventfd(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)?;
    io.efd.store(fd, SeqCst);
    Ok(fd)
}

/// The generation of the memory-map gate: a wait interrupted while it
/// moved may have been the gate's kick, and goes on.
fn generation() -> u32 {
    gate::generation()
}

/// Sends `request` on socket entry `sock` and, unless `posted`, waits for
/// its reply: the value read (0 for a write).
pub(super) fn exchange(
    me: &ThreadBinding,
    sock: usize,
    request: &kvmng_ioregion_request,
    posted: bool,
) -> Result<u64, Errno> {
    let io = &me.io;
    let s = &SOCKETS[sock];
    let fd = s.fd.load(SeqCst);
    let id = request.id;
    if !posted {
        eventfd(io)?;
        forget_left_request(io);
        io.is_write.store(
            u32::from(u32::from(request.dir) == KVMNG_IOREGION_WRITE),
            SeqCst,
        );
        io.sock.store(sock as i32, SeqCst);
        io.wait_id.store(id, SeqCst);
    }
    s.note_sent(id);
    let unregister = |io: &VcpuIo| {
        io.wait_id.store(0, SeqCst);
        io.sock.store(-1, SeqCst);
    };
    // Send; a full socket is waited for like a reply (interruptibly).
    let mut blocked: Option<Blocked> = None;
    loop {
        match send(fd, request) {
            Ok(_) => break,
            Err(Errno(libc::EAGAIN)) => {
                let b = blocked.get_or_insert_with(|| Blocked::new(io));
                if immediate_exit(io) {
                    unregister(io);
                    return Err(Errno(libc::EINTR));
                }
                let before = generation();
                match wait(fd, libc::POLLOUT, b.mask, None) {
                    Err(Errno(libc::EINTR)) if generation() == before => {
                        unregister(io);
                        return Err(Errno(libc::EINTR));
                    }
                    _ => continue,
                }
            }
            Err(e) => {
                unregister(io);
                return Err(socket_errno(e));
            }
        }
    }
    if posted {
        return Ok(0);
    }
    let blocked = blocked.unwrap_or_else(|| Blocked::new(io));
    let result = wait_reply(me, sock, id, blocked.mask);
    drop(blocked);
    result
}

/// Hands the reply's result to the waiter, and forgets the request.
fn take_result(io: &VcpuIo) -> Result<u64, Errno> {
    let err = io.err.load(SeqCst);
    let data = io.data.load(SeqCst);
    io.wait_id.store(0, SeqCst);
    io.sock.store(-1, SeqCst);
    if err != 0 {
        Err(Errno(err))
    } else {
        Ok(data)
    }
}

/// Gives the request up with `e`, unless its reply is being handed over
/// (then the reply wins). Its late reply will be dropped: its id was sent
/// on the socket and nobody waits for it any more. A request that is no
/// longer the slot's (neither `id` nor `id | DELIVERING`) was given up
/// already, by a `kvmng_run` that a signal handler called in this wait
/// ([`forget_left_request`]): `e` too.
fn abandon(io: &VcpuIo, id: u64, e: Errno) -> Result<u64, Errno> {
    if io.wait_id.compare_exchange(id, 0, SeqCst, SeqCst).is_ok() {
        io.sock.store(-1, SeqCst);
        return Err(e);
    }
    while io.wait_id.load(SeqCst) == id | DELIVERING {
        if io.done_id.load(SeqCst) == id {
            return take_result(io);
        }
        core::hint::spin_loop();
    }
    Err(e)
}

/// Gives up the request whose wait a signal handler left by `longjmp` (its
/// `wait_id` is still set), or that a signal handler calling `kvmng_run`
/// interrupted, as [`abandon`] does: a hand-over of its reply that is
/// under way ends first, so that it cannot write into the slot once the
/// next request uses it (or the binding is dropped: `detach`).
pub(super) fn forget_left_request(io: &VcpuIo) {
    let left = io.wait_id.load(SeqCst) & !DELIVERING;
    if left != 0 {
        let _ = abandon(io, left, Errno(libc::EINTR));
    }
}

fn wait_reply(me: &ThreadBinding, sock: usize, id: u64, mask: WaitMask) -> Result<u64, Errno> {
    let io = &me.io;
    let s = &SOCKETS[sock];
    let tid = gettid() as u32;
    let efd = io.efd.load(SeqCst);
    // The role's word at this waiter's previous orphan check, or 0.
    let mut seen = 0;
    loop {
        if io.done_id.load(SeqCst) == id {
            return take_result(io);
        }
        // A signal handler's `kvmng_run` gave the request up (a wait that
        // goes on after the handler, the gate having moved).
        if io.wait_id.load(SeqCst) & !DELIVERING != id {
            return abandon(io, id, Errno(libc::EINTR));
        }
        if s.dead.load(SeqCst) != 0 {
            return abandon(io, id, Errno(libc::EPIPE));
        }
        if immediate_exit(io) {
            return abandon(io, id, Errno(libc::EINTR));
        }
        let before = generation();
        if let Some(mut mine) = take_role(s, tid) {
            let end = receive(me, sock, id, mask, &mut mine);
            // A holder that was taken over leaves the role and the waiters
            // to the one that took it.
            if give_up_role(s, mine) {
                wake_waiters(sock, io);
            }
            match end {
                Ok(()) | Err(RxEnd::TakenOver) => continue,
                Err(RxEnd::Interrupted) if generation() != before => continue,
                Err(RxEnd::Interrupted) => return abandon(io, id, Errno(libc::EINTR)),
                Err(RxEnd::Failed(e)) => return abandon(io, id, e),
            }
        }
        match wait(efd, libc::POLLIN, mask, Some(ORPHAN_CHECK_NS)) {
            Ok(0) => release_orphaned_receiver(sock, &mut seen, io),
            Ok(_) => drain(efd),
            Err(Errno(libc::EINTR)) if generation() != before => {}
            Err(Errno(libc::EINTR)) => return abandon(io, id, Errno(libc::EINTR)),
            Err(e) => return abandon(io, id, e),
        }
    }
}
