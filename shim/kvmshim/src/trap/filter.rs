//! The seccomp filter: SECCOMP_RET_TRAP for the kvmng numbers on x86_64,
//! SECCOMP_RET_ALLOW for everything else.
//!
//! Built and compiled with seccompiler (rust-vmm), then adjusted in two
//! places seccompiler does not let us choose, and applied with our own
//! seccomp(2) call:
//!
//! 1. **build**: a [`SeccompFilter`] with one unconditional rule per number
//!    in `[KVMNG_SYSCALL_BASE, KVMNG_SYSCALL_BASE + 9]`, match action Trap,
//!    mismatch action Allow, target x86_64;
//! 2. **compile**: to a [`BpfProgram`]: the architecture check first, then
//!    the number comparisons;
//! 3. **adjust**: seccompiler answers a foreign architecture (an `int 0x80`
//!    i386 syscall of an x86_64 process) with KILL_PROCESS; ours must allow
//!    it, so that instruction becomes ALLOW. Every TRAP gets
//!    [`TRAP_COOKIE`] in its SECCOMP_RET_DATA, which the kernel hands to the
//!    handler in `si_errno`: the handler acts only on traps of this filter,
//!    and a program's own filter that traps the same numbers reaches the
//!    program's handler;
//! 4. **apply**: seccomp(SECCOMP_SET_MODE_FILTER, TSYNC | SPEC_ALLOW)
//!    without no_new_privs when the process may (CAP_SYS_ADMIN in its user
//!    namespace), else after setting no_new_privs (seccompiler's own
//!    `apply_filter_all_threads` always sets it).
//!
//! The filter depends only on the architecture and the number, so the
//! kernel's seccomp action cache (Linux 5.11+) resolves every other
//! syscall to ALLOW without running it: non-kvmng syscalls pay nothing.

use kvmng_abi::syscalls::KVMNG_SYSCALL_BASE;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

/// Numbers the filter traps: the ten calls.
pub const TRAPPED: core::ops::RangeInclusive<i64> = KVMNG_SYSCALL_BASE..=KVMNG_SYSCALL_BASE + 9;

/// SECCOMP_RET_DATA of our TRAP ("kv"): the kernel puts it in `si_errno`.
pub const TRAP_COOKIE: u32 = 0x6b76;

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ACTION_FULL: u32 = 0xffff_0000;
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
/// Offset of `arch` in `struct seccomp_data`.
const SECCOMP_DATA_ARCH: u32 = 4;

const SECCOMP_FILTER_FLAG_TSYNC: u64 = 1;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u64 = 1 << 2;

/// Step 1: the filter as seccompiler rules.
pub fn build() -> Result<SeccompFilter, String> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        TRAPPED.map(|nr| (nr, Vec::new())).collect();
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Trap,
        TargetArch::x86_64,
    )
    .map_err(|e| format!("building the seccomp filter: {e}"))
}

/// Step 2: the BPF program.
pub fn compile(filter: SeccompFilter) -> Result<BpfProgram, String> {
    BpfProgram::try_from(filter).map_err(|e| format!("compiling the seccomp filter: {e}"))
}

/// Step 3: a foreign architecture is allowed, and our traps carry the
/// cookie. Fails if the program does not have the shape this expects
/// (a seccompiler release that compiles differently), rather than guess.
pub fn adjust(program: &mut BpfProgram) -> Result<(), String> {
    let prologue_ok = program.len() > 3
        && program[0].code == BPF_LD_W_ABS
        && program[0].k == SECCOMP_DATA_ARCH
        && program[1].code == BPF_JEQ_K
        && program[1].k == AUDIT_ARCH_X86_64
        && program[1].jt == 1
        && program[1].jf == 0
        && program[2].code == BPF_RET_K
        && program[2].k == SECCOMP_RET_KILL_PROCESS;
    if !prologue_ok {
        return Err("unexpected architecture check in seccompiler's program".into());
    }
    program[2].k = SECCOMP_RET_ALLOW;
    let mut traps = 0;
    for insn in program.iter_mut() {
        if insn.code != BPF_RET_K {
            continue;
        }
        match insn.k & SECCOMP_RET_ACTION_FULL {
            SECCOMP_RET_TRAP => {
                insn.k = SECCOMP_RET_TRAP | TRAP_COOKIE;
                traps += 1;
            }
            SECCOMP_RET_ALLOW => {}
            other => {
                return Err(format!(
                    "unexpected seccomp action {other:#x} in the program"
                ))
            }
        }
    }
    if traps == 0 {
        return Err("no TRAP in seccompiler's program".into());
    }
    Ok(())
}

/// Steps 1 to 3.
pub fn program() -> Result<BpfProgram, String> {
    let mut program = compile(build()?)?;
    adjust(&mut program)?;
    Ok(program)
}

/// How the filter went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// True when no_new_privs had to be set (no CAP_SYS_ADMIN).
    pub set_no_new_privs: bool,
}

/// Why seccomp(2) refused the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Errno(i64),
    /// TSYNC: this thread has a filter the caller's thread does not share.
    Thread(i64),
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refused::Errno(e) => write!(f, "errno {e}"),
            Refused::Thread(tid) => write!(
                f,
                "thread {tid} has a seccomp filter of its own that the other threads \
                 do not share (TSYNC refused)"
            ),
        }
    }
}

fn seccomp_tsync(program: &BpfProgram) -> Result<(), Refused> {
    let flags = SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    match crate::raw::seccomp_set_mode_filter(flags, program) {
        Ok(0) => Ok(()),
        Ok(tid) => Err(Refused::Thread(tid)),
        Err(e) => Err(Refused::Errno(i64::from(e.0))),
    }
}

/// Step 4: installs the program on every thread of the process.
pub fn apply(program: &BpfProgram) -> Result<Applied, String> {
    match seccomp_tsync(program) {
        Ok(()) => {
            return Ok(Applied {
                set_no_new_privs: false,
            })
        }
        Err(Refused::Errno(e)) if e == i64::from(libc::EACCES) => {}
        Err(e) => return Err(format!("seccomp(SET_MODE_FILTER, TSYNC): {e}")),
    }
    // EACCES: no CAP_SYS_ADMIN. no_new_privs is the unprivileged way in.
    if let Err(e) = crate::raw::set_no_new_privs() {
        return Err(format!("prctl(PR_SET_NO_NEW_PRIVS): errno {}", e.0));
    }
    seccomp_tsync(program)
        .map(|()| Applied {
            set_no_new_privs: true,
        })
        .map_err(|e| format!("seccomp(SET_MODE_FILTER, TSYNC): {e}"))
}

/// Runs a classic BPF seccomp program on `(arch, nr)` the way the kernel
/// does, for the instructions seccompiler emits. For tests and for the
/// doc's claims about the program.
pub fn simulate(program: &BpfProgram, arch: u32, nr: i32) -> u32 {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        pc += 1;
        match insn.code {
            BPF_LD_W_ABS => {
                acc = match insn.k {
                    0 => nr as u32,
                    SECCOMP_DATA_ARCH => arch,
                    _ => 0,
                }
            }
            BPF_RET_K => return insn.k,
            0x05 => pc += insn.k as usize, // BPF_JMP | BPF_JA
            BPF_JEQ_K => {
                pc += if acc == insn.k {
                    insn.jt as usize
                } else {
                    insn.jf as usize
                }
            }
            0x35 => pc += if acc >= insn.k { insn.jt } else { insn.jf } as usize, // JGE
            0x25 => pc += if acc > insn.k { insn.jt } else { insn.jf } as usize,  // JGT
            _ => return SECCOMP_RET_KILL_PROCESS,
        }
    }
    SECCOMP_RET_KILL_PROCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const X32_BIT: i32 = 0x4000_0000;

    #[test]
    fn the_program_traps_exactly_the_kvmng_block_on_x86_64() {
        let program = program().unwrap();
        for nr in TRAPPED {
            assert_eq!(
                simulate(&program, AUDIT_ARCH_X86_64, nr as i32),
                SECCOMP_RET_TRAP | TRAP_COOKIE,
                "nr {nr}"
            );
        }
        for nr in [0, 1, 39, 231, 335, 462, 470, 999, 1010, 1024, 4095, -1] {
            assert_eq!(
                simulate(&program, AUDIT_ARCH_X86_64, nr),
                SECCOMP_RET_ALLOW,
                "nr {nr}"
            );
        }
        // x32 numbers carry bit 30: not ours, the kernel answers ENOSYS.
        assert_eq!(
            simulate(&program, AUDIT_ARCH_X86_64, X32_BIT | 1004),
            SECCOMP_RET_ALLOW
        );
        // i386 (int 0x80) is allowed, whatever the number.
        for nr in [1, 1000, 1004, 1009] {
            assert_eq!(simulate(&program, AUDIT_ARCH_I386, nr), SECCOMP_RET_ALLOW);
        }
    }

    #[test]
    fn adjust_refuses_a_program_of_another_shape() {
        let mut program = program().unwrap();
        assert!(adjust(&mut program).is_err(), "a second adjust must fail");
        let mut empty = BpfProgram::new();
        assert!(adjust(&mut empty).is_err());
    }
}
