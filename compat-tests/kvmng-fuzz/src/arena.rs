//! The argument memory of one side: `ARENA` read-write bytes followed by a
//! guard page that is never mapped readable, so that a buffer can be made
//! to run off its end. The two sides get arenas of the same shape: the
//! same offset in each is the same argument.

use std::ptr::NonNull;

/// Usable bytes of an arena.
pub const ARENA: usize = 4 * 4096;
const PAGE: usize = 4096;

/// One side's argument memory.
pub struct Arena {
    base: NonNull<u8>,
}

impl Arena {
    /// Maps the arena and its guard page.
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: a fresh anonymous private mapping; nothing else refers to
        // it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ARENA + PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the last page of the mapping made above.
        if unsafe { libc::mprotect(p.cast::<u8>().add(ARENA).cast(), PAGE, libc::PROT_NONE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Arena {
            base: NonNull::new(p.cast()).expect("mmap gave a non-null pointer"),
        })
    }

    /// The address of byte `offset` (may be the guard page or beyond).
    pub fn addr(&self, offset: usize) -> u64 {
        self.base.as_ptr() as u64 + offset as u64
    }

    /// The address of the guard page.
    pub fn guard(&self) -> u64 {
        self.addr(ARENA)
    }

    /// The readable bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ARENA bytes mapped read-write for the arena's life.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), ARENA) }
    }

    /// The readable bytes, to write.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), ARENA) }
    }

    /// Zeroes the arena and puts `data` at `offset` (cut at the guard page).
    pub fn load(&mut self, offset: usize, data: &[u8]) {
        let bytes = self.bytes_mut();
        bytes.fill(0);
        if offset < ARENA {
            let n = data.len().min(ARENA - offset);
            bytes[offset..offset + n].copy_from_slice(&data[..n]);
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer referred to.
        unsafe { libc::munmap(self.base.as_ptr().cast(), ARENA + PAGE) };
    }
}
