//! `kvmng_ioregion` in the emulation (docs/api.md 5.10 and 6): guest MMIO
//! and port accesses to registered ranges are sent to a device over an
//! `AF_UNIX` `SOCK_SEQPACKET` socket by the run loop, which re-enters the
//! guest without returning to the caller of `kvmng_run`.
//!
//! # State
//!
//! * [`REGIONS`]: a fixed table of [`KVMNG_IOREGION_MAX`] regions. Writers
//!   (ADD, DEL, VM binding changes) are serialized by a spin lock; the run
//!   path reads an entry under its sequence counter, without a lock.
//! * [`SOCKETS`]: one entry per open socket (regions sharing a socket share
//!   the entry, found with `kcmp`), holding a private duplicate of the fd,
//!   a reference count (one per live region, one per vCPU using it right
//!   now), the receive role and the range of request ids sent on it.
//! * [`VcpuIo`], one per thread binding: the thread's mapping of its vCPU's
//!   `kvm_run`, the pending access, and the slot through which a reply is
//!   handed to it.
//!
//! # Demultiplexing
//!
//! Several vCPUs may wait on one socket at once. Whoever takes the
//! socket's receive role (a CAS) reads replies and hands each to the vCPU
//! whose request id it carries (a CAS on that vCPU's `wait_id`, then a
//! write to its eventfd); when it has its own reply it gives the role up
//! and wakes the other waiters so that one of them takes it over. A
//! holder that left without giving it up (a `longjmp` out of a signal
//! handler) is found out by the waiters' orphan checks, which free the
//! role for them (`receive.rs`). Every
//! wait is a `ppoll` that atomically restores the caller's signal mask
//! (signals are blocked between the last check and the wait), so a signal
//! always ends the wait: no uninterruptible sleep, no lost wake-up. A loom
//! model of this hand-over, step for step, is `tests/loom_handover.rs`
//! (`make loom`; docs/reliability.md section 3).
//!
//! Nothing here allocates; the run path takes no lock (ADD and DEL take
//! the registration spin lock).
//!
//! # Modules
//!
//! * `table.rs`: the region, socket and parked-vCPU tables;
//! * `vcpu.rs`: the state of each thread binding, set up and taken down
//!   with the binding;
//! * `register.rs`: ADD and DEL, and dropping every region (VM binding
//!   change, fork);
//! * `access.rs`: the run path: decoding an exit, finding its region,
//!   carrying the access out;
//! * `exchange.rs`: one request's round trip on a socket, as its sender;
//! * `receive.rs`: the receive role: reading replies and handing them over;
//! * `wait.rs`: waits that a signal always ends.
//!
//! [`REGIONS`]: table::REGIONS
//! [`SOCKETS`]: table::SOCKETS

mod access;
mod exchange;
mod receive;
mod register;
mod table;
mod vcpu;
mod wait;

pub use access::{claim_exit, resume, Resume};
pub use register::{after_fork_in_child, forget_regions, ioregion};
pub use vcpu::{detach, install, map_run, VcpuIo};

use kvmng_abi::KVMNG_IOREGION_MAX;

const MAX_REGIONS: usize = KVMNG_IOREGION_MAX as usize;
/// How much of a vCPU's mmap area the emulation maps: the `kvm_run` page
/// and the port I/O data page after it (`KVM_PIO_PAGE_OFFSET` = 1 on x86).
pub const RUN_MAP_LEN: usize = 2 * 4096;
/// Set in `wait_id`, over the request's id, while a receiver is handing
/// its reply over (ids never reach it: they count from 1).
const DELIVERING: u64 = 1 << 63;
