//! What a file descriptor is, found without allocating: /dev/kvm, a KVM VM
//! or vCPU, or something else; and whether two fds are the same open file.

use crate::errno::{Errno, SysResult};
use crate::sys::{fcntl, fstat, kcmp_file, readlink};
use core::ffi::CStr;

/// `/dev/kvm` is the misc device 10:232.
const KVM_MAJOR: u32 = 10;
const KVM_MINOR: u32 = 232;

/// What an fd refers to, as far as kvmng cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    /// `/dev/kvm`.
    KvmDevice,
    /// A VM fd (anon inode `kvm-vm`).
    Vm,
    /// A vCPU fd (anon inode `kvm-vcpu:N`) and its id.
    Vcpu(u32),
    /// Anything else.
    Other,
}

/// `EBADF` unless `fd` is open; otherwise its open flags (`F_GETFL`).
pub fn open_flags(fd: i32) -> SysResult {
    if fd < 0 {
        return Err(Errno(libc::EBADF));
    }
    fcntl(fd, libc::F_GETFL, 0)
}

/// True when `fd` is the character device /dev/kvm.
pub fn is_kvm_device(fd: i32) -> Result<bool, Errno> {
    let st = fstat(fd)?;
    let is_char = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    Ok(is_char && libc::major(st.st_rdev) == KVM_MAJOR && libc::minor(st.st_rdev) == KVM_MINOR)
}

/// Writes `/proc/self/fd/<fd>` into `buf` as a NUL-terminated string.
fn proc_fd_path(fd: i32, buf: &mut [u8; 32]) {
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let mut n = fd as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[prefix.len() + i] = digits[len - 1 - i];
    }
    buf[prefix.len() + len] = 0;
}

/// Classifies an open fd. `EBADF` if it is not open.
pub fn classify(fd: i32) -> Result<FdKind, Errno> {
    open_flags(fd)?;
    if is_kvm_device(fd)? {
        return Ok(FdKind::KvmDevice);
    }
    let mut path = [0u8; 32];
    proc_fd_path(fd, &mut path);
    // proc_fd_path always writes the NUL: the error cannot happen.
    let path = CStr::from_bytes_until_nul(&path).map_err(|_| Errno(libc::EINVAL))?;
    let mut target = [0u8; 64];
    let len = readlink(path, &mut target)?;
    Ok(classify_link(&target[..len]))
}

/// Classifies the target of a `/proc/self/fd` link.
pub fn classify_link(target: &[u8]) -> FdKind {
    const VM: &[u8] = b"anon_inode:kvm-vm";
    const VCPU: &[u8] = b"anon_inode:kvm-vcpu:";
    if target == VM {
        return FdKind::Vm;
    }
    if let Some(id) = target.strip_prefix(VCPU) {
        let mut value: u32 = 0;
        if id.is_empty() {
            return FdKind::Other;
        }
        for &digit in id {
            if !digit.is_ascii_digit() {
                return FdKind::Other;
            }
            value = value.wrapping_mul(10).wrapping_add(u32::from(digit - b'0'));
        }
        return FdKind::Vcpu(value);
    }
    FdKind::Other
}

/// True when `a` and `b` refer to the same open file (`kcmp(KCMP_FILE)`).
pub fn same_file(a: i32, b: i32) -> bool {
    kcmp_file(a, b) == Ok(0)
}

/// KVM's own check that an object belongs to the caller's mm: its ioctls
/// answer `EIO` for another mm (and for a dead VM) before anything else.
/// Request 0 has ioctl type 0, which no KVM fd accepts, so the probe has
/// no effect and takes no lock.
pub fn belongs_to_this_mm(fd: i32) -> bool {
    // SAFETY: request 0 takes no argument and changes nothing.
    let r = unsafe { crate::sys::ioctl(fd, 0, 0) };
    r != Err(Errno(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_classify() {
        assert_eq!(classify_link(b"anon_inode:kvm-vm"), FdKind::Vm);
        assert_eq!(classify_link(b"anon_inode:kvm-vcpu:0"), FdKind::Vcpu(0));
        assert_eq!(classify_link(b"anon_inode:kvm-vcpu:17"), FdKind::Vcpu(17));
        assert_eq!(classify_link(b"anon_inode:kvm-vcpu:"), FdKind::Other);
        assert_eq!(classify_link(b"anon_inode:kvm-vcpu:1x"), FdKind::Other);
        assert_eq!(classify_link(b"anon_inode:kvm-vm2"), FdKind::Other);
        assert_eq!(classify_link(b"/dev/null"), FdKind::Other);
    }

    #[test]
    fn ordinary_fds_are_other_and_closed_fds_ebadf() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(classify(file.as_raw_fd()), Ok(FdKind::Other));
        assert_eq!(classify(-1), Err(Errno(libc::EBADF)));
        assert!(same_file(file.as_raw_fd(), file.as_raw_fd()));
        let other = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!same_file(file.as_raw_fd(), other.as_raw_fd()));
        let mut path = [0u8; 32];
        proc_fd_path(1234, &mut path);
        assert_eq!(&path[..19], b"/proc/self/fd/1234\0");
    }
}
