//! The state buffers of a register sync and the steps over them: the
//! regs-*, state-put and state-get operations, as a sequence of ioctls
//! (QEMU 7.2's order) or one batched `kvmng_vcpu_state` call.

use crate::calls::Api;
use kvm_bindings::*;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use kvmng::Errno;
use kvmng_abi::ioctls::*;
use kvmng_abi::*;
use std::os::fd::AsRawFd;

type R<T> = Result<T, String>;

/// `struct kvm_msrs` with room for 64 entries.
#[repr(C)]
#[derive(Clone, Copy)]
struct MsrBuf {
    nmsrs: u32,
    pad: u32,
    entries: [kvm_msr_entry; 64],
}

impl MsrBuf {
    fn new(indices: &[u32]) -> MsrBuf {
        let mut b = MsrBuf {
            nmsrs: indices.len() as u32,
            pad: 0,
            entries: [kvm_msr_entry::default(); 64],
        };
        for (e, &i) in b.entries.iter_mut().zip(indices) {
            e.index = i;
        }
        b
    }

    fn size(&self) -> u32 {
        8 + 16 * self.nmsrs
    }
}

/// The state buffers of a register sync, at stable addresses.
struct StateBufs {
    regs: kvm_regs,
    sregs: kvm_sregs,
    sregs2: kvm_sregs2,
    xsave: Vec<u64>,
    xcrs: kvm_xcrs,
    msrs_put: MsrBuf,
    msrs_get: MsrBuf,
    tsc_deadline: MsrBuf,
    events: kvm_vcpu_events,
    mp_state: kvm_mp_state,
    lapic: kvm_lapic_state,
    debugregs: kvm_debugregs,
}

fn addr<T>(v: &mut T) -> u64 {
    v as *mut T as u64
}

/// One step of a sync: the ioctl, and the equivalent state entry.
#[derive(Clone, Copy)]
struct Step {
    cmd: u64,
    addr: u64,
    kind: u32,
    op: u32,
    size: u32,
    /// What the ioctl returns on success (the MSR count for *_MSRS).
    expect: i64,
}

/// MSRs QEMU 7.2 writes in a runtime put (kvm_put_msrs at
/// KVM_PUT_RUNTIME_STATE), each when KVM lists it: SYSENTER_CS/ESP/EIP,
/// PAT, STAR, VM_HSAVE_PA, TSC_AUX, TSC_ADJUST, MISC_ENABLE, SMBASE,
/// SMI_COUNT, BNDCFGS, XSS, SPEC_CTRL, VIRT_SSBD, CSTAR, KERNELGSBASE,
/// FMASK, LSTAR.
const QEMU_RUNTIME_MSRS: [u32; 19] = [
    0x174,
    0x175,
    0x176,
    0x277,
    0xc000_0081,
    0xc001_0117,
    0xc000_0103,
    0x3b,
    0x1a0,
    0x9e,
    0x34,
    0xd90,
    0xda0,
    0x48,
    0xc001_011f,
    0xc000_0083,
    0xc000_0102,
    0xc000_0084,
    0xc000_0082,
];
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_TSCDEADLINE: u32 = 0x6e0;
const KVM_CAP_SREGS2: u64 = 200;
const KVM_CAP_XSAVE2: u64 = 208;

/// A sequence of state ioctls, or one batched state call.
pub struct StateSeq {
    /// The buffers the steps and entries point into (kept alive here).
    _bufs: Box<StateBufs>,
    steps: Vec<Step>,
    entries: Vec<kvmng_state_entry>,
    /// For the report: which MSRs, sregs2 or sregs, xsave size.
    pub(crate) info: String,
}

/// Which sync a [`StateSeq`] does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    RegsGet,
    RegsSet,
    Put,
    Get,
    /// One step of the put, alone (index from 0).
    PutStep(usize),
    /// One step of the get, alone.
    GetStep(usize),
}

impl StateSeq {
    pub(crate) fn new(kvm: &Kvm, vm: &VmFd, vcpu_fd: &VcpuFd, which: Sync) -> R<StateSeq> {
        let vcpu = vcpu_fd.as_raw_fd();
        let has_sregs2 = vm.check_extension_raw(KVM_CAP_SREGS2) > 0;
        let xsave2 = vm.check_extension_raw(KVM_CAP_XSAVE2).max(0) as usize;
        let xsave_size = xsave2.max(core::mem::size_of::<kvm_xsave>());
        let listed = msr_index_list(kvm)?;
        let msrs = usable_msrs(&listed, vcpu_fd);
        let mut get_msrs = msrs.clone();
        if listed.contains(&MSR_IA32_TSCDEADLINE) {
            get_msrs.push(MSR_IA32_TSCDEADLINE);
        }
        get_msrs.push(MSR_IA32_TSC);
        let mut bufs = Box::new(StateBufs {
            regs: kvm_regs::default(),
            sregs: kvm_sregs::default(),
            sregs2: kvm_sregs2::default(),
            xsave: vec![0u64; xsave_size / 8],
            xcrs: kvm_xcrs::default(),
            msrs_put: MsrBuf::new(&msrs),
            msrs_get: MsrBuf::new(&get_msrs),
            tsc_deadline: MsrBuf::new(&[MSR_IA32_TSCDEADLINE]),
            events: kvm_vcpu_events::default(),
            mp_state: kvm_mp_state::default(),
            lapic: kvm_lapic_state::default(),
            debugregs: kvm_debugregs::default(),
        });
        let b = &mut *bufs;
        let xsave_addr = b.xsave.as_mut_ptr() as u64;
        let sz = |n: usize| n as u32;
        let (sregs_get, sregs_set, sregs_kind, sregs_addr, sregs_size) = if has_sregs2 {
            (
                KVM_GET_SREGS2,
                KVM_SET_SREGS2,
                KVMNG_STATE_SREGS2,
                addr(&mut b.sregs2),
                sz(core::mem::size_of::<kvm_sregs2>()),
            )
        } else {
            (
                KVM_GET_SREGS,
                KVM_SET_SREGS,
                KVMNG_STATE_SREGS,
                addr(&mut b.sregs),
                sz(core::mem::size_of::<kvm_sregs>()),
            )
        };
        let (xsave_get, xsave_get_kind) = if xsave2 > 0 {
            (KVM_GET_XSAVE2, KVMNG_STATE_XSAVE2)
        } else {
            (KVM_GET_XSAVE, KVMNG_STATE_XSAVE)
        };
        // KVM_SET_XSAVE takes the KVM_CAP_XSAVE2 size; the XSAVE2 kind says
        // so when that is larger than the 4096-byte struct.
        let xsave_set_kind = if xsave_size > core::mem::size_of::<kvm_xsave>() {
            KVMNG_STATE_XSAVE2
        } else {
            KVMNG_STATE_XSAVE
        };
        let get = |cmd, a, kind, size| Step {
            cmd,
            addr: a,
            kind,
            op: KVMNG_STATE_GET,
            size,
            expect: 0,
        };
        let set = |cmd, a, kind, size| Step {
            cmd,
            addr: a,
            kind,
            op: KVMNG_STATE_SET,
            size,
            expect: 0,
        };
        let regs = addr(&mut b.regs);
        let regs_size = sz(core::mem::size_of::<kvm_regs>());
        // Every get, in QEMU's order (kvm_arch_get_registers); it also
        // fills the buffers the put writes back.
        let mut msrs_get_step = get(
            KVM_GET_MSRS,
            addr(&mut b.msrs_get),
            KVMNG_STATE_MSRS,
            b.msrs_get.size(),
        );
        msrs_get_step.expect = i64::from(b.msrs_get.nmsrs);
        let get_all = vec![
            get(
                KVM_GET_VCPU_EVENTS,
                addr(&mut b.events),
                KVMNG_STATE_EVENTS,
                sz(core::mem::size_of::<kvm_vcpu_events>()),
            ),
            get(
                KVM_GET_MP_STATE,
                addr(&mut b.mp_state),
                KVMNG_STATE_MP_STATE,
                sz(core::mem::size_of::<kvm_mp_state>()),
            ),
            get(KVM_GET_REGS, regs, KVMNG_STATE_REGS, regs_size),
            get(xsave_get, xsave_addr, xsave_get_kind, sz(xsave_size)),
            get(
                KVM_GET_XCRS,
                addr(&mut b.xcrs),
                KVMNG_STATE_XCRS,
                sz(core::mem::size_of::<kvm_xcrs>()),
            ),
            get(sregs_get, sregs_addr, sregs_kind, sregs_size),
            msrs_get_step,
            get(
                KVM_GET_LAPIC,
                addr(&mut b.lapic),
                KVMNG_STATE_LAPIC,
                sz(core::mem::size_of::<kvm_lapic_state>()),
            ),
            get(
                KVM_GET_DEBUGREGS,
                addr(&mut b.debugregs),
                KVMNG_STATE_DEBUGREGS,
                sz(core::mem::size_of::<kvm_debugregs>()),
            ),
        ];
        // Fill the buffers (set-up: raw ioctls on every path).
        for s in &get_all {
            // SAFETY: each buffer is live in `bufs` and of the ioctl's size.
            let r = unsafe { kvmng::sys::ioctl(vcpu, s.cmd, s.addr) }
                .map_err(|err| format!("set-up get (cmd {:#x}): {err}", s.cmd))?;
            if r != s.expect {
                return Err(format!(
                    "set-up get (cmd {:#x}) returned {r}, not {}",
                    s.cmd, s.expect
                ));
            }
        }
        // The put writes back the values just read; the TSC deadline MSR
        // gets its own SET_MSRS, as in QEMU.
        for (dst, src) in b.msrs_put.entries.iter_mut().zip(b.msrs_get.entries.iter()) {
            dst.data = src.data;
        }
        let deadline = b
            .msrs_get
            .entries
            .iter()
            .take(b.msrs_get.nmsrs as usize)
            .find(|e| e.index == MSR_IA32_TSCDEADLINE)
            .map_or(0, |e| e.data);
        b.tsc_deadline.entries[0].data = deadline;
        let mut msrs_put_step = set(
            KVM_SET_MSRS,
            addr(&mut b.msrs_put),
            KVMNG_STATE_MSRS,
            b.msrs_put.size(),
        );
        msrs_put_step.expect = i64::from(b.msrs_put.nmsrs);
        let mut deadline_step = set(
            KVM_SET_MSRS,
            addr(&mut b.tsc_deadline),
            KVMNG_STATE_MSRS,
            b.tsc_deadline.size(),
        );
        deadline_step.expect = 1;
        let put_all = vec![
            set(sregs_set, sregs_addr, sregs_kind, sregs_size),
            set(KVM_SET_REGS, regs, KVMNG_STATE_REGS, regs_size),
            set(KVM_SET_XSAVE, xsave_addr, xsave_set_kind, sz(xsave_size)),
            set(
                KVM_SET_XCRS,
                addr(&mut b.xcrs),
                KVMNG_STATE_XCRS,
                sz(core::mem::size_of::<kvm_xcrs>()),
            ),
            msrs_put_step,
            set(
                KVM_SET_VCPU_EVENTS,
                addr(&mut b.events),
                KVMNG_STATE_EVENTS,
                sz(core::mem::size_of::<kvm_vcpu_events>()),
            ),
            deadline_step,
            set(
                KVM_SET_DEBUGREGS,
                addr(&mut b.debugregs),
                KVMNG_STATE_DEBUGREGS,
                sz(core::mem::size_of::<kvm_debugregs>()),
            ),
        ];
        let steps = match which {
            Sync::RegsGet => vec![get(KVM_GET_REGS, regs, KVMNG_STATE_REGS, regs_size)],
            Sync::RegsSet => vec![set(KVM_SET_REGS, regs, KVMNG_STATE_REGS, regs_size)],
            Sync::Put => put_all,
            Sync::Get => get_all,
            Sync::PutStep(i) => vec![*put_all.get(i).ok_or("no such put step")?],
            Sync::GetStep(i) => vec![*get_all.get(i).ok_or("no such get step")?],
        };
        let entries = steps
            .iter()
            .map(|s| kvmng_state_entry {
                kind: s.kind,
                op: s.op,
                addr: s.addr,
                size: s.size,
                result: 0,
            })
            .collect();
        let hex = |v: &[u32]| {
            v.iter()
                .map(|m| format!("{m:#x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let info = match which {
            Sync::Put | Sync::Get | Sync::PutStep(_) | Sync::GetStep(_) => format!(
                "{}; xsave {} bytes ({}); {} MSRs put [{}], {} got [{}]",
                if has_sregs2 {
                    "sregs2"
                } else {
                    "sregs (no KVM_CAP_SREGS2)"
                },
                xsave_size,
                if xsave2 > 0 {
                    "KVM_GET_XSAVE2"
                } else {
                    "KVM_GET_XSAVE"
                },
                msrs.len(),
                hex(&msrs),
                get_msrs.len(),
                hex(&get_msrs)
            ),
            _ => String::new(),
        };
        Ok(StateSeq {
            _bufs: bufs,
            steps,
            entries,
            info,
        })
    }

    #[inline]
    pub(crate) fn sample(&mut self, api: &Api, vcpu: i32, control: bool) -> R<u64> {
        match api {
            Api::Kvmng(b) if control => run_steps(
                &self.steps,
                // SAFETY: each step's buffer lives in `self._bufs`, of the
                // size its ioctl reads or writes.
                |s| unsafe { b.control(KVMNG_SCOPE_VCPU, s.cmd as u32, s.addr, 0) },
                |cmd| format!("kvmng_control({cmd:#x})"),
            ),
            Api::Ioctl { .. } => run_steps(
                &self.steps,
                // SAFETY: each step's buffer lives in `self._bufs`, of the
                // size its ioctl reads or writes.
                |s| unsafe { api.ioctl(vcpu, s.cmd, s.addr) },
                |cmd| format!("ioctl {cmd:#x}"),
            ),
            Api::Kvmng(b) => {
                let count = self.entries.len() as u32;
                let entries = &mut self.entries[..];
                let t = crate::clock::now();
                // SAFETY: every buffer the entries name lives in `self` for
                // the call, apart from the entries. The slice form: what a
                // Rust caller of the library calls (the emulation works on
                // the entries in place; the kernel copies them either way).
                let r = unsafe { b.vcpu_state_entries(entries, 0) };
                let ns = crate::clock::since(t);
                if r != Ok(i64::from(count)) {
                    return Err(format!("kvmng_vcpu_state answered {r:?}"));
                }
                for (entry, s) in self.entries.iter().zip(&self.steps) {
                    if i64::from(entry.result) != s.expect {
                        return Err(format!(
                            "state entry kind {} answered {}, expected {}",
                            entry.kind, entry.result, s.expect
                        ));
                    }
                }
                Ok(ns)
            }
        }
    }
}

/// Times `steps` issued one by one through `call` (a control call or an
/// ioctl each), stopping at the first that does not answer its `expect`;
/// `what` names that step's call in the error. Generic over `call`, so each
/// caller's timed loop is compiled for its own call, as if written out: no
/// dynamic dispatch is added between the clock reads (always inlined, as
/// the loops it replaces were part of `sample`).
#[inline(always)]
fn run_steps<C, W>(steps: &[Step], mut call: C, what: W) -> R<u64>
where
    C: FnMut(&Step) -> Result<i64, Errno>,
    W: FnOnce(u64) -> String,
{
    let t = crate::clock::now();
    let mut bad = None;
    for (i, s) in steps.iter().enumerate() {
        match call(s) {
            Ok(r) if r == s.expect => {}
            other => {
                bad = Some((i, other));
                break;
            }
        }
    }
    let ns = crate::clock::since(t);
    match bad {
        None => Ok(ns),
        Some((i, r)) => Err(format!(
            "{} (step {i}) answered {r:?}, expected Ok({})",
            what(steps[i].cmd),
            steps[i].expect
        )),
    }
}

fn msr_index_list(kvm: &Kvm) -> R<Vec<u32>> {
    kvm.get_msr_index_list()
        .map(|l| l.as_slice().to_vec())
        .map_err(|err| format!("KVM_GET_MSR_INDEX_LIST: {err}"))
}

/// QEMU's runtime MSRs that KVM lists and that this vCPU accepts back
/// (a GET then a SET of the value read, one at a time).
fn usable_msrs(listed: &[u32], vcpu: &VcpuFd) -> Vec<u32> {
    QEMU_RUNTIME_MSRS
        .iter()
        .copied()
        .filter(|m| listed.contains(m))
        .filter(|&index| {
            let Ok(mut one) = Msrs::from_entries(&[kvm_msr_entry {
                index,
                ..Default::default()
            }]) else {
                return false;
            };
            vcpu.get_msrs(&mut one) == Ok(1) && vcpu.set_msrs(&one) == Ok(1)
        })
        .collect()
}
