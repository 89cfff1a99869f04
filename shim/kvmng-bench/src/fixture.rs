//! What one operation needs on one path (a VM, a vCPU that has run its
//! guest, state buffers...) and `sample()`, which times the operation.
//!
//! A fixture holds its VM and vCPUs as kvm-ioctls' [`VmFd`] and
//! [`VcpuFd`] on every path: the ioctl paths create them with ioctls, the
//! kvmng paths with the kvmng library's backend (`kvmng_create_vm`,
//! `kvmng_create_vcpu`), and kvm-ioctls wraps the fds either way (the
//! vCPU's `kvm_run` mapping included). Set-up goes through kvm-ioctls; the
//! timed call goes the path's own way ([`Api`]). Fds are closed with
//! glibc's `close()` (kvm-ioctls' `File`s, dropped), so that the shim sees
//! them go.

use crate::calls::{close, e, Api};
use crate::ops::Op;
use crate::state::{StateSeq, Sync};
use kvm_bindings::*;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use kvmng::GuestMemory;
use kvmng_abi::*;
use kvmng_guests::{long_mode, Guest, LOAD_ADDR, LOW_MEM_SIZE};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

type R<T> = Result<T, String>;

/// A VM of a fixture and what it owns.
pub struct FixtureVm {
    /// vCPUs with their mapped `kvm_run` (dropped before the VM).
    vcpus: Vec<VcpuFd>,
    /// vCPU fds without a mapped run page (vcpu-create, irq-line, calls).
    bare_vcpus: Vec<OwnedFd>,
    vm: VmFd,
    memory: Vec<GuestMemory>,
    /// The calling thread is bound to one of its vCPUs (kvmng APIs).
    bound: bool,
}

impl FixtureVm {
    fn new(api: &Api, kvm: &Kvm, irqchip: bool) -> R<FixtureVm> {
        let fd = api.create_vm(kvm.as_raw_fd()).map_err(e("create the VM"))?;
        // SAFETY: `fd` is the VM fd just created, owned by nothing else.
        let vm = match unsafe { kvm.create_vmfd_from_rawfd(fd) } {
            Ok(vm) => vm,
            Err(err) => {
                let _ = api.drop_vm_fd(fd);
                return Err(format!("KVM_GET_VCPU_MMAP_SIZE: {err}"));
            }
        };
        let vm = FixtureVm {
            vcpus: Vec::new(),
            bare_vcpus: Vec::new(),
            vm,
            memory: Vec::new(),
            bound: false,
        };
        if irqchip {
            if let Err(err) = api.create_irqchip(vm.fd()) {
                vm.destroy(api);
                return Err(format!("create the irqchip: {err}"));
            }
        }
        Ok(vm)
    }

    fn fd(&self) -> i32 {
        self.vm.as_raw_fd()
    }

    /// Unbinds (kvmng APIs), then closes the vCPUs, the VM (unbinding it)
    /// and frees the memory, in that order.
    fn destroy(self, api: &Api) {
        let FixtureVm {
            vcpus,
            bare_vcpus,
            vm,
            memory,
            bound,
        } = self;
        if let (true, Api::Kvmng(b)) = (bound, api) {
            let _ = b.bind_vcpu(KVMNG_UNBIND, 0);
        }
        drop(vcpus);
        drop(bare_vcpus);
        let fd = vm.as_raw_fd();
        // The VM fd is closed by `drop_vm_fd` (after unbinding), not by
        // kvm-ioctls' File.
        std::mem::forget(vm);
        let _ = api.drop_vm_fd(fd);
        drop(memory);
    }

    /// A vCPU created the path's way, not mapped.
    fn add_bare_vcpu(&mut self, api: &Api, id: u64, bind: bool) -> R<()> {
        let fd = api
            .create_vcpu(self.fd(), id, bind)
            .map_err(e("create a vCPU"))?;
        // SAFETY: `fd` is the vCPU fd just created, owned by nothing else.
        self.bare_vcpus.push(unsafe { OwnedFd::from_raw_fd(fd) });
        self.bound |= bind && matches!(api, Api::Kvmng(_));
        Ok(())
    }

    /// Low memory with `guest` loaded, vCPU 0 bound to this thread, in
    /// the guest's mode, after one run to its first exit (which also binds
    /// the thread on the shim path). Returns the exit reason of that run.
    fn boot(&mut self, api: &Api, guest: &Guest) -> R<u32> {
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
        api.set_memory(self.fd(), &[v1], &[v2_of(&v1)])
            .map_err(e("map the low memory"))?;
        self.memory.push(low);
        let fd = api
            .create_vcpu(self.fd(), 0, true)
            .map_err(e("create vCPU 0"))?;
        self.bound = matches!(api, Api::Kvmng(_));
        // SAFETY: `fd` is the vCPU fd just created, owned by nothing else.
        let vcpu = unsafe { self.vm.create_vcpu_from_rawfd(fd) }.map_err(|err| {
            close(fd);
            format!("map vCPU 0: {err}")
        })?;
        let mut sregs = vcpu
            .get_sregs()
            .map_err(|err| format!("KVM_GET_SREGS: {err}"))?;
        match guest.mode {
            kvmng_guests::Mode::Real => long_mode::real_mode_sregs(&mut sregs),
            kvmng_guests::Mode::Long => long_mode::long_mode_sregs(&mut sregs),
        }
        vcpu.set_sregs(&sregs)
            .map_err(|err| format!("KVM_SET_SREGS: {err}"))?;
        vcpu.set_regs(&long_mode::initial_regs(LOAD_ADDR))
            .map_err(|err| format!("KVM_SET_REGS: {err}"))?;
        self.vcpus.push(vcpu);
        api.run(self.vcpu_fd()).map_err(e("the first run"))?;
        Ok(self.exit_reason())
    }

    fn vcpu_fd(&self) -> i32 {
        self.vcpus[0].as_raw_fd()
    }

    fn exit_reason(&mut self) -> u32 {
        self.vcpus[0].get_kvm_run().exit_reason
    }
}

/// The v2 struct of the same region (the memory-map call takes those).
fn v2_of(r: &kvm_userspace_memory_region) -> kvm_userspace_memory_region2 {
    kvm_userspace_memory_region2 {
        slot: r.slot,
        flags: r.flags,
        guest_phys_addr: r.guest_phys_addr,
        memory_size: r.memory_size,
        userspace_addr: r.userspace_addr,
        ..Default::default()
    }
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
        vm: Option<FixtureVm>,
        /// The next id.
        next: u64,
    },
    /// run-pio, run-mmio.
    Run {
        /// The VM with its booted vCPU.
        vm: FixtureVm,
        /// The exit every run must end with.
        exit: u32,
    },
    /// regs-*, state-*.
    State {
        /// The VM with its booted vCPU.
        vm: FixtureVm,
        /// The buffers and steps.
        seq: Box<StateSeq>,
        /// kvmng paths: one kvmng_control per step instead of a batch.
        control: bool,
    },
    /// irq-line.
    Irq {
        /// The VM with its irqchip.
        vm: FixtureVm,
    },
    /// getppid, empty-call, check-extension.
    Call {
        /// A VM (bound, on the kvmng paths), with one vCPU.
        vm: FixtureVm,
        /// Which call.
        op: Op,
    },
    /// memory-map-N.
    MemoryMap {
        /// The VM with its booted vCPU and N slots.
        vm: FixtureVm,
        /// The regions at each position, v1 and v2 structs.
        v1: [Vec<kvm_userspace_memory_region>; 2],
        /// As `v1`, for the memory-map call.
        v2: [Vec<kvm_userspace_memory_region2>; 2],
        /// Where the slots are now (0 or 1).
        at: usize,
    },
}

impl Fixture {
    /// Builds the fixture of `op` on `api`. Returns it and a note for the
    /// report (e.g. which MSRs a sync covers).
    pub fn new(op: Op, api: &Api, kvm: &Kvm) -> R<(Fixture, String)> {
        match op {
            Op::VmCreate => Ok((Fixture::VmCreate, String::new())),
            Op::VcpuCreate => Ok((
                Fixture::VcpuCreate {
                    vm: Some(FixtureVm::new(api, kvm, true)?),
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
                let mut vm = FixtureVm::new(api, kvm, false)?;
                match vm.boot(api, guest) {
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
                Ok((Fixture::Run { vm, exit }, String::new()))
            }
            Op::RegsGet
            | Op::RegsSet
            | Op::RegsGetControl
            | Op::StatePut
            | Op::StateGet
            | Op::StateStep { .. } => {
                let which = match op {
                    Op::RegsGet | Op::RegsGetControl => Sync::RegsGet,
                    Op::RegsSet => Sync::RegsSet,
                    Op::StatePut => Sync::Put,
                    Op::StateStep { put: true, step } => Sync::PutStep(usize::from(step)),
                    Op::StateStep { put: false, step } => Sync::GetStep(usize::from(step)),
                    _ => Sync::Get,
                };
                let guest = kvmng_guests::by_name("pio_loop").ok_or("guest missing")?;
                // An in-kernel irqchip, as QEMU has: LAPIC and TSC deadline.
                let mut vm = FixtureVm::new(api, kvm, true)?;
                let seq = vm
                    .boot(api, guest)
                    .and_then(|_| StateSeq::new(kvm, &vm.vm, &vm.vcpus[0], which));
                match seq {
                    Ok(seq) => {
                        let info = seq.info.clone();
                        Ok((
                            Fixture::State {
                                vm,
                                seq: Box::new(seq),
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
                let mut vm = FixtureVm::new(api, kvm, true)?;
                if let Err(err) = vm.add_bare_vcpu(api, 0, false) {
                    vm.destroy(api);
                    return Err(err);
                }
                Ok((Fixture::Irq { vm }, String::new()))
            }
            Op::MemoryMap(n) => {
                let guest = kvmng_guests::by_name("pio_loop").ok_or("guest missing")?;
                let mut vm = FixtureVm::new(api, kvm, false)?;
                if let Err(err) = vm.boot(api, guest) {
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
                let v2: [Vec<_>; 2] = [0, 1].map(|at| v1[at].iter().map(v2_of).collect::<Vec<_>>());
                vm.memory.push(mem);
                if let Err(err) = api.set_memory(vm.fd(), &v1[0], &v2[0]) {
                    vm.destroy(api);
                    return Err(format!("create the {n} slots: {err}"));
                }
                Ok((Fixture::MemoryMap { vm, v1, v2, at: 0 }, String::new()))
            }
            Op::Getppid | Op::EmptyCall | Op::CheckExtension | Op::VcpuReject => {
                let mut vm = FixtureVm::new(api, kvm, false)?;
                if let Err(err) = vm.add_bare_vcpu(api, 0, true) {
                    vm.destroy(api);
                    return Err(err);
                }
                Ok((Fixture::Call { vm, op }, String::new()))
            }
            Op::MmioDelivery => Err("mmio-delivery is not a per-path fixture".into()),
        }
    }

    /// Times one operation; nanoseconds.
    #[inline]
    pub fn sample(&mut self, api: &Api, kvm: &Kvm) -> R<u64> {
        let kvm_fd = kvm.as_raw_fd();
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
                    if let Some(old) = vm.take() {
                        old.destroy(api);
                    }
                    *vm = Some(FixtureVm::new(api, kvm, true)?);
                    *next = 0;
                }
                let v = vm.as_mut().ok_or("no VM")?;
                let vm_fd = v.fd();
                let t = crate::clock::now();
                let r = api.create_vcpu(vm_fd, *next, false);
                let ns = crate::clock::since(t);
                let fd = r.map_err(e("create a vCPU"))?;
                // SAFETY: `fd` is the vCPU fd just created, owned by nothing else.
                v.bare_vcpus.push(unsafe { OwnedFd::from_raw_fd(fd) });
                *next += 1;
                Ok(ns)
            }
            Fixture::Run { vm, exit } => {
                let fd = vm.vcpu_fd();
                let t = crate::clock::now();
                let r = api.run(fd);
                let ns = crate::clock::since(t);
                r.map_err(e("run"))?;
                let got = vm.exit_reason();
                if got != *exit {
                    return Err(format!("the run exited with {got}, not {exit}"));
                }
                Ok(ns)
            }
            Fixture::State { vm, seq, control } => seq.sample(api, vm.vcpu_fd(), *control),
            Fixture::Irq { vm } => {
                let vm_fd = vm.fd();
                let t = crate::clock::now();
                let up = api.irq_line(vm_fd, IRQ_GSI, 1);
                let down = api.irq_line(vm_fd, IRQ_GSI, 0);
                let ns = crate::clock::since(t);
                up.map_err(e("raise the line"))?;
                down.map_err(e("lower the line"))?;
                Ok(ns)
            }
            Fixture::Call { vm, op } => {
                let (vm_fd, vcpu_fd) = (vm.fd(), vm.bare_vcpus[0].as_raw_fd());
                let t = crate::clock::now();
                let r = api.breakdown_call(*op, kvm_fd, vm_fd, vcpu_fd);
                let ns = crate::clock::since(t);
                r.map_err(e(&op.name()))?;
                Ok(ns)
            }
            Fixture::MemoryMap { vm, v1, v2, at } => {
                let to = 1 - *at;
                let vm_fd = vm.fd();
                let t = crate::clock::now();
                let r = api.set_memory(vm_fd, &v1[to], &v2[to]);
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
                if let Some(vm) = vm {
                    vm.destroy(api);
                }
            }
            Fixture::Run { vm, .. }
            | Fixture::Irq { vm }
            | Fixture::Call { vm, .. }
            | Fixture::MemoryMap { vm, .. } => vm.destroy(api),
            Fixture::State { vm, seq, .. } => {
                drop(seq);
                vm.destroy(api);
            }
        }
    }
}
