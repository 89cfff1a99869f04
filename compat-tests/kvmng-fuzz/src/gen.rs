//! Generating one operation: the fd it aims at, the request, and its
//! argument (an integer, a buffer placed somewhere in the arena, possibly
//! running into the guard page, or a pointer that cannot be read).

use crate::arena::ARENA;
use crate::rng::Rng;
use kvmng_abi::ioctls::{self, ioc_size, FdClass, KVMIO, KVM_IOCTLS};
use std::collections::HashMap;

/// The fd an operation is issued on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// /dev/kvm.
    System,
    /// The VM.
    Vm,
    /// vCPU 0, bound to the fuzzing thread on the shim side.
    Vcpu,
    /// vCPU 1, never run: on the shim side its ioctls fall back.
    Vcpu2,
    /// /dev/null.
    DevNull,
    /// An fd number that is not open.
    Closed,
    /// -1.
    Minus1,
}

/// The argument of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A plain integer (the same on both sides).
    Int(u64),
    /// `data` copied to `offset` of each side's arena (zeroed elsewhere);
    /// the argument is the address of `offset`. The part of `data` past
    /// the arena's end is not copied (it would be in the guard page).
    Buffer { offset: usize, data: Vec<u8> },
    /// An address in the guard page (never readable).
    Guard { offset: usize },
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub target: Target,
    pub cmd: u64,
    pub arg: Arg,
}

/// The name of a request: the mapping table's, or its number.
pub fn cmd_name(cmd: u64) -> String {
    KVM_IOCTLS
        .iter()
        .find(|r| r.cmd == cmd)
        .map(|r| r.name.to_string())
        .unwrap_or_else(|| format!("{cmd:#x}"))
}

/// Whether a successful `cmd` returns a new fd.
pub fn returns_fd(cmd: u64) -> bool {
    matches!(
        cmd,
        ioctls::KVM_CREATE_VM
            | ioctls::KVM_CREATE_VCPU
            | ioctls::KVM_GET_STATS_FD
            | ioctls::KVM_CREATE_GUEST_MEMFD
    )
}

/// What earlier operations produced that makes later arguments plausible:
/// outputs of GET requests (mutated into SET arguments) and MSR indices.
#[derive(Default)]
pub struct Corpus {
    outputs: HashMap<u64, Vec<u8>>,
    pub msr_indices: Vec<u32>,
}

impl Corpus {
    /// Records the output of a successful GET request.
    pub fn record(&mut self, cmd: u64, out: &[u8]) {
        if !out.is_empty() {
            self.outputs.insert(cmd, out.to_vec());
        }
    }

    /// An earlier output that suits request `cmd` as its input: the output
    /// of the matching GET request, or of `cmd` itself.
    fn input_for(&self, rng: &mut Rng, cmd: u64) -> Option<Vec<u8>> {
        let name = cmd_name(cmd);
        let mut sources = vec![cmd];
        if let Some(get) = name
            .strip_prefix("KVM_SET_")
            .and_then(|rest| ioctls::lookup_name(&format!("KVM_GET_{rest}")))
        {
            sources.push(get.cmd);
        }
        match cmd {
            ioctls::KVM_SET_XSAVE => sources.push(ioctls::KVM_GET_XSAVE2),
            ioctls::KVM_SET_CPUID2 => sources.push(ioctls::KVM_GET_SUPPORTED_CPUID),
            _ => {}
        }
        let found: Vec<&Vec<u8>> = sources.iter().filter_map(|c| self.outputs.get(c)).collect();
        if found.is_empty() {
            return None;
        }
        Some(found[rng.below(found.len() as u64) as usize].clone())
    }
}

const TARGETS: [(Target, u64); 7] = [
    (Target::System, 15),
    (Target::Vm, 30),
    (Target::Vcpu, 40),
    (Target::Vcpu2, 8),
    (Target::DevNull, 3),
    (Target::Closed, 2),
    (Target::Minus1, 2),
];

fn target(rng: &mut Rng) -> Target {
    let total: u64 = TARGETS.iter().map(|t| t.1).sum();
    let mut n = rng.below(total);
    for (t, w) in TARGETS {
        if n < w {
            return t;
        }
        n -= w;
    }
    Target::Vcpu
}

/// The classes a target stands for in the mapping table.
fn class_of(t: Target) -> Option<FdClass> {
    match t {
        Target::System => Some(FdClass::System),
        Target::Vm => Some(FdClass::Vm),
        Target::Vcpu | Target::Vcpu2 => Some(FdClass::Vcpu),
        _ => None,
    }
}

/// Requests the fuzzer never issues: an in-kernel PIT starts ticking when
/// created, and then interrupt state (PIC, IOAPIC, LAPIC, events) depends
/// on time, not on the path the calls took.
const NEVER: [u64; 2] = [ioctls::KVM_CREATE_PIT, ioctls::KVM_CREATE_PIT2];

fn command(rng: &mut Rng, t: Target) -> u64 {
    loop {
        let cmd = any_command(rng, t);
        if !NEVER.contains(&(cmd & 0xffff_ffff)) {
            return cmd;
        }
    }
}

fn any_command(rng: &mut Rng, t: Target) -> u64 {
    let roll = rng.below(100);
    if roll < 70 {
        // A request of the mapping table valid on this fd's class.
        if let Some(class) = class_of(t) {
            let rows: Vec<u64> = KVM_IOCTLS
                .iter()
                .filter(|r| r.valid_on(class))
                .map(|r| r.cmd)
                .collect();
            let mut cmd = rng.pick(&rows);
            // Creating VMs and vCPUs is slow and piles up: rarely.
            while matches!(cmd, ioctls::KVM_CREATE_VM | ioctls::KVM_CREATE_VCPU) && !rng.chance(5) {
                cmd = rng.pick(&rows);
            }
            return cmd;
        }
    }
    if roll < 85 {
        // Any row: often the wrong class.
        let cmd = KVM_IOCTLS[rng.below(KVM_IOCTLS.len() as u64) as usize].cmd;
        if cmd != ioctls::KVM_CREATE_VM || rng.chance(5) {
            return cmd;
        }
        return ioctls::KVM_CHECK_EXTENSION;
    }
    if roll < 95 {
        // A KVMIO request with a random number, direction and size.
        let dir = rng.below(4);
        let any = rng.below(0x4000);
        let size = rng.pick(&[0u64, 1, 4, 8, 16, 64, 144, 312, 1024, 4096, any]);
        return (dir << 30) | (size << 16) | (KVMIO << 8) | rng.below(256);
    }
    // Anything, upper half of the 64-bit request included, but a KVMIO
    // type byte kept half of the time.
    let mut cmd = rng.next();
    if rng.chance(50) {
        cmd = (cmd & !0xff00) | (KVMIO << 8);
    }
    if rng.chance(50) {
        cmd &= 0xffff_ffff;
    }
    cmd
}

fn int_arg(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=3 => rng.below(8),
        4 | 5 => rng.below(300),
        6 => rng.pick(&[0xfffb_d000, 0xffff_ffff, 1 << 32, u64::MAX, 1 << 63, 4096]),
        7 => rng.below(1 << 16),
        _ => rng.next(),
    }
}

/// The bytes an argument buffer for `cmd` holds.
fn buffer_data(rng: &mut Rng, cmd: u64, corpus: &Corpus) -> Vec<u8> {
    let size = (ioc_size(cmd) as usize).max(8);
    let roll = rng.below(100);
    let mut data = if roll < 35 {
        if let Some(mut d) = corpus.input_for(rng, cmd) {
            for _ in 0..rng.below(4) {
                let i = rng.below(d.len() as u64) as usize;
                d[i] = rng.next() as u8;
            }
            d
        } else {
            vec![0; size]
        }
    } else if roll < 50 {
        vec![0; size]
    } else if roll < 65 && matches!(cmd, ioctls::KVM_GET_MSRS | ioctls::KVM_SET_MSRS) {
        msrs(rng, corpus)
    } else {
        let mut d = vec![0; size];
        rng.fill(&mut d);
        d
    };
    // A small count in the header (nmsrs, nent, len, nr...) half of the
    // time, so that variable-size requests get past their first check.
    if data.len() >= 4 && rng.chance(50) {
        let any = rng.below(100) as u32;
        let n = rng.pick(&[0u32, 1, 2, 3, 8, 64, 255, 256, 257, any]);
        data[..4].copy_from_slice(&n.to_le_bytes());
        let want = 8 + 40 * n as usize;
        if want > data.len() && want <= ARENA && rng.chance(50) {
            let old = data.len();
            data.resize(want, 0);
            rng.fill(&mut data[old..]);
        }
    }
    data
}

/// A `struct kvm_msrs` of real MSR indices (mostly).
fn msrs(rng: &mut Rng, corpus: &Corpus) -> Vec<u8> {
    let n = 1 + rng.below(8) as usize;
    let mut d = vec![0u8; 8 + 16 * n];
    d[..4].copy_from_slice(&(n as u32).to_le_bytes());
    for e in 0..n {
        let index = if !corpus.msr_indices.is_empty() && rng.chance(85) {
            rng.pick(&corpus.msr_indices)
        } else {
            rng.next() as u32
        };
        let at = 8 + 16 * e;
        d[at..at + 4].copy_from_slice(&index.to_le_bytes());
        if rng.chance(50) {
            rng.fill(&mut d[at + 8..at + 16]);
        }
    }
    d
}

/// Where in the arena a buffer of `len` bytes goes.
fn placement(rng: &mut Rng, len: usize) -> usize {
    let len = len.min(ARENA);
    match rng.below(10) {
        0..=5 => 0,
        // Runs into the guard page.
        6 | 7 => ARENA - len + rng.below(len as u64 + 1) as usize,
        // Ends exactly at the guard page.
        8 => ARENA - len,
        _ => rng.below(4096) as usize,
    }
}

/// A new operation.
pub fn op(rng: &mut Rng, corpus: &Corpus) -> Op {
    let target = target(rng);
    let cmd = command(rng, target);
    // A request whose number carries no size takes an integer (the arenas
    // of the two sides are at different addresses, so a pointer would be
    // two different integers), except KVM_REINJECT_CONTROL, an _IO request
    // that takes a pointer.
    let takes_pointer = ioc_size(cmd) != 0 || cmd == ioctls::KVM_REINJECT_CONTROL;
    let roll = rng.below(100);
    let arg = if !takes_pointer || roll < 8 {
        Arg::Int(int_arg(rng))
    } else if roll < 18 {
        Arg::Guard {
            offset: rng.below(64) as usize,
        }
    } else if roll < 21 {
        Arg::Int(rng.pick(&[0xffff_8000_0000_0000u64, 0xffff_ffff_ff60_0000, 8, 1]))
    } else {
        let data = buffer_data(rng, cmd, corpus);
        Arg::Buffer {
            offset: placement(rng, data.len()),
            data,
        }
    };
    Op { target, cmd, arg }
}
