//! The differential mode's operations: one kvmng call (or a step around
//! calls: a device's behaviour, a thread's exit, a fork) with every
//! argument fixed, and their generator. An operation names fds by role
//! and memory by arena offset, so that it means the same on both sides.

use crate::rng::Rng;
use kvmng_abi::ioctls::{self, ioc_size, FdClass, KVM_IOCTLS};
use kvmng_abi::*;

/// The thread a call is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Th {
    Main,
    W1,
    W2,
}

impl Th {
    pub fn index(self) -> usize {
        match self {
            Th::Main => 0,
            Th::W1 => 1,
            Th::W2 => 2,
        }
    }
}

/// An fd argument, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdSel {
    Kvm,
    KvmReadOnly,
    DevNull,
    Eventfd,
    /// The n-th VM fd this side made (modulo their number).
    Vm(u8),
    /// The n-th vCPU fd this side made.
    Vcpu(u8),
    /// The vCPU end of device socket n (connected SOCK_SEQPACKET).
    Dev(u8),
    StreamSock,
    DgramSock,
    UnconnectedSeqpacket,
    InetSock,
    /// A number that is not open (below the emulation's private fds).
    Closed,
    Minus1,
}

/// A pointer argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ptr {
    /// The arena's byte at this offset (what the op put there).
    Arena(usize),
    /// In the unmapped guard page after the arena.
    Guard(usize),
    Null,
    Kernel,
}

/// One `struct kvmng_state_entry`, with its buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: u32,
    pub op: u32,
    pub size: u32,
    /// Where the buffer is.
    pub at: Ptr,
    /// What a SET finds there (and a GET overwrites).
    pub data: Vec<u8>,
}

/// One `struct kvm_userspace_memory_region2`; `pool` is an offset in the
/// guest-memory pool (or `u64::MAX`: an unmapped address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub slot: u32,
    pub flags: u32,
    pub gpa: u64,
    pub size: u64,
    pub pool: u64,
    pub gmem_fd: u32,
}

/// How a device thread treats the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevMode {
    /// Answers every read and non-posted write at once.
    Answer,
    /// Answers nothing: the waiting vCPU gets immediate_exit and a signal.
    Stall,
    /// Closes its end at the next request.
    Die,
    /// Answers the next request with a malformed message (kind 0..5),
    /// then answers normally.
    Malformed(u8),
}

/// A call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    CreateVm {
        kvm: FdSel,
        ty: u64,
        flags: u32,
    },
    BindVm {
        fd: FdSel,
        flags: u32,
    },
    CreateVcpu {
        id: u64,
        flags: u32,
    },
    BindVcpu {
        fd: FdSel,
        flags: u32,
    },
    /// kvmng_run (or kvmng_control(VCPU, KVM_RUN) when `control`), after
    /// writing `fill` as the data of a pending read; `imm` sets
    /// immediate_exit first.
    Run {
        flags: u32,
        imm: bool,
        fill: u64,
        control: bool,
    },
    /// The KVM_RUN ioctl on vCPU fd n (the dual interface).
    RawRun {
        vcpu: u8,
        fill: u64,
    },
    State {
        entries: Vec<Entry>,
        count: u32,
        at: Ptr,
        flags: u32,
    },
    /// SET of the sane registers (the guest's start) on the caller's vCPU.
    Reset,
    Irq {
        kind: u32,
        nr: u32,
        level: u32,
        flags: u32,
    },
    MemMap {
        regions: Vec<Region>,
        count: u32,
        at: Ptr,
        flags: u32,
    },
    Control {
        scope: u32,
        cmd: u32,
        arg: CtlArg,
        flags: u32,
    },
    Ioregion {
        op: u32,
        region: kvmng_ioregion,
        fd: FdSel,
        at: Ptr,
        flags: u32,
    },
    /// ADD of 257 one-port regions (ENOSPC at the last), then DEL of each.
    IoregionFill,
    Device {
        dev: u8,
        mode: DevMode,
    },
    /// A new device socket n (the old one closed on both ends).
    NewDevice {
        dev: u8,
    },
    ExitThread(Th),
    /// fork(); the child makes these calls (from its one thread) and exits.
    Fork(Vec<Call>),
    /// The call with exactly `free` fds free below RLIMIT_NOFILE.
    FdLimit {
        free: u8,
        call: Box<Call>,
    },
}

/// The argument of a control call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlArg {
    Int(u64),
    Buf { off: usize, data: Vec<u8> },
    Region(Region),
    Region1(Region),
    Ptr(Ptr),
}

/// One operation: a call from a thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub th: Th,
    pub call: Call,
}

/// A `KVMNG_IOREGION_ADD` of `[addr, addr + size)` on device socket
/// `dev`, the struct at the arena's start.
pub fn ioregion_add(addr: u64, size: u64, flags: u32, user_data: u64, dev: u8) -> Call {
    Call::Ioregion {
        op: KVMNG_IOREGION_ADD,
        region: kvmng_ioregion {
            addr,
            size,
            fd: 0,
            flags,
            user_data,
            reserved: [0; 4],
        },
        fd: FdSel::Dev(dev),
        at: Ptr::Arena(0),
        flags: 0,
    }
}

/// The syscall an operation is (0..9: kvmng_create_vm..kvmng_ioregion;
/// 10: anything else).
pub fn syscall_of(c: &Call) -> u8 {
    match c {
        Call::CreateVm { .. } => 0,
        Call::BindVm { .. } => 1,
        Call::CreateVcpu { .. } => 2,
        Call::BindVcpu { .. } => 3,
        Call::Run { control: false, .. } => 4,
        Call::Run { control: true, .. } => 8,
        Call::State { .. } | Call::Reset => 5,
        Call::Irq { .. } => 6,
        Call::MemMap { .. } => 7,
        Call::Control { .. } => 8,
        Call::Ioregion { .. } | Call::IoregionFill => 9,
        Call::FdLimit { call, .. } => syscall_of(call),
        _ => 10,
    }
}

pub const SYSCALL_NAMES: [&str; 11] = [
    "kvmng_create_vm",
    "kvmng_bind_vm",
    "kvmng_create_vcpu",
    "kvmng_bind_vcpu",
    "kvmng_run",
    "kvmng_vcpu_state",
    "kvmng_irq",
    "kvmng_memory_map",
    "kvmng_control",
    "kvmng_ioregion",
    "(other: raw KVM_RUN, fork, device, thread)",
];

/// The size of the legacy struct of a state kind (the table of 5.6, as
/// the library keeps it), 8 for an unknown kind.
pub fn state_min(kind: u32) -> u32 {
    kvmng::state_kinds::KINDS
        .iter()
        .find(|k| k.kind == kind)
        .map_or(8, |k| k.min_size)
}

/// The GET ioctl a state kind stands for (for the time masks of mask.rs).
pub fn state_get_cmd(kind: u32) -> u64 {
    match kind {
        KVMNG_STATE_FPU => ioctls::KVM_GET_FPU,
        KVMNG_STATE_XSAVE => ioctls::KVM_GET_XSAVE,
        KVMNG_STATE_XSAVE2 => ioctls::KVM_GET_XSAVE2,
        KVMNG_STATE_MSRS => ioctls::KVM_GET_MSRS,
        KVMNG_STATE_LAPIC => ioctls::KVM_GET_LAPIC,
        _ => 0,
    }
}

/// The guest-physical window of the fuzzed slots and I/O regions.
pub const MMIO_BASE: u64 = 0xD0000;
pub const PIO_BASE: u64 = 0x700;
/// Guest-memory pool: 2 MiB, slot 0 is its first 64 KiB.
pub const POOL: usize = 2 << 20;
pub const SLOT0: usize = 0x10000;
/// The arena: 20 KiB usable, then a guard page.
pub const ARENA: usize = 5 * 4096;

/// What the generator knows of the side (from the outcomes, which are the
/// same on both sides up to the first divergence).
#[derive(Default, Clone)]
pub struct Model {
    pub vms: usize,
    pub vcpus: usize,
    /// Per thread: the vCPU index it is bound to.
    pub bound: [Option<usize>; 3],
    /// Per vCPU: its state was changed since the last reset.
    pub dirty: Vec<bool>,
    pub vm_bound: bool,
    pub vm_dirty: bool,
    pub irqchip: bool,
    pub regions: i64,
    pub next_id: u64,
    /// Outputs of successful GETs, by state kind.
    pub outputs: std::collections::HashMap<u32, Vec<u8>>,
    pub msr_indices: Vec<u32>,
    /// A call of this process answered EIO: KVM marked a VM dead (an SMI
    /// whose SMRAM cannot be written does; every object is this mm's).
    pub dead_seen: bool,
    /// --known-kernel-bugs: no I/O region over the guest's string port
    /// (0x704..0x708), where the kernel series returns a string OUT to
    /// userspace instead of sending it (docs/reliability.md).
    pub avoid_string_port: bool,
    /// The VM bound to the mm (index in the side's VM list), and the VM
    /// of each vCPU.
    pub bound_vm: Option<usize>,
    pub vcpu_vm: Vec<Option<usize>>,
    /// The mm's binding changed since the set-up: the emulation has
    /// emptied its slot table (api.md §6 "Rollback").
    pub rebound: bool,
    /// Per device socket: a region was added on it (since the socket was
    /// made), so it may serve this process's VM.
    pub dev_regions: [bool; 2],
    /// In a fork child: the device sockets that served the parent's VM
    /// at the fork (api.md 5.10: "a socket serves one VM only").
    pub parent_dev_regions: [bool; 2],
}

fn pick_th(rng: &mut Rng) -> Th {
    match rng.below(10) {
        0..=6 => Th::Main,
        7 | 8 => Th::W1,
        _ => Th::W2,
    }
}

fn fd_sel(rng: &mut Rng, m: &Model, want: FdClass) -> FdSel {
    let roll = rng.below(100);
    if roll < 70 {
        match want {
            FdClass::Vm => return FdSel::Vm(rng.below(m.vms.max(1) as u64) as u8),
            FdClass::Vcpu => return FdSel::Vcpu(rng.below(m.vcpus.max(1) as u64) as u8),
            _ => return FdSel::Kvm,
        }
    }
    rng.pick(&[
        FdSel::Kvm,
        FdSel::KvmReadOnly,
        FdSel::DevNull,
        FdSel::Eventfd,
        FdSel::Vm(0),
        FdSel::Vcpu(0),
        FdSel::Dev(0),
        FdSel::Closed,
        FdSel::Minus1,
        FdSel::StreamSock,
    ])
}

fn flags(rng: &mut Rng, valid: u32) -> u32 {
    match rng.below(20) {
        0 => 1 << rng.below(32),
        1 => rng.next() as u32,
        2 => u32::MAX,
        _ => valid & rng.next() as u32,
    }
}

fn ptr(rng: &mut Rng, len: usize) -> Ptr {
    let len = len.min(ARENA);
    match rng.below(40) {
        0 => Ptr::Null,
        1 => Ptr::Kernel,
        2 | 3 => Ptr::Guard(rng.below(64) as usize),
        // Runs into the guard page.
        4 | 5 => Ptr::Arena(ARENA - len + rng.below(len as u64 + 1) as usize),
        6 => Ptr::Arena(ARENA - len),
        _ => Ptr::Arena(0),
    }
}

/// Every state kind, in number order (the generator picks from it).
fn kinds() -> [u32; KVMNG_STATE_KIND_MAX as usize] {
    STATE_KINDS.map(|(_, kind)| kind)
}

fn msrs(rng: &mut Rng, m: &Model) -> Vec<u8> {
    let n = rng.pick(&[0usize, 1, 2, 4, 8]);
    let mut d = vec![0u8; 8 + 16 * n];
    d[..4].copy_from_slice(&(n as u32).to_le_bytes());
    for e in 0..n {
        let index = if !m.msr_indices.is_empty() && rng.chance(85) {
            rng.pick(&m.msr_indices)
        } else {
            rng.next() as u32
        };
        d[8 + 16 * e..12 + 16 * e].copy_from_slice(&index.to_le_bytes());
    }
    d
}

fn entry(rng: &mut Rng, m: &Model) -> Entry {
    let kind = match rng.below(30) {
        0 => rng.pick(&[0, 15, 16, 255, u32::MAX]),
        _ => rng.pick(&kinds()),
    };
    let op = match rng.below(25) {
        0 => rng.pick(&[0, 3, u32::MAX]),
        1..=15 => KVMNG_STATE_GET,
        _ => KVMNG_STATE_SET,
    };
    let min = state_min(kind);
    let mut data = if op == KVMNG_STATE_SET {
        match m.outputs.get(&kind) {
            Some(d) if rng.chance(80) => {
                let mut d = d.clone();
                if rng.chance(30) && !d.is_empty() {
                    let i = rng.below(d.len() as u64) as usize;
                    d[i] = rng.next() as u8;
                }
                d
            }
            _ => {
                let mut d = vec![0; min as usize];
                if rng.chance(50) {
                    rng.fill(&mut d);
                }
                d
            }
        }
    } else {
        vec![0; min as usize]
    };
    match kind {
        KVMNG_STATE_MSRS if op == KVMNG_STATE_GET || rng.chance(50) => data = msrs(rng, m),
        KVMNG_STATE_CPUID if op == KVMNG_STATE_GET => {
            let n = rng.pick(&[0u32, 1, 8, 64, 100]);
            data = vec![0; 8 + 40 * n as usize];
            data[..4].copy_from_slice(&n.to_le_bytes());
        }
        KVMNG_STATE_MP_STATE if op == KVMNG_STATE_SET && rng.chance(70) => {
            // RUNNABLE mostly: a HALTED vCPU of an in-kernel irqchip waits.
            data = 0u32.to_le_bytes().to_vec();
        }
        _ => {}
    }
    if kind == KVMNG_STATE_MSRS && rng.chance(5) {
        // A count the buffer does not hold, or one KVM refuses (E2BIG).
        let n = rng.pick(&[1u32, 255, 256, 300]);
        data[..4].copy_from_slice(&n.to_le_bytes());
        if rng.chance(50) {
            data.resize((8 + 16 * n as usize).min(ARENA / 2), 0);
        }
    }
    let mut size = match rng.below(20) {
        0 => min.saturating_sub(1),
        1 => 0,
        2 => u32::MAX,
        3 => min + 8,
        _ => (data.len() as u32).max(min),
    };
    if kind == KVMNG_STATE_XSAVE2 && rng.chance(80) {
        size = size.max(4096);
    }
    let at = match rng.below(30) {
        0 => Ptr::Null,
        1 => Ptr::Guard(0),
        2 => Ptr::Kernel,
        _ => Ptr::Arena(0),
    };
    Entry {
        kind,
        op,
        size,
        at,
        data,
    }
}

fn region(rng: &mut Rng) -> Region {
    let slot = match rng.below(40) {
        0 => 0,
        1 => 32767,
        2 => 32768,
        3 => 0x1_0001,
        4 => rng.next() as u32,
        _ => 1 + rng.below(5) as u32,
    };
    let gpa = match rng.below(12) {
        0..=3 => 0x10000,
        4..=6 => 0x20000,
        7 => 0x30000,
        8 => 0x100000,
        9 => 0x10800,
        10 => MMIO_BASE,
        _ => rng.below(1 << 20) & !0xfff,
    };
    let size = match rng.below(12) {
        0..=4 => 0x10000,
        5 | 6 => 0,
        7 => 0x1000,
        8 => 0x800,
        9 => 0x20000,
        10 => 1 << 40,
        _ => (1 + rng.below(16)) << 12,
    };
    let pool = match rng.below(20) {
        0 => u64::MAX,
        1 => 0x123,
        2 => 0, // slot 0's own memory: aliasing is allowed
        _ => (1 + rng.below(24)) << 16,
    };
    let flags = match rng.below(10) {
        0 => rng.next() as u32 & 0x1f,
        1 => 1, // KVM_MEM_LOG_DIRTY_PAGES
        2 => 2, // KVM_MEM_READONLY
        3 => 4, // KVM_MEM_GUEST_MEMFD
        _ => 0,
    };
    Region {
        slot,
        flags,
        gpa,
        size,
        pool,
        gmem_fd: 0,
    }
}

/// A control call's scope, command and argument.
fn control(rng: &mut Rng, m: &Model) -> Call {
    let scope = match rng.below(30) {
        0 => rng.pick(&[3, 4, u32::MAX]),
        1..=6 => KVMNG_SCOPE_SYSTEM,
        7..=16 => KVMNG_SCOPE_VM,
        _ => KVMNG_SCOPE_VCPU,
    };
    let class = match scope {
        KVMNG_SCOPE_SYSTEM => FdClass::System,
        KVMNG_SCOPE_VM => FdClass::Vm,
        _ => FdClass::Vcpu,
    };
    // Requests that would make the outcome depend on time (a ticking
    // PIT), or that a control call carries elsewhere in this generator.
    const NEVER: [u64; 3] = [
        ioctls::KVM_CREATE_PIT,
        ioctls::KVM_CREATE_PIT2,
        ioctls::KVM_RUN,
    ];
    let cmd: u64 = loop {
        let c = match rng.below(20) {
            0 => KVM_IOCTLS[rng.below(KVM_IOCTLS.len() as u64) as usize].cmd,
            1 => rng.next() & 0xffff_ffff,
            2..=4 if scope == KVMNG_SCOPE_VM => ioctls::KVM_SET_USER_MEMORY_REGION2,
            5 if scope == KVMNG_SCOPE_VM => ioctls::KVM_SET_USER_MEMORY_REGION,
            6 if scope != KVMNG_SCOPE_VCPU => ioctls::KVM_CHECK_EXTENSION,
            _ => {
                let rows: Vec<u64> = KVM_IOCTLS
                    .iter()
                    .filter(|r| r.valid_on(class))
                    .map(|r| r.cmd)
                    .collect();
                if rows.is_empty() {
                    ioctls::KVM_CHECK_EXTENSION
                } else {
                    rng.pick(&rows)
                }
            }
        };
        if NEVER.contains(&c) {
            continue;
        }
        if matches!(c, ioctls::KVM_CREATE_VM | ioctls::KVM_CREATE_VCPU) && !rng.chance(10) {
            continue;
        }
        break c;
    };
    let arg = match cmd {
        ioctls::KVM_SET_USER_MEMORY_REGION2 if rng.chance(90) => CtlArg::Region(region(rng)),
        ioctls::KVM_SET_USER_MEMORY_REGION if rng.chance(90) => CtlArg::Region1(region(rng)),
        ioctls::KVM_CHECK_EXTENSION => CtlArg::Int(match rng.below(4) {
            0 => u64::from(KVM_CAP_KVMNG),
            _ => rng.below(250),
        }),
        ioctls::KVM_CREATE_VCPU => CtlArg::Int(rng.pick(&[m.next_id, 0, 1, 7, 1024])),
        _ if ioc_size(cmd) == 0 && cmd != ioctls::KVM_REINJECT_CONTROL => {
            CtlArg::Int(match rng.below(4) {
                0 => rng.next(),
                _ => rng.below(8),
            })
        }
        _ => match rng.below(20) {
            0 => CtlArg::Ptr(rng.pick(&[Ptr::Null, Ptr::Kernel, Ptr::Guard(0)])),
            1 => CtlArg::Int(rng.below(300)),
            _ => {
                let size = (ioc_size(cmd) as usize).max(8);
                let mut data = vec![0u8; size];
                if rng.chance(50) {
                    rng.fill(&mut data);
                }
                if data.len() >= 4 && rng.chance(50) {
                    let n = rng.pick(&[0u32, 1, 2, 8, 64, 256, 257]);
                    data[..4].copy_from_slice(&n.to_le_bytes());
                    let want = 8 + 40 * n as usize;
                    if want > data.len() && want <= ARENA / 2 && rng.chance(50) {
                        data.resize(want, 0);
                    }
                }
                if cmd == ioctls::KVM_SET_SIGNAL_MASK {
                    unblock_kick_signal(&mut data);
                }
                let off = match rng.below(10) {
                    0 => ARENA - size.min(ARENA) + rng.below(size.min(ARENA) as u64) as usize,
                    _ => 0,
                };
                CtlArg::Buf { off, data }
            }
        },
    };
    Call::Control {
        scope,
        cmd: cmd as u32,
        arg,
        flags: flags(rng, 0),
    }
}

/// Clears SIGUSR1 in a `struct kvm_signal_mask` (a 4-byte length, then
/// the set): the stalling device and the watchdog end a vCPU's wait with
/// SIGUSR1, so a KVM mask that blocks it would leave that run waiting
/// forever, on both sides alike. The length stays fuzzed, and so does the
/// buffer's size: the kernel reads 8 bytes of set after the length, so a
/// buffer of 8 bytes (the size the request number gives) still holds the
/// byte of SIGUSR1, and the bytes past its end come from the arena.
fn unblock_kick_signal(mask: &mut [u8]) {
    let bit = (libc::SIGUSR1 - 1) as usize;
    if let Some(b) = mask.get_mut(4 + bit / 8) {
        *b &= !(1u8 << (bit % 8));
    }
}

fn ioregion(rng: &mut Rng, m: &Model) -> Call {
    let pio = rng.chance(50);
    let addr = match rng.below(12) {
        0 => rng.next(),
        1 => u64::MAX,
        2 => 0xffff,
        3 => 0x10000,
        _ if pio => PIO_BASE + rng.pick(&[0, 4, 0]),
        _ => MMIO_BASE + rng.pick(&[0, 4, 8, 0xc, 0]),
    };
    let size = match rng.below(14) {
        0 => 0,
        1 => 1 << 30,
        2 => (1 << 30) + 1,
        3 => u64::MAX,
        4 => 1,
        5 => 2,
        6 => 0x1000,
        7 => 0x10000,
        _ => rng.pick(&[4, 8, 16]),
    };
    let mut rflags = if pio { KVMNG_IOREGION_PIO } else { 0 };
    if rng.chance(30) {
        rflags |= KVMNG_IOREGION_POSTED;
    }
    if rng.chance(5) {
        rflags |= 1 << (2 + rng.below(30));
    }
    let mut reserved = [0u64; 4];
    if rng.chance(4) {
        reserved[rng.below(4) as usize] = 1;
    }
    let fd = match rng.below(20) {
        0 => FdSel::StreamSock,
        1 => FdSel::DgramSock,
        2 => FdSel::UnconnectedSeqpacket,
        3 => FdSel::InetSock,
        4 => FdSel::Eventfd,
        5 => FdSel::Closed,
        6 => FdSel::Minus1,
        7 | 8 => FdSel::Dev(1),
        _ => FdSel::Dev(0),
    };
    let (mut addr, mut size) = (addr, size);
    if m.avoid_string_port
        && pio
        && addr < 0x708
        && addr.wrapping_add(size) > 0x704
        && addr <= 0x704
    {
        (addr, size) = (PIO_BASE, 4);
    }
    let op = match rng.below(20) {
        0 => rng.pick(&[0, 3, u32::MAX]),
        1..=6 => KVMNG_IOREGION_DEL,
        _ => KVMNG_IOREGION_ADD,
    };
    Call::Ioregion {
        op,
        region: kvmng_ioregion {
            addr,
            size,
            fd: 0,
            flags: rflags,
            user_data: rng.next(),
            reserved,
        },
        fd,
        at: match rng.below(30) {
            0 => Ptr::Null,
            1 => Ptr::Guard(0),
            2 => Ptr::Arena(ARENA - 32),
            _ => Ptr::Arena(0),
        },
        flags: flags(rng, 0),
    }
}

/// A call of the kinds a fork child makes (no feedback: it is fixed when
/// the parent generates the fork).
fn child_call(rng: &mut Rng, m: &Model) -> Call {
    match rng.below(12) {
        0 => Call::BindVm {
            fd: FdSel::Vm(rng.below(m.vms.max(1) as u64) as u8),
            flags: 0,
        },
        1 => Call::BindVcpu {
            fd: FdSel::Vcpu(rng.below(m.vcpus.max(1) as u64) as u8),
            flags: 0,
        },
        2 => Call::CreateVcpu {
            id: 0,
            flags: KVMNG_CREATE_VCPU_BIND,
        },
        3 => Call::Run {
            flags: 0,
            imm: true,
            fill: 0,
            control: false,
        },
        4 => Call::Irq {
            kind: KVMNG_IRQ_LINE,
            nr: 0,
            level: 1,
            flags: 0,
        },
        5 => Call::MemMap {
            regions: vec![region(rng)],
            count: 1,
            at: Ptr::Arena(0),
            flags: 0,
        },
        6 => Call::Control {
            scope: KVMNG_SCOPE_SYSTEM,
            cmd: ioctls::KVM_CHECK_EXTENSION as u32,
            arg: CtlArg::Int(0),
            flags: 0,
        },
        7 => Call::State {
            entries: vec![Entry {
                kind: KVMNG_STATE_REGS,
                op: KVMNG_STATE_GET,
                size: 144,
                at: Ptr::Arena(0),
                data: vec![0; 144],
            }],
            count: 1,
            at: Ptr::Arena(0),
            flags: 0,
        },
        8 => Call::CreateVm {
            kvm: FdSel::Kvm,
            ty: 0,
            flags: 0,
        },
        9 => ioregion_add(PIO_BASE, 4, KVMNG_IOREGION_PIO, 1, 0),
        10 => Call::BindVm {
            fd: FdSel::Minus1,
            flags: 0,
        },
        _ => Call::CreateVcpu { id: 0, flags: 0 },
    }
}

/// The next operation.
pub fn op(rng: &mut Rng, m: &Model) -> Op {
    let th = pick_th(rng);
    let me = m.bound[th.index()];
    let call = match rng.below(1000) {
        0..=7 => Call::CreateVm {
            kvm: fd_sel(rng, m, FdClass::System),
            ty: if rng.chance(90) {
                0
            } else {
                rng.pick(&[1, 2, 3, 0x100, u64::MAX])
            },
            flags: flags(rng, 0),
        },
        8..=29 => Call::BindVm {
            fd: if rng.chance(10) {
                FdSel::Minus1
            } else {
                fd_sel(rng, m, FdClass::Vm)
            },
            flags: flags(rng, 0),
        },
        30..=64 => Call::CreateVcpu {
            id: match rng.below(10) {
                0 => rng.next(),
                1 => 1024,
                2 => 0,
                _ => m.next_id,
            },
            flags: flags(rng, KVMNG_CREATE_VCPU_BIND),
        },
        65..=109 => Call::BindVcpu {
            fd: if rng.chance(20) {
                FdSel::Minus1
            } else {
                fd_sel(rng, m, FdClass::Vcpu)
            },
            flags: flags(rng, 0),
        },
        110..=359 => {
            let dirty = me.is_none_or(|v| m.dirty.get(v).copied().unwrap_or(true)) || m.vm_dirty;
            Call::Run {
                flags: if rng.chance(97) { 0 } else { flags(rng, 0) },
                imm: dirty || rng.chance(5),
                fill: rng.next(),
                control: rng.chance(15),
            }
        }
        360..=374 => Call::RawRun {
            vcpu: rng.below(m.vcpus.max(1) as u64) as u8,
            fill: rng.next(),
        },
        375..=529 => {
            let n = match rng.below(30) {
                0 => 0,
                1 => 64,
                2 => 65,
                _ => 1 + rng.below(4) as usize,
            };
            let entries: Vec<Entry> = (0..n.min(65)).map(|_| entry(rng, m)).collect();
            let count = match rng.below(40) {
                0 => u32::MAX,
                1 => 0,
                2 => entries.len() as u32 + 1,
                _ => entries.len() as u32,
            };
            Call::State {
                entries,
                count,
                at: ptr(rng, n * 24),
                flags: flags(rng, 0),
            }
        }
        530..=569 => Call::Reset,
        570..=619 => {
            let kind = match rng.below(20) {
                0 => rng.pick(&[0, 5, u32::MAX]),
                1..=8 => KVMNG_IRQ_LINE,
                9..=13 => KVMNG_IRQ_INTERRUPT,
                14..=18 => KVMNG_IRQ_NMI,
                _ => KVMNG_IRQ_SMI,
            };
            let (mut nr, mut level) = match kind {
                KVMNG_IRQ_LINE => (
                    rng.pick(&[0, 1, 4, 8, 15, 23, 24, 1000]),
                    rng.pick(&[0, 1, 1, 2]),
                ),
                KVMNG_IRQ_INTERRUPT => (rng.pick(&[0x20, 0x30, 255, 256]), 0),
                _ => (0, 0),
            };
            if rng.chance(5) {
                nr = rng.next() as u32;
            }
            if rng.chance(5) {
                level = rng.next() as u32;
            }
            Call::Irq {
                kind,
                nr,
                level,
                flags: flags(rng, 0),
            }
        }
        620..=719 => {
            let n = match rng.below(40) {
                0 => 0,
                1 => 256,
                2 => 257,
                _ => 1 + rng.below(4) as usize,
            };
            let regions: Vec<Region> = (0..n.min(257)).map(|_| region(rng)).collect();
            let count = match rng.below(40) {
                0 => u32::MAX,
                1 => regions.len() as u32 + 1,
                _ => regions.len() as u32,
            };
            Call::MemMap {
                regions,
                count,
                at: ptr(rng, n * 40),
                flags: flags(rng, 0),
            }
        }
        720..=849 => control(rng, m),
        850..=929 => ioregion(rng, m),
        930..=933 => Call::IoregionFill,
        934..=963 => Call::Device {
            dev: rng.below(2) as u8,
            mode: match rng.below(10) {
                0..=2 => DevMode::Answer,
                3..=4 => DevMode::Stall,
                5 => DevMode::Die,
                _ => DevMode::Malformed(rng.below(6) as u8),
            },
        },
        964..=969 => Call::NewDevice {
            dev: rng.below(2) as u8,
        },
        970..=977 => Call::ExitThread(rng.pick(&[Th::W1, Th::W2])),
        978..=996 => {
            let n = 1 + rng.below(5) as usize;
            Call::Fork((0..n).map(|_| child_call(rng, m)).collect())
        }
        _ => {
            let call = match rng.below(5) {
                0 => Call::CreateVm {
                    kvm: FdSel::Kvm,
                    ty: 0,
                    flags: 0,
                },
                1 => Call::BindVm {
                    fd: FdSel::Vm(rng.below(m.vms.max(1) as u64) as u8),
                    flags: 0,
                },
                2 => Call::CreateVcpu {
                    id: m.next_id,
                    flags: KVMNG_CREATE_VCPU_BIND,
                },
                3 => Call::BindVcpu {
                    fd: FdSel::Vcpu(rng.below(m.vcpus.max(1) as u64) as u8),
                    flags: 0,
                },
                _ => Call::Ioregion {
                    op: KVMNG_IOREGION_ADD,
                    region: kvmng_ioregion {
                        addr: 0x900 + rng.below(64),
                        size: 1,
                        fd: 0,
                        flags: KVMNG_IOREGION_PIO,
                        user_data: 7,
                        reserved: [0; 4],
                    },
                    fd: FdSel::Dev(rng.below(2) as u8),
                    at: Ptr::Arena(0),
                    flags: 0,
                },
            };
            Call::FdLimit {
                free: rng.below(3) as u8,
                call: Box::new(call),
            }
        }
    };
    let th = match call {
        // Forks and thread exits are the main thread's.
        Call::Fork(_) | Call::ExitThread(_) | Call::FdLimit { .. } => Th::Main,
        _ => th,
    };
    Op { th, call }
}

/// What an outcome tells the model (`ok`: the call succeeded; `ret`: its
/// return value, fds normalized to 0).
pub fn learn(m: &mut Model, op: &Op, ok: bool) {
    let t = op.th.index();
    // The binding changes (the emulation's vm_binding_changed): a new VM,
    // a bind when none is bound, an unbind when one is.
    let changes = match &op.call {
        Call::CreateVm { .. } => m.vcpus > 0,
        Call::BindVm {
            fd: FdSel::Minus1, ..
        } => m.vm_bound,
        Call::BindVm { .. } => !m.vm_bound,
        _ => false,
    };
    if ok && changes {
        m.rebound = true;
    }
    match &op.call {
        Call::CreateVm { .. } if ok => {
            m.vms += 1;
            m.vm_bound = true;
            m.bound_vm = Some(m.vms - 1);
        }
        Call::BindVm {
            fd: FdSel::Minus1, ..
        } if ok => {
            m.vm_bound = false;
            m.bound_vm = None;
        }
        Call::BindVm { fd, .. } if ok => {
            m.vm_bound = true;
            if let FdSel::Vm(i) = fd {
                m.bound_vm = Some(*i as usize % m.vms.max(1));
            }
        }
        Call::CreateVcpu { flags, .. } if ok => {
            m.vcpu_vm.push(m.bound_vm);
            m.vcpus += 1;
            m.dirty.push(true);
            m.next_id += 1;
            if flags & KVMNG_CREATE_VCPU_BIND != 0 {
                m.bound[t] = Some(m.vcpus - 1);
            }
        }
        Call::BindVcpu {
            fd: FdSel::Minus1, ..
        } if ok => m.bound[t] = None,
        Call::BindVcpu {
            fd: FdSel::Vcpu(i), ..
        } if ok => {
            let i = *i as usize % m.vcpus.max(1);
            m.bound[t] = Some(i);
        }
        Call::Reset if ok => {
            if let Some(v) = m.bound[t] {
                m.dirty[v] = false;
            }
        }
        Call::State { entries, .. } if entries.iter().any(|e| e.op != KVMNG_STATE_GET) => {
            if let Some(v) = m.bound[t] {
                m.dirty[v] = true;
            }
        }
        Call::Irq { kind, .. } if ok && *kind != KVMNG_IRQ_LINE => {
            if let Some(v) = m.bound[t] {
                m.dirty[v] = true;
            }
        }
        Call::Control {
            scope: KVMNG_SCOPE_VCPU,
            ..
        } if ok => {
            if let Some(v) = m.bound[t] {
                m.dirty[v] = true;
            }
        }
        Call::Control {
            scope, cmd, arg, ..
        } if ok => {
            if *scope == KVMNG_SCOPE_VM && u64::from(*cmd) == ioctls::KVM_CREATE_VCPU {
                m.vcpu_vm.push(m.bound_vm);
                m.vcpus += 1;
                m.dirty.push(true);
                if let CtlArg::Int(id) = arg {
                    if *id == m.next_id {
                        m.next_id += 1;
                    }
                }
            }
            if *scope == KVMNG_SCOPE_SYSTEM && u64::from(*cmd) == ioctls::KVM_CREATE_VM {
                m.vms += 1;
            }
            if matches!(
                u64::from(*cmd),
                ioctls::KVM_SET_USER_MEMORY_REGION | ioctls::KVM_SET_USER_MEMORY_REGION2
            ) {
                if let CtlArg::Region(r) | CtlArg::Region1(r) = arg {
                    if r.slot & 0xffff == 0 {
                        m.vm_dirty = true;
                    }
                }
            }
            if *cmd as u64 == ioctls::KVM_CREATE_IRQCHIP {
                m.irqchip = true;
            }
        }
        Call::MemMap { regions, .. } if ok && regions.iter().any(|r| r.slot & 0xffff == 0) => {
            m.vm_dirty = true;
        }
        Call::Ioregion { op, fd, .. } if ok => {
            m.regions += if *op == KVMNG_IOREGION_ADD { 1 } else { -1 };
            if let (KVMNG_IOREGION_ADD, FdSel::Dev(i)) = (*op, fd) {
                m.dev_regions[*i as usize % 2] = true;
            }
        }
        Call::NewDevice { dev } => m.dev_regions[*dev as usize % 2] = false,
        Call::ExitThread(w) => m.bound[w.index()] = None,
        Call::FdLimit { call, .. } => learn(
            m,
            &Op {
                th: op.th,
                call: (**call).clone(),
            },
            ok,
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Round 183 of seed 179660162576 hung: its 8-byte mask (the request's
    /// size) blocked SIGUSR1, as the old check cleared the bit only in
    /// buffers of 12 bytes or more.
    #[test]
    fn a_signal_mask_of_any_size_leaves_the_kick_signal_unblocked() {
        for len in [6usize, 8, 12, 16] {
            let mut mask = vec![0xffu8; len];
            unblock_kick_signal(&mut mask);
            let set = u64::from_le_bytes({
                let mut b = [0xffu8; 8];
                let n = (len - 4).min(8);
                b[..n].copy_from_slice(&mask[4..4 + n]);
                b
            });
            assert_eq!(set & (1 << (libc::SIGUSR1 - 1)), 0, "{len} bytes");
            assert_eq!(set.count_ones(), 63, "{len} bytes: only SIGUSR1 cleared");
        }
        let mut short = [0xffu8; 5];
        unblock_kick_signal(&mut short);
        assert_eq!(short, [0xff; 5], "a buffer without the byte is left alone");
    }

    /// Every KVM_SET_SIGNAL_MASK the generator makes leaves SIGUSR1
    /// unblocked, whatever size its buffer gets.
    #[test]
    fn generated_signal_masks_never_block_the_kick_signal() {
        let m = Model::default();
        let mut rng = Rng::new(179660162576);
        let mut seen = 0;
        for _ in 0..200_000 {
            let Call::Control {
                cmd,
                arg: CtlArg::Buf { data, .. },
                ..
            } = control(&mut rng, &m)
            else {
                continue;
            };
            if u64::from(cmd) != ioctls::KVM_SET_SIGNAL_MASK {
                continue;
            }
            seen += 1;
            if let Some(b) = data.get(5) {
                assert_eq!(b & 2, 0, "SIGUSR1 blocked in {data:?}");
            }
        }
        assert!(seen > 0, "the generator made no KVM_SET_SIGNAL_MASK");
    }
}
