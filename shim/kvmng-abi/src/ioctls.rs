//! Legacy KVM ioctl numbers of Linux 6.12 (`include/uapi/linux/kvm.h`),
//! computed from the struct sizes of `kvm-bindings` the way `_IOC` does,
//! and the table that maps each of them to its kvmng form.
//!
//! Every ioctl an x86_64 program can issue has a constant here and exactly
//! one row in [`KVM_IOCTLS`]; the ioctls of other architectures (s390,
//! powerpc, arm64, mips, riscv) are listed, as not applicable, only in the
//! mapping table of `docs/api.md`. `tests/mapping_table.rs` checks both
//! against the 6.12 header, and `tests/c_header_agreement.rs` checks every
//! number here against the C macros.
//!
//! File descriptors that KVM hands out besides `/dev/kvm`, VM, vCPU and
//! device fds have no ioctls at all: a stats fd (`KVM_GET_STATS_FD`) is only
//! read, and a guest_memfd (`KVM_CREATE_GUEST_MEMFD`) is only fallocate()d
//! and named in memory regions.

use core::ffi::c_ulong;
use core::mem::size_of;
use kvm_bindings::*;

use crate::uapi::{
    KVMNG_IRQ_INTERRUPT, KVMNG_IRQ_NMI, KVMNG_IRQ_SMI, KVMNG_SCOPE_SYSTEM, KVMNG_SCOPE_VCPU,
    KVMNG_SCOPE_VM, KVMNG_STATE_CPUID, KVMNG_STATE_DEBUGREGS, KVMNG_STATE_EVENTS, KVMNG_STATE_FPU,
    KVMNG_STATE_GET, KVMNG_STATE_LAPIC, KVMNG_STATE_MP_STATE, KVMNG_STATE_MSRS,
    KVMNG_STATE_ONE_REG, KVMNG_STATE_REGS, KVMNG_STATE_SET, KVMNG_STATE_SREGS, KVMNG_STATE_SREGS2,
    KVMNG_STATE_XCRS, KVMNG_STATE_XSAVE, KVMNG_STATE_XSAVE2,
};

/// The KVM ioctl type byte (`KVMIO`).
pub const KVMIO: u64 = 0xAE;

const IOC_NONE: u64 = 0;
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
}
const fn io(nr: u64) -> u64 {
    ioc(IOC_NONE, nr, 0)
}
const fn ior<T>(nr: u64) -> u64 {
    ioc(IOC_READ, nr, size_of::<T>())
}
const fn iow<T>(nr: u64) -> u64 {
    ioc(IOC_WRITE, nr, size_of::<T>())
}
const fn iowr<T>(nr: u64) -> u64 {
    ioc(IOC_READ | IOC_WRITE, nr, size_of::<T>())
}

/// The command number field of an ioctl request (`_IOC_NR`).
pub const fn ioc_nr(cmd: u64) -> u64 {
    cmd & 0xff
}
/// The type field of an ioctl request (`_IOC_TYPE`).
pub const fn ioc_type(cmd: u64) -> u64 {
    (cmd >> 8) & 0xff
}
/// The size field of an ioctl request (`_IOC_SIZE`).
pub const fn ioc_size(cmd: u64) -> u64 {
    (cmd >> 16) & 0x3fff
}

// Every struct these numbers need is in kvm-bindings 0.14; the sizes are
// checked against the 6.12 C headers by tests/c_header_agreement.rs.

// System ioctls (`/dev/kvm`).
pub const KVM_GET_API_VERSION: u64 = io(0x00);
pub const KVM_CREATE_VM: u64 = io(0x01);
pub const KVM_GET_MSR_INDEX_LIST: u64 = iowr::<kvm_msr_list>(0x02);
pub const KVM_CHECK_EXTENSION: u64 = io(0x03);
pub const KVM_GET_VCPU_MMAP_SIZE: u64 = io(0x04);
pub const KVM_GET_SUPPORTED_CPUID: u64 = iowr::<kvm_cpuid2>(0x05);
pub const KVM_GET_EMULATED_CPUID: u64 = iowr::<kvm_cpuid2>(0x09);
pub const KVM_GET_MSR_FEATURE_INDEX_LIST: u64 = iowr::<kvm_msr_list>(0x0a);
pub const KVM_X86_GET_MCE_CAP_SUPPORTED: u64 = ior::<u64>(0x9d);
pub const KVM_GET_SUPPORTED_HV_CPUID: u64 = iowr::<kvm_cpuid2>(0xc1);

// VM ioctls.
pub const KVM_CREATE_VCPU: u64 = io(0x41);
pub const KVM_GET_DIRTY_LOG: u64 = iow::<kvm_dirty_log>(0x42);
pub const KVM_SET_NR_MMU_PAGES: u64 = io(0x44);
pub const KVM_GET_NR_MMU_PAGES: u64 = io(0x45);
pub const KVM_SET_USER_MEMORY_REGION: u64 = iow::<kvm_userspace_memory_region>(0x46);
pub const KVM_SET_TSS_ADDR: u64 = io(0x47);
pub const KVM_SET_IDENTITY_MAP_ADDR: u64 = iow::<u64>(0x48);
pub const KVM_SET_USER_MEMORY_REGION2: u64 = iow::<kvm_userspace_memory_region2>(0x49);
pub const KVM_CREATE_IRQCHIP: u64 = io(0x60);
pub const KVM_IRQ_LINE: u64 = iow::<kvm_irq_level>(0x61);
pub const KVM_GET_IRQCHIP: u64 = iowr::<kvm_irqchip>(0x62);
pub const KVM_SET_IRQCHIP: u64 = ior::<kvm_irqchip>(0x63);
pub const KVM_CREATE_PIT: u64 = io(0x64);
pub const KVM_GET_PIT: u64 = iowr::<kvm_pit_state>(0x65);
pub const KVM_SET_PIT: u64 = ior::<kvm_pit_state>(0x66);
pub const KVM_IRQ_LINE_STATUS: u64 = iowr::<kvm_irq_level>(0x67);
pub const KVM_REGISTER_COALESCED_MMIO: u64 = iow::<kvm_coalesced_mmio_zone>(0x67);
pub const KVM_UNREGISTER_COALESCED_MMIO: u64 = iow::<kvm_coalesced_mmio_zone>(0x68);
pub const KVM_SET_GSI_ROUTING: u64 = iow::<kvm_irq_routing>(0x6a);
pub const KVM_REINJECT_CONTROL: u64 = io(0x71);
pub const KVM_IRQFD: u64 = iow::<kvm_irqfd>(0x76);
pub const KVM_CREATE_PIT2: u64 = iow::<kvm_pit_config>(0x77);
pub const KVM_SET_BOOT_CPU_ID: u64 = io(0x78);
pub const KVM_IOEVENTFD: u64 = iow::<kvm_ioeventfd>(0x79);
pub const KVM_XEN_HVM_CONFIG: u64 = iow::<kvm_xen_hvm_config>(0x7a);
pub const KVM_SET_CLOCK: u64 = iow::<kvm_clock_data>(0x7b);
pub const KVM_GET_CLOCK: u64 = ior::<kvm_clock_data>(0x7c);
pub const KVM_GET_PIT2: u64 = ior::<kvm_pit_state2>(0x9f);
pub const KVM_SET_PIT2: u64 = iow::<kvm_pit_state2>(0xa0);
pub const KVM_SET_TSC_KHZ: u64 = io(0xa2);
pub const KVM_ENABLE_CAP: u64 = iow::<kvm_enable_cap>(0xa3);
pub const KVM_GET_TSC_KHZ: u64 = io(0xa3);
pub const KVM_SIGNAL_MSI: u64 = iow::<kvm_msi>(0xa5);
pub const KVM_SET_PMU_EVENT_FILTER: u64 = iow::<kvm_pmu_event_filter>(0xb2);
pub const KVM_MEMORY_ENCRYPT_OP: u64 = iowr::<c_ulong>(0xba);
pub const KVM_MEMORY_ENCRYPT_REG_REGION: u64 = ior::<kvm_enc_region>(0xbb);
pub const KVM_MEMORY_ENCRYPT_UNREG_REGION: u64 = ior::<kvm_enc_region>(0xbc);
pub const KVM_HYPERV_EVENTFD: u64 = iow::<kvm_hyperv_eventfd>(0xbd);
pub const KVM_CLEAR_DIRTY_LOG: u64 = iowr::<kvm_clear_dirty_log>(0xc0);
pub const KVM_X86_SET_MSR_FILTER: u64 = iow::<kvm_msr_filter>(0xc6);
pub const KVM_RESET_DIRTY_RINGS: u64 = io(0xc7);
pub const KVM_XEN_HVM_GET_ATTR: u64 = iowr::<kvm_xen_hvm_attr>(0xc8);
pub const KVM_XEN_HVM_SET_ATTR: u64 = iow::<kvm_xen_hvm_attr>(0xc9);
pub const KVM_GET_STATS_FD: u64 = io(0xce);
pub const KVM_XEN_HVM_EVTCHN_SEND: u64 = iow::<kvm_irq_routing_xen_evtchn>(0xd0);
pub const KVM_SET_MEMORY_ATTRIBUTES: u64 = iow::<kvm_memory_attributes>(0xd2);
pub const KVM_CREATE_GUEST_MEMFD: u64 = iowr::<kvm_create_guest_memfd>(0xd4);
pub const KVM_CREATE_DEVICE: u64 = iowr::<kvm_create_device>(0xe0);

// Device-attribute ioctls (vCPU, device and, for GET/HAS, `/dev/kvm` fds).
pub const KVM_SET_DEVICE_ATTR: u64 = iow::<kvm_device_attr>(0xe1);
pub const KVM_GET_DEVICE_ATTR: u64 = iow::<kvm_device_attr>(0xe2);
pub const KVM_HAS_DEVICE_ATTR: u64 = iow::<kvm_device_attr>(0xe3);

// vCPU ioctls.
pub const KVM_RUN: u64 = io(0x80);
pub const KVM_GET_REGS: u64 = ior::<kvm_regs>(0x81);
pub const KVM_SET_REGS: u64 = iow::<kvm_regs>(0x82);
pub const KVM_GET_SREGS: u64 = ior::<kvm_sregs>(0x83);
pub const KVM_SET_SREGS: u64 = iow::<kvm_sregs>(0x84);
pub const KVM_TRANSLATE: u64 = iowr::<kvm_translation>(0x85);
pub const KVM_INTERRUPT: u64 = iow::<kvm_interrupt>(0x86);
pub const KVM_GET_MSRS: u64 = iowr::<kvm_msrs>(0x88);
pub const KVM_SET_MSRS: u64 = iow::<kvm_msrs>(0x89);
pub const KVM_SET_CPUID: u64 = iow::<kvm_cpuid>(0x8a);
pub const KVM_SET_SIGNAL_MASK: u64 = iow::<kvm_signal_mask>(0x8b);
pub const KVM_GET_FPU: u64 = ior::<kvm_fpu>(0x8c);
pub const KVM_SET_FPU: u64 = iow::<kvm_fpu>(0x8d);
pub const KVM_GET_LAPIC: u64 = ior::<kvm_lapic_state>(0x8e);
pub const KVM_SET_LAPIC: u64 = iow::<kvm_lapic_state>(0x8f);
pub const KVM_SET_CPUID2: u64 = iow::<kvm_cpuid2>(0x90);
pub const KVM_GET_CPUID2: u64 = iowr::<kvm_cpuid2>(0x91);
pub const KVM_TPR_ACCESS_REPORTING: u64 = iowr::<kvm_tpr_access_ctl>(0x92);
pub const KVM_SET_VAPIC_ADDR: u64 = iow::<kvm_vapic_addr>(0x93);
pub const KVM_GET_MP_STATE: u64 = ior::<kvm_mp_state>(0x98);
pub const KVM_SET_MP_STATE: u64 = iow::<kvm_mp_state>(0x99);
pub const KVM_NMI: u64 = io(0x9a);
pub const KVM_SET_GUEST_DEBUG: u64 = iow::<kvm_guest_debug>(0x9b);
pub const KVM_X86_SETUP_MCE: u64 = iow::<u64>(0x9c);
pub const KVM_X86_SET_MCE: u64 = iow::<kvm_x86_mce>(0x9e);
pub const KVM_GET_VCPU_EVENTS: u64 = ior::<kvm_vcpu_events>(0x9f);
pub const KVM_SET_VCPU_EVENTS: u64 = iow::<kvm_vcpu_events>(0xa0);
pub const KVM_GET_DEBUGREGS: u64 = ior::<kvm_debugregs>(0xa1);
pub const KVM_SET_DEBUGREGS: u64 = iow::<kvm_debugregs>(0xa2);
pub const KVM_GET_XSAVE: u64 = ior::<kvm_xsave>(0xa4);
pub const KVM_SET_XSAVE: u64 = iow::<kvm_xsave>(0xa5);
pub const KVM_GET_XCRS: u64 = ior::<kvm_xcrs>(0xa6);
pub const KVM_SET_XCRS: u64 = iow::<kvm_xcrs>(0xa7);
pub const KVM_GET_ONE_REG: u64 = iow::<kvm_one_reg>(0xab);
pub const KVM_SET_ONE_REG: u64 = iow::<kvm_one_reg>(0xac);
pub const KVM_KVMCLOCK_CTRL: u64 = io(0xad);
pub const KVM_SMI: u64 = io(0xb7);
pub const KVM_GET_NESTED_STATE: u64 = iowr::<kvm_nested_state>(0xbe);
pub const KVM_SET_NESTED_STATE: u64 = iow::<kvm_nested_state>(0xbf);
pub const KVM_XEN_VCPU_GET_ATTR: u64 = iowr::<kvm_xen_vcpu_attr>(0xca);
pub const KVM_XEN_VCPU_SET_ATTR: u64 = iow::<kvm_xen_vcpu_attr>(0xcb);
pub const KVM_GET_SREGS2: u64 = ior::<kvm_sregs2>(0xcc);
pub const KVM_SET_SREGS2: u64 = iow::<kvm_sregs2>(0xcd);
pub const KVM_GET_XSAVE2: u64 = ior::<kvm_xsave>(0xcf);
pub const KVM_PRE_FAULT_MEMORY: u64 = iowr::<kvm_pre_fault_memory>(0xd5);

/// The kind of file descriptor an ioctl is issued on.
///
/// KVM hands out two more kinds, which have no ioctls: the stats fd of
/// `KVM_GET_STATS_FD` (read only) and the guest_memfd of
/// `KVM_CREATE_GUEST_MEMFD` (fallocate() and memory regions only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FdClass {
    /// `/dev/kvm`.
    System,
    /// A VM fd (`KVM_CREATE_VM`).
    Vm,
    /// A vCPU fd (`KVM_CREATE_VCPU`).
    Vcpu,
    /// A device fd (`KVM_CREATE_DEVICE`).
    Device,
}

impl FdClass {
    /// Every class.
    pub const ALL: [FdClass; 4] = [FdClass::System, FdClass::Vm, FdClass::Vcpu, FdClass::Device];

    /// The `kvmng_control()` scope standing in for an fd of this class;
    /// `None` for a device fd, whose ioctls stay on the fd (a device has no
    /// mm or thread binding that could replace the fd).
    pub const fn scope(self) -> Option<u32> {
        match self {
            FdClass::System => Some(KVMNG_SCOPE_SYSTEM),
            FdClass::Vm => Some(KVMNG_SCOPE_VM),
            FdClass::Vcpu => Some(KVMNG_SCOPE_VCPU),
            FdClass::Device => None,
        }
    }
}

/// How a legacy ioctl is carried out through the new API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewApiForm {
    /// `kvmng_create_vm(kvm_fd, type, flags)`.
    CreateVm,
    /// `kvmng_create_vcpu(id, flags)` on the caller's bound VM.
    CreateVcpu,
    /// `kvmng_run(flags)` on the calling thread's vCPU.
    Run,
    /// One entry of `kvmng_vcpu_state()`: `kind` is a `KVMNG_STATE_*` kind,
    /// `op` is [`KVMNG_STATE_GET`] or [`KVMNG_STATE_SET`].
    VcpuState { kind: u32, op: u32 },
    /// `kvmng_irq(kind, ...)` on the calling thread's vCPU, `kind` a
    /// vCPU `KVMNG_IRQ_*` constant. (`KVM_IRQ_LINE` is carried by
    /// `kvmng_control`, whose ioctl reads the caller's struct itself.)
    Irq { kind: u32 },
    /// `kvmng_memory_map()`.
    MemoryMap,
    /// `kvmng_control(scope, cmd, arg, flags)`, the scope given by the fd
    /// class ([`FdClass::scope`]).
    Control,
    /// No new-API form; the reason.
    NotApplicable(&'static str),
}

impl NewApiForm {
    /// The fd class a dedicated form replaces; `None` for `Control` (any
    /// class) and `NotApplicable`.
    pub const fn dedicated_class(self) -> Option<FdClass> {
        match self {
            NewApiForm::CreateVm => Some(FdClass::System),
            NewApiForm::CreateVcpu | NewApiForm::MemoryMap => Some(FdClass::Vm),
            NewApiForm::Run | NewApiForm::VcpuState { .. } | NewApiForm::Irq { .. } => {
                Some(FdClass::Vcpu)
            }
            NewApiForm::Control | NewApiForm::NotApplicable(_) => None,
        }
    }
}

/// One legacy ioctl and its new-API form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoctlInfo {
    /// The C macro name.
    pub name: &'static str,
    /// The full request number.
    pub cmd: u64,
    /// The fd classes on which x86 KVM of Linux 6.12 accepts it.
    pub classes: &'static [FdClass],
    /// Its new-API form on the class the form is for; on the other classes
    /// it is `Control` (see [`IoctlInfo::form_on`]).
    pub form: NewApiForm,
}

/// Why a device-fd ioctl has no new-API form.
pub const DEVICE_FD_STAYS: &str =
    "device fd: the ioctl stays on the fd (a device has no mm or thread binding)";
/// Why an ioctl has no form on a class it is not valid on.
pub const NOT_ON_THIS_CLASS: &str = "not an ioctl of this kind of fd";

impl IoctlInfo {
    /// Whether the ioctl is valid on an fd of this class.
    pub fn valid_on(&self, class: FdClass) -> bool {
        self.classes.contains(&class)
    }

    /// The new-API form of the ioctl issued on an fd of `class`: the
    /// dedicated form on the class it replaces, `Control` (with the class's
    /// scope) on the other classes, and `NotApplicable` on a device fd or a
    /// class the ioctl is not valid on. For example `KVM_GET_MSRS` is a
    /// `kvmng_vcpu_state()` entry on a vCPU fd but `kvmng_control()` with
    /// `KVMNG_SCOPE_SYSTEM` on `/dev/kvm` (feature MSRs).
    pub fn form_on(&self, class: FdClass) -> NewApiForm {
        if !self.valid_on(class) {
            return NewApiForm::NotApplicable(NOT_ON_THIS_CLASS);
        }
        if class == FdClass::Device {
            return NewApiForm::NotApplicable(DEVICE_FD_STAYS);
        }
        match self.form.dedicated_class() {
            Some(c) if c == class => self.form,
            _ => NewApiForm::Control,
        }
    }
}

/// Every ioctl of Linux 6.12 `linux/kvm.h` that x86 KVM implements (plus
/// `KVM_GET_NR_MMU_PAGES`, an x86 ioctl 6.12 no longer implements, and
/// `KVM_GET_ONE_REG`/`KVM_SET_ONE_REG`, which x86 implements from 6.18),
/// exactly once, in the order of the mapping table in `docs/api.md`.
///
/// The device-attribute ioctls are the only ones valid on a device fd
/// (x86 has no device with ioctls of its own); on a device fd they stay on
/// the fd ([`IoctlInfo::form_on`] says `NotApplicable`).
#[rustfmt::skip]
pub static KVM_IOCTLS: &[IoctlInfo] = &[
    IoctlInfo { name: "KVM_GET_API_VERSION", cmd: KVM_GET_API_VERSION, classes: &[FdClass::System], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_CREATE_VM", cmd: KVM_CREATE_VM, classes: &[FdClass::System], form: NewApiForm::CreateVm },
    IoctlInfo { name: "KVM_GET_MSR_INDEX_LIST", cmd: KVM_GET_MSR_INDEX_LIST, classes: &[FdClass::System], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_CHECK_EXTENSION", cmd: KVM_CHECK_EXTENSION, classes: &[FdClass::System, FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_VCPU_MMAP_SIZE", cmd: KVM_GET_VCPU_MMAP_SIZE, classes: &[FdClass::System], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_SUPPORTED_CPUID", cmd: KVM_GET_SUPPORTED_CPUID, classes: &[FdClass::System], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_EMULATED_CPUID", cmd: KVM_GET_EMULATED_CPUID, classes: &[FdClass::System], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_MSR_FEATURE_INDEX_LIST", cmd: KVM_GET_MSR_FEATURE_INDEX_LIST, classes: &[FdClass::System], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_X86_GET_MCE_CAP_SUPPORTED", cmd: KVM_X86_GET_MCE_CAP_SUPPORTED, classes: &[FdClass::System], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_SUPPORTED_HV_CPUID", cmd: KVM_GET_SUPPORTED_HV_CPUID, classes: &[FdClass::System, FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_CREATE_VCPU", cmd: KVM_CREATE_VCPU, classes: &[FdClass::Vm], form: NewApiForm::CreateVcpu },
    IoctlInfo { name: "KVM_GET_DIRTY_LOG", cmd: KVM_GET_DIRTY_LOG, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_NR_MMU_PAGES", cmd: KVM_SET_NR_MMU_PAGES, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_NR_MMU_PAGES", cmd: KVM_GET_NR_MMU_PAGES, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_USER_MEMORY_REGION", cmd: KVM_SET_USER_MEMORY_REGION, classes: &[FdClass::Vm], form: NewApiForm::MemoryMap },
    IoctlInfo { name: "KVM_SET_TSS_ADDR", cmd: KVM_SET_TSS_ADDR, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_IDENTITY_MAP_ADDR", cmd: KVM_SET_IDENTITY_MAP_ADDR, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_USER_MEMORY_REGION2", cmd: KVM_SET_USER_MEMORY_REGION2, classes: &[FdClass::Vm], form: NewApiForm::MemoryMap },
    IoctlInfo { name: "KVM_CREATE_IRQCHIP", cmd: KVM_CREATE_IRQCHIP, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_IRQ_LINE", cmd: KVM_IRQ_LINE, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_IRQCHIP", cmd: KVM_GET_IRQCHIP, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_IRQCHIP", cmd: KVM_SET_IRQCHIP, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_CREATE_PIT", cmd: KVM_CREATE_PIT, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_PIT", cmd: KVM_GET_PIT, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_PIT", cmd: KVM_SET_PIT, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_IRQ_LINE_STATUS", cmd: KVM_IRQ_LINE_STATUS, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_REGISTER_COALESCED_MMIO", cmd: KVM_REGISTER_COALESCED_MMIO, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_UNREGISTER_COALESCED_MMIO", cmd: KVM_UNREGISTER_COALESCED_MMIO, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_GSI_ROUTING", cmd: KVM_SET_GSI_ROUTING, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_REINJECT_CONTROL", cmd: KVM_REINJECT_CONTROL, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_IRQFD", cmd: KVM_IRQFD, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_CREATE_PIT2", cmd: KVM_CREATE_PIT2, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_BOOT_CPU_ID", cmd: KVM_SET_BOOT_CPU_ID, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_IOEVENTFD", cmd: KVM_IOEVENTFD, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_XEN_HVM_CONFIG", cmd: KVM_XEN_HVM_CONFIG, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_CLOCK", cmd: KVM_SET_CLOCK, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_CLOCK", cmd: KVM_GET_CLOCK, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_PIT2", cmd: KVM_GET_PIT2, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_PIT2", cmd: KVM_SET_PIT2, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_TSC_KHZ", cmd: KVM_SET_TSC_KHZ, classes: &[FdClass::Vm, FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_TSC_KHZ", cmd: KVM_GET_TSC_KHZ, classes: &[FdClass::Vm, FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SIGNAL_MSI", cmd: KVM_SIGNAL_MSI, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_PMU_EVENT_FILTER", cmd: KVM_SET_PMU_EVENT_FILTER, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_CREATE_DEVICE", cmd: KVM_CREATE_DEVICE, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_ENABLE_CAP", cmd: KVM_ENABLE_CAP, classes: &[FdClass::Vm, FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_MEMORY_ENCRYPT_OP", cmd: KVM_MEMORY_ENCRYPT_OP, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_MEMORY_ENCRYPT_REG_REGION", cmd: KVM_MEMORY_ENCRYPT_REG_REGION, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_MEMORY_ENCRYPT_UNREG_REGION", cmd: KVM_MEMORY_ENCRYPT_UNREG_REGION, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_HYPERV_EVENTFD", cmd: KVM_HYPERV_EVENTFD, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_CLEAR_DIRTY_LOG", cmd: KVM_CLEAR_DIRTY_LOG, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_X86_SET_MSR_FILTER", cmd: KVM_X86_SET_MSR_FILTER, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_RESET_DIRTY_RINGS", cmd: KVM_RESET_DIRTY_RINGS, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_XEN_HVM_GET_ATTR", cmd: KVM_XEN_HVM_GET_ATTR, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_XEN_HVM_SET_ATTR", cmd: KVM_XEN_HVM_SET_ATTR, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_XEN_HVM_EVTCHN_SEND", cmd: KVM_XEN_HVM_EVTCHN_SEND, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_STATS_FD", cmd: KVM_GET_STATS_FD, classes: &[FdClass::Vm, FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_MEMORY_ATTRIBUTES", cmd: KVM_SET_MEMORY_ATTRIBUTES, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_CREATE_GUEST_MEMFD", cmd: KVM_CREATE_GUEST_MEMFD, classes: &[FdClass::Vm], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_DEVICE_ATTR", cmd: KVM_SET_DEVICE_ATTR, classes: &[FdClass::Vcpu, FdClass::Device], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_DEVICE_ATTR", cmd: KVM_GET_DEVICE_ATTR, classes: &[FdClass::System, FdClass::Vcpu, FdClass::Device], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_HAS_DEVICE_ATTR", cmd: KVM_HAS_DEVICE_ATTR, classes: &[FdClass::System, FdClass::Vcpu, FdClass::Device], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_RUN", cmd: KVM_RUN, classes: &[FdClass::Vcpu], form: NewApiForm::Run },
    IoctlInfo { name: "KVM_GET_REGS", cmd: KVM_GET_REGS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_REGS, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_REGS", cmd: KVM_SET_REGS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_REGS, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_GET_SREGS", cmd: KVM_GET_SREGS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_SREGS, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_SREGS", cmd: KVM_SET_SREGS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_SREGS, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_TRANSLATE", cmd: KVM_TRANSLATE, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_INTERRUPT", cmd: KVM_INTERRUPT, classes: &[FdClass::Vcpu], form: NewApiForm::Irq { kind: KVMNG_IRQ_INTERRUPT } },
    IoctlInfo { name: "KVM_GET_MSRS", cmd: KVM_GET_MSRS, classes: &[FdClass::System, FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_MSRS, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_MSRS", cmd: KVM_SET_MSRS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_MSRS, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_SET_CPUID", cmd: KVM_SET_CPUID, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_SIGNAL_MASK", cmd: KVM_SET_SIGNAL_MASK, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_FPU", cmd: KVM_GET_FPU, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_FPU, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_FPU", cmd: KVM_SET_FPU, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_FPU, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_GET_LAPIC", cmd: KVM_GET_LAPIC, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_LAPIC, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_LAPIC", cmd: KVM_SET_LAPIC, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_LAPIC, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_SET_CPUID2", cmd: KVM_SET_CPUID2, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_CPUID, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_GET_CPUID2", cmd: KVM_GET_CPUID2, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_CPUID, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_TPR_ACCESS_REPORTING", cmd: KVM_TPR_ACCESS_REPORTING, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_VAPIC_ADDR", cmd: KVM_SET_VAPIC_ADDR, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_MP_STATE", cmd: KVM_GET_MP_STATE, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_MP_STATE, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_MP_STATE", cmd: KVM_SET_MP_STATE, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_MP_STATE, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_NMI", cmd: KVM_NMI, classes: &[FdClass::Vcpu], form: NewApiForm::Irq { kind: KVMNG_IRQ_NMI } },
    IoctlInfo { name: "KVM_SET_GUEST_DEBUG", cmd: KVM_SET_GUEST_DEBUG, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_X86_SETUP_MCE", cmd: KVM_X86_SETUP_MCE, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_X86_SET_MCE", cmd: KVM_X86_SET_MCE, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_VCPU_EVENTS", cmd: KVM_GET_VCPU_EVENTS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_EVENTS, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_VCPU_EVENTS", cmd: KVM_SET_VCPU_EVENTS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_EVENTS, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_GET_DEBUGREGS", cmd: KVM_GET_DEBUGREGS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_DEBUGREGS, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_DEBUGREGS", cmd: KVM_SET_DEBUGREGS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_DEBUGREGS, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_GET_XSAVE", cmd: KVM_GET_XSAVE, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_XSAVE, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_XSAVE", cmd: KVM_SET_XSAVE, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_XSAVE, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_GET_XCRS", cmd: KVM_GET_XCRS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_XCRS, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_XCRS", cmd: KVM_SET_XCRS, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_XCRS, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_GET_ONE_REG", cmd: KVM_GET_ONE_REG, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_ONE_REG, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_ONE_REG", cmd: KVM_SET_ONE_REG, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_ONE_REG, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_KVMCLOCK_CTRL", cmd: KVM_KVMCLOCK_CTRL, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SMI", cmd: KVM_SMI, classes: &[FdClass::Vcpu], form: NewApiForm::Irq { kind: KVMNG_IRQ_SMI } },
    IoctlInfo { name: "KVM_GET_NESTED_STATE", cmd: KVM_GET_NESTED_STATE, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_SET_NESTED_STATE", cmd: KVM_SET_NESTED_STATE, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_XEN_VCPU_GET_ATTR", cmd: KVM_XEN_VCPU_GET_ATTR, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_XEN_VCPU_SET_ATTR", cmd: KVM_XEN_VCPU_SET_ATTR, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
    IoctlInfo { name: "KVM_GET_SREGS2", cmd: KVM_GET_SREGS2, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_SREGS2, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_SET_SREGS2", cmd: KVM_SET_SREGS2, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_SREGS2, op: KVMNG_STATE_SET } },
    IoctlInfo { name: "KVM_GET_XSAVE2", cmd: KVM_GET_XSAVE2, classes: &[FdClass::Vcpu], form: NewApiForm::VcpuState { kind: KVMNG_STATE_XSAVE2, op: KVMNG_STATE_GET } },
    IoctlInfo { name: "KVM_PRE_FAULT_MEMORY", cmd: KVM_PRE_FAULT_MEMORY, classes: &[FdClass::Vcpu], form: NewApiForm::Control },
];

/// The ioctl with request number `cmd` on an fd of `class`, if x86 KVM
/// has one. The class matters: one number can in principle mean different
/// ioctls on different fds (none of the x86 ones do, which the tests check).
pub fn lookup(cmd: u64, class: FdClass) -> Option<&'static IoctlInfo> {
    KVM_IOCTLS
        .iter()
        .find(|info| info.cmd == cmd && info.valid_on(class))
}

/// The ioctl with this C macro name.
pub fn lookup_name(name: &str) -> Option<&'static IoctlInfo> {
    KVM_IOCTLS.iter().find(|info| info.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uapi::{KVMNG_IRQ_LINE, KVMNG_STATE_KIND_MAX};
    use std::collections::HashSet;

    #[test]
    fn known_numbers() {
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_SET_USER_MEMORY_REGION, 0x4020_ae46);
        assert_eq!(KVM_SET_USER_MEMORY_REGION2, 0x40a0_ae49);
        assert_eq!(KVM_GET_XSAVE, 0x9000_aea4);
        assert_eq!(KVM_SIGNAL_MSI, 0x4020_aea5);
        assert_eq!(KVM_SET_XSAVE, 0x5000_aea5);
        assert_eq!(KVM_MEMORY_ENCRYPT_OP, 0xc008_aeba);
        assert_eq!(KVM_GET_NESTED_STATE, 0xc080_aebe);
        assert_eq!(KVM_PRE_FAULT_MEMORY, 0xc040_aed5);
    }

    #[test]
    fn every_entry_is_a_kvm_ioctl_listed_once() {
        let mut names = HashSet::new();
        for info in KVM_IOCTLS {
            assert!(names.insert(info.name), "{} listed twice", info.name);
            assert!(info.name.starts_with("KVM_"), "{}", info.name);
            assert_eq!(ioc_type(info.cmd), KVMIO, "{}", info.name);
            assert!(!info.classes.is_empty(), "{}", info.name);
            let classes: HashSet<_> = info.classes.iter().collect();
            assert_eq!(classes.len(), info.classes.len(), "{}", info.name);
        }
        assert_eq!(KVM_IOCTLS.len(), 106);
    }

    #[test]
    fn cmd_class_pairs_are_unique() {
        let mut seen = HashSet::new();
        for info in KVM_IOCTLS {
            for class in info.classes {
                assert!(
                    seen.insert((info.cmd, *class)),
                    "{} ({:#x}) collides on {:?}",
                    info.name,
                    info.cmd,
                    class
                );
            }
        }
    }

    #[test]
    fn lookup_finds_every_entry_on_its_classes_only() {
        for info in KVM_IOCTLS {
            for class in FdClass::ALL {
                let found = lookup(info.cmd, class);
                if info.valid_on(class) {
                    assert_eq!(found.map(|i| i.name), Some(info.name));
                } else if let Some(other) = found {
                    assert_ne!(other.name, info.name);
                }
            }
            assert_eq!(lookup_name(info.name), Some(info));
        }
        assert!(lookup(0xdead_beef, FdClass::Vm).is_none());
        assert!(lookup_name("KVM_S390_MEM_OP").is_none());
    }

    #[test]
    fn lookup_by_class() {
        // Same nr 0xa5, different sizes and fd classes.
        assert_eq!(ioc_nr(KVM_SIGNAL_MSI), ioc_nr(KVM_SET_XSAVE));
        assert_ne!(KVM_SIGNAL_MSI, KVM_SET_XSAVE);
        assert_eq!(
            lookup(KVM_SIGNAL_MSI, FdClass::Vm).unwrap().name,
            "KVM_SIGNAL_MSI"
        );
        assert!(lookup(KVM_SIGNAL_MSI, FdClass::Vcpu).is_none());
        assert_eq!(
            lookup(KVM_SET_XSAVE, FdClass::Vcpu).unwrap().name,
            "KVM_SET_XSAVE"
        );
        assert!(lookup(KVM_SET_XSAVE, FdClass::Vm).is_none());

        let regs = lookup(KVM_GET_REGS, FdClass::Vcpu).unwrap();
        assert_eq!(
            regs.form,
            NewApiForm::VcpuState {
                kind: KVMNG_STATE_REGS,
                op: KVMNG_STATE_GET
            }
        );
        assert_eq!(
            lookup(KVM_RUN, FdClass::Vcpu).unwrap().form,
            NewApiForm::Run
        );
        assert_eq!(
            lookup(KVM_CREATE_VM, FdClass::System).unwrap().form,
            NewApiForm::CreateVm
        );
        assert_eq!(
            lookup(KVM_CREATE_VCPU, FdClass::Vm).unwrap().form,
            NewApiForm::CreateVcpu
        );
        // KVM_IRQ_LINE goes through kvmng_control, so that the kernel's
        // own copy of its struct checks the caller's pointer.
        assert_eq!(
            lookup(KVM_IRQ_LINE, FdClass::Vm).unwrap().form,
            NewApiForm::Control
        );
        assert_eq!(
            lookup(KVM_SET_USER_MEMORY_REGION, FdClass::Vm)
                .unwrap()
                .form,
            NewApiForm::MemoryMap
        );
        assert_eq!(
            lookup(KVM_GET_XSAVE2, FdClass::Vcpu).unwrap().form,
            NewApiForm::VcpuState {
                kind: KVMNG_STATE_XSAVE2,
                op: KVMNG_STATE_GET
            }
        );

        // One ioctl, two classes, two forms.
        let msrs = lookup(KVM_GET_MSRS, FdClass::System).unwrap();
        assert_eq!(msrs.form_on(FdClass::System), NewApiForm::Control);
        assert_eq!(
            msrs.form_on(FdClass::Vcpu),
            NewApiForm::VcpuState {
                kind: KVMNG_STATE_MSRS,
                op: KVMNG_STATE_GET
            }
        );
        assert_eq!(
            msrs.form_on(FdClass::Vm),
            NewApiForm::NotApplicable(NOT_ON_THIS_CLASS)
        );

        // Device-attribute ioctls stay on a device fd.
        let attr = lookup(KVM_SET_DEVICE_ATTR, FdClass::Device).unwrap();
        assert_eq!(attr.form, NewApiForm::Control);
        assert_eq!(attr.form_on(FdClass::Vcpu), NewApiForm::Control);
        assert_eq!(
            attr.form_on(FdClass::Device),
            NewApiForm::NotApplicable(DEVICE_FD_STAYS)
        );
        assert_eq!(FdClass::Device.scope(), None);
        assert_eq!(FdClass::Vcpu.scope(), Some(KVMNG_SCOPE_VCPU));
    }

    #[test]
    fn forms_are_well_formed() {
        for info in KVM_IOCTLS {
            if let NewApiForm::VcpuState { kind, op } = info.form {
                assert!((1..=KVMNG_STATE_KIND_MAX).contains(&kind), "{}", info.name);
                assert!(
                    op == KVMNG_STATE_GET || op == KVMNG_STATE_SET,
                    "{}",
                    info.name
                );
                let want = if info.name.starts_with("KVM_GET_") {
                    KVMNG_STATE_GET
                } else {
                    KVMNG_STATE_SET
                };
                assert_eq!(op, want, "{}", info.name);
            }
            assert!(
                !matches!(info.form, NewApiForm::NotApplicable(_)),
                "{}",
                info.name
            );
            // A dedicated form is valid on the class it replaces.
            if let Some(class) = info.form.dedicated_class() {
                assert!(info.valid_on(class), "{}", info.name);
                assert_eq!(info.form_on(class), info.form, "{}", info.name);
            }
        }
        // Every state kind has a getter; all but XSAVE2 have a setter.
        for kind in 1..=KVMNG_STATE_KIND_MAX {
            for op in [KVMNG_STATE_GET, KVMNG_STATE_SET] {
                let n = KVM_IOCTLS
                    .iter()
                    .filter(|i| i.form == NewApiForm::VcpuState { kind, op })
                    .count();
                let want = usize::from(!(kind == KVMNG_STATE_XSAVE2 && op == KVMNG_STATE_SET));
                assert_eq!(n, want, "kind {kind} op {op}");
            }
        }
        // Each vCPU irq kind stands for one ioctl; KVMNG_IRQ_LINE for none
        // (KVM_IRQ_LINE is carried by kvmng_control).
        for (kind, want) in [
            (KVMNG_IRQ_LINE, 0),
            (KVMNG_IRQ_INTERRUPT, 1),
            (KVMNG_IRQ_NMI, 1),
            (KVMNG_IRQ_SMI, 1),
        ] {
            let n = KVM_IOCTLS
                .iter()
                .filter(|i| i.form == NewApiForm::Irq { kind })
                .count();
            assert_eq!(n, want, "irq kind {kind}");
        }
    }
}
