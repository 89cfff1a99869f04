//! The measurements themselves, as a worker process carries them out for
//! one path: a fixture per operation (a VM, a vCPU that has run its guest,
//! state buffers...) and `sample()`, which times one operation.
//!
//! Two shapes of API cover the five paths: [`Api::Ioctl`] issues legacy
//! ioctls (as a raw syscall for the `ioctl` path, through glibc's
//! `ioctl()` for the `shim` path, where libkvmshim.so interposes it), and
//! [`Api::Kvmng`] calls a [`Backend`] (the legacy backend for `legacy`, the
//! native one, i.e. the kvmng syscall instruction, for `trap` and
//! `native`). Fds are closed with glibc's `close()`, so that the shim sees
//! them go.

use crate::ops::{Op, PathKind};
use kvm_bindings::*;
use kvmng::{Backend, BackendKind, Errno, GuestMemory};
use kvmng_abi::ioctls::*;
use kvmng_abi::*;
use kvmng_guests::{long_mode, Guest, LOAD_ADDR, LOW_MEM_SIZE};

type R<T> = Result<T, String>;

/// How a path asks KVM.
#[derive(Clone, Copy)]
pub enum Api {
    /// Legacy ioctls: raw syscalls, or glibc's `ioctl()` (`glibc`).
    Ioctl {
        /// Through glibc (the shim path).
        glibc: bool,
    },
    /// kvmng calls through a backend.
    Kvmng(&'static dyn Backend),
}

impl Api {
    /// The API a path uses.
    pub fn of(path: PathKind) -> Api {
        match path {
            PathKind::Ioctl => Api::Ioctl { glibc: false },
            PathKind::Shim => Api::Ioctl { glibc: true },
            PathKind::Legacy => Api::Kvmng(kvmng::select::backend(BackendKind::Legacy)),
            PathKind::Trap | PathKind::Native => {
                Api::Kvmng(kvmng::select::backend(BackendKind::Native))
            }
        }
    }

    /// `ioctl(fd, cmd, arg)` the way this API issues ioctls (raw for the
    /// kvmng APIs, which use it for set-up only).
    ///
    /// # Safety
    /// `arg` must be what `cmd` expects.
    #[inline]
    unsafe fn ioctl(&self, fd: i32, cmd: u64, arg: u64) -> Result<i64, Errno> {
        match self {
            Api::Ioctl { glibc: true } => {
                // SAFETY: forwarded; the caller vouches for `arg`.
                let r = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) };
                if r < 0 {
                    Err(Errno(
                        std::io::Error::last_os_error()
                            .raw_os_error()
                            .unwrap_or(libc::EIO),
                    ))
                } else {
                    Ok(i64::from(r))
                }
            }
            // SAFETY: forwarded; the caller vouches for `arg`.
            _ => unsafe { kvmng::sys::ioctl(fd, cmd, arg) },
        }
    }

    fn create_vm(&self, kvm_fd: i32) -> Result<i32, Errno> {
        match self {
            // SAFETY: KVM_CREATE_VM takes an integer.
            Api::Ioctl { .. } => unsafe { self.ioctl(kvm_fd, KVM_CREATE_VM, 0) }.map(|f| f as i32),
            Api::Kvmng(b) => b.create_vm(kvm_fd, 0, 0).map(|f| f as i32),
        }
    }

    /// Unbinds the VM (kvmng APIs) and closes its fd.
    fn drop_vm_fd(&self, vm_fd: i32) -> Result<(), Errno> {
        let unbound = match self {
            Api::Ioctl { .. } => Ok(0),
            Api::Kvmng(b) => b.bind_vm(KVMNG_UNBIND, 0),
        };
        close(vm_fd);
        unbound.map(|_| ())
    }

    fn create_vcpu(&self, vm_fd: i32, id: u64, bind: bool) -> Result<i32, Errno> {
        match self {
            Api::Ioctl { .. } => {
                // SAFETY: KVM_CREATE_VCPU takes an integer.
                unsafe { self.ioctl(vm_fd, KVM_CREATE_VCPU, id) }.map(|f| f as i32)
            }
            Api::Kvmng(b) => {
                let flags = if bind { KVMNG_CREATE_VCPU_BIND } else { 0 };
                b.create_vcpu(id, flags).map(|f| f as i32)
            }
        }
    }

    fn create_irqchip(&self, vm_fd: i32) -> Result<(), Errno> {
        match self {
            // SAFETY: KVM_CREATE_IRQCHIP takes no argument.
            Api::Ioctl { .. } => unsafe { self.ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) }.map(|_| ()),
            Api::Kvmng(b) => {
                // SAFETY: as above, through the VM-scope control call.
                unsafe { b.control(KVMNG_SCOPE_VM, KVM_CREATE_IRQCHIP as u32, 0, 0) }.map(|_| ())
            }
        }
    }

    /// Applies `regions`: one ioctl each (v1 structs), or one memory-map
    /// call (v2 structs). Both slices describe the same regions.
    #[inline]
    fn set_memory(
        &self,
        vm_fd: i32,
        v1: &[kvm_userspace_memory_region],
        v2: &[kvm_userspace_memory_region2],
    ) -> Result<(), Errno> {
        match self {
            Api::Ioctl { .. } => {
                for r in v1 {
                    // SAFETY: the ioctl reads one live region struct.
                    unsafe { self.ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, r as *const _ as u64) }?;
                }
                Ok(())
            }
            // SAFETY: `v2` holds live regions mapping memory this fixture
            // owns for the VM's lifetime.
            Api::Kvmng(b) => unsafe { b.memory_map(v2.as_ptr(), v2.len() as u32, 0) }.map(|_| ()),
        }
    }

    #[inline]
    fn run(&self, vcpu_fd: i32) -> Result<(), Errno> {
        match self {
            // SAFETY: KVM_RUN takes no argument.
            Api::Ioctl { .. } => unsafe { self.ioctl(vcpu_fd, KVM_RUN, 0) }.map(|_| ()),
            Api::Kvmng(b) => b.run(0).map(|_| ()),
        }
    }

    /// One of the breakdown calls ([`Op::BREAKDOWN`]).
    #[inline]
    fn breakdown_call(&self, op: Op, kvm_fd: i32, vm_fd: i32, vcpu_fd: i32) -> Result<(), Errno> {
        match (op, self) {
            (Op::Getppid, Api::Ioctl { glibc: true }) => {
                // SAFETY: getppid has no arguments and cannot fail.
                unsafe { libc::getppid() };
                Ok(())
            }
            (Op::Getppid, _) => {
                // SAFETY: getppid has no arguments and cannot fail.
                unsafe { kvmng::sys::syscall6(libc::SYS_getppid, 0, 0, 0, 0, 0, 0) }.map(|_| ())
            }
            (Op::EmptyCall, Api::Ioctl { .. }) => {
                // SAFETY: KVM_GET_API_VERSION takes no argument.
                match unsafe { self.ioctl(kvm_fd, KVM_GET_API_VERSION, 0) } {
                    Ok(12) => Ok(()),
                    Ok(_) => Err(Errno(libc::EPROTO)),
                    Err(e) => Err(e),
                }
            }
            (Op::EmptyCall, Api::Kvmng(b)) => match b.run(u32::MAX) {
                Err(Errno(libc::EINVAL)) => Ok(()),
                Err(e) => Err(e),
                Ok(_) => Err(Errno(libc::EPROTO)),
            },
            (Op::CheckExtension, Api::Ioctl { .. }) => {
                // SAFETY: KVM_CHECK_EXTENSION takes an integer.
                match unsafe { self.ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) } {
                    Ok(1) => Ok(()),
                    Ok(_) => Err(Errno(libc::EPROTO)),
                    Err(e) => Err(e),
                }
            }
            (Op::CheckExtension, Api::Kvmng(b)) => {
                // SAFETY: as above, through the VM-scope control call.
                let r = unsafe {
                    b.control(
                        KVMNG_SCOPE_VM,
                        KVM_CHECK_EXTENSION as u32,
                        KVM_CAP_USER_MEMORY,
                        0,
                    )
                };
                match r {
                    Ok(1) => Ok(()),
                    Ok(_) => Err(Errno(libc::EPROTO)),
                    Err(e) => Err(e),
                }
            }
            (Op::VcpuReject, Api::Ioctl { .. }) => {
                // SAFETY: a command KVM does not know; no argument is read.
                match unsafe { self.ioctl(vcpu_fd, UNKNOWN_VCPU_IOCTL, 0) } {
                    Err(Errno(libc::EINVAL)) => Ok(()),
                    Err(e) => Err(e),
                    Ok(_) => Err(Errno(libc::EPROTO)),
                }
            }
            (Op::VcpuReject, Api::Kvmng(b)) => {
                let mut entry = kvmng_state_entry::default();
                // SAFETY: one entry on the stack; kind 0 is rejected before
                // any buffer is touched.
                match unsafe { b.vcpu_state(&mut entry, 1, 0) } {
                    Err(Errno(libc::EINVAL)) => Ok(()),
                    Err(e) => Err(e),
                    Ok(_) => Err(Errno(libc::EPROTO)),
                }
            }
            _ => Err(Errno(libc::EINVAL)),
        }
    }

    #[inline]
    fn irq_line(&self, vm_fd: i32, gsi: u32, level: u32) -> Result<(), Errno> {
        match self {
            Api::Ioctl { .. } => {
                let line = kvm_irq_level {
                    __bindgen_anon_1: kvm_irq_level__bindgen_ty_1 { irq: gsi },
                    level,
                };
                // SAFETY: the ioctl reads one kvm_irq_level from the stack.
                unsafe { self.ioctl(vm_fd, KVM_IRQ_LINE, &line as *const _ as u64) }.map(|_| ())
            }
            Api::Kvmng(b) => b.irq(KVMNG_IRQ_LINE, gsi, level, 0).map(|_| ()),
        }
    }
}

/// glibc's close(): the shim interposes it to keep its fd table true.
fn close(fd: i32) {
    // SAFETY: closing an fd this fixture owns.
    unsafe { libc::close(fd) };
}

fn e(what: &str) -> impl Fn(Errno) -> String + '_ {
    move |errno| format!("{what}: {errno}")
}

/// A vCPU: its fd and its mapped `struct kvm_run`.
struct VcpuFd {
    fd: i32,
    run: *mut kvm_run,
    run_size: usize,
}

impl VcpuFd {
    fn map(kvm_fd: i32, fd: i32) -> R<VcpuFd> {
        // SAFETY: integer ioctl on /dev/kvm (set-up, raw on every path).
        let size = unsafe { kvmng::sys::ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0) }
            .map_err(e("KVM_GET_VCPU_MMAP_SIZE"))? as usize;
        // SAFETY: maps the vCPU fd's kvm_run area, shared, of KVM's size.
        let addr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(format!(
                "mmap of the vCPU: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(VcpuFd {
            fd,
            run: addr.cast(),
            run_size: size,
        })
    }

    fn exit_reason(&self) -> u32 {
        // SAFETY: the mapping lives as long as self; the vCPU is not running.
        unsafe { core::ptr::read_volatile(&(*self.run).exit_reason) }
    }
}

/// A VM of a fixture and what it owns.
struct VmFd {
    fd: i32,
    vcpus: Vec<VcpuFd>,
    /// vCPU fds without a mapped run page (vcpu-create).
    bare_vcpus: Vec<i32>,
    memory: Vec<GuestMemory>,
    /// The calling thread is bound to one of its vCPUs (kvmng APIs).
    bound: bool,
}

impl VmFd {
    fn new(api: &Api, kvm_fd: i32, irqchip: bool) -> R<VmFd> {
        let fd = api.create_vm(kvm_fd).map_err(e("create the VM"))?;
        let vm = VmFd {
            fd,
            vcpus: Vec::new(),
            bare_vcpus: Vec::new(),
            memory: Vec::new(),
            bound: false,
        };
        if irqchip {
            if let Err(err) = api.create_irqchip(fd) {
                vm.destroy(api);
                return Err(format!("create the irqchip: {err}"));
            }
        }
        Ok(vm)
    }

    fn destroy(self, api: &Api) {
        if let (true, Api::Kvmng(b)) = (self.bound, api) {
            let _ = b.bind_vcpu(KVMNG_UNBIND, 0);
        }
        for v in &self.vcpus {
            // SAFETY: unmapping the run page this fixture mapped.
            unsafe { libc::munmap(v.run.cast(), v.run_size) };
            close(v.fd);
        }
        for &fd in &self.bare_vcpus {
            close(fd);
        }
        let _ = api.drop_vm_fd(self.fd);
        drop(self.memory);
    }

    /// Low memory with `guest` loaded, vCPU 0 bound to this thread, in
    /// the guest's mode, after one run to its first exit (which also binds
    /// the thread on the shim path). Returns the exit reason of that run.
    fn boot(&mut self, api: &Api, kvm_fd: i32, guest: &Guest) -> R<u32> {
        let mut low = GuestMemory::new(LOW_MEM_SIZE as usize).map_err(e("guest memory"))?;
        let load = LOAD_ADDR as usize;
        low.as_mut_slice()[load..load + guest.code.len()].copy_from_slice(guest.code);
        if guest.mode == kvmng_guests::Mode::Long {
            long_mode::write_identity_page_tables(low.as_mut_slice(), 0);
        }
        let v1 = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: low.len() as u64,
            userspace_addr: low.host_addr(),
        };
        let v2 = kvm_userspace_memory_region2 {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: low.len() as u64,
            userspace_addr: low.host_addr(),
            ..Default::default()
        };
        api.set_memory(self.fd, &[v1], &[v2])
            .map_err(e("map the low memory"))?;
        self.memory.push(low);
        let fd = api
            .create_vcpu(self.fd, 0, true)
            .map_err(e("create vCPU 0"))?;
        self.bound = matches!(api, Api::Kvmng(_));
        let vcpu = match VcpuFd::map(kvm_fd, fd) {
            Ok(v) => v,
            Err(err) => {
                close(fd);
                return Err(err);
            }
        };
        self.vcpus.push(vcpu);
        let mut sregs = kvm_sregs::default();
        // SAFETY: the ioctls read or write one struct on the stack.
        unsafe {
            api.ioctl(fd, KVM_GET_SREGS, &mut sregs as *mut _ as u64)
                .map_err(e("KVM_GET_SREGS"))?;
            match guest.mode {
                kvmng_guests::Mode::Real => long_mode::real_mode_sregs(&mut sregs),
                kvmng_guests::Mode::Long => long_mode::long_mode_sregs(&mut sregs),
            }
            api.ioctl(fd, KVM_SET_SREGS, &sregs as *const _ as u64)
                .map_err(e("KVM_SET_SREGS"))?;
            let regs = long_mode::initial_regs(LOAD_ADDR);
            api.ioctl(fd, KVM_SET_REGS, &regs as *const _ as u64)
                .map_err(e("KVM_SET_REGS"))?;
        }
        api.run(fd).map_err(e("the first run"))?;
        Ok(self.vcpus[0].exit_reason())
    }

    fn vcpu_fd(&self) -> i32 {
        self.vcpus[0].fd
    }
}

/// `struct kvm_msrs` with room for 64 entries.
#[repr(C)]
#[derive(Clone, Copy)]
struct MsrBuf {
    nmsrs: u32,
    pad: u32,
    entries: [kvm_msr_entry; 64],
}

impl MsrBuf {
    fn new(indices: &[u32]) -> MsrBuf {
        let mut b = MsrBuf {
            nmsrs: indices.len() as u32,
            pad: 0,
            entries: [kvm_msr_entry::default(); 64],
        };
        for (e, &i) in b.entries.iter_mut().zip(indices) {
            e.index = i;
        }
        b
    }

    fn size(&self) -> u32 {
        8 + 16 * self.nmsrs
    }
}

/// The state buffers of a register sync, at stable addresses.
struct StateBufs {
    regs: kvm_regs,
    sregs: kvm_sregs,
    sregs2: kvm_sregs2,
    xsave: Vec<u64>,
    xcrs: kvm_xcrs,
    msrs_put: MsrBuf,
    msrs_get: MsrBuf,
    tsc_deadline: MsrBuf,
    events: kvm_vcpu_events,
    mp_state: kvm_mp_state,
    lapic: kvm_lapic_state,
    debugregs: kvm_debugregs,
}

fn addr<T>(v: &mut T) -> u64 {
    v as *mut T as u64
}

/// One step of a sync: the ioctl, and the equivalent state entry.
#[derive(Clone, Copy)]
struct Step {
    cmd: u64,
    addr: u64,
    kind: u32,
    op: u32,
    size: u32,
    /// What the ioctl returns on success (the MSR count for *_MSRS).
    expect: i64,
}

/// MSRs QEMU 7.2 writes in a runtime put (kvm_put_msrs at
/// KVM_PUT_RUNTIME_STATE), each when KVM lists it: SYSENTER_CS/ESP/EIP,
/// PAT, STAR, VM_HSAVE_PA, TSC_AUX, TSC_ADJUST, MISC_ENABLE, SMBASE,
/// SMI_COUNT, BNDCFGS, XSS, SPEC_CTRL, VIRT_SSBD, CSTAR, KERNELGSBASE,
/// FMASK, LSTAR.
const QEMU_RUNTIME_MSRS: [u32; 19] = [
    0x174,
    0x175,
    0x176,
    0x277,
    0xc000_0081,
    0xc001_0117,
    0xc000_0103,
    0x3b,
    0x1a0,
    0x9e,
    0x34,
    0xd90,
    0xda0,
    0x48,
    0xc001_011f,
    0xc000_0083,
    0xc000_0102,
    0xc000_0084,
    0xc000_0082,
];
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_TSCDEADLINE: u32 = 0x6e0;
const KVM_CAP_SREGS2: u64 = 200;
const KVM_CAP_XSAVE2: u64 = 208;
const KVM_CAP_USER_MEMORY: u64 = 3;
/// `_IO(KVMIO, 0xff)`: no KVM ioctl has this number.
const UNKNOWN_VCPU_IOCTL: u64 = 0xae_ff;

/// A sequence of state ioctls, or one batched state call.
struct StateSeq {
    /// The buffers the steps and entries point into (kept alive here).
    _bufs: Box<StateBufs>,
    steps: Vec<Step>,
    entries: Vec<kvmng_state_entry>,
    /// For the report: which MSRs, sregs2 or sregs, xsave size.
    info: String,
}

/// Which sync a [`StateSeq`] does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    RegsGet,
    RegsSet,
    Put,
    Get,
}

impl StateSeq {
    fn new(kvm_fd: i32, vm: &VmFd, which: Sync) -> R<StateSeq> {
        let vcpu = vm.vcpu_fd();
        // SAFETY: integer ioctls (capability checks on the VM fd, raw).
        let has_sregs2 = unsafe { kvmng::sys::ioctl(vm.fd, KVM_CHECK_EXTENSION, KVM_CAP_SREGS2) }
            .unwrap_or(0)
            > 0;
        // SAFETY: as above.
        let xsave2 = unsafe { kvmng::sys::ioctl(vm.fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2) }
            .unwrap_or(0) as usize;
        let xsave_size = xsave2.max(core::mem::size_of::<kvm_xsave>());
        let msrs = usable_msrs(kvm_fd, vcpu)?;
        let mut get_msrs = msrs.clone();
        if msr_listed(kvm_fd, MSR_IA32_TSCDEADLINE)? {
            get_msrs.push(MSR_IA32_TSCDEADLINE);
        }
        get_msrs.push(MSR_IA32_TSC);
        let mut bufs = Box::new(StateBufs {
            regs: kvm_regs::default(),
            sregs: kvm_sregs::default(),
            sregs2: kvm_sregs2::default(),
            xsave: vec![0u64; xsave_size / 8],
            xcrs: kvm_xcrs::default(),
            msrs_put: MsrBuf::new(&msrs),
            msrs_get: MsrBuf::new(&get_msrs),
            tsc_deadline: MsrBuf::new(&[MSR_IA32_TSCDEADLINE]),
            events: kvm_vcpu_events::default(),
            mp_state: kvm_mp_state::default(),
            lapic: kvm_lapic_state::default(),
            debugregs: kvm_debugregs::default(),
        });
        let b = &mut *bufs;
        let xsave_addr = b.xsave.as_mut_ptr() as u64;
        let sz = |n: usize| n as u32;
        let (sregs_get, sregs_set, sregs_kind, sregs_addr, sregs_size) = if has_sregs2 {
            (
                KVM_GET_SREGS2,
                KVM_SET_SREGS2,
                KVMNG_STATE_SREGS2,
                addr(&mut b.sregs2),
                sz(core::mem::size_of::<kvm_sregs2>()),
            )
        } else {
            (
                KVM_GET_SREGS,
                KVM_SET_SREGS,
                KVMNG_STATE_SREGS,
                addr(&mut b.sregs),
                sz(core::mem::size_of::<kvm_sregs>()),
            )
        };
        let (xsave_get, xsave_get_kind) = if xsave2 > 0 {
            (KVM_GET_XSAVE2, KVMNG_STATE_XSAVE2)
        } else {
            (KVM_GET_XSAVE, KVMNG_STATE_XSAVE)
        };
        // KVM_SET_XSAVE takes the KVM_CAP_XSAVE2 size; the XSAVE2 kind says
        // so when that is larger than the 4096-byte struct.
        let xsave_set_kind = if xsave_size > core::mem::size_of::<kvm_xsave>() {
            KVMNG_STATE_XSAVE2
        } else {
            KVMNG_STATE_XSAVE
        };
        let get = |cmd, a, kind, size| Step {
            cmd,
            addr: a,
            kind,
            op: KVMNG_STATE_GET,
            size,
            expect: 0,
        };
        let set = |cmd, a, kind, size| Step {
            cmd,
            addr: a,
            kind,
            op: KVMNG_STATE_SET,
            size,
            expect: 0,
        };
        let regs = addr(&mut b.regs);
        let regs_size = sz(core::mem::size_of::<kvm_regs>());
        // Every get, in QEMU's order (kvm_arch_get_registers); it also
        // fills the buffers the put writes back.
        let mut msrs_get_step = get(
            KVM_GET_MSRS,
            addr(&mut b.msrs_get),
            KVMNG_STATE_MSRS,
            b.msrs_get.size(),
        );
        msrs_get_step.expect = i64::from(b.msrs_get.nmsrs);
        let get_all = vec![
            get(
                KVM_GET_VCPU_EVENTS,
                addr(&mut b.events),
                KVMNG_STATE_EVENTS,
                sz(core::mem::size_of::<kvm_vcpu_events>()),
            ),
            get(
                KVM_GET_MP_STATE,
                addr(&mut b.mp_state),
                KVMNG_STATE_MP_STATE,
                sz(core::mem::size_of::<kvm_mp_state>()),
            ),
            get(KVM_GET_REGS, regs, KVMNG_STATE_REGS, regs_size),
            get(xsave_get, xsave_addr, xsave_get_kind, sz(xsave_size)),
            get(
                KVM_GET_XCRS,
                addr(&mut b.xcrs),
                KVMNG_STATE_XCRS,
                sz(core::mem::size_of::<kvm_xcrs>()),
            ),
            get(sregs_get, sregs_addr, sregs_kind, sregs_size),
            msrs_get_step,
            get(
                KVM_GET_LAPIC,
                addr(&mut b.lapic),
                KVMNG_STATE_LAPIC,
                sz(core::mem::size_of::<kvm_lapic_state>()),
            ),
            get(
                KVM_GET_DEBUGREGS,
                addr(&mut b.debugregs),
                KVMNG_STATE_DEBUGREGS,
                sz(core::mem::size_of::<kvm_debugregs>()),
            ),
        ];
        // Fill the buffers (set-up: raw ioctls on every path).
        for s in &get_all {
            // SAFETY: each buffer is live in `bufs` and of the ioctl's size.
            let r = unsafe { kvmng::sys::ioctl(vcpu, s.cmd, s.addr) }
                .map_err(|err| format!("set-up get (cmd {:#x}): {err}", s.cmd))?;
            if r != s.expect {
                return Err(format!(
                    "set-up get (cmd {:#x}) returned {r}, not {}",
                    s.cmd, s.expect
                ));
            }
        }
        // The put writes back the values just read; the TSC deadline MSR
        // gets its own SET_MSRS, as in QEMU.
        for (dst, src) in b.msrs_put.entries.iter_mut().zip(b.msrs_get.entries.iter()) {
            dst.data = src.data;
        }
        let deadline = b
            .msrs_get
            .entries
            .iter()
            .take(b.msrs_get.nmsrs as usize)
            .find(|e| e.index == MSR_IA32_TSCDEADLINE)
            .map_or(0, |e| e.data);
        b.tsc_deadline.entries[0].data = deadline;
        let mut msrs_put_step = set(
            KVM_SET_MSRS,
            addr(&mut b.msrs_put),
            KVMNG_STATE_MSRS,
            b.msrs_put.size(),
        );
        msrs_put_step.expect = i64::from(b.msrs_put.nmsrs);
        let mut deadline_step = set(
            KVM_SET_MSRS,
            addr(&mut b.tsc_deadline),
            KVMNG_STATE_MSRS,
            b.tsc_deadline.size(),
        );
        deadline_step.expect = 1;
        let put_all = vec![
            set(sregs_set, sregs_addr, sregs_kind, sregs_size),
            set(KVM_SET_REGS, regs, KVMNG_STATE_REGS, regs_size),
            set(KVM_SET_XSAVE, xsave_addr, xsave_set_kind, sz(xsave_size)),
            set(
                KVM_SET_XCRS,
                addr(&mut b.xcrs),
                KVMNG_STATE_XCRS,
                sz(core::mem::size_of::<kvm_xcrs>()),
            ),
            msrs_put_step,
            set(
                KVM_SET_VCPU_EVENTS,
                addr(&mut b.events),
                KVMNG_STATE_EVENTS,
                sz(core::mem::size_of::<kvm_vcpu_events>()),
            ),
            deadline_step,
            set(
                KVM_SET_DEBUGREGS,
                addr(&mut b.debugregs),
                KVMNG_STATE_DEBUGREGS,
                sz(core::mem::size_of::<kvm_debugregs>()),
            ),
        ];
        let steps = match which {
            Sync::RegsGet => vec![get(KVM_GET_REGS, regs, KVMNG_STATE_REGS, regs_size)],
            Sync::RegsSet => vec![set(KVM_SET_REGS, regs, KVMNG_STATE_REGS, regs_size)],
            Sync::Put => put_all,
            Sync::Get => get_all,
        };
        let entries = steps
            .iter()
            .map(|s| kvmng_state_entry {
                kind: s.kind,
                op: s.op,
                addr: s.addr,
                size: s.size,
                result: 0,
            })
            .collect();
        let hex = |v: &[u32]| {
            v.iter()
                .map(|m| format!("{m:#x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let info = match which {
            Sync::Put | Sync::Get => format!(
                "{}; xsave {} bytes ({}); {} MSRs put [{}], {} got [{}]",
                if has_sregs2 {
                    "sregs2"
                } else {
                    "sregs (no KVM_CAP_SREGS2)"
                },
                xsave_size,
                if xsave2 > 0 {
                    "KVM_GET_XSAVE2"
                } else {
                    "KVM_GET_XSAVE"
                },
                msrs.len(),
                hex(&msrs),
                get_msrs.len(),
                hex(&get_msrs)
            ),
            _ => String::new(),
        };
        Ok(StateSeq {
            _bufs: bufs,
            steps,
            entries,
            info,
        })
    }

    #[inline]
    fn sample(&mut self, api: &Api, vcpu: i32, control: bool) -> R<u64> {
        match api {
            Api::Kvmng(b) if control => run_steps(
                &self.steps,
                // SAFETY: each step's buffer lives in `self._bufs`, of the
                // size its ioctl reads or writes.
                |s| unsafe { b.control(KVMNG_SCOPE_VCPU, s.cmd as u32, s.addr, 0) },
                |cmd| format!("kvmng_control({cmd:#x})"),
            ),
            Api::Ioctl { .. } => run_steps(
                &self.steps,
                // SAFETY: each step's buffer lives in `self._bufs`, of the
                // size its ioctl reads or writes.
                |s| unsafe { api.ioctl(vcpu, s.cmd, s.addr) },
                |cmd| format!("ioctl {cmd:#x}"),
            ),
            Api::Kvmng(b) => {
                let count = self.entries.len() as u32;
                let ptr = self.entries.as_mut_ptr();
                let t = crate::clock::now();
                // SAFETY: the entries and every buffer they name live in
                // `self` for the call.
                let r = unsafe { b.vcpu_state(ptr, count, 0) };
                let ns = crate::clock::since(t);
                if r != Ok(i64::from(count)) {
                    return Err(format!("kvmng_vcpu_state answered {r:?}"));
                }
                for (entry, s) in self.entries.iter().zip(&self.steps) {
                    if i64::from(entry.result) != s.expect {
                        return Err(format!(
                            "state entry kind {} answered {}, expected {}",
                            entry.kind, entry.result, s.expect
                        ));
                    }
                }
                Ok(ns)
            }
        }
    }
}

/// Times `steps` issued one by one through `call` (a control call or an
/// ioctl each), stopping at the first that does not answer its `expect`;
/// `what` names that step's call in the error. Generic over `call`, so each
/// caller's timed loop is compiled for its own call, as if written out: no
/// dynamic dispatch is added between the clock reads (always inlined, as
/// the loops it replaces were part of `sample`).
#[inline(always)]
fn run_steps<C, W>(steps: &[Step], mut call: C, what: W) -> R<u64>
where
    C: FnMut(&Step) -> Result<i64, Errno>,
    W: FnOnce(u64) -> String,
{
    let t = crate::clock::now();
    let mut bad = None;
    for (i, s) in steps.iter().enumerate() {
        match call(s) {
            Ok(r) if r == s.expect => {}
            other => {
                bad = Some((i, other));
                break;
            }
        }
    }
    let ns = crate::clock::since(t);
    match bad {
        None => Ok(ns),
        Some((i, r)) => Err(format!(
            "{} (step {i}) answered {r:?}, expected Ok({})",
            what(steps[i].cmd),
            steps[i].expect
        )),
    }
}

fn msr_index_list(kvm_fd: i32) -> R<Vec<u32>> {
    #[repr(C)]
    struct List {
        nmsrs: u32,
        indices: [u32; 1024],
    }
    let mut list = List {
        nmsrs: 1024,
        indices: [0; 1024],
    };
    // SAFETY: the ioctl writes at most `nmsrs` indices into `list`.
    unsafe {
        kvmng::sys::ioctl(
            kvm_fd,
            KVM_GET_MSR_INDEX_LIST,
            &mut list as *mut List as u64,
        )
    }
    .map_err(e("KVM_GET_MSR_INDEX_LIST"))?;
    Ok(list.indices[..list.nmsrs.min(1024) as usize].to_vec())
}

fn msr_listed(kvm_fd: i32, msr: u32) -> R<bool> {
    Ok(msr_index_list(kvm_fd)?.contains(&msr))
}

/// QEMU's runtime MSRs that KVM lists and that this vCPU accepts back
/// (a GET then a SET of the value read, one at a time).
fn usable_msrs(kvm_fd: i32, vcpu: i32) -> R<Vec<u32>> {
    let listed = msr_index_list(kvm_fd)?;
    let mut usable = Vec::new();
    for &msr in QEMU_RUNTIME_MSRS.iter().filter(|m| listed.contains(m)) {
        let mut b = MsrBuf::new(&[msr]);
        // SAFETY: one-entry kvm_msrs buffers on the stack.
        let ok = unsafe {
            kvmng::sys::ioctl(vcpu, KVM_GET_MSRS, &mut b as *mut MsrBuf as u64) == Ok(1)
                && kvmng::sys::ioctl(vcpu, KVM_SET_MSRS, &mut b as *mut MsrBuf as u64) == Ok(1)
        };
        if ok {
            usable.push(msr);
        }
    }
    Ok(usable)
}

/// vCPUs created in one VM before vcpu-create starts a fresh one.
const VCPUS_PER_VM: u64 = 32;
/// The GSI irq-line raises and lowers.
const IRQ_GSI: u32 = 10;
/// Size of each slot of memory-map-N.
const MAP_SLOT_SIZE: u64 = 0x1_0000;
/// Where the memory-map slots sit: the two positions they alternate between.
const MAP_BASE: [u64; 2] = [0x100_0000, 0x800_0000];

/// What one operation needs on one path.
pub enum Fixture {
    /// vm-create: nothing but /dev/kvm.
    VmCreate,
    /// vcpu-create: the current VM and the next vCPU id.
    VcpuCreate {
        /// The VM the next vCPU goes into.
        vm: Option<VmFdBox>,
        /// The next id.
        next: u64,
    },
    /// run-pio, run-mmio.
    Run {
        /// The VM with its booted vCPU.
        vm: VmFdBox,
        /// The exit every run must end with.
        exit: u32,
    },
    /// regs-*, state-*.
    State {
        /// The VM with its booted vCPU.
        vm: VmFdBox,
        /// The buffers and steps.
        seq: Box<StateSeqBox>,
        /// kvmng paths: one kvmng_control per step instead of a batch.
        control: bool,
    },
    /// irq-line.
    Irq {
        /// The VM with its irqchip.
        vm: VmFdBox,
    },
    /// getppid, empty-call, check-extension.
    Call {
        /// A VM (bound, on the kvmng paths), with one vCPU.
        vm: VmFdBox,
        /// Which call.
        op: Op,
    },
    /// memory-map-N.
    MemoryMap {
        /// The VM with its booted vCPU and N slots.
        vm: VmFdBox,
        /// The regions at each position, v1 and v2 structs.
        v1: [Vec<kvm_userspace_memory_region>; 2],
        /// As `v1`, for the memory-map call.
        v2: [Vec<kvm_userspace_memory_region2>; 2],
        /// Where the slots are now (0 or 1).
        at: usize,
    },
}

/// Opaque holders, so that the fixture's types stay private.
pub struct VmFdBox(VmFd);
/// See [`VmFdBox`].
pub struct StateSeqBox(StateSeq);

impl Fixture {
    /// Builds the fixture of `op` on `api`. Returns it and a note for the
    /// report (e.g. which MSRs a sync covers).
    pub fn new(op: Op, api: &Api, kvm_fd: i32) -> R<(Fixture, String)> {
        match op {
            Op::VmCreate => Ok((Fixture::VmCreate, String::new())),
            Op::VcpuCreate => Ok((
                Fixture::VcpuCreate {
                    vm: Some(VmFdBox(VmFd::new(api, kvm_fd, true)?)),
                    next: 0,
                },
                String::new(),
            )),
            Op::RunPio | Op::RunMmio => {
                let (guest, exit) = if op == Op::RunPio {
                    ("pio_loop", KVM_EXIT_IO)
                } else {
                    ("mmio_loop", KVM_EXIT_MMIO)
                };
                let guest = kvmng_guests::by_name(guest).ok_or("guest missing")?;
                let mut vm = VmFd::new(api, kvm_fd, false)?;
                match vm.boot(api, kvm_fd, guest) {
                    Ok(r) if r == exit => {}
                    Ok(r) => {
                        vm.destroy(api);
                        return Err(format!("the first run exited with {r}, not {exit}"));
                    }
                    Err(err) => {
                        vm.destroy(api);
                        return Err(err);
                    }
                }
                Ok((
                    Fixture::Run {
                        vm: VmFdBox(vm),
                        exit,
                    },
                    String::new(),
                ))
            }
            Op::RegsGet | Op::RegsSet | Op::RegsGetControl | Op::StatePut | Op::StateGet => {
                let which = match op {
                    Op::RegsGet | Op::RegsGetControl => Sync::RegsGet,
                    Op::RegsSet => Sync::RegsSet,
                    Op::StatePut => Sync::Put,
                    _ => Sync::Get,
                };
                let guest = kvmng_guests::by_name("pio_loop").ok_or("guest missing")?;
                // An in-kernel irqchip, as QEMU has: LAPIC and TSC deadline.
                let mut vm = VmFd::new(api, kvm_fd, true)?;
                let seq = vm
                    .boot(api, kvm_fd, guest)
                    .and_then(|_| StateSeq::new(kvm_fd, &vm, which));
                match seq {
                    Ok(seq) => {
                        let info = seq.info.clone();
                        Ok((
                            Fixture::State {
                                vm: VmFdBox(vm),
                                seq: Box::new(StateSeqBox(seq)),
                                control: op == Op::RegsGetControl,
                            },
                            info,
                        ))
                    }
                    Err(err) => {
                        vm.destroy(api);
                        Err(err)
                    }
                }
            }
            Op::IrqLine => {
                let mut vm = VmFd::new(api, kvm_fd, true)?;
                match api.create_vcpu(vm.fd, 0, false) {
                    Ok(fd) => vm.bare_vcpus.push(fd),
                    Err(err) => {
                        vm.destroy(api);
                        return Err(format!("create vCPU 0: {err}"));
                    }
                }
                Ok((Fixture::Irq { vm: VmFdBox(vm) }, String::new()))
            }
            Op::MemoryMap(n) => {
                let guest = kvmng_guests::by_name("pio_loop").ok_or("guest missing")?;
                let mut vm = VmFd::new(api, kvm_fd, false)?;
                if let Err(err) = vm.boot(api, kvm_fd, guest) {
                    vm.destroy(api);
                    return Err(err);
                }
                let mem = match GuestMemory::new((MAP_SLOT_SIZE * u64::from(n)) as usize) {
                    Ok(m) => m,
                    Err(err) => {
                        vm.destroy(api);
                        return Err(format!("slot memory: {err}"));
                    }
                };
                let region = |i: u32, at: usize| kvm_userspace_memory_region {
                    slot: 1 + i,
                    flags: 0,
                    guest_phys_addr: MAP_BASE[at] + u64::from(i) * MAP_SLOT_SIZE,
                    memory_size: MAP_SLOT_SIZE,
                    userspace_addr: mem.host_addr() + u64::from(i) * MAP_SLOT_SIZE,
                };
                let v1: [Vec<_>; 2] =
                    [0, 1].map(|at| (0..n).map(|i| region(i, at)).collect::<Vec<_>>());
                let v2: [Vec<_>; 2] = [0, 1].map(|at| {
                    v1[at]
                        .iter()
                        .map(|r| kvm_userspace_memory_region2 {
                            slot: r.slot,
                            flags: r.flags,
                            guest_phys_addr: r.guest_phys_addr,
                            memory_size: r.memory_size,
                            userspace_addr: r.userspace_addr,
                            ..Default::default()
                        })
                        .collect::<Vec<_>>()
                });
                vm.memory.push(mem);
                if let Err(err) = api.set_memory(vm.fd, &v1[0], &v2[0]) {
                    vm.destroy(api);
                    return Err(format!("create the {n} slots: {err}"));
                }
                Ok((
                    Fixture::MemoryMap {
                        vm: VmFdBox(vm),
                        v1,
                        v2,
                        at: 0,
                    },
                    String::new(),
                ))
            }
            Op::Getppid | Op::EmptyCall | Op::CheckExtension | Op::VcpuReject => {
                let mut vm = VmFd::new(api, kvm_fd, false)?;
                match api.create_vcpu(vm.fd, 0, true) {
                    Ok(fd) => {
                        vm.bare_vcpus.push(fd);
                        vm.bound = matches!(api, Api::Kvmng(_));
                    }
                    Err(err) => {
                        vm.destroy(api);
                        return Err(format!("create vCPU 0: {err}"));
                    }
                }
                Ok((
                    Fixture::Call {
                        vm: VmFdBox(vm),
                        op,
                    },
                    String::new(),
                ))
            }
            Op::MmioDelivery => Err("mmio-delivery is not a per-path fixture".into()),
        }
    }

    /// Times one operation; nanoseconds.
    #[inline]
    pub fn sample(&mut self, api: &Api, kvm_fd: i32) -> R<u64> {
        match self {
            Fixture::VmCreate => {
                let t = crate::clock::now();
                let fd = api.create_vm(kvm_fd);
                let dropped = fd.map(|fd| api.drop_vm_fd(fd));
                let ns = crate::clock::since(t);
                fd.map_err(e("create the VM"))?;
                dropped.expect("checked").map_err(e("unbind the VM"))?;
                Ok(ns)
            }
            Fixture::VcpuCreate { vm, next } => {
                if *next == VCPUS_PER_VM {
                    if let Some(VmFdBox(old)) = vm.take() {
                        old.destroy(api);
                    }
                    *vm = Some(VmFdBox(VmFd::new(api, kvm_fd, true)?));
                    *next = 0;
                }
                let VmFdBox(v) = vm.as_mut().ok_or("no VM")?;
                let t = crate::clock::now();
                let r = api.create_vcpu(v.fd, *next, false);
                let ns = crate::clock::since(t);
                let fd = r.map_err(e("create a vCPU"))?;
                v.bare_vcpus.push(fd);
                *next += 1;
                Ok(ns)
            }
            Fixture::Run {
                vm: VmFdBox(vm),
                exit,
            } => {
                let fd = vm.vcpu_fd();
                let t = crate::clock::now();
                let r = api.run(fd);
                let ns = crate::clock::since(t);
                r.map_err(e("run"))?;
                let got = vm.vcpus[0].exit_reason();
                if got != *exit {
                    return Err(format!("the run exited with {got}, not {exit}"));
                }
                Ok(ns)
            }
            Fixture::State {
                vm: VmFdBox(vm),
                seq,
                control,
            } => seq.0.sample(api, vm.vcpu_fd(), *control),
            Fixture::Irq { vm: VmFdBox(vm) } => {
                let t = crate::clock::now();
                let up = api.irq_line(vm.fd, IRQ_GSI, 1);
                let down = api.irq_line(vm.fd, IRQ_GSI, 0);
                let ns = crate::clock::since(t);
                up.map_err(e("raise the line"))?;
                down.map_err(e("lower the line"))?;
                Ok(ns)
            }
            Fixture::Call {
                vm: VmFdBox(vm),
                op,
            } => {
                let t = crate::clock::now();
                let r = api.breakdown_call(*op, kvm_fd, vm.fd, vm.bare_vcpus[0]);
                let ns = crate::clock::since(t);
                r.map_err(e(&op.name()))?;
                Ok(ns)
            }
            Fixture::MemoryMap {
                vm: VmFdBox(vm),
                v1,
                v2,
                at,
            } => {
                let to = 1 - *at;
                let t = crate::clock::now();
                let r = api.set_memory(vm.fd, &v1[to], &v2[to]);
                let ns = crate::clock::since(t);
                r.map_err(e("move the slots"))?;
                *at = to;
                Ok(ns)
            }
        }
    }

    /// Releases the VM.
    pub fn destroy(self, api: &Api) {
        match self {
            Fixture::VmCreate => {}
            Fixture::VcpuCreate { vm, .. } => {
                if let Some(VmFdBox(vm)) = vm {
                    vm.destroy(api);
                }
            }
            Fixture::Run {
                vm: VmFdBox(vm), ..
            }
            | Fixture::Irq { vm: VmFdBox(vm) }
            | Fixture::Call {
                vm: VmFdBox(vm), ..
            }
            | Fixture::MemoryMap {
                vm: VmFdBox(vm), ..
            } => vm.destroy(api),
            Fixture::State {
                vm: VmFdBox(vm),
                seq,
                ..
            } => {
                drop(seq);
                vm.destroy(api);
            }
        }
    }
}
