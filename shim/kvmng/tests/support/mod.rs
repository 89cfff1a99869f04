//! Shared by the kvm_* test binaries: opening kvmng or skipping loudly, and
//! serializing tests (one bound VM per process, so tests that bind must not
//! overlap when the harness runs them as threads of one process).

#![allow(dead_code)]

use kvmng::Kvmng;
use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the process-wide test lock and the opened library.
pub struct Env {
    pub kvm: Kvmng,
    _serial: MutexGuard<'static, ()>,
}

/// Opens /dev/kvm with the backend `KVMNG_BACKEND` and the kernel call for,
/// or prints `SKIPPED: ...` to stderr and returns None when /dev/kvm is not
/// usable. (`make test` filters the kvm_* binaries out in that case, so
/// nextest counts them as skipped.)
pub fn env(test: &str) -> Option<Env> {
    let serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match Kvmng::open() {
        Ok(kvm) => Some(Env {
            kvm,
            _serial: serial,
        }),
        Err(kvmng::OpenError::Device(e)) => {
            eprintln!("SKIPPED: {test}: /dev/kvm not available: {e}");
            None
        }
        Err(e) => panic!("{test}: cannot choose a backend: {e}"),
    }
}

/// The errno of a failed result, for assertions.
pub fn errno<T: std::fmt::Debug>(r: Result<T, kvmng::Errno>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.0,
    }
}
