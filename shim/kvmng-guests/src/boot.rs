//! Booting the guests through the kvmng library (feature `boot`): the VM
//! with its low memory, a vCPU in the mode the guest expects, and a run
//! loop that records what the guest did.

use crate::{long_mode, Guest, Mode, CONSOLE_PORT, LOAD_ADDR, LOW_MEM_SIZE, REPORT_PORT};
use kvmng::{BoundVcpu, Errno, GuestMemory, Kvmng, MemoryRegion, StateItem, VcpuExit, Vm};

/// Memory slot of the low memory.
pub const LOW_SLOT: u32 = 0;

/// A VM with one guest program loaded in its low memory.
pub struct GuestVm<'k> {
    /// The VM (bound to this process).
    pub vm: Vm<'k>,
    /// Guest-physical 0..LOW_MEM_SIZE: code, stack, page tables.
    pub low: GuestMemory,
    /// The guest program.
    pub guest: &'static Guest,
}

impl<'k> GuestVm<'k> {
    /// Creates the VM, its irqchip if the guest needs one, and the low
    /// memory slot holding the code (and page tables for long mode).
    pub fn new(kvm: &'k Kvmng, guest: &'static Guest) -> Result<GuestVm<'k>, Errno> {
        let vm = kvm.create_vm()?;
        if guest.irqchip {
            vm.create_irqchip()?;
        }
        let mut low = GuestMemory::new(LOW_MEM_SIZE as usize)?;
        let load = LOAD_ADDR as usize;
        low.as_mut_slice()[load..load + guest.code.len()].copy_from_slice(guest.code);
        if guest.mode == Mode::Long {
            long_mode::write_identity_page_tables(low.as_mut_slice(), 0);
        }
        vm.memory_map(&[MemoryRegion::of(LOW_SLOT, 0, &low)])?;
        Ok(GuestVm { vm, low, guest })
    }

    /// Creates vCPU 0 bound to the calling thread, in the guest's mode,
    /// about to execute the first instruction at [`LOAD_ADDR`].
    pub fn boot_vcpu(&self) -> Result<BoundVcpu<'_>, Errno> {
        self.boot_vcpu_id(0)
    }

    /// Creates vCPU `id` bound to the calling thread, set up as
    /// [`GuestVm::boot_vcpu`] sets vCPU 0 up. Several threads may each boot
    /// one (guests such as `ioregion_smp` share the code).
    pub fn boot_vcpu_id(&self, id: u64) -> Result<BoundVcpu<'_>, Errno> {
        let mut vcpu = self.vm.create_bound_vcpu(id)?;
        // The CPUID first, as VMMs do: KVM checks segment registers and
        // MSRs against it (long mode is refused without it on AMD hosts).
        let mut cpuid = self.vm.supported_cpuid()?;
        vcpu.set_state(&mut [StateItem::Cpuid(&mut cpuid)])
            .map_err(|(_, e)| e)?;
        let mut sregs = vcpu.sregs()?;
        match self.guest.mode {
            Mode::Real => long_mode::real_mode_sregs(&mut sregs),
            Mode::Long => long_mode::long_mode_sregs(&mut sregs),
        }
        vcpu.set_sregs(&sregs)?;
        vcpu.set_regs(&long_mode::initial_regs(LOAD_ADDR))?;
        Ok(vcpu)
    }
}

/// What a guest did until it halted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Bytes written to [`CONSOLE_PORT`].
    pub console: String,
    /// 32-bit values written to [`REPORT_PORT`].
    pub reports: Vec<u32>,
    /// Other port writes: (port, value).
    pub port_writes: Vec<(u16, u32)>,
    /// MMIO writes: (address, bytes).
    pub mmio_writes: Vec<(u64, Vec<u8>)>,
    /// MMIO reads: addresses (each answered with `mmio_read_value`).
    pub mmio_reads: Vec<u64>,
    /// Number of exits handled.
    pub exits: usize,
}

fn value_of(data: &[u8]) -> u32 {
    let mut bytes = [0u8; 4];
    let n = data.len().min(4);
    bytes[..n].copy_from_slice(&data[..n]);
    u32::from_le_bytes(bytes)
}

/// Runs until HLT, answering MMIO reads and port reads with
/// `mmio_read_value`; at most `max_exits` exits. An unexpected exit is an
/// error that says which.
pub fn run_to_halt(
    vcpu: &mut BoundVcpu<'_>,
    mmio_read_value: u64,
    max_exits: usize,
) -> Result<Transcript, String> {
    let mut t = Transcript::default();
    while t.exits < max_exits {
        let exit = vcpu.run().map_err(|e| format!("kvmng_run failed: {e}"))?;
        t.exits += 1;
        match exit {
            VcpuExit::Hlt => return Ok(t),
            VcpuExit::IoOut { port, data, .. } if port == CONSOLE_PORT => {
                t.console.extend(data.iter().map(|&b| b as char));
            }
            VcpuExit::IoOut { port, data, .. } if port == REPORT_PORT => {
                t.reports.push(value_of(data))
            }
            VcpuExit::IoOut { port, data, .. } => t.port_writes.push((port, value_of(data))),
            VcpuExit::IoIn { data, .. } => {
                let bytes = mmio_read_value.to_le_bytes();
                let n = data.len().min(8);
                data[..n].copy_from_slice(&bytes[..n]);
            }
            VcpuExit::MmioWrite { addr, data } => t.mmio_writes.push((addr, data.to_vec())),
            VcpuExit::MmioRead { addr, data } => {
                t.mmio_reads.push(addr);
                let bytes = mmio_read_value.to_le_bytes();
                let n = data.len();
                data.copy_from_slice(&bytes[..n]);
            }
            other => {
                return Err(format!(
                    "unexpected exit after {} exits: {other:?}",
                    t.exits
                ))
            }
        }
    }
    Err(format!("no HLT within {max_exits} exits"))
}
