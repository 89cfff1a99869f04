//! What `kvmng bench` measures: the operations and the paths.

use serde::{Deserialize, Serialize};

/// One way of asking KVM for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// The legacy ioctl, issued as a raw syscall (no libc, no shim): the
    /// baseline of every ratio.
    Ioctl,
    /// The kvmng library's legacy backend (`Backend` methods called
    /// directly): the emulation without the trap.
    Legacy,
    /// A legacy ioctl through glibc's `ioctl()`, translated by
    /// libkvmshim.so (`KVMNG_MODE=auto`).
    Shim,
    /// The kvmng syscall instruction, trapped by the shim's seccomp filter
    /// and emulated in its SIGSYS handler (stock kernels).
    Trap,
    /// The kvmng syscall on a kernel that has it.
    Native,
}

impl PathKind {
    /// Every path, in report order.
    pub const ALL: [PathKind; 5] = [
        PathKind::Ioctl,
        PathKind::Legacy,
        PathKind::Shim,
        PathKind::Trap,
        PathKind::Native,
    ];

    /// The name used on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            PathKind::Ioctl => "ioctl",
            PathKind::Legacy => "legacy",
            PathKind::Shim => "shim",
            PathKind::Trap => "trap",
            PathKind::Native => "native",
        }
    }

    /// The path of a name.
    pub fn parse(name: &str) -> Option<PathKind> {
        PathKind::ALL.into_iter().find(|p| p.name() == name)
    }

    /// One line for the report.
    pub const fn describe(self) -> &'static str {
        match self {
            PathKind::Ioctl => {
                "the legacy KVM ioctl as a raw `syscall` instruction (no libc, no shim): the baseline"
            }
            PathKind::Legacy => {
                "the kvmng library's legacy backend, its `Backend` method called directly (for the batched calls, the slice forms a Rust caller uses, `vcpu_state_entries` and `memory_map_regions`, which need no checked copy of the array): the emulation of the kvmng call with ioctls, without any trap"
            }
            PathKind::Shim => {
                "the legacy ioctl through glibc's `ioctl()` in a process with `LD_PRELOAD=libkvmshim.so KVMNG_MODE=auto`: interposed and translated to the kvmng call"
            }
            PathKind::Trap => {
                "the kvmng syscall instruction in a process with libkvmshim.so preloaded on a kernel without kvmng: seccomp TRAP, SIGSYS, emulated in the handler"
            }
            PathKind::Native => "the kvmng syscall on a kernel that implements it",
        }
    }
}

/// An operation measured on every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Create a VM and destroy it.
    VmCreate,
    /// Create one vCPU.
    VcpuCreate,
    /// One KVM_RUN round trip ending in a PIO exit (`pio_loop`).
    RunPio,
    /// One KVM_RUN round trip ending in an MMIO exit (`mmio_loop`).
    RunMmio,
    /// Get the general registers.
    RegsGet,
    /// Set the general registers.
    RegsSet,
    /// Get the general registers through kvmng_control's vCPU scope (the
    /// ioctl carried by the binding, without a batch).
    RegsGetControl,
    /// QEMU 7.2's runtime register put: 8 ioctls, or one batched call.
    StatePut,
    /// QEMU 7.2's register get: 9 ioctls, or one batched call.
    StateGet,
    /// Raise and lower an interrupt line of the in-kernel irqchip.
    IrqLine,
    /// Move N memory slots: N KVM_SET_USER_MEMORY_REGION, or one
    /// kvmng_memory_map of N regions.
    MemoryMap(u32),
    /// getppid(): the floor of every system call, the same on every path.
    Getppid,
    /// The least each interface can do: KVM_GET_API_VERSION; kvmng_run(~0).
    EmptyCall,
    /// KVM_CHECK_EXTENSION on the VM fd; the same through kvmng_control's
    /// VM scope: the same KVM work, the object found by fd or by binding.
    CheckExtension,
    /// A vCPU call rejected before any KVM work: an unknown KVMIO ioctl on
    /// the vCPU fd; a kvmng_vcpu_state entry of kind 0.
    VcpuReject,
    /// MMIO accesses delivered four ways (exit to userspace, ioeventfd,
    /// posted socket write, synchronous socket read), by the ioregion
    /// work's harness ([`crate::delivery`]); not per path.
    MmioDelivery,
    /// One step of [`Op::StatePut`] (`put`) or [`Op::StateGet`] alone:
    /// its one ioctl, or a `kvmng_vcpu_state` of that one entry (what the
    /// shim makes of the ioctl). Index `step` from 0, in QEMU's order.
    /// Not in [`Op::all`]: `state-steps` asks for every one.
    StateStep { put: bool, step: u8 },
}

/// The ioctls of QEMU 7.2's runtime register put, in its order (the
/// steps of [`Op::StatePut`]).
pub const PUT_STEPS: [&str; 8] = [
    "KVM_SET_SREGS2",
    "KVM_SET_REGS",
    "KVM_SET_XSAVE",
    "KVM_SET_XCRS",
    "KVM_SET_MSRS",
    "KVM_SET_VCPU_EVENTS",
    "KVM_SET_MSRS",
    "KVM_SET_DEBUGREGS",
];

/// The ioctls of QEMU 7.2's register get, in its order (the steps of
/// [`Op::StateGet`]).
pub const GET_STEPS: [&str; 9] = [
    "KVM_GET_VCPU_EVENTS",
    "KVM_GET_MP_STATE",
    "KVM_GET_REGS",
    "KVM_GET_XSAVE2",
    "KVM_GET_XCRS",
    "KVM_GET_SREGS2",
    "KVM_GET_MSRS",
    "KVM_GET_LAPIC",
    "KVM_GET_DEBUGREGS",
];

/// The slot counts of the memory-map operations.
pub const MEMORY_MAP_SIZES: [u32; 4] = [1, 4, 16, 64];

impl Op {
    /// The sub-operations that tell where a call's instructions go: the
    /// system call itself, the empty call of each interface, and the same
    /// KVM work reached through an fd or through the binding.
    pub const BREAKDOWN: [Op; 4] = [
        Op::Getppid,
        Op::EmptyCall,
        Op::CheckExtension,
        Op::VcpuReject,
    ];

    /// Every operation, in report order.
    pub fn all() -> Vec<Op> {
        let mut ops = vec![
            Op::VmCreate,
            Op::VcpuCreate,
            Op::RunPio,
            Op::RunMmio,
            Op::RegsGet,
            Op::RegsSet,
            Op::RegsGetControl,
            Op::StatePut,
            Op::StateGet,
            Op::IrqLine,
        ];
        ops.extend(MEMORY_MAP_SIZES.iter().map(|&n| Op::MemoryMap(n)));
        ops.extend(Op::BREAKDOWN);
        ops.push(Op::MmioDelivery);
        ops
    }

    /// Whether the shim's hot-call path carries this op's ioctls: KVM_RUN,
    /// the state ioctls of a register sync, and KVM_IRQ_LINE and
    /// KVM_CHECK_EXTENSION on the bound VM.
    pub fn is_hot(self) -> bool {
        matches!(
            self,
            Op::RunPio | Op::RunMmio | Op::IrqLine | Op::CheckExtension
        ) || matches!(self, Op::RegsGet | Op::RegsSet | Op::RegsGetControl)
            || matches!(self, Op::StatePut | Op::StateGet | Op::StateStep { .. })
    }

    /// Every step of the register put and get, in order
    /// (`--ops state-steps`).
    pub fn state_steps() -> Vec<Op> {
        let put = (0..PUT_STEPS.len()).map(|i| Op::StateStep {
            put: true,
            step: i as u8,
        });
        let get = (0..GET_STEPS.len()).map(|i| Op::StateStep {
            put: false,
            step: i as u8,
        });
        put.chain(get).collect()
    }

    /// The ioctl of a sync step.
    fn step_command(put: bool, step: u8) -> &'static str {
        if put {
            PUT_STEPS[usize::from(step)]
        } else {
            GET_STEPS[usize::from(step)]
        }
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> String {
        match self {
            Op::VmCreate => "vm-create".into(),
            Op::VcpuCreate => "vcpu-create".into(),
            Op::RunPio => "run-pio".into(),
            Op::RunMmio => "run-mmio".into(),
            Op::RegsGet => "regs-get".into(),
            Op::RegsSet => "regs-set".into(),
            Op::RegsGetControl => "regs-get-control".into(),
            Op::StatePut => "state-put".into(),
            Op::StateGet => "state-get".into(),
            Op::IrqLine => "irq-line".into(),
            Op::MemoryMap(n) => format!("memory-map-{n}"),
            Op::Getppid => "getppid".into(),
            Op::EmptyCall => "empty-call".into(),
            Op::CheckExtension => "check-extension".into(),
            Op::VcpuReject => "vcpu-reject".into(),
            Op::MmioDelivery => "mmio-delivery".into(),
            Op::StateStep { put, step } => {
                format!("state-{}-{}", if put { "put" } else { "get" }, step + 1)
            }
        }
    }

    /// The operation of a name; `memory-map` alone means every size.
    pub fn parse(name: &str) -> Option<Vec<Op>> {
        if name == "memory-map" {
            return Some(MEMORY_MAP_SIZES.iter().map(|&n| Op::MemoryMap(n)).collect());
        }
        if let Some(n) = name.strip_prefix("memory-map-") {
            let n: u32 = n.parse().ok()?;
            return (1..=kvmng_abi::KVMNG_MEMORY_MAP_MAX)
                .contains(&n)
                .then(|| vec![Op::MemoryMap(n)]);
        }
        if name == "state-steps" {
            return Some(Op::state_steps());
        }
        Op::all()
            .into_iter()
            .chain(Op::state_steps())
            .find(|op| op.name() == name)
            .map(|op| vec![op])
    }

    /// What one sample is, per kind of path.
    pub fn describe(self) -> String {
        match self {
            Op::VmCreate => "create a VM and destroy it (KVM_CREATE_VM + close; kvmng_create_vm + kvmng_bind_vm(-1) + close)".into(),
            Op::VcpuCreate => "create one vCPU in a VM with an in-kernel irqchip (KVM_CREATE_VCPU; kvmng_create_vcpu); a fresh VM every 32 vCPUs, untimed".into(),
            Op::RunPio => "one KVM_RUN / kvmng_run round trip: the `pio_loop` guest's OUT exits to userspace (KVM_EXIT_IO)".into(),
            Op::RunMmio => "one KVM_RUN / kvmng_run round trip: the `mmio_loop` guest's store to unbacked memory exits to userspace (KVM_EXIT_MMIO)".into(),
            Op::RegsGet => "KVM_GET_REGS; kvmng_vcpu_state with one REGS GET entry".into(),
            Op::RegsSet => "KVM_SET_REGS; kvmng_vcpu_state with one REGS SET entry".into(),
            Op::RegsGetControl => "KVM_GET_REGS; kvmng_control(KVMNG_SCOPE_VCPU, KVM_GET_REGS): the same read carried by the binding without a batch".into(),
            Op::StatePut => "QEMU 7.2's runtime register put (kvm_arch_put_registers at KVM_PUT_RUNTIME_STATE): 8 ioctls SET_SREGS2, SET_REGS, SET_XSAVE, SET_XCRS, SET_MSRS, SET_VCPU_EVENTS, SET_MSRS (TSC deadline), SET_DEBUGREGS; or one kvmng_vcpu_state with the same 8 entries".into(),
            Op::StateGet => "QEMU 7.2's register get (kvm_arch_get_registers): 9 ioctls GET_VCPU_EVENTS, GET_MP_STATE, GET_REGS, GET_XSAVE2, GET_XCRS, GET_SREGS2, GET_MSRS, GET_LAPIC, GET_DEBUGREGS; or one kvmng_vcpu_state with the same 9 entries".into(),
            Op::IrqLine => "raise and lower GSI 10 of the in-kernel irqchip: 2 × KVM_IRQ_LINE; 2 × kvmng_irq(KVMNG_IRQ_LINE)".into(),
            Op::MemoryMap(n) => format!(
                "move {n} memory slot{} of 64 KiB to another guest-physical address and back on the next sample: {n} × KVM_SET_USER_MEMORY_REGION; one kvmng_memory_map of {n} region{}",
                if n == 1 { "" } else { "s" },
                if n == 1 { "" } else { "s" }
            ),
            Op::Getppid => "getppid(), a system call that does nothing: the cost of entering and leaving the kernel, the same on every path (glibc's on the shim path)".into(),
            Op::EmptyCall => "the least each interface can do: KVM_GET_API_VERSION on /dev/kvm (fd lookup, ioctl dispatch, no KVM work); kvmng_run(~0), rejected with EINVAL at its flag check".into(),
            Op::CheckExtension => "KVM_CHECK_EXTENSION(KVM_CAP_USER_MEMORY) on the VM fd; kvmng_control(KVMNG_SCOPE_VM, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY): the same KVM work, the VM found by its fd or by the caller's binding".into(),
            Op::VcpuReject => "a vCPU call rejected before any KVM work: an unknown KVMIO ioctl (_IO(KVMIO, 0xff)) on the vCPU fd (fd lookup, the vCPU mutex, vcpu_load and vcpu_put, EINVAL); kvmng_vcpu_state with one entry of kind 0 (the entries copied in and checked, the result written back, EINVAL)".into(),
            Op::MmioDelivery => "4-byte MMIO accesses of a guest loop delivered four ways: an exit to userspace, KVM_IOEVENTFD, a posted write and a synchronous read over a kvmng_ioregion socket (the ioregion work's harness, through the backend the kernel calls for)".into(),
            Op::StateStep { put, step } => format!(
                "step {} of state-{} alone: {}; kvmng_vcpu_state with that one entry (what the shim makes of the ioctl)",
                step + 1,
                if put { "put" } else { "get" },
                Op::step_command(put, step)
            ),
        }
    }

    /// The legacy ioctl commands a sample of this op issues on the ioctl
    /// paths (the names the shim's census uses), in order, a command as
    /// often as it is issued, to check that the shim translated them.
    pub fn measured_commands(self) -> &'static [&'static str] {
        match self {
            Op::VmCreate => &["KVM_CREATE_VM"],
            Op::VcpuCreate => &["KVM_CREATE_VCPU"],
            Op::RunPio | Op::RunMmio => &["KVM_RUN"],
            Op::RegsGet | Op::RegsGetControl => &["KVM_GET_REGS"],
            Op::RegsSet => &["KVM_SET_REGS"],
            Op::StatePut => &PUT_STEPS,
            Op::StateGet => &GET_STEPS,
            Op::StateStep { put: true, step } => {
                core::slice::from_ref(&PUT_STEPS[usize::from(step)])
            }
            Op::StateStep { put: false, step } => {
                core::slice::from_ref(&GET_STEPS[usize::from(step)])
            }
            Op::IrqLine => &["KVM_IRQ_LINE"],
            Op::MemoryMap(_) => &["KVM_SET_USER_MEMORY_REGION"],
            Op::Getppid => &[],
            Op::EmptyCall => &["KVM_GET_API_VERSION"],
            Op::CheckExtension => &["KVM_CHECK_EXTENSION"],
            Op::VcpuReject => &[],
            Op::MmioDelivery => &[],
        }
    }

    /// How many times fewer samples than `--iters` this op takes: the
    /// expensive ones (a VM teardown, memslot updates that each wait for
    /// an SRCU grace period) would otherwise take minutes.
    pub fn iteration_divisor(self) -> usize {
        match self {
            Op::VmCreate => 10,
            Op::VcpuCreate => 4,
            Op::MemoryMap(n) if n >= 16 => 10,
            Op::MemoryMap(n) if n >= 4 => 4,
            _ => 1,
        }
    }
}

/// Parses a comma-separated list of ops (`all` for every measured one).
pub fn parse_ops(list: &str) -> Result<Vec<Op>, String> {
    let mut ops: Vec<Op> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let found = if name == "all" {
            Op::all()
        } else {
            Op::parse(name).ok_or_else(|| {
                format!(
                    "unknown op {name:?}; the ops are: {}, memory-map (every size), memory-map-N (1 ≤ N ≤ {}), state-put-N (1 ≤ N ≤ 8), state-get-N (1 ≤ N ≤ 9), state-steps (every one of those), all",
                    Op::all().iter().map(|o| o.name()).collect::<Vec<_>>().join(", "),
                    kvmng_abi::KVMNG_MEMORY_MAP_MAX
                )
            })?
        };
        for op in found {
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
    }
    if ops.is_empty() {
        return Err("--ops names no operation".into());
    }
    Ok(ops)
}

/// Parses a comma-separated list of paths (`all` for every one).
pub fn parse_paths(list: &str) -> Result<Vec<PathKind>, String> {
    let mut paths: Vec<PathKind> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let found = if name == "all" {
            PathKind::ALL.to_vec()
        } else {
            vec![PathKind::parse(name).ok_or_else(|| {
                format!(
                    "unknown path {name:?}; the paths are: {}, all",
                    PathKind::ALL.map(|p| p.name()).join(", ")
                )
            })?]
        };
        for p in found {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
    }
    if paths.is_empty() {
        return Err("--paths names no path".into());
    }
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in Op::all() {
            assert_eq!(Op::parse(&op.name()), Some(vec![op]));
        }
        for p in PathKind::ALL {
            assert_eq!(PathKind::parse(p.name()), Some(p));
        }
        assert_eq!(Op::parse("memory-map-7"), Some(vec![Op::MemoryMap(7)]));
        assert_eq!(Op::parse("memory-map-0"), None);
        assert_eq!(Op::parse("memory-map-257"), None);
        for op in Op::state_steps() {
            assert_eq!(Op::parse(&op.name()), Some(vec![op]));
            assert_eq!(op.measured_commands().len(), 1);
        }
        assert_eq!(Op::state_steps().len(), 17);
        assert_eq!(Op::parse("state-steps"), Some(Op::state_steps()));
        assert_eq!(Op::parse("state-put-9"), None);
        assert_eq!(Op::parse("state-get-10"), None);
        assert_eq!(
            Op::StateStep { put: true, step: 2 }.measured_commands(),
            &["KVM_SET_XSAVE"]
        );
    }

    #[test]
    fn lists_parse_and_deduplicate() {
        assert_eq!(
            parse_ops("run-pio, memory-map,run-pio").unwrap(),
            vec![
                Op::RunPio,
                Op::MemoryMap(1),
                Op::MemoryMap(4),
                Op::MemoryMap(16),
                Op::MemoryMap(64)
            ]
        );
        assert_eq!(parse_ops("all").unwrap(), Op::all());
        assert!(parse_ops("fast").unwrap_err().contains("unknown op"));
        assert_eq!(
            parse_paths("trap,ioctl").unwrap(),
            vec![PathKind::Ioctl, PathKind::Trap]
        );
        assert!(parse_paths("").is_err());
    }
}
