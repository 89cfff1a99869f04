//! `kvmng demo`: real guests through the kvmng library, narrated.

use anyhow::{bail, Context};
use kvmng::Kvmng;
use kvmng_guests::boot::{run_to_halt, GuestVm};
use kvmng_guests::{by_name, Guest};

const MMIO_ANSWER: u64 = 0xCAFE_BABE;

fn show(kvm: &Kvmng, guest: &'static Guest) -> anyhow::Result<()> {
    println!(
        "\n== guest {} ({:?} mode, {} bytes of code)",
        guest.name,
        guest.mode,
        guest.code.len()
    );
    let gvm =
        GuestVm::new(kvm, guest).context("creating the VM (kvmng_create_vm, kvmng_memory_map)")?;
    println!(
        "   kvmng_create_vm -> VM fd {}, bound to this process",
        gvm.vm.fd()
    );
    let mut vcpu = gvm
        .boot_vcpu()
        .context("creating vCPU 0 (kvmng_create_vcpu) and setting its state")?;
    println!(
        "   kvmng_create_vcpu(0, BIND) -> vCPU fd {}, bound to this thread",
        vcpu.fd()
    );
    let t = run_to_halt(&mut vcpu, MMIO_ANSWER, 10_000).map_err(anyhow::Error::msg)?;
    if !t.console.is_empty() {
        println!("   console (port 0xe9): {:?}", t.console);
    }
    for (addr, data) in &t.mmio_writes {
        println!("   MMIO write at {addr:#x}: {data:02x?}");
    }
    for addr in &t.mmio_reads {
        println!("   MMIO read at {addr:#x}, answered {MMIO_ANSWER:#x}");
    }
    for value in &t.reports {
        println!("   report (port 0x10): {value:#x}");
    }
    let regs = vcpu
        .regs()
        .context("reading registers (kvmng_vcpu_state)")?;
    println!(
        "   halted after {} exits; rip={:#x} (kvmng_vcpu_state GET regs)",
        t.exits, regs.rip
    );
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    println!("kvmng demo: real guests on /dev/kvm through the kvmng library");
    println!("backend: {}", crate::info::backend_story());
    let kvm = Kvmng::open()?;
    for name in ["real_pio", "real_mmio", "long_pio", "long_mmio"] {
        let Some(guest) = by_name(name) else {
            bail!("guest {name} is missing from kvmng-guests")
        };
        show(&kvm, guest).with_context(|| format!("guest {name}"))?;
    }
    println!(
        "\nall guests ran through the {} backend",
        kvm.backend_kind().name()
    );
    Ok(())
}
