//! Bad input through the raw [`Backend`] calls: each case asserts the errno
//! that docs/api.md gives for it, in the order of checks it gives (so most
//! cases carry more than one fault, and the first in that order must win),
//! and that nothing was done that the spec says is not done. None of them
//! may crash the process: the last test runs a guest afterwards.
//!
//! `kvmng_vcpu_state` and `kvmng_memory_map` have two forms on the
//! [`Backend`]: the raw call on an address, and the slice form of a Rust
//! caller ([`Form`]), which the emulation carries out in place, without
//! its checked copies. The batch cases run through both: same answers.

mod support;

use core::ffi::c_void;
use core::mem::size_of;
use kvm_bindings::*;
use kvmng::{Backend, BoundVcpu, Errno, GuestMemory, MemoryRegion, StateItem, Vm};
use kvmng_abi::ioctls::*;
use kvmng_abi::*;

const EINVAL: i32 = libc::EINVAL;
const EFAULT: i32 = libc::EFAULT;
const E2BIG: i32 = libc::E2BIG;
const ESRCH: i32 = libc::ESRCH;
const EUNATCH: i32 = libc::EUNATCH;

/// A `result` value no call writes, to see which results were written.
const UNTOUCHED: i32 = 0x5eed;

/// An address at which nothing is ever mapped (the first page).
const BAD_ADDR: u64 = 8;

/// Unknown flag bits for every call (bit 0 is `KVMNG_CREATE_VCPU_BIND` for
/// `kvmng_create_vcpu`, so it is added separately for the others).
const BAD_FLAGS: [u32; 7] = [
    1 << 1,
    1 << 2,
    1 << 7,
    1 << 16,
    1 << 30,
    1 << 31,
    !KVMNG_CREATE_VCPU_BIND,
];

// ---------------------------------------------------------------- helpers

/// Anonymous pages with the given protection, unmapped on drop.
struct Pages {
    addr: *mut u8,
    len: usize,
}

impl Pages {
    fn new(pages: usize, prot: i32) -> Pages {
        let len = pages * 4096;
        // SAFETY: a new anonymous mapping at an address of the kernel's
        // choosing; no existing memory is affected.
        let addr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        Pages {
            addr: addr.cast(),
            len,
        }
    }

    fn addr(&self) -> u64 {
        self.addr as u64
    }

    /// Changes the protection of page `page`.
    fn protect(&self, page: usize, prot: i32) {
        // SAFETY: the page is part of this mapping; nothing holds a Rust
        // reference into it across the change.
        let r = unsafe { libc::mprotect(self.addr.add(page * 4096).cast(), 4096, prot) };
        assert_eq!(r, 0);
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping this value made.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// The address of a page that was mapped and has been unmapped again.
fn munmapped_page() -> u64 {
    Pages::new(1, libc::PROT_READ | libc::PROT_WRITE).addr()
}

/// `ioctl(fd, cmd, arg)` with any argument value: the result or the errno.
///
/// # Safety
/// `arg` must be what the ioctl expects, or deliberately invalid.
unsafe fn ioctl(fd: i32, cmd: u64, arg: u64) -> Result<i32, i32> {
    // SAFETY: the caller vouches for `arg`.
    let r = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg as *mut c_void) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
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
        result: UNTOUCHED,
    }
}

/// An entry with an explicit address and size.
fn raw_entry(kind: u32, op: u32, addr: u64, size: u32) -> kvmng_state_entry {
    kvmng_state_entry {
        kind,
        op,
        addr,
        size,
        result: UNTOUCHED,
    }
}

/// How a batch is handed to the backend.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// The raw call: an address and a count (`vcpu_state`, `memory_map`).
    Raw,
    /// The slice form (`vcpu_state_entries`, `memory_map_regions`).
    Slice,
}

const FORMS: [Form; 2] = [Form::Raw, Form::Slice];

/// `kvmng_vcpu_state(entries, len, 0)` in `form`: the call's errno or
/// value, and the results.
///
/// # Safety
/// Every entry's buffer must be valid for its size, or invalid on purpose.
unsafe fn batch(
    form: Form,
    backend: &dyn Backend,
    entries: &mut [kvmng_state_entry],
) -> (Result<i64, Errno>, Vec<i32>) {
    // SAFETY: `entries` is live for the call; the caller vouches for the
    // buffers.
    let r = unsafe {
        match form {
            Form::Raw => backend.vcpu_state(entries.as_mut_ptr(), entries.len() as u32, 0),
            Form::Slice => backend.vcpu_state_entries(entries, 0),
        }
    };
    (r, entries.iter().map(|e| e.result).collect())
}

/// `kvmng_memory_map(regions, len, flags)` in `form`.
///
/// # Safety
/// The regions must map memory that outlives the VM's use of it.
unsafe fn map_in(
    form: Form,
    backend: &dyn Backend,
    regions: &[kvm_userspace_memory_region2],
    flags: u32,
) -> Result<i64, Errno> {
    // SAFETY: `regions` is live for the call; the caller vouches for the
    // memory.
    unsafe {
        match form {
            Form::Raw => backend.memory_map(regions.as_ptr(), regions.len() as u32, flags),
            Form::Slice => backend.memory_map_regions(regions, flags),
        }
    }
}

/// Results of a batch in which entry `done` (those before it done) failed
/// with `errno`.
fn failed_at(len: usize, done: usize, errno: i32) -> Vec<i32> {
    (0..len)
        .map(|i| match i.cmp(&done) {
            core::cmp::Ordering::Less => 0,
            core::cmp::Ordering::Equal => -errno,
            core::cmp::Ordering::Greater => KVMNG_STATE_NOT_DONE,
        })
        .collect()
}

/// Results of a batch whose entry `bad` failed validation.
fn invalid_at(len: usize, bad: usize) -> Vec<i32> {
    (0..len)
        .map(|i| {
            if i == bad {
                -EINVAL
            } else {
                KVMNG_STATE_NOT_DONE
            }
        })
        .collect()
}

/// A VM bound to the process.
fn vm(env: &support::Env) -> Vm<'_> {
    env.kvm.create_vm().unwrap()
}

/// Sets RAX of the bound vCPU to `marker`.
fn mark_rax(vcpu: &mut BoundVcpu<'_>, marker: u64) {
    let mut regs = vcpu.regs().unwrap();
    regs.rax = marker;
    vcpu.set_regs(&regs).unwrap();
}

fn rax(vcpu: &mut BoundVcpu<'_>) -> u64 {
    vcpu.regs().unwrap().rax
}

/// Asserts that neither the process nor this thread has a binding.
fn assert_nothing_bound(backend: &dyn Backend) {
    assert_eq!(
        support::errno(backend.create_vcpu(0, 0)),
        EUNATCH,
        "no VM may be bound"
    );
    assert_eq!(
        support::errno(backend.run(0)),
        ESRCH,
        "no vCPU may be bound"
    );
}

// ---------------------------------------------------------------- flags

#[test]
fn unknown_flags_come_first_on_all_nine_calls() {
    let Some(env) = support::env("unknown_flags_come_first_on_all_nine_calls") else {
        return;
    };
    let b = env.kvm.backend();
    assert_nothing_bound(b);
    // With nothing bound and every other argument bad too: flags are
    // checked first, so every call says EINVAL (not EBADF, EUNATCH, ESRCH,
    // E2BIG or EFAULT).
    let every_bad: Vec<u32> = BAD_FLAGS
        .iter()
        .flat_map(|&f| [f, f | 1])
        .chain([1])
        .collect();
    for f in every_bad {
        let what = format!("flags {f:#x}");
        assert_eq!(support::errno(b.create_vm(-1, 0, f)), EINVAL, "{what}");
        assert_eq!(support::errno(b.bind_vm(-7, f)), EINVAL, "{what}");
        assert_eq!(support::errno(b.bind_vcpu(-7, f)), EINVAL, "{what}");
        assert_eq!(support::errno(b.run(f)), EINVAL, "{what}");
        // SAFETY: the call must fail before it reads `entries`.
        let r = unsafe { b.vcpu_state(BAD_ADDR as *mut _, 65, f) };
        assert_eq!(support::errno(r), EINVAL, "{what}");
        assert_eq!(support::errno(b.irq(99, 1, 1, f)), EINVAL, "{what}");
        // SAFETY: the call must fail before it reads `regions`.
        let r = unsafe { b.memory_map(BAD_ADDR as *const _, 257, f) };
        assert_eq!(support::errno(r), EINVAL, "{what}");
        // SAFETY: unknown scope and flags: nothing is issued.
        let r = unsafe { b.control(99, KVM_GET_REGS as u32, BAD_ADDR, f) };
        assert_eq!(support::errno(r), EINVAL, "{what}");
    }
    // kvmng_create_vcpu: any bit but KVMNG_CREATE_VCPU_BIND.
    for f in BAD_FLAGS
        .iter()
        .flat_map(|&f| [f, f | KVMNG_CREATE_VCPU_BIND])
    {
        assert_eq!(support::errno(b.create_vcpu(0, f)), EINVAL, "flags {f:#x}");
    }
    assert_nothing_bound(b);

    // With a bound VM and vCPU and every other argument valid: still
    // EINVAL, and nothing is done.
    let vm = vm(&env);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    mark_rax(&mut vcpu, 0x1111);
    let mem = GuestMemory::new(0x10000).unwrap();
    let region = MemoryRegion::of(3, 0x10_0000, &mem).to_kvm();
    for flags in BAD_FLAGS.into_iter().chain([1, u32::MAX]) {
        let what = format!("flags {flags:#x}");
        assert_eq!(
            support::errno(b.create_vm(env.kvm.kvm_fd(), 0, flags)),
            EINVAL,
            "{what}"
        );
        assert_eq!(support::errno(b.bind_vm(vm.fd(), flags)), EINVAL, "{what}");
        assert_eq!(support::errno(b.bind_vm(-1, flags)), EINVAL, "{what}");
        if flags != KVMNG_CREATE_VCPU_BIND {
            assert_eq!(support::errno(b.create_vcpu(1, flags)), EINVAL, "{what}");
        }
        assert_eq!(
            support::errno(b.bind_vcpu(vcpu.fd(), flags)),
            EINVAL,
            "{what}"
        );
        assert_eq!(support::errno(b.bind_vcpu(-1, flags)), EINVAL, "{what}");
        assert_eq!(support::errno(b.run(flags)), EINVAL, "{what}");

        let mut regs = kvm_regs {
            rax: 0x2222,
            rflags: 2,
            ..Default::default()
        };
        let mut set = entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &mut regs);
        // SAFETY: one entry naming `regs`.
        let r = unsafe { b.vcpu_state(&mut set, 1, flags) };
        assert_eq!(support::errno(r), EINVAL, "{what}");
        assert_eq!(set.result, UNTOUCHED, "{what}: no result is written");
        // SAFETY: as above.
        let r = unsafe { b.vcpu_state_entries(core::slice::from_mut(&mut set), flags) };
        assert_eq!(support::errno(r), EINVAL, "{what}: slice form");
        assert_eq!(set.result, UNTOUCHED, "{what}: slice form");

        assert_eq!(
            support::errno(b.irq(KVMNG_IRQ_NMI, 0, 0, flags)),
            EINVAL,
            "{what}"
        );
        for form in FORMS {
            // SAFETY: one valid region over `mem`, which outlives the VM's use.
            let r = unsafe { map_in(form, b, core::slice::from_ref(&region), flags) };
            assert_eq!(support::errno(r), EINVAL, "{what}: {form:?}");
        }
        let mut regs = kvm_regs::default();
        // SAFETY: KVM_GET_REGS into `regs`.
        let r = unsafe {
            b.control(
                KVMNG_SCOPE_VCPU,
                KVM_GET_REGS as u32,
                &mut regs as *mut _ as u64,
                flags,
            )
        };
        assert_eq!(support::errno(r), EINVAL, "{what}");
        assert_eq!(regs.rax, 0, "{what}: the ioctl is not issued");
    }
    // Nothing happened: same registers, no NMI, no slot 3 (a second slot
    // over the same guest addresses would overlap it), no vCPU 1, and the
    // bindings are as they were.
    assert_eq!(rax(&mut vcpu), 0x1111);
    let mut events = kvm_vcpu_events::default();
    vcpu.get_state(&mut [StateItem::Events(&mut events)])
        .unwrap();
    assert_eq!(events.nmi.pending, 0);
    assert_eq!(
        vm.memory_map(&[MemoryRegion::of(4, 0x10_0000, &mem)]),
        Ok(1)
    );
    let vcpu1 = b.create_vcpu(1, 0).expect("vCPU 1 was not created");
    // SAFETY: the fd the call just returned, owned by nobody else.
    unsafe { libc::close(vcpu1 as i32) };
    assert_eq!(b.bind_vm(vm.fd(), 0), Ok(0), "still the bound VM");
}

// ---------------------------------------------------------------- EFAULT

#[test]
fn unreadable_state_entries_are_efault() {
    let Some(env) = support::env("unreadable_state_entries_are_efault") else {
        return;
    };
    let vm = vm(&env);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let b = vm.backend();
    mark_rax(&mut vcpu, 0x1234);
    let none = Pages::new(1, libc::PROT_NONE);
    for bad in [BAD_ADDR, munmapped_page(), none.addr()] {
        for count in [1, 2, 64] {
            // SAFETY: the entries are unreadable on purpose.
            let r = unsafe { b.vcpu_state(bad as *mut _, count, 0) };
            assert_eq!(
                support::errno(r),
                EFAULT,
                "entries at {bad:#x}, count {count}"
            );
        }
    }

    // An array that starts readable and runs into an unreadable page:
    // EFAULT, and nothing is executed or written (the first entry, a SET,
    // did not run; its result is untouched).
    let pages = Pages::new(2, libc::PROT_READ | libc::PROT_WRITE);
    pages.protect(1, libc::PROT_NONE);
    let mut regs = kvm_regs {
        rax: 0xbad,
        rflags: 2,
        ..Default::default()
    };
    let first =
        (pages.addr() + 4096 - size_of::<kvmng_state_entry>() as u64) as *mut kvmng_state_entry;
    // SAFETY: `first` is the last entry-sized slot of the readable page.
    unsafe { first.write(entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &mut regs)) };
    // SAFETY: the second entry is in the PROT_NONE page on purpose.
    let r = unsafe { b.vcpu_state(first, 2, 0) };
    assert_eq!(support::errno(r), EFAULT);
    // SAFETY: reading back the readable entry.
    assert_eq!(unsafe { first.read() }.result, UNTOUCHED);
    assert_eq!(rax(&mut vcpu), 0x1234, "nothing was executed");
}

#[test]
fn a_bad_buffer_fails_its_entry_and_cancels_the_rest() {
    let Some(env) = support::env("a_bad_buffer_fails_its_entry_and_cancels_the_rest") else {
        return;
    };
    let vm = vm(&env);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let b = vm.backend();
    let fd = vcpu.fd();
    let read_only = Pages::new(1, libc::PROT_READ);
    let none = Pages::new(1, libc::PROT_NONE);
    let bad_buffers = [
        ("address 8", BAD_ADDR),
        ("munmapped page", munmapped_page()),
        ("PROT_NONE page", none.addr()),
        ("read-only page", read_only.addr()),
    ];
    let template = vcpu.regs().unwrap();
    for (form, (what, bad)) in FORMS
        .into_iter()
        .flat_map(|form| bad_buffers.iter().map(move |&b| (form, b)))
    {
        for (kind, size, op) in [
            (KVMNG_STATE_SREGS, size_of::<kvm_sregs>(), KVMNG_STATE_GET),
            (KVMNG_STATE_REGS, size_of::<kvm_regs>(), KVMNG_STATE_GET),
            (KVMNG_STATE_FPU, size_of::<kvm_fpu>(), KVMNG_STATE_GET),
            (KVMNG_STATE_MSRS, 8 + 16, KVMNG_STATE_GET),
            (KVMNG_STATE_SREGS, size_of::<kvm_sregs>(), KVMNG_STATE_SET),
            (
                KVMNG_STATE_DEBUGREGS,
                size_of::<kvm_debugregs>(),
                KVMNG_STATE_SET,
            ),
        ] {
            // Read-only memory is bad only where the kernel writes: the
            // fixed-size GETs. (A SET reads it; an MSR GET reads nmsrs = 0
            // there and writes nothing back.)
            if bad == read_only.addr() && (op == KVMNG_STATE_SET || kind == KVMNG_STATE_MSRS) {
                continue;
            }
            let what = format!("{what}: kind {kind} op {op}, {form:?}");
            mark_rax(&mut vcpu, 0x1000);
            let mut done = kvm_regs {
                rax: 0x1111,
                ..template
            };
            let mut cancelled = kvm_regs {
                rax: 0x2222,
                ..template
            };
            let mut got = kvm_regs::default();
            let mut entries = [
                entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &mut done),
                entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &mut got),
                raw_entry(kind, op, bad, size as u32),
                entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &mut cancelled),
            ];
            // SAFETY: entry 2 names a bad buffer on purpose; the others
            // name live buffers of their full size.
            let (r, results) = unsafe { batch(form, b, &mut entries) };
            assert_eq!(r, Err(Errno(EFAULT)), "{what}");
            assert_eq!(results, failed_at(4, 2, EFAULT), "{what}");
            assert_eq!(got.rax, 0x1111, "{what}: entries before stay done");
            assert_eq!(
                rax(&mut vcpu),
                0x1111,
                "{what}: not rolled back, not continued"
            );
        }
        // The ioctl on the vCPU fd answers the same for the GET.
        // SAFETY: a bad destination on purpose.
        let raw = unsafe { ioctl(fd, KVM_GET_SREGS, bad) };
        assert_eq!(raw, Err(EFAULT), "{what}");
    }
}

#[test]
fn results_that_cannot_be_written_back_are_efault() {
    let Some(env) = support::env("results_that_cannot_be_written_back_are_efault") else {
        return;
    };
    let vm = vm(&env);
    let _vcpu = vm.create_bound_vcpu(0).unwrap();
    let b = vm.backend();
    let page = Pages::new(1, libc::PROT_READ | libc::PROT_WRITE);
    let mut regs = kvm_regs::default();
    let entries = page.addr() as *mut kvmng_state_entry;
    // SAFETY: the page holds one entry.
    unsafe { entries.write(entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &mut regs)) };
    page.protect(0, libc::PROT_READ);
    // SAFETY: the entries are readable but not writable, on purpose; the
    // entry names `regs`.
    let r = unsafe { b.vcpu_state(entries, 1, 0) };
    assert_eq!(support::errno(r), EFAULT);
}

#[test]
fn unreadable_memory_regions_are_efault() {
    let Some(env) = support::env("unreadable_memory_regions_are_efault") else {
        return;
    };
    let vm = vm(&env);
    let b = vm.backend();
    let mem = GuestMemory::new(0x10000).unwrap();
    let none = Pages::new(1, libc::PROT_NONE);
    for bad in [BAD_ADDR, munmapped_page(), none.addr()] {
        for count in [1, 2, 256] {
            // SAFETY: unreadable regions on purpose.
            let r = unsafe { b.memory_map(bad as *const _, count, 0) };
            assert_eq!(
                support::errno(r),
                EFAULT,
                "regions at {bad:#x}, count {count}"
            );
        }
    }

    // A readable first region (slot 5) and an unreadable second one:
    // EFAULT, and the map is unchanged (slot 5 was not created).
    let pages = Pages::new(2, libc::PROT_READ | libc::PROT_WRITE);
    pages.protect(1, libc::PROT_NONE);
    let size = size_of::<kvm_userspace_memory_region2>() as u64;
    let first = (pages.addr() + 4096 - size) as *mut kvm_userspace_memory_region2;
    // SAFETY: the last region-sized slot of the readable page.
    unsafe { first.write(MemoryRegion::of(5, 0x20_0000, &mem).to_kvm()) };
    // SAFETY: the second region is in the PROT_NONE page on purpose.
    let r = unsafe { b.memory_map(first, 2, 0) };
    assert_eq!(support::errno(r), EFAULT);
    assert_eq!(
        vm.memory_map(&[MemoryRegion::of(6, 0x20_0000, &mem)]),
        Ok(1),
        "slot 5 must not exist (it would overlap)"
    );
}

#[test]
fn a_failing_region_leaves_the_map_unchanged() {
    let Some(env) = support::env("a_failing_region_leaves_the_map_unchanged") else {
        return;
    };
    let mem: Vec<GuestMemory> = (0..4).map(|_| GuestMemory::new(0x10000).unwrap()).collect();
    let vm = vm(&env);
    for form in FORMS {
        a_failing_region_leaves_the_map_unchanged_in(form, &vm, &mem);
    }
}

fn a_failing_region_leaves_the_map_unchanged_in(form: Form, vm: &Vm<'_>, mem: &[GuestMemory]) {
    let b = vm.backend();
    let at = |slot: u32, gpa: u64, m: usize| MemoryRegion::of(slot, gpa, &mem[m]).to_kvm();
    let map = |regions: &[kvm_userspace_memory_region2]| {
        // SAFETY: the regions map `mem`, which outlives the VM's use of it.
        unsafe { map_in(form, b, regions, 0) }
    };
    // What KVM_SET_USER_MEMORY_REGION2 on the VM fd answers for one region
    // (only for regions it refuses: the map is not changed).
    let ioctl_answer = |region: kvm_userspace_memory_region2| {
        // SAFETY: one region struct on the stack.
        let r = unsafe {
            ioctl(
                vm.fd(),
                KVM_SET_USER_MEMORY_REGION2,
                &region as *const _ as u64,
            )
        };
        r.expect_err("a region KVM refuses")
    };
    assert_eq!(map(&[at(12, 0x10_0000, 0)]), Ok(1));

    // Delete slot 12, create 13, then 14 over 13: EEXIST, and slot 12 is
    // back while 13 is gone.
    let r = map(&[
        MemoryRegion::delete(12).to_kvm(),
        at(13, 0x20_0000, 1),
        at(14, 0x20_0000, 2),
    ]);
    assert_eq!(support::errno(r), libc::EEXIST);
    assert_eq!(
        ioctl_answer(at(15, 0x10_0000, 3)),
        libc::EEXIST,
        "slot 12 must exist again"
    );
    assert_eq!(map(&[at(13, 0x20_0000, 1)]), Ok(1), "slot 13 must be gone");

    // Regions KVM refuses after a good one: the ioctl's errno, and the good
    // one is undone.
    let misaligned = at(20, 0x40_0800, 2);
    let mut bad_flags = at(21, 0x40_0000, 2);
    bad_flags.flags = 1 << 20;
    let missing = MemoryRegion::delete(999).to_kvm();
    for bad in [misaligned, bad_flags, missing] {
        let expected = ioctl_answer(bad);
        let r = map(&[at(22, 0x30_0000, 3), bad]);
        assert_eq!(support::errno(r), expected, "slot {}", bad.slot);
        assert_eq!(
            map(&[at(23, 0x30_0000, 3), MemoryRegion::delete(23).to_kvm()]),
            Ok(2),
            "slot 22 must have been undone"
        );
    }
    // Empty again for the next form.
    assert_eq!(
        map(&[
            MemoryRegion::delete(12).to_kvm(),
            MemoryRegion::delete(13).to_kvm()
        ]),
        Ok(2)
    );
}

#[test]
fn control_answers_the_ioctls_efault_for_bad_pointers() {
    let Some(env) = support::env("control_answers_the_ioctls_efault_for_bad_pointers") else {
        return;
    };
    let vm = vm(&env);
    let vcpu = vm.create_bound_vcpu(0).unwrap();
    let b = vm.backend();
    let read_only = Pages::new(1, libc::PROT_READ);
    let cases = [
        (KVMNG_SCOPE_VCPU, KVM_GET_REGS, vcpu.fd()),
        (KVMNG_SCOPE_VCPU, KVM_SET_REGS, vcpu.fd()),
        (KVMNG_SCOPE_VCPU, KVM_GET_SREGS, vcpu.fd()),
        (KVMNG_SCOPE_VCPU, KVM_GET_MSRS, vcpu.fd()),
        (KVMNG_SCOPE_VM, KVM_SET_USER_MEMORY_REGION2, vm.fd()),
        (KVMNG_SCOPE_VM, KVM_GET_CLOCK, vm.fd()),
        // Its own path in the kernel (no kvm_vm_ioctl dispatch), whose
        // helper once took NULL for no argument (reliability.md item 24).
        (KVMNG_SCOPE_VM, KVM_IRQ_LINE, vm.fd()),
        (
            KVMNG_SCOPE_SYSTEM,
            KVM_GET_SUPPORTED_CPUID,
            env.kvm.kvm_fd(),
        ),
    ];
    for (scope, cmd, fd) in cases {
        let mut bad = vec![0, BAD_ADDR, munmapped_page()];
        if ioc_dir(cmd) == 2 {
            // The kernel only writes through it (_IOR): read-only memory is
            // bad too.
            bad.push(read_only.addr());
        }
        for arg in bad {
            // SAFETY: a bad pointer on purpose.
            let r = unsafe { b.control(scope, cmd as u32, arg, 0) };
            assert_eq!(
                support::errno(r),
                EFAULT,
                "scope {scope} cmd {cmd:#x} arg {arg:#x}"
            );
            // SAFETY: as above, on the fd of the same object.
            let raw = unsafe { ioctl(fd, cmd, arg) };
            assert_eq!(raw, Err(EFAULT), "ioctl {cmd:#x}");
        }
    }
}

/// `_IOC_DIR` of an ioctl number (1 = write, 2 = read).
fn ioc_dir(cmd: u64) -> u64 {
    (cmd >> 30) & 3
}

// ---------------------------------------------------------------- E2BIG

#[test]
fn more_than_64_state_entries_are_e2big_and_nothing_is_touched() {
    let Some(env) = support::env("more_than_64_state_entries_are_e2big_and_nothing_is_touched")
    else {
        return;
    };
    let vm = vm(&env);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let b = vm.backend();
    mark_rax(&mut vcpu, 0x4444);
    let mut regs = vcpu.regs().unwrap();
    regs.rax = 0x6565;
    let mut entries = vec![entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &mut regs); 65];
    for form in FORMS {
        // SAFETY: every entry names `regs`.
        let (r, results) = unsafe { batch(form, b, &mut entries) };
        assert_eq!(r, Err(Errno(E2BIG)), "{form:?}");
        assert_eq!(results, vec![UNTOUCHED; 65], "{form:?}: nothing is written");
        assert_eq!(rax(&mut vcpu), 0x4444, "{form:?}: nothing is executed");
    }
    // The count is checked before the array is read.
    for count in [65, 1000, u32::MAX] {
        // SAFETY: the call must fail before reading `entries`.
        let r = unsafe { b.vcpu_state(BAD_ADDR as *mut _, count, 0) };
        assert_eq!(support::errno(r), E2BIG, "count {count}");
    }
    // 64 is the limit, and allowed.
    for form in FORMS {
        mark_rax(&mut vcpu, 0x4444);
        let (r, results) = {
            let entries = &mut entries[..64];
            // SAFETY: every entry names `regs`.
            unsafe { batch(form, b, entries) }
        };
        assert_eq!((r, results), (Ok(64), vec![0; 64]), "{form:?}");
        assert_eq!(rax(&mut vcpu), 0x6565, "{form:?}");
    }
}

#[test]
fn more_than_256_regions_are_e2big() {
    let Some(env) = support::env("more_than_256_regions_are_e2big") else {
        return;
    };
    let vm = vm(&env);
    let b = vm.backend();
    let mem = GuestMemory::new(0x10000).unwrap();
    let regions = vec![MemoryRegion::of(7, 0x30_0000, &mem).to_kvm(); 257];
    for (addr, count) in [
        (regions.as_ptr(), 257),
        (BAD_ADDR as *const _, 257),
        (BAD_ADDR as *const _, u32::MAX),
    ] {
        // SAFETY: the call must fail before reading `regions`.
        let r = unsafe { b.memory_map(addr, count, 0) };
        assert_eq!(support::errno(r), E2BIG, "count {count}");
    }
    // SAFETY: as above.
    let r = unsafe { b.memory_map_regions(&regions, 0) };
    assert_eq!(support::errno(r), E2BIG, "slice form");
    assert_eq!(
        vm.memory_map(&[MemoryRegion::of(8, 0x30_0000, &mem)]),
        Ok(1),
        "slot 7 must not exist"
    );
}

fn msrs_buffer(n: usize) -> Vec<u64> {
    // Header (nmsrs, pad) then n entries of (index, reserved, data).
    let mut buf = vec![0u64; 1 + 2 * n];
    buf[0] = n as u64; // nmsrs in the low 32 bits
    for i in 0..n {
        buf[1 + 2 * i] = 0x174; // IA32_SYSENTER_CS
    }
    buf
}

#[test]
fn msr_and_cpuid_counts_beyond_their_buffer_or_kvms_limit() {
    let Some(env) = support::env("msr_and_cpuid_counts_beyond_their_buffer_or_kvms_limit") else {
        return;
    };
    let vm = vm(&env);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let b = vm.backend();
    let fd = vcpu.fd();

    // nmsrs >= 256 (MAX_IO_MSRS) with a big enough buffer: KVM's E2BIG,
    // as the ioctl on the vCPU fd answers; 255 is processed in full.
    for (n, expected) in [(256usize, Err(E2BIG)), (300, Err(E2BIG)), (255, Ok(255))] {
        for (form, op) in FORMS
            .into_iter()
            .flat_map(|f| [(f, KVMNG_STATE_GET), (f, KVMNG_STATE_SET)])
        {
            let mut buf = msrs_buffer(n);
            let mut e = [raw_entry(
                KVMNG_STATE_MSRS,
                op,
                buf.as_mut_ptr() as u64,
                (8 + 16 * n) as u32,
            )];
            // SAFETY: `buf` holds the header and `n` entries.
            let (r, results) = unsafe { batch(form, b, &mut e) };
            let cmd = if op == KVMNG_STATE_GET {
                KVM_GET_MSRS
            } else {
                KVM_SET_MSRS
            };
            let mut buf = msrs_buffer(n);
            // SAFETY: as above.
            let raw = unsafe { ioctl(fd, cmd, buf.as_mut_ptr() as u64) };
            assert_eq!(raw, expected, "ioctl nmsrs {n} op {op}");
            match expected {
                Ok(count) => assert_eq!((r, results), (Ok(1), vec![count])),
                Err(errno) => assert_eq!(
                    (r, results),
                    (Err(Errno(errno)), vec![-errno]),
                    "nmsrs {n} op {op} {form:?}"
                ),
            }
        }
    }

    // A buffer shorter than nmsrs entries: EINVAL, checked before KVM's
    // E2BIG, and nothing is read past the buffer. Likewise for nent.
    let mut buf = msrs_buffer(256);
    let mut cpuid = CpuId::new(4).unwrap();
    let cpuid_addr = cpuid.as_mut_fam_struct_ptr() as u64;
    for (kind, addr, size) in [
        (KVMNG_STATE_MSRS, buf.as_mut_ptr() as u64, 8 + 16 * 255),
        (KVMNG_STATE_MSRS, buf.as_mut_ptr() as u64, 8),
        (KVMNG_STATE_CPUID, cpuid_addr, 8 + 40 * 3),
        (KVMNG_STATE_CPUID, cpuid_addr, 8),
    ] {
        for (form, op) in FORMS
            .into_iter()
            .flat_map(|f| [(f, KVMNG_STATE_GET), (f, KVMNG_STATE_SET)])
        {
            mark_rax(&mut vcpu, 0x77);
            let mut regs = vcpu.regs().unwrap();
            regs.rax = 0x88;
            let mut e = [
                entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &mut regs),
                raw_entry(kind, op, addr, size),
                entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &mut regs),
            ];
            // SAFETY: the buffers are at least `size` bytes.
            let (r, results) = unsafe { batch(form, b, &mut e) };
            let what = format!("kind {kind} op {op} size {size} {form:?}");
            assert_eq!(r, Err(Errno(EINVAL)), "{what}");
            assert_eq!(results, failed_at(3, 1, EINVAL), "{what}");
            assert_eq!(rax(&mut vcpu), 0x88, "{what}: the first entry is done");
        }
    }

    // nmsrs = 0 with the minimum size: nothing to do, 0 processed.
    let mut buf = msrs_buffer(0);
    let mut e = [raw_entry(
        KVMNG_STATE_MSRS,
        KVMNG_STATE_GET,
        buf.as_mut_ptr() as u64,
        8,
    )];
    for form in FORMS {
        // SAFETY: `buf` is the 8-byte header.
        let (r, results) = unsafe { batch(form, b, &mut e) };
        assert_eq!((r, results), (Ok(1), vec![0]), "{form:?}");
    }
}

#[test]
fn an_xsave2_buffer_smaller_than_kvms_size_is_einval() {
    let Some(env) = support::env("an_xsave2_buffer_smaller_than_kvms_size_is_einval") else {
        return;
    };
    let vm = vm(&env);
    let _vcpu = vm.create_bound_vcpu(0).unwrap();
    let b = vm.backend();
    let size = vm.check_extension(KVM_CAP_XSAVE2).unwrap() as usize;
    let mut buf = vec![0u32; size.max(4096) / 4 + 1];
    let addr = buf.as_mut_ptr() as u64;
    // Below the static minimum (4096): validation.
    let mut e = [raw_entry(KVMNG_STATE_XSAVE2, KVMNG_STATE_GET, addr, 4095)];
    for form in FORMS {
        // SAFETY: `buf` is larger than the size given.
        let (r, results) = unsafe { batch(form, b, &mut e) };
        assert_eq!(
            (r, results),
            (Err(Errno(EINVAL)), vec![-EINVAL]),
            "{form:?}"
        );
    }
    if size > 4096 {
        // Above the static minimum but below KVM_CAP_XSAVE2: EINVAL when
        // executed.
        let mut e = [raw_entry(KVMNG_STATE_XSAVE2, KVMNG_STATE_GET, addr, 4096)];
        for form in FORMS {
            // SAFETY: as above.
            let (r, results) = unsafe { batch(form, b, &mut e) };
            assert_eq!(
                (r, results),
                (Err(Errno(EINVAL)), vec![-EINVAL]),
                "{form:?}"
            );
        }
    }
    // Exactly the size works.
    let mut e = [raw_entry(
        KVMNG_STATE_XSAVE2,
        KVMNG_STATE_GET,
        addr,
        size.max(4096) as u32,
    )];
    for form in FORMS {
        // SAFETY: as above.
        let (r, results) = unsafe { batch(form, b, &mut e) };
        assert_eq!((r, results), (Ok(1), vec![0]), "{form:?}");
    }
}

// ---------------------------------------------------------------- validation

#[test]
fn an_invalid_entry_means_nothing_is_executed() {
    let Some(env) = support::env("an_invalid_entry_means_nothing_is_executed") else {
        return;
    };
    let vm = vm(&env);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    let b = vm.backend();
    mark_rax(&mut vcpu, 0x4321);
    let template = vcpu.regs().unwrap();
    let mut scratch = vec![0u8; 8192];
    let s = scratch.as_mut_ptr() as u64;
    let regs_size = size_of::<kvm_regs>() as u32;
    let invalid = [
        ("kind 0", raw_entry(0, KVMNG_STATE_GET, s, 4096)),
        (
            "kind 15",
            raw_entry(KVMNG_STATE_KIND_MAX + 1, KVMNG_STATE_GET, s, 4096),
        ),
        (
            "kind u32::MAX",
            raw_entry(u32::MAX, KVMNG_STATE_GET, s, 4096),
        ),
        ("op 0", raw_entry(KVMNG_STATE_REGS, 0, s, regs_size)),
        ("op 3", raw_entry(KVMNG_STATE_REGS, 3, s, regs_size)),
        (
            "op u32::MAX",
            raw_entry(KVMNG_STATE_REGS, u32::MAX, s, regs_size),
        ),
        (
            "regs size 143",
            raw_entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, s, 143),
        ),
        (
            "regs size 0",
            raw_entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, s, 0),
        ),
        (
            "sregs size 311",
            raw_entry(KVMNG_STATE_SREGS, KVMNG_STATE_GET, s, 311),
        ),
        (
            "sregs2 size 319",
            raw_entry(KVMNG_STATE_SREGS2, KVMNG_STATE_GET, s, 319),
        ),
        (
            "fpu size 415",
            raw_entry(KVMNG_STATE_FPU, KVMNG_STATE_GET, s, 415),
        ),
        (
            "xsave size 4095",
            raw_entry(KVMNG_STATE_XSAVE, KVMNG_STATE_GET, s, 4095),
        ),
        (
            "xcrs size 391",
            raw_entry(KVMNG_STATE_XCRS, KVMNG_STATE_GET, s, 391),
        ),
        (
            "msrs size 7",
            raw_entry(KVMNG_STATE_MSRS, KVMNG_STATE_GET, s, 7),
        ),
        (
            "lapic size 1023",
            raw_entry(KVMNG_STATE_LAPIC, KVMNG_STATE_GET, s, 1023),
        ),
        (
            "events size 63",
            raw_entry(KVMNG_STATE_EVENTS, KVMNG_STATE_GET, s, 63),
        ),
        (
            "mp_state size 3",
            raw_entry(KVMNG_STATE_MP_STATE, KVMNG_STATE_GET, s, 3),
        ),
        (
            "debugregs size 127",
            raw_entry(KVMNG_STATE_DEBUGREGS, KVMNG_STATE_GET, s, 127),
        ),
        (
            "cpuid size 7",
            raw_entry(KVMNG_STATE_CPUID, KVMNG_STATE_GET, s, 7),
        ),
        (
            "one_reg size 15",
            raw_entry(KVMNG_STATE_ONE_REG, KVMNG_STATE_GET, s, 15),
        ),
        // Validation does not look at `addr`: invalid wins over EFAULT.
        (
            "kind 99 at address 8",
            raw_entry(99, KVMNG_STATE_GET, BAD_ADDR, 4096),
        ),
    ];
    for (form, (what, bad)) in FORMS
        .into_iter()
        .flat_map(|form| invalid.iter().map(move |&i| (form, i)))
    {
        for position in 0..3 {
            let mut first = kvm_regs {
                rax: 0xaaaa,
                ..template
            };
            let mut got = kvm_regs {
                rax: 0x5a5a,
                ..Default::default()
            };
            let mut entries = vec![
                entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &mut first),
                entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &mut got),
                // A bad buffer: were it executed, it would be EFAULT.
                raw_entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, BAD_ADDR, regs_size),
            ];
            entries.insert(position, bad);
            scratch.fill(0xee);
            // SAFETY: the entries name live buffers, or bad addresses on
            // purpose.
            let (r, results) = unsafe { batch(form, b, &mut entries) };
            let what = format!("{what} at {position}, {form:?}");
            assert_eq!(r, Err(Errno(EINVAL)), "{what}");
            assert_eq!(results, invalid_at(4, position), "{what}");
            assert_eq!(rax(&mut vcpu), 0x4321, "{what}: the SET must not run");
            assert_eq!(got.rax, 0x5a5a, "{what}: the GET must not run");
            assert!(scratch.iter().all(|&x| x == 0xee), "{what}: buffer written");
        }
    }
}

// ---------------------------------------------------------------- counts

#[test]
fn count_zero_returns_zero_once_bound() {
    let Some(env) = support::env("count_zero_returns_zero_once_bound") else {
        return;
    };
    let b = env.kvm.backend();
    assert_nothing_bound(b);
    // The binding is checked before the count.
    // SAFETY: count 0: nothing is read.
    let r = unsafe { b.vcpu_state(BAD_ADDR as *mut _, 0, 0) };
    assert_eq!(support::errno(r), ESRCH);
    // SAFETY: as above.
    let r = unsafe { b.vcpu_state(BAD_ADDR as *mut _, 65, 0) };
    assert_eq!(support::errno(r), ESRCH, "ESRCH before E2BIG");
    // SAFETY: as above.
    let r = unsafe { b.memory_map(BAD_ADDR as *const _, 0, 0) };
    assert_eq!(support::errno(r), EUNATCH);
    // SAFETY: as above.
    let r = unsafe { b.memory_map(BAD_ADDR as *const _, 257, 0) };
    assert_eq!(support::errno(r), EUNATCH, "EUNATCH before E2BIG");
    // The slice forms check in the same order.
    // SAFETY: nothing is read.
    let r = unsafe { b.vcpu_state_entries(&mut [], 0) };
    assert_eq!(support::errno(r), ESRCH, "slice form");
    let many = vec![kvmng_state_entry::default(); 65];
    let mut many_copy = many.clone();
    // SAFETY: the entries name no buffer (kind 0), and nothing is read.
    let r = unsafe { b.vcpu_state_entries(&mut many_copy, 0) };
    assert_eq!(support::errno(r), ESRCH, "slice form: ESRCH before E2BIG");
    assert_eq!(many_copy, many, "slice form: nothing written");
    // SAFETY: nothing is read.
    let r = unsafe { b.memory_map_regions(&[], 0) };
    assert_eq!(support::errno(r), EUNATCH, "slice form");
    let regions = vec![kvm_userspace_memory_region2::default(); 257];
    // SAFETY: nothing is read.
    let r = unsafe { b.memory_map_regions(&regions, 0) };
    assert_eq!(
        support::errno(r),
        EUNATCH,
        "slice form: EUNATCH before E2BIG"
    );

    let vm = vm(&env);
    // SAFETY: as above.
    let r = unsafe { b.memory_map(BAD_ADDR as *const _, 0, 0) };
    assert_eq!(r, Ok(0));
    // SAFETY: as above.
    let r = unsafe { b.memory_map(core::ptr::null(), 0, 0) };
    assert_eq!(r, Ok(0));
    // SAFETY: as above.
    let r = unsafe { b.memory_map_regions(&[], 0) };
    assert_eq!(r, Ok(0), "slice form");
    // SAFETY: as above.
    let r = unsafe { b.vcpu_state(BAD_ADDR as *mut _, 0, 0) };
    assert_eq!(support::errno(r), ESRCH, "a bound VM is not a bound vCPU");
    let _vcpu = vm.create_bound_vcpu(0).unwrap();
    // SAFETY: as above.
    let r = unsafe { b.vcpu_state(BAD_ADDR as *mut _, 0, 0) };
    assert_eq!(r, Ok(0));
    // SAFETY: as above.
    let r = unsafe { b.vcpu_state(core::ptr::null_mut(), 0, 0) };
    assert_eq!(r, Ok(0));
    // SAFETY: as above.
    let r = unsafe { b.vcpu_state_entries(&mut [], 0) };
    assert_eq!(r, Ok(0), "slice form");
}

// ---------------------------------------------------------------- irq

#[test]
fn irq_with_an_unknown_kind_or_a_nonzero_argument_is_einval() {
    let Some(env) = support::env("irq_with_an_unknown_kind_or_a_nonzero_argument_is_einval") else {
        return;
    };
    let b = env.kvm.backend();
    let bad: Vec<(u32, u32, u32)> = vec![
        (0, 0, 0),
        (KVMNG_IRQ_SMI + 1, 0, 0),
        (99, 1, 1),
        (u32::MAX, 0, 0),
        (KVMNG_IRQ_NMI, 1, 0),
        (KVMNG_IRQ_NMI, 2, 0),
        (KVMNG_IRQ_NMI, 0, 1),
        (KVMNG_IRQ_NMI, u32::MAX, u32::MAX),
        (KVMNG_IRQ_SMI, 1, 0),
        (KVMNG_IRQ_SMI, 0, 1),
        (KVMNG_IRQ_INTERRUPT, 0x20, 1),
        (KVMNG_IRQ_INTERRUPT, 0x20, u32::MAX),
    ];
    // Nothing bound: the argument check comes before EUNATCH/ESRCH.
    assert_nothing_bound(b);
    for &(kind, nr, level) in &bad {
        assert_eq!(
            support::errno(b.irq(kind, nr, level, 0)),
            EINVAL,
            "kind {kind} nr {nr} level {level}"
        );
    }
    assert_eq!(support::errno(b.irq(KVMNG_IRQ_NMI, 0, 0, 0)), ESRCH);
    assert_eq!(support::errno(b.irq(KVMNG_IRQ_LINE, 4, 1, 0)), EUNATCH);

    // Bound: still EINVAL, and nothing is injected.
    let vm = vm(&env);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    for &(kind, nr, level) in &bad {
        assert_eq!(
            support::errno(b.irq(kind, nr, level, 0)),
            EINVAL,
            "kind {kind} nr {nr} level {level}"
        );
    }
    let mut events = kvm_vcpu_events::default();
    vcpu.get_state(&mut [StateItem::Events(&mut events)])
        .unwrap();
    assert_eq!(
        (
            events.nmi.pending,
            events.smi.pending,
            events.interrupt.injected
        ),
        (0, 0, 0)
    );
    // And the valid forms get through (the NMI is then pending).
    assert_eq!(b.irq(KVMNG_IRQ_NMI, 0, 0, 0), Ok(0));
    vcpu.get_state(&mut [StateItem::Events(&mut events)])
        .unwrap();
    assert_eq!(events.nmi.pending, 1);
}

// ---------------------------------------------------------------- control

#[test]
fn control_with_an_unknown_scope_is_einval() {
    let Some(env) = support::env("control_with_an_unknown_scope_is_einval") else {
        return;
    };
    let b = env.kvm.backend();
    let scopes = [KVMNG_SCOPE_VCPU + 1, 7, 1 << 31, u32::MAX];
    assert_nothing_bound(b);
    for scope in scopes {
        // SAFETY: an unknown scope: nothing is issued.
        let r = unsafe { b.control(scope, KVM_GET_API_VERSION as u32, 0, 0) };
        assert_eq!(support::errno(r), EINVAL, "scope {scope} before EUNATCH");
    }
    // SAFETY: integer ioctls.
    unsafe {
        let cmd = KVM_GET_API_VERSION as u32;
        assert_eq!(
            support::errno(b.control(KVMNG_SCOPE_SYSTEM, cmd, 0, 0)),
            EUNATCH
        );
        assert_eq!(
            support::errno(b.control(KVMNG_SCOPE_VM, cmd, 0, 0)),
            EUNATCH
        );
        assert_eq!(
            support::errno(b.control(KVMNG_SCOPE_VCPU, cmd, 0, 0)),
            ESRCH
        );
    }
    let vm = vm(&env);
    let mut vcpu = vm.create_bound_vcpu(0).unwrap();
    mark_rax(&mut vcpu, 0x99);
    for scope in scopes {
        // SAFETY: an unknown scope: nothing is issued (were it, the NULL
        // argument would be EFAULT).
        let r = unsafe { b.control(scope, KVM_SET_REGS as u32, 0, 0) };
        assert_eq!(support::errno(r), EINVAL, "scope {scope}");
    }
    assert_eq!(rax(&mut vcpu), 0x99);
    // SAFETY: an integer ioctl.
    let version = unsafe { b.control(KVMNG_SCOPE_SYSTEM, KVM_GET_API_VERSION as u32, 0, 0) };
    assert_eq!(version, Ok(12));
}

// ---------------------------------------------------------------- survival

#[test]
fn bad_input_leaves_kvmng_working() {
    let Some(env) = support::env("bad_input_leaves_kvmng_working") else {
        return;
    };
    let b = env.kvm.backend();
    let none = Pages::new(1, libc::PROT_NONE);
    {
        let vm = vm(&env);
        // (KVM_GET_LAPIC answers EINVAL before looking at its argument
        // when there is no in-kernel LAPIC.)
        vm.create_irqchip().unwrap();
        let vcpu = vm.create_bound_vcpu(0).unwrap();
        for bad in [
            BAD_ADDR,
            none.addr(),
            munmapped_page(),
            u64::MAX - 7,
            1 << 63,
        ] {
            for form in FORMS {
                let mut e = [raw_entry(KVMNG_STATE_LAPIC, KVMNG_STATE_GET, bad, 1024)];
                // SAFETY: bad addresses on purpose.
                let (r, results) = unsafe { batch(form, b, &mut e) };
                assert_eq!(
                    (r, results),
                    (Err(Errno(EFAULT)), vec![-EFAULT]),
                    "{bad:#x} {form:?}"
                );
            }
            // SAFETY: as above.
            assert_eq!(unsafe { ioctl(vcpu.fd(), KVM_GET_LAPIC, bad) }, Err(EFAULT));
            // SAFETY: as above.
            let r = unsafe { b.vcpu_state(bad as *mut _, 3, 0) };
            assert_eq!(support::errno(r), EFAULT, "{bad:#x}");
            // SAFETY: as above.
            let r = unsafe { b.memory_map(bad as *const _, 3, 0) };
            assert_eq!(support::errno(r), EFAULT, "{bad:#x}");
            // SAFETY: as above.
            let r = unsafe { b.control(KVMNG_SCOPE_VCPU, KVM_GET_FPU as u32, bad, 0) };
            assert_eq!(support::errno(r), EFAULT, "{bad:#x}");
        }
    }
    assert_nothing_bound(b);
    // A guest still runs to HLT through the library.
    let guest = kvmng_guests::by_name("real_pio").expect("guest real_pio");
    let gvm = kvmng_guests::boot::GuestVm::new(&env.kvm, guest).unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    let t = kvmng_guests::boot::run_to_halt(&mut vcpu, 0, 1000).unwrap();
    assert_eq!(t.console, kvmng_guests::REAL_PIO_TEXT);
    assert_eq!(t.reports, [kvmng_guests::REAL_PIO_REPORT]);
}
