//! libkvmshim.so: the LD_PRELOAD library of kvmng.
//!
//! Two halves, each in its own module tree:
//! * [`interpose`]: legacy `ioctl()` programs on the new API. Interposes
//!   `ioctl` and what keeps the fd registry true (open, close, dup, fcntl,
//!   fork, exec) and carries each KVM ioctl out as the kvmng call of
//!   docs/api.md, through the kvmng library.
//! * [`trap`]: new-API programs on stock kernels. A seccomp filter traps
//!   only the kvmng syscall numbers; the SIGSYS handler carries them out
//!   through the library's legacy backend.
//!
//! [`config`] parses the environment (`KVMNG_SHIM`, `KVMNG_MODE`) for both;
//! [`init`] runs both set-ups from the library constructor. `raw` holds
//! the raw syscalls that only the shim makes: the crate's one module that
//! issues syscalls itself.

pub mod config;
pub mod init;
pub mod interpose;
mod raw;
pub mod trap;
