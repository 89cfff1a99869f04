//! Every kind of `kvmng_vcpu_state()` (docs/api.md section 5.6) on the real
//! /dev/kvm: GET, change something the kernel keeps, SET, GET again and
//! compare; and the dual interface both ways (state set through kvmng is
//! what `KVM_GET_*` on the vCPU fd reads, and state set with `KVM_SET_*` on
//! the vCPU fd is what kvmng reads). Where this KVM refuses a kind, the test
//! asserts that kvmng answers exactly what the raw ioctl answers on a VM made
//! with kvm-ioctls alone. Last, one batch mixing many kinds, as QEMU's
//! register sync would send it.

mod support;

use core::ffi::c_void;
use core::mem::size_of;
use kvm_bindings::*;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use kvmng::{Backend, BoundVcpu, Errno, StateItem, Vm};
use kvmng_abi::ioctls::*;
use kvmng_abi::*;
use std::fmt::Debug;
use std::os::fd::AsRawFd;

// ---------------------------------------------------------------- helpers

/// The errno of the last failed libc call.
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `ioctl(fd, cmd, arg)` for an ioctl whose argument is one `T`: the value
/// it returns, or its errno.
fn ioctl_ref<T>(fd: i32, cmd: u64, arg: &mut T) -> Result<i32, i32> {
    assert_eq!(
        ioc_size(cmd) as usize,
        size_of::<T>(),
        "ioctl {cmd:#x} takes another struct"
    );
    // SAFETY: `arg` is a live, exclusively borrowed `T` of exactly the size
    // the ioctl number encodes, which bounds what the kernel reads or writes.
    let r = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg as *mut T) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// `ioctl(fd, cmd, arg)` for ioctls with a variable-size argument.
///
/// # Safety
/// `arg` must be valid for everything the ioctl reads and writes.
unsafe fn ioctl_ptr(fd: i32, cmd: u64, arg: *mut c_void) -> Result<i32, i32> {
    // SAFETY: the caller vouches for `arg`.
    let r = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// A state entry for a whole `T`.
fn entry<T>(kind: u32, op: u32, buf: &mut T) -> kvmng_state_entry {
    kvmng_state_entry {
        kind,
        op,
        addr: buf as *mut T as u64,
        size: size_of::<T>() as u32,
        result: 0,
    }
}

/// One `kvmng_vcpu_state()` call through the raw backend: the call's result
/// and each entry's `result`.
///
/// # Safety
/// Every entry's `addr` must be valid for `size` bytes of reads and writes.
unsafe fn batch(
    backend: &dyn Backend,
    entries: &mut [kvmng_state_entry],
) -> (Result<i64, Errno>, Vec<i32>) {
    // SAFETY: `entries` is live for the call; the caller vouches for the
    // buffers the entries name.
    let r = unsafe { backend.vcpu_state(entries.as_mut_ptr(), entries.len() as u32, 0) };
    (r, entries.iter().map(|e| e.result).collect())
}

/// A VM and vCPU 0 made with kvm-ioctls alone, without kvmng: the reference
/// for what the raw ioctls answer on this KVM.
struct Reference {
    _vm: VmFd,
    vcpu: VcpuFd,
}

impl Reference {
    fn new(irqchip: bool) -> Reference {
        let vm = Kvm::new().unwrap().create_vm().unwrap();
        if irqchip {
            vm.create_irq_chip().unwrap();
        }
        let vcpu = vm.create_vcpu(0).unwrap();
        Reference { _vm: vm, vcpu }
    }

    fn fd(&self) -> i32 {
        self.vcpu.as_raw_fd()
    }
}

/// What KVM_GET_SUPPORTED_CPUID says, for building a guest CPUID.
fn supported_cpuid() -> CpuId {
    Kvm::new()
        .unwrap()
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .unwrap()
}

/// Gives the bound vCPU the supported CPUID through kvmng (MSRs such as
/// TSC_AUX and XCR0 bits are refused without it).
fn set_supported_cpuid(vcpu: &mut BoundVcpu<'_>) -> CpuId {
    let mut cpuid = supported_cpuid();
    let mut copy = cpuid.clone();
    assert_eq!(
        vcpu.set_state(&mut [StateItem::Cpuid(&mut copy)]),
        Ok(vec![0])
    );
    cpuid = copy;
    cpuid
}

/// A VM bound to the process, with an in-kernel irqchip if asked.
fn vm<'k>(env: &'k support::Env, irqchip: bool) -> Vm<'k> {
    let vm = env.kvm.create_vm().unwrap();
    if irqchip {
        vm.create_irqchip().unwrap();
    }
    vm
}

/// A fixed-size kind: its typed batch item and its legacy ioctls.
trait Kind: Copy + Default + PartialEq + Debug {
    const GET: u64;
    const SET: u64;
    fn item(&mut self) -> StateItem<'_>;
}

macro_rules! kinds {
    ($($t:ty => $variant:ident, $get:expr, $set:expr;)*) => {$(
        impl Kind for $t {
            const GET: u64 = $get;
            const SET: u64 = $set;
            fn item(&mut self) -> StateItem<'_> {
                StateItem::$variant(self)
            }
        }
    )*};
}

kinds! {
    kvm_regs => Regs, KVM_GET_REGS, KVM_SET_REGS;
    kvm_sregs => Sregs, KVM_GET_SREGS, KVM_SET_SREGS;
    kvm_sregs2 => Sregs2, KVM_GET_SREGS2, KVM_SET_SREGS2;
    kvm_fpu => Fpu, KVM_GET_FPU, KVM_SET_FPU;
    kvm_xcrs => Xcrs, KVM_GET_XCRS, KVM_SET_XCRS;
    kvm_lapic_state => Lapic, KVM_GET_LAPIC, KVM_SET_LAPIC;
    kvm_vcpu_events => Events, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS;
    kvm_mp_state => MpState, KVM_GET_MP_STATE, KVM_SET_MP_STATE;
    kvm_debugregs => Debugregs, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS;
}

/// The round trip of a fixed-size kind through the typed API:
///
/// 1. kvmng GET, and `KVM_GET_*` on the vCPU fd reads the same;
/// 2. `modify(.., 1)`, kvmng SET, kvmng GET: `check` finds the change; the
///    ioctl on the vCPU fd reads the same as kvmng;
/// 3. `modify(.., 2)`, `KVM_SET_*` on the vCPU fd, kvmng GET: `check` finds
///    the change (the other direction of the dual interface).
///
/// Returns the state after step 3.
fn round_trip<T: Kind>(
    vcpu: &mut BoundVcpu<'_>,
    modify: impl Fn(&mut T, u64),
    check: impl Fn(&T, &T),
) -> T {
    let (get_cmd, set_cmd) = (T::GET, T::SET);
    let item = T::item;
    let fd = vcpu.fd();
    let kvmng_get = |vcpu: &mut BoundVcpu<'_>| {
        let mut value = T::default();
        assert_eq!(vcpu.get_state(&mut [item(&mut value)]), Ok(vec![0]));
        value
    };
    let ioctl_get = || {
        let mut value = T::default();
        assert_eq!(ioctl_ref(fd, get_cmd, &mut value), Ok(0));
        value
    };

    // 1.
    let original = kvmng_get(vcpu);
    assert_eq!(original, ioctl_get(), "kvmng GET and the ioctl disagree");

    // 2. Set through kvmng.
    let mut want = original;
    modify(&mut want, 1);
    assert_ne!(want, original, "the change must be observable");
    let mut copy = want;
    assert_eq!(
        vcpu.set_state(&mut [item(&mut copy)]),
        Ok(vec![0]),
        "kvmng SET of {want:?}"
    );
    let got = kvmng_get(vcpu);
    check(&got, &want);
    assert_eq!(
        ioctl_get(),
        got,
        "the ioctl on the vCPU fd must read what kvmng set"
    );

    // 3. Set through the ioctl on the vCPU fd.
    let mut want = got;
    modify(&mut want, 2);
    assert_ne!(want, got, "the second change must be observable");
    let mut copy = want;
    assert_eq!(ioctl_ref(fd, set_cmd, &mut copy), Ok(0));
    let got = kvmng_get(vcpu);
    check(&got, &want);
    assert_eq!(got, ioctl_get());
    got
}

/// A 16-byte register value that differs per variant.
fn pattern16(seed: u8, variant: u64) -> [u8; 16] {
    core::array::from_fn(|i| seed ^ (i as u8).wrapping_mul(17) ^ (variant as u8) << 4)
}

#[test]
fn supported_cpuid_is_the_ioctls_and_a_vcpu_takes_it() {
    let Some(env) = support::env("supported_cpuid_is_the_ioctls_and_a_vcpu_takes_it") else {
        return;
    };
    let vm = vm(&env, false);
    let mut got = vm.supported_cpuid().unwrap();
    let want = supported_cpuid();
    assert!(got.as_slice().len() > 1, "KVM supports more than one leaf");
    assert_eq!(got.as_slice(), want.as_slice());
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    assert_eq!(
        vcpu.set_state(&mut [StateItem::Cpuid(&mut got)]),
        Ok(vec![0])
    );
}

// ---------------------------------------------------------------- kinds

#[test]
fn regs_round_trip() {
    let Some(env) = support::env("regs_round_trip") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    round_trip(
        &mut vcpu,
        |r: &mut kvm_regs, v| {
            r.rax = 0x1111_2222_3333_4444 ^ v;
            r.rbx = 0xdead_beef_0000_0000 | v;
            r.rsp = 0x7000 + v * 0x100;
            r.r8 = v << 40;
            r.r15 = !v;
            r.rip = 0x1000 + v;
            // Bit 1 is always 1; CF, ZF and SF toggle with the variant.
            r.rflags = 0x2 | if v == 1 { 0x41 } else { 0x80 };
        },
        |got, want| assert_eq!(got, want),
    );
}

#[test]
fn sregs_round_trip() {
    let Some(env) = support::env("sregs_round_trip") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    round_trip(
        &mut vcpu,
        |s: &mut kvm_sregs, v| {
            s.cr2 = 0x1234_5000 + v;
            // Real-mode segments: base = selector << 4.
            s.es.selector = 0x1000 * v as u16;
            s.es.base = u64::from(s.es.selector) << 4;
            s.fs.selector = 0x2340 + v as u16;
            s.fs.base = u64::from(s.fs.selector) << 4;
            s.gdt.base = 0x5000 + 0x100 * v;
            s.gdt.limit = 0x27;
            s.idt.base = 0x6000 + 0x100 * v;
        },
        |got, want| {
            assert_eq!(got.cr2, want.cr2);
            assert_eq!(
                (got.es.selector, got.es.base),
                (want.es.selector, want.es.base)
            );
            assert_eq!(
                (got.fs.selector, got.fs.base),
                (want.fs.selector, want.fs.base)
            );
            assert_eq!(got.gdt, want.gdt);
            assert_eq!(got.idt.base, want.idt.base);
            assert_eq!(
                (got.cr0, got.cr4, got.efer),
                (want.cr0, want.cr4, want.efer)
            );
        },
    );
}

#[test]
fn sregs2_round_trip_or_the_ioctls_errno() {
    let Some(env) = support::env("sregs2_round_trip_or_the_ioctls_errno") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let mut probe = kvm_sregs2::default();
    if let Err((0, errno)) = vcpu.get_state(&mut [StateItem::Sregs2(&mut probe)]) {
        // This KVM refuses the kind: kvmng must answer what the ioctl does.
        let reference = Reference::new(false);
        let mut buf = kvm_sregs2::default();
        assert_eq!(
            ioctl_ref(reference.fd(), KVM_GET_SREGS2, &mut buf),
            Err(errno.0),
            "kvmng GET sregs2 answered {errno:?}"
        );
        assert_eq!(vm.check_extension(KVM_CAP_SREGS2), Ok(0));
        return;
    }
    assert!(vm.check_extension(KVM_CAP_SREGS2).unwrap() > 0);
    round_trip(
        &mut vcpu,
        |s: &mut kvm_sregs2, v| {
            s.cr2 = 0xabcd_0000 + v;
            s.ds.selector = 0x100 * v as u16;
            s.ds.base = u64::from(s.ds.selector) << 4;
            s.idt.base = 0x3000 + v * 0x10;
            // No valid PDPTRs (not in PAE paging).
            s.flags = 0;
        },
        |got, want| {
            assert_eq!(got.cr2, want.cr2);
            assert_eq!(
                (got.ds.selector, got.ds.base),
                (want.ds.selector, want.ds.base)
            );
            assert_eq!(got.idt.base, want.idt.base);
        },
    );
    // The same state through KVM_GET_SREGS: the two kinds see one vCPU.
    let mut sregs2 = kvm_sregs2::default();
    let mut sregs = kvm_sregs::default();
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Sregs2(&mut sregs2), StateItem::Sregs(&mut sregs)]),
        Ok(vec![0, 0])
    );
    assert_eq!((sregs.cr2, sregs.ds), (sregs2.cr2, sregs2.ds));
}

#[test]
fn fpu_round_trip() {
    let Some(env) = support::env("fpu_round_trip") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    round_trip(
        &mut vcpu,
        |f: &mut kvm_fpu, v| {
            // st0: 80-bit value in the low 10 bytes.
            f.fpr[0][..10].copy_from_slice(&pattern16(0x3c, v)[..10]);
            f.fcw = if v == 1 { 0x027f } else { 0x037f };
            f.xmm[3] = pattern16(0xa5, v);
            f.xmm[15] = pattern16(0x5a, v);
            // (MXCSR is left alone: this KVM's KVM_SET_FPU does not keep it;
            // KVM_GET_FPU reads 0 whatever was set, through kvmng or not.)
        },
        |got, want| {
            assert_eq!(got.fpr[0][..10], want.fpr[0][..10]);
            assert_eq!(got.fcw, want.fcw);
            assert_eq!(got.xmm[3], want.xmm[3]);
            assert_eq!(got.xmm[15], want.xmm[15]);
        },
    );
}

/// Byte offset of XMMn in the (legacy area of the) XSAVE image.
fn xmm_offset(n: usize) -> usize {
    160 + 16 * n
}

/// Writes XMMn in an XSAVE image and marks SSE state present.
fn put_xmm(image: &mut [u8], n: usize, value: [u8; 16]) {
    image[xmm_offset(n)..xmm_offset(n) + 16].copy_from_slice(&value);
    // XSTATE_BV (byte 512): bit 1 = SSE.
    image[512] |= 2;
}

fn xmm(image: &[u8], n: usize) -> [u8; 16] {
    image[xmm_offset(n)..xmm_offset(n) + 16].try_into().unwrap()
}

fn xsave_bytes(x: &mut kvm_xsave) -> &mut [u8] {
    // SAFETY: `region` is 4096 bytes of plain integers; viewing them as
    // bytes is valid for every bit pattern.
    unsafe { core::slice::from_raw_parts_mut(x.region.as_mut_ptr().cast::<u8>(), 4096) }
}

#[test]
fn xsave_round_trip() {
    let Some(env) = support::env("xsave_round_trip") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let fd = vcpu.fd();

    let mut original = kvm_xsave::default();
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Xsave(&mut original)]),
        Ok(vec![0])
    );
    let mut by_ioctl = kvm_xsave::default();
    assert_eq!(ioctl_ref(fd, KVM_GET_XSAVE, &mut by_ioctl), Ok(0));
    assert_eq!(original.region, by_ioctl.region);

    // Set through kvmng, read back through both.
    let mut want = kvm_xsave {
        region: original.region,
        ..Default::default()
    };
    put_xmm(xsave_bytes(&mut want), 2, pattern16(0x11, 1));
    put_xmm(xsave_bytes(&mut want), 7, pattern16(0x77, 1));
    assert_eq!(
        vcpu.set_state(&mut [StateItem::Xsave(&mut want)]),
        Ok(vec![0])
    );
    let mut got = kvm_xsave::default();
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Xsave(&mut got)]),
        Ok(vec![0])
    );
    assert_eq!(xmm(xsave_bytes(&mut got), 2), pattern16(0x11, 1));
    assert_eq!(xmm(xsave_bytes(&mut got), 7), pattern16(0x77, 1));
    assert_eq!(ioctl_ref(fd, KVM_GET_XSAVE, &mut by_ioctl), Ok(0));
    assert_eq!(got.region, by_ioctl.region);
    // KVM_GET_FPU sees the same XMM2.
    let mut fpu = kvm_fpu::default();
    assert_eq!(ioctl_ref(fd, KVM_GET_FPU, &mut fpu), Ok(0));
    assert_eq!(fpu.xmm[2], pattern16(0x11, 1));

    // Set through the ioctl, read through kvmng.
    put_xmm(xsave_bytes(&mut by_ioctl), 2, pattern16(0x22, 2));
    assert_eq!(ioctl_ref(fd, KVM_SET_XSAVE, &mut by_ioctl), Ok(0));
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Xsave(&mut got)]),
        Ok(vec![0])
    );
    assert_eq!(xmm(xsave_bytes(&mut got), 2), pattern16(0x22, 2));
    assert_eq!(xmm(xsave_bytes(&mut got), 7), pattern16(0x77, 1));
}

#[test]
fn xsave2_round_trip_or_the_ioctls_errno() {
    let Some(env) = support::env("xsave2_round_trip_or_the_ioctls_errno") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let backend = vm.backend();
    let fd = vcpu.fd();
    // The whole guest XSAVE state: KVM_CAP_XSAVE2 bytes, at least 4096.
    let size = (vm.check_extension(KVM_CAP_XSAVE2).unwrap() as usize).max(4096);
    let words = size.div_ceil(4);
    let mut buf = vec![0u32; words];
    let mut get = kvmng_state_entry {
        kind: KVMNG_STATE_XSAVE2,
        op: KVMNG_STATE_GET,
        addr: buf.as_mut_ptr() as u64,
        size: (words * 4) as u32,
        result: 0,
    };
    // SAFETY: the entry names `buf`, `size` bytes, live for the call.
    let (r, results) = unsafe { batch(backend, core::slice::from_mut(&mut get)) };
    if let Err(errno) = r {
        // Refused by this KVM: the ioctl must answer the same.
        assert_eq!(results, [-errno.0]);
        let reference = Reference::new(false);
        let mut other = vec![0u32; words];
        // SAFETY: `other` holds the KVM_CAP_XSAVE2 size.
        let raw = unsafe { ioctl_ptr(reference.fd(), KVM_GET_XSAVE2, other.as_mut_ptr().cast()) };
        assert_eq!(raw, Err(errno.0), "kvmng GET xsave2 answered {errno:?}");
        return;
    }
    assert_eq!((r, results), (Ok(1), vec![0]));

    let bytes = |b: &mut Vec<u32>| -> Vec<u8> { b.iter().flat_map(|w| w.to_ne_bytes()).collect() };
    let mut by_ioctl = vec![0u32; words];
    // SAFETY: `by_ioctl` holds the KVM_CAP_XSAVE2 size.
    let raw = unsafe { ioctl_ptr(fd, KVM_GET_XSAVE2, by_ioctl.as_mut_ptr().cast()) };
    assert_eq!(raw, Ok(0));
    assert_eq!(buf, by_ioctl, "kvmng GET xsave2 and the ioctl disagree");

    // SET (KVMNG_STATE_XSAVE2 sets with KVM_SET_XSAVE, the full size).
    let mut image = bytes(&mut buf);
    put_xmm(&mut image, 4, pattern16(0x44, 1));
    for (w, chunk) in buf.iter_mut().zip(image.chunks_exact(4)) {
        *w = u32::from_ne_bytes(chunk.try_into().unwrap());
    }
    let set = kvmng_state_entry {
        op: KVMNG_STATE_SET,
        ..get
    };
    let mut got = vec![0u32; words];
    let mut get_again = kvmng_state_entry {
        addr: got.as_mut_ptr() as u64,
        ..get
    };
    let mut entries = [set, get_again];
    // SAFETY: the entries name `buf` and `got`, both `size` bytes.
    let (r, results) = unsafe { batch(backend, &mut entries) };
    assert_eq!((r, results), (Ok(2), vec![0, 0]));
    assert_eq!(xmm(&bytes(&mut got), 4), pattern16(0x44, 1));
    // SAFETY: as above.
    let raw = unsafe { ioctl_ptr(fd, KVM_GET_XSAVE2, by_ioctl.as_mut_ptr().cast()) };
    assert_eq!(raw, Ok(0));
    assert_eq!(got, by_ioctl);

    // Set through KVM_SET_XSAVE on the fd (which takes the XSAVE2 size),
    // read through kvmng.
    let mut image = bytes(&mut by_ioctl);
    put_xmm(&mut image, 4, pattern16(0x55, 2));
    for (w, chunk) in by_ioctl.iter_mut().zip(image.chunks_exact(4)) {
        *w = u32::from_ne_bytes(chunk.try_into().unwrap());
    }
    // SAFETY: `by_ioctl` holds the size KVM_SET_XSAVE reads.
    let raw = unsafe { ioctl_ptr(fd, KVM_SET_XSAVE, by_ioctl.as_mut_ptr().cast()) };
    assert_eq!(raw, Ok(0));
    get_again.result = 0;
    // SAFETY: names `got`, `size` bytes.
    let (r, results) = unsafe { batch(backend, core::slice::from_mut(&mut get_again)) };
    assert_eq!((r, results), (Ok(1), vec![0]));
    assert_eq!(xmm(&bytes(&mut got), 4), pattern16(0x55, 2));
    // The 4096-byte kind sees the same register.
    let mut legacy = kvm_xsave::default();
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Xsave(&mut legacy)]),
        Ok(vec![0])
    );
    assert_eq!(xmm(xsave_bytes(&mut legacy), 4), pattern16(0x55, 2));
}

/// XCR0 of a kvm_xcrs.
fn xcr0(x: &kvm_xcrs) -> Option<u64> {
    x.xcrs[..x.nr_xcrs as usize]
        .iter()
        .find(|x| x.xcr == 0)
        .map(|x| x.value)
}

#[test]
fn xcrs_round_trip() {
    let Some(env) = support::env("xcrs_round_trip") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    // XCR0 may only hold what the guest CPUID (leaf 0xD) allows.
    let cpuid = set_supported_cpuid(&mut vcpu);
    let leaf_d = cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == 0xd && e.index == 0)
        .expect("leaf 0xD");
    let full = u64::from(leaf_d.eax) & 0x7; // x87, SSE, AVX
    assert!(full & 3 == 3, "x87 and SSE in XCR0: {full:#x}");
    let values = [full, if full == 3 { 1 } else { 3 }];
    round_trip(
        &mut vcpu,
        |x: &mut kvm_xcrs, v| {
            x.nr_xcrs = 1;
            x.flags = 0;
            x.xcrs = Default::default();
            x.xcrs[0] = kvm_xcr {
                xcr: 0,
                value: values[v as usize - 1],
                ..Default::default()
            };
        },
        |got, want| assert_eq!(xcr0(got), xcr0(want)),
    );
}

const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const MSR_TSC_AUX: u32 = 0xc000_0103;

fn msrs(list: &[(u32, u64)]) -> Msrs {
    let entries: Vec<kvm_msr_entry> = list
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    Msrs::from_entries(&entries).unwrap()
}

fn msr_values(m: &Msrs) -> Vec<(u32, u64)> {
    m.as_slice().iter().map(|e| (e.index, e.data)).collect()
}

#[test]
fn msrs_round_trip_and_count_what_was_processed() {
    let Some(env) = support::env("msrs_round_trip_and_count_what_was_processed") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let cpuid = set_supported_cpuid(&mut vcpu);
    let fd = vcpu.fd();
    let indices = [
        MSR_IA32_SYSENTER_CS,
        MSR_IA32_SYSENTER_ESP,
        MSR_IA32_SYSENTER_EIP,
        MSR_KERNEL_GS_BASE,
        MSR_TSC_AUX,
    ];
    let zeroed: Vec<(u32, u64)> = indices.iter().map(|&i| (i, 0)).collect();
    let values = |v: u64| -> Vec<(u32, u64)> {
        vec![
            (MSR_IA32_SYSENTER_CS, 0x10 + v * 8),
            (MSR_IA32_SYSENTER_ESP, 0xffff_8000_0000_1000 + v),
            (MSR_IA32_SYSENTER_EIP, 0xffff_8000_0000_2000 + v),
            (MSR_KERNEL_GS_BASE, 0xffff_8000_0000_3000 + v),
            (MSR_TSC_AUX, 0x40 + v),
        ]
    };
    let ioctl_get = || {
        let mut m = msrs(&zeroed);
        // SAFETY: `m` holds `nmsrs` entries after its header.
        let r = unsafe { ioctl_ptr(fd, KVM_GET_MSRS, m.as_mut_fam_struct_ptr().cast()) };
        assert_eq!(r, Ok(5));
        msr_values(&m)
    };

    // SET through kvmng: the result is the number of MSRs processed.
    let mut set = msrs(&values(1));
    assert_eq!(
        vcpu.set_state(&mut [StateItem::Msrs(&mut set)]),
        Ok(vec![5])
    );
    let mut get = msrs(&zeroed);
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Msrs(&mut get)]),
        Ok(vec![5])
    );
    assert_eq!(msr_values(&get), values(1));
    assert_eq!(ioctl_get(), values(1));

    // SET through the ioctl on the vCPU fd, GET through kvmng.
    let mut set = msrs(&values(2));
    // SAFETY: `set` holds `nmsrs` entries.
    let r = unsafe { ioctl_ptr(fd, KVM_SET_MSRS, set.as_mut_fam_struct_ptr().cast()) };
    assert_eq!(r, Ok(5));
    let mut get = msrs(&zeroed);
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Msrs(&mut get)]),
        Ok(vec![5])
    );
    assert_eq!(msr_values(&get), values(2));

    // An MSR KVM does not know stops the ioctl early: it returns how many
    // it processed, which is a result, not an error. kvmng answers the
    // same count as the ioctl on a VM made without kvmng.
    let unknown = [
        (MSR_IA32_SYSENTER_CS, 0x18),
        (0x4000_7fff, 1),
        (MSR_IA32_SYSENTER_EIP, 0x1234),
    ];
    let reference = Reference::new(false);
    reference.vcpu.set_cpuid2(&cpuid).unwrap();
    for (op, cmd) in [
        (KVMNG_STATE_SET, KVM_SET_MSRS),
        (KVMNG_STATE_GET, KVM_GET_MSRS),
    ] {
        let mut theirs = msrs(&unknown);
        // SAFETY: `theirs` holds `nmsrs` entries.
        let expected =
            unsafe { ioctl_ptr(reference.fd(), cmd, theirs.as_mut_fam_struct_ptr().cast()) };
        let mut ours = msrs(&unknown);
        let got = if op == KVMNG_STATE_SET {
            vcpu.set_state(&mut [StateItem::Msrs(&mut ours)])
        } else {
            vcpu.get_state(&mut [StateItem::Msrs(&mut ours)])
        };
        match expected {
            Ok(n) => {
                assert!(n < 3, "KVM processed the unknown MSR {n}");
                assert_eq!(got, Ok(vec![n]), "op {op}");
                assert_eq!(msr_values(&ours), msr_values(&theirs));
            }
            Err(e) => assert_eq!(got, Err((0, Errno(e))), "op {op}"),
        }
    }
    // The SET above changed SYSENTER_CS before stopping; GET sees it.
    let mut get = msrs(&[(MSR_IA32_SYSENTER_CS, 0)]);
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Msrs(&mut get)]),
        Ok(vec![1])
    );
    assert_eq!(msr_values(&get), [(MSR_IA32_SYSENTER_CS, 0x18)]);
}

/// APIC register `offset` (32 bits) of a kvm_lapic_state.
fn apic_reg(l: &kvm_lapic_state, offset: usize) -> u32 {
    let b: Vec<u8> = l.regs[offset..offset + 4]
        .iter()
        .map(|&c| c as u8)
        .collect();
    u32::from_le_bytes(b.try_into().unwrap())
}

fn set_apic_reg(l: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (i, b) in value.to_le_bytes().into_iter().enumerate() {
        l.regs[offset + i] = b as _;
    }
}

const APIC_TPR: usize = 0x80;
const APIC_LVT0: usize = 0x350;

#[test]
fn lapic_round_trip() {
    let Some(env) = support::env("lapic_round_trip") else {
        return;
    };
    let vm = vm(&env, true);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    round_trip(
        &mut vcpu,
        |l: &mut kvm_lapic_state, v| {
            set_apic_reg(l, APIC_TPR, 0x20 * v as u32);
            // LINT0: masked (bit 16), ExtINT (delivery mode 7) / fixed.
            let lvt0 = if v == 1 { 0x1_0700 } else { 0x1_0030 };
            set_apic_reg(l, APIC_LVT0, lvt0);
        },
        |got, want| {
            assert_eq!(apic_reg(got, APIC_TPR), apic_reg(want, APIC_TPR));
            assert_eq!(apic_reg(got, APIC_LVT0), apic_reg(want, APIC_LVT0));
        },
    );
}

#[test]
fn events_round_trip() {
    let Some(env) = support::env("events_round_trip") else {
        return;
    };
    let vm = vm(&env, true);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    round_trip(
        &mut vcpu,
        |e: &mut kvm_vcpu_events, v| {
            e.nmi.masked = (v == 1) as u8;
            if e.flags & KVM_VCPUEVENT_VALID_SHADOW != 0 {
                // Interrupt shadow: MOV SS (1) / none.
                e.interrupt.shadow = (v == 1) as u8;
            }
        },
        |got, want| {
            assert_eq!(got.nmi.masked, want.nmi.masked);
            assert_eq!(got.interrupt.shadow, want.interrupt.shadow);
        },
    );
}

#[test]
fn mp_state_round_trip() {
    let Some(env) = support::env("mp_state_round_trip") else {
        return;
    };
    // Other states than RUNNABLE need the in-kernel LAPIC.
    let vm = vm(&env, true);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    round_trip(
        &mut vcpu,
        |m: &mut kvm_mp_state, v| {
            m.mp_state = if v == 1 {
                KVM_MP_STATE_HALTED
            } else {
                KVM_MP_STATE_RUNNABLE
            };
        },
        |got, want| assert_eq!(got, want),
    );
}

#[test]
fn debugregs_round_trip() {
    let Some(env) = support::env("debugregs_round_trip") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    round_trip(
        &mut vcpu,
        |d: &mut kvm_debugregs, v| {
            for (i, db) in d.db.iter_mut().enumerate() {
                *db = 0x1000 * (i as u64 + 1) + 0x10 * v;
            }
            // DR7: bit 10 always 1; L0 enabled in variant 1.
            d.dr7 = 0x400 | (v == 1) as u64;
            d.flags = 0;
        },
        |got, want| {
            assert_eq!(got.db, want.db);
            assert_eq!(got.dr7, want.dr7);
        },
    );
}

/// The entry `(function, index)` of a CPUID table.
fn leaf(c: &CpuId, function: u32, index: u32) -> kvm_cpuid_entry2 {
    *c.as_slice()
        .iter()
        .find(|e| e.function == function && e.index == index)
        .unwrap_or_else(|| panic!("no CPUID leaf {function:#x}.{index}"))
}

/// CPUID.1:EBX bits 15:8, the CLFLUSH line size in 8-byte units: a field
/// KVM keeps as given.
const CLFLUSH_SIZE: u32 = 0xff00;

fn clflush_size(e: &kvm_cpuid_entry2) -> u32 {
    (e.ebx & CLFLUSH_SIZE) >> 8
}

/// `c` with the CLFLUSH line size of leaf 1 set to `units`.
fn with_clflush_size(c: &CpuId, units: u32) -> CpuId {
    let mut c = c.clone();
    for e in c.as_mut_slice() {
        if e.function == 1 {
            e.ebx = (e.ebx & !CLFLUSH_SIZE) | (units << 8);
        }
    }
    c
}

#[test]
fn cpuid_round_trip() {
    let Some(env) = support::env("cpuid_round_trip") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let fd = vcpu.fd();
    let supported = supported_cpuid();
    // What the ioctls make of a table on a vCPU made without kvmng: KVM
    // does not return every leaf it was given (this one drops some, e.g.
    // 0x1d, 0x1e and 0x24), so kvmng is compared with it, not with the
    // input.
    let reference = Reference::new(false);
    let through_ioctls = |c: &CpuId| -> CpuId {
        reference.vcpu.set_cpuid2(c).unwrap();
        reference.vcpu.get_cpuid2(KVM_MAX_CPUID_ENTRIES).unwrap()
    };

    // SET through kvmng, with leaf 1 changed (CLFLUSH line size 128 bytes),
    // GET through kvmng and through the ioctl.
    let want = with_clflush_size(&supported, 16);
    let mut copy = want.clone();
    assert_eq!(
        vcpu.set_state(&mut [StateItem::Cpuid(&mut copy)]),
        Ok(vec![0])
    );
    let mut got = CpuId::new(KVM_MAX_CPUID_ENTRIES).unwrap();
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Cpuid(&mut got)]),
        Ok(vec![0])
    );
    assert_eq!(got.as_slice(), through_ioctls(&want).as_slice());
    assert_eq!(clflush_size(&leaf(&got, 1, 0)), 16);
    assert_eq!(leaf(&got, 0, 0), leaf(&want, 0, 0));
    let mut by_ioctl = CpuId::new(KVM_MAX_CPUID_ENTRIES).unwrap();
    // SAFETY: `by_ioctl` holds `nent` entries after its header.
    let r = unsafe { ioctl_ptr(fd, KVM_GET_CPUID2, by_ioctl.as_mut_fam_struct_ptr().cast()) };
    assert_eq!(r, Ok(0));
    assert_eq!(by_ioctl.as_slice(), got.as_slice());

    // SET through the ioctl (CLFLUSH line size 32 bytes), GET through kvmng.
    let mut want = with_clflush_size(&supported, 4);
    // SAFETY: `want` holds `nent` entries.
    let r = unsafe { ioctl_ptr(fd, KVM_SET_CPUID2, want.as_mut_fam_struct_ptr().cast()) };
    assert_eq!(r, Ok(0));
    let mut got = CpuId::new(KVM_MAX_CPUID_ENTRIES).unwrap();
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Cpuid(&mut got)]),
        Ok(vec![0])
    );
    assert_eq!(got.as_slice(), through_ioctls(&want).as_slice());
    assert_eq!(clflush_size(&leaf(&got, 1, 0)), 4);

    // A GET with too small an `nent`: the ioctl's E2BIG as the entry's
    // result, and the call fails with it.
    let mut small = CpuId::new(1).unwrap();
    assert_eq!(
        vcpu.get_state(&mut [StateItem::Cpuid(&mut small)]),
        Err((0, Errno(libc::E2BIG)))
    );
    let mut small_ioctl = CpuId::new(1).unwrap();
    // SAFETY: `small_ioctl` holds its one entry.
    let r = unsafe {
        ioctl_ptr(
            fd,
            KVM_GET_CPUID2,
            small_ioctl.as_mut_fam_struct_ptr().cast(),
        )
    };
    assert_eq!(r, Err(libc::E2BIG));
    let mut entries = [kvmng_state_entry {
        kind: KVMNG_STATE_CPUID,
        op: KVMNG_STATE_GET,
        addr: small.as_mut_fam_struct_ptr() as u64,
        size: 8 + 40,
        result: 0,
    }];
    // SAFETY: names `small`: header and one entry.
    let (r, results) = unsafe { batch(vm.backend(), &mut entries) };
    assert_eq!((r, results), (Err(Errno(libc::E2BIG)), vec![-libc::E2BIG]));
}

#[test]
fn one_reg_round_trip_or_the_ioctls_errno() {
    let Some(env) = support::env("one_reg_round_trip_or_the_ioctls_errno") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let fd = vcpu.fd();
    let id = kvm_x86_reg_msr(MSR_IA32_SYSENTER_CS);
    let mut value: u64 = 0;
    let mut reg = kvm_one_reg {
        id,
        addr: &mut value as *mut u64 as u64,
    };
    let got = vcpu.get_state(&mut [StateItem::OneReg(&mut reg)]);
    if let Err((0, errno)) = got {
        // Refused (x86 before Linux 6.18): exactly what the ioctls answer,
        // for GET and for SET, on this vCPU's fd and on a VM made without
        // kvmng.
        let reference = Reference::new(false);
        for target in [fd, reference.fd()] {
            for cmd in [KVM_GET_ONE_REG, KVM_SET_ONE_REG] {
                let mut raw = kvm_one_reg {
                    id,
                    addr: &mut value as *mut u64 as u64,
                };
                assert_eq!(ioctl_ref(target, cmd, &mut raw), Err(errno.0), "{cmd:#x}");
            }
        }
        let mut reg = kvm_one_reg {
            id,
            addr: &mut value as *mut u64 as u64,
        };
        assert_eq!(
            vcpu.set_state(&mut [StateItem::OneReg(&mut reg)]),
            Err((0, errno))
        );
        return;
    }
    assert_eq!(got, Ok(vec![0]));

    // Supported: SET through kvmng, read as an MSR through the ioctl.
    value = 0x28;
    let mut reg = kvm_one_reg {
        id,
        addr: &mut value as *mut u64 as u64,
    };
    assert_eq!(
        vcpu.set_state(&mut [StateItem::OneReg(&mut reg)]),
        Ok(vec![0])
    );
    let mut m = msrs(&[(MSR_IA32_SYSENTER_CS, 0)]);
    // SAFETY: one entry after the header.
    let r = unsafe { ioctl_ptr(fd, KVM_GET_MSRS, m.as_mut_fam_struct_ptr().cast()) };
    assert_eq!(r, Ok(1));
    assert_eq!(msr_values(&m), [(MSR_IA32_SYSENTER_CS, 0x28)]);
    // SET through the ioctl, GET through kvmng.
    let mut other: u64 = 0x30;
    let mut raw = kvm_one_reg {
        id,
        addr: &mut other as *mut u64 as u64,
    };
    assert_eq!(ioctl_ref(fd, KVM_SET_ONE_REG, &mut raw), Ok(0));
    value = 0;
    let mut reg = kvm_one_reg {
        id,
        addr: &mut value as *mut u64 as u64,
    };
    assert_eq!(
        vcpu.get_state(&mut [StateItem::OneReg(&mut reg)]),
        Ok(vec![0])
    );
    assert_eq!(value, 0x30);

    // Registers this KVM refuses: kvmng answers the ioctl's errno.
    let reference = Reference::new(false);
    let refused = [
        kvm_x86_reg_msr(0x4000_7fff),               // unknown MSR
        KVM_REG_X86 | KVM_REG_SIZE_U64 | (7 << 32), // unknown type
        kvm_x86_reg_msr(MSR_IA32_SYSENTER_CS) & !KVM_REG_SIZE_MASK, // wrong size
    ];
    for id in refused {
        for (op, cmd) in [
            (KVMNG_STATE_GET, KVM_GET_ONE_REG),
            (KVMNG_STATE_SET, KVM_SET_ONE_REG),
        ] {
            let mut theirs: u64 = 0;
            let mut raw = kvm_one_reg {
                id,
                addr: &mut theirs as *mut u64 as u64,
            };
            let expected =
                ioctl_ref(reference.fd(), cmd, &mut raw).expect_err("a register KVM refuses");
            let mut ours: u64 = 0;
            let mut reg = kvm_one_reg {
                id,
                addr: &mut ours as *mut u64 as u64,
            };
            let items = &mut [StateItem::OneReg(&mut reg)];
            let got = if op == KVMNG_STATE_GET {
                vcpu.get_state(items)
            } else {
                vcpu.set_state(items)
            };
            assert_eq!(got, Err((0, Errno(expected))), "id {id:#x} op {op}");
        }
    }
}

// ---------------------------------------------------------------- batches

/// The state QEMU syncs, one buffer per kind.
#[derive(Default)]
struct SyncBufs {
    regs: kvm_regs,
    xsave: kvm_xsave,
    xcrs: kvm_xcrs,
    sregs: kvm_sregs,
    msrs: Option<Msrs>,
    mp_state: kvm_mp_state,
    lapic: kvm_lapic_state,
    events: kvm_vcpu_events,
    debugregs: kvm_debugregs,
}

impl SyncBufs {
    fn new(msr_list: &[(u32, u64)]) -> SyncBufs {
        SyncBufs {
            msrs: Some(msrs(msr_list)),
            ..Default::default()
        }
    }

    /// The entries of QEMU's order (kvm_arch_put_registers), all with `op`.
    fn entries(&mut self, op: u32) -> Vec<kvmng_state_entry> {
        let m = self.msrs.as_mut().unwrap();
        let msrs = kvmng_state_entry {
            kind: KVMNG_STATE_MSRS,
            op,
            addr: m.as_mut_fam_struct_ptr() as u64,
            size: (8 + 16 * m.as_slice().len()) as u32,
            result: 0,
        };
        vec![
            entry(KVMNG_STATE_REGS, op, &mut self.regs),
            entry(KVMNG_STATE_XSAVE, op, &mut self.xsave),
            entry(KVMNG_STATE_XCRS, op, &mut self.xcrs),
            entry(KVMNG_STATE_SREGS, op, &mut self.sregs),
            msrs,
            entry(KVMNG_STATE_MP_STATE, op, &mut self.mp_state),
            entry(KVMNG_STATE_LAPIC, op, &mut self.lapic),
            entry(KVMNG_STATE_EVENTS, op, &mut self.events),
            entry(KVMNG_STATE_DEBUGREGS, op, &mut self.debugregs),
        ]
    }
}

/// The per-entry results of a successful sync: 0, and for the MSRs their
/// number.
fn sync_results(nmsrs: i32) -> Vec<i32> {
    vec![0, 0, 0, 0, nmsrs, 0, 0, 0, 0]
}

#[test]
fn one_call_syncs_nine_kinds_like_qemu() {
    let Some(env) = support::env("one_call_syncs_nine_kinds_like_qemu") else {
        return;
    };
    let vm = vm(&env, true);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let backend = vm.backend();
    let fd = vcpu.fd();
    let cpuid = set_supported_cpuid(&mut vcpu);
    let xcr0_full = u64::from(leaf(&cpuid, 0xd, 0).eax) & 0x7;
    let msr_zero = [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_TSC_AUX, 0),
    ];
    let msr_want = [
        (MSR_IA32_SYSENTER_CS, 0x20),
        (MSR_IA32_SYSENTER_ESP, 0xffff_8000_1234_0000),
        (MSR_TSC_AUX, 3),
    ];

    // GET everything in one call.
    let mut state = SyncBufs::new(&msr_zero);
    let mut entries = state.entries(KVMNG_STATE_GET);
    // SAFETY: every entry names a field of `state`, of its full size.
    let (r, results) = unsafe { batch(backend, &mut entries) };
    assert_eq!(r, Ok(9));
    assert_eq!(results, sync_results(3));

    // Change every kind, then one call that SETs all nine and, mixed in,
    // GETs regs back right after their SET (array order) and the MSRs
    // after theirs.
    state.regs.rax = 0xfeed_f00d;
    state.regs.rip = 0x2000;
    state.regs.rflags = 0x2 | 0x4;
    put_xmm(xsave_bytes(&mut state.xsave), 9, pattern16(0x99, 1));
    state.xcrs.nr_xcrs = 1;
    state.xcrs.xcrs[0] = kvm_xcr {
        xcr: 0,
        value: xcr0_full,
        ..Default::default()
    };
    state.sregs.cr2 = 0xc0de_0000;
    state.sregs.gs.selector = 0x4000;
    state.sregs.gs.base = 0x4_0000;
    state.msrs = Some(msrs(&msr_want));
    state.mp_state.mp_state = KVM_MP_STATE_HALTED;
    set_apic_reg(&mut state.lapic, APIC_TPR, 0x50);
    state.events.nmi.masked = 1;
    state.debugregs.db = [0x1100, 0x2200, 0x3300, 0x4400];
    state.debugregs.flags = 0;

    let mut regs_back = kvm_regs::default();
    let mut msrs_back = msrs(&msr_zero);
    let mut mixed = state.entries(KVMNG_STATE_SET);
    mixed.insert(1, entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &mut regs_back));
    mixed.push(kvmng_state_entry {
        kind: KVMNG_STATE_MSRS,
        op: KVMNG_STATE_GET,
        addr: msrs_back.as_mut_fam_struct_ptr() as u64,
        size: 8 + 16 * 3,
        result: 0,
    });
    // SAFETY: every entry names a live buffer of its full size.
    let (r, results) = unsafe { batch(backend, &mut mixed) };
    assert_eq!(r, Ok(11));
    assert_eq!(results, [0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 3]);
    assert_eq!(regs_back, state.regs, "GET after SET in the same batch");
    assert_eq!(msr_values(&msrs_back), msr_want);

    // GET everything again, into fresh buffers.
    let mut after = SyncBufs::new(&msr_zero);
    let mut entries = after.entries(KVMNG_STATE_GET);
    // SAFETY: every entry names a field of `after`, of its full size.
    let (r, results) = unsafe { batch(backend, &mut entries) };
    assert_eq!(r, Ok(9));
    assert_eq!(results, sync_results(3));
    assert_eq!(after.regs, state.regs);
    assert_eq!(xmm(xsave_bytes(&mut after.xsave), 9), pattern16(0x99, 1));
    assert_eq!(xcr0(&after.xcrs), Some(xcr0_full));
    assert_eq!(after.sregs.cr2, 0xc0de_0000);
    assert_eq!(
        (after.sregs.gs.selector, after.sregs.gs.base),
        (0x4000, 0x4_0000)
    );
    assert_eq!(msr_values(after.msrs.as_ref().unwrap()), msr_want);
    assert_eq!(after.mp_state.mp_state, KVM_MP_STATE_HALTED);
    assert_eq!(apic_reg(&after.lapic, APIC_TPR), 0x50);
    assert_eq!(after.events.nmi.masked, 1);
    assert_eq!(after.debugregs.db, [0x1100, 0x2200, 0x3300, 0x4400]);

    // And the ioctls on the vCPU fd read the same state.
    let mut regs = kvm_regs::default();
    assert_eq!(ioctl_ref(fd, KVM_GET_REGS, &mut regs), Ok(0));
    assert_eq!(regs, after.regs);
    let mut sregs = kvm_sregs::default();
    assert_eq!(ioctl_ref(fd, KVM_GET_SREGS, &mut sregs), Ok(0));
    assert_eq!(sregs, after.sregs);
    let mut lapic = kvm_lapic_state::default();
    assert_eq!(ioctl_ref(fd, KVM_GET_LAPIC, &mut lapic), Ok(0));
    assert_eq!(lapic, after.lapic);
    let mut mp = kvm_mp_state::default();
    assert_eq!(ioctl_ref(fd, KVM_GET_MP_STATE, &mut mp), Ok(0));
    assert_eq!(mp, after.mp_state);
    let mut dbg = kvm_debugregs::default();
    assert_eq!(ioctl_ref(fd, KVM_GET_DEBUGREGS, &mut dbg), Ok(0));
    assert_eq!(dbg, after.debugregs);
    let mut events = kvm_vcpu_events::default();
    assert_eq!(ioctl_ref(fd, KVM_GET_VCPU_EVENTS, &mut events), Ok(0));
    assert_eq!(events, after.events);
    let mut xcrs = kvm_xcrs::default();
    assert_eq!(ioctl_ref(fd, KVM_GET_XCRS, &mut xcrs), Ok(0));
    assert_eq!(xcrs, after.xcrs);
    let mut xsave = kvm_xsave::default();
    assert_eq!(ioctl_ref(fd, KVM_GET_XSAVE, &mut xsave), Ok(0));
    assert_eq!(xsave.region, after.xsave.region);
}

#[test]
fn a_batch_stops_at_the_first_failing_entry() {
    let Some(env) = support::env("a_batch_stops_at_the_first_failing_entry") else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let backend = vm.backend();
    let mut before = vcpu.regs().unwrap();
    before.rax = 0xaaaa;
    vcpu.set_regs(&before).unwrap();

    // SET regs (done), SET mp_state HALTED without an in-kernel LAPIC (the
    // ioctl answers EINVAL), SET regs again (not attempted).
    let mut first = before;
    first.rax = 0xbbbb;
    let mut halted = kvm_mp_state {
        mp_state: KVM_MP_STATE_HALTED,
    };
    let mut third = before;
    third.rax = 0xcccc;
    let expected = {
        let reference = Reference::new(false);
        let mut mp = halted;
        ioctl_ref(reference.fd(), KVM_SET_MP_STATE, &mut mp).unwrap_err()
    };
    let mut entries = [
        entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &mut first),
        entry(KVMNG_STATE_MP_STATE, KVMNG_STATE_SET, &mut halted),
        entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &mut third),
    ];
    // SAFETY: every entry names a live buffer of its full size.
    let (r, results) = unsafe { batch(backend, &mut entries) };
    assert_eq!(r, Err(Errno(expected)));
    assert_eq!(results, [0, -expected, KVMNG_STATE_NOT_DONE]);
    assert_eq!(
        vcpu.regs().unwrap().rax,
        0xbbbb,
        "earlier entries stay done"
    );
}

/// An entry's GET buffer that overlaps the entry array: api.md 5.6 writes
/// back each entry's `result` and nothing else of the array, so the array
/// holds what the GET wrote, with the results over it. The emulation wrote
/// whole entries back, over the GET's bytes, where the kernel writes the
/// results alone (`make vm-fuzz`, seed 20261207, round 4269).
#[test]
fn only_results_are_written_over_a_get_buffer_that_overlaps_the_entries() {
    let Some(env) =
        support::env("only_results_are_written_over_a_get_buffer_that_overlaps_the_entries")
    else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let mut regs = kvm_regs {
        rax: 0x1111_2222_3333_4444,
        rbx: 0x5555_6666_7777_8888,
        rcx: 0x9999_aaaa_bbbb_cccc,
        rdx: 0xdddd_eeee_ffff_0101,
        rsi: 0x0202_0303_0404_0505,
        rdi: 0x0606_0707_0808_0909,
        rip: 0x1000,
        rflags: 0x2,
        ..Default::default()
    };
    assert_eq!(
        vcpu.set_state(&mut [StateItem::Regs(&mut regs)]),
        Ok(vec![0])
    );
    let backend = vm.backend();

    // Two entries (48 bytes) at the start of a 144-byte kvm_regs: entry 0
    // gets the registers into the array itself, entry 1 the mp_state.
    let mut area = kvm_regs::default();
    let base = &mut area as *mut kvm_regs;
    let entries = base.cast::<kvmng_state_entry>();
    let mut mp = kvm_mp_state { mp_state: !0 };
    // SAFETY: a kvm_regs (144 bytes, 8-aligned) holds two 24-byte entries.
    unsafe {
        entries.write(kvmng_state_entry {
            kind: KVMNG_STATE_REGS,
            op: KVMNG_STATE_GET,
            addr: base as u64,
            size: size_of::<kvm_regs>() as u32,
            result: 0x5a5a_5a5a,
        });
        entries.add(1).write(kvmng_state_entry {
            kind: KVMNG_STATE_MP_STATE,
            op: KVMNG_STATE_GET,
            addr: &mut mp as *mut kvm_mp_state as u64,
            size: size_of::<kvm_mp_state>() as u32,
            result: 0x5a5a_5a5a,
        });
    }
    // SAFETY: both entries' buffers are live and writable for their size;
    // the first one is the array, as the test means it to be.
    let r = unsafe { backend.vcpu_state(entries, 2, 0) };
    assert_eq!(r, Ok(2));
    assert_eq!(mp.mp_state, KVM_MP_STATE_RUNNABLE);

    // What the GET wrote, then result 0 at bytes 20..24 and 44..48.
    let mut want = regs;
    // SAFETY: viewing a kvm_regs (plain integers) as its bytes.
    let bytes = |r: &mut kvm_regs| unsafe {
        core::slice::from_raw_parts_mut((r as *mut kvm_regs).cast::<u8>(), size_of::<kvm_regs>())
    };
    bytes(&mut want)[20..24].fill(0);
    bytes(&mut want)[44..48].fill(0);
    assert_eq!(bytes(&mut area), bytes(&mut want));
}

/// An entry array that can be read but not written: the entries run (a
/// SET takes effect) and the call fails with `EFAULT` when it writes the
/// results back (api.md 5.6), as the kernel's `kvmng_test` checks for its
/// side.
#[test]
fn a_read_only_entry_array_runs_its_entries_then_fails_with_efault() {
    let Some(env) = support::env("a_read_only_entry_array_runs_its_entries_then_fails_with_efault")
    else {
        return;
    };
    let vm = vm(&env, false);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let mut regs = vcpu.regs().unwrap();
    regs.rax = 0x6b76_6d6e_6700_0001;
    let backend = vm.backend();

    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    // SAFETY: a fresh private anonymous page, used by this test alone.
    let map = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    let entries = map.cast::<kvmng_state_entry>();
    // SAFETY: the page holds one entry; then it is made read-only.
    unsafe {
        entries.write(kvmng_state_entry {
            result: 0x5a5a_5a5a,
            ..entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &mut regs)
        });
        assert_eq!(libc::mprotect(map, page, libc::PROT_READ), 0);
    }
    // SAFETY: `entries` is one readable entry on a read-only page, so the
    // write-back of its result fails with EFAULT (the backend contract);
    // the entry names `regs`, live and of its full size.
    let r = unsafe { backend.vcpu_state(entries, 1, 0) };
    assert_eq!(r, Err(Errno(libc::EFAULT)));
    // SAFETY: the page is still mapped and readable.
    assert_eq!(unsafe { (*entries).result }, 0x5a5a_5a5a, "nothing written");
    assert_eq!(vcpu.regs().unwrap().rax, regs.rax, "the SET took effect");
    // SAFETY: the page mapped above.
    assert_eq!(unsafe { libc::munmap(map, page) }, 0);
}
