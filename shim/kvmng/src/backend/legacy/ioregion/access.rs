//! The run path: the access an exit describes, the region it hits, and
//! carrying a pending access out through the region's socket.

use super::exchange::exchange;
use super::table::{get_socket, put_socket, HIGH, LIVE, NEXT_ID, REGIONS};
use super::vcpu::VcpuIo;
use super::{MAX_REGIONS, RUN_MAP_LEN};
use crate::backend::legacy::binding::ThreadBinding;
use crate::errno::Errno;
use core::sync::atomic::Ordering::SeqCst;
use kvm_bindings::{kvm_run, KVM_EXIT_IO, KVM_EXIT_IO_OUT, KVM_EXIT_MMIO};
use kvmng_abi::*;

/// One guest access, as KVM described it in `kvm_run`.
#[derive(Clone, Copy)]
struct Access {
    pio: bool,
    write: bool,
    addr: u64,
    len: u8,
    /// Elements of a string port access (1 otherwise).
    count: u32,
    /// The data of element 0 inside the binding's mapping; element `i` is
    /// `len * i` bytes further (port I/O).
    data: *mut u8,
}

impl Access {
    /// What tells this access from the next exit: its space, direction,
    /// address, size, element count and data offset.
    fn identity(&self, run: u64) -> [u64; 2] {
        let offset = (self.data as u64).wrapping_sub(run) & 0xffff;
        let shape = u64::from(self.pio) << 63
            | u64::from(self.write) << 62
            | u64::from(self.len) << 48
            | u64::from(self.count) << 16
            | offset;
        [self.addr, shape]
    }
}

/// The access the exit in the binding's `kvm_run` describes, if it is an
/// MMIO or port access the emulation can serve.
fn decode(io: &VcpuIo) -> Option<Access> {
    let run = io.run.load(SeqCst) as *mut kvm_run;
    if run.is_null() {
        return None;
    }
    // SAFETY: `run` is this binding's live mapping of RUN_MAP_LEN bytes
    // (kvm_run fits in the first page), and the vCPU is not in KVM_RUN:
    // the kernel does not write it now. Fields are read with volatile
    // loads, through raw pointers, because the program may write the
    // same page (immediate_exit) from a signal handler.
    unsafe {
        match core::ptr::addr_of!((*run).exit_reason).read_volatile() {
            KVM_EXIT_MMIO => {
                let mmio = core::ptr::addr_of_mut!((*run).__bindgen_anon_1.mmio);
                let len = core::ptr::addr_of!((*mmio).len).read_volatile();
                if !(1..=8).contains(&len) {
                    return None;
                }
                Some(Access {
                    pio: false,
                    write: core::ptr::addr_of!((*mmio).is_write).read_volatile() != 0,
                    addr: core::ptr::addr_of!((*mmio).phys_addr).read_volatile(),
                    len: len as u8,
                    count: 1,
                    data: core::ptr::addr_of_mut!((*mmio).data).cast::<u8>(),
                })
            }
            KVM_EXIT_IO => {
                let port_io = core::ptr::addr_of!((*run).__bindgen_anon_1.io);
                let size = core::ptr::addr_of!((*port_io).size).read_volatile();
                let count = core::ptr::addr_of!((*port_io).count).read_volatile();
                let offset = core::ptr::addr_of!((*port_io).data_offset).read_volatile();
                let bytes = u64::from(size) * u64::from(count);
                if !matches!(size, 1 | 2 | 4)
                    || count == 0
                    || offset.checked_add(bytes)? > RUN_MAP_LEN as u64
                {
                    return None;
                }
                Some(Access {
                    pio: true,
                    write: u32::from(core::ptr::addr_of!((*port_io).direction).read_volatile())
                        == KVM_EXIT_IO_OUT,
                    addr: u64::from(core::ptr::addr_of!((*port_io).port).read_volatile()),
                    len: size,
                    count,
                    data: run.cast::<u8>().add(offset as usize),
                })
            }
            _ => None,
        }
    }
}

pub(super) fn immediate_exit(io: &VcpuIo) -> bool {
    let run = io.run.load(SeqCst) as *const kvm_run;
    // SAFETY: as in `decode`: the binding's live mapping, read volatile.
    !run.is_null() && unsafe { core::ptr::addr_of!((*run).immediate_exit).read_volatile() } != 0
}

/// A region an access hit, as read under its sequence counter.
#[derive(Clone, Copy)]
struct Hit {
    index: usize,
    seq: u32,
    offset: u64,
    user_data: u64,
    posted: bool,
    sock: usize,
}

/// The live region of the space that wholly contains `[addr, addr + len)`.
fn find(pio: bool, addr: u64, len: u64) -> Option<Hit> {
    let space = if pio { KVMNG_IOREGION_PIO } else { 0 };
    let high = HIGH.load(SeqCst).min(MAX_REGIONS);
    for (index, e) in REGIONS[..high].iter().enumerate() {
        loop {
            let seq = e.seq.load(SeqCst);
            if seq & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let live = e.live.load(SeqCst);
            let flags = e.flags.load(SeqCst);
            let start = e.addr.load(SeqCst);
            let size = e.size.load(SeqCst);
            let user_data = e.user_data.load(SeqCst);
            let sock = e.sock.load(SeqCst) as usize;
            if e.seq.load(SeqCst) != seq {
                continue;
            }
            let hit = live != 0
                && flags & KVMNG_IOREGION_PIO == space
                && addr >= start
                && u128::from(addr) + u128::from(len) <= u128::from(start) + u128::from(size);
            if hit {
                return Some(Hit {
                    index,
                    seq,
                    offset: addr - start,
                    user_data,
                    posted: flags & KVMNG_IOREGION_POSTED != 0,
                    sock,
                });
            }
            break;
        }
    }
    None
}

/// [`find`], with a reference taken on the region's socket (the region is
/// checked to be still the same after taking it).
fn acquire(pio: bool, addr: u64, len: u64) -> Option<Hit> {
    loop {
        let hit = find(pio, addr, len)?;
        if get_socket(hit.sock) {
            if REGIONS[hit.index].seq.load(SeqCst) == hit.seq {
                return Some(hit);
            }
            put_socket(hit.sock);
        }
        core::hint::spin_loop();
    }
}

/// After KVM_RUN returned an exit: true when it is an access to a region.
/// The access is then pending and the run loop serves it ([`resume`]).
pub fn claim_exit(me: &ThreadBinding) -> bool {
    if LIVE.load(SeqCst) == 0 {
        return false;
    }
    let Some(access) = decode(&me.io) else {
        return false;
    };
    if find(access.pio, access.addr, u64::from(access.len)).is_none() {
        return false;
    }
    let run = me.io.run.load(SeqCst);
    for (word, value) in me.io.pending_identity.iter().zip(access.identity(run)) {
        word.store(value, SeqCst);
    }
    me.io.pending_index.store(0, SeqCst);
    me.io.pending.store(1, SeqCst);
    true
}

/// What became of a pending access.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Completed: enter the guest again.
    Done,
    /// Its region is gone: the exit goes to the caller as it is.
    Unclaimed,
    /// It stays pending; `kvmng_run` fails with this errno.
    Failed(Errno),
}

fn read_le(p: *const u8, len: u8) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate().take(usize::from(len)) {
        // SAFETY: `p` points at `len` (<= 8) bytes inside the binding's
        // mapping (checked by `decode`).
        *b = unsafe { p.add(i).read_volatile() };
    }
    u64::from_le_bytes(bytes)
}

fn write_le(p: *mut u8, len: u8, value: u64) {
    for (i, b) in value
        .to_le_bytes()
        .iter()
        .enumerate()
        .take(usize::from(len))
    {
        // SAFETY: as in `read_le`.
        unsafe { p.add(i).write_volatile(*b) };
    }
}

/// Carries out the pending access of `me` (from where it had got to).
pub fn resume(me: &ThreadBinding) -> Resume {
    let io = &me.io;
    let run = io.run.load(SeqCst);
    let same = decode(io).filter(|access| {
        io.pending_identity
            .iter()
            .zip(access.identity(run))
            .all(|(word, value)| word.load(SeqCst) == value)
    });
    let Some(access) = same else {
        // `kvm_run` describes another exit: a KVM_RUN ioctl on the vCPU fd
        // completed the access and reported the guest's next exit (api.md
        // 5.10): just run.
        io.pending.store(0, SeqCst);
        return Resume::Done;
    };
    if immediate_exit(io) {
        return Resume::Failed(Errno(libc::EINTR));
    }
    let mut index = io.pending_index.load(SeqCst);
    while index < access.count {
        let Some(hit) = acquire(access.pio, access.addr, u64::from(access.len)) else {
            io.pending.store(0, SeqCst);
            return Resume::Unclaimed;
        };
        // SAFETY: element `index` of a port access lies inside the mapping
        // (`decode` checked `data_offset + size * count`).
        let element = unsafe { access.data.add(usize::from(access.len) * index as usize) };
        let mut flags = 0;
        if access.pio {
            flags |= KVMNG_IOREGION_REQ_PIO;
        }
        let posted = access.write && hit.posted;
        if posted {
            flags |= KVMNG_IOREGION_REQ_POSTED;
        }
        let request = kvmng_ioregion_request {
            id: NEXT_ID.fetch_add(1, SeqCst),
            offset: hit.offset,
            data: if access.write {
                read_le(element, access.len)
            } else {
                0
            },
            user_data: hit.user_data,
            vcpu_id: io.vcpu_id.load(SeqCst),
            len: access.len,
            dir: if access.write {
                KVMNG_IOREGION_WRITE as u8
            } else {
                KVMNG_IOREGION_READ as u8
            },
            flags: flags as u8,
            pad: 0,
        };
        let result = exchange(me, hit.sock, &request, posted);
        put_socket(hit.sock);
        match result {
            Ok(value) => {
                if !access.write {
                    write_le(element, access.len, value);
                }
            }
            Err(e) => return Resume::Failed(e),
        }
        index += 1;
        io.pending_index.store(index, SeqCst);
    }
    io.pending.store(0, SeqCst);
    Resume::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_data_of_each_length() {
        let mut bytes = [0xAAu8; 8];
        write_le(bytes.as_mut_ptr(), 2, 0x1234_5678);
        assert_eq!(bytes, [0x78, 0x56, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA]);
        assert_eq!(read_le(bytes.as_ptr(), 2), 0x5678);
        assert_eq!(read_le(bytes.as_ptr(), 3), 0xAA_5678);
        write_le(bytes.as_mut_ptr(), 8, u64::MAX - 1);
        assert_eq!(read_le(bytes.as_ptr(), 8), u64::MAX - 1);
    }
}
