//! Two VMs built identically, each with two vCPUs, 64 KiB of memory and a
//! first run to a port write: VM A through the shim (`ioctl()`: created by
//! `kvmng_create_vm`, vCPU 0 bound to this thread by its first KVM_RUN),
//! VM B with raw syscalls.

use crate::side::{ioctl, Outcome, Path};
use kvm_bindings::{kvm_regs, kvm_sregs, kvm_userspace_memory_region};
use kvmng_abi::ioctls::*;

const MEM: usize = 64 * 1024;
/// The guest: `out 0x10, al; hlt` at 0x1000.
const CODE: [u8; 3] = [0xe6, 0x10, 0xf4];
const KVM_EXIT_IO: u32 = 2;

/// One VM and what the fuzzer aims at in it.
pub struct Vm {
    pub path: Path,
    pub vm: i32,
    /// vCPU 0: run once (bound to this thread on the shim side).
    pub vcpu: i32,
    /// vCPU 1: never run (the shim's ioctls on it fall back).
    pub vcpu2: i32,
    run: *mut u8,
    run2: *mut u8,
    run_size: usize,
    mem: *mut u8,
}

/// The two VMs.
pub struct Pair {
    pub a: Vm,
    pub b: Vm,
}

fn check(what: &str, o: Outcome) -> Result<i64, String> {
    if o.ret < 0 {
        Err(format!(
            "{what}: {}",
            std::io::Error::from_raw_os_error(o.errno)
        ))
    } else {
        Ok(o.ret)
    }
}

impl Vm {
    /// Builds one VM along `path`; `irqchip` adds the in-kernel irqchip.
    fn build(path: Path, kvm: i32, run_size: usize, irqchip: bool) -> Result<Vm, String> {
        // SAFETY: here and in the ioctls below, the arguments are integers
        // or point to locals of the right type.
        let vm = check("KVM_CREATE_VM", unsafe {
            ioctl(path, kvm, KVM_CREATE_VM, 0)
        })? as i32;
        // SAFETY: as above.
        check("KVM_SET_TSS_ADDR", unsafe {
            ioctl(path, vm, KVM_SET_TSS_ADDR, 0xfffb_d000)
        })?;
        if irqchip {
            // SAFETY: as above.
            check("KVM_CREATE_IRQCHIP", unsafe {
                ioctl(path, vm, KVM_CREATE_IRQCHIP, 0)
            })?;
        }
        // SAFETY: a fresh anonymous mapping.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEM,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err("mmap of guest memory failed".into());
        }
        let mem = mem.cast::<u8>();
        // SAFETY: CODE fits in the MEM bytes mapped above.
        unsafe { std::ptr::copy_nonoverlapping(CODE.as_ptr(), mem.add(0x1000), CODE.len()) };
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: MEM as u64,
            userspace_addr: mem as u64,
        };
        // SAFETY: as above.
        check("KVM_SET_USER_MEMORY_REGION", unsafe {
            ioctl(
                path,
                vm,
                KVM_SET_USER_MEMORY_REGION,
                &region as *const _ as u64,
            )
        })?;
        // SAFETY: as above.
        let vcpu = check("KVM_CREATE_VCPU 0", unsafe {
            ioctl(path, vm, KVM_CREATE_VCPU, 0)
        })? as i32;
        // SAFETY: as above.
        let vcpu2 = check("KVM_CREATE_VCPU 1", unsafe {
            ioctl(path, vm, KVM_CREATE_VCPU, 1)
        })? as i32;
        // SAFETY: maps the vCPU's kvm_run area, as KVM programs do.
        let run = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                run_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu,
                0,
            )
        };
        if run == libc::MAP_FAILED {
            return Err("mmap of kvm_run failed".into());
        }
        // SAFETY: as above, for vCPU 1.
        let run2 = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                run_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu2,
                0,
            )
        };
        if run2 == libc::MAP_FAILED {
            return Err("mmap of vCPU 1's kvm_run failed".into());
        }
        let mut sregs = kvm_sregs::default();
        // SAFETY: as above.
        check("KVM_GET_SREGS", unsafe {
            ioctl(path, vcpu, KVM_GET_SREGS, &mut sregs as *mut _ as u64)
        })?;
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        // SAFETY: as above.
        check("KVM_SET_SREGS", unsafe {
            ioctl(path, vcpu, KVM_SET_SREGS, &sregs as *const _ as u64)
        })?;
        let regs = kvm_regs {
            rip: 0x1000,
            rflags: 2,
            ..Default::default()
        };
        // SAFETY: as above.
        check("KVM_SET_REGS", unsafe {
            ioctl(path, vcpu, KVM_SET_REGS, &regs as *const _ as u64)
        })?;
        let v = Vm {
            path,
            vm,
            vcpu,
            vcpu2,
            run: run.cast(),
            run2: run2.cast(),
            run_size,
            mem,
        };
        // SAFETY: as above.
        check("KVM_RUN", unsafe { ioctl(path, vcpu, KVM_RUN, 0) })?;
        // SAFETY: exit_reason is the u32 at offset 8 of the mapped kvm_run.
        let reason = unsafe { v.run.add(8).cast::<u32>().read_volatile() };
        if reason != KVM_EXIT_IO {
            return Err(format!(
                "first KVM_RUN: exit reason {reason}, not KVM_EXIT_IO"
            ));
        }
        v.hold();
        Ok(v)
    }

    /// Sets `immediate_exit`, so that a fuzzed KVM_RUN returns EINTR at
    /// once instead of running a guest whose state the fuzzer scrambled.
    pub fn hold(&self) {
        // SAFETY: immediate_exit is the u8 at offset 1 of each mapped
        // kvm_run.
        unsafe {
            self.run.add(1).write_volatile(1);
            self.run2.add(1).write_volatile(1);
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // SAFETY: the mappings made in `build`; the fds are this VM's
        // (closed through close(), so that the shim forgets them).
        unsafe {
            libc::munmap(self.run.cast(), self.run_size);
            libc::munmap(self.run2.cast(), self.run_size);
            libc::close(self.vcpu2);
            libc::close(self.vcpu);
            libc::close(self.vm);
            libc::munmap(self.mem.cast(), MEM);
        }
    }
}

impl Pair {
    /// Builds both VMs on the /dev/kvm fd `kvm`: A through the shim first
    /// (so that it is the process's bound VM), then B raw.
    pub fn build(kvm: i32, irqchip: bool) -> Result<Pair, String> {
        // SAFETY: an integer argument.
        let run_size = check("KVM_GET_VCPU_MMAP_SIZE", unsafe {
            ioctl(Path::Raw, kvm, KVM_GET_VCPU_MMAP_SIZE, 0)
        })? as usize;
        let a = Vm::build(Path::Shim, kvm, run_size, irqchip).map_err(|e| format!("VM A: {e}"))?;
        let b = Vm::build(Path::Raw, kvm, run_size, irqchip).map_err(|e| format!("VM B: {e}"))?;
        Ok(Pair { a, b })
    }
}
