//! The kvmng syscall numbers.

/// First number of the kvmng block. Renumbering the block is this one line
/// (and the same line in the uapi header and the syscall table).
pub const KVMNG_SYSCALL_BASE: i64 = 1000;

/// A kvmng syscall; its discriminant is its offset in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Syscall {
    /// `int kvmng_create_vm(int kvm_fd, unsigned long type, unsigned int flags)`
    CreateVm = 0,
    /// `int kvmng_bind_vm(int vm_fd, unsigned int flags)`
    BindVm = 1,
    /// `int kvmng_create_vcpu(unsigned long id, unsigned int flags)`
    CreateVcpu = 2,
    /// `int kvmng_bind_vcpu(int vcpu_fd, unsigned int flags)`
    BindVcpu = 3,
    /// `int kvmng_run(unsigned int flags)`
    Run = 4,
    /// `int kvmng_vcpu_state(struct kvmng_state_entry *entries, unsigned int count, unsigned int flags)`
    VcpuState = 5,
    /// `int kvmng_irq(unsigned int kind, unsigned int nr, unsigned int level, unsigned int flags)`
    Irq = 6,
    /// `int kvmng_memory_map(const struct kvm_userspace_memory_region2 *regions, unsigned int count, unsigned int flags)`
    MemoryMap = 7,
    /// `long kvmng_control(unsigned int scope, unsigned int cmd, unsigned long arg, unsigned int flags)`
    Control = 8,
    /// `int kvmng_ioregion(unsigned int op, const struct kvmng_ioregion *region, unsigned int flags)`
    Ioregion = 9,
}

impl Syscall {
    /// Every kvmng syscall, in number order.
    pub const ALL: [Syscall; 10] = [
        Syscall::CreateVm,
        Syscall::BindVm,
        Syscall::CreateVcpu,
        Syscall::BindVcpu,
        Syscall::Run,
        Syscall::VcpuState,
        Syscall::Irq,
        Syscall::MemoryMap,
        Syscall::Control,
        Syscall::Ioregion,
    ];

    /// The syscall number.
    pub const fn nr(self) -> i64 {
        KVMNG_SYSCALL_BASE + self as i64
    }

    /// The syscall for a number, if it is in the block.
    pub fn from_nr(nr: i64) -> Option<Syscall> {
        let offset = nr.checked_sub(KVMNG_SYSCALL_BASE)?;
        Syscall::ALL.get(usize::try_from(offset).ok()?).copied()
    }

    /// The C name, as in the uapi header without `__NR_`.
    pub const fn name(self) -> &'static str {
        match self {
            Syscall::CreateVm => "kvmng_create_vm",
            Syscall::BindVm => "kvmng_bind_vm",
            Syscall::CreateVcpu => "kvmng_create_vcpu",
            Syscall::BindVcpu => "kvmng_bind_vcpu",
            Syscall::Run => "kvmng_run",
            Syscall::VcpuState => "kvmng_vcpu_state",
            Syscall::Irq => "kvmng_irq",
            Syscall::MemoryMap => "kvmng_memory_map",
            Syscall::Control => "kvmng_control",
            Syscall::Ioregion => "kvmng_ioregion",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_stay_in_block() {
        for (offset, call) in Syscall::ALL.iter().enumerate() {
            assert_eq!(call.nr(), KVMNG_SYSCALL_BASE + offset as i64);
            assert_eq!(Syscall::from_nr(call.nr()), Some(*call));
        }
        assert_eq!(Syscall::from_nr(KVMNG_SYSCALL_BASE - 1), None);
        assert_eq!(
            Syscall::from_nr(KVMNG_SYSCALL_BASE + 9),
            Some(Syscall::Ioregion)
        );
        assert_eq!(Syscall::from_nr(KVMNG_SYSCALL_BASE + 10), None);
        assert_eq!(Syscall::from_nr(i64::MIN), None);
    }
}
