//! The program's own SIGSYS action, kept while our handler owns the
//! signal, and the chaining to it.
//!
//! The action is remembered when our handler goes in (whatever the program
//! or its libraries had installed before the shim loaded) and updated by
//! the `sigaction`/`signal` interposers of [`super::signals`] when the
//! program installs a SIGSYS handler later. The SIGSYS handler reads it
//! for every signal that is not one of our traps.
//!
//! Storage is a sequence lock over atomics: the handler reads without a
//! lock or allocation and retries if a writer was active. Writers block
//! every signal while they write, so a handler never interrupts a writer
//! on its own thread (which would make the reader spin forever).

use crate::raw;
use core::sync::atomic::{fence, AtomicI32, AtomicU64, AtomicUsize, Ordering};

/// glibc's `sigset_t` is 1024 bits.
const MASK_WORDS: usize = 16;
const _: () = assert!(core::mem::size_of::<libc::sigset_t>() == MASK_WORDS * 8);

struct Saved {
    /// Even: stable; odd: a writer is active.
    seq: AtomicU64,
    handler: AtomicUsize,
    flags: AtomicI32,
    mask: [AtomicU64; MASK_WORDS],
}

static SAVED: Saved = Saved {
    seq: AtomicU64::new(0),
    handler: AtomicUsize::new(libc::SIG_DFL),
    flags: AtomicI32::new(0),
    mask: [const { AtomicU64::new(0) }; MASK_WORDS],
};

fn mask_words(set: &libc::sigset_t) -> [u64; MASK_WORDS] {
    // SAFETY: sigset_t is 128 bytes of plain bits (checked above); any
    // alignment of a sigset_t is at least that of u64 on x86_64.
    unsafe { core::ptr::read((set as *const libc::sigset_t).cast::<[u64; MASK_WORDS]>()) }
}

/// The program's SIGSYS action as `struct sigaction`.
pub fn load() -> libc::sigaction {
    loop {
        let before = SAVED.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            core::hint::spin_loop();
            continue;
        }
        let handler = SAVED.handler.load(Ordering::Relaxed);
        let flags = SAVED.flags.load(Ordering::Relaxed);
        let mut words = [0u64; MASK_WORDS];
        for (w, a) in words.iter_mut().zip(SAVED.mask.iter()) {
            *w = a.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        if SAVED.seq.load(Ordering::Relaxed) != before {
            continue;
        }
        // SAFETY: all-zero is a valid sigaction (SIG_DFL, empty mask).
        let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        // SAFETY: writing 128 bytes of bits into the 128-byte sigset_t.
        unsafe {
            core::ptr::write(
                (&mut action.sa_mask as *mut libc::sigset_t).cast::<[u64; MASK_WORDS]>(),
                words,
            )
        };
        return action;
    }
}

/// Remembers `action` as the program's SIGSYS action. Callable from any
/// context, the SIGSYS handler included.
pub fn store(action: &libc::sigaction) {
    let words = mask_words(&action.sa_mask);
    let _blocked = raw::BlockAll::new();
    let mut seq = SAVED.seq.load(Ordering::Relaxed);
    loop {
        if seq & 1 == 0 {
            match SAVED.seq.compare_exchange_weak(
                seq,
                seq + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => seq = now,
            }
        } else {
            core::hint::spin_loop();
            seq = SAVED.seq.load(Ordering::Relaxed);
        }
    }
    fence(Ordering::Release);
    SAVED.handler.store(action.sa_sigaction, Ordering::Relaxed);
    SAVED.flags.store(action.sa_flags, Ordering::Relaxed);
    for (a, w) in SAVED.mask.iter().zip(words) {
        a.store(w, Ordering::Relaxed);
    }
    SAVED.seq.store(seq + 2, Ordering::Release);
}

/// Hands a SIGSYS that is not one of our traps to the program's action,
/// as the kernel would have: its handler (with its mask and flags), the
/// default action (the process dies with SIGSYS and a core dump), or
/// nothing for SIG_IGN. A seccomp trap of another filter with SIG_IGN is
/// fatal, as in the kernel (which resets an ignored forced signal).
///
/// # Safety
/// `info` and `ctx` are the handler's arguments from the kernel.
pub unsafe fn forward(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let action = load();
    let handler = action.sa_sigaction;
    let from_seccomp = !info.is_null() && {
        // SAFETY: the kernel's siginfo is valid for the handler's duration.
        unsafe { (*info).si_code == super::handler::SYS_SECCOMP }
    };
    if handler == libc::SIG_IGN && !from_seccomp {
        return;
    }
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        raw::die_of(sig);
    }
    if action.sa_flags & libc::SA_RESETHAND != 0 {
        // SAFETY: all-zero is SIG_DFL with an empty mask.
        let default: libc::sigaction = unsafe { core::mem::zeroed() };
        store(&default);
    }
    let mut mask = action.sa_mask;
    // SAFETY: `mask` is a valid sigset_t on this frame.
    unsafe { libc::sigdelset(&mut mask, libc::SIGSYS) };
    let old = raw::sigprocmask(libc::SIG_BLOCK, Some(&mask));
    if action.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program installed this as an SA_SIGINFO handler.
        let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { core::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the program installed this as a plain handler.
        let f: extern "C" fn(i32) = unsafe { core::mem::transmute(handler) };
        f(sig);
    }
    raw::sigprocmask_set(old);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads_round_trip() {
        // SAFETY: all-zero is a valid sigaction.
        let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
        action.sa_sigaction = 0x1234;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: valid sigset on this frame.
        unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaddset(&mut action.sa_mask, libc::SIGUSR1);
            libc::sigaddset(&mut action.sa_mask, 64);
        }
        store(&action);
        let back = load();
        assert_eq!(back.sa_sigaction, 0x1234);
        assert_eq!(back.sa_flags, action.sa_flags);
        assert_eq!(mask_words(&back.sa_mask), mask_words(&action.sa_mask));
        // SAFETY: all-zero is a valid sigaction.
        store(&unsafe { core::mem::zeroed() });
        assert_eq!(load().sa_sigaction, libc::SIG_DFL);
    }
}
