//! What each fd number is, cached in a fixed table of atomics.
//!
//! An entry is set when the shim sees the fd made (KVM_CREATE_VM,
//! KVM_CREATE_VCPU, KVM_CREATE_DEVICE, dup), cleared when it sees it
//! closed or its number reused (close, close_range, dup2/dup3 targets,
//! open), and otherwise filled lazily on the first KVM ioctl: /dev/kvm is
//! the character device 10:232, VM and vCPU fds are named by their
//! `/proc/self/fd` link (`anon_inode:kvm-vm`, `anon_inode:kvm-vcpu:N`).
//! Lazily classified VM and vCPU fds have no known origin.

use core::ffi::CStr;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use kvmng::backend::legacy::fdkind::{self, FdKind};
use kvmng_abi::ioctls::FdClass;

/// fds below this number are cached; larger ones are classified on every
/// KVM ioctl (and, having no known origin, fall back).
pub const TABLE_SIZE: usize = 1 << 16;

static FDS: [AtomicU64; TABLE_SIZE] = [const { AtomicU64::new(0) }; TABLE_SIZE];

/// What the shim knows of one fd, packed in a u64:
/// bits 0-3 kind, bit 4 counted, bit 5 known origin, bits 8-23 vCPU id,
/// bits 32-63 serial of the VM (0: not a VM this process bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry(pub u64);

/// The kinds of fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Not classified yet.
    Unknown = 0,
    /// Not a KVM fd (or a KVM fd without ioctls: stats fd, guest_memfd).
    Other = 1,
    /// /dev/kvm.
    System = 2,
    /// A VM fd.
    Vm = 3,
    /// A vCPU fd.
    Vcpu = 4,
    /// A KVM device fd.
    Device = 5,
}

const COUNTED: u64 = 1 << 4;
const KNOWN: u64 = 1 << 5;
/// Kind, vCPU id and serial ([`Entry::vcpu_bits`]).
const VCPU_BITS: u64 = 0xffff_ffff_00ff_ff0f;

impl Entry {
    /// No knowledge.
    pub const EMPTY: Entry = Entry(0);

    /// An entry of `kind`.
    pub const fn of(kind: Kind) -> Entry {
        Entry(kind as u64)
    }

    /// A VM or vCPU fd that the shim saw being made: `serial` is the bound
    /// VM's serial (0 for a VM that is not bound), `counted` whether it
    /// keeps the binding alive.
    pub const fn made(kind: Kind, serial: u32, vcpu_id: u16, counted: bool) -> Entry {
        let mut bits = kind as u64 | KNOWN | ((vcpu_id as u64) << 8) | ((serial as u64) << 32);
        if counted {
            bits |= COUNTED;
        }
        Entry(bits)
    }

    /// The kind.
    pub const fn kind(self) -> Kind {
        match self.0 & 0xf {
            1 => Kind::Other,
            2 => Kind::System,
            3 => Kind::Vm,
            4 => Kind::Vcpu,
            5 => Kind::Device,
            _ => Kind::Unknown,
        }
    }

    /// The fd class of the mapping table, if a KVM fd with ioctls.
    pub const fn class(self) -> Option<FdClass> {
        match self.kind() {
            Kind::System => Some(FdClass::System),
            Kind::Vm => Some(FdClass::Vm),
            Kind::Vcpu => Some(FdClass::Vcpu),
            Kind::Device => Some(FdClass::Device),
            Kind::Unknown | Kind::Other => None,
        }
    }

    /// Short class name for traces.
    pub const fn class_name(self) -> &'static str {
        match self.kind() {
            Kind::System => "system",
            Kind::Vm => "vm",
            Kind::Vcpu => "vcpu",
            Kind::Device => "device",
            Kind::Unknown | Kind::Other => "other",
        }
    }

    /// Whether the entry keeps its VM's binding alive.
    pub const fn counted(self) -> bool {
        self.0 & COUNTED != 0
    }

    /// Whether the shim saw this fd being made in this process.
    pub const fn known(self) -> bool {
        self.0 & KNOWN != 0
    }

    /// The VM serial (0 for none).
    pub const fn serial(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The vCPU id of a vCPU fd.
    pub const fn vcpu_id(self) -> u16 {
        (self.0 >> 8) as u16
    }

    /// The bits that name a vCPU: kind, vCPU id and VM serial (not the
    /// flags). Two vCPU entries of one vCPU have the same; see
    /// [`Entry::vcpu_bits_of`].
    pub const fn vcpu_bits(self) -> u64 {
        self.0 & VCPU_BITS
    }

    /// [`Entry::vcpu_bits`] of the entry of vCPU `vcpu_id` of the VM with
    /// `serial`: never 0 (the kind is in it).
    pub const fn vcpu_bits_of(serial: u32, vcpu_id: u16) -> u64 {
        Entry::made(Kind::Vcpu, serial, vcpu_id, false).vcpu_bits()
    }

    /// The same entry, no longer keeping a binding alive.
    pub const fn uncounted(self) -> Entry {
        Entry(self.0 & !COUNTED)
    }
}

fn slot(fd: i32) -> Option<&'static AtomicU64> {
    usize::try_from(fd).ok().and_then(|i| FDS.get(i))
}

/// Whether `fd` has a slot in the table.
pub fn in_table(fd: i32) -> bool {
    slot(fd).is_some()
}

/// The cached entry (EMPTY for fds outside the table).
#[inline]
pub fn get(fd: i32) -> Entry {
    slot(fd).map_or(Entry::EMPTY, |s| Entry(s.load(SeqCst)))
}

/// Replaces the entry, returning the old one.
pub fn swap(fd: i32, entry: Entry) -> Entry {
    slot(fd).map_or(Entry::EMPTY, |s| Entry(s.swap(entry.0, SeqCst)))
}

/// The entry of `fd`, classifying it now if it was not classified. A
/// closed fd classifies as `Other` and is not cached.
pub fn classify(fd: i32) -> Entry {
    let cached = get(fd);
    if cached.kind() != Kind::Unknown {
        return cached;
    }
    let Ok(entry) = classify_now(fd) else {
        return Entry::of(Kind::Other);
    };
    if let Some(s) = slot(fd) {
        // Another thread may have registered the fd meanwhile: keep that.
        let _ = s.compare_exchange(0, entry.0, SeqCst, SeqCst);
        return Entry(s.load(SeqCst));
    }
    entry
}

/// Classifies an open fd from the kernel's view of it.
fn classify_now(fd: i32) -> Result<Entry, kvmng::Errno> {
    fdkind::open_flags(fd)?;
    if fdkind::is_kvm_device(fd)? {
        return Ok(Entry::of(Kind::System));
    }
    let mut link = [0u8; 64];
    let len = read_fd_link(fd, &mut link)?;
    let target = &link[..len];
    Ok(match fdkind::classify_link(target) {
        FdKind::Vm => Entry::of(Kind::Vm),
        FdKind::Vcpu(id) => Entry(Kind::Vcpu as u64 | (u64::from(id as u16) << 8)),
        FdKind::KvmDevice => Entry::of(Kind::System),
        FdKind::Other if is_device_link(target) => Entry::of(Kind::Device),
        FdKind::Other => Entry::of(Kind::Other),
    })
}

/// A KVM device (from KVM_CREATE_DEVICE) is an anon inode named after its
/// type, `kvm-<type>`; the VM, vCPU and stats fds have their own names.
fn is_device_link(target: &[u8]) -> bool {
    let Some(name) = target.strip_prefix(b"anon_inode:kvm-") else {
        return false;
    };
    !(name == b"vm" || name.starts_with(b"vcpu:") || name == b"vm-stats" || name == b"vcpu-stats")
}

/// readlink("/proc/self/fd/<fd>") into `out`; the length read.
fn read_fd_link(fd: i32, out: &mut [u8; 64]) -> Result<usize, kvmng::Errno> {
    let mut path = [0u8; 32];
    let mut b = crate::interpose::fmtbuf::Buf::new(&mut path[..31]);
    b.s("/proc/self/fd/").u(fd as u64);
    let n = b.bytes().len();
    path[n] = 0;
    // The NUL was just written: the error cannot happen.
    let path = CStr::from_bytes_until_nul(&path).map_err(|_| kvmng::Errno(libc::EINVAL))?;
    kvmng::sys::readlink(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_pack_and_unpack() {
        let e = Entry::made(Kind::Vcpu, 7, 300, true);
        assert_eq!(e.kind(), Kind::Vcpu);
        assert_eq!(e.serial(), 7);
        assert_eq!(e.vcpu_id(), 300);
        assert!(e.counted() && e.known());
        assert!(!e.uncounted().counted());
        assert_eq!(e.class(), Some(FdClass::Vcpu));
        assert_eq!(Entry::EMPTY.kind(), Kind::Unknown);
        assert_eq!(Entry::of(Kind::Other).class(), None);
    }

    #[test]
    fn device_links() {
        assert!(is_device_link(b"anon_inode:kvm-vfio"));
        assert!(!is_device_link(b"anon_inode:kvm-vm"));
        assert!(!is_device_link(b"anon_inode:kvm-vcpu:3"));
        assert!(!is_device_link(b"anon_inode:kvm-vm-stats"));
        assert!(!is_device_link(b"anon_inode:[eventfd]"));
    }

    #[test]
    fn ordinary_and_closed_fds() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        use std::os::fd::AsRawFd;
        let fd = f.as_raw_fd();
        swap(fd, Entry::EMPTY);
        assert_eq!(classify(fd).kind(), Kind::Other);
        assert_eq!(get(fd).kind(), Kind::Other);
        swap(fd, Entry::EMPTY);
        assert_eq!(classify(-1).kind(), Kind::Other);
        assert_eq!(get(-1), Entry::EMPTY);
    }
}
