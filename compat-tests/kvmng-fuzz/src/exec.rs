//! Running one operation on both VMs and comparing what came back: the
//! return value, errno and every byte of the argument memory.

use crate::arena::{Arena, ARENA};
use crate::gen::{cmd_name, returns_fd, Arg, Corpus, Op, Target};
use crate::mask;
use crate::pair::{Pair, Vm};
use crate::side::{ioctl, Outcome};
use kvmng_abi::ioctls::{self, ioc_size};

/// Both sides' argument memory and the fds they share.
pub struct Bench {
    pub pair: Pair,
    pub arena_a: Arena,
    pub arena_b: Arena,
    pub kvm: i32,
    pub devnull: i32,
}

fn fd_of(bench: &Bench, vm: &Vm, t: Target) -> i32 {
    match t {
        Target::System => bench.kvm,
        Target::Vm => vm.vm,
        Target::Vcpu => vm.vcpu,
        Target::Vcpu2 => vm.vcpu2,
        Target::DevNull => bench.devnull,
        Target::Closed => 1021,
        Target::Minus1 => -1,
    }
}

fn arg_value(arena: &Arena, arg: &Arg) -> u64 {
    match arg {
        Arg::Int(v) => *v,
        Arg::Buffer { offset, .. } => arena.addr(*offset),
        Arg::Guard { offset } => arena.guard() + *offset as u64,
    }
}

fn close_fd(fd: i64) {
    // SAFETY: an fd this operation just made on one side.
    unsafe { libc::close(fd as i32) };
}

/// A difference between the two sides.
#[derive(Debug)]
pub struct Divergence {
    pub shim: Outcome,
    pub raw: Outcome,
    /// The first differing byte of the arenas, if any.
    pub byte: Option<(usize, u8, u8)>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |o: &Outcome| {
            if o.ret == -1 {
                format!("-1 {}", std::io::Error::from_raw_os_error(o.errno))
            } else {
                o.ret.to_string()
            }
        };
        write!(f, "shim {} / raw {}", show(&self.shim), show(&self.raw))?;
        if let Some((at, a, b)) = self.byte {
            write!(f, "; arena byte {at:#x}: shim {a:#04x}, raw {b:#04x}")?;
        }
        Ok(())
    }
}

/// Describes `op` on one line.
pub fn describe(op: &Op) -> String {
    let arg = match &op.arg {
        Arg::Int(v) => format!("int {v:#x}"),
        Arg::Buffer { offset, data } => {
            let head: Vec<String> = data.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!(
                "buffer at arena+{offset:#x}, {} bytes ({}{})",
                data.len(),
                head.join(""),
                if data.len() > 16 { "..." } else { "" }
            )
        }
        Arg::Guard { offset } => format!("guard page+{offset:#x}"),
    };
    format!("{:?} {} ({:#x}) {arg}", op.target, cmd_name(op.cmd), op.cmd)
}

/// Issues `op` through the shim on VM A and raw on VM B, compares, and
/// learns from the raw side's output.
pub fn run(bench: &mut Bench, op: &Op, corpus: &mut Corpus) -> Result<(), Divergence> {
    bench.pair.a.hold();
    bench.pair.b.hold();
    let (offset, data): (usize, &[u8]) = match &op.arg {
        Arg::Buffer { offset, data } => (*offset, data),
        _ => (ARENA, &[]),
    };
    bench.arena_a.load(offset, data);
    bench.arena_b.load(offset, data);
    let fa = fd_of(bench, &bench.pair.a, op.target);
    let fb = fd_of(bench, &bench.pair.b, op.target);
    let (va, vb) = (
        arg_value(&bench.arena_a, &op.arg),
        arg_value(&bench.arena_b, &op.arg),
    );
    // SAFETY: the argument is an integer, an address in this side's arena
    // (which may be written), or an address that cannot be accessed.
    let mut shim = unsafe { ioctl(bench.pair.a.path, fa, op.cmd, va) };
    // SAFETY: as above, for the other side.
    let mut raw = unsafe { ioctl(bench.pair.b.path, fb, op.cmd, vb) };
    // New fds: their numbers differ; that both made one is what counts.
    if returns_fd(op.cmd & 0xffff_ffff) {
        if shim.ret >= 0 {
            close_fd(shim.ret);
        }
        if raw.ret >= 0 {
            close_fd(raw.ret);
        }
        if shim.ret >= 0 && raw.ret >= 0 {
            shim.ret = 0;
            raw.ret = 0;
        }
    }
    // KVM_CREATE_DEVICE writes the device's fd into its struct.
    if op.cmd == ioctls::KVM_CREATE_DEVICE && shim.ret == 0 && raw.ret == 0 && offset + 8 <= ARENA {
        for arena in [&mut bench.arena_a, &mut bench.arena_b] {
            let b = &mut arena.bytes_mut()[offset + 4..offset + 8];
            let fd = u32::from_le_bytes(b.try_into().expect("4 bytes"));
            if fd != 0 {
                close_fd(i64::from(fd));
            }
            b.fill(0);
        }
    }
    // Also after a failure: a write that ran into the guard page leaves
    // what it wrote before the fault (a failed call has no count: every
    // entry of the header counts).
    if offset < ARENA {
        let count = |o: &Outcome| if o.ret < 0 { i64::MAX } else { o.ret };
        mask::apply(
            op.cmd,
            count(&shim),
            &mut bench.arena_a.bytes_mut()[offset..],
        );
        mask::apply(
            op.cmd,
            count(&raw),
            &mut bench.arena_b.bytes_mut()[offset..],
        );
        mask::xsave_pair(
            op.cmd,
            &mut bench.arena_a.bytes_mut()[offset..],
            &mut bench.arena_b.bytes_mut()[offset..],
        );
    }
    let byte = bench
        .arena_a
        .bytes()
        .iter()
        .zip(bench.arena_b.bytes())
        .position(|(a, b)| a != b)
        .map(|i| (i, bench.arena_a.bytes()[i], bench.arena_b.bytes()[i]));
    if shim != raw || byte.is_some() {
        return Err(Divergence { shim, raw, byte });
    }
    if raw.ret >= 0 && offset < ARENA && cmd_name(op.cmd).starts_with("KVM_GET_") {
        let len = (ioc_size(op.cmd) as usize)
            .max(data.len())
            .min(ARENA - offset);
        corpus.record(op.cmd, &bench.arena_b.bytes()[offset..offset + len]);
    }
    Ok(())
}
