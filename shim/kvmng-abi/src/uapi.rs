//! Structs and constants of `linux/kvmng.h`, one for one.

/// `KVM_CHECK_EXTENSION(KVM_CAP_KVMNG)` returns the implemented syscalls as
/// a bit set (bit n: `KVMNG_SYSCALL_BASE + n`).
pub const KVM_CAP_KVMNG: u32 = 1000;
/// Number of syscalls in the kvmng block.
pub const KVMNG_SYSCALL_COUNT: u32 = 10;
/// Every syscall implemented.
pub const KVMNG_SYSCALLS_ALL: u32 = (1 << KVMNG_SYSCALL_COUNT) - 1;

/// Passing this as the fd of a bind call removes the binding.
pub const KVMNG_UNBIND: i32 = -1;

/// `kvmng_create_vcpu()`: bind the calling thread to the new vCPU.
pub const KVMNG_CREATE_VCPU_BIND: u32 = 1 << 0;
/// All valid `kvmng_create_vcpu()` flags.
pub const KVMNG_CREATE_VCPU_FLAGS: u32 = KVMNG_CREATE_VCPU_BIND;

/// One entry of a `kvmng_vcpu_state()` batch.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvmng_state_entry {
    /// `KVMNG_STATE_*` kind.
    pub kind: u32,
    /// [`KVMNG_STATE_GET`] or [`KVMNG_STATE_SET`].
    pub op: u32,
    /// User buffer holding the legacy ioctl's struct.
    pub addr: u64,
    /// Bytes at `addr`.
    pub size: u32,
    /// Out: the legacy ioctl's return value, or `-errno`.
    pub result: i32,
}

/// Read state from the vCPU into the buffer.
pub const KVMNG_STATE_GET: u32 = 1;
/// Write state from the buffer into the vCPU.
pub const KVMNG_STATE_SET: u32 = 2;

/// `struct kvm_regs`.
pub const KVMNG_STATE_REGS: u32 = 1;
/// `struct kvm_sregs`.
pub const KVMNG_STATE_SREGS: u32 = 2;
/// `struct kvm_sregs2`.
pub const KVMNG_STATE_SREGS2: u32 = 3;
/// `struct kvm_fpu`.
pub const KVMNG_STATE_FPU: u32 = 4;
/// `struct kvm_xsave`, 4096 bytes.
pub const KVMNG_STATE_XSAVE: u32 = 5;
/// `struct kvm_xsave` of `KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)` bytes.
pub const KVMNG_STATE_XSAVE2: u32 = 6;
/// `struct kvm_xcrs`.
pub const KVMNG_STATE_XCRS: u32 = 7;
/// `struct kvm_msrs` followed by its entries.
pub const KVMNG_STATE_MSRS: u32 = 8;
/// `struct kvm_lapic_state`.
pub const KVMNG_STATE_LAPIC: u32 = 9;
/// `struct kvm_vcpu_events`.
pub const KVMNG_STATE_EVENTS: u32 = 10;
/// `struct kvm_mp_state`.
pub const KVMNG_STATE_MP_STATE: u32 = 11;
/// `struct kvm_debugregs`.
pub const KVMNG_STATE_DEBUGREGS: u32 = 12;
/// `struct kvm_cpuid2` followed by its entries.
pub const KVMNG_STATE_CPUID: u32 = 13;
/// `struct kvm_one_reg`.
pub const KVMNG_STATE_ONE_REG: u32 = 14;
/// The highest kind.
pub const KVMNG_STATE_KIND_MAX: u32 = KVMNG_STATE_ONE_REG;

/// The most entries one `kvmng_vcpu_state()` call takes.
pub const KVMNG_STATE_MAX_ENTRIES: u32 = 64;
/// `result` of an entry not attempted because an earlier one failed.
pub const KVMNG_STATE_NOT_DONE: i32 = -libc::ECANCELED;

/// VM scope: set GSI `nr` to `level`.
pub const KVMNG_IRQ_LINE: u32 = 1;
/// vCPU scope: queue external interrupt vector `nr`.
pub const KVMNG_IRQ_INTERRUPT: u32 = 2;
/// vCPU scope: queue an NMI.
pub const KVMNG_IRQ_NMI: u32 = 3;
/// vCPU scope: queue an SMI.
pub const KVMNG_IRQ_SMI: u32 = 4;

/// The most regions one `kvmng_memory_map()` call takes.
pub const KVMNG_MEMORY_MAP_MAX: u32 = 256;

/// `kvmng_control()` scope: an ioctl of `/dev/kvm`.
pub const KVMNG_SCOPE_SYSTEM: u32 = 0;
/// `kvmng_control()` scope: an ioctl of the bound VM.
pub const KVMNG_SCOPE_VM: u32 = 1;
/// `kvmng_control()` scope: an ioctl of the calling thread's vCPU.
pub const KVMNG_SCOPE_VCPU: u32 = 2;

/// `kvmng_ioregion()`: a guest-physical (or port) range whose accesses go
/// to a device over an `AF_UNIX` `SOCK_SEQPACKET` socket.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvmng_ioregion {
    /// Guest-physical address, or first port.
    pub addr: u64,
    /// Size in bytes (ports); not 0.
    pub size: u64,
    /// Connected `AF_UNIX` `SOCK_SEQPACKET` socket (`KVMNG_IOREGION_ADD`).
    pub fd: i32,
    /// [`KVMNG_IOREGION_PIO`], [`KVMNG_IOREGION_POSTED`].
    pub flags: u32,
    /// Copied into every request.
    pub user_data: u64,
    /// Must be 0.
    pub reserved: [u64; 4],
}

/// `kvmng_ioregion()` op: register a region.
pub const KVMNG_IOREGION_ADD: u32 = 1;
/// `kvmng_ioregion()` op: remove the region with exactly this range.
pub const KVMNG_IOREGION_DEL: u32 = 2;

/// The region is in port I/O space, not MMIO.
pub const KVMNG_IOREGION_PIO: u32 = 1 << 0;
/// Writes to the region are posted: sent without waiting for a reply.
pub const KVMNG_IOREGION_POSTED: u32 = 1 << 1;
/// Every valid `struct kvmng_ioregion` flag.
pub const KVMNG_IOREGION_FLAGS: u32 = KVMNG_IOREGION_PIO | KVMNG_IOREGION_POSTED;

/// The most regions a VM has (MMIO and PIO together).
pub const KVMNG_IOREGION_MAX: u32 = 256;
/// The largest region, in bytes.
pub const KVMNG_IOREGION_MAX_SIZE: u64 = 1 << 30;
/// Port I/O regions end at or below this port.
pub const KVMNG_IOREGION_PIO_END: u64 = 0x10000;

/// One guest access, sent to the device (wire protocol).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvmng_ioregion_request {
    /// Never 0, never reused; increasing in the order each vCPU sends.
    pub id: u64,
    /// Offset of the access from the region's `addr`.
    pub offset: u64,
    /// Write: the bytes written (the low `len` bytes, little-endian). Read: 0.
    pub data: u64,
    /// The region's `user_data`.
    pub user_data: u64,
    /// The accessing vCPU's id.
    pub vcpu_id: u32,
    /// 1 to 8 bytes.
    pub len: u8,
    /// [`KVMNG_IOREGION_READ`] or [`KVMNG_IOREGION_WRITE`].
    pub dir: u8,
    /// `KVMNG_IOREGION_REQ_*`.
    pub flags: u8,
    /// 0.
    pub pad: u8,
}

/// The device's answer to a read, or to a write that is not posted.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvmng_ioregion_reply {
    /// The request's id.
    pub id: u64,
    /// Read: the value (the low `len` bytes). Write: 0.
    pub data: u64,
}

/// A guest read.
pub const KVMNG_IOREGION_READ: u32 = 0;
/// A guest write.
pub const KVMNG_IOREGION_WRITE: u32 = 1;
/// Request flag: a posted write; the device sends no reply.
pub const KVMNG_IOREGION_REQ_POSTED: u32 = 1 << 0;
/// Request flag: a port access.
pub const KVMNG_IOREGION_REQ_PIO: u32 = 1 << 1;
