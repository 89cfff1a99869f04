//! The differences docs/api.md allows between the kernel and the
//! emulation, each masked exactly: an operation carries a hint (set by
//! both sides from the operation alone, never from its outcome), and a
//! difference is accepted only when the hint is there and the two
//! outcomes are exactly the pair the spec passage describes.

use super::ops::Call;
use super::trace::Rec;
use kvmng_abi::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Hint {
    None = 0,
    /// api.md §4 "Capability": "Under the emulation (section 6) it reads 0
    /// while the probe finds the calls". Native: KVMNG_SYSCALLS_ALL;
    /// emulation: 0 (on a stock kernel; on a kvmng kernel the emulation
    /// passes the ioctl to the kernel, which answers for itself).
    CapKvmng = 1,
    /// api.md §6 "The emulation needs fds": kvmng_create_vm and
    /// kvmng_create_vcpu(…, KVMNG_CREATE_VCPU_BIND) need two free fds
    /// (the new fd and the private duplicate), the kernel one. With
    /// exactly one free: native succeeds, the emulation fails EMFILE
    /// with nothing created. The round ends: the sides' objects differ.
    EmfileTwo = 2,
    /// api.md §6 "The emulation needs fds" (and 5.2, 5.4, 5.10 ADD
    /// `EMFILE`): kvmng_bind_vm, kvmng_bind_vcpu and a new socket's
    /// kvmng_ioregion ADD need one free fd for the private duplicate;
    /// the kernel none. With none free: native succeeds, the emulation
    /// fails EMFILE, nothing bound or added. The round ends.
    EmfileOne = 3,
    /// api.md §6 "Regions belong to the bound VM": the emulation empties
    /// its region table when the mm's binding changes, the kernel keeps
    /// a VM's regions for its life. Not a difference of the operation
    /// itself: the round ends after it, before the states can be told
    /// apart.
    RegionsRebind = 4,
    /// api.md §6 "A dead VM": the emulation's bind calls answer EIO for
    /// the objects of a VM that KVM marked dead (its "created by this
    /// mm" probe is a VM ioctl, which answers EIO for both), where the
    /// kernel, which checks the mm only, binds them. Native: 0; the
    /// emulation: EIO, nothing bound. The round ends.
    DeadBind = 5,
    /// api.md §6 "Regions belong to the bound VM": "A vCPU of a second,
    /// unbound VM ... that runs through kvmng_run() is served by the bound
    /// VM's regions" by the emulation; the kernel serves a vCPU with its
    /// own VM's regions. A run of a vCPU whose VM is not the bound one,
    /// while the bound VM has regions: its outcome is the one the spec
    /// says differs, and the round ends with it.
    ForeignRun = 6,
    /// api.md §6 "Rollback": the emulation's slot table belongs to the
    /// bound VM and is emptied when the mm's binding changes; a failed
    /// multi-region kvmng_memory_map after such a change may touch a slot
    /// it no longer knows, and restores that one as absent; and it cannot
    /// refuse up front (5.8's `EINVAL`) a change of a dirty-logged or
    /// guest_memfd slot it no longer knows. So for a multi-region map
    /// after a binding change: native `EINVAL`, the emulation anything
    /// else (it applied the regions, or failed at one of them). The round
    /// ends after it, before the maps can be told apart.
    RollbackForgotten = 7,
    /// api.md §6 "Region sockets": the emulation "does not refuse
    /// (`EBUSY`) a socket that serves another VM" (5.10: "a socket serves
    /// one VM only"): its region table is the process's own, so it cannot
    /// see the regions another process's VM has on the socket. A fork
    /// child's ADD on a device socket that served the parent's VM at the
    /// fork: native `EBUSY`, the emulation adds it. The child's sequence
    /// ends there (the child's region tables differ).
    SocketOtherVm = 8,
    /// api.md §6 "The retried access is read from `kvm_run`": a
    /// `KVM_RUN` ioctl that returns `EINTR` (`immediate_exit`, a signal)
    /// completes a pending access first (5.10 "Completed by the ioctl")
    /// but leaves `kvm_run`'s exit fields as they were, so the emulation
    /// still recognizes its access there and sends it again, where the
    /// kernel, which keeps its own copy, just runs. The first run of a
    /// vCPU whose last kvmng_run failed (with regions) after such an
    /// ioctl on it: its outcome is the one the passage says differs (the
    /// device gets the access again, and what follows from that), and
    /// the round ends with it.
    RetriedAfterIoctl = 10,
    /// api.md §6 "The emulation needs fds": kvmng_create_vcpu(…,
    /// KVMNG_CREATE_VCPU_BIND) with no fd free and the id in use: the
    /// kernel checks the id before it takes its one fd (EEXIST), the
    /// emulation takes its two first (EMFILE). Seed 20261209 round 1209.
    EmfileBeforeEexist = 11,
}

/// The hint an operation carries because of what it is.
pub fn hint_of(c: &Call) -> Hint {
    match c {
        Call::FdLimit { free: 1, call } if matches!(**call, Call::CreateVm { .. }) => {
            Hint::EmfileTwo
        }
        Call::FdLimit { free: 1, call } if matches!(**call, Call::CreateVcpu { flags, .. } if flags & KVMNG_CREATE_VCPU_BIND != 0) => {
            Hint::EmfileTwo
        }
        Call::FdLimit { free: 0, call } if matches!(**call, Call::CreateVcpu { flags, .. } if flags & KVMNG_CREATE_VCPU_BIND != 0) => {
            Hint::EmfileBeforeEexist
        }
        Call::FdLimit { free: 0, call }
            if matches!(
                **call,
                Call::BindVm { .. }
                    | Call::BindVcpu { .. }
                    | Call::Ioregion {
                        op: KVMNG_IOREGION_ADD,
                        ..
                    }
            ) =>
        {
            Hint::EmfileOne
        }
        _ => Hint::None,
    }
}

/// Whether the round ends after this operation whatever its outcome: it
/// may show a §6 difference that leaves the sides' states different.
pub fn ends_round(c: &Call) -> bool {
    hint_of(c) != Hint::None
}

/// Whether the difference between `native` and `legacy` (same operation)
/// is the one the spec passage of their hint allows.
pub fn allowed(native: &Rec, legacy: &Rec) -> Option<Hint> {
    if native.hint != legacy.hint || native.sys != legacy.sys {
        return None;
    }
    let h = match native.hint {
        1 => Hint::CapKvmng,
        2 => Hint::EmfileTwo,
        3 => Hint::EmfileOne,
        5 => Hint::DeadBind,
        6 => return Some(Hint::ForeignRun),
        10 => return Some(Hint::RetriedAfterIoctl),
        11 => Hint::EmfileBeforeEexist,
        7 => Hint::RollbackForgotten,
        8 => Hint::SocketOtherVm,
        _ => return None,
    };
    let ok = match h {
        Hint::CapKvmng => {
            native.errno == 0
                && legacy.errno == 0
                && native.ret == i64::from(KVMNG_SYSCALLS_ALL)
                && legacy.ret == 0
                && native.out == legacy.out
        }
        // The native call succeeded (its fd described in `out`), the
        // emulation's failed with EMFILE and output nothing.
        Hint::EmfileOne => {
            native.errno == 0
                && legacy.errno == libc::EMFILE
                && legacy.ret == -1
                && legacy.out.is_empty()
        }
        Hint::EmfileTwo => {
            native.errno == 0
                && legacy.errno == libc::EMFILE
                && legacy.ret == -1
                && legacy.out.is_empty()
        }
        // The kernel's EEXIST, which it checks before it takes its one
        // fd, where the emulation's EMFILE for its two came first.
        Hint::EmfileBeforeEexist => {
            native.errno == libc::EEXIST
                && native.ret == -1
                && native.out.is_empty()
                && legacy.errno == libc::EMFILE
                && legacy.ret == -1
                && legacy.out.is_empty()
        }
        // The kernel bound, the emulation's probe met the dead VM.
        Hint::DeadBind => {
            native.errno == 0
                && native.ret == 0
                && legacy.errno == libc::EIO
                && native.out.is_empty()
                && legacy.out.is_empty()
        }
        // The kernel refused the batch up front, the emulation did not.
        Hint::RollbackForgotten => {
            native.errno == libc::EINVAL
                && native.ret == -1
                && legacy.errno != libc::EINVAL
                && native.out == legacy.out
        }
        // The kernel refused the socket, the emulation added the region.
        Hint::SocketOtherVm => {
            native.errno == libc::EBUSY
                && native.ret == -1
                && legacy.errno == 0
                && legacy.ret == 0
                && native.out == legacy.out
        }
        _ => false,
    };
    ok.then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(hint: Hint, ret: i64, errno: i32, out: &[u8]) -> Rec {
        Rec {
            idx: 0,
            sys: 0,
            hint: hint as u8,
            ret,
            errno,
            xsave: vec![],
            out: out.to_vec(),
            what: String::new(),
            diag: String::new(),
        }
    }

    #[test]
    fn only_the_described_pair_is_allowed() {
        let n = rec(Hint::EmfileTwo, 0, 0, b"fd:anon_inode:kvm-vm");
        assert_eq!(
            allowed(&n, &rec(Hint::EmfileTwo, -1, libc::EMFILE, b"")),
            Some(Hint::EmfileTwo)
        );
        // The kernel's EEXIST before its fd against the emulation's
        // EMFILE: only with its own hint, and only that pair.
        assert_eq!(
            allowed(
                &rec(Hint::EmfileBeforeEexist, -1, libc::EEXIST, b""),
                &rec(Hint::EmfileBeforeEexist, -1, libc::EMFILE, b"")
            ),
            Some(Hint::EmfileBeforeEexist)
        );
        for native in [
            rec(Hint::EmfileBeforeEexist, 0, 0, b"fd"),
            rec(Hint::EmfileBeforeEexist, -1, libc::EINVAL, b""),
        ] {
            let legacy = rec(Hint::EmfileBeforeEexist, -1, libc::EMFILE, b"");
            assert_eq!(allowed(&native, &legacy), None);
        }
        for h in [Hint::EmfileTwo, Hint::EmfileOne] {
            let (native, legacy) = (rec(h, -1, libc::EEXIST, b""), rec(h, -1, libc::EMFILE, b""));
            assert_eq!(allowed(&native, &legacy), None);
        }
        // Another errno, or the other way round, is a divergence.
        assert_eq!(
            allowed(&n, &rec(Hint::EmfileTwo, -1, libc::ENOMEM, b"")),
            None
        );
        assert_eq!(
            allowed(&rec(Hint::EmfileTwo, -1, libc::EMFILE, b""), &n),
            None
        );
        // Without the hint nothing is allowed.
        assert_eq!(
            allowed(
                &rec(Hint::None, 0, 0, b""),
                &rec(Hint::None, -1, libc::EMFILE, b"")
            ),
            None
        );
        let c = rec(Hint::CapKvmng, i64::from(KVMNG_SYSCALLS_ALL), 0, b"");
        assert_eq!(
            allowed(&c, &rec(Hint::CapKvmng, 0, 0, b"")),
            Some(Hint::CapKvmng)
        );
        assert_eq!(allowed(&c, &rec(Hint::CapKvmng, 1, 0, b"")), None);
        let d = rec(Hint::DeadBind, 0, 0, b"");
        assert_eq!(
            allowed(&d, &rec(Hint::DeadBind, -1, libc::EIO, b"")),
            Some(Hint::DeadBind)
        );
        assert_eq!(
            allowed(&d, &rec(Hint::DeadBind, -1, libc::EBUSY, b"")),
            None
        );
        let f = rec(Hint::RollbackForgotten, -1, libc::EINVAL, b"");
        assert_eq!(
            allowed(&f, &rec(Hint::RollbackForgotten, 2, 0, b"")),
            Some(Hint::RollbackForgotten)
        );
        assert_eq!(
            allowed(&f, &rec(Hint::RollbackForgotten, -1, libc::EEXIST, b"")),
            Some(Hint::RollbackForgotten)
        );
        assert_eq!(allowed(&rec(Hint::RollbackForgotten, 2, 0, b""), &f), None);
        assert_eq!(
            allowed(
                &rec(Hint::RollbackForgotten, -1, libc::EEXIST, b""),
                &rec(Hint::RollbackForgotten, 2, 0, b"")
            ),
            None
        );
        let b = rec(Hint::SocketOtherVm, -1, libc::EBUSY, b"");
        assert_eq!(
            allowed(&b, &rec(Hint::SocketOtherVm, 0, 0, b"")),
            Some(Hint::SocketOtherVm)
        );
        // Only EBUSY against success: not another errno, not reversed.
        assert_eq!(
            allowed(
                &rec(Hint::SocketOtherVm, -1, libc::EINVAL, b""),
                &rec(Hint::SocketOtherVm, 0, 0, b"")
            ),
            None
        );
        assert_eq!(allowed(&rec(Hint::SocketOtherVm, 0, 0, b""), &b), None);
    }
}
