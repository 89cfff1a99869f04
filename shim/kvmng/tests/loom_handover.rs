//! A loom model of the I/O-region reply hand-over of the legacy backend
//! (`src/backend/legacy/ioregion`): several vCPU threads wait for replies
//! on one socket; whoever wins the socket's receive role (`Socket::rx`)
//! reads the replies and hands each to its waiter (a CAS of the waiter's
//! `wait_id` to the id with `DELIVERING` set, then `data`, `err`, `done_id`
//! and a write to
//! its eventfd); a waiter may abandon its request (a CAS of `wait_id` to
//! 0) while its reply is being handed over; a waiter whose wait times out
//! frees a role whose holder left (`release_orphaned_receiver`).
//!
//! The real code runs from a signal handler on `core::sync::atomic`
//! statics and raw syscalls, which loom cannot run. So this is a MODEL: one
//! function per real function, named after it, with the same atomics and
//! the same steps in the same order (each model function names the real
//! one it mirrors; `rx`'s word, [`holder`] and [`next`] are the real
//! code's, bit for bit). What the model replaces:
//!
//! * the kernel: the socket's queues of requests and replies and each
//!   thread's eventfd count, under one loom `Mutex` (each operation on
//!   them is atomic, as under the kernel's locks), and a `Condvar` per
//!   thread for its `ppoll` (one on the socket and its eventfd, or on its
//!   eventfd alone); `send` never answers `EAGAIN` (the queue is
//!   unbounded);
//! * the device: a thread answering the requests in the order they were
//!   sent (or, for one check, in a given order of vCPUs);
//! * a signal: a flag per thread. A wait with nothing ready answers
//!   `EINTR` while it is set (a signal handled in `ppoll`), and
//!   `immediate_exit` reads it (a handler that set `kvm_run.immediate_exit`);
//! * time: a wait on the eventfd times out (`ORPHAN_CHECK_NS`) only a given
//!   number of times, and only when the socket has something to read (a
//!   check with nothing to read does nothing but forget the word it saw,
//!   which only delays a take-over). In a "timed" world, it also waits
//!   until every live holder of the role (one in `receive`, not left by
//!   `longjmp`) has changed `rx` since the check that saw the word: what a
//!   holder that is run in time does within `ORPHAN_CHECK_NS` of the socket
//!   having something to read. An untimed world drops that assumption (a
//!   holder that is not run for as long as the scheduler likes);
//! * `THREADS[..high_water()]`: the model's vCPU threads; a slot's `tid`
//!   never changes while it is bound, so it is a constant;
//! * the memory-map gate's `generation()` never moves (no `continue` on it);
//! * `core::hint::spin_loop()` is `loom::thread::yield_now()`;
//! * an eventfd is never closed: `detach` closing it while another thread
//!   is about to write to it is not modelled (docs/reliability.md, "What
//!   is left").
//!
//! Every atomic of the real code is `SeqCst`, but loom treats `SeqCst`
//! loads and stores as acquire/release only; so each operation of the model
//! is wrapped in `fence(SeqCst)` on both sides ([`sc`]), which loom does
//! model, to give the model the real code's single total order. And a
//! store is a swap: loom orders a store only partly against a concurrent
//! read-modify-write of the same atomic, and can then let a later
//! compare-and-swap read a value that coherence forbids (a thread's CAS of
//! its `wait_id` missing its own newer store); in a single total order a
//! store takes effect where it is made, as a swap does.
//!
//! The model keeps ghost state (plain `std` types, outside loom's view:
//! loom runs one thread at a time, and switches only at its own
//! operations, so a ghost update next to an operation is atomic with it)
//! to check the properties: who believes it holds the receive role, how
//! many times each reply was handed over, and the changes of `rx` that
//! each thread made.
//!
//! Each test is exhaustive up to a preemption bound (loom's bounded DPOR;
//! switches where a thread blocks are free), chosen so that the whole run
//! takes under a minute; `LOOM_MAX_PREEMPTIONS` overrides it.
//!
//! Three tests were findings, properties the code did not have, fixed
//! since (docs/reliability.md section 3):
//!
//! * the orphan check freed a receive role that its holder had given up
//!   and taken again, as `rx` held the tid alone (ABA): two receivers, and
//!   one could wait on the socket for ever while the other handed its
//!   reply to its eventfd (`orphan_check_never_frees_a_held_role`,
//!   `orphan_check_never_strands_a_receiver`). Now `rx` is the tid and a
//!   generation that every change moves on, and a receiver waits on its
//!   eventfd too;
//! * a role left by `longjmp` out of the socket wait was never freed while
//!   its holder stayed bound: the check asked whether the holder's `sock`
//!   was still the socket, and nothing reset it
//!   (`receive_role_left_by_longjmp_is_taken_over`). Now a holder changes
//!   `rx` at each turn of its receive loop, and a waiter frees a role whose
//!   word did not change between two of its checks while the socket had
//!   something to read at both.
//!
//! `taking_over_a_live_receiver_is_safe` checks what makes that safe on a
//! loaded machine: a holder that was alive but not run is taken over, and
//! nothing is lost. `a_thread_left_by_longjmp_runs_again` checks the next
//! access of a thread that stays bound after the `longjmp`: it gives up
//! the request left in its slot first (`forget_left_request`), or a late
//! hand-over of that request's reply could overwrite its next result.
//!
//! Two more were an outside review's findings, fixed since:
//!
//! * `detach` (a thread that rebinds, unbinds or exits after the
//!   `longjmp`) forgot the left request with plain stores, so a hand-over
//!   of its reply under way wrote into the slot's next request
//!   (`rebinding_after_longjmp_waits_for_a_hand_over`; a hold of that
//!   hand-over, `World::hold_left`, makes the window wide). Now it gives
//!   the request up as `forget_left_request` does;
//! * a signal handler calling `kvmng_run` inside a wait gives the outer
//!   request up, and the outer `abandon` then waited for ever for its
//!   `done_id` (`a_round_trip_from_a_handler_in_a_wait_never_hangs`, the
//!   handler being `ThreadBinding::reenter`). Now `abandon` returns once
//!   the request is no longer the slot's.
//!
//! Run with `make loom`, i.e.
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test
//! --release -p kvmng --test loom_handover`.
#![cfg(loom)]

use loom::sync::atomic::{self as la, fence};
use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
use loom::thread;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering::{self, SeqCst};

const EINTR: i32 = libc::EINTR;
const EPIPE: i32 = libc::EPIPE;
const EBADMSG: i32 = libc::EBADMSG;
const EAGAIN: i32 = libc::EAGAIN;
/// Not an errno: the model's mark for a thread that left by `longjmp`.
const LONGJMP: i32 = -1;
const POLLIN: i16 = libc::POLLIN;

/// ioregion/mod.rs `DELIVERING`.
const DELIVERING: u64 = 1 << 63;
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
            /// A swap: see the file's doc.
            fn store(&self, v: $t, o: Ordering) {
                sc(|| {
                    self.0.swap(v, o);
                })
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
            /// One operation `op` on the atomic, fenced, and the ghost
            /// updates `op` makes next to it (atomic with it).
            fn with<R>(&self, op: impl FnOnce(&la::$loom) -> R) -> R {
                sc(|| op(&self.0))
            }
        }
    };
}

sc_atomic!(AtomicU64, AtomicU64, u64);
sc_atomic!(AtomicI32, AtomicI32, i32);
sc_atomic!(AtomicU32, AtomicU32, u32);

/// The kernel's objects: the socket (requests not yet read by the device,
/// replies not yet read by a vCPU, whether the device closed its end) and
/// the count of each vCPU thread's eventfd.
struct KernelState {
    requests: VecDeque<u64>,
    replies: VecDeque<(u64, u64)>,
    closed: bool,
    efd: Vec<u64>,
    /// The socket's wait queue: the vCPU threads waiting in `wait_socket`,
    /// or in a `wait_eventfd` that may time out when the socket becomes
    /// readable (as a bit mask of their indices).
    sock_waiters: u32,
}

impl KernelState {
    /// What `poll` reports for `POLLIN` on the vCPUs' end of the socket.
    fn readable(&self) -> bool {
        !self.replies.is_empty() || self.closed
    }
}

/// The kernel: its objects under one lock, a wait queue per vCPU thread
/// (its `ppoll`) and one for the device.
struct Kernel {
    state: Mutex<KernelState>,
    vcpu: Vec<Condvar>,
    device: Condvar,
}

/// table.rs `Socket` (`refs` and `fd` play no part in the hand-over).
struct Socket {
    rx: AtomicU64,
    dead: AtomicU32,
    first_id: AtomicU64,
    last_id: AtomicU64,
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

/// vcpu.rs `VcpuIo` (the hand-over's fields; the eventfd is the kernel's
/// count of this thread).
struct VcpuIo {
    sock: AtomicI32,
    wait_id: AtomicU64,
    done_id: AtomicU64,
    data: AtomicU64,
    err: AtomicI32,
    is_write: AtomicU32,
}

/// binding.rs `ThreadBinding`: a slot of `THREADS`.
struct ThreadBinding {
    /// The bound thread's tid (constant while it is bound).
    tid: u32,
    io: VcpuIo,
    /// Model only: a signal for the thread (see the file's doc).
    signal: AtomicU32,
    /// Model only: the thread leaves by `longjmp` out of the signal
    /// handler of its next socket wait with nothing ready, as the receive
    /// role's holder (once).
    longjmp: std::sync::atomic::AtomicBool,
    /// Model only: how many more times a wait on the eventfd may time out
    /// (`ORPHAN_CHECK_NS`; see the file's doc for when it may).
    timeouts: std::sync::atomic::AtomicUsize,
    /// Model only: a signal handler runs in the thread's next wait with
    /// nothing ready, calls `kvmng_run` on the same thread (one round
    /// trip) and returns: the wait ends with `EINTR` (once).
    reenter: std::sync::atomic::AtomicBool,
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
    /// The requests whose hand-over their waiter waited for (`abandon`).
    awaited: BTreeSet<u64>,
    /// The threads that left a wait by `longjmp`.
    left: BTreeSet<usize>,
    /// The threads that believe they hold the receive role: in `receive`,
    /// not (yet) told by `keep_role` that they were taken over, not left
    /// by `longjmp`.
    receivers: BTreeSet<usize>,
    /// How many times each thread took the receive role.
    takes: HashMap<usize, usize>,
    /// How many round trips each thread completed.
    done: HashMap<usize, usize>,
    /// How many times each thread changed `rx` as a holder (took it, turned
    /// its receive loop, gave it up).
    moves: Vec<usize>,
    /// While a thread's orphan check keeps a word (`seen` non-zero): the
    /// `moves` of every thread when it read that word.
    seen_at: Vec<Option<Vec<usize>>>,
}

/// Model only: the points of `release_orphaned_receiver` where a test may
/// hold the thread (as a preemption may, for any time).
#[derive(Clone, Copy, Debug)]
enum Pause {
    /// `rx` was read (held).
    HolderRead,
    /// The word was found the one seen at the previous check, the socket
    /// readable: before the CAS that frees it.
    Unchanged,
}

struct World {
    /// table.rs `NEXT_ID`.
    next_id: AtomicU64,
    sock: Socket,
    kernel: Kernel,
    threads: Vec<ThreadBinding>,
    /// Model only: at each [`Pause`], the thread goes on once this is true.
    pause: Option<fn(&Ghost, Pause) -> bool>,
    /// Ghost: a second holder of the receive role fails the check at once
    /// (else it is let go on, to see what follows).
    one_receiver: bool,
    /// Model only: holders are run in time (see the file's doc).
    timed: bool,
    /// Model only: some thread's waits may time out.
    checks: bool,
    /// Model only: another receiver that has CASed the `wait_id` of
    /// request 1 after its thread left by `longjmp` is held there (a
    /// preemption) until
    /// thread 0 has had a later reply handed over, or waits for this
    /// hand-over to end.
    hold_left: bool,
    ghost: std::sync::Mutex<Ghost>,
}

impl World {
    /// `vcpus` bound threads whose waits on their eventfd may time out
    /// `orphan_checks` times; holders run in time.
    fn new(vcpus: usize, orphan_checks: usize) -> World {
        World {
            next_id: AtomicU64::new(1),
            sock: Socket {
                rx: AtomicU64::new(0),
                dead: AtomicU32::new(0),
                first_id: AtomicU64::new(u64::MAX),
                last_id: AtomicU64::new(0),
            },
            kernel: Kernel {
                state: Mutex::new(KernelState {
                    requests: VecDeque::new(),
                    replies: VecDeque::new(),
                    closed: false,
                    efd: vec![0; vcpus],
                    sock_waiters: 0,
                }),
                vcpu: (0..vcpus).map(|_| Condvar::new()).collect(),
                device: Condvar::new(),
            },
            threads: (0..vcpus)
                .map(|i| ThreadBinding {
                    tid: 100 + i as u32,
                    io: VcpuIo {
                        sock: AtomicI32::new(-1),
                        wait_id: AtomicU64::new(0),
                        done_id: AtomicU64::new(0),
                        data: AtomicU64::new(0),
                        err: AtomicI32::new(0),
                        is_write: AtomicU32::new(0),
                    },
                    signal: AtomicU32::new(0),
                    longjmp: false.into(),
                    timeouts: std::sync::atomic::AtomicUsize::new(orphan_checks),
                    reenter: false.into(),
                })
                .collect(),
            pause: None,
            one_receiver: true,
            timed: true,
            checks: orphan_checks > 0,
            hold_left: false,
            ghost: std::sync::Mutex::new(Ghost {
                moves: vec![0; vcpus],
                seen_at: vec![None; vcpus],
                ..Ghost::default()
            }),
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

    fn kernel(&self) -> MutexGuard<'_, KernelState> {
        self.kernel.state.lock().unwrap()
    }

    /// Wakes the `ppoll` of every vCPU thread on the socket's wait queue
    /// (`k` is the kernel's state, locked).
    fn notify_sock_waiters(&self, k: &KernelState) {
        for (i, q) in self.kernel.vcpu.iter().enumerate() {
            if k.sock_waiters & 1 << i != 0 {
                q.notify_all();
            }
        }
    }
}

/// The device's reply to request `id`.
fn reply_data(id: u64) -> u64 {
    1000 + id
}

// ---- The kernel: the socket, eventfds, signals ----

/// `sys::send` of a request (`MSG_DONTWAIT`): never full in the model.
fn send(w: &World, id: u64) {
    let mut k = w.kernel();
    k.requests.push_back(id);
    w.kernel.device.notify_all();
}

/// `sys::recv` of a reply (`MSG_DONTWAIT`): `Ok(None)` is end of file.
fn recv(w: &World) -> Result<Option<(u64, u64)>, i32> {
    let mut k = w.kernel();
    match k.replies.pop_front() {
        Some(reply) => Ok(Some(reply)),
        None if k.closed => Ok(None),
        None => Err(EAGAIN),
    }
}

/// receive.rs `readable`: `poll` of the socket with a timeout of 0.
fn readable(w: &World) -> bool {
    w.kernel().readable()
}

fn signalled(t: &ThreadBinding) -> bool {
    t.signal.load(SeqCst) != 0
}

/// wait.rs `wait_or_woken` on the socket (`POLLIN`) and the thread's
/// eventfd, no timeout, as `receive` does: `Ok((revents, woken))`. Like
/// `ppoll`, a ready fd wins over a signal.
fn wait_socket(w: &World, me: usize) -> Result<(i16, bool), i32> {
    let t = &w.threads[me];
    let mut k = w.kernel();
    loop {
        let sock = k.readable();
        let woken = k.efd[me] > 0;
        if sock || woken {
            return Ok((if sock { POLLIN } else { 0 }, woken));
        }
        if t.longjmp.swap(false, SeqCst) {
            return Err(LONGJMP);
        }
        if t.reenter.swap(false, SeqCst) {
            drop(k);
            return reenter(w, me);
        }
        if signalled(t) {
            return Err(EINTR);
        }
        k.sock_waiters |= 1 << me;
        k = w.kernel.vcpu[me].wait(k).unwrap();
        k.sock_waiters &= !(1 << me);
    }
}

/// Model only: may thread `me`'s wait on its eventfd time out now (see the
/// file's doc)?
fn may_time_out(w: &World, me: usize, k: &KernelState) -> bool {
    if w.threads[me].timeouts.load(SeqCst) == 0 || !k.readable() {
        return false;
    }
    if !w.timed {
        return true;
    }
    let g = w.ghost();
    match &g.seen_at[me] {
        None => true,
        Some(at) => g.receivers.iter().all(|&h| g.moves[h] > at[h]),
    }
}

/// wait.rs `wait` on the thread's eventfd (`POLLIN`, `ORPHAN_CHECK_NS`),
/// as `wait_reply` does: `Ok(0)` when it timed out.
fn wait_eventfd(w: &World, me: usize) -> Result<i16, i32> {
    let t = &w.threads[me];
    let mut k = w.kernel();
    loop {
        if k.efd[me] > 0 {
            return Ok(POLLIN);
        }
        if t.reenter.swap(false, SeqCst) {
            drop(k);
            return reenter(w, me);
        }
        if signalled(t) {
            return Err(EINTR);
        }
        if may_time_out(w, me, &k) {
            t.timeouts.fetch_sub(1, SeqCst);
            return Ok(0);
        }
        let watch = t.timeouts.load(SeqCst) > 0;
        if watch {
            k.sock_waiters |= 1 << me;
        }
        k = w.kernel.vcpu[me].wait(k).unwrap();
        k.sock_waiters &= !(1 << me);
    }
}

/// receive.rs `wake`: `eventfd_write(efd, 1)` to thread `t`'s eventfd.
fn wake(w: &World, t: usize) {
    w.kernel().efd[t] += 1;
    w.kernel.vcpu[t].notify_all();
}

/// wait.rs `drain`: `eventfd_read` of thread `me`'s eventfd.
fn drain(w: &World, me: usize) {
    w.kernel().efd[me] = 0;
}

/// Model only: the handler of [`ThreadBinding::reenter`], in a wait of
/// thread `me` with nothing ready: a round trip that gets its own reply,
/// then the wait ends with `EINTR`.
fn reenter<T>(w: &World, me: usize) -> Result<T, i32> {
    let (id, r) = exchange(w, me);
    assert_own_reply(w, id, r);
    Err(EINTR)
}

/// A signal for thread `t`: it ends the thread's waits.
fn raise(w: &World, t: usize) {
    w.threads[t].signal.store(1, SeqCst);
    let k = w.kernel();
    w.kernel.vcpu[t].notify_all();
    drop(k);
}

/// The device closes its end of the socket.
fn hang_up(w: &World) {
    let mut k = w.kernel();
    k.closed = true;
    w.notify_sock_waiters(&k);
}

/// Model only, in a timed world with orphan checks: a waiter's timeout may
/// wait for a change of `rx` by a holder (or for a holder to leave); let
/// it look again.
fn moved(w: &World) {
    if w.timed && w.checks {
        let k = w.kernel();
        w.notify_sock_waiters(&k);
    }
}

/// The device: answers `n` requests, in the order they were sent.
fn device(w: &World, n: usize) {
    for _ in 0..n {
        let mut k = w.kernel();
        while k.requests.is_empty() {
            k = w.kernel.device.wait(k).unwrap();
        }
        let id = k.requests.pop_front().unwrap();
        k.replies.push_back((id, reply_data(id)));
        w.notify_sock_waiters(&k);
    }
}

/// The device: answers a request of each vCPU thread of `order` in turn
/// (a request carries its `vcpu_id`; a device may answer in any order).
fn device_by_vcpu(w: &World, order: &[usize]) {
    for &vcpu in order {
        let mut k = w.kernel();
        let index = loop {
            let g = w.ghost();
            if let Some(i) = k.requests.iter().position(|id| g.owner[id] == vcpu) {
                break i;
            }
            drop(g);
            k = w.kernel.device.wait(k).unwrap();
        };
        let id = k.requests.remove(index).unwrap();
        k.replies.push_back((id, reply_data(id)));
        w.notify_sock_waiters(&k);
    }
}

// ---- vcpu.rs ----

/// vcpu.rs `detach`, the hand-over's part, not in a fork child (binding.rs
/// `release` on thread exit or unbinding, `set_current` when a bound
/// thread binds another vCPU).
fn detach(w: &World, io: &VcpuIo) {
    forget_left_request(w, io);
    io.sock.store(-1, SeqCst);
    io.wait_id.store(0, SeqCst);
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
    forget_left_request(w, io);
    io.is_write.store(0, SeqCst);
    io.sock.store(SOCK, SeqCst);
    io.wait_id.store(id, SeqCst);
    s.note_sent(id);
    send(w, id);
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
fn abandon(w: &World, io: &VcpuIo, id: u64, e: i32) -> Result<u64, i32> {
    if io.wait_id.compare_exchange(id, 0, SeqCst, SeqCst).is_ok() {
        io.sock.store(-1, SeqCst);
        return Err(e);
    }
    while io.wait_id.load(SeqCst) == id | DELIVERING {
        if io.done_id.load(SeqCst) == id {
            return take_result(io);
        }
        w.ghost().awaited.insert(id);
        thread::yield_now();
    }
    Err(e)
}

/// exchange.rs `forget_left_request`.
fn forget_left_request(w: &World, io: &VcpuIo) {
    let left = io.wait_id.load(SeqCst) & !DELIVERING;
    if left != 0 {
        let _ = abandon(w, io, left, EINTR);
    }
}

/// access.rs `immediate_exit`.
fn immediate_exit(t: &ThreadBinding) -> bool {
    signalled(t)
}

/// exchange.rs `wait_reply`.
fn wait_reply(w: &World, me: usize, id: u64) -> Result<u64, i32> {
    let t = &w.threads[me];
    let io = &t.io;
    let s = &w.sock;
    let tid = t.tid;
    let mut seen = 0;
    loop {
        if io.done_id.load(SeqCst) == id {
            return take_result(io);
        }
        if io.wait_id.load(SeqCst) & !DELIVERING != id {
            return abandon(w, io, id, EINTR);
        }
        if s.dead.load(SeqCst) != 0 {
            return abandon(w, io, id, EPIPE);
        }
        if immediate_exit(t) {
            return abandon(w, io, id, EINTR);
        }
        if let Some(mut mine) = take_role(w, me, tid) {
            let end = receive(w, me, id, &mut mine);
            if end == Err(RxEnd::LongJmp) {
                // Every frame is left as it is: rx, sock, wait_id.
                left_by_longjmp(w, me);
                return Err(LONGJMP);
            }
            if give_up_role(w, me, mine) {
                wake_waiters(w, me);
            }
            match end {
                Ok(()) | Err(RxEnd::TakenOver) => continue,
                Err(RxEnd::Interrupted) => return abandon(w, io, id, EINTR),
                Err(RxEnd::Failed(e)) => return abandon(w, io, id, e),
                Err(RxEnd::LongJmp) => unreachable!(),
            }
        }
        match wait_eventfd(w, me) {
            Ok(0) => release_orphaned_receiver(w, me, &mut seen),
            Ok(_) => drain(w, me),
            Err(e) => return abandon(w, io, id, e),
        }
    }
}

// ---- receive.rs ----

/// receive.rs `RxEnd`.
#[derive(Debug, PartialEq)]
enum RxEnd {
    Interrupted,
    TakenOver,
    Failed(i32),
    /// Model only: left by `longjmp`.
    LongJmp,
}

/// receive.rs `holder`.
fn holder(word: u64) -> u32 {
    word as u32
}

/// receive.rs `next`.
fn next(word: u64, tid: u32) -> u64 {
    ((word >> 32).wrapping_add(1) << 32) | u64::from(tid)
}

/// Ghost: thread `me` took the receive role (with the CAS).
fn took_role(w: &World, me: usize) {
    let mut g = w.ghost();
    assert!(
        g.receivers.is_empty() || !w.one_receiver,
        "thread {me} took the receive role while thread {:?} holds it",
        g.receivers
    );
    g.receivers.insert(me);
    *g.takes.entry(me).or_default() += 1;
    g.moves[me] += 1;
}

/// Ghost: thread `me` no longer believes it holds the receive role.
fn leaves_role(w: &World, me: usize) {
    w.ghost().receivers.remove(&me);
}

/// Ghost: thread `me`, holding the receive role, left by `longjmp`.
fn left_by_longjmp(w: &World, me: usize) {
    leaves_role(w, me);
    w.ghost().left.insert(me);
    moved(w);
}

/// receive.rs `take_role` (for thread `me`, of tid `tid`).
fn take_role(w: &World, me: usize, tid: u32) -> Option<u64> {
    let s = &w.sock;
    let word = s.rx.load(SeqCst);
    if holder(word) != 0 {
        return None;
    }
    let mine = next(word, tid);
    let taken = s.rx.with(|rx| {
        let taken = rx.compare_exchange(word, mine, SeqCst, SeqCst).is_ok();
        if taken {
            took_role(w, me);
        }
        taken
    });
    if !taken {
        return None;
    }
    moved(w);
    Some(mine)
}

/// receive.rs `keep_role` (thread `me`).
fn keep_role(w: &World, me: usize, mine: &mut u64) -> bool {
    let s = &w.sock;
    let word = next(*mine, holder(*mine));
    let kept = s.rx.with(|rx| {
        let kept = rx.compare_exchange(*mine, word, SeqCst, SeqCst).is_ok();
        if kept {
            w.ghost().moves[me] += 1;
        } else {
            leaves_role(w, me);
        }
        kept
    });
    moved(w);
    if kept {
        *mine = word;
    }
    kept
}

/// receive.rs `give_up_role` (thread `me`).
fn give_up_role(w: &World, me: usize, mine: u64) -> bool {
    let s = &w.sock;
    let given = s.rx.with(|rx| {
        let given = rx
            .compare_exchange(mine, next(mine, 0), SeqCst, SeqCst)
            .is_ok();
        leaves_role(w, me);
        if given {
            w.ghost().moves[me] += 1;
        }
        given
    });
    moved(w);
    given
}

/// receive.rs `release_orphaned_receiver` (thread `me`'s check).
fn release_orphaned_receiver(w: &World, me: usize, seen: &mut u64) {
    let s = &w.sock;
    let (word, moves) = s.rx.with(|rx| (rx.load(SeqCst), w.ghost().moves.clone()));
    if holder(word) != 0 {
        w.pause(Pause::HolderRead);
    }
    if holder(word) == 0 || !readable(w) {
        *seen = 0;
        w.ghost().seen_at[me] = None;
        return;
    }
    if word != *seen {
        *seen = word;
        w.ghost().seen_at[me] = Some(moves);
        return;
    }
    *seen = 0;
    w.ghost().seen_at[me] = None;
    w.pause(Pause::Unchanged);
    if s.rx
        .compare_exchange(word, next(word, 0), SeqCst, SeqCst)
        .is_ok()
    {
        wake_waiters(w, me);
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
            wake(w, i);
        }
    }
}

/// receive.rs `receive` (`hung_up` is the model's end of file).
fn receive(w: &World, me: usize, id: u64, rx: &mut u64) -> Result<(), RxEnd> {
    let io = &w.threads[me].io;
    let s = &w.sock;
    loop {
        if io.done_id.load(SeqCst) == id {
            return Ok(());
        }
        if !keep_role(w, me, rx) {
            return Err(RxEnd::TakenOver);
        }
        match recv(w) {
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
                Ok((_, woken)) => {
                    if woken {
                        drain(w, me);
                    }
                }
            },
        }
    }
}

/// receive.rs `deliver`.
fn deliver(w: &World, id: u64, data: u64, me: usize) -> Result<(), i32> {
    if id == 0 || id & DELIVERING != 0 {
        return Err(EBADMSG);
    }
    for (i, t) in w.threads.iter().enumerate() {
        let io = &t.io;
        if io.sock.load(SeqCst) != SOCK {
            continue;
        }
        if io
            .wait_id
            .compare_exchange(id, id | DELIVERING, SeqCst, SeqCst)
            .is_ok()
        {
            {
                let mut g = w.ghost();
                assert_eq!(g.owner[&id], i, "reply {id} handed to thread {i}");
                let n = g.handed.entry(id).or_default();
                *n += 1;
                assert_eq!(*n, 1, "reply {id} handed over twice");
            }
            if w.hold_left && id == 1 && i != me && w.ghost().left.contains(&i) {
                while !{
                    let g = w.ghost();
                    g.awaited.contains(&1) || g.handed.keys().any(|k| *k != 1 && g.owner[k] == 0)
                } {
                    thread::yield_now();
                }
            }
            let malformed = io.is_write.load(SeqCst) != 0 && data != 0;
            io.data.store(data, SeqCst);
            io.err.store(if malformed { EBADMSG } else { 0 }, SeqCst);
            io.done_id.store(id, SeqCst);
            if i != me {
                wake(w, i);
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
    // The spin of `abandon` and the pauses of the orphan checks.
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
        assert!(w.ghost().receivers.is_empty());
        assert_eq!(holder(w.sock.rx.load(SeqCst)), 0);
    });
}

// ---- The orphan check (the findings, fixed) ----

/// The schedule of the ABA finding: thread 1 times out and reads `rx`
/// (thread 0, receiving for its first request); thread 0 gets its reply,
/// gives the role up and finishes; thread 0 sends its second request and
/// takes the role again (the same tid); thread 1's check finds the word it
/// saw and frees it. With `rx` the tid alone, the check freed thread 0's
/// new holding and thread 1 took the role too; with the generation the
/// word is not the one it saw, and the role is never held by two threads.
///
/// Loom's bounded search does not reach this schedule by itself (it needs
/// a thread preempted twice inside `release_orphaned_receiver`), so the
/// test holds thread 1 at the two [`Pause`] points until thread 0 is where
/// the schedule needs it; every other step is free. Holders are run in
/// time (the world is timed): a live holder is never taken over.
#[test]
fn orphan_check_never_frees_a_held_role() {
    check(2, || orphan_check_after_a_new_take(true));
}

/// What followed the schedule of [`orphan_check_never_frees_a_held_role`]:
/// thread 1, receiving, handed thread 0's second reply to thread 0's
/// eventfd, but thread 0, receiving too, waited on the socket alone (no
/// timeout), not on its eventfd; the device had nothing more to send, so
/// thread 0 waited for ever (a loom deadlock). Every thread must get its
/// reply.
#[test]
fn orphan_check_never_strands_a_receiver() {
    check(2, || orphan_check_after_a_new_take(false));
}

/// Thread 0 (the model's main thread: loom switches least readily to the
/// device, spawned last) makes two round trips, thread 1 one, whose waits
/// may time out twice (thread 0's never do); thread 1 is held in `release_orphaned_receiver`
/// until thread 0 has finished its first round trip (after reading `rx`)
/// and has taken the role for its second (before the CAS).
fn orphan_check_after_a_new_take(one_receiver: bool) {
    let mut w = World::new(2, 2);
    w.pause = Some(|g, at| match at {
        Pause::HolderRead => g.done.get(&0).is_some_and(|n| *n >= 1),
        Pause::Unchanged => g.takes.get(&0).is_some_and(|n| *n >= 2),
    });
    w.one_receiver = one_receiver;
    // Thread 0's waits do not time out: only thread 1 checks.
    w.threads[0].timeouts = 0.into();
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
/// handler in its socket wait, staying bound (its `io.sock` is still the
/// socket: nothing resets it after a `longjmp`); thread 1 then waits,
/// timing out: api.md 6 says that it takes the role over within 50 ms (two
/// checks that find the same word, the socket readable), and it gets its
/// reply (the finding: the check took thread 0 for a waiting holder, and
/// thread 1 waited for ever, a loom deadlock once its timeouts were spent).
#[test]
fn receive_role_left_by_longjmp_is_taken_over() {
    check(3, || {
        let w = World::new(2, 2);
        w.threads[0].longjmp.store(true, SeqCst);
        let w = Arc::new(w);
        let (_, r) = vcpu(&w, 0, 1).join().unwrap()[0];
        assert_eq!(r, Err(LONGJMP));
        let u = vcpu(&w, 1, 1);
        device(&w, 2);
        for (id, r) in u.join().unwrap() {
            assert_own_reply(&w, id, r);
        }
        assert_eq!(w.ghost().takes.get(&1), Some(&1));
    });
}

/// As in [`receive_role_left_by_longjmp_is_taken_over`], thread 0 leaves
/// the receive role by `longjmp`, staying bound, its request (id 1) still
/// in its slot; then thread 1 waits and thread 0 makes its next access on
/// the socket, each taking the role over when its checks find it left.
/// Untimed, so a live receiver may be taken over too. Each gets its own
/// reply, handed over once; the reply to the request left behind is
/// handed to thread 0's slot if it still waits for it, else dropped as
/// stale. Before its next request thread 0 gives the left one up
/// (`forget_left_request`), so a hand-over of reply 1 that is under way
/// ends first; without that, thread 1 could write reply 1's `data` and
/// `done_id` over the result of thread 0's next request, handed over by
/// thread 0 meanwhile, and thread 0 waited for ever (a loom deadlock).
#[test]
fn a_thread_left_by_longjmp_runs_again() {
    check(2, || {
        let mut w = World::new(2, 2);
        w.timed = false;
        w.one_receiver = false;
        w.threads[0].longjmp.store(true, SeqCst);
        let w = Arc::new(w);
        let (left, r) = vcpu(&w, 0, 1).join().unwrap()[0];
        assert_eq!(r, Err(LONGJMP));
        let handles = [vcpu(&w, 1, 1), vcpu(&w, 0, 1)];
        device(&w, 3);
        for h in handles {
            for (id, r) in h.join().unwrap() {
                assert_own_reply(&w, id, r);
            }
        }
        let g = w.ghost();
        assert!(g.handed.contains_key(&left) != g.stale.contains(&left));
        assert!(g.receivers.is_empty());
    });
}

/// Untimed: a holder need not be run for as long as the scheduler likes,
/// so thread 1's checks may find the word unchanged and the socket
/// readable while thread 0, alive, holds the role, and take it over (what
/// a loaded machine can do to the real code). Two threads then receive
/// for a while: each still gets exactly its own reply, and none is left
/// waiting (thread 0 finds out at the next turn of its receive loop, or is
/// woken on its eventfd by the reply thread 1 hands it).
#[test]
fn taking_over_a_live_receiver_is_safe() {
    check(2, || {
        let mut w = World::new(2, 2);
        w.timed = false;
        w.one_receiver = false;
        let w = Arc::new(w);
        let handles: Vec<_> = (0..2).map(|i| vcpu(&w, i, 1)).collect();
        device(&w, 2);
        for h in handles {
            for (id, r) in h.join().unwrap() {
                assert_own_reply(&w, id, r);
            }
        }
        assert!(w.ghost().receivers.is_empty());
        assert_eq!(holder(w.sock.rx.load(SeqCst)), 0);
    });
}

// ---- Re-binding and re-entry (an outside review's findings) ----

/// As in [`a_thread_left_by_longjmp_runs_again`], but thread 0 re-binds
/// (or exits, and a new thread takes its slot: binding.rs `release`)
/// between the `longjmp` and its next access, so the slot is detached
/// (`detach`) with request 1 left in it. Each gets its own reply.
#[test]
fn a_thread_left_by_longjmp_and_rebound_gets_its_own_reply() {
    check(2, || {
        let mut w = World::new(2, 2);
        w.timed = false;
        w.one_receiver = false;
        w.threads[0].longjmp.store(true, SeqCst);
        let w = Arc::new(w);
        let (_, r) = vcpu(&w, 0, 1).join().unwrap()[0];
        assert_eq!(r, Err(LONGJMP));
        detach(&w, &w.threads[0].io);
        let handles = [vcpu(&w, 1, 1), vcpu(&w, 0, 1)];
        device(&w, 3);
        for h in handles {
            for (id, r) in h.join().unwrap() {
                assert_own_reply(&w, id, r);
            }
        }
    });
}

/// Thread 0 leaves by `longjmp` holding the role (request 1 out), then
/// re-binds (`detach`) and makes its next access on the same thread,
/// while thread 1 takes the left role over and hands reply 1 to slot 0;
/// that hand-over is held after its CAS (a preemption) until thread 0 has
/// had a later reply handed over or waits for it to end. `detach` must
/// wait for a hand-over under way, as `forget_left_request` does: else
/// reply 1's `data` overwrites request 3's result.
#[test]
fn rebinding_after_longjmp_waits_for_a_hand_over() {
    check(2, || {
        let mut w = World::new(2, 2);
        w.timed = false;
        w.one_receiver = false;
        w.hold_left = true;
        w.threads[0].longjmp.store(true, SeqCst);
        let w = Arc::new(w);
        let a = {
            let w = w.clone();
            thread::spawn(move || {
                let (left, r) = exchange(&w, 0);
                if w.threads[0].longjmp.swap(false, SeqCst) {
                    // Its reply came with no wait: no longjmp.
                    assert_own_reply(&w, left, r);
                } else {
                    assert_eq!(r, Err(LONGJMP));
                }
                detach(&w, &w.threads[0].io);
                // Its next waits may time out again (the first request's
                // may have spent its checks taking thread 1's role over).
                w.threads[0].timeouts.store(2, SeqCst);
                exchange(&w, 0)
            })
        };
        let b = vcpu(&w, 1, 1);
        device(&w, 3);
        let (id, r) = a.join().unwrap();
        assert_own_reply(&w, id, r);
        for (id, r) in b.join().unwrap() {
            assert_own_reply(&w, id, r);
        }
    });
}

/// A signal handler runs in thread 0's first wait (with nothing ready),
/// calls `kvmng_run` on the same thread (one round trip, which gives up
/// the request left in the slot, `forget_left_request`, and gets its own
/// reply) and returns; the outer wait then ends with `EINTR`, and its
/// `abandon` must return (the request is no longer the slot's), not wait
/// for a `done_id` that will never come. (If the outer request's reply
/// comes without a wait, the handler runs after it, on its own.)
#[test]
fn a_round_trip_from_a_handler_in_a_wait_never_hangs() {
    check(3, || {
        let mut w = World::new(1, 2);
        w.timed = false;
        w.one_receiver = false;
        w.threads[0].reenter.store(true, SeqCst);
        let w = Arc::new(w);
        let d = {
            let w = w.clone();
            thread::spawn(move || device(&w, 2))
        };
        let (first, r) = exchange(&w, 0);
        if w.threads[0].reenter.swap(false, SeqCst) {
            // Its reply came with no wait: the handler runs after it.
            assert_own_reply(&w, first, r);
            let (id, r) = exchange(&w, 0);
            assert_own_reply(&w, id, r);
        } else {
            assert_eq!(r, Err(EINTR));
            assert_eq!(w.ghost().handed.get(&first), None, "abandoned {first}");
        }
        d.join().unwrap();
    });
}
