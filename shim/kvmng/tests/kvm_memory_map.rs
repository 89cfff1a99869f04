//! kvmng_memory_map: several slots replaced at once, observed by a guest
//! that checks the two slots always agree; and all-or-nothing failure.

mod support;

use kvmng::{GuestMemory, MemoryRegion, VcpuExit};
use kvmng_guests::boot::GuestVm;
use kvmng_guests::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SLOT_A: u32 = 1;
const SLOT_B: u32 = 2;

/// What the map_check guest reported.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// It stopped when told, never having seen A and B disagree.
    Done,
    /// It saw A and B disagree (the low 32 bits of A).
    Torn(u32),
    /// It read A or B while the slot was missing.
    SawMissingSlot(u64),
}

/// A pair of slot backings whose first qwords both hold `value`.
fn pair(value: u64) -> (GuestMemory, GuestMemory) {
    let a = GuestMemory::new(SLOT_SIZE as usize).unwrap();
    let b = GuestMemory::new(SLOT_SIZE as usize).unwrap();
    a.write_u64_volatile(0, value);
    b.write_u64_volatile(0, value);
    (a, b)
}

/// The signal mask the vCPU thread runs with, as real VMMs set it.
#[derive(Clone, Copy, Debug)]
enum Masks {
    /// Nothing blocked (the test harness's default).
    Open,
    /// QEMU with `KVM_CAP_IMMEDIATE_EXIT`: every signal but its IPI signal
    /// (here SIGUSR1) blocked in the thread, no KVM signal mask.
    ThreadBlocksAllButIpi,
    /// QEMU without it: every signal blocked in the thread, and
    /// `KVM_SET_SIGNAL_MASK` lets only the IPI signal through in KVM_RUN.
    KvmMaskAllowsOnlyIpi,
}

/// Applies `masks` to the calling (vCPU) thread and its bound `vcpu`.
fn apply_masks(masks: Masks, vcpu: &mut kvmng::BoundVcpu<'_>) {
    // SAFETY: sigset_t operations on local sets; pthread_sigmask of the
    // calling thread.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut but_ipi = all;
        libc::sigdelset(&mut but_ipi, libc::SIGUSR1);
        match masks {
            Masks::Open => {}
            Masks::ThreadBlocksAllButIpi => {
                libc::pthread_sigmask(libc::SIG_SETMASK, &but_ipi, std::ptr::null_mut());
            }
            Masks::KvmMaskAllowsOnlyIpi => {
                libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
                // struct kvm_signal_mask { __u32 len; __u8 sigset[8]; }
                let mut arg = [0u8; 12];
                arg[..4].copy_from_slice(&8u32.to_ne_bytes());
                let words = (&but_ipi as *const libc::sigset_t).cast::<u64>().read();
                arg[4..].copy_from_slice(&words.to_ne_bytes());
                let set = vcpu.control(kvmng_abi::ioctls::KVM_SET_SIGNAL_MASK, arg.as_ptr() as u64);
                assert_eq!(set, Ok(0), "KVM_SET_SIGNAL_MASK");
            }
        }
    }
}

/// Swaps slots A and B between two pairs `swaps` times while the guest
/// checks them; `atomic` does each swap in one kvmng_memory_map call, else
/// in four calls. Returns the verdict and how far the guest's loop counter
/// advanced during the swaps.
fn swap_while_guest_checks(env: &support::Env, swaps: usize, atomic: bool) -> (Verdict, u64) {
    swap_while_guest_checks_masked(env, swaps, atomic, Masks::Open)
}

/// [`swap_while_guest_checks`] with the vCPU thread's signal masks set as
/// `masks` says.
fn swap_while_guest_checks_masked(
    env: &support::Env,
    swaps: usize,
    atomic: bool,
    masks: Masks,
) -> (Verdict, u64) {
    let gvm = GuestVm::new(&env.kvm, by_name("map_check").unwrap()).unwrap();
    let pairs = [pair(0x1111), pair(0x2222)];
    let map = |p: &(GuestMemory, GuestMemory)| {
        [
            MemoryRegion::of(SLOT_A, SLOT_A_GPA, &p.0),
            MemoryRegion::of(SLOT_B, SLOT_B_GPA, &p.1),
        ]
    };
    gvm.vm.memory_map(&map(&pairs[0])).unwrap();
    let started = AtomicBool::new(false);
    std::thread::scope(|s| {
        let guest = s.spawn(|| {
            let mut vcpu = gvm.boot_vcpu().unwrap();
            apply_masks(masks, &mut vcpu);
            started.store(true, Ordering::SeqCst);
            match vcpu.run().unwrap() {
                VcpuExit::IoOut { port, .. } if port == DONE_PORT => Verdict::Done,
                VcpuExit::IoOut { port, data, .. } if port == FAIL_PORT => {
                    Verdict::Torn(u32::from_le_bytes(data[..4].try_into().unwrap()))
                }
                VcpuExit::MmioRead { addr, .. } => Verdict::SawMissingSlot(addr),
                other => panic!("unexpected exit {other:?}"),
            }
        });
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let counter = |gvm: &GuestVm| gvm.low.read_u64_volatile(COUNTER_GPA as usize);
        // Let the guest get going before the first swap.
        let deadline = Instant::now() + Duration::from_secs(10);
        while counter(&gvm) == 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let before = counter(&gvm);
        for i in 1..=swaps {
            // Every update brings a value never used before (see the guest).
            let incoming = &pairs[i % 2];
            incoming.0.write_u64_volatile(0, 0x1000 + i as u64);
            incoming.1.write_u64_volatile(0, 0x1000 + i as u64);
            let next = map(incoming);
            let replace = [
                MemoryRegion::delete(SLOT_A),
                MemoryRegion::delete(SLOT_B),
                next[0],
                next[1],
            ];
            if atomic {
                assert_eq!(gvm.vm.memory_map(&replace), Ok(4));
            } else {
                for region in replace {
                    assert_eq!(gvm.vm.memory_map(&[region]), Ok(1));
                }
            }
            if guest.is_finished() {
                break;
            }
            // Let the guest run its loop again before the next swap, so
            // every swap lands on a running guest.
            let seen = counter(&gvm);
            let deadline = Instant::now() + Duration::from_secs(2);
            while counter(&gvm) == seen && !guest.is_finished() && Instant::now() < deadline {
                std::thread::yield_now();
            }
        }
        let advanced = counter(&gvm) - before;
        gvm.low.write_u64_volatile(STOP_FLAG_GPA as usize, 1);
        (guest.join().unwrap(), advanced)
    })
}

#[test]
fn an_atomic_replacement_of_two_slots_is_never_seen_half_done() {
    let Some(env) = support::env("an_atomic_replacement_of_two_slots_is_never_seen_half_done")
    else {
        return;
    };
    let (verdict, advanced) = swap_while_guest_checks(&env, 300, true);
    assert_eq!(verdict, Verdict::Done);
    assert!(
        advanced >= 300,
        "the guest must run between every two swaps (advanced {advanced})"
    );
    eprintln!("atomic: guest loop advanced {advanced} iterations across 300 swaps");
}

/// Runs the atomic swap with the vCPU thread masked as `masks`: the update
/// must hold the vCPU whatever mask the program runs with (a kick the
/// thread blocks used to leave it running through a half-done update after
/// a 2 s wait).
fn atomic_swap_holds_a_masked_vcpu(name: &str, masks: Masks) {
    let Some(env) = support::env(name) else {
        return;
    };
    let started = Instant::now();
    let (verdict, advanced) = swap_while_guest_checks_masked(&env, 100, true, masks);
    assert_eq!(verdict, Verdict::Done, "{masks:?}");
    assert!(advanced >= 100, "{masks:?}: the guest advanced {advanced}");
    eprintln!(
        "{masks:?}: 100 atomic swaps held the vCPU in {:?}",
        started.elapsed()
    );
}

#[test]
fn an_atomic_replacement_holds_a_vcpu_whose_thread_blocks_the_kick() {
    atomic_swap_holds_a_masked_vcpu(
        "an_atomic_replacement_holds_a_vcpu_whose_thread_blocks_the_kick",
        Masks::ThreadBlocksAllButIpi,
    );
}

#[test]
fn an_atomic_replacement_holds_a_vcpu_whose_kvm_mask_blocks_the_kick() {
    atomic_swap_holds_a_masked_vcpu(
        "an_atomic_replacement_holds_a_vcpu_whose_kvm_mask_blocks_the_kick",
        Masks::KvmMaskAllowsOnlyIpi,
    );
}

#[test]
fn the_same_swap_done_slot_by_slot_is_seen_half_done() {
    // The control experiment: it shows the guest can observe a torn
    // update, so the atomic test above is not passing by luck.
    let Some(env) = support::env("the_same_swap_done_slot_by_slot_is_seen_half_done") else {
        return;
    };
    let (verdict, _) = swap_while_guest_checks(&env, 300, false);
    assert_ne!(
        verdict,
        Verdict::Done,
        "300 non-atomic swaps were never observed"
    );
    eprintln!("non-atomic: {verdict:?}");
}

#[test]
fn a_failing_region_leaves_the_map_as_it_was() {
    let Some(env) = support::env("a_failing_region_leaves_the_map_as_it_was") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, by_name("real_pio").unwrap()).unwrap();
    let (a, b) = pair(7);
    let region_a = MemoryRegion::of(SLOT_A, SLOT_A_GPA, &a);
    // Slot B overlaps the low memory slot: KVM answers EEXIST for it.
    let overlapping = MemoryRegion::of(SLOT_B, 0, &b);
    assert_eq!(
        support::errno(gvm.vm.memory_map(&[region_a, overlapping])),
        libc::EEXIST
    );
    // Slot A was created and then taken back: its range is free again.
    let elsewhere = MemoryRegion {
        slot: 7,
        ..region_a
    };
    assert_eq!(
        gvm.vm.memory_map(&[elsewhere]),
        Ok(1),
        "slot A's range must be free"
    );
    assert_eq!(gvm.vm.memory_map(&[MemoryRegion::delete(7)]), Ok(1));

    // A flag change undone: slot A with dirty logging, then a bad region.
    assert_eq!(gvm.vm.memory_map(&[region_a]), Ok(1));
    let logging = MemoryRegion {
        flags: kvm_bindings::KVM_MEM_LOG_DIRTY_PAGES,
        ..region_a
    };
    let misaligned = MemoryRegion {
        guest_phys_addr: 0x123,
        ..MemoryRegion::of(9, 0, &b)
    };
    assert_eq!(
        support::errno(gvm.vm.memory_map(&[logging, misaligned])),
        libc::EINVAL
    );
    let mut bitmap = vec![0u64; (SLOT_SIZE / 4096 / 64) as usize];
    let mut log = kvm_bindings::kvm_dirty_log {
        slot: SLOT_A,
        ..Default::default()
    };
    log.__bindgen_anon_1.dirty_bitmap = bitmap.as_mut_ptr().cast();
    // SAFETY: the dirty log struct and its bitmap are live for the call.
    let r = unsafe {
        kvmng::sys::ioctl(
            gvm.vm.fd(),
            kvmng_abi::ioctls::KVM_GET_DIRTY_LOG,
            &log as *const _ as u64,
        )
    };
    assert_eq!(
        r,
        Err(kvmng::Errno(libc::ENOENT)),
        "dirty logging must be off again after the rollback"
    );
    // And the swap-in-one-call case works: delete and recreate over the
    // same range in one call.
    let (c, _d) = pair(9);
    assert_eq!(
        gvm.vm.memory_map(&[
            MemoryRegion::delete(SLOT_A),
            MemoryRegion::of(SLOT_A, SLOT_A_GPA, &c)
        ]),
        Ok(2)
    );
    assert_eq!(gvm.vm.memory_map(&[]), Ok(0));
}
