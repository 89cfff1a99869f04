//! One line per KVM ioctl in the trace file, written with one write(2)
//! from a stack buffer:
//!
//! ```text
//! pid=812 tid=815 cmd=KVM_RUN fd=12 class=vcpu ret=0 ns=2210 path=translated
//! pid=812 tid=812 cmd=KVM_CREATE_VM fd=3 class=system ret=-1 errno=EEXIST ns=900 path=fallback reason="second live VM"
//! ```

use super::census::Path;
use super::cmdindex;
use super::config::TRACE_FD;
use super::fdtable::Entry;
use super::fmtbuf::Buf;
use core::sync::atomic::Ordering::Relaxed;
use kvmng::{Errno, SysResult};

/// What one traced call was.
pub struct Call {
    /// The fd.
    pub fd: i32,
    /// The request.
    pub cmd: u64,
    /// The census slot.
    pub slot: usize,
    /// The fd's entry.
    pub entry: Entry,
    /// The result.
    pub result: SysResult,
    /// How it was carried out.
    pub path: Path,
    /// Duration in nanoseconds.
    pub ns: u64,
}

/// Appends an errno's name (or `E<number>`).
pub fn errno_name(b: &mut Buf<'_>, e: Errno) {
    match e.name() {
        "E?" => b.s("E").u(e.0 as u64),
        name => b.s(name),
    };
}

/// Formats the line of `call` into `b`.
pub fn format(b: &mut Buf<'_>, call: &Call, pid: i32, tid: i32) {
    b.s("pid=")
        .u(pid as u64)
        .s(" tid=")
        .u(tid as u64)
        .s(" cmd=");
    if call.slot == cmdindex::UNKNOWN {
        b.hex(call.cmd);
    } else {
        b.s(cmdindex::name(call.slot));
    }
    b.s(" fd=").i(i64::from(call.fd));
    b.s(" class=").s(call.entry.class_name());
    match call.result {
        Ok(v) => {
            b.s(" ret=").i(v);
        }
        Err(e) => {
            b.s(" ret=-1 errno=");
            errno_name(b, e);
        }
    }
    b.s(" ns=").u(call.ns).s(" path=").s(call.path.name());
    if let Path::Fallback(reason) = call.path {
        b.s(" reason=\"").s(reason.text()).s("\"");
    }
    b.s("\n");
}

/// Writes the line of `call` to the trace file, if there is one.
pub fn write(call: &Call) {
    let fd = TRACE_FD.load(Relaxed);
    if fd < 0 {
        return;
    }
    let mut data = [0u8; 256];
    let mut b = Buf::new(&mut data);
    format(&mut b, call, kvmng::sys::getpid(), super::binding::tid());
    let bytes = b.bytes();
    let _ = crate::raw::write(fd, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpose::fdtable::Kind;
    use crate::interpose::reason::Reason;

    #[test]
    fn lines() {
        let mut data = [0u8; 256];
        let mut b = Buf::new(&mut data);
        let run = cmdindex::find(kvmng_abi::ioctls::KVM_RUN, kvmng_abi::ioctls::FdClass::Vcpu);
        format(
            &mut b,
            &Call {
                fd: 12,
                cmd: kvmng_abi::ioctls::KVM_RUN,
                slot: run.unwrap(),
                entry: Entry::of(Kind::Vcpu),
                result: Ok(0),
                path: Path::Translated,
                ns: 2210,
            },
            812,
            815,
        );
        assert_eq!(
            b.bytes(),
            b"pid=812 tid=815 cmd=KVM_RUN fd=12 class=vcpu ret=0 ns=2210 path=translated\n"
        );
        let mut data = [0u8; 256];
        let mut b = Buf::new(&mut data);
        format(
            &mut b,
            &Call {
                fd: 3,
                cmd: 0xaeff,
                slot: cmdindex::UNKNOWN,
                entry: Entry::of(Kind::System),
                result: Err(Errno(libc::ENOTTY)),
                path: Path::Fallback(Reason::NotInTable),
                ns: 5,
            },
            1,
            1,
        );
        assert_eq!(
            core::str::from_utf8(b.bytes()).unwrap(),
            "pid=1 tid=1 cmd=0xaeff fd=3 class=system ret=-1 errno=ENOTTY ns=5 path=fallback \
             reason=\"no mapping for this command on this fd class\"\n"
        );
    }
}
