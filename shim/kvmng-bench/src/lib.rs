//! kvmng-bench: every measurement of the project in one crate.
//!
//! | module | job |
//! |---|---|
//! | [`bench`] | `kvmng bench`: the driver; interleaves the paths' workers per operation |
//! | [`worker`] | the worker process of one path (the kvmng binary re-executed) |
//! | [`fixture`] | what one operation needs on one path, on kvm-ioctls and the kvmng library; `sample()` times it |
//! | [`calls`] | how each path issues the timed call (raw ioctl, glibc `ioctl()`, a library backend) |
//! | [`state`] | the register-sync buffers and steps (QEMU's order, or one batched call) |
//! | [`ops`] | the table of operations and paths |
//! | [`clock`] | the timer (TSC or CLOCK_MONOTONIC) |
//! | [`stats`] | medians, quantiles, bootstrap intervals |
//! | [`dispatch`], [`delivery`] | the MMIO delivery harness (exit, ioeventfd, ioregion socket) and its analysis |
//! | [`ab`] | `kvmng ab`: a whole program alternately in two modes |
//! | [`icount`] | the in-guest instruction counts of `make vm-bench` |
//! | [`machine`] | what the run detected about this machine (which KVM, kernel, CPU, load) |
//! | [`report`] | the JSON result and its tables |
//! | [`doc`] | docs/bench.md from the JSON results |
//! | [`svg`] | the charts |
//! | [`summary`] | the short A/B table of `make demo`, from the committed JSON |
//! | [`locate`] | where libkvmshim.so is |
//! | [`workload`] | one real workload A/B end to end: what a command (QEMU booting a guest) cost |
//!
//! See README.md for the benchmarks that live elsewhere and why.

pub mod ab;
pub mod bench;
pub mod calls;
pub mod clock;
pub mod delivery;
pub mod dispatch;
pub mod doc;
pub mod fixture;
pub mod icount;
pub mod locate;
pub mod machine;
pub mod ops;
pub mod report;
pub mod state;
pub mod stats;
pub mod summary;
pub mod svg;
pub mod worker;
pub mod workload;
