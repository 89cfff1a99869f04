//! The receive role of a socket: its holder reads the replies and hands
//! each to the vCPU whose request id it carries, until its own arrives.
//!
//! # The role's word
//!
//! `Socket::rx` is one `u64`: the holder's tid in the low 32 bits (0: the
//! role is free) and a generation in the high 32 bits. Every change of the
//! word is a compare-and-swap of the whole word that moves the generation
//! on: taking the role ([`take_role`]), each turn of the holder's receive
//! loop ([`keep_role`]), giving it up ([`give_up_role`]) and freeing it for
//! a holder that left ([`release_orphaned_receiver`]). So a word read twice
//! means that nothing happened to the role in between: not a hand-back and
//! a new take by the same tid (the ABA that a word of the tid alone had).
//!
//! # A holder that left
//!
//! A holder can leave without giving the role up: a signal handler that
//! `longjmp`s out of its wait on the socket, while the thread stays bound
//! or exits. Nothing it leaves behind tells it from a holder waiting for
//! a slow device, but a holder in [`receive`] is woken by anything the
//! socket has to read and then turns its loop, which moves the word. So a
//! waiter whose wait timed out (`ORPHAN_CHECK_NS`) looks at the role: if
//! the word is the one it saw at its previous check, one wait earlier, and
//! the socket had something to read at both checks, nobody has read it
//! for that long, and the waiter frees the role (a CAS from that word) and
//! takes it. A role left with nothing to read is not freed, and need not
//! be: whoever waits is waiting for a reply that is not there yet.
//!
//! This can also free the role of a holder that is alive but was not run
//! for a whole wait (a loaded machine), and a generation that wrapped
//! around (2^32 changes between two reads) could make a changed word look
//! the same. Both are safe: two receivers at
//! once lose nothing. Each reply is read by one of them (one datagram per
//! `recv`) and handed over by a CAS of its waiter's `wait_id`, whoever
//! reads it; a holder waits on the socket and on its own eventfd, so a
//! reply of its own that the other one hands over wakes it; and a holder
//! that finds the word changed at the next turn of its loop knows it was
//! taken over, stops receiving, and neither frees the role nor wakes the
//! waiters when it leaves. So the role is exclusive while holders are run
//! in time (the loom model checks that), and never needs to be.

use super::exchange::socket_errno;
use super::table::{Socket, SOCKETS};
use super::vcpu::VcpuIo;
use super::wait::{drain, wait_or_woken, WaitMask};
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
    /// Another waiter freed the role and may hold it now (this holder
    /// seemed to have left): the caller waits as a waiter again.
    TakenOver,
    /// Any other failure: the errno for the waiter.
    Failed(Errno),
}

/// The holder's tid in a word of `Socket::rx` (0: the role is free).
fn holder(word: u64) -> u32 {
    word as u32
}

/// `word` changed to say that `tid` holds the role (0: free), with the
/// next generation.
fn next(word: u64, tid: u32) -> u64 {
    ((word >> 32).wrapping_add(1) << 32) | u64::from(tid)
}

/// Takes the receive role of `s` for thread `tid` if it is free: the word
/// that says this thread holds it.
pub(super) fn take_role(s: &Socket, tid: u32) -> Option<u64> {
    let word = s.rx.load(SeqCst);
    if holder(word) != 0 {
        return None;
    }
    let mine = next(word, tid);
    s.rx.compare_exchange(word, mine, SeqCst, SeqCst)
        .ok()
        .map(|_| mine)
}

/// One turn of the holder's loop: moves the generation on (the holder is
/// alive), unless the role was freed under it (false).
fn keep_role(s: &Socket, mine: &mut u64) -> bool {
    let word = next(*mine, holder(*mine));
    let kept = s.rx.compare_exchange(*mine, word, SeqCst, SeqCst).is_ok();
    if kept {
        *mine = word;
    }
    kept
}

/// Gives the role up: true when it was still this holder's (its word).
pub(super) fn give_up_role(s: &Socket, mine: u64) -> bool {
    s.rx.compare_exchange(mine, next(mine, 0), SeqCst, SeqCst)
        .is_ok()
}

/// True when socket `fd` has something to read (a reply, end of file or an
/// error): what ends a holder's wait on it.
fn readable(fd: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // A timeout of 0: it does not wait.
    let r = sys::poll(core::slice::from_mut(&mut pfd), 0);
    r.is_ok() && pfd.revents != 0
}

/// The orphan check of a waiter on `sock` whose wait timed out: frees the
/// receive role when its word is `seen`, the word of this waiter's previous
/// check, and the socket has had something to read at both (the holder
/// left: see the module's doc); then wakes the other waiters, as a holder
/// that gives the role up does. `seen` (0 at first) is the waiter's.
pub(super) fn release_orphaned_receiver(sock: usize, seen: &mut u64, me: &VcpuIo) {
    let s = &SOCKETS[sock];
    let word = s.rx.load(SeqCst);
    if holder(word) == 0 || !readable(s.fd.load(SeqCst)) {
        *seen = 0;
        return;
    }
    if word != *seen {
        *seen = word;
        return;
    }
    *seen = 0;
    if s.rx
        .compare_exchange(word, next(word, 0), SeqCst, SeqCst)
        .is_ok()
    {
        wake_waiters(sock, me);
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

/// The receive role, held with word `*rx`: reads replies and hands them to
/// their waiters until this thread's own reply (`id`) is handed over. It
/// waits on the socket and on the thread's eventfd (through which another
/// receiver hands it its reply, after a take-over).
pub(super) fn receive(
    me: &ThreadBinding,
    sock: usize,
    id: u64,
    mask: WaitMask,
    rx: &mut u64,
) -> Result<(), RxEnd> {
    let io = &me.io;
    let s = &SOCKETS[sock];
    let fd = s.fd.load(SeqCst);
    let efd = io.efd.load(SeqCst);
    const REPLY: usize = core::mem::size_of::<kvmng_ioregion_reply>();
    loop {
        if io.done_id.load(SeqCst) == id {
            return Ok(());
        }
        if !keep_role(s, rx) {
            return Err(RxEnd::TakenOver);
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
            // Drained before `done_id` is read again: a hand-over stores
            // `done_id` before it writes the eventfd.
            Err(Errno(libc::EAGAIN)) => match wait_or_woken(fd, libc::POLLIN, efd, mask, None) {
                Err(Errno(libc::EINTR)) => return Err(RxEnd::Interrupted),
                Err(e) => return Err(RxEnd::Failed(e)),
                Ok((_, woken)) => {
                    if woken {
                        drain(efd);
                    }
                }
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
    if id == 0 || id & DELIVERING != 0 {
        return Err(Errno(libc::EBADMSG));
    }
    for t in THREADS[..binding::high_water()].iter() {
        let io = &t.io;
        if io.sock.load(SeqCst) != sock as i32 {
            continue;
        }
        if io
            .wait_id
            .compare_exchange(id, id | DELIVERING, SeqCst, SeqCst)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::legacy::ioregion::MAX_REGIONS;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    // The last entries of SOCKETS, one per test: nothing else in the unit
    // tests uses them.

    #[test]
    fn every_change_of_the_role_moves_its_word_on() {
        let s = &SOCKETS[MAX_REGIONS - 1];
        s.reset();
        let first = take_role(s, 7).expect("free");
        assert_eq!(holder(first), 7);
        assert_eq!(take_role(s, 8), None, "held");
        let mut mine = first;
        assert!(keep_role(s, &mut mine));
        assert_ne!(mine, first);
        assert!(!give_up_role(s, first), "an old word gives nothing up");
        assert!(give_up_role(s, mine));
        assert_eq!(holder(s.rx.load(SeqCst)), 0);
        // The same tid takes it again: not the word it had (no ABA).
        let again = take_role(s, 7).expect("free");
        assert!(again != first && again != mine);
        // Taken over: the old holder can neither keep nor give it up.
        s.rx.store(next(again, 9), SeqCst);
        let mut old = again;
        assert!(!keep_role(s, &mut old));
        assert!(!give_up_role(s, again));
        assert_eq!(holder(s.rx.load(SeqCst)), 9);
        s.reset();
    }

    #[test]
    fn the_orphan_check_frees_a_role_that_left_replies_unread() {
        let i = MAX_REGIONS - 2;
        let s = &SOCKETS[i];
        let (ours, device) = UnixDatagram::pair().unwrap();
        s.reset();
        s.fd.store(ours.as_raw_fd(), SeqCst);
        let me = VcpuIo::new();
        let mut seen = 0;
        let mut buf = [0u8; 8];
        // Held by tid 7, which left; nothing to read: kept.
        let mut left = take_role(s, 7).unwrap();
        release_orphaned_receiver(i, &mut seen, &me);
        release_orphaned_receiver(i, &mut seen, &me);
        assert_eq!(s.rx.load(SeqCst), left);
        // Something to read at one check only: kept.
        device.send(b"reply").unwrap();
        release_orphaned_receiver(i, &mut seen, &me);
        ours.recv(&mut buf).unwrap();
        release_orphaned_receiver(i, &mut seen, &me);
        assert_eq!(s.rx.load(SeqCst), left);
        // The holder moves between two readable checks: kept.
        device.send(b"reply").unwrap();
        release_orphaned_receiver(i, &mut seen, &me);
        assert!(keep_role(s, &mut left));
        release_orphaned_receiver(i, &mut seen, &me);
        assert_eq!(s.rx.load(SeqCst), left);
        // The same word at two readable checks: freed.
        release_orphaned_receiver(i, &mut seen, &me);
        assert_eq!(holder(s.rx.load(SeqCst)), 0);
        assert!(!give_up_role(s, left));
        s.fd.store(-1, SeqCst);
        s.reset();
    }
}
