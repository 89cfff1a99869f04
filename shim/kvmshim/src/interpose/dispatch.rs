//! A KVM ioctl (request type KVMIO) from classification to census: which
//! path it takes (translated, fallback, passthrough), its result, its
//! trace line and its counters.

use super::cabi::{c_ret, raw_ioctl};
use super::census::{self, Path};
use super::config;
use super::fdtable;
use super::trace;
use super::translate;
use super::{binding, thread_census};
use super::{clock, cmdindex};
use crate::config::Mode;
use core::ffi::c_int;
use core::sync::atomic::Ordering::Relaxed;

/// The general path of the `ioctl` hook (after [`super::hot`]'s table
/// declined); it offers the MSR requests to [`super::hot::try_msrs`] first.
///
/// # Safety
/// `arg` is the caller's ioctl argument.
#[inline(never)]
pub unsafe fn kvm_ioctl(fd: c_int, cmd: u64, arg: u64) -> c_int {
    // SAFETY: forwarded.
    if let Some(result) = unsafe { super::hot::try_msrs(fd, cmd, arg) } {
        return c_ret(result);
    }
    if !config::ready() || !config::enabled() {
        // SAFETY: the caller's own arguments, passed on.
        return c_ret(unsafe { raw_ioctl(fd, cmd, arg) });
    }
    let mode = config::mode();
    let observe = config::observe();
    let backend = config::backend();
    if !observe && (mode == Mode::Passthrough || backend.is_none()) {
        // SAFETY: as above.
        return c_ret(unsafe { raw_ioctl(fd, cmd, arg) });
    }
    let entry = fdtable::classify(fd);
    let row = translate::row_of(cmd, entry);
    let tracing = config::TRACE_FD.load(Relaxed) >= 0;
    let slot = row.unwrap_or_else(|| cmdindex::slot(cmd, entry.class()));
    let begun = observe.then(|| census::begin(slot, mode == Mode::Passthrough, tracing));
    let (result, path) = match backend {
        Some(backend) if mode != Mode::Passthrough => {
            // SAFETY: forwarded.
            match unsafe { translate::carry_out(fd, cmd, arg, entry, row, backend) } {
                Ok(result) => (result, Path::Translated),
                // SAFETY: as above.
                Err(reason) => (unsafe { raw_ioctl(fd, cmd, arg) }, Path::Fallback(reason)),
            }
        }
        // SAFETY: as above.
        _ => (unsafe { raw_ioctl(fd, cmd, arg) }, Path::Passthrough),
    };
    translate::note_new_fds(path == Path::Translated, cmd, arg, entry, &result);
    if let Some(begun) = begun {
        let ticks = census::end(begun, path, result.is_err());
        if entry.kind() == fdtable::Kind::Vcpu {
            let is_run = cmd == kvmng_abi::ioctls::KVM_RUN;
            thread_census::record(binding::tid(), entry.vcpu_id(), is_run, path);
        }
        if tracing {
            trace::write(&trace::Call {
                fd,
                cmd,
                slot,
                entry,
                result,
                path,
                ns: clock::to_ns(ticks.unwrap_or(0)),
            });
        }
    }
    c_ret(result)
}
