//! Real guests through the kvmng library: real mode and 64-bit long mode,
//! port I/O, MMIO and HLT.

mod support;

use kvmng_guests::boot::{run_to_halt, GuestVm};
use kvmng_guests::*;

const ANSWER: u64 = 0xCAFE_BABE;

fn guest(name: &str) -> &'static Guest {
    by_name(name).unwrap_or_else(|| panic!("guest {name} missing"))
}

#[test]
fn real_mode_port_io_and_hlt() {
    let Some(env) = support::env("real_mode_port_io_and_hlt") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("real_pio")).unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    let t = run_to_halt(&mut vcpu, ANSWER, 1000).unwrap();
    assert_eq!(t.console, REAL_PIO_TEXT);
    assert_eq!(t.reports, [REAL_PIO_REPORT]);
    assert!(t.mmio_writes.is_empty() && t.mmio_reads.is_empty());
}

#[test]
fn real_mode_mmio() {
    let Some(env) = support::env("real_mode_mmio") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("real_mmio")).unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    let t = run_to_halt(&mut vcpu, ANSWER, 1000).unwrap();
    assert_eq!(
        t.mmio_writes,
        [(MMIO_REAL, REAL_MMIO_WRITE.to_le_bytes().to_vec())]
    );
    assert_eq!(t.mmio_reads, [MMIO_REAL + MMIO_READ_OFFSET]);
    assert_eq!(
        t.reports,
        [ANSWER as u32],
        "the MMIO read data must reach the guest"
    );
}

#[test]
fn long_mode_port_io_and_hlt() {
    let Some(env) = support::env("long_mode_port_io_and_hlt") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("long_pio")).unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    let t = run_to_halt(&mut vcpu, ANSWER, 1000).unwrap();
    assert_eq!(t.console, LONG_PIO_TEXT);
    assert_eq!(t.reports, [LONG_PIO_REPORT]);
    let sregs = vcpu.sregs().unwrap();
    assert_ne!(
        sregs.efer & (1 << 10),
        0,
        "EFER.LMA: the guest ran in long mode"
    );
}

#[test]
fn long_mode_mmio() {
    let Some(env) = support::env("long_mode_mmio") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("long_mmio")).unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    let t = run_to_halt(&mut vcpu, ANSWER, 1000).unwrap();
    assert_eq!(
        t.mmio_writes,
        [(MMIO_LONG, LONG_MMIO_WRITE.to_le_bytes().to_vec())]
    );
    assert_eq!(t.mmio_reads, [MMIO_LONG + MMIO_READ_OFFSET]);
    assert_eq!(t.reports, [ANSWER as u32]);
}

#[test]
fn a_vcpu_created_on_one_thread_runs_on_another() {
    let Some(env) = support::env("a_vcpu_created_on_one_thread_runs_on_another") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("real_pio")).unwrap();
    // Set the vCPU up here, unbind, and let another thread bind and run it.
    let vcpu = gvm.boot_vcpu().unwrap().unbind().unwrap();
    let t = std::thread::scope(|s| {
        s.spawn(move || {
            let mut bound = vcpu.bind().map_err(|(_, e)| e).unwrap();
            run_to_halt(&mut bound, ANSWER, 1000)
        })
        .join()
        .unwrap()
    })
    .unwrap();
    assert_eq!(t.console, REAL_PIO_TEXT);
}

#[test]
fn the_pio_loop_counts_up_exit_after_exit() {
    let Some(env) = support::env("the_pio_loop_counts_up_exit_after_exit") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("pio_loop")).unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    let mut values = Vec::new();
    for _ in 0..100 {
        match vcpu.run().unwrap() {
            kvmng::VcpuExit::IoOut { port, data, .. } if port == REPORT_PORT => {
                values.push(u32::from_le_bytes(data[..4].try_into().unwrap()))
            }
            other => panic!("unexpected exit {other:?}"),
        }
    }
    assert!(
        values.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{values:?}"
    );
}
