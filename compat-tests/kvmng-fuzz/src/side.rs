//! The two ways of issuing an ioctl: through the `ioctl` symbol (which the
//! preloaded shim interposes and translates) and as a raw syscall (which
//! nothing interposes).

/// Which path a call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `ioctl()`: the shim's translation when libkvmshim.so is preloaded.
    Shim,
    /// `syscall(SYS_ioctl, ...)`: the kernel, untouched.
    Raw,
}

/// The result of one call: the return value and, when it is -1, errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub ret: i64,
    pub errno: i32,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Issues `cmd` with `arg` on `fd` along `path`.
///
/// # Safety
/// `arg` may be any value, but if it points into this process's memory,
/// whatever the ioctl may write there must be writable without harm (the
/// fuzzer passes its own arenas, unmapped or kernel addresses).
pub unsafe fn ioctl(path: Path, fd: i32, cmd: u64, arg: u64) -> Outcome {
    let ret = match path {
        // SAFETY: per the contract of this function.
        Path::Shim => unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) as i64 },
        // SAFETY: per the contract of this function.
        Path::Raw => unsafe { libc::syscall(libc::SYS_ioctl, fd as i64, cmd, arg) },
    };
    Outcome {
        ret,
        errno: if ret == -1 { errno() } else { 0 },
    }
}

/// Whether libkvmshim.so is mapped into this process.
pub fn shim_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.contains("libkvmshim"))
        .unwrap_or(false)
}
