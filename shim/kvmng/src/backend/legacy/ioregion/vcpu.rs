//! The I/O-region state of each thread binding: its own mapping of the
//! vCPU's `kvm_run`, the pending access, and the reply slot; set up and
//! taken down with the binding.

use super::exchange::forget_left_request;
use super::table::PARKED;
use super::RUN_MAP_LEN;
use crate::backend::legacy::fdkind;
use crate::errno::Errno;
use crate::sys::{self, close};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

/// The I/O-region state of one thread binding.
pub struct VcpuIo {
    /// Address of this binding's own mapping of the vCPU's `kvm_run` area
    /// ([`RUN_MAP_LEN`] bytes), or 0.
    pub run: AtomicU64,
    /// The vCPU's id.
    pub vcpu_id: AtomicU32,
    /// 1 while an access to a region is pending (not yet completed).
    pub(super) pending: AtomicU32,
    /// The next element of a pending string port access.
    pub(super) pending_index: AtomicU32,
    /// The pending access's identity (`access::Access::identity`): when
    /// the exit in `kvm_run` is another, a `KVM_RUN` ioctl completed it.
    pub(super) pending_identity: [AtomicU64; 2],
    /// Socket entry this thread waits on for a reply, or -1.
    pub(super) sock: AtomicI32,
    /// Id of the request waited for, or 0; with
    /// [`DELIVERING`](super::DELIVERING) set while its reply is handed over.
    pub(super) wait_id: AtomicU64,
    /// Id of the last reply handed over; `data` and `err` belong to it.
    pub(super) done_id: AtomicU64,
    pub(super) data: AtomicU64,
    pub(super) err: AtomicI32,
    /// 1 when the request waited for is a write (its reply has no data).
    pub(super) is_write: AtomicU32,
    /// Eventfd through which a receiver wakes this thread, or -1.
    pub(super) efd: AtomicI32,
    /// The signal mask of `KVM_SET_SIGNAL_MASK`, applied while waiting.
    pub(super) sigmask: AtomicU64,
    pub(super) sigmask_set: AtomicU32,
}

impl VcpuIo {
    /// The state of a free binding slot.
    pub const fn new() -> VcpuIo {
        VcpuIo {
            run: AtomicU64::new(0),
            vcpu_id: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            pending_index: AtomicU32::new(0),
            pending_identity: [AtomicU64::new(0), AtomicU64::new(0)],
            sock: AtomicI32::new(-1),
            wait_id: AtomicU64::new(0),
            done_id: AtomicU64::new(0),
            data: AtomicU64::new(0),
            err: AtomicI32::new(0),
            is_write: AtomicU32::new(0),
            efd: AtomicI32::new(-1),
            sigmask: AtomicU64::new(0),
            sigmask_set: AtomicU32::new(0),
        }
    }

    /// True while an access to a region is pending.
    pub fn pending(&self) -> bool {
        self.pending.load(Relaxed) != 0
    }

    /// True when the program gave this vCPU a signal mask for KVM_RUN
    /// (`KVM_SET_SIGNAL_MASK` through the library, while this binding).
    pub fn kvm_mask_set(&self) -> bool {
        self.sigmask_set.load(SeqCst) != 0
    }

    /// Records the mask of a successful `KVM_SET_SIGNAL_MASK` (`None`: no
    /// mask, as when the ioctl is given a null pointer).
    pub fn set_sigmask(&self, mask: Option<u64>) {
        self.sigmask.store(mask.unwrap_or(0), SeqCst);
        self.sigmask_set.store(u32::from(mask.is_some()), SeqCst);
    }
}

impl Default for VcpuIo {
    fn default() -> Self {
        VcpuIo::new()
    }
}

/// Maps the `kvm_run` area of vCPU fd `fd` for a binding ([`RUN_MAP_LEN`]
/// bytes); the address, for [`install`].
pub fn map_run(fd: i32) -> Result<u64, Errno> {
    sys::mmap_shared(fd, RUN_MAP_LEN)
}

/// Sets a detached binding up for `private_fd` (vCPU `vcpu_id`), whose run
/// area is mapped at `run`, and adopts an access left pending by an
/// earlier binding of the same vCPU. Call with the binding change lock
/// held.
pub fn install(io: &VcpuIo, run: u64, private_fd: i32, vcpu_id: u32) {
    io.run.store(run, SeqCst);
    io.vcpu_id.store(vcpu_id, SeqCst);
    io.pending.store(0, SeqCst);
    io.pending_index.store(0, SeqCst);
    io.set_sigmask(None);
    for parked in PARKED.iter() {
        let fd = parked.fd.load(SeqCst);
        if fd >= 0 && fdkind::same_file(fd, private_fd) {
            io.pending_index.store(parked.index.load(SeqCst), SeqCst);
            for (mine, its) in io.pending_identity.iter().zip(&parked.identity) {
                mine.store(its.load(SeqCst), SeqCst);
            }
            io.pending.store(1, SeqCst);
            parked.fd.store(-1, SeqCst);
            let _ = close(fd);
            break;
        }
    }
}

/// Takes a binding down: gives up the request left in its slot (by a
/// `longjmp` out of a wait), unmaps its run area, closes its eventfd, and
/// closes `fd` (the binding's private vCPU fd) or, when an access is
/// pending, parks it for the next binding of the vCPU. Call with the
/// binding change lock held, on the binding's own thread, or with
/// `in_fork_child` in a fork child.
pub fn detach(io: &VcpuIo, fd: i32, in_fork_child: bool) {
    if in_fork_child {
        // The thread that may be handing a reply over to the slot is not
        // in the child: nothing to wait for.
        io.wait_id.store(0, SeqCst);
    } else {
        // A hand-over of the left request's reply that is under way ends
        // first: else it writes into the slot of the next request (this
        // thread's next binding's, or the next thread's bound here).
        forget_left_request(io);
    }
    let run = io.run.swap(0, SeqCst);
    if run != 0 {
        // SAFETY: unmapping the area `attach` mapped; nothing else uses it
        // (the binding is being dropped by its own thread, or in a fork
        // child).
        let _ = unsafe { sys::munmap(run, RUN_MAP_LEN) };
    }
    let efd = io.efd.swap(-1, SeqCst);
    if efd >= 0 {
        let _ = close(efd);
    }
    let mut fd_kept = false;
    if io.pending.swap(0, SeqCst) != 0 && fd >= 0 {
        let index = io.pending_index.load(SeqCst);
        for parked in PARKED.iter() {
            if parked.fd.compare_exchange(-1, fd, SeqCst, SeqCst).is_ok() {
                parked.index.store(index, SeqCst);
                for (its, mine) in parked.identity.iter().zip(&io.pending_identity) {
                    its.store(mine.load(SeqCst), SeqCst);
                }
                fd_kept = true;
                break;
            }
        }
    }
    if !fd_kept && fd >= 0 {
        let _ = close(fd);
    }
    io.sock.store(-1, SeqCst);
    io.wait_id.store(0, SeqCst);
    io.set_sigmask(None);
}
