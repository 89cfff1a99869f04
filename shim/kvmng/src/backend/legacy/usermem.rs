//! Copying to and from caller-supplied addresses without ever faulting.
//!
//! The emulation must answer `EFAULT` for a bad pointer, as the kernel does,
//! and never crash. `process_vm_readv`/`process_vm_writev` on the calling
//! process do exactly that: the kernel copies, and an unmapped address is an
//! error, not a signal. Both are raw syscalls: no allocation, no lock, safe
//! in a signal handler.

use crate::errno::{Errno, SysResult};
use crate::sys::{process_vm_read_self, process_vm_write_self, process_vm_write_self_strided};

/// `Ok` when the copy of `len` bytes was whole (nothing to do for 0),
/// `EFAULT` when it stopped short.
fn whole(len: usize, copy: impl FnOnce() -> SysResult) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    if copy()? as usize == len {
        Ok(())
    } else {
        Err(Errno(libc::EFAULT))
    }
}

/// Copies `dst.len()` bytes from address `src` of this process.
/// `EFAULT` if any byte is unreadable.
pub fn read(src: u64, dst: &mut [u8]) -> Result<(), Errno> {
    let len = dst.len();
    whole(len, || process_vm_read_self(src, dst))
}

/// Copies `src` to address `dst` of this process.
/// `EFAULT` if any byte is unwritable.
pub fn write(dst: u64, src: &[u8]) -> Result<(), Errno> {
    whole(src.len(), || process_vm_write_self(dst, src))
}

/// Writes `src` in pieces of `piece` bytes to addresses `stride` bytes
/// apart from `dst`, and nothing in between (a field of each element of a
/// caller's array). `EFAULT` if any piece is unwritable (the pieces before
/// it are written).
pub fn write_strided(dst: u64, stride: u64, src: &[u8], piece: usize) -> Result<(), Errno> {
    whole(src.len(), || {
        process_vm_write_self_strided(dst, stride, src, piece)
    })
}

/// Reads a plain-old-data value from address `src`.
pub fn read_value<T: Copy + Default>(src: u64) -> Result<T, Errno> {
    let mut value = T::default();
    // SAFETY: `value` is a live, properly aligned T; viewing its bytes as a
    // mutable byte slice is sound for the plain-old-data types used here
    // (C structs of integers, for which every bit pattern is valid).
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(
            (&mut value as *mut T).cast::<u8>(),
            core::mem::size_of::<T>(),
        )
    };
    read(src, bytes)?;
    Ok(value)
}

/// Reads `dst.len()` plain-old-data values from address `src`.
pub fn read_slice<T: Copy>(src: u64, dst: &mut [T]) -> Result<(), Errno> {
    // SAFETY: as in `read_value`: the element types are C structs of
    // integers, valid for every bit pattern.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), core::mem::size_of_val(dst))
    };
    read(src, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_good_memory_and_reports_bad_memory_as_efault() {
        let source = [1u8, 2, 3, 4];
        let mut dest = [0u8; 4];
        read(source.as_ptr() as u64, &mut dest).unwrap();
        assert_eq!(dest, source);
        assert_eq!(read(8, &mut dest), Err(Errno(libc::EFAULT)));
        assert_eq!(write(8, &source), Err(Errno(libc::EFAULT)));
        let value: u32 = read_value(source.as_ptr() as u64).unwrap();
        assert_eq!(value, u32::from_ne_bytes(source));
        // A read-only page cannot be written.
        static READ_ONLY: [u8; 4] = [0; 4];
        assert_eq!(
            write(READ_ONLY.as_ptr() as u64, &source),
            Err(Errno(libc::EFAULT))
        );
    }
}
