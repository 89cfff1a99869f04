//! Why a KVM ioctl was passed to the kernel unchanged instead of being
//! carried out through the new API. Each reason is documented in
//! docs/shim.md ("Fallback reasons"); the census counts them per command.

/// A documented fallback reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// A KVMIO request on an fd that is not /dev/kvm, a VM, a vCPU or a
    /// KVM device (or is not open).
    NotKvmFd = 0,
    /// The request number is not in the x86 mapping table for this kind of
    /// fd (another architecture's ioctl, a newer one, or the wrong fd).
    NotInTable,
    /// A device fd: its ioctls stay on the fd.
    DeviceFd,
    /// A KVM fd that did not come from a call the shim saw (inherited,
    /// received over a socket, or made by a raw syscall).
    UnknownOrigin,
    /// KVM_CREATE_VM while the process already has a bound VM.
    SecondVm,
    /// A VM or vCPU fd of a VM that is not the one bound in this process
    /// (a second VM, or the parent's VM after fork).
    VmNotBound,
    /// A system ioctl before the process has a bound VM (system scope
    /// needs one, docs/api.md 5.9).
    NoBoundVm,
    /// KVM_CREATE_VM on a /dev/kvm fd that is not open read-write.
    KvmFdNotReadWrite,
    /// A vCPU ioctl from a thread while another thread holds the vCPU.
    VcpuBusy,
    /// A vCPU ioctl (other than KVM_RUN) from a thread bound to another
    /// vCPU.
    ThreadBusy,
    /// A vCPU ioctl (other than KVM_RUN) from the thread that created the
    /// vCPU before it ran it: that thread binds at its first KVM_RUN.
    BindsAtRun,
    /// Binding the vCPU to the thread failed (the error is the backend's).
    BindFailed,
    /// The backend answered EUNATCH/ESRCH: its binding is not what the shim
    /// recorded (the program changed it through the new API).
    BindingLost,
    /// KVM_SET_USER_MEMORY_REGION with a flag the v1 ioctl refuses.
    V1Flags,
    /// MSR or CPUID entry count too large for one state entry.
    CountTooLarge,
    /// A KVM fd number beyond the shim's fd table.
    FdBeyondTable,
}

impl Reason {
    /// Number of reasons.
    pub const COUNT: usize = 16;

    /// Every reason, by number.
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::NotKvmFd,
        Reason::NotInTable,
        Reason::DeviceFd,
        Reason::UnknownOrigin,
        Reason::SecondVm,
        Reason::VmNotBound,
        Reason::NoBoundVm,
        Reason::KvmFdNotReadWrite,
        Reason::VcpuBusy,
        Reason::ThreadBusy,
        Reason::BindsAtRun,
        Reason::BindFailed,
        Reason::BindingLost,
        Reason::V1Flags,
        Reason::CountTooLarge,
        Reason::FdBeyondTable,
    ];

    /// The text used in traces and the census (stable: tools match it).
    pub const fn text(self) -> &'static str {
        match self {
            Reason::NotKvmFd => "not a KVM fd",
            Reason::NotInTable => "no mapping for this command on this fd class",
            Reason::DeviceFd => "device fd: ioctl stays on the fd",
            Reason::UnknownOrigin => "KVM fd not created through the shim",
            Reason::SecondVm => "second live VM",
            Reason::VmNotBound => "VM not bound in this process",
            Reason::NoBoundVm => "system ioctl before a VM is bound",
            Reason::KvmFdNotReadWrite => "/dev/kvm fd not open read-write",
            Reason::VcpuBusy => "vCPU bound to another thread",
            Reason::ThreadBusy => "thread bound to another vCPU",
            Reason::BindsAtRun => "vCPU binds at its first KVM_RUN",
            Reason::BindFailed => "binding the vCPU failed",
            Reason::BindingLost => "backend binding changed behind the shim",
            Reason::V1Flags => "v1 memory region flags",
            Reason::CountTooLarge => "entry count too large",
            Reason::FdBeyondTable => "fd beyond the shim's table",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_in_order_with_distinct_texts() {
        let mut texts = std::collections::HashSet::new();
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(texts.insert(r.text()));
            assert!(!r.text().contains('"'));
        }
    }
}
