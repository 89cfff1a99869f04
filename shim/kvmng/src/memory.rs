//! Guest memory: anonymous shared mappings handed to memory slots.

use crate::errno::Errno;

/// A page-aligned anonymous mapping, unmapped on drop.
#[derive(Debug)]
pub struct GuestMemory {
    addr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access goes
// through &self/&mut self like any buffer.
unsafe impl Send for GuestMemory {}
// SAFETY: shared access only reads through &self or uses volatile helpers.
unsafe impl Sync for GuestMemory {}

impl GuestMemory {
    /// Maps `len` bytes (rounded up to whole pages), zeroed.
    pub fn new(len: usize) -> Result<GuestMemory, Errno> {
        let len = len.div_ceil(4096) * 4096;
        // SAFETY: an anonymous mapping at an address of the kernel's
        // choosing; no existing memory is affected.
        let addr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Errno(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::ENOMEM),
            ));
        }
        Ok(GuestMemory {
            addr: addr.cast(),
            len,
        })
    }

    /// The host address, for a memory slot's `userspace_addr`.
    pub fn host_addr(&self) -> u64 {
        self.addr as u64
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-sized mapping (never: sizes round up to a page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory as bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes, live as long as self.
        unsafe { core::slice::from_raw_parts(self.addr, self.len) }
    }

    /// The memory as mutable bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.addr, self.len) }
    }

    /// Writes a u64 at `offset` with a volatile store, for memory a running
    /// guest reads concurrently.
    pub fn write_u64_volatile(&self, offset: usize, value: u64) {
        assert!(
            offset + 8 <= self.len && offset % 8 == 0,
            "offset {offset} outside guest memory"
        );
        // SAFETY: in bounds and aligned (checked); the guest may read the
        // location at any time, hence volatile.
        unsafe { core::ptr::write_volatile(self.addr.add(offset).cast::<u64>(), value) }
    }

    /// Reads a u64 at `offset` with a volatile load.
    pub fn read_u64_volatile(&self, offset: usize) -> u64 {
        assert!(
            offset + 8 <= self.len && offset % 8 == 0,
            "offset {offset} outside guest memory"
        );
        // SAFETY: in bounds and aligned (checked).
        unsafe { core::ptr::read_volatile(self.addr.add(offset).cast::<u64>()) }
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping this value owns.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}
