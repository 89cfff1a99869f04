//! Registration: `kvmng_ioregion` ADD and DEL, and dropping every region
//! when the VM binding changes or the process forks.

use super::table::{
    get_socket, put_socket, RegGuard, HIGH, LIVE, PARKED, REGIONS, REG_LOCK, SOCKETS,
};
use super::MAX_REGIONS;
use crate::backend::legacy::{binding, fdkind, usermem};
use crate::errno::{Errno, SysResult};
use crate::sys::{self, close};
use core::sync::atomic::Ordering::SeqCst;
use kvmng_abi::*;

fn einval() -> Errno {
    Errno(libc::EINVAL)
}

/// `kvmng_ioregion(op, region, flags)` of the emulation.
pub fn ioregion(op: u32, region: u64, flags: u32) -> SysResult {
    if flags != 0 {
        return Err(einval());
    }
    if op != KVMNG_IOREGION_ADD && op != KVMNG_IOREGION_DEL {
        return Err(einval());
    }
    let vm_fd = binding::vm_fd()?;
    // A VM that KVM has marked dead answers EIO, as its VM ioctls do and
    // as the kernel's kvmng_ioregion does (api.md 5.10): any VM ioctl
    // tells (the mm is ours: it is the bound VM).
    // SAFETY: KVM_CHECK_EXTENSION takes an integer argument.
    let probe = unsafe { crate::sys::ioctl(vm_fd, kvmng_abi::ioctls::KVM_CHECK_EXTENSION, 0) };
    if probe == Err(Errno(libc::EIO)) {
        return Err(Errno(libc::EIO));
    }
    let r: kvmng_ioregion = usermem::read_value(region)?;
    if r.flags & !KVMNG_IOREGION_FLAGS != 0 || r.reserved != [0; 4] {
        return Err(einval());
    }
    if r.size == 0 {
        return Err(einval());
    }
    if r.size > KVMNG_IOREGION_MAX_SIZE {
        return Err(Errno(libc::E2BIG));
    }
    let pio = r.flags & KVMNG_IOREGION_PIO != 0;
    let end = r.addr.checked_add(r.size).ok_or_else(einval)?;
    if pio && end > KVMNG_IOREGION_PIO_END {
        return Err(einval());
    }
    if op == KVMNG_IOREGION_ADD {
        add(&r)
    } else {
        del(&r)
    }
}

/// The fd checks of ADD, in the order of api.md.
fn check_socket(fd: i32) -> Result<(), Errno> {
    if fd < 0 {
        return Err(Errno(libc::EBADF));
    }
    // EBADF for a closed fd, ENOTSOCK for anything but a socket.
    if sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)? != libc::AF_UNIX {
        return Err(Errno(libc::EAFNOSUPPORT));
    }
    if sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_SEQPACKET {
        return Err(Errno(libc::EPROTOTYPE));
    }
    // ENOTCONN for a socket that is not connected.
    let mut addr = [0u8; 128];
    sys::getpeername(fd, &mut addr)?;
    Ok(())
}

/// A socket entry for `fd` with one reference taken: the entry of the same
/// open socket if one exists, else a new one. Call with [`REG_LOCK`].
fn socket_for(fd: i32) -> Result<usize, Errno> {
    for (i, s) in SOCKETS.iter().enumerate() {
        if get_socket(i) {
            if fdkind::same_file(s.fd.load(SeqCst), fd) {
                return Ok(i);
            }
            put_socket(i);
        }
    }
    let i = (0..MAX_REGIONS)
        .find(|&i| SOCKETS[i].refs.load(SeqCst) == 0 && SOCKETS[i].fd.load(SeqCst) == -1)
        .ok_or(Errno(libc::ENOSPC))?;
    let private = binding::private_dup(fd)?;
    let s = &SOCKETS[i];
    s.reset();
    s.fd.store(private, SeqCst);
    s.refs.store(1, SeqCst);
    Ok(i)
}

fn write_region(i: usize, live: bool, r: &kvmng_ioregion, sock: usize) {
    let e = &REGIONS[i];
    e.seq.fetch_add(1, SeqCst);
    e.addr.store(r.addr, SeqCst);
    e.size.store(r.size, SeqCst);
    e.flags.store(r.flags, SeqCst);
    e.user_data.store(r.user_data, SeqCst);
    e.sock.store(sock as u32, SeqCst);
    e.live.store(u32::from(live), SeqCst);
    e.seq.fetch_add(1, SeqCst);
}

fn add(r: &kvmng_ioregion) -> SysResult {
    check_socket(r.fd)?;
    let pio = r.flags & KVMNG_IOREGION_PIO;
    let _guard = RegGuard::lock();
    let overlaps = REGIONS.iter().any(|e| {
        e.live.load(SeqCst) != 0
            && e.flags.load(SeqCst) & KVMNG_IOREGION_PIO == pio
            && r.addr < e.addr.load(SeqCst) + e.size.load(SeqCst)
            && e.addr.load(SeqCst) < r.addr + r.size
    });
    if overlaps {
        return Err(Errno(libc::EEXIST));
    }
    let slot = (0..MAX_REGIONS)
        .find(|&i| REGIONS[i].live.load(SeqCst) == 0)
        .ok_or(Errno(libc::ENOSPC))?;
    let sock = socket_for(r.fd)?;
    HIGH.fetch_max(slot + 1, SeqCst);
    write_region(slot, true, r, sock);
    LIVE.fetch_add(1, SeqCst);
    Ok(0)
}

fn del(r: &kvmng_ioregion) -> SysResult {
    let pio = r.flags & KVMNG_IOREGION_PIO;
    let _guard = RegGuard::lock();
    let slot = (0..MAX_REGIONS)
        .find(|&i| {
            let e = &REGIONS[i];
            e.live.load(SeqCst) != 0
                && e.flags.load(SeqCst) & KVMNG_IOREGION_PIO == pio
                && e.addr.load(SeqCst) == r.addr
                && e.size.load(SeqCst) == r.size
        })
        .ok_or(Errno(libc::ENOENT))?;
    remove(slot);
    Ok(0)
}

/// Removes live region `i`. Call with [`REG_LOCK`].
fn remove(i: usize) {
    let e = &REGIONS[i];
    let sock = e.sock.load(SeqCst) as usize;
    e.seq.fetch_add(1, SeqCst);
    e.live.store(0, SeqCst);
    e.seq.fetch_add(1, SeqCst);
    if LIVE.fetch_sub(1, SeqCst) == 1 {
        HIGH.store(0, SeqCst);
    }
    put_socket(sock);
}

/// Drops every region: the VM binding of the mm changed (regions belong
/// to the bound VM). vCPUs in the middle of a round trip finish it.
pub fn forget_regions() {
    forget_parked();
    if LIVE.load(SeqCst) == 0 {
        return;
    }
    let _guard = RegGuard::lock();
    for (i, e) in REGIONS.iter().enumerate() {
        if e.live.load(SeqCst) != 0 {
            remove(i);
        }
    }
}

/// Drops the parked vCPUs: their accesses were to regions of the VM that
/// is no longer bound, which the emulation no longer serves, and their
/// private fds must not keep that VM alive (api.md section 2). Such a
/// vCPU's next run completes the access from `kvm_run`, as the KVM_RUN
/// ioctl would.
fn forget_parked() {
    for p in PARKED.iter() {
        let fd = p.fd.swap(-1, SeqCst);
        if fd >= 0 {
            let _ = close(fd);
        }
    }
}

/// fork() child: no regions, no sockets, no parked vCPUs; the inherited
/// private fds are closed (the parent keeps its own).
pub fn after_fork_in_child() {
    REG_LOCK.store(false, SeqCst);
    for e in REGIONS.iter() {
        e.live.store(0, SeqCst);
        e.seq.store(0, SeqCst);
    }
    LIVE.store(0, SeqCst);
    HIGH.store(0, SeqCst);
    for s in SOCKETS.iter() {
        let fd = s.fd.swap(-1, SeqCst);
        if fd >= 0 {
            let _ = close(fd);
        }
        s.refs.store(0, SeqCst);
        s.reset();
    }
    forget_parked();
}
