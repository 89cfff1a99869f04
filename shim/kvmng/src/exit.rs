//! The typed exit of a run, decoded from the vCPU's `struct kvm_run`.

use kvm_bindings::*;

/// Why the guest stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum VcpuExit<'a> {
    /// An OUT (or OUTS): `data` holds `size * count` bytes.
    IoOut { port: u16, size: u8, data: &'a [u8] },
    /// An IN (or INS): fill `data` before the next run.
    IoIn {
        port: u16,
        size: u8,
        data: &'a mut [u8],
    },
    /// A write to unbacked guest-physical memory.
    MmioWrite { addr: u64, data: &'a [u8] },
    /// A read of unbacked guest-physical memory: fill `data`.
    MmioRead { addr: u64, data: &'a mut [u8] },
    /// HLT with no in-kernel irqchip.
    Hlt,
    /// Triple fault or similar.
    Shutdown,
    /// The interrupt window requested is open.
    IrqWindowOpen,
    /// The run was interrupted (signal, `immediate_exit`).
    Intr,
    /// VM entry failed.
    FailEntry { reason: u64, cpu: u32 },
    /// KVM could not handle something.
    InternalError { suberror: u32 },
    /// Shutdown, reset or crash request.
    SystemEvent { kind: u32 },
    /// A debug exit.
    Debug,
    /// Any other reason, by number.
    Other(u32),
}

/// Decodes the exit in `run`.
///
/// # Safety
/// `run` must point to the vCPU's mapped kvm_run area of `run_size` bytes,
/// not being written by the kernel (the vCPU is not running).
pub unsafe fn decode<'a>(run: *mut kvm_run, run_size: usize) -> VcpuExit<'a> {
    // SAFETY: the caller guarantees `run` is the mapped, quiescent area.
    let r = unsafe { &mut *run };
    let base = run as *mut u8;
    // SAFETY: for each exit reason, the union member read is the one KVM
    // wrote; data offsets and lengths come from KVM and are clamped to the
    // mapping.
    unsafe {
        match r.exit_reason {
            KVM_EXIT_IO => {
                let io = r.__bindgen_anon_1.io;
                let len = usize::from(io.size) * io.count as usize;
                let offset = (io.data_offset as usize).min(run_size);
                let len = len.min(run_size - offset);
                let data = core::slice::from_raw_parts_mut(base.add(offset), len);
                if u32::from(io.direction) == KVM_EXIT_IO_OUT {
                    VcpuExit::IoOut {
                        port: io.port,
                        size: io.size,
                        data,
                    }
                } else {
                    VcpuExit::IoIn {
                        port: io.port,
                        size: io.size,
                        data,
                    }
                }
            }
            KVM_EXIT_MMIO => {
                let mmio = &mut r.__bindgen_anon_1.mmio;
                let len = (mmio.len as usize).min(8);
                let data = &mut mmio.data[..len];
                if mmio.is_write != 0 {
                    VcpuExit::MmioWrite {
                        addr: mmio.phys_addr,
                        data,
                    }
                } else {
                    VcpuExit::MmioRead {
                        addr: mmio.phys_addr,
                        data,
                    }
                }
            }
            KVM_EXIT_HLT => VcpuExit::Hlt,
            KVM_EXIT_SHUTDOWN => VcpuExit::Shutdown,
            KVM_EXIT_IRQ_WINDOW_OPEN => VcpuExit::IrqWindowOpen,
            KVM_EXIT_INTR => VcpuExit::Intr,
            KVM_EXIT_FAIL_ENTRY => {
                let f = r.__bindgen_anon_1.fail_entry;
                VcpuExit::FailEntry {
                    reason: f.hardware_entry_failure_reason,
                    cpu: f.cpu,
                }
            }
            KVM_EXIT_INTERNAL_ERROR => VcpuExit::InternalError {
                suberror: r.__bindgen_anon_1.internal.suberror,
            },
            KVM_EXIT_SYSTEM_EVENT => VcpuExit::SystemEvent {
                kind: r.__bindgen_anon_1.system_event.type_,
            },
            KVM_EXIT_DEBUG => VcpuExit::Debug,
            other => VcpuExit::Other(other),
        }
    }
}
