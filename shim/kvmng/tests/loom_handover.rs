//! A loom model of the I/O-region reply hand-over of the legacy backend
//! (`src/backend/legacy/ioregion`): several vCPU threads wait for replies
//! on one socket; whoever wins the socket's receive role (`Socket::rx`)
//! reads the replies and hands each to its waiter (a CAS of the waiter's
//! `wait_id` to `DELIVERING`, then `data`, `err`, `done_id` and a write to
//! its eventfd); a waiter may abandon its request (a CAS of `wait_id` to
//! 0) while its reply is being handed over.
//!
//! The real code runs from a signal handler on `core::sync::atomic`
//! statics and raw syscalls, which loom cannot run. So this is a MODEL: one
//! function per real function, named after it, with the same atomics and
//! the same steps in the same order (each model function names the real
//! one it mirrors). What the model replaces:
//!
//! * the socket: its queue of requests and of replies, under a loom
//!   `Mutex` (the kernel's socket lock), and a `Condvar` for `ppoll`;
//!   `send` never answers `EAGAIN` (the queue is unbounded);
//! * an eventfd: its counter under a loom `Mutex`, and a `Condvar`;
//! * the device: a thread answering the requests in the order they were
//!   sent (or, for one finding, in a given order of vCPUs);
//! * a signal: a flag per thread. A wait with nothing ready answers
//!   `EINTR` while it is set (a signal handled in `ppoll`), and
//!   `immediate_exit` reads it (a handler that set `kvm_run.immediate_exit`);
//! * `THREADS[..high_water()]`: the model's vCPU threads; a slot's `tid` and
//!   eventfd number never change while it is bound, so they are constants;
//! * the memory-map gate's `generation()` never moves (no `continue` on it);
//! * `core::hint::spin_loop()` is `loom::thread::yield_now()`.
//!
//! Every atomic of the real code is `SeqCst`, but loom treats `SeqCst`
//! loads and stores as acquire/release only; so each operation of the model
//! is wrapped in `fence(SeqCst)` on both sides ([`sc`]), which loom does
//! model, to give the model the real code's single total order.
//!
//! The model keeps ghost state (plain `std` types, outside loom's view:
//! loom runs one thread at a time) to check the properties: who believes
//! it holds the receive role, and how many times each reply was handed
//! over.
//!
//! Each test is exhaustive up to a preemption bound (loom's bounded DPOR;
//! switches where a thread blocks are free), chosen so that the whole run
//! takes about half a minute; `LOOM_MAX_PREEMPTIONS` overrides it. The
//! tests marked `#[ignore]` are findings: properties the real code does
//! not have (run them one at a time with `-- --ignored --exact NAME`;
//! they fail, and loom's deadlock report aborts the test process).
//!
//! Run with `make loom`, i.e.
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test
//! --release -p kvmng --test loom_handover`.
#![cfg(loom)]

use loom::sync::atomic::{self as la, fence};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::{self, SeqCst};

const EINTR: i32 = libc::EINTR;
const EPIPE: i32 = libc::EPIPE;
const EBADMSG: i32 = libc::EBADMSG;
const EAGAIN: i32 = libc::EAGAIN;
/// Not an errno: the model's mark for a thread that left by `longjmp`.
const LONGJMP: i32 = -1;
const POLLIN: i16 = libc::POLLIN;

/// ioregion/mod.rs `DELIVERING`.
const DELIVERING: u64 = u64::MAX;
/// The socket entry of the model (`SOCKETS[0]`).
const SOCK: i32 = 0;

/// One operation, sequentially consistent under loom.
fn sc<R>(op: impl FnOnce() -> R) -> R {
    fence(SeqCst);
    let r = op();
    fence(SeqCst);
    r
}

macro_rules! sc_atomic {
    ($name:ident, $loom:ident, $t:ty) => {
        /// The `core::sync::atomic` type of the real code, every operation
        /// fenced by [`sc`].
        struct $name(la::$loom);

        #[allow(dead_code)]
        impl $name {
            fn new(v: $t) -> Self {
                Self(la::$loom::new(v))
            }
            fn load(&self, o: Ordering) -> $t {
                sc(|| self.0.load(o))
            }
            fn store(&self, v: $t, o: Ordering) {
                sc(|| self.0.store(v, o))
            }
            fn compare_exchange(&self, c: $t, n: $t, s: Ordering, f: Ordering) -> Result<$t, $t> {
                sc(|| self.0.compare_exchange(c, n, s, f))
            }
            fn fetch_add(&self, v: $t, o: Ordering) -> $t {
                sc(|| self.0.fetch_add(v, o))
            }
            fn fetch_min(&self, v: $t, o: Ordering) -> $t {
                sc(|| self.0.fetch_min(v, o))
            }
            fn fetch_max(&self, v: $t, o: Ordering) -> $t {
                sc(|| self.0.fetch_max(v, o))
            }
        }
    };
}

sc_atomic!(AtomicU64, AtomicU64, u64);
sc_atomic!(AtomicI32, AtomicI32, i32);
sc_atomic!(AtomicU32, AtomicU32, u32);

/// The kernel side of the socket: requests not yet read by the device,
/// replies not yet read by a vCPU, and whether the device closed its end.
#[derive(Default)]
struct Wire {
    requests: VecDeque<u64>,
    replies: VecDeque<(u64, u64)>,
    closed: bool,
}

/// An eventfd: the kernel's counter and the wait queue of `ppoll` on it.
struct EventFd {
    count: Mutex<u64>,
    changed: Condvar,
}

/// table.rs `Socket` (`refs` and `fd` play no part in the hand-over).
struct Socket {
    rx: AtomicI32,
    dead: AtomicU32,
    first_id: AtomicU64,
    last_id: AtomicU64,
    wire: Mutex<Wire>,
    changed: Condvar,
}

impl Socket {
    /// table.rs `Socket::note_sent`.
    fn note_sent(&self, id: u64) {
        self.first_id.fetch_min(id, SeqCst);
        self.last_id.fetch_max(id, SeqCst);
    }

    /// table.rs `Socket::was_sent`.
    fn was_sent(&self, id: u64) -> bool {
        self.first_id.load(SeqCst) <= id && id <= self.last_id.load(SeqCst)
    }
}

/// vcpu.rs `VcpuIo` (the hand-over's fields).
struct VcpuIo {
    sock: AtomicI32,
    wait_id: AtomicU64,
    done_id: AtomicU64,
    data: AtomicU64,
    err: AtomicI32,
    is_write: AtomicU32,
    efd: EventFd,
}

/// binding.rs `ThreadBinding`: a slot of `THREADS`.
struct ThreadBinding {
    /// The bound thread's tid (constant while it is bound).
    tid: i32,
    io: VcpuIo,
    /// Model only: a signal for the thread (see the file's doc).
    signal: AtomicU32,
    /// Model only: the thread leaves by `longjmp` out of the signal
    /// handler of its socket wait, as the receive role's holder.
    longjmp: bool,
    /// Model only: how many more times a wait on the eventfd times out
    /// (`ORPHAN_CHECK_NS`) when nothing is ready; it blocks after that.
    timeouts: std::sync::atomic::AtomicUsize,
}

/// What the model checks, outside loom's view.
#[derive(Default)]
struct Ghost {
    /// The thread that sent each request id.
    owner: HashMap<u64, usize>,
    /// How many times each reply was handed over.
    handed: HashMap<u64, usize>,
    /// Replies dropped as stale.
    stale: Vec<u64>,
    /// The thread that believes it holds the receive role.
    receiver: Option<usize>,
    /// How many times each thread took the receive role.
    takes: HashMap<usize, usize>,
    /// How many round trips each thread completed.
    done: HashMap<usize, usize>,
}

/// Model only: the points of `release_orphaned_receiver` where a test may
/// hold the thread (as a preemption may, for any time).
#[derive(Clone, Copy, Debug)]
enum Pause {
    /// `rx` was read (non-zero).
    HolderRead,
    /// The holder was found not waiting, before the CAS.
    NotWaiting,
}

struct World {
    /// table.rs `NEXT_ID`.
    next_id: AtomicU64,
    sock: Socket,
    threads: Vec<ThreadBinding>,
    /// Model only: at each [`Pause`], the thread goes on once this is true.
    pause: Option<fn(&Ghost, Pause) -> bool>,
    /// Ghost: a second holder of the receive role fails the check at once
    /// (else it is let go on, to see what follows).
    one_receiver: bool,
    ghost: std::sync::Mutex<Ghost>,
}

impl World {
    /// `vcpus` bound threads whose waits on their eventfd time out the
    /// first `orphan_checks` times nothing is ready.
    fn new(vcpus: usize, orphan_checks: usize) -> World {
        World {
            next_id: AtomicU64::new(1),
            sock: Socket {
                rx: AtomicI32::new(0),
                dead: AtomicU32::new(0),
                first_id: AtomicU64::new(u64::MAX),
                last_id: AtomicU64::new(0),
                wire: Mutex::new(Wire::default()),
                changed: Condvar::new(),
            },
            threads: (0..vcpus)
                .map(|i| ThreadBinding {
                    tid: 100 + i as i32,
                    io: VcpuIo {
                        sock: AtomicI32::new(-1),
                        wait_id: AtomicU64::new(0),
                        done_id: AtomicU64::new(0),
                        data: AtomicU64::new(0),
                        err: AtomicI32::new(0),
                        is_write: AtomicU32::new(0),
                        efd: EventFd {
                            count: Mutex::new(0),
                            changed: Condvar::new(),
                        },
                    },
                    signal: AtomicU32::new(0),
                    longjmp: false,
                    timeouts: std::sync::atomic::AtomicUsize::new(orphan_checks),
                })
                .collect(),
            pause: None,
            one_receiver: true,
            ghost: std::sync::Mutex::new(Ghost::default()),
        }
    }

    /// Holds the calling thread at `at` until `self.pause` lets it go.
    fn pause(&self, at: Pause) {
        if let Some(ready) = self.pause {
            while !ready(&self.ghost(), at) {
                thread::yield_now();
            }
        }
    }

    fn ghost(&self) -> std::sync::MutexGuard<'_, Ghost> {
        self.ghost.lock().unwrap()
    }
}

/// The device's reply to request `id`.
fn reply_data(id: u64) -> u64 {
    1000 + id
}

// ---- The kernel: the socket, eventfds, signals ----

/// `sys::send` of a request (`MSG_DONTWAIT`): never full in the model.
fn send(s: &Socket, id: u64) {
    let mut wire = s.wire.lock().unwrap();
    wire.requests.push_back(id);
    s.changed.notify_all();
}

/// `sys::recv` of a reply (`MSG_DONTWAIT`): `Ok(None)` is end of file.
fn recv(s: &Socket) -> Result<Option<(u64, u64)>, i32> {
    let mut wire = s.wire.lock().unwrap();
    match wire.replies.pop_front() {
        Some(reply) => Ok(Some(reply)),
        None if wire.closed => Ok(None),
        None => Err(EAGAIN),
    }
}

fn signalled(t: &ThreadBinding) -> bool {
    t.signal.load(SeqCst) != 0
}

/// wait.rs `wait` on the socket (`POLLIN`, no timeout), as `receive`
/// does. Like `ppoll`, a ready fd wins over a signal.
fn wait_socket(w: &World, me: usize) -> Result<i16, i32> {
    let t = &w.threads[me];
    let s = &w.sock;
    let mut wire = s.wire.lock().unwrap();
    loop {
        if !wire.replies.is_empty() || wire.closed {
            return Ok(POLLIN);
        }
        if t.longjmp {
            return Err(LONGJMP);
        }
        if signalled(t) {
            return Err(EINTR);
        }
        wire = s.changed.wait(wire).unwrap();
    }
}

/// wait.rs `wait` on the thread's eventfd (`POLLIN`, `ORPHAN_CHECK_NS`),
/// as `wait_reply` does: `Ok(0)` when it timed out.
fn wait_eventfd(w: &World, me: usize) -> Result<i16, i32> {
    let t = &w.threads[me];
    let efd = &t.io.efd;
    let mut count = efd.count.lock().unwrap();
    loop {
        if *count > 0 {
            return Ok(POLLIN);
        }
        if signalled(t) {
            return Err(EINTR);
        }
        if t.timeouts.load(SeqCst) > 0 {
            t.timeouts.fetch_sub(1, SeqCst);
            return Ok(0);
        }
        count = efd.changed.wait(count).unwrap();
    }
}

/// receive.rs `wake`: `eventfd_write(efd, 1)`.
fn wake(efd: &EventFd) {
    *efd.count.lock().unwrap() += 1;
    efd.changed.notify_all();
}

/// exchange.rs `drain`: `eventfd_read(efd)`.
fn drain(efd: &EventFd) {
    *efd.count.lock().unwrap() = 0;
}

/// A signal for thread `t`: it ends the thread's waits.
fn raise(w: &World, t: usize) {
    let t = &w.threads[t];
    t.signal.store(1, SeqCst);
    let count = t.io.efd.count.lock().unwrap();
    t.io.efd.changed.notify_all();
    drop(count);
    let wire = w.sock.wire.lock().unwrap();
    w.sock.changed.notify_all();
    drop(wire);
}

/// The device closes its end of the socket.
fn hang_up(w: &World) {
    let mut wire = w.sock.wire.lock().unwrap();
    wire.closed = true;
    w.sock.changed.notify_all();
}

/// The device: answers `n` requests, in the order they were sent.
fn device(w: &World, n: usize) {
    let s = &w.sock;
    for _ in 0..n {
        let mut wire = s.wire.lock().unwrap();
        while wire.requests.is_empty() {
            wire = s.changed.wait(wire).unwrap();
        }
        let id = wire.requests.pop_front().unwrap();
        wire.replies.push_back((id, reply_data(id)));
        s.changed.notify_all();
    }
}

/// The device: answers a request of each vCPU thread of `order` in turn
/// (a request carries its `vcpu_id`; a device may answer in any order).
fn device_by_vcpu(w: &World, order: &[usize]) {
    let s = &w.sock;
    for &vcpu in order {
        let mut wire = s.wire.lock().unwrap();
        let index = loop {
            let g = w.ghost();
            if let Some(i) = wire.requests.iter().position(|id| g.owner[id] == vcpu) {
                break i;
            }
            drop(g);
            wire = s.changed.wait(wire).unwrap();
        };
        let id = wire.requests.remove(index).unwrap();
        wire.replies.push_back((id, reply_data(id)));
        s.changed.notify_all();
    }
}

// ---- exchange.rs ----

/// access.rs `resume` (the request's id from `NEXT_ID`) then exchange.rs
/// `exchange` of a read that is not posted: the id and the result.
fn exchange(w: &World, me: usize) -> (u64, Result<u64, i32>) {
    let io = &w.threads[me].io;
    let s = &w.sock;
    let id = w.next_id.fetch_add(1, SeqCst);
    w.ghost().owner.insert(id, me);
    // eventfd(io): created when the model's slot is.
    io.is_write.store(0, SeqCst);
    io.sock.store(SOCK, SeqCst);
    io.wait_id.store(id, SeqCst);
    s.note_sent(id);
    send(s, id);
    (id, wait_reply(w, me, id))
}

/// exchange.rs `take_result`.
fn take_result(io: &VcpuIo) -> Result<u64, i32> {
    let err = io.err.load(SeqCst);
    let data = io.data.load(SeqCst);
    io.wait_id.store(0, SeqCst);
    io.sock.store(-1, SeqCst);
    if err != 0 {
        Err(err)
    } else {
        Ok(data)
    }
}

/// exchange.rs `abandon`.
fn abandon(io: &VcpuIo, id: u64, e: i32) -> Result<u64, i32> {
    if io.wait_id.compare_exchange(id, 0, SeqCst, SeqCst).is_ok() {
        io.sock.store(-1, SeqCst);
        return Err(e);
    }
    while io.done_id.load(SeqCst) != id {
        thread::yield_now();
    }
    take_result(io)
}

/// access.rs `immediate_exit`.
fn immediate_exit(t: &ThreadBinding) -> bool {
    signalled(t)
}

/// Ghost: thread `me` won the CAS of `rx`.
fn took_role(w: &World, me: usize) {
    let mut g = w.ghost();
    assert!(
        g.receiver.is_none() || !w.one_receiver,
        "thread {me} took the receive role while thread {:?} holds it",
        g.receiver
    );
    g.receiver = Some(me);
    *g.takes.entry(me).or_default() += 1;
}

/// Ghost: thread `me` is about to give the receive role up.
fn leaves_role(w: &World, me: usize) {
    let mut g = w.ghost();
    if g.receiver == Some(me) {
        g.receiver = None;
    }
}

/// exchange.rs `wait_reply`.
fn wait_reply(w: &World, me: usize, id: u64) -> Result<u64, i32> {
    let t = &w.threads[me];
    let io = &t.io;
    let s = &w.sock;
    let tid = t.tid;
    loop {
        if io.done_id.load(SeqCst) == id {
            return take_result(io);
        }
        if s.dead.load(SeqCst) != 0 {
            return abandon(io, id, EPIPE);
        }
        if immediate_exit(t) {
            return abandon(io, id, EINTR);
        }
        if s.rx.compare_exchange(0, tid, SeqCst, SeqCst).is_ok() {
            took_role(w, me);
            let end = receive(w, me, id);
            if end == Err(RxEnd::LongJmp) {
                // Every frame is left as it is: rx, sock, wait_id.
                return Err(LONGJMP);
            }
            leaves_role(w, me);
            s.rx.store(0, SeqCst);
            wake_waiters(w, me);
            match end {
                Ok(()) => continue,
                Err(RxEnd::Interrupted) => return abandon(io, id, EINTR),
                Err(RxEnd::Failed(e)) => return abandon(io, id, e),
                Err(RxEnd::LongJmp) => unreachable!(),
            }
        }
        match wait_eventfd(w, me) {
            Ok(0) => release_orphaned_receiver(w),
            Ok(_) => drain(&io.efd),
            Err(e) => return abandon(io, id, e),
        }
    }
}

// ---- receive.rs ----

/// receive.rs `RxEnd`.
#[derive(Debug, PartialEq)]
enum RxEnd {
    Interrupted,
    Failed(i32),
    /// Model only: left by `longjmp`.
    LongJmp,
}

/// receive.rs `release_orphaned_receiver`.
fn release_orphaned_receiver(w: &World) {
    let s = &w.sock;
    let holder = s.rx.load(SeqCst);
    if holder == 0 {
        return;
    }
    w.pause(Pause::HolderRead);
    let waiting = w
        .threads
        .iter()
        .any(|t| t.tid == holder && t.io.sock.load(SeqCst) == SOCK);
    if !waiting {
        w.pause(Pause::NotWaiting);
        let _ = s.rx.compare_exchange(holder, 0, SeqCst, SeqCst);
    }
}

/// receive.rs `wake_waiters`.
fn wake_waiters(w: &World, me: usize) {
    for (i, t) in w.threads.iter().enumerate() {
        let io = &t.io;
        if i == me {
            continue;
        }
        if io.sock.load(SeqCst) == SOCK && io.wait_id.load(SeqCst) != 0 {
            wake(&io.efd);
        }
    }
}

/// receive.rs `receive` (`hung_up` is the model's end of file).
fn receive(w: &World, me: usize, id: u64) -> Result<(), RxEnd> {
    let io = &w.threads[me].io;
    let s = &w.sock;
    loop {
        if io.done_id.load(SeqCst) == id {
            return Ok(());
        }
        match recv(s) {
            Ok(None) => {
                s.dead.store(1, SeqCst);
                return Err(RxEnd::Failed(EPIPE));
            }
            Ok(Some((reply_id, data))) => {
                deliver(w, reply_id, data, me).map_err(RxEnd::Failed)?;
            }
            Err(_) => match wait_socket(w, me) {
                Err(LONGJMP) => return Err(RxEnd::LongJmp),
                Err(EINTR) => return Err(RxEnd::Interrupted),
                Err(e) => return Err(RxEnd::Failed(e)),
                Ok(_) => {}
            },
        }
    }
}

/// receive.rs `deliver`.
fn deliver(w: &World, id: u64, data: u64, me: usize) -> Result<(), i32> {
    if id == 0 || id == DELIVERING {
        return Err(EBADMSG);
    }
    for (i, t) in w.threads.iter().enumerate() {
        let io = &t.io;
        if io.sock.load(SeqCst) != SOCK {
            continue;
        }
        if io
            .wait_id
            .compare_exchange(id, DELIVERING, SeqCst, SeqCst)
            .is_ok()
        {
            {
                let mut g = w.ghost();
                assert_eq!(g.owner[&id], i, "reply {id} handed to thread {i}");
                let n = g.handed.entry(id).or_default();
                *n += 1;
                assert_eq!(*n, 1, "reply {id} handed over twice");
            }
            let malformed = io.is_write.load(SeqCst) != 0 && data != 0;
            io.data.store(data, SeqCst);
            io.err.store(if malformed { EBADMSG } else { 0 }, SeqCst);
            io.done_id.store(id, SeqCst);
            if i != me {
                wake(&io.efd);
            }
            return Ok(());
        }
    }
    if w.sock.was_sent(id) {
        w.ghost().stale.push(id);
        return Ok(());
    }
    Err(EBADMSG)
}

// ---- The checks ----

/// A loom checker: exhaustive up to `preemptions` preemptions per run.
fn check(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    // The spin of `abandon` and the pauses of the findings.
    b.max_branches = b.max_branches.max(100_000);
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b.check(f);
}

/// Spawns vCPU thread `me` of `w` doing `requests` round trips; the
/// program clears `immediate_exit` (the signal) before each run.
fn vcpu(
    w: &Arc<World>,
    me: usize,
    requests: usize,
) -> thread::JoinHandle<Vec<(u64, Result<u64, i32>)>> {
    let w = w.clone();
    thread::spawn(move || run_vcpu(&w, me, requests))
}

/// vCPU thread `me` of `w` doing `requests` round trips on this thread.
fn run_vcpu(w: &World, me: usize, requests: usize) -> Vec<(u64, Result<u64, i32>)> {
    (0..requests)
        .map(|k| {
            if k > 0 {
                w.threads[me].signal.store(0, SeqCst);
            }
            let r = exchange(w, me);
            *w.ghost().done.entry(me).or_default() += 1;
            r
        })
        .collect()
}

/// A reply that was handed over belongs to its waiter, and is its result.
fn assert_own_reply(w: &World, id: u64, r: Result<u64, i32>) {
    assert_eq!(r, Ok(reply_data(id)), "the result of request {id}");
    assert_eq!(w.ghost().handed.get(&id), Some(&1), "request {id}");
}

/// 1. Three vCPU threads wait on one socket, one request each: each gets
///    exactly its own reply, whichever thread holds the receive role when
///    it comes, and the role is never held by two threads.
#[test]
fn every_waiter_gets_exactly_its_own_reply() {
    check(1, || {
        let w = Arc::new(World::new(3, 0));
        let handles: Vec<_> = (0..3).map(|i| vcpu(&w, i, 1)).collect();
        device(&w, 3);
        for h in handles {
            for (id, r) in h.join().unwrap() {
                assert_own_reply(&w, id, r);
            }
        }
    });
}

/// 1b. Two vCPU threads, two round trips each: a reply is never handed to
///     a later request of the same thread, nor to the other thread.
#[test]
fn every_waiter_gets_its_own_reply_round_after_round() {
    check(2, || {
        let w = Arc::new(World::new(2, 0));
        let handles: Vec<_> = (0..2).map(|i| vcpu(&w, i, 2)).collect();
        device(&w, 4);
        for h in handles {
            for (id, r) in h.join().unwrap() {
                assert_own_reply(&w, id, r);
            }
        }
    });
}

/// 2. Thread 0 is signalled while its first request is out, racing the
///    hand-over of its reply: it either gets that reply or abandons
///    cleanly (`EINTR`, the reply never handed over: dropped as stale if
///    it is read), and its second request gets its own reply, never the
///    late one. Thread 1's request is answered meanwhile.
#[test]
fn abandoning_a_reply_in_delivery() {
    check(2, || {
        let w = Arc::new(World::new(2, 0));
        let a = vcpu(&w, 0, 2);
        let b = vcpu(&w, 1, 1);
        raise(&w, 0);
        device(&w, 3);
        let a = a.join().unwrap();
        let (first, r1) = a[0];
        match r1 {
            Ok(_) => assert_own_reply(&w, first, r1),
            Err(e) => {
                assert_eq!(e, EINTR);
                assert_eq!(w.ghost().handed.get(&first), None, "abandoned {first}");
            }
        }
        let (second, r2) = a[1];
        assert_own_reply(&w, second, r2);
        for (id, r) in b.join().unwrap() {
            assert_own_reply(&w, id, r);
        }
        // Only the abandoned request's reply may have been dropped.
        let stale = &w.ghost().stale;
        assert!(
            stale.iter().all(|id| *id == first && r1.is_err()),
            "{stale:?}"
        );
    });
}

/// 2b. The device answers one of the two requests and closes its end: each
///     waiter gets its own reply or abandons with `EPIPE` (the receiver that
///     reads the end of file with it), and none is left waiting.
#[test]
fn abandoning_when_the_device_hangs_up() {
    check(3, || {
        let w = Arc::new(World::new(2, 0));
        let handles: Vec<_> = (0..2).map(|i| vcpu(&w, i, 1)).collect();
        device(&w, 1);
        hang_up(&w);
        let mut replies = 0;
        for h in handles {
            for (id, r) in h.join().unwrap() {
                if r.is_ok() {
                    assert_own_reply(&w, id, r);
                    replies += 1;
                } else {
                    assert_eq!(r, Err(EPIPE));
                    assert_eq!(w.ghost().handed.get(&id), None, "abandoned {id}");
                }
            }
        }
        assert!(replies <= 1);
    });
}

/// 3. Two vCPU threads, thread 0 signalled once the device has answered
///    one request (at any point of thread 0's round trip): the receive role
///    is never held by two threads (checked at each CAS of `rx`), and when
///    its holder leaves (with its reply, or interrupted) the other waiter
///    takes it over: thread 1 always gets its reply (a waiter left blocked
///    with nobody receiving is a deadlock, which loom reports).
#[test]
fn receive_role_is_exclusive_and_taken_over() {
    check(3, || {
        let w = Arc::new(World::new(2, 0));
        let a = vcpu(&w, 0, 1);
        let b = vcpu(&w, 1, 1);
        device(&w, 1);
        raise(&w, 0);
        device(&w, 1);
        let (id, r) = a.join().unwrap()[0];
        if r.is_ok() {
            assert_own_reply(&w, id, r);
        } else {
            assert_eq!(r, Err(EINTR));
        }
        for (id, r) in b.join().unwrap() {
            assert_own_reply(&w, id, r);
        }
        assert_eq!(w.ghost().receiver, None);
        assert_eq!(w.sock.rx.load(SeqCst), 0);
    });
}

// ---- Findings: the real code does not have these properties ----

/// The orphan check frees a receive role that its holder gave up and took
/// again: thread 1 times out and reads `rx` (thread 0, receiving for its
/// first request); thread 0 gets its reply, gives the role up and finishes
/// (`sock` -1); thread 1 finds it not waiting; thread 0 sends its second
/// request and takes the role again (the same tid); thread 1's CAS of
/// `rx` from that tid to 0 succeeds, and thread 1 takes the role too.
///
/// Loom's bounded search does not reach this schedule by itself (it needs
/// a thread preempted twice inside `release_orphaned_receiver`), so the
/// test holds thread 1 at the two [`Pause`] points until thread 0 is where
/// the schedule needs it; every other step is free.
#[test]
#[ignore = "finding: release_orphaned_receiver frees a role taken again by the same tid"]
fn orphan_check_never_frees_a_held_role() {
    check(2, || orphan_check_after_a_new_take(true));
}

/// What follows the schedule of [`orphan_check_never_frees_a_held_role`]:
/// thread 1, receiving, hands thread 0's second reply to thread 0's
/// eventfd, but thread 0, receiving too, waits on the socket (no timeout),
/// not on its eventfd; the device has nothing more to send, so thread 0
/// waits for ever (loom reports the deadlock).
#[test]
#[ignore = "finding: after the orphan check's ABA a receiver can wait for ever"]
fn orphan_check_never_strands_a_receiver() {
    check(2, || orphan_check_after_a_new_take(false));
}

/// Thread 0 (the model's main thread: loom switches least readily to the
/// device, spawned last) makes two round trips, thread 1 one, whose first
/// two waits time out; thread 1 is held in `release_orphaned_receiver`
/// until thread 0 has finished its first round trip (after reading `rx`)
/// and has taken the role for its second (before the CAS).
fn orphan_check_after_a_new_take(one_receiver: bool) {
    let mut w = World::new(2, 2);
    w.pause = Some(|g, at| match at {
        Pause::HolderRead => g.done.get(&0).is_some_and(|n| *n >= 1),
        Pause::NotWaiting => g.takes.get(&0).is_some_and(|n| *n >= 2),
    });
    w.one_receiver = one_receiver;
    let w = Arc::new(w);
    let u = vcpu(&w, 1, 1);
    let device = {
        let w = w.clone();
        thread::spawn(move || device_by_vcpu(&w, &[0, 0, 1]))
    };
    for (id, r) in run_vcpu(&w, 0, 2) {
        assert_own_reply(&w, id, r);
    }
    for (id, r) in u.join().unwrap() {
        assert_own_reply(&w, id, r);
    }
    device.join().unwrap();
}

/// Thread 0 takes the receive role and leaves by `longjmp` out of a signal
/// handler in its socket wait, staying bound; thread 1 then waits, timing
/// out: api.md 6 says it takes the role over within 50 ms, but
/// `release_orphaned_receiver` finds thread 0 "waiting" (its `io.sock` is
/// still the socket: nothing resets it after a `longjmp`), so thread 1
/// waits for ever (loom reports a deadlock once its timeouts are spent).
#[test]
#[ignore = "finding: a receive role left by longjmp is never freed while its holder stays bound"]
fn receive_role_left_by_longjmp_is_taken_over() {
    check(3, || {
        let mut w = World::new(2, 2);
        w.threads[0].longjmp = true;
        let w = Arc::new(w);
        let (_, r) = vcpu(&w, 0, 1).join().unwrap()[0];
        assert_eq!(r, Err(LONGJMP));
        let u = vcpu(&w, 1, 1);
        device(&w, 2);
        for (id, r) in u.join().unwrap() {
            assert_own_reply(&w, id, r);
        }
    });
}
