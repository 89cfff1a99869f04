//! The error type of every kvmng call: an errno, as the kernel reports it.

use std::fmt;

/// An errno value (always positive).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// What a kvmng call returns: the syscall's non-negative result, or errno.
pub type SysResult = Result<i64, Errno>;

impl Errno {
    /// The errno of a raw kernel return value (`-4095..=-1`), if it is one.
    pub const fn from_raw_return(ret: i64) -> Option<Errno> {
        if ret < 0 && ret >= -4095 {
            Some(Errno(-ret as i32))
        } else {
            None
        }
    }

    /// Turns a raw kernel return value into a result.
    pub const fn result(ret: i64) -> SysResult {
        match Errno::from_raw_return(ret) {
            Some(e) => Err(e),
            None => Ok(ret),
        }
    }

    /// The symbolic name (`"EINVAL"`), or `"E?"` for an unknown value.
    pub fn name(self) -> &'static str {
        match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::ESRCH => "ESRCH",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::ENXIO => "ENXIO",
            libc::E2BIG => "E2BIG",
            libc::ENOEXEC => "ENOEXEC",
            libc::EBADF => "EBADF",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::ENODEV => "ENODEV",
            libc::EINVAL => "EINVAL",
            libc::EMFILE => "EMFILE",
            libc::ENOTTY => "ENOTTY",
            libc::ENOSPC => "ENOSPC",
            libc::ERANGE => "ERANGE",
            libc::ENOSYS => "ENOSYS",
            libc::EUNATCH => "EUNATCH",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::ECANCELED => "ECANCELED",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::EPIPE => "EPIPE",
            libc::EBADMSG => "EBADMSG",
            libc::ENOTSOCK => "ENOTSOCK",
            libc::EAFNOSUPPORT => "EAFNOSUPPORT",
            libc::EPROTOTYPE => "EPROTOTYPE",
            libc::ENOTCONN => "ENOTCONN",
            libc::ENFILE => "ENFILE",
            _ => "E?",
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = std::io::Error::from_raw_os_error(self.0);
        write!(f, "{}: {}", self.name(), text)
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_returns_split_into_values_and_errnos() {
        assert_eq!(Errno::result(0), Ok(0));
        assert_eq!(Errno::result(7), Ok(7));
        assert_eq!(Errno::result(-22), Err(Errno(libc::EINVAL)));
        assert_eq!(Errno::result(-4095), Err(Errno(4095)));
        // Addresses with the top bit set are values, not errors.
        assert_eq!(Errno::result(-4096), Ok(-4096));
        assert_eq!(format!("{:?}", Errno(libc::ESRCH)), "ESRCH(3)");
    }
}
