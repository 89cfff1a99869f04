//! The parts of an output that depend on when the call ran, not on the
//! path it took (clocks, TSC readings, timer counts): blanked on both sides
//! before the outputs are compared. Each entry is named after the field.

use kvmng_abi::ioctls;

/// MSRs whose value moves with time (TSC, APERF/MPERF, Hyper-V VP
/// runtime and reference counter).
const TIME_MSRS: [u32; 5] = [0x10, 0xe7, 0xe8, 0x4000_0010, 0x4000_0020];

fn zero(buf: &mut [u8], at: usize, len: usize) {
    if at < buf.len() {
        let end = (at + len).min(buf.len());
        buf[at..end].fill(0);
    }
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// Blanks the time-dependent fields of the output of `cmd` (whose
/// successful return value was `ret`) in `buf`, the bytes from the
/// argument's address to the end of the arena.
pub fn apply(cmd: u64, ret: i64, buf: &mut [u8]) {
    match cmd {
        // struct kvm_clock_data: clock (0..8), realtime (16..24),
        // host_tsc (24..32).
        ioctls::KVM_GET_CLOCK => {
            zero(buf, 0, 8);
            zero(buf, 16, 16);
        }
        // struct kvm_fpu: KVM copies the registers from its saved FXSAVE
        // area, in which XSAVES leaves stale bytes for components the
        // CPU's init optimisation found in their initial state (see
        // `xsave_pair`); two identical vCPUs differ there by timing.
        ioctls::KVM_GET_FPU => {
            zero(buf, ST.start, ST.len());
            zero(buf, XMM.start, XMM.len());
        }
        // struct kvm_lapic_state: the timer's current count (TMCCT).
        ioctls::KVM_GET_LAPIC => zero(buf, 0x390, 4),
        // struct kvm_pit_state(2): three channels of 24 bytes whose
        // count_load_time (8 bytes at 16) is a ktime.
        ioctls::KVM_GET_PIT | ioctls::KVM_GET_PIT2 => {
            for ch in 0..3 {
                zero(buf, ch * 24 + 16, 8);
            }
        }
        // struct kvm_cpuid2 of the host: the APIC ID of the CPU the call
        // ran on (leaf 1 EBX[31:24], leaves 0xb and 0x1f EDX, leaf
        // 0x8000001e EAX).
        ioctls::KVM_GET_SUPPORTED_CPUID => {
            let n = u32_at(buf, 0).unwrap_or(0) as usize;
            for e in 0..n {
                let at = 8 + 40 * e;
                let Some(function) = u32_at(buf, at) else {
                    break;
                };
                // eax at 12, ebx at 16, edx at 24 of struct kvm_cpuid_entry2.
                match function {
                    1 => zero(buf, at + 19, 1),
                    0xb | 0x1f => zero(buf, at + 24, 4),
                    0x8000_001e => zero(buf, at + 12, 4),
                    _ => {}
                }
            }
        }
        // struct kvm_msrs: the data of the time MSRs among the `ret`
        // entries processed.
        ioctls::KVM_GET_MSRS => {
            let n = i64::from(u32_at(buf, 0).unwrap_or(0)).min(ret.max(0)) as usize;
            for e in 0..n {
                let at = 8 + 16 * e;
                if at >= buf.len() {
                    break;
                }
                if u32_at(buf, at).is_some_and(|i| TIME_MSRS.contains(&i)) {
                    zero(buf, at + 8, 8);
                }
            }
        }
        _ => {}
    }
}

/// The x87 registers (with FCW, FSW... before them) and the XMM registers
/// in the legacy area of `struct kvm_xsave`, and XSTATE_BV's byte.
const X87: std::ops::Range<usize> = 0..24;
const ST: std::ops::Range<usize> = 32..160;
const XMM: std::ops::Range<usize> = 160..416;
const XSTATE_BV: usize = 512;

/// For KVM_GET_XSAVE(2) outputs `a` and `b` of two identical vCPUs:
/// XSTATE_BV's x87 and SSE bits say whether the CPU's init optimisation
/// found those components in their initial state when KVM last saved
/// them, and KVM then reports the initial values instead of the
/// registers. Two identical vCPUs differ there by timing (KVM_SET_FPU
/// writes the registers without setting the bits), so where the bit
/// differs the component is blanked on both, and the bits are dropped.
/// Where the bits agree, the registers are compared.
pub fn xsave_pair(cmd: u64, a: &mut [u8], b: &mut [u8]) {
    if !matches!(cmd, ioctls::KVM_GET_XSAVE | ioctls::KVM_GET_XSAVE2) {
        return;
    }
    // A buffer cut short by the guard page (EFAULT after a partial write)
    // does not show XSTATE_BV: both components count as differing.
    let differ = match (a.get(XSTATE_BV), b.get(XSTATE_BV)) {
        (Some(&ba), Some(&bb)) => ba ^ bb,
        _ => 0b11,
    };
    for buf in [a, b] {
        if differ & 1 != 0 {
            zero(buf, X87.start, X87.len());
            zero(buf, ST.start, ST.len());
        }
        if differ & 2 != 0 {
            zero(buf, XMM.start, XMM.len());
        }
        if let Some(bv) = buf.get_mut(XSTATE_BV) {
            *bv &= !0b11;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msrs_blank_only_time_msrs_among_processed_entries() {
        let mut b = vec![0xffu8; 8 + 16 * 3];
        b[..4].copy_from_slice(&3u32.to_le_bytes());
        b[8..12].copy_from_slice(&0x10u32.to_le_bytes());
        b[24..28].copy_from_slice(&0x174u32.to_le_bytes());
        b[40..44].copy_from_slice(&0x10u32.to_le_bytes());
        apply(ioctls::KVM_GET_MSRS, 2, &mut b);
        assert_eq!(&b[16..24], &[0; 8]);
        assert_eq!(&b[32..40], &[0xff; 8]);
        // The third entry was not processed (ret 2): left alone.
        assert_eq!(&b[48..56], &[0xff; 8]);
    }

    #[test]
    fn xsave_blanks_only_the_components_whose_bit_differs() {
        let mut a = vec![0x11u8; 1024];
        let mut b = vec![0x22u8; 1024];
        a[XSTATE_BV] = 0b111;
        b[XSTATE_BV] = 0b101;
        xsave_pair(ioctls::KVM_GET_XSAVE, &mut a, &mut b);
        assert!(a[XMM].iter().chain(&b[XMM]).all(|&x| x == 0));
        // x87 bits agree: the x87 registers are left for comparison.
        assert_eq!(a[ST.start], 0x11);
        assert_eq!(b[ST.start], 0x22);
        assert_eq!((a[XSTATE_BV], b[XSTATE_BV]), (0b100, 0b100));
    }

    #[test]
    fn short_buffers_are_cut_not_overrun() {
        let mut b = vec![1u8; 10];
        apply(ioctls::KVM_GET_CLOCK, 0, &mut b);
        assert_eq!(&b[..8], &[0; 8]);
        assert_eq!(&b[8..], &[1, 1]);
    }
}
