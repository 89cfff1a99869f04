//! `kvmng_memory_map()` emulated: several slot changes applied as one.
//!
//! KVM has no multi-slot update, so for more than one region the emulation
//! holds the vCPUs out of guest mode (see [`super::gate`]; one region is
//! already atomic in KVM and holds nobody), applies the regions one by one with
//! `KVM_SET_USER_MEMORY_REGION2`, and on a failure restores the slots it had
//! already changed, from the table it keeps of every slot set through it.

use super::{binding, gate, usermem};
use crate::errno::{Errno, SysResult};
use crate::sys::ioctl;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering::SeqCst};
use kvm_bindings::{kvm_userspace_memory_region, kvm_userspace_memory_region2};
use kvmng_abi::ioctls::KVM_SET_USER_MEMORY_REGION2;
use kvmng_abi::KVMNG_MEMORY_MAP_MAX;

/// The most slots whose previous state the emulation remembers.
const TRACKED_SLOTS: usize = 512;
/// The slot flags whose undo would not be exact (api.md 5.8): a dirty
/// bitmap comes back empty, a guest_memfd binding is not kept.
const UNDO_LOSSY: u32 = 1 /* KVM_MEM_LOG_DIRTY_PAGES */ | 4 /* KVM_MEM_GUEST_MEMFD */;
/// Regions copied in per step when checking readability.
const CHUNK: usize = 16;

/// What the emulation knows of one slot.
#[derive(Clone, Copy, Default)]
struct Slot {
    in_use: bool,
    region: Region,
}

/// The fields of a region that define a slot (the padding is not kept).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Region {
    slot: u32,
    flags: u32,
    guest_phys_addr: u64,
    memory_size: u64,
    userspace_addr: u64,
    guest_memfd_offset: u64,
    guest_memfd: u32,
}

impl Region {
    fn of(r: &kvm_userspace_memory_region2) -> Region {
        Region {
            slot: r.slot,
            flags: r.flags,
            guest_phys_addr: r.guest_phys_addr,
            memory_size: r.memory_size,
            userspace_addr: r.userspace_addr,
            guest_memfd_offset: r.guest_memfd_offset,
            guest_memfd: r.guest_memfd,
        }
    }

    fn to_kvm(self) -> kvm_userspace_memory_region2 {
        kvm_userspace_memory_region2 {
            slot: self.slot,
            flags: self.flags,
            guest_phys_addr: self.guest_phys_addr,
            memory_size: self.memory_size,
            userspace_addr: self.userspace_addr,
            guest_memfd_offset: self.guest_memfd_offset,
            guest_memfd: self.guest_memfd,
            ..Default::default()
        }
    }

    /// The region that deletes this slot.
    fn deletion(slot: u32) -> Region {
        Region {
            slot,
            ..Default::default()
        }
    }
}

/// The slot table, guarded by [`TABLE_LOCK`].
struct Table(UnsafeCell<[Slot; TRACKED_SLOTS]>);
// SAFETY: every access goes through `with_table`, which holds TABLE_LOCK.
unsafe impl Sync for Table {}

static TABLE: Table = Table(UnsafeCell::new(
    [Slot {
        in_use: false,
        region: Region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: 0,
            userspace_addr: 0,
            guest_memfd_offset: 0,
            guest_memfd: 0,
        },
    }; TRACKED_SLOTS],
));
static TABLE_LOCK: AtomicBool = AtomicBool::new(false);

fn with_table<R>(f: impl FnOnce(&mut [Slot; TRACKED_SLOTS]) -> R) -> R {
    while TABLE_LOCK
        .compare_exchange_weak(false, true, SeqCst, SeqCst)
        .is_err()
    {
        core::hint::spin_loop();
    }
    // SAFETY: TABLE_LOCK is held, so this is the only reference.
    let result = f(unsafe { &mut *TABLE.0.get() });
    TABLE_LOCK.store(false, SeqCst);
    result
}

/// What the table knows of `slot`: `Some(Some(region))` if it exists,
/// `Some(None)` if it is known not to exist or unknown (treated as absent).
fn previous(table: &[Slot; TRACKED_SLOTS], slot: u32) -> Option<Region> {
    table
        .iter()
        .find(|s| s.in_use && s.region.slot == slot)
        .map(|s| s.region)
}

fn record(table: &mut [Slot; TRACKED_SLOTS], region: Region) {
    let existing = table
        .iter_mut()
        .find(|s| s.in_use && s.region.slot == region.slot);
    match (existing, region.memory_size) {
        (Some(s), 0) => s.in_use = false,
        (Some(s), _) => s.region = region,
        (None, 0) => {}
        (None, _) => {
            if let Some(s) = table.iter_mut().find(|s| !s.in_use) {
                *s = Slot {
                    in_use: true,
                    region,
                };
            }
        }
    }
}

/// Whether undoing a change of `slot` would not restore it exactly: the
/// slot, as the table knows it, has a dirty bitmap or a guest_memfd.
fn undo_lossy(table: &[Slot; TRACKED_SLOTS], slot: u32) -> bool {
    previous(table, slot).is_some_and(|r| r.flags & UNDO_LOSSY != 0)
}

/// Forgets every slot (the VM binding changed, or after fork).
pub fn forget_slots() {
    TABLE_LOCK.store(false, SeqCst);
    with_table(|t| t.iter_mut().for_each(|s| s.in_use = false));
}

/// The `KVM_SET_USER_MEMORY_REGION2` form of a v1 region: v1 is a prefix
/// of v2, which adds only guest_memfd (zero here).
pub fn region2_of_v1(v1: &kvm_userspace_memory_region) -> kvm_userspace_memory_region2 {
    kvm_userspace_memory_region2 {
        slot: v1.slot,
        flags: v1.flags,
        guest_phys_addr: v1.guest_phys_addr,
        memory_size: v1.memory_size,
        userspace_addr: v1.userspace_addr,
        ..Default::default()
    }
}

/// Records a slot change made with the legacy ioctl through
/// `kvmng_control`, so that a later rollback knows it.
pub fn note_control_update(region: &kvm_userspace_memory_region2) {
    with_table(|t| record(t, Region::of(region)));
}

fn set_region(vm_fd: i32, region: &kvm_userspace_memory_region2) -> SysResult {
    // SAFETY: the ioctl reads one region2 struct, which lives on the
    // caller's stack.
    unsafe {
        ioctl(
            vm_fd,
            KVM_SET_USER_MEMORY_REGION2,
            region as *const _ as u64,
        )
    }
}

fn read_region(regions: u64, index: usize) -> Result<kvm_userspace_memory_region2, Errno> {
    let size = core::mem::size_of::<kvm_userspace_memory_region2>() as u64;
    usermem::read_value(regions + index as u64 * size)
}

/// The checks before any region is read, in the kernel's order: `flags`,
/// the binding (`EUNATCH`), `count`; the VM's fd.
fn begin(count: u32, flags: u32) -> Result<i32, Errno> {
    if flags != 0 {
        return Err(Errno(libc::EINVAL));
    }
    let vm_fd = binding::vm_fd()?;
    if count > KVMNG_MEMORY_MAP_MAX {
        return Err(Errno(libc::E2BIG));
    }
    Ok(vm_fd)
}

/// `kvmng_memory_map(regions, count, flags)` with `regions` at an address
/// that may be bad: every region is copied in with `process_vm_readv`
/// before any is applied, so that an unreadable array is `EFAULT` with
/// nothing applied. Up to [`CHUNK`] regions are copied once and applied
/// from the copy (one copy for the common single region: the ioctl gets
/// the copy, and the slot table records what the ioctl applied, even if
/// another thread rewrites the caller's struct meanwhile); a longer array
/// is checked in chunks first, then read again region by region.
pub fn memory_map(regions: u64, count: u32, flags: u32) -> SysResult {
    let vm_fd = begin(count, flags)?;
    if count == 0 {
        return Ok(0);
    }
    let count = count as usize;
    let mut chunk = [kvm_userspace_memory_region2::default(); CHUNK];
    let size = core::mem::size_of::<kvm_userspace_memory_region2>() as u64;
    for start in (0..count).step_by(CHUNK) {
        let n = CHUNK.min(count - start);
        usermem::read_slice(regions + start as u64 * size, &mut chunk[..n])?;
    }
    if count <= CHUNK {
        return apply(vm_fd, count, |index| Ok(chunk[index]));
    }
    apply(vm_fd, count, |index| read_region(regions, index))
}

/// `kvmng_memory_map()` of regions the caller holds (a slice, valid by
/// construction): the same checks, order and results as [`memory_map`],
/// the regions read in place with no copy.
pub fn memory_map_in_place(regions: &[kvm_userspace_memory_region2], flags: u32) -> SysResult {
    let count = u32::try_from(regions.len()).unwrap_or(u32::MAX);
    let vm_fd = begin(count, flags)?;
    if count == 0 {
        return Ok(0);
    }
    apply(vm_fd, regions.len(), |index| Ok(regions[index]))
}

/// Applies `count` regions, `region(i)` being the i-th (read as often as
/// needed; an error is the call's), all or none.
fn apply(
    vm_fd: i32,
    count: usize,
    region: impl Fn(usize) -> Result<kvm_userspace_memory_region2, Errno>,
) -> SysResult {
    // The table lock serializes whole updates; the gate is closed inside it,
    // and only for several regions: KVM applies one region atomically for
    // running vCPUs (it swaps in the new slot set and waits for its SRCU
    // readers), so a one-region update holds nobody.
    with_table(|table| {
        // Refuse up front (EINVAL, nothing applied) a change, by any region
        // but the last, of a slot whose undo would not be exact (api.md
        // 5.8), as the kernel does, after its check of the VM: a dead VM
        // answers EIO first. Only slots the table knows can be told (§6
        // "Rollback").
        for index in 0..count - 1 {
            if undo_lossy(table, region(index)?.slot) {
                // SAFETY: KVM_CHECK_EXTENSION takes an integer argument.
                let probe = unsafe { ioctl(vm_fd, kvmng_abi::ioctls::KVM_CHECK_EXTENSION, 0) };
                if probe == Err(Errno(libc::EIO)) {
                    return Err(Errno(libc::EIO));
                }
                return Err(Errno(libc::EINVAL));
            }
        }
        let _held = (count > 1).then(gate::Closed::close);
        let mut undo = [Region::default(); KVMNG_MEMORY_MAP_MAX as usize];
        for index in 0..count {
            let applied = region(index).and_then(|r| set_region(vm_fd, &r).map(|_| r));
            match applied {
                Ok(applied) => {
                    let slot = applied.slot;
                    undo[index] = previous(table, slot).unwrap_or(Region::deletion(slot));
                    record(table, Region::of(&applied));
                }
                Err(errno) => {
                    for earlier in (0..index).rev() {
                        let restore = undo[earlier].to_kvm();
                        let _ = set_region(vm_fd, &restore);
                        record(table, undo[earlier]);
                    }
                    return Err(errno);
                }
            }
        }
        Ok(count as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_tracks_creation_change_and_deletion() {
        let mut table = [Slot::default(); TRACKED_SLOTS];
        let a = Region {
            slot: 3,
            memory_size: 4096,
            guest_phys_addr: 0x1000,
            ..Default::default()
        };
        assert_eq!(previous(&table, 3), None);
        record(&mut table, a);
        assert_eq!(previous(&table, 3), Some(a));
        let moved = Region {
            guest_phys_addr: 0x8000,
            ..a
        };
        record(&mut table, moved);
        assert_eq!(previous(&table, 3), Some(moved));
        assert_eq!(table.iter().filter(|s| s.in_use).count(), 1);
        record(&mut table, Region::deletion(3));
        assert_eq!(previous(&table, 3), None);
    }

    #[test]
    fn dirty_logged_and_guest_memfd_slots_are_lossy_to_undo() {
        let mut table = [Slot::default(); TRACKED_SLOTS];
        let plain = Region {
            slot: 1,
            memory_size: 4096,
            ..Default::default()
        };
        record(&mut table, plain);
        record(
            &mut table,
            Region {
                slot: 2,
                flags: 1,
                ..plain
            },
        );
        record(
            &mut table,
            Region {
                slot: 0x1_0003,
                flags: 4 | 2,
                ..plain
            },
        );
        assert!(!undo_lossy(&table, 1));
        assert!(undo_lossy(&table, 2));
        assert!(undo_lossy(&table, 0x1_0003));
        assert!(!undo_lossy(&table, 3));
        record(&mut table, Region::deletion(2));
        assert!(!undo_lossy(&table, 2));
    }
}
