//! I/O regions over sockets (docs/api.md 5.10): the typed registration
//! ([`IoRegion`], [`crate::Vm::ioregion_add`]) and the device side of the
//! wire protocol ([`socket_pair`], [`recv_request`], [`send_reply`],
//! [`serve`]).
//!
//! The device side is ordinary code (it may allocate and block): it runs
//! in device threads or processes, never in a vCPU's run path.

use kvmng_abi::*;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The address space of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Guest-physical memory addresses.
    Mmio,
    /// x86 I/O ports (below 0x10000).
    Pio,
}

/// A region for `kvmng_ioregion(KVMNG_IOREGION_ADD/DEL)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoRegion {
    /// MMIO or port I/O.
    pub space: Space,
    /// First address (or port).
    pub addr: u64,
    /// Size in bytes (or ports).
    pub size: u64,
    /// The VMM's end of an `AF_UNIX` `SOCK_SEQPACKET` socket pair.
    pub fd: RawFd,
    /// Writes are posted (no reply, the vCPU does not wait).
    pub posted: bool,
    /// Copied into every request.
    pub user_data: u64,
}

impl IoRegion {
    /// An MMIO region of `size` bytes at `addr`, served over `fd`.
    pub fn mmio(addr: u64, size: u64, fd: RawFd) -> IoRegion {
        IoRegion {
            space: Space::Mmio,
            addr,
            size,
            fd,
            posted: false,
            user_data: 0,
        }
    }

    /// A port I/O region of `count` ports from `port`, served over `fd`.
    pub fn pio(port: u16, count: u64, fd: RawFd) -> IoRegion {
        IoRegion {
            space: Space::Pio,
            addr: u64::from(port),
            size: count,
            fd,
            posted: false,
            user_data: 0,
        }
    }

    /// The same region with posted writes.
    pub fn posted(self) -> IoRegion {
        IoRegion {
            posted: true,
            ..self
        }
    }

    /// The same region with `user_data`.
    pub fn with_user_data(self, user_data: u64) -> IoRegion {
        IoRegion { user_data, ..self }
    }

    /// The uapi struct.
    pub fn to_abi(&self) -> kvmng_ioregion {
        let mut flags = 0;
        if self.space == Space::Pio {
            flags |= KVMNG_IOREGION_PIO;
        }
        if self.posted {
            flags |= KVMNG_IOREGION_POSTED;
        }
        kvmng_ioregion {
            addr: self.addr,
            size: self.size,
            fd: self.fd,
            flags,
            user_data: self.user_data,
            reserved: [0; 4],
        }
    }
}

/// A guest access, as the device receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Request id, to be echoed in the reply.
    pub id: u64,
    /// Offset from the region's start.
    pub offset: u64,
    /// The value written (the low `len` bytes); 0 for a read.
    pub data: u64,
    /// The region's `user_data`.
    pub user_data: u64,
    /// The accessing vCPU.
    pub vcpu_id: u32,
    /// Access size in bytes (1 to 8).
    pub len: u8,
    /// A write (else a read).
    pub write: bool,
    /// A posted write: send no reply.
    pub posted: bool,
    /// A port access.
    pub pio: bool,
}

impl Request {
    /// Decodes the wire struct.
    pub fn from_abi(r: &kvmng_ioregion_request) -> Request {
        Request {
            id: r.id,
            offset: r.offset,
            data: r.data,
            user_data: r.user_data,
            vcpu_id: r.vcpu_id,
            len: r.len,
            write: u32::from(r.dir) == KVMNG_IOREGION_WRITE,
            posted: u32::from(r.flags) & KVMNG_IOREGION_REQ_POSTED != 0,
            pio: u32::from(r.flags) & KVMNG_IOREGION_REQ_PIO != 0,
        }
    }

    /// Whether the device must reply (everything but a posted write).
    pub fn needs_reply(&self) -> bool {
        !(self.write && self.posted)
    }
}

/// A connected `AF_UNIX` `SOCK_SEQPACKET` pair, close-on-exec: one end for
/// `kvmng_ioregion`, the other for the device.
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: socketpair writes two fds into `fds`.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Receives one request; `None` at end of file (the VM side closed).
/// A message of the wrong size is `InvalidData`.
pub fn recv_request(fd: BorrowedFd<'_>) -> io::Result<Option<Request>> {
    let mut raw = kvmng_ioregion_request::default();
    let size = core::mem::size_of::<kvmng_ioregion_request>();
    loop {
        // SAFETY: recv writes at most `size` bytes into `raw`, a plain
        // struct of integers valid for any bytes; MSG_TRUNC makes it
        // report the real message length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                (&mut raw as *mut kvmng_ioregion_request).cast(),
                size,
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return match n as usize {
            0 => Ok(None),
            n if n == size => Ok(Some(Request::from_abi(&raw))),
            n => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("ioregion request of {n} bytes (expected {size})"),
            )),
        };
    }
}

/// Sends the reply to request `id`.
pub fn send_reply(fd: BorrowedFd<'_>, id: u64, data: u64) -> io::Result<()> {
    send_raw(
        fd,
        as_bytes(&kvmng_ioregion_reply { id, data }),
        "ioregion reply",
    )
}

/// Sends any bytes as one message (tests use it to send malformed replies).
pub fn send_raw(fd: BorrowedFd<'_>, bytes: &[u8], what: &str) -> io::Result<()> {
    loop {
        // SAFETY: send reads `bytes`; MSG_NOSIGNAL turns a closed peer
        // into EPIPE instead of SIGPIPE.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n as usize != bytes.len() {
            return Err(io::Error::other(format!("{what}: short send")));
        }
        return Ok(());
    }
}

fn as_bytes(reply: &kvmng_ioregion_reply) -> &[u8] {
    // SAFETY: a repr(C) struct of two u64s has no padding; its bytes are
    // initialized.
    unsafe {
        core::slice::from_raw_parts(
            (reply as *const kvmng_ioregion_reply).cast::<u8>(),
            core::mem::size_of::<kvmng_ioregion_reply>(),
        )
    }
}

/// Serves requests until end of file: `handler` returns the value of a
/// read (ignored for writes); replies are sent to everything but posted
/// writes. Returns the number of requests served.
pub fn serve(fd: BorrowedFd<'_>, mut handler: impl FnMut(&Request) -> u64) -> io::Result<u64> {
    let mut served = 0;
    while let Some(request) = recv_request(fd)? {
        let value = handler(&request);
        served += 1;
        if request.needs_reply() {
            let data = if request.write { 0 } else { value };
            match send_reply(fd, request.id, data) {
                Ok(()) => {}
                // The VM side went away: nothing more will come.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(served)
}

/// A register file a device can keep: bytes by offset, accessed with the
/// lengths and little-endian values of the wire protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterFile {
    bytes: Vec<u8>,
}

impl RegisterFile {
    /// `size` zeroed bytes.
    pub fn new(size: usize) -> RegisterFile {
        RegisterFile {
            bytes: vec![0; size],
        }
    }

    /// Carries out a request: stores a write, returns a read's value.
    /// Accesses outside the file read as all ones and are not stored.
    pub fn access(&mut self, r: &Request) -> u64 {
        let start = r.offset as usize;
        let len = usize::from(r.len).min(8);
        let Some(cell) = self.bytes.get_mut(start..start + len) else {
            return u64::MAX;
        };
        if r.write {
            cell.copy_from_slice(&r.data.to_le_bytes()[..len]);
            0
        } else {
            let mut value = [0u8; 8];
            value[..len].copy_from_slice(cell);
            u64::from_le_bytes(value)
        }
    }

    /// The little-endian value of `len` bytes at `offset`.
    pub fn read(&self, offset: usize, len: usize) -> u64 {
        let mut value = [0u8; 8];
        value[..len].copy_from_slice(&self.bytes[offset..offset + len]);
        u64::from_le_bytes(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn regions_encode_their_flags() {
        let r = IoRegion::pio(0x700, 4, 9).posted().with_user_data(7);
        let abi = r.to_abi();
        assert_eq!(abi.flags, KVMNG_IOREGION_PIO | KVMNG_IOREGION_POSTED);
        assert_eq!(
            (abi.addr, abi.size, abi.fd, abi.user_data),
            (0x700, 4, 9, 7)
        );
        assert_eq!(IoRegion::mmio(0x1000, 8, 3).to_abi().flags, 0);
    }

    #[test]
    fn a_device_serves_a_register_file_over_the_wire() {
        let (vmm, dev) = socket_pair().unwrap();
        let device = std::thread::spawn(move || {
            let mut regs = RegisterFile::new(16);
            serve(dev.as_fd(), |r| regs.access(r)).unwrap()
        });
        let send = |req: kvmng_ioregion_request| {
            // SAFETY: the request is a plain repr(C) struct without padding.
            let bytes = unsafe {
                core::slice::from_raw_parts(
                    (&req as *const kvmng_ioregion_request).cast::<u8>(),
                    core::mem::size_of::<kvmng_ioregion_request>(),
                )
            };
            send_raw(vmm.as_fd(), bytes, "request").unwrap();
        };
        let recv_reply = || {
            let mut reply = [0u8; 16];
            // SAFETY: recv writes at most 16 bytes into `reply`.
            let n = unsafe { libc::recv(vmm.as_raw_fd(), reply.as_mut_ptr().cast(), 16, 0) };
            assert_eq!(n, 16);
            (
                u64::from_ne_bytes(reply[..8].try_into().unwrap()),
                u64::from_ne_bytes(reply[8..].try_into().unwrap()),
            )
        };
        let write = kvmng_ioregion_request {
            id: 1,
            offset: 4,
            data: 0xAABB,
            len: 2,
            dir: KVMNG_IOREGION_WRITE as u8,
            ..Default::default()
        };
        send(write);
        assert_eq!(recv_reply(), (1, 0));
        let posted = kvmng_ioregion_request {
            id: 2,
            offset: 6,
            data: 0xCC,
            len: 1,
            dir: KVMNG_IOREGION_WRITE as u8,
            flags: KVMNG_IOREGION_REQ_POSTED as u8,
            ..Default::default()
        };
        send(posted);
        let read = kvmng_ioregion_request {
            id: 3,
            offset: 4,
            len: 4,
            dir: KVMNG_IOREGION_READ as u8,
            ..Default::default()
        };
        send(read);
        assert_eq!(recv_reply(), (3, 0xCC_AABB), "no reply to the posted write");
        drop(vmm);
        assert_eq!(device.join().unwrap(), 3);
    }
}
