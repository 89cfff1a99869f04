//! Interrupt injection through kvmng_irq, observed by the guest's handlers.

mod support;

use kvmng::VcpuExit;
use kvmng_guests::boot::GuestVm;
use kvmng_guests::*;
use std::sync::mpsc;
use std::time::Duration;

/// How long a vCPU may stay in the kernel before the test gives up.
const WATCHDOG: Duration = Duration::from_secs(20);

/// The next exit as (port, value) for port writes, panicking on others.
fn next_out(vcpu: &mut kvmng::BoundVcpu<'_>) -> (u16, u32) {
    match vcpu.run().expect("kvmng_run") {
        VcpuExit::IoOut { port, data, .. } => {
            let mut bytes = [0u8; 4];
            bytes[..data.len().min(4)].copy_from_slice(&data[..data.len().min(4)]);
            (port, u32::from_le_bytes(bytes))
        }
        other => panic!("expected a port write, got {other:?}"),
    }
}

#[test]
fn injected_interrupt_and_nmi_reach_the_guest_handlers() {
    let Some(env) = support::env("injected_interrupt_and_nmi_reach_the_guest_handlers") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, by_name("irq_real").unwrap()).unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    assert_eq!(next_out(&mut vcpu), (REPORT_PORT, IRQ_READY));

    // Run until the guest can take an interrupt (it does `sti; hlt`).
    for attempt in 0.. {
        let run = vcpu.run_page();
        if run.ready_for_interrupt_injection != 0 && run.if_flag != 0 {
            run.request_interrupt_window = 0;
            break;
        }
        assert!(attempt < 10, "no interrupt window opened");
        run.request_interrupt_window = 1;
        let exit = vcpu.run().unwrap();
        assert!(
            matches!(exit, VcpuExit::IrqWindowOpen | VcpuExit::Hlt),
            "{exit:?}"
        );
    }

    vcpu.interrupt(u32::from(IRQ_REAL_VECTOR)).unwrap();
    assert_eq!(next_out(&mut vcpu), (IRQ_PORT, u32::from(IRQ_REAL_VECTOR)));
    assert_eq!(
        vcpu.run().unwrap(),
        VcpuExit::Hlt,
        "the handler returned to the hlt loop"
    );

    vcpu.nmi().unwrap();
    assert_eq!(next_out(&mut vcpu), (NMI_PORT, 2));
    assert_eq!(vcpu.run().unwrap(), VcpuExit::Hlt);

    // KVM_INTERRUPT has no meaning with an in-kernel irqchip, and the line
    // has no meaning without one: both give KVM's ENXIO through kvmng.
    assert_eq!(
        support::errno(gvm.vm.irq_line(IRQ_PIC_GSI, true)),
        libc::ENXIO
    );
    assert_eq!(
        support::errno(vcpu.interrupt(256)),
        libc::EINVAL,
        "vector out of range"
    );
}

#[test]
fn an_irq_line_raised_from_another_thread_wakes_the_halted_guest() {
    let Some(env) = support::env("an_irq_line_raised_from_another_thread_wakes_the_halted_guest")
    else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, by_name("irq_pic").unwrap()).unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (seen_tx, seen_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut vcpu = gvm.boot_vcpu().unwrap();
            ready_tx.send(next_out(&mut vcpu)).unwrap();
            // Twice: the second interrupt also proves the handler's EOI
            // reached the in-kernel PIC. The guest then blocks in HLT in
            // the kernel; the thread leaves it there unbound.
            for _ in 0..2 {
                seen_tx.send(next_out(&mut vcpu)).unwrap();
            }
        });
        let watchdog = |what: &str, rx: &mpsc::Receiver<(u16, u32)>| {
            rx.recv_timeout(WATCHDOG).unwrap_or_else(|e| {
                eprintln!("FAILED: {what}: no exit within {WATCHDOG:?} ({e})");
                std::process::exit(1)
            })
        };
        assert_eq!(
            watchdog("ready report", &ready_rx),
            (REPORT_PORT, IRQ_READY)
        );
        for round in 1..=2 {
            gvm.vm.irq_line(IRQ_PIC_GSI, true).unwrap();
            gvm.vm.irq_line(IRQ_PIC_GSI, false).unwrap();
            assert_eq!(
                watchdog("interrupt handler", &seen_rx),
                (IRQ_PORT, u32::from(IRQ_PIC_VECTOR)),
                "round {round}"
            );
        }
    });
}
