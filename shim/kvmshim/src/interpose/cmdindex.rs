//! Request number → row of [`KVM_IOCTLS`] in constant time.
//!
//! `kvmng_abi::ioctls::lookup` scans the 106 rows; on the ioctl path the
//! shim instead indexes a table built at compile time by fd class and the
//! request's number field (`_IOC_NR`), with room for the two rows that share
//! a class and a number (`KVM_IRQ_LINE_STATUS` and
//! `KVM_REGISTER_COALESCED_MMIO`), and then compares the full request.

use kvmng_abi::ioctls::{FdClass, KVM_IOCTLS};

/// Rows in the mapping table; index [`UNKNOWN`] stands for a KVMIO request
/// that is in no row.
pub const ROWS: usize = KVM_IOCTLS.len();
/// The census slot of requests that are in no row.
pub const UNKNOWN: usize = ROWS;
/// Census slots: one per row and [`UNKNOWN`].
pub const SLOTS: usize = ROWS + 1;

const WAYS: usize = 2;

const fn class_index(class: FdClass) -> usize {
    match class {
        FdClass::System => 0,
        FdClass::Vm => 1,
        FdClass::Vcpu => 2,
        FdClass::Device => 3,
    }
}

/// `TABLE[class][nr]`: up to two row numbers + 1 (0 = none).
static TABLE: [[[u8; WAYS]; 256]; 4] = build();

const fn build() -> [[[u8; WAYS]; 256]; 4] {
    assert!(KVM_IOCTLS.len() < 255, "row numbers must fit in a byte");
    let mut table = [[[0u8; WAYS]; 256]; 4];
    let mut row = 0;
    while row < KVM_IOCTLS.len() {
        let info = &KVM_IOCTLS[row];
        let nr = (info.cmd & 0xff) as usize;
        let mut c = 0;
        while c < info.classes.len() {
            let slot = &mut table[class_index(info.classes[c])][nr];
            if slot[0] == 0 {
                slot[0] = (row + 1) as u8;
            } else if slot[1] == 0 {
                slot[1] = (row + 1) as u8;
            } else {
                panic!("more than two rows share a class and a number");
            }
            c += 1;
        }
        row += 1;
    }
    table
}

/// The row of request `cmd` on an fd of `class` (what
/// `kvmng_abi::ioctls::lookup` answers), as an index into `KVM_IOCTLS`.
#[inline]
pub fn find(cmd: u64, class: FdClass) -> Option<usize> {
    let slot = &TABLE[class_index(class)][(cmd & 0xff) as usize];
    for &way in slot {
        if way == 0 {
            return None;
        }
        let row = usize::from(way) - 1;
        if KVM_IOCTLS[row].cmd == cmd {
            return Some(row);
        }
    }
    None
}

/// A row with request number `cmd` on any class: names a request issued
/// on the wrong kind of fd.
pub fn find_any(cmd: u64) -> Option<usize> {
    FdClass::ALL.iter().find_map(|&class| find(cmd, class))
}

/// The census slot of `cmd`: its row on `class`, else any row with that
/// number, else [`UNKNOWN`].
pub fn slot(cmd: u64, class: Option<FdClass>) -> usize {
    class
        .and_then(|c| find(cmd, c))
        .or_else(|| find_any(cmd))
        .unwrap_or(UNKNOWN)
}

/// The C macro name of a census slot.
pub fn name(slot: usize) -> &'static str {
    KVM_IOCTLS
        .get(slot)
        .map(|info| info.name)
        .unwrap_or("UNKNOWN_KVM_IOCTL")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmng_abi::ioctls::{self, lookup};

    #[test]
    fn agrees_with_the_linear_lookup_everywhere() {
        for info in KVM_IOCTLS {
            for class in FdClass::ALL {
                let want = lookup(info.cmd, class).map(|i| i.name);
                assert_eq!(find(info.cmd, class).map(name), want, "{}", info.name);
            }
        }
        for class in FdClass::ALL {
            for nr in 0..256u64 {
                for size in [0u64, 8, 0x40, 0x1000] {
                    for dir in 0..4u64 {
                        let cmd = (dir << 30) | (size << 16) | 0xae00 | nr;
                        assert_eq!(
                            find(cmd, class).map(name),
                            lookup(cmd, class).map(|i| i.name)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn slots_name_commands() {
        assert_eq!(name(slot(ioctls::KVM_RUN, Some(FdClass::Vcpu))), "KVM_RUN");
        // KVM_RUN on a VM fd is still named KVM_RUN in the census.
        assert_eq!(name(slot(ioctls::KVM_RUN, Some(FdClass::Vm))), "KVM_RUN");
        assert_eq!(name(slot(ioctls::KVM_RUN, None)), "KVM_RUN");
        assert_eq!(slot(0xaeff, None), UNKNOWN);
        assert_eq!(name(UNKNOWN), "UNKNOWN_KVM_IOCTL");
        assert_eq!(
            name(slot(ioctls::KVM_IRQ_LINE_STATUS, Some(FdClass::Vm))),
            "KVM_IRQ_LINE_STATUS"
        );
        assert_eq!(
            name(slot(ioctls::KVM_REGISTER_COALESCED_MMIO, Some(FdClass::Vm))),
            "KVM_REGISTER_COALESCED_MMIO"
        );
    }
}
