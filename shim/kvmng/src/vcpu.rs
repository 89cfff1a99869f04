//! vCPUs: [`Vcpu`] is any vCPU of the VM; [`BoundVcpu`] is the calling
//! thread's bound vCPU, and only it can run or touch state, as in the API.

use crate::errno::{Errno, SysResult};
use crate::exit::{self, VcpuExit};
use crate::state::StateItem;
use crate::vm::Vm;
use kvm_bindings::{kvm_regs, kvm_run, kvm_sregs};
use kvmng_abi::*;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The mmap'ed `struct kvm_run` of a vCPU.
struct RunPage {
    addr: *mut kvm_run,
    size: usize,
}

impl Drop for RunPage {
    fn drop(&mut self) {
        // SAFETY: unmapping the area this value mapped.
        unsafe { libc::munmap(self.addr.cast(), self.size) };
    }
}

/// A vCPU of a VM, not necessarily bound to the calling thread.
pub struct Vcpu<'vm> {
    vm: &'vm Vm<'vm>,
    fd: OwnedFd,
    id: u64,
    run: RunPage,
}

// SAFETY: the run page is plain shared memory of the vCPU; moving the
// handle between threads is what binding is for.
unsafe impl Send for Vcpu<'_> {}

impl<'vm> Vcpu<'vm> {
    pub(crate) fn from_fd(vm: &'vm Vm<'vm>, id: u64, fd: i32) -> Result<Vcpu<'vm>, Errno> {
        // SAFETY: the caller passes a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let size = vm.vcpu_mmap_size()?;
        // SAFETY: mapping the vCPU fd's kvm_run area, shared, of the size
        // KVM reports.
        let addr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Errno(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::ENOMEM),
            ));
        }
        Ok(Vcpu {
            vm,
            fd,
            id,
            run: RunPage {
                addr: addr.cast(),
                size,
            },
        })
    }

    /// The vCPU fd (the dual interface).
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The vCPU id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// `kvmng_bind_vcpu()`: binds the calling thread.
    pub fn bind(self) -> Result<BoundVcpu<'vm>, (Self, Errno)> {
        match self.vm.backend().bind_vcpu(self.fd(), 0) {
            Ok(_) => Ok(BoundVcpu::already_bound(self)),
            Err(e) => Err((self, e)),
        }
    }
}

/// The calling thread's bound vCPU. Not `Send`: the binding is the
/// thread's. Dropping it unbinds the thread.
pub struct BoundVcpu<'vm> {
    vcpu: Option<Vcpu<'vm>>,
    _thread_bound: PhantomData<*const ()>,
}

impl<'vm> BoundVcpu<'vm> {
    pub(crate) fn already_bound(vcpu: Vcpu<'vm>) -> BoundVcpu<'vm> {
        BoundVcpu {
            vcpu: Some(vcpu),
            _thread_bound: PhantomData,
        }
    }

    fn vcpu(&self) -> &Vcpu<'vm> {
        self.vcpu.as_ref().expect("present until unbind or drop")
    }

    fn backend(&self) -> &'static dyn crate::Backend {
        self.vcpu().vm.backend()
    }

    /// The vCPU fd.
    pub fn fd(&self) -> i32 {
        self.vcpu().fd()
    }

    /// The vCPU id.
    pub fn id(&self) -> u64 {
        self.vcpu().id
    }

    /// The raw `struct kvm_run`, for fields such as `immediate_exit` and
    /// `request_interrupt_window`.
    pub fn run_page(&mut self) -> &mut kvm_run {
        // SAFETY: the mapping lives as long as the vCPU, and while the
        // thread is not in `run` the kernel does not write it.
        unsafe { &mut *self.vcpu().run.addr }
    }

    /// `kvmng_run()`, then the decoded exit.
    pub fn run(&mut self) -> Result<VcpuExit<'_>, Errno> {
        self.backend().run(0)?;
        let run = &self.vcpu().run;
        // SAFETY: the run returned, so the kvm_run area is quiescent; the
        // exit borrows self mutably, so no second run can start.
        Ok(unsafe { exit::decode(run.addr, run.size) })
    }

    /// `kvmng_vcpu_state()` with GETs of each item; on error, the index of
    /// the failing item and its errno.
    pub fn get_state(&mut self, items: &mut [StateItem<'_>]) -> Result<Vec<i32>, (usize, Errno)> {
        crate::state::execute(self.backend(), KVMNG_STATE_GET, items)
    }

    /// `kvmng_vcpu_state()` with SETs of each item.
    pub fn set_state(&mut self, items: &mut [StateItem<'_>]) -> Result<Vec<i32>, (usize, Errno)> {
        crate::state::execute(self.backend(), KVMNG_STATE_SET, items)
    }

    /// The general registers.
    pub fn regs(&mut self) -> Result<kvm_regs, Errno> {
        let mut regs = kvm_regs::default();
        self.get_state(&mut [StateItem::Regs(&mut regs)])
            .map_err(|(_, e)| e)?;
        Ok(regs)
    }

    /// Sets the general registers.
    pub fn set_regs(&mut self, regs: &kvm_regs) -> Result<(), Errno> {
        let mut copy = *regs;
        self.set_state(&mut [StateItem::Regs(&mut copy)])
            .map(|_| ())
            .map_err(|(_, e)| e)
    }

    /// The special registers.
    pub fn sregs(&mut self) -> Result<kvm_sregs, Errno> {
        let mut sregs = kvm_sregs::default();
        self.get_state(&mut [StateItem::Sregs(&mut sregs)])
            .map_err(|(_, e)| e)?;
        Ok(sregs)
    }

    /// Sets the special registers.
    pub fn set_sregs(&mut self, sregs: &kvm_sregs) -> Result<(), Errno> {
        let mut copy = *sregs;
        self.set_state(&mut [StateItem::Sregs(&mut copy)])
            .map(|_| ())
            .map_err(|(_, e)| e)
    }

    /// `kvmng_irq(KVMNG_IRQ_INTERRUPT, vector)`.
    pub fn interrupt(&mut self, vector: u32) -> Result<(), Errno> {
        self.backend()
            .irq(KVMNG_IRQ_INTERRUPT, vector, 0, 0)
            .map(|_| ())
    }

    /// `kvmng_irq(KVMNG_IRQ_NMI)`.
    pub fn nmi(&mut self) -> Result<(), Errno> {
        self.backend().irq(KVMNG_IRQ_NMI, 0, 0, 0).map(|_| ())
    }

    /// `kvmng_control(KVMNG_SCOPE_VCPU, cmd, arg)`.
    ///
    /// # Safety
    /// `arg` must be what the ioctl `cmd` expects.
    pub unsafe fn control(&mut self, cmd: u64, arg: u64) -> SysResult {
        // SAFETY: forwarded.
        unsafe { self.backend().control(KVMNG_SCOPE_VCPU, cmd as u32, arg, 0) }
    }

    /// `kvmng_bind_vcpu(-1)`: gives the vCPU back, unbound.
    pub fn unbind(mut self) -> Result<Vcpu<'vm>, Errno> {
        self.backend().bind_vcpu(KVMNG_UNBIND, 0)?;
        Ok(self.vcpu.take().expect("present until unbind or drop"))
    }
}

impl Drop for BoundVcpu<'_> {
    fn drop(&mut self) {
        if let Some(vcpu) = &self.vcpu {
            let _ = vcpu.vm.backend().bind_vcpu(KVMNG_UNBIND, 0);
        }
    }
}
